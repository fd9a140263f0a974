"""The operator CLI run as a user runs it: ``releasesim gov ...`` and ``contract gov ...``.

Every call is a subprocess of the installed console scripts, in a temporary folder,
with the environment (``TB_GOV_DB_PATH``, ``TB_RELEASE_SIGNERS``, ...) prepared by the
test. Checks exit codes (0 ok, 1 refused, 2 unusable input), one-line errors naming
the input, no traceback ever, and that a refused or unusable command leaves the store
and the destination untouched.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from releasesim.model.crypto import ReleaseSigner, blake3_hex

BIN_DIR = Path(sys.executable).parent
TB_VARS = (
    "TB_RELEASE_SIGNERS",
    "TB_RELEASE_SIGNERS_FILE",
    "TB_RELEASE_SOURCE_URL",
    "TB_PREVIOUS_BINARY",
    "TB_NODE_BINARY",
    "TB_GOV_DB_PATH",
    "TB_ROLLBACK_AUDIT_LOG",
)
SIGNERS = [ReleaseSigner.derived(f"cli-signer-{i}") for i in range(3)]
ARTIFACT = b"the-block node v2.0.0\n" + bytes(range(256)) * 8
HASH = blake3_hex(ARTIFACT)


def _exe(name: str) -> str:
    candidate = BIN_DIR / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    assert found, f"console script {name} is not installed"
    return found


class Cli:
    """Runs the console scripts in ``cwd`` with ``env``; every call asserts no traceback."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd = cwd
        self.env = env

    def __call__(
        self, *args: str, exe: str = "releasesim", env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [_exe(exe), *args],
            cwd=self.cwd,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [_exe("releasesim"), *args],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    @property
    def db(self) -> Path:
        return Path(self.env["TB_GOV_DB_PATH"])


def one_line_error(proc: subprocess.CompletedProcess[str], *names: str) -> str:
    """The single stderr line of a failed command, checked to name each of ``names``."""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


def attest_args(build_hash: str, signers: list[ReleaseSigner]) -> list[str]:
    args: list[str] = []
    for signer in signers:
        args += ["--signature", signer.attest(build_hash), "--signer", signer.public_key]
    return args


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    env = {k: v for k, v in os.environ.items() if k not in TB_VARS}
    env.update(
        TB_GOV_DB_PATH=str(tmp_path / "gov.db"),
        TB_RELEASE_SIGNERS=",".join(s.public_key for s in SIGNERS),
        TB_NODE_BINARY=str(tmp_path / "node" / "the-block"),
        TB_PREVIOUS_BINARY=str(tmp_path / "node" / "the-block.previous"),
        TB_ROLLBACK_AUDIT_LOG=str(tmp_path / "node" / "audit.jsonl"),
    )
    return Cli(tmp_path, env)


@pytest.fixture
def approved(cli: Cli) -> Cli:
    """A store in which ``HASH`` was proposed (threshold 2) and activated."""
    propose = cli("gov", "propose-release", "--hash", HASH, *attest_args(HASH, SIGNERS[:2]),
                  "--threshold", "2")
    assert propose.returncode == 0, propose.stderr
    approve = cli("gov", "approve-release", "--id", "1")
    assert approve.returncode == 0, approve.stderr
    return cli


# -- governance -----------------------------------------------------------------------
def test_seed_commands_verbatim_activate_with_contract(cli: Cli) -> None:
    propose = cli("gov", "propose-release", "--hash", HASH, *attest_args(HASH, SIGNERS),
                  exe="contract")
    assert propose.returncode == 0, propose.stderr
    assert "proposal 1" in propose.stdout
    approve = cli("gov", "approve-release", "--id", "1", exe="contract")
    assert approve.returncode == 0, approve.stderr
    assert "activated" in approve.stdout


def test_plain_flow_json(cli: Cli) -> None:
    propose = cli("gov", "propose-release", "--hash", HASH.upper(),
                  *attest_args(HASH, SIGNERS[:2]), "--threshold", "2", "--json")
    assert propose.returncode == 0, propose.stderr
    proposal = json.loads(propose.stdout)
    assert {k: proposal[k] for k in ("id", "hash", "threshold", "status")} == {
        "id": 1, "hash": HASH, "threshold": 2, "status": "open",
    }
    approve = cli("gov", "approve-release", "--id", "1", "--json")
    assert approve.returncode == 0, approve.stderr
    result = json.loads(approve.stdout)
    assert (result["id"], result["status"]) == (1, "activated")
    listed = json.loads(cli("gov", "proposals", "--json").stdout)
    assert [(p["id"], p["status"]) for p in listed] == [(1, "activated")]
    signers = json.loads(cli("gov", "release-signers").stdout)
    assert signers == {"signers": [s.public_key for s in SIGNERS], "threshold": 2}


def test_default_epoch_is_the_stores_and_advances_only_with_epoch(cli: Cli) -> None:
    """Without --epoch the CLI acts at the store's chain epoch, so propose -> approve
    activates however much wall-clock time passes; time moves only with --epoch."""
    assert cli("gov", "propose-release", "--hash", HASH, *attest_args(HASH, SIGNERS),
               "--epoch", "40").returncode == 0
    first = json.loads(cli("gov", "approve-release", "--id", "1", "--json").stdout)
    assert (first["status"], first["activated_epoch"]) == ("activated", 40)
    other = blake3_hex(b"another build")
    made = cli("gov", "propose-release", "--hash", other, *attest_args(other, SIGNERS),
               "--vote-period", "3", "--json")
    assert made.returncode == 0, made.stderr
    proposal = json.loads(made.stdout)
    assert (proposal["created_epoch"], proposal["deadline_epoch"]) == (40, 43)
    voted = json.loads(cli("gov", "approve-release", "--id", "2", "--json").stdout)
    assert voted["status"] == "open"  # still epoch 40: before the deadline, no tally
    early = cli("gov", "tally", "--id", "2")
    assert early.returncode == 1
    one_line_error(early, "before the deadline")
    tallied = json.loads(cli("gov", "tally", "--id", "2", "--epoch", "43", "--json").stdout)
    assert (tallied["status"], tallied["activated_epoch"]) == ("activated", 43)


def test_threshold_defaults_to_signer_set_size(cli: Cli) -> None:
    proc = cli("gov", "propose-release", "--hash", HASH, *attest_args(HASH, SIGNERS[:2]))
    assert proc.returncode == 1
    one_line_error(proc, "2 of 3")


def test_multi_voter_flow_with_deadline(cli: Cli) -> None:
    assert cli("gov", "propose-release", "--hash", HASH, *attest_args(HASH, SIGNERS),
               "--epoch", "100", "--vote-period", "5", "--vote-quorum", "2").returncode == 0
    assert cli("gov", "vote", "--id", "1", "--choice", "yes", "--voter", "a",
               "--epoch", "101").returncode == 0
    assert cli("gov", "vote", "--id", "1", "--choice", "no", "--voter", "b",
               "--epoch", "102").returncode == 0
    still_open = cli("gov", "approve-release", "--id", "1", "--voter", "c", "--epoch", "103",
                     "--json")
    assert json.loads(still_open.stdout)["status"] == "open"
    early = cli("gov", "tally", "--id", "1", "--epoch", "104")
    assert early.returncode == 1
    one_line_error(early, "deadline")
    late_vote = cli("gov", "vote", "--id", "1", "--choice", "no", "--voter", "d",
                    "--epoch", "106")
    assert late_vote.returncode == 1
    tallied = cli("gov", "tally", "--id", "1", "--epoch", "105", "--json")
    assert tallied.returncode == 0, tallied.stderr
    assert json.loads(tallied.stdout)["status"] == "activated"
    metrics = cli("gov", "metrics").stdout
    assert 'release_votes_total{choice="yes"} 2' in metrics
    assert 'release_votes_total{choice="no"} 1' in metrics


def test_short_quorum_refused_and_counted(cli: Cli) -> None:
    proc = cli("gov", "propose-release", "--hash", HASH, *attest_args(HASH, SIGNERS[:1]),
               "--threshold", "2")
    assert proc.returncode == 1
    one_line_error(proc, "1 of 2")
    metrics = cli("gov", "metrics")
    assert metrics.returncode == 0
    assert "release_quorum_fail_total 1" in metrics.stdout.splitlines()
    assert "# TYPE release_installs_total counter" in metrics.stdout
    assert json.loads(cli("gov", "proposals", "--json").stdout) == []


@pytest.mark.parametrize(
    ("mutate", "names"),
    [
        (lambda a: a[:3] + ["zz" + a[3][2:]] + a[4:], ["--signer", "not hexadecimal"]),
        (lambda a: a[:3] + [a[3][:-2]] + a[4:], ["--signer", "32 bytes"]),
        (lambda a: a[:1] + [a[1][:-2]] + a[2:], ["--signature", "64 bytes"]),
        (lambda a: a[:1] + ["0x" + a[1]] + a[2:], ["--signature", "0x"]),
    ],
    ids=["key-not-hex", "key-short", "signature-short", "signature-0x"],
)
def test_malformed_attestation_exit_2_store_unchanged(approved: Cli, mutate, names) -> None:
    before = digest(approved.db)
    other = blake3_hex(b"another build")
    args = mutate(attest_args(other, SIGNERS[:2]))
    proc = approved("gov", "propose-release", "--hash", other, *args, "--threshold", "2")
    assert proc.returncode == 2
    one_line_error(proc, *names)
    assert digest(approved.db) == before


@pytest.mark.parametrize("bad_hash", ["abc", "g" * 64, HASH + "00", "0x" + HASH[2:]])
def test_malformed_hash_exit_2_creates_no_store(cli: Cli, bad_hash: str) -> None:
    proc = cli("gov", "propose-release", "--hash", bad_hash, *attest_args(HASH, SIGNERS))
    assert proc.returncode == 2
    one_line_error(proc, "--hash")
    assert not cli.db.exists()


def test_signer_signature_count_mismatch(cli: Cli) -> None:
    args = attest_args(HASH, SIGNERS[:2])[:-2]  # drops the last --signer
    proc = cli("gov", "propose-release", "--hash", HASH, *args)
    assert proc.returncode == 2
    one_line_error(proc, "1 --signer", "2 --signature")
    assert not cli.db.exists()


def test_unknown_id_and_bad_flags(approved: Cli) -> None:
    before = digest(approved.db)
    unknown = approved("gov", "approve-release", "--id", "9")
    assert unknown.returncode == 2
    one_line_error(unknown, "9")
    for args in (
        ["gov", "approve-release", "--id", "one"],
        ["gov", "approve-release"],
        ["gov", "propose-release", "--hash", HASH, "--bogus"],
        ["gov", "vote", "--id", "1", "--choice", "maybe"],
        ["gov", "approve-release", "--id", "1", "--weight", "nan"],
        ["gov", "nonsense"],
    ):
        proc = approved(*args)
        assert proc.returncode == 2, args
        one_line_error(proc)
    assert digest(approved.db) == before


def test_unknown_id_on_missing_store_creates_nothing(cli: Cli) -> None:
    proc = cli("gov", "approve-release", "--id", "1")
    assert proc.returncode == 2
    one_line_error(proc, "id 1")
    for read_only in (["gov", "proposals"], ["gov", "metrics"], ["gov", "release-signers"]):
        assert cli(*read_only).returncode == 0
    assert not cli.db.exists()


def test_duplicate_hash_refused(approved: Cli) -> None:
    proc = approved("gov", "propose-release", "--hash", HASH, *attest_args(HASH, SIGNERS))
    assert proc.returncode == 1
    one_line_error(proc, "already")


def test_corrupt_and_foreign_store_files(cli: Cli) -> None:
    cli.db.write_bytes(os.urandom(4096))
    foreign = cli.cwd / "foreign.db"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT)")
    foreign_before = digest(foreign)
    for state in (str(cli.db), str(foreign)):
        for args in (["gov", "proposals"],
                     ["gov", "propose-release", "--hash", HASH, *attest_args(HASH, SIGNERS)]):
            proc = cli(*args, "--state", state)
            assert proc.returncode == 2, proc.stderr
            one_line_error(proc, "governance store")
    assert digest(foreign) == foreign_before


