"""The SQLite governance store: schema stamp, reopening, unusable files, installs, counters,
two processes at once, backup."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from pathlib import Path

import pytest

from releasesim.model.errors import StoreError
from releasesim.model.quorum import Attestation
from releasesim.model.store import APPLICATION_ID, SCHEMA_VERSION, GovernanceStore

H1 = "ab" * 32
H2 = "cd" * 32


def _sql(path: Path, *statements: str) -> object:
    """Run statements on a plain sqlite3 connection (committed, closed); the last row's value."""
    with closing(sqlite3.connect(path)) as db:
        value = None
        for statement in statements:
            row = db.execute(statement).fetchone()
            value = None if row is None else row[0]
        db.commit()
        return value


def _pragma(path: Path, name: str) -> object:
    return _sql(path, f"PRAGMA {name}")


def _fill(store: GovernanceStore) -> int:
    proposal_id = store.insert_proposal(
        build_hash=H1, proposer="alice", threshold=1, signer_set=("11" * 32,),
        attestations=(Attestation("11" * 32, "22" * 64),), created_epoch=3, deadline_epoch=5,
        vote_quorum=1.0,
    )
    store.record_install(H1, "node-1", 100.0)
    store.increment("release_votes_total", choice="yes")
    return proposal_id


def test_file_store_is_stamped_with_schema_version_and_application_id(tmp_path):
    path = tmp_path / "gov.db"
    GovernanceStore.open(path).close()
    assert _pragma(path, "user_version") == SCHEMA_VERSION
    assert _pragma(path, "application_id") == APPLICATION_ID
    assert _pragma(path, "journal_mode") == "wal"


def test_reopening_a_file_store_keeps_its_data(tmp_path):
    path = tmp_path / "gov.db"
    with GovernanceStore.open(path) as store:
        proposal_id = _fill(store)
        proposals = store.proposals()
    with GovernanceStore.open(path, create=False) as again:
        assert again.proposals() == proposals
        assert again.get_proposal(proposal_id).attestations == (
            Attestation("11" * 32, "22" * 64),
        )
        assert [(i.build_hash, i.node_id, i.ts) for i in again.installs()] == [
            (H1, "node-1", 100.0)
        ]
        assert again.counter("release_installs_total") == 1
        assert again.counter("release_votes_total", choice="yes") == 1


def test_memory_stores_are_independent():
    with GovernanceStore.memory() as a, GovernanceStore.memory() as b:
        _fill(a)
        assert a.proposals() and not b.proposals()
        assert b.counters() == []


def _corrupt(path: Path) -> None:
    path.write_bytes(bytes((i * 197 + 11) % 256 for i in range(8192)))


def _foreign(path: Path) -> None:
    _sql(path, "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)",
         "INSERT INTO customers (name) VALUES ('x')")


def _newer(path: Path) -> None:
    GovernanceStore.open(path).close()
    _sql(path, f"PRAGMA user_version={SCHEMA_VERSION + 1}")


def _damaged(path: Path) -> None:
    GovernanceStore.open(path).close()
    _sql(path, "DROP TABLE votes")


def _sqlite_header_garbage(path: Path) -> None:
    path.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 16)


@pytest.mark.parametrize(
    ("prepare", "fragment"),
    [
        (_corrupt, "not a usable SQLite governance store"),
        (_sqlite_header_garbage, "governance store"),
        (_foreign, "foreign"),
        (_newer, f"schema version {SCHEMA_VERSION + 1} is newer"),
        (_damaged, "missing tables: votes"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: None, "does not exist"),  # with create=False
    ],
    ids=["random-bytes", "bad-header", "foreign", "newer-schema", "damaged", "directory",
         "missing-no-create"],
)
def test_unusable_files_give_a_one_line_store_error(tmp_path, prepare, fragment):
    path = tmp_path / "gov.db"
    prepare(path)
    before = path.read_bytes() if path.is_file() else None
    with pytest.raises(StoreError) as info:
        GovernanceStore.open(path, create=False)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    assert fragment in message
    assert info.value.exit_code == 2
    if before is not None:
        assert path.read_bytes() == before, "a refused file was modified"


def test_missing_parent_folder(tmp_path):
    path = tmp_path / "no" / "such" / "folder" / "gov.db"
    with pytest.raises(StoreError) as info:
        GovernanceStore.open(path)
    assert str(path) in str(info.value) and "does not exist" in str(info.value)
    assert not path.parent.exists()


