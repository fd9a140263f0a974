"""Readers are readers (issue 12, item 1) and the store's part of item 4.

Every reproduction runs the real console script against a real SQLite file:

- a writer holds the write lock (``BEGIN IMMEDIATE`` on a second connection) while every
  read-only command runs: each answers while the lock is still held (the writer releases
  only after the last reader finished);
- an exported store in rollback-journal mode is byte-identical after every read-only
  command (file hash and folder listing before and after);
- a store that needs migrating (schema version 1) is reported by a reader, not rewritten;
  ``gov migrate-store`` migrates it;
- a foreign SQLite file holding only a view is refused by readers and writers, unchanged;
- damaged values (non-JSON signer set, text weight, text threshold, ...) give one line and
  exit 2 for every command that reads them, never a traceback;
- a duplicate proposal that loses the race exits 1 like any duplicate;
- vote weights tally exactly (weights near 1e308, large integers a float sum gets wrong).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import pytest

from releasesim.model.crypto import ReleaseSigner, blake3_hex
from releasesim.model.errors import StoreError
from releasesim.model.governance import approve_release, cast_vote, propose_release, tally
from releasesim.model.quorum import Attestation
from releasesim.model.store import SCHEMA_VERSION, GovernanceStore

BIN = Path(sys.executable).parent / "releasesim"
SIGNERS = [ReleaseSigner.derived(f"readonly-signer-{i}") for i in range(3)]
KEYS = tuple(s.public_key for s in SIGNERS)
ARTIFACT = b"the-block node v3.1.4\n" + bytes(range(256)) * 4
HASH = blake3_hex(ARTIFACT)
OPEN_HASH = blake3_hex(b"a build still in its vote")
# Far below the writer's 30 s busy timeout: a reader that waits for the writer runs into it.
READER_TIMEOUT_S = 15
TB_VARS = ("TB_RELEASE_SIGNERS", "TB_RELEASE_SIGNERS_FILE", "TB_RELEASE_SOURCE_URL",
           "TB_PREVIOUS_BINARY", "TB_NODE_BINARY", "TB_GOV_DB_PATH", "TB_ROLLBACK_AUDIT_LOG")


class Node:
    """A temporary node: store path, binary slot, audit log, release source, signers."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db = root / "state" / "gov.db"
        self.db.parent.mkdir()
        self.binary = root / "node" / "the-block"
        self.binary.parent.mkdir()
        served = root / "served"
        served.mkdir()
        (served / f"{HASH}.bin").write_bytes(ARTIFACT)
        self.env = {k: v for k, v in os.environ.items() if k not in TB_VARS}
        self.env.update(
            TB_GOV_DB_PATH=str(self.db),
            TB_RELEASE_SIGNERS=",".join(KEYS),
            TB_NODE_BINARY=str(self.binary),
            TB_PREVIOUS_BINARY=str(self.binary) + ".previous",
            TB_ROLLBACK_AUDIT_LOG=str(root / "node" / "audit.jsonl"),
            TB_RELEASE_SOURCE_URL=served.as_uri(),
        )

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        try:
            proc = subprocess.run([str(BIN), *args], cwd=self.root, env=self.env,
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"releasesim {' '.join(args)} did not answer within {timeout} s")
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([str(BIN), *args], cwd=self.root, env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


def populate(store: GovernanceStore) -> None:
    """HASH proposed (threshold 2) and activated at epoch 5, installed by n1 and n2;
    OPEN_HASH proposed with a vote period, one vote cast."""
    attestations = [Attestation(s.public_key, s.attest(HASH)) for s in SIGNERS[:2]]
    first = propose_release(store, build_hash=HASH, attestations=attestations, signer_set=KEYS,
                            threshold=2, proposer="alice", epoch=5)
    approve_release(store, first.id, voter="v1", weight=3, epoch=5)
    store.record_install(HASH, "n1", 1_000.0)
    store.record_install(HASH, "n2", 1_900.0)
    second = propose_release(store, build_hash=OPEN_HASH, signer_set=KEYS, threshold=1,
                             attestations=[Attestation(KEYS[0], SIGNERS[0].attest(OPEN_HASH))],
                             proposer="bob", epoch=6, vote_period_epochs=10)
    cast_vote(store, second.id, voter="v2", weight=2, choice="no", epoch=7)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def read_commands() -> list[tuple[str, ...]]:
    """Every command that only reads the store (boot-check of an approved, recorded binary)."""
    return [
        ("gov", "proposals"), ("gov", "proposals", "--json"),
        ("gov", "metrics"), ("gov", "metrics", "--json"), ("gov", "release-signers"),
        ("explorer", "release-history"), ("explorer", "release-history", "--json"),
        ("explorer", "timeline", "--json"),
        ("gov", "boot-check", "--node-id", "n1"),
        ("gov", "fetch-release", "--hash", HASH, "--dest", "downloads/release.bin"),
    ]


# -- readers never wait for a writer --
def test_readers_answer_while_a_writer_holds_the_write_lock(node: Node) -> None:
    with GovernanceStore.open(node.db) as store:  # a writer's store: WAL journal
        populate(store)
    node.binary.write_bytes(ARTIFACT)
    writer = sqlite3.connect(node.db, isolation_level=None, timeout=0)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE proposals SET proposer = 'uncommitted-writer'")
    try:
        probe = sqlite3.connect(node.db, isolation_level=None, timeout=0)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            probe.execute("BEGIN IMMEDIATE")  # the lock really is held
        probe.close()
        for command in read_commands():
            proc = node.run(*command, timeout=READER_TIMEOUT_S)
            assert proc.returncode == 0, (command, proc.stderr)
            assert "uncommitted-writer" not in proc.stdout
        assert writer.in_transaction  # released only now, after every reader answered
    finally:
        writer.execute("ROLLBACK")
        writer.close()


# -- readers never change a store's bytes --
def test_read_only_commands_leave_an_exported_rollback_journal_store_byte_identical(
    node: Node,
) -> None:
    with GovernanceStore.memory() as simulated:  # exported like `releasesim run --keep-store`
        populate(simulated)
        simulated.backup_to(node.db)
    assert node.db.read_bytes()[18:20] == b"\x01\x01", "expected a rollback-journal file"
    node.binary.write_bytes(ARTIFACT)
    for command in read_commands():
        before = (sha256(node.db), sorted(os.listdir(node.db.parent)))
        proc = node.run(*command)
        assert proc.returncode == 0, (command, proc.stderr)
        assert (sha256(node.db), sorted(os.listdir(node.db.parent))) == before, command
    assert node.db.read_bytes()[18:20] == b"\x01\x01"


def test_open_readonly_refuses_writes_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    with pytest.raises(StoreError, match="does not exist"):
        GovernanceStore.open_readonly(missing)
    assert not missing.exists()
    path = tmp_path / "gov.db"
    with GovernanceStore.memory() as simulated:
        populate(simulated)
        simulated.backup_to(path)
    before = sha256(path)
    with GovernanceStore.open_readonly(path) as store:
        assert store.readonly
        assert [p.build_hash for p in store.proposals()] == [HASH, OPEN_HASH]
        for write in (lambda: store.increment("x_total"),
                      lambda: store.record_install(HASH, "n9", 5.0),
                      lambda: cast_vote(store, 2, voter="v9", weight=1, choice="yes", epoch=8)):
            with pytest.raises(StoreError, match="read-only"):
                write()
    assert sha256(path) == before


# -- a store that needs migrating --
V1_SCHEMA = """
CREATE TABLE proposals (id INTEGER PRIMARY KEY AUTOINCREMENT, build_hash TEXT NOT NULL UNIQUE,
    proposer TEXT NOT NULL, threshold INTEGER NOT NULL, signer_set TEXT NOT NULL,
    attestations TEXT NOT NULL, created_epoch INTEGER NOT NULL, deadline_epoch INTEGER NOT NULL,
    vote_quorum REAL NOT NULL, status TEXT NOT NULL
    CHECK (status IN ('open', 'activated', 'rejected')), activated_epoch INTEGER);
CREATE TABLE votes (proposal_id INTEGER NOT NULL REFERENCES proposals(id), voter TEXT NOT NULL,
    weight REAL NOT NULL, choice TEXT NOT NULL CHECK (choice IN ('yes', 'no', 'abstain')),
    epoch INTEGER NOT NULL, PRIMARY KEY (proposal_id, voter));
CREATE TABLE approved_releases (build_hash TEXT PRIMARY KEY,
    proposal_id INTEGER NOT NULL REFERENCES proposals(id), proposer TEXT NOT NULL,
    activated_epoch INTEGER NOT NULL, threshold INTEGER NOT NULL, signer_set TEXT NOT NULL,
    attestations TEXT NOT NULL);
CREATE TABLE installs (seq INTEGER PRIMARY KEY AUTOINCREMENT, build_hash TEXT NOT NULL,
    node_id TEXT NOT NULL, ts REAL NOT NULL);
CREATE INDEX installs_by_release ON installs (build_hash, ts);
CREATE TABLE metrics (name TEXT NOT NULL, labels TEXT NOT NULL DEFAULT '',
    value REAL NOT NULL, PRIMARY KEY (name, labels));
PRAGMA application_id = 1381190961;
PRAGMA user_version = 1;
"""


def _v1_store(path: Path) -> None:
    """A store as releasesim wrote it before exact vote weights (schema version 1)."""
    attestations = json.dumps([{"signer": KEYS[0], "signature": SIGNERS[0].attest(OPEN_HASH)}])
    with sqlite3.connect(path) as db:
        db.executescript(V1_SCHEMA)
        db.execute("INSERT INTO proposals (build_hash, proposer, threshold, signer_set,"
                   " attestations, created_epoch, deadline_epoch, vote_quorum, status)"
                   " VALUES (?, 'carol', 1, ?, ?, 2, 4, 1.5, 'open')",
                   (OPEN_HASH, json.dumps(list(KEYS)), attestations))
        db.execute("INSERT INTO votes VALUES (1, 'v1', 2.5, 'yes', 3)")
    db.close()


def test_a_store_needing_migration_is_reported_by_readers_and_migrated_by_a_writer(
    node: Node,
) -> None:
    assert SCHEMA_VERSION > 1
    _v1_store(node.db)
    before = sha256(node.db)
    for command in [c for c in read_commands() if c[1] != "boot-check"]:
        proc = node.run(*command)
        assert proc.returncode == 2, (command, proc.stdout)
        one_line_error(proc, str(node.db), "schema version 1", "migrate")
        assert sha256(node.db) == before, command
    migrated = node.run("gov", "migrate-store")
    assert migrated.returncode == 0, migrated.stderr
    with sqlite3.connect(node.db) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()
    listed = json.loads(node.run("gov", "proposals", "--json").stdout)
    assert [(p["hash"], p["proposer"], p["vote_quorum"]) for p in listed] == [
        (OPEN_HASH, "carol", 1.5)
    ]
    tallied = node.run("gov", "tally", "--id", "1", "--epoch", "4", "--json")
    assert tallied.returncode == 0, tallied.stderr
    assert json.loads(tallied.stdout)["tally"] == {"yes": 2.5, "no": 0, "abstain": 0}
    again = node.run("gov", "migrate-store")
    assert again.returncode == 0 and "already" in again.stdout


# -- foreign files --
def test_a_view_only_sqlite_file_is_refused_by_readers_and_writers(node: Node) -> None:
    with sqlite3.connect(node.db) as db:
        db.execute("CREATE VIEW releases AS SELECT 'abc' AS build_hash")
    db.close()
    before = sha256(node.db)
    propose = ("gov", "propose-release", "--hash", HASH, "--threshold", "2",
               "--signature", SIGNERS[0].attest(HASH), "--signer", KEYS[0],
               "--signature", SIGNERS[1].attest(HASH), "--signer", KEYS[1])
    for command in [("gov", "proposals"), ("explorer", "release-history"), ("gov", "metrics"),
                    propose, ("gov", "migrate-store")]:
        proc = node.run(*command)
        assert proc.returncode == 2, (command, proc.stdout)
        one_line_error(proc, str(node.db), "foreign")
        assert sha256(node.db) == before, command
    for opener in (GovernanceStore.open, GovernanceStore.open_readonly):
        with pytest.raises(StoreError, match="foreign"):
            opener(node.db)
        assert sha256(node.db) == before


# -- damaged values --
DAMAGE = [
    ("UPDATE proposals SET signer_set = '{not json' WHERE id = 1", "proposals.signer_set",
     [("gov", "proposals"), ("gov", "proposals", "--json")]),
    ("UPDATE proposals SET signer_set = '" + "[" * 100_000 + "' WHERE id = 2",
     "proposals.signer_set", [("gov", "proposals", "--json")]),
    ("UPDATE proposals SET attestations = '[{\"signer\": 7}]' WHERE id = 1",
     "proposals.attestations", [("gov", "proposals")]),
    ("UPDATE proposals SET deadline_epoch = 'soon' WHERE id = 2", "proposals.deadline_epoch",
     [("gov", "proposals")]),
    ("UPDATE approved_releases SET signer_set = 'signers'", "approved_releases.signer_set",
     [("explorer", "release-history"), ("gov", "boot-check", "--node-id", "n1")]),
    ("UPDATE approved_releases SET threshold = 'two'", "approved_releases.threshold",
     [("gov", "release-signers"), ("explorer", "release-history", "--json"),
      ("gov", "boot-check", "--node-id", "n1")]),
    ("UPDATE installs SET ts = 'yesterday' WHERE node_id = 'n2'", "installs.ts",
     [("explorer", "timeline"), ("explorer", "release-history")]),
    ("UPDATE metrics SET value = 'lots' WHERE name = 'release_votes_total'", "metrics.value",
     [("gov", "metrics"), ("gov", "metrics", "--json")]),
    ("UPDATE votes SET weight = 'heavy' WHERE voter = 'v2'", "votes.weight",
     [("gov", "tally", "--id", "2", "--epoch", "16"),
      ("gov", "vote", "--id", "2", "--choice", "yes", "--voter", "v3")]),
]


@pytest.mark.parametrize(("damage", "where", "commands"), DAMAGE,
                         ids=[d[1] if i != 1 else "deep-json" for i, d in enumerate(DAMAGE)])
def test_damaged_values_give_one_line_and_exit_2(node: Node, damage, where, commands) -> None:
    with GovernanceStore.open(node.db) as store:
        populate(store)
    with sqlite3.connect(node.db) as db:
        db.execute(damage)
    db.close()
    node.binary.write_bytes(ARTIFACT)
    before = (sha256(node.db), sha256(node.binary))
    for command in commands:
        proc = node.run(*command)
        assert proc.returncode == 2, (command, proc.stdout, proc.stderr)
        line = one_line_error(proc, str(node.db), where, "damaged")
        assert len(line) < 400
        assert (sha256(node.db), sha256(node.binary)) == before, command


# -- a duplicate proposal that loses the race --
RACE_DRIVER = textwrap.dedent(
    """
    import sys
    from releasesim.cli.main import main
    from releasesim.model.store import GovernanceStore

    checked = GovernanceStore.find_proposal

    def lose_the_race(self, build_hash):
        found = checked(self, build_hash)
        if found is None:  # a rival process proposes the same build right after the check
            with GovernanceStore.open(sys.argv[1], create=False) as rival:
                rival.insert_proposal(
                    build_hash=build_hash, proposer="rival", threshold=1, signer_set=("aa",),
                    attestations=(), created_epoch=0, deadline_epoch=0, vote_quorum=1,
                )
        return found

    GovernanceStore.find_proposal = lose_the_race
    sys.exit(main(sys.argv[2:]))
    """
)


def test_a_duplicate_that_loses_the_race_between_check_and_insert_exits_1(node: Node) -> None:
    GovernanceStore.open(node.db).close()
    args = ["gov", "propose-release", "--hash", HASH, "--threshold", "1",
            "--signature", SIGNERS[0].attest(HASH), "--signer", KEYS[0]]
    proc = subprocess.run([sys.executable, "-c", RACE_DRIVER, str(node.db), *args],
                          cwd=node.root, env=node.env, capture_output=True, text=True, timeout=60)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 1, proc.stderr
    one_line_error(proc, HASH, "already been proposed")
    with GovernanceStore.open_readonly(node.db) as store:
        assert [(p.build_hash, p.proposer) for p in store.proposals()] == [(HASH, "rival")]


def test_two_processes_proposing_the_same_build_one_wins_one_exits_1(node: Node) -> None:
    for round_ in range(3):
        build = blake3_hex(f"raced build {round_}".encode())
        args = ["gov", "propose-release", "--hash", build, "--threshold", "1",
                "--signature", SIGNERS[0].attest(build), "--signer", KEYS[0]]
        racers = [node.popen(*args) for _ in range(2)]
        results = [(r.wait(timeout=60), *r.communicate()) for r in racers]
        assert sorted(code for code, _, _ in results) == [0, 1], results
        loser = next(err for code, _, err in results if code == 1)
        assert "Traceback" not in loser
        assert len(loser.strip().splitlines()) == 1 and "already been proposed" in loser
    with GovernanceStore.open_readonly(node.db) as store:
        assert len(store.proposals()) == 3


# -- exact stake --
@pytest.mark.parametrize(
    ("yes", "no"),
    [
        ((1.7e308, 1.7e308), (1.7e308, 1.6e308)),  # float sums overflow to inf == inf
        ((2.0**53, 1, 1), (2.0**53,)),  # float sum of yes stays 2**53 (each +1 rounds away)
        ((1e16, 1, 1, 1, 1), (1e16 + 2,)),
    ],
    ids=["near-float-max", "2**53-plus-ones", "1e16-plus-ones"],
)
def test_vote_weights_tally_exactly(store, yes, no) -> None:
    exact_yes = sum(Fraction(w) for w in yes)
    exact_no = sum(Fraction(w) for w in no)
    assert exact_yes > exact_no  # the exact rule activates ...
    float_yes, float_no = 0.0, 0.0
    for w in yes:
        float_yes += w
    for w in no:
        float_no += w
    assert not float_yes > float_no  # ... a float tally would reject: the case is meaningful
    proposal = propose_release(
        store, build_hash=HASH, signer_set=KEYS, threshold=1, proposer="p", epoch=0,
        attestations=[Attestation(KEYS[0], SIGNERS[0].attest(HASH))], vote_period_epochs=1,
    )
    voters = [(f"y{i}", w, "yes") for i, w in enumerate(yes)]
    voters += [(f"z{i}", w, "no") for i, w in enumerate(no)]
    for voter, weight, choice in voters:
        cast_vote(store, proposal.id, voter=voter, weight=weight, choice=choice, epoch=0)
    result = tally(store, proposal.id, epoch=1)
    assert (result.yes, result.no, result.abstain) == (exact_yes, exact_no, 0)
    assert result.status == "activated"


def test_cli_weights_beyond_2_53_are_kept_exactly(node: Node) -> None:
    proposed = node.run("gov", "propose-release", "--hash", HASH, "--threshold", "1",
                        "--signature", SIGNERS[0].attest(HASH), "--signer", KEYS[0],
                        "--vote-period", "2", "--vote-quorum", "9007199254740993")
    assert proposed.returncode == 0, proposed.stderr
    for voter, choice, weight in (("a", "yes", "9007199254740993"),
                                  ("b", "no", "9007199254740992")):
        voted = node.run("gov", "vote", "--id", "1", "--choice", choice, "--voter", voter,
                         "--weight", weight)
        assert voted.returncode == 0, voted.stderr
    tallied = node.run("gov", "tally", "--id", "1", "--epoch", "2", "--json")
    assert tallied.returncode == 0, tallied.stderr
    result = json.loads(tallied.stdout)
    assert result["tally"] == {"yes": 2**53 + 1, "no": 2**53, "abstain": 0}
    assert result["vote_quorum"] == 2**53 + 1
    assert result["status"] == "activated"  # yes > no and yes >= quorum, exactly
    for bad in ("1e309", "-1", "nan", "inf", "0x10", "1_000"):
        refused = node.run("gov", "vote", "--id", "1", "--choice", "yes", "--weight", bad)
        assert refused.returncode == 2, bad
        one_line_error(refused, "--weight")