def test_release_signers_sources(cli: Cli) -> None:
    (cli.cwd / "config").mkdir()
    (cli.cwd / "config" / "release_signers.txt").write_text(
        f"# two signers\n{SIGNERS[0].public_key.upper()}\n\n{SIGNERS[1].public_key}, "
        f"{SIGNERS[0].public_key}\n"
    )
    from_file = cli("gov", "release-signers", "--json", env={"TB_RELEASE_SIGNERS": ""})
    assert json.loads(from_file.stdout) == {
        "signers": [SIGNERS[0].public_key, SIGNERS[1].public_key], "threshold": 2,
    }
    bad = cli("gov", "release-signers", env={"TB_RELEASE_SIGNERS": "abc"})
    assert bad.returncode == 2
    one_line_error(bad, "TB_RELEASE_SIGNERS", "token 1")


def test_concurrent_proposals_both_persisted(cli: Cli) -> None:
    hashes = [blake3_hex(f"build {i}".encode()) for i in range(2)]
    assert cli("gov", "proposals").returncode == 0
    procs = [
        cli.popen("gov", "propose-release", "--hash", h, *attest_args(h, SIGNERS), "--json")
        for h in hashes
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert "Traceback" not in err
    listed = json.loads(cli("gov", "proposals", "--json").stdout)
    assert sorted(p["hash"] for p in listed) == sorted(hashes)
    assert sorted(p["id"] for p in listed) == [1, 2]
    with sqlite3.connect(cli.db) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# -- fetch, install, boot check ----------------------------------------------------------------
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def release_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on 127.0.0.1 serving ``tmp_path/served``."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def served(approved: Cli, release_server: tuple[str, Path]) -> Cli:
    """``HASH`` approved, published on the HTTP server, and the source configured."""
    url, root = release_server
    (root / f"{HASH}.bin").write_bytes(ARTIFACT)
    approved.env["TB_RELEASE_SOURCE_URL"] = url
    approved.served_root = root  # type: ignore[attr-defined]
    return approved


def test_fetch_good_bytes_verified_against_approval(served: Cli) -> None:
    dest = served.cwd / "out" / "release.bin"
    proc = served("gov", "fetch-release", "--hash", HASH, "--dest", str(dest), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["hash"] == HASH
    assert "approved" in result["verified"]
    assert dest.read_bytes() == ARTIFACT


def test_fetch_default_dest_and_explicit_attestations(served: Cli) -> None:
    proc = served("gov", "fetch-release", "--hash", HASH, *attest_args(HASH, SIGNERS[:2]))
    assert proc.returncode == 0, proc.stderr
    assert (served.cwd / "downloads" / f"{HASH}.bin").read_bytes() == ARTIFACT
    short = served("gov", "fetch-release", "--hash", HASH, *attest_args(HASH, SIGNERS[:1]),
                   "--dest", str(served.cwd / "short.bin"))
    assert short.returncode == 1
    one_line_error(short)
    assert not (served.cwd / "short.bin").exists()


def test_fetch_unapproved_is_digest_only(served: Cli) -> None:
    other = b"an unapproved build"
    other_hash = blake3_hex(other)
    (served.served_root / f"{other_hash}.bin").write_bytes(other)  # type: ignore[attr-defined]
    proc = served("gov", "fetch-release", "--hash", other_hash, "--dest",
                  str(served.cwd / "o.bin"))
    assert proc.returncode == 0, proc.stderr
    assert "digest check only" in proc.stdout


def test_fetch_wrong_bytes_refused_nothing_written(served: Cli) -> None:
    (served.served_root / f"{HASH}.bin").write_bytes(ARTIFACT + b"x")  # type: ignore[attr-defined]
    dest = served.cwd / "dl" / "bad.bin"
    proc = served("gov", "fetch-release", "--hash", HASH, "--dest", str(dest))
    assert proc.returncode == 1
    one_line_error(proc)
    assert not dest.exists()


def test_fetch_404_and_missing_source(served: Cli) -> None:
    missing = blake3_hex(b"never published")
    dest = served.cwd / "missing.bin"
    proc = served("gov", "fetch-release", "--hash", missing, "--dest", str(dest))
    assert proc.returncode == 2
    one_line_error(proc, "404")
    assert not dest.exists()
    no_source = served("gov", "fetch-release", "--hash", HASH, "--dest", str(dest),
                       env={"TB_RELEASE_SOURCE_URL": ""})
    assert no_source.returncode == 2
    one_line_error(no_source, "TB_RELEASE_SOURCE_URL")
    assert not dest.exists()


def test_install_then_boot_check_and_rollback(served: Cli) -> None:
    binary = Path(served.env["TB_NODE_BINARY"])
    binary.parent.mkdir(parents=True)
    binary.write_bytes(b"old node v1")
    proc = served("gov", "fetch-release", "--hash", HASH, "--install", "--node-id", "n1")
    assert proc.returncode == 0, proc.stderr
    assert binary.read_bytes() == ARTIFACT
    assert "release_installs_total 1" in served("gov", "metrics").stdout
    boot = served("gov", "boot-check", "--node-id", "n1")
    assert boot.returncode == 0, boot.stderr
    assert "boot allowed" in boot.stdout

    previous = Path(served.env["TB_PREVIOUS_BINARY"])
    shutil.copyfile(binary, previous)
    binary.write_bytes(b"corrupted build")
    refused = served("gov", "boot-check", "--node-id", "n1")
    assert refused.returncode == 1
    one_line_error(refused, f"rolled back to {HASH}")
    assert binary.read_bytes() == ARTIFACT
    records = [json.loads(line) for line in
               Path(served.env["TB_ROLLBACK_AUDIT_LOG"]).read_text().splitlines()]
    assert len(records) == 1
    assert blake3_hex(b"corrupted build") in json.dumps(records[0])
    assert HASH in json.dumps(records[0])
    assert "release_installs_total 1" in served("gov", "metrics").stdout


def test_install_unapproved_refused(cli: Cli, release_server: tuple[str, Path]) -> None:
    url, root = release_server
    (root / f"{HASH}.bin").write_bytes(ARTIFACT)
    binary = Path(cli.env["TB_NODE_BINARY"])
    binary.parent.mkdir(parents=True)
    binary.write_bytes(b"old node v1")
    proc = cli("gov", "fetch-release", "--hash", HASH, "--install",
               "--dest", str(cli.cwd / "x.bin"), env={"TB_RELEASE_SOURCE_URL": url})
    assert proc.returncode == 1
    one_line_error(proc, HASH[:16])
    assert binary.read_bytes() == b"old node v1"
    assert not cli.db.exists()


def test_boot_check_unapproved_binary_rolls_back(cli: Cli) -> None:
    binary = Path(cli.env["TB_NODE_BINARY"])
    binary.parent.mkdir(parents=True)
    binary.write_bytes(b"unapproved build")
    Path(cli.env["TB_PREVIOUS_BINARY"]).write_bytes(b"known good build")
    proc = cli("gov", "boot-check", "--node-id", "n2")
    assert proc.returncode == 1
    one_line_error(proc, f"rolled back to {blake3_hex(b'known good build')}")
    assert binary.read_bytes() == b"known good build"
    audit = Path(cli.env["TB_ROLLBACK_AUDIT_LOG"]).read_text().splitlines()
    assert len(audit) == 1 and "n2" in audit[0]


@pytest.mark.parametrize(
    ("signers_env", "threshold"), [("", None), (None, "4")], ids=["no-signers", "threshold>set"]
)
def test_unusable_threshold_refused_without_creating_store(
    cli: Cli, signers_env: str | None, threshold: str | None
) -> None:
    env = {} if signers_env is None else {"TB_RELEASE_SIGNERS": signers_env}
    extra = [] if threshold is None else ["--threshold", threshold]
    proc = cli("gov", "propose-release", "--hash", HASH, *attest_args(HASH, SIGNERS), *extra,
               env=env)
    assert proc.returncode == 1
    one_line_error(proc, "refused")
    assert not cli.db.exists()