def test_empty_file_is_initialised(tmp_path):
    path = tmp_path / "gov.db"
    path.touch()
    GovernanceStore.open(path).close()
    assert _pragma(path, "application_id") == APPLICATION_ID


@pytest.mark.parametrize(
    ("calls", "recorded"),
    [
        ([(H1, 10.0), (H1, 5.0), (H1, 12.0), (H1, 11.0)], [10.0, 10.0, 12.0, 12.0]),
        ([(H1, 10.0), (H2, 3.0), (H1, 4.0), (H2, 2.0), (H2, 8.0)], [10.0, 3.0, 10.0, 3.0, 8.0]),
        ([(H1, 7.5), (H1, 7.5)], [7.5, 7.5]),
    ],
    ids=["clamped-within-release", "not-clamped-across-releases", "equal-times"],
)
def test_install_times_never_go_backwards_per_release(store, calls, recorded):
    returned = [store.record_install(h, f"n{i}", ts) for i, (h, ts) in enumerate(calls)]
    assert returned == recorded
    assert [r.ts for r in store.installs()] == recorded
    for build_hash in (H1, H2):
        times = [r.ts for r in store.installs(build_hash)]
        assert times == sorted(times)
    assert store.counter("release_installs_total") == len(calls)


def test_counters(store):
    assert store.counter("x_total") == 0
    store.increment("x_total")
    store.increment("x_total", by=2.5)
    store.increment("votes", choice="no")
    store.increment("votes", choice="yes")
    store.increment("votes", choice="yes")
    store.increment("multi", b="2", a="1")
    assert store.counter("x_total") == 3.5
    assert store.counter("votes", choice="yes") == 2
    assert store.counter("votes", choice="no") == 1
    assert store.counter("votes") == 0
    assert store.counter("multi", a="1", b="2") == 1
    assert store.counters() == [
        ("multi", 'a="1",b="2"', 1.0),
        ("votes", 'choice="no"', 1.0),
        ("votes", 'choice="yes"', 2.0),
        ("x_total", "", 3.5),
    ]


def test_a_failed_transaction_leaves_nothing(store):
    store.increment("kept_total")
    with pytest.raises(RuntimeError), store.transaction():
        store.record_install(H1, "n", 1.0)
        store.increment("lost_total")
        raise RuntimeError("boom")
    assert store.installs() == []
    assert store.counters() == [("kept_total", "", 1.0)]
    store.record_install(H1, "n", 2.0)  # the store is usable afterwards
    assert store.counter("release_installs_total") == 1


_WORKER = textwrap.dedent(
    """
    import sys
    from releasesim.model.store import GovernanceStore
    path, who = sys.argv[1], sys.argv[2]
    sys.stdin.readline()  # start gate: both workers begin together
    with GovernanceStore.open(path) as store:
        for i in range(200):
            store.record_install(("ab" if i % 2 else "cd") * 32, f"{who}-{i}", float(i))
            store.increment("concurrency_total", worker="all")
    print("done", who)
    """
)


def test_two_processes_at_once_lose_nothing(tmp_path):
    path = tmp_path / "shared.db"  # both workers race to create it, too
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(path), who],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env,
        )
        for who in ("w1", "w2")
    ]
    for worker in workers:
        worker.stdin.write("go\n")
        worker.stdin.flush()
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        assert out.startswith("done")
    with GovernanceStore.open(path, create=False) as store:
        installs = store.installs()
        assert len(installs) == 400
        assert {r.node_id for r in installs} == {f"w{w}-{i}" for w in (1, 2) for i in range(200)}
        assert store.counter("release_installs_total") == 400
        assert store.counter("concurrency_total", worker="all") == 400
        for build_hash in (H1, H2):
            times = [r.ts for r in store.installs(build_hash)]
            assert times == sorted(times)
    assert _pragma(path, "integrity_check") == "ok"


@pytest.mark.parametrize("source", ["memory", "file"])
def test_backup_produces_an_openable_store(tmp_path, source):
    original = (
        GovernanceStore.memory() if source == "memory"
        else GovernanceStore.open(tmp_path / "original.db")
    )
    with original:
        _fill(original)
        target = tmp_path / "backup.db"
        original.backup_to(target)
        expected = (original.proposals(), original.installs(), original.counters())
    with GovernanceStore.open(target, create=False) as copy:
        assert (copy.proposals(), copy.installs(), copy.counters()) == expected
