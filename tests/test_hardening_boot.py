"""Issue 12, items 2 and 3: the boot check verifies the recorded approval and never touches
the binary when its audit record cannot be written; item 4: ``--dest newdir/`` is a folder;
item 5: crash leftovers (kill -9 during an install) are cleaned up, and an install a crash
left unrecorded is recorded exactly once by the next boot check or install, while the boot
check stays a reader whenever there is nothing to reconcile.

Real parts only: SQLite store files (a tampered approval is written straight into the file
with ``sqlite3``, as an attacker with write access to the store would), ``FileSlot`` on
``tmp_path``, the ``releasesim`` console script in subprocesses, and real failing writes
(``/dev/full``, and ``RLIMIT_FSIZE`` set in the child process so the kernel refuses to let
the audit log grow: ``EFBIG``, Python ignores ``SIGXFSZ``). Crashes are real: installer
processes are SIGKILLed (seeded kill times); another writer holding the store's
``BEGIN IMMEDIATE`` lock pins an installer between its binary swap and its record, and proves
that a boot check without anything to reconcile never waits for the lock. Releases are
served from a ``file://`` source folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest

from releasesim.cli.main import main
from releasesim.model import quorum
from releasesim.model.crypto import ReleaseSigner, build_hash_of
from releasesim.model.errors import QuorumError
from releasesim.model.governance import approve_release, propose_release
from releasesim.model.quorum import Attestation
from releasesim.model.slot import FileAuditLog, FileSlot, MemoryAuditLog, MemorySlot
from releasesim.model.store import GovernanceStore
from releasesim.model.update import DownloadedRelease, boot_check, install_release

RELEASESIM = str(Path(sys.executable).parent / "releasesim")
SIGNERS = [ReleaseSigner.derived(f"hardening-boot-{i}") for i in range(3)]
OUTSIDER = ReleaseSigner.derived("hardening-boot-outsider")
V1 = b"the-block v1 (hardening)\n" * 20
EVIL = b"the-block v2 with a backdoor (hardening)\n" * 20
INSTALLS = "release_installs_total"


def attest(signers: list[ReleaseSigner], data: bytes) -> list[Attestation]:
    build_hash = build_hash_of(data)
    return [Attestation(s.public_key, s.attest(build_hash)) for s in signers]


def approve(store: GovernanceStore, data: bytes, threshold: int = 2) -> str:
    build_hash = build_hash_of(data)
    proposal = propose_release(
        store,
        build_hash=build_hash,
        attestations=attest(SIGNERS, data),
        signer_set=tuple(s.public_key for s in SIGNERS),
        threshold=threshold,
        proposer="0xabc",
        epoch=0,
    )
    assert approve_release(store, proposal.id, voter="v1", epoch=0).status == "activated"
    return build_hash


def write_approval_row(
    db_path: Path,
    build_hash: str,
    *,
    signer_set: list[str],
    threshold: int,
    attestations: list[dict[str, str]],
) -> None:
    """An ``approved_releases`` row written straight into the file, bypassing governance."""
    with closing(sqlite3.connect(db_path)) as db, db:
        db.execute(
            "INSERT INTO approved_releases (build_hash, proposal_id, proposer, activated_epoch,"
            " threshold, signer_set, attestations) VALUES (?, 99, 'mallory', 0, ?, ?, ?)",
            (build_hash, threshold, json.dumps(signer_set), json.dumps(attestations)),
        )


def _as_dicts(attestations: list[Attestation]) -> list[dict[str, str]]:
    return [a.to_dict() for a in attestations]


KEYS = [s.public_key for s in SIGNERS]
EVIL_HASH = build_hash_of(EVIL)
# Each forged row: (signer_set, threshold, attestations). None of them meets the quorum rule.
FORGED_ROWS: dict[str, Callable[[], tuple[list[str], int, list[dict[str, str]]]]] = {
    "no attestations": lambda: (KEYS, 2, []),
    "fewer valid than the threshold": lambda: (KEYS, 3, _as_dicts(attest(SIGNERS[:2], EVIL))),
    "untrusted signer": lambda: (KEYS, 1, _as_dicts(attest([OUTSIDER], EVIL))),
    "signatures over another build": lambda: (KEYS, 2, _as_dicts(attest(SIGNERS, V1))),
    "one key counted twice": lambda: (
        KEYS,
        2,
        _as_dicts(attest(SIGNERS[:1], EVIL))
        + [{"signer": KEYS[0].upper(), "signature": SIGNERS[0].attest(EVIL_HASH)}],
    ),
    "empty signer set": lambda: ([], 1, _as_dicts(attest(SIGNERS, EVIL))),
    "threshold zero": lambda: (KEYS, 0, []),
}


@pytest.fixture
def store_file(tmp_path: Path) -> Path:
    """A real store file in which V1 went through governance (threshold 2)."""
    path = tmp_path / "gov.db"
    with GovernanceStore.open(path) as store:
        approve(store, V1)
    return path


# -- item 3: the boot check verifies the recorded approval -----------------------------------
@pytest.mark.parametrize("forgery", list(FORGED_ROWS))
def test_boot_check_refuses_a_forged_approval_row(
    store_file: Path, tmp_path: Path, forgery: str
) -> None:
    signer_set, threshold, attestations = FORGED_ROWS[forgery]()
    write_approval_row(
        store_file, EVIL_HASH, signer_set=signer_set, threshold=threshold,
        attestations=attestations,
    )
    slot = FileSlot(tmp_path / "node" / "the-block", tmp_path / "node" / "the-block.previous")
    audit_path = tmp_path / "node" / "audit.jsonl"
    with GovernanceStore.open(store_file) as store:
        assert store.get_approved(EVIL_HASH) is not None  # the row is there ...
        install_release(store, slot, DownloadedRelease(build_hash_of(V1), None, V1),
                        node_id="n1", now=1.0)
        # ... but install refuses it, whatever path the bytes came from
        with pytest.raises(QuorumError, match="quorum"):
            install_release(store, slot, DownloadedRelease(EVIL_HASH, None, EVIL),
                            node_id="n1", now=2.0)
        assert slot.current() == V1 and store.counter(INSTALLS) == 1
        slot.install(EVIL)  # planted in the live path by hand
        result = boot_check(store, slot, node_id="n1", now=3.0, audit=FileAuditLog(audit_path))
        assert not result.ok and result.build_hash == EVIL_HASH
        assert result.reason is not None and "quorum" in result.reason
        assert slot.current() == V1
        (record,) = [json.loads(line) for line in audit_path.read_text().splitlines()]
        assert record["rolled_back_hash"] == EVIL_HASH
        assert record["restored_hash"] == build_hash_of(V1)
        assert store.counter(INSTALLS) == 1


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None,
            preexec_fn: Callable[[], None] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TB_")}
    proc = subprocess.run(
        [RELEASESIM, *args], cwd=cwd, env={**base, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})},
        capture_output=True, text=True, timeout=timeout, preexec_fn=preexec_fn,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_cli_boot_check_and_install_agree_on_a_row_without_attestations(
    store_file: Path, tmp_path: Path
) -> None:
    """The reproduction: the row gets ``boot allowed`` today while install refuses it."""
    write_approval_row(store_file, EVIL_HASH, signer_set=KEYS, threshold=2, attestations=[])
    node = tmp_path / "node"
    node.mkdir()
    (node / "the-block").write_bytes(EVIL)
    (node / "the-block.previous").write_bytes(V1)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / f"{EVIL_HASH}.bin").write_bytes(EVIL)
    common = ["--state", str(store_file), "--binary", str(node / "the-block")]

    install = run_cli("gov", "fetch-release", "--hash", EVIL_HASH, "--install", *common,
                      "--node-id", "n1", "--dest", str(tmp_path / "dl" / "evil.bin"),
                      cwd=tmp_path, env={"TB_RELEASE_SOURCE_URL": mirror.as_uri()})
    assert install.returncode == 1 and "quorum" in one_line(install)

    boot = run_cli("gov", "boot-check", *common, "--node-id", "n1",
                   "--audit-log", str(node / "audit.jsonl"), cwd=tmp_path)
    assert boot.returncode == 1, boot.stdout + boot.stderr
    assert f"rolled back to {build_hash_of(V1)}" in one_line(boot)
    assert (node / "the-block").read_bytes() == V1
    (record,) = (node / "audit.jsonl").read_text().splitlines()
    assert json.loads(record)["rolled_back_hash"] == EVIL_HASH


def test_the_verification_is_memoised_across_boot_checks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A simulated fleet boot-checks the same approval thousands of times: each signature is
    verified at most once (the real verifier runs; it is only counted)."""
    signers = [ReleaseSigner.derived(f"memo-{i}") for i in range(5)]
    keys = [s.public_key for s in signers]
    data = b"memoised build\n" * 10
    build_hash = build_hash_of(data)
    genuine = [Attestation(s.public_key, s.attest(build_hash)) for s in signers]
    path = tmp_path / "gov.db"
    with GovernanceStore.open(path) as store:
        proposal = propose_release(store, build_hash=build_hash, attestations=genuine,
                                   signer_set=tuple(keys), proposer="p", epoch=0)
        approve_release(store, proposal.id, voter="v", epoch=0)
    # a forged row for another build, carrying the genuine build's attestations
    forged = b"forged build\n" * 10
    write_approval_row(path, build_hash_of(forged), signer_set=keys, threshold=5,
                       attestations=_as_dicts(genuine))
    calls: list[str] = []
    real = quorum.verify_release

    def counting(key: str, h: str, signature: str) -> bool:
        calls.append(key)
        return real(key, h, signature)

    monkeypatch.setattr(quorum, "verify_release", counting)
    with GovernanceStore.open(path) as store:
        slot, audit = MemorySlot(data), MemoryAuditLog()
        for node in range(2000):
            assert boot_check(store, slot, node_id=f"n{node}", now=1.0, audit=audit).ok
        assert len(calls) <= len(signers)
        # the forged row is not served from the memo of the genuine one
        result = boot_check(store, MemorySlot(forged, data), node_id="n", now=2.0, audit=audit)
        assert not result.ok and result.reason is not None and "quorum" in result.reason
        assert len(calls) > 0


# -- item 2: an audit log that cannot be written refuses before the binary is touched -------
@pytest.fixture
def unapproved_node(store_file: Path, tmp_path: Path) -> tuple[Path, list[str]]:
    """A node whose live binary is unapproved (a rollback is due) and whose backup is V1."""
    node = tmp_path / "node"
    node.mkdir()
    (node / "the-block").write_bytes(EVIL)
    (node / "the-block.previous").write_bytes(V1)
    args = ["gov", "boot-check", "--state", str(store_file), "--binary", str(node / "the-block"),
            "--node-id", "n1"]
    return node, args


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_audit_log_on_a_full_device_refuses_before_touching_the_binary(
    unapproved_node: tuple[Path, list[str]], tmp_path: Path
) -> None:
    node, args = unapproved_node
    before = _snapshot(node)
    proc = run_cli(*args, "--audit-log", "/dev/full", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = one_line(proc)
    assert "/dev/full" in line and "audit log" in line
    assert _snapshot(node) == before  # binary and backup untouched


def _file_size_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.parametrize("room", [0, 20], ids=["no-room", "room-for-part-of-a-line"])
def test_audit_log_that_cannot_grow_refuses_before_touching_the_binary(
    unapproved_node: tuple[Path, list[str]], tmp_path: Path, room: int
) -> None:
    """A full disk for the audit log: the kernel lets it grow by ``room`` bytes only. The
    binary (1 KB) could still be restored; the record (~300 bytes) cannot be written whole,
    so nothing may change: not the binary, not the log (no partial line)."""
    node, args = unapproved_node
    audit = node / "audit.jsonl"
    earlier = {"time": 0.0, "node": "n0", "rolled_back_hash": None,
               "restored_hash": "0" * 64, "reason": "earlier"}
    audit.write_text((json.dumps(earlier) + "\n") * 400)  # ~60 KB, more than the store's -shm
    limit = audit.stat().st_size + room
    assert len(EVIL) < limit and len(V1) < limit
    before = _snapshot(node)
    proc = run_cli(*args, "--audit-log", str(audit), cwd=tmp_path,
                   preexec_fn=_file_size_limit(limit))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "audit log" in one_line(proc)
    assert _snapshot(node) == before
    # without the limit the same command rolls back and records it
    proc = run_cli(*args, "--audit-log", str(audit), cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert (node / "the-block").read_bytes() == V1
    last = json.loads(audit.read_text().splitlines()[-1])
    assert last["rolled_back_hash"] == EVIL_HASH and last["node"] == "n1"


def test_a_restore_that_fails_after_the_record_was_written_retracts_it(
    unapproved_node: tuple[Path, list[str]], store_file: Path, tmp_path: Path
) -> None:
    """The record is written first; when the binary then cannot be restored (here: the
    backup is larger than the file size limit, so its copy fails), the record is taken
    back: the log holds no rollback that did not happen."""
    node, args = unapproved_node
    big = b"a large known-good build\n" * 4000  # ~100 KB
    with GovernanceStore.open(store_file) as store:
        approve(store, big)
    (node / "the-block.previous").write_bytes(big)
    audit = node / "audit.jsonl"
    audit.write_bytes(b"")
    before = _snapshot(node)
    proc = run_cli(*args, "--audit-log", str(audit), cwd=tmp_path,
                   preexec_fn=_file_size_limit(80_000))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "binary" in one_line(proc)
    assert _snapshot(node) == before


# -- item 5: crash leftovers are cleaned up and an interrupted install is recorded once -------
V2 = b"the-block v2 (hardening, approved)\n" * 40
V2_HASH = build_hash_of(V2)
TEMP_MARK = ".releasesim-"


@pytest.fixture
def mirror(store_file: Path, tmp_path: Path) -> Path:
    """V2 approved next to V1 and published in a ``file://`` release source."""
    with GovernanceStore.open(store_file) as store:
        approve(store, V2)
    folder = tmp_path / "mirror"
    folder.mkdir()
    (folder / f"{V2_HASH}.bin").write_bytes(V2)
    return folder


def installs(store_file: Path, build_hash: str, node_id: str) -> int:
    with GovernanceStore.open_readonly(store_file) as store:
        return sum(1 for r in store.installs(build_hash) if r.node_id == node_id)


def temporaries(*folders: Path) -> list[str]:
    return sorted(p.name for f in folders if f.is_dir() for p in f.iterdir()
                  if TEMP_MARK in p.name and p.name.endswith(".tmp"))


def new_node(tmp_path: Path, name: str) -> Path:
    """A node folder whose live binary is V1 (no backup yet); returns the binary."""
    node = tmp_path / name
    node.mkdir()
    (node / "the-block").write_bytes(V1)
    return node / "the-block"


def install_argv(store_file: Path, binary: Path, node_id: str, dest: Path) -> list[str]:
    return ["gov", "fetch-release", "--hash", V2_HASH, "--install", "--state", str(store_file),
            "--binary", str(binary), "--node-id", node_id, "--dest", f"{dest}/"]


def boot_argv(store_file: Path, binary: Path, node_id: str) -> list[str]:
    return ["gov", "boot-check", "--state", str(store_file), "--binary", str(binary),
            "--node-id", node_id, "--audit-log", str(binary.parent / "audit.jsonl")]


def start_cli(argv: list[str], cwd: Path, mirror: Path) -> subprocess.Popen[bytes]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TB_")}
    env = {**base, "PYTHONDONTWRITEBYTECODE": "1", "TB_RELEASE_SOURCE_URL": mirror.as_uri()}
    return subprocess.Popen([RELEASESIM, *argv], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@contextlib.contextmanager
def write_lock(store_file: Path) -> Iterator[None]:
    """Another writer holding the store's write lock (``BEGIN IMMEDIATE``) meanwhile."""
    with closing(sqlite3.connect(store_file, isolation_level=None)) as db:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            db.execute("ROLLBACK")


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        if proc.poll() is not None:
            stderr = proc.stderr.read() if proc.stderr else b""
            raise AssertionError(f"exited {proc.returncode} before {what}: {stderr!r}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.002)


def test_a_crash_between_the_swap_and_the_record_is_recorded_once_by_boot_check(
    mirror: Path, store_file: Path, tmp_path: Path
) -> None:
    """The reproduction: a real ``fetch-release --install`` is killed (SIGKILL) after the
    new binary is in place but before its install is recorded. A concurrent writer holding
    the store's write lock keeps the installer inside that window, so the kill lands there
    every time. The next boot check records the install exactly once (before the fix it
    opened the store read-only and failed), and a second boot check records nothing."""
    binary = new_node(tmp_path, "node")
    intent = binary.parent / "the-block.install-pending"
    with write_lock(store_file):
        proc = start_cli(install_argv(store_file, binary, "n1", tmp_path / "dl"), tmp_path,
                         mirror)
        try:
            wait_for(lambda: binary.read_bytes() == V2, proc, "the binary swap")
            assert intent.exists()
        finally:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert (binary.parent / "the-block.previous").read_bytes() == V1
    assert installs(store_file, V2_HASH, "n1") == 0  # the crash left it unrecorded

    for _ in range(2):
        boot = run_cli(*boot_argv(store_file, binary, "n1"), cwd=tmp_path)
        assert boot.returncode == 0, boot.stderr
        assert f"approved build {V2_HASH}" in boot.stdout
        assert installs(store_file, V2_HASH, "n1") == 1
        assert not intent.exists() and temporaries(binary.parent) == []
    with GovernanceStore.open_readonly(store_file) as store:
        assert store.counter(INSTALLS) == 1


def dead_pid() -> int:
    """The id of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def plant_leftovers(binary: Path, pid: int, *, node_id: str = "n1") -> list[Path]:
    """What a crashed installer ``pid`` leaves: its journal, and a temp file next to the
    binary, the backup and the journal. Returns the temp files."""
    journal = binary.parent / "the-block.install-pending"
    journal.write_text(json.dumps({"build_hash": V2_HASH, "node_id": node_id, "ts": 5.0,
                                   "recorded_before": 0, "pid": pid}))
    temps = [binary.parent / f".{name}.releasesim-{pid}-0123abcd.tmp"
             for name in ("the-block", "the-block.previous", journal.name)]
    for temp in temps:
        temp.write_bytes(V2[:100])
    return temps


def test_boot_check_reconciles_a_simulated_crash_state(
    mirror: Path, store_file: Path, tmp_path: Path
) -> None:
    """The crash state written directly: the journal of a dead installer, the new binary
    in place, no record, stale temp files of the dead pid, and a temp file of a writer that
    is still running (kept)."""
    binary = new_node(tmp_path, "node")
    binary.write_bytes(V2)
    (binary.parent / "the-block.previous").write_bytes(V1)
    stale = plant_leftovers(binary, dead_pid())
    with subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                          stdin=subprocess.PIPE) as live:
        live_temp = binary.parent / f".the-block.releasesim-{live.pid}-89abcdef.tmp"
        live_temp.write_bytes(b"being written")
        boot = run_cli(*boot_argv(store_file, binary, "n1"), cwd=tmp_path)
        live.communicate(b"")
    assert boot.returncode == 0, boot.stderr
    assert installs(store_file, V2_HASH, "n1") == 1
    with GovernanceStore.open_readonly(store_file) as store:
        (record,) = store.installs(V2_HASH)
        assert record.ts == 5.0  # the journalled time
    assert not any(p.exists() for p in stale)
    assert temporaries(binary.parent) == [live_temp.name]
    assert not (binary.parent / "the-block.install-pending").exists()


def test_an_install_under_way_in_a_running_process_is_not_a_leftover(
    mirror: Path, store_file: Path, tmp_path: Path
) -> None:
    """A journal whose writer still runs is another install in progress: the boot check
    neither records it nor drops it, and stays a reader (it runs while a writer holds the
    store's lock)."""
    binary = new_node(tmp_path, "node")
    binary.write_bytes(V2)
    with subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                          stdin=subprocess.PIPE) as live:
        temps = plant_leftovers(binary, live.pid)
        with write_lock(store_file):
            boot = run_cli(*boot_argv(store_file, binary, "n1"), cwd=tmp_path, timeout=10)
        live.communicate(b"")
    assert boot.returncode == 0, boot.stderr
    assert installs(store_file, V2_HASH, "n1") == 0
    assert (binary.parent / "the-block.install-pending").exists()
    assert all(p.exists() for p in temps)


def test_boot_check_without_a_journal_never_opens_the_store_for_writing(
    store_file: Path, tmp_path: Path
) -> None:
    """Another process holds the write lock (``BEGIN IMMEDIATE``); a writer would wait 30 s
    for it and then fail "busy or locked". The boot check (allowed, or rolling back) is a
    reader, so it finishes well inside the 10 s the run is given, and the store is
    unchanged."""
    binary = new_node(tmp_path, "node")
    before = store_file.read_bytes()
    with write_lock(store_file):
        boot = run_cli(*boot_argv(store_file, binary, "n1"), cwd=tmp_path, timeout=10)
        assert boot.returncode == 0, boot.stderr
        binary.write_bytes(EVIL)
        (binary.parent / "the-block.previous").write_bytes(V1)
        boot = run_cli(*boot_argv(store_file, binary, "n1"), cwd=tmp_path, timeout=10)
        assert boot.returncode == 1 and "rolled back" in one_line(boot)
    assert binary.read_bytes() == V1
    assert store_file.read_bytes() == before


# -- item 4: "--dest newdir/" means a folder -------------------------------------------------
def fetch(*args: str, mirror: Path, cwd: Path,
          preexec_fn: Callable[[], None] | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli("gov", "fetch-release", *args, cwd=cwd, preexec_fn=preexec_fn,
                   env={"TB_RELEASE_SOURCE_URL": mirror.as_uri()})


@pytest.mark.parametrize("dest", ["newdir/", "have/", "deep/er/", "newdir/.", "{abs}/abs/"])
def test_dest_with_a_trailing_slash_is_a_folder(
    mirror: Path, store_file: Path, tmp_path: Path, dest: str
) -> None:
    """The artifact is saved as ``<folder>/<hash>.bin``; a missing folder is created (once
    the artifact verified), an existing one is used; no file takes the folder's name."""
    work = tmp_path / "work"
    (work / "have").mkdir(parents=True)
    dest = dest.format(abs=tmp_path)
    proc = fetch("--hash", V2_HASH, "--state", str(store_file), "--dest", dest, "--json",
                 mirror=mirror, cwd=work)
    assert proc.returncode == 0, proc.stderr
    folder = work / dest
    saved = folder / f"{V2_HASH}.bin"
    assert json.loads(proc.stdout)["path"] == str(Path(dest) / f"{V2_HASH}.bin")
    assert folder.is_dir() and saved.read_bytes() == V2
    assert sorted(p.name for p in folder.iterdir()) == [saved.name]


def test_dest_folder_is_not_created_when_the_command_fails(
    mirror: Path, store_file: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "afile").write_bytes(b"a file, not a folder")
    state = ["--state", str(store_file)]
    # not published (exit 2), and published with the wrong bytes (exit 1)
    missing = fetch("--hash", build_hash_of(b"never published"), *state, "--dest", "new/sub/",
                    mirror=mirror, cwd=work)
    assert missing.returncode == 2 and build_hash_of(b"never published") in one_line(missing)
    (mirror / f"{EVIL_HASH}.bin").write_bytes(V2)
    wrong = fetch("--hash", EVIL_HASH, *state, "--dest", "new/sub/", mirror=mirror, cwd=work)
    assert wrong.returncode == 1 and "digest" in one_line(wrong)
    # an existing folder without the slash, and a folder that is a file: refused up front
    plain = fetch("--hash", V2_HASH, *state, "--dest", str(tmp_path),
                  mirror=mirror, cwd=work)
    assert plain.returncode == 2
    assert "is a directory (end --dest with / to save" in one_line(plain)
    under = fetch("--hash", V2_HASH, *state, "--dest", "afile/", mirror=mirror, cwd=work)
    assert under.returncode == 2 and "afile is not a folder" in one_line(under)
    assert sorted(p.name for p in work.iterdir()) == ["afile"]


def test_dest_folder_created_for_a_failed_install_is_removed(
    mirror: Path, store_file: Path, tmp_path: Path
) -> None:
    """The download succeeds into ``new/sub/``, then the install fails (the kernel's file
    size limit stops the copy of the large current binary to the backup): the download
    and the folders the command created are removed, the node is unchanged."""
    work = tmp_path / "work"
    work.mkdir()
    binary = work / "node" / "the-block"
    binary.parent.mkdir()
    binary.write_bytes(b"a large current build\n" * 4000)  # ~90 KB
    before = _snapshot(binary.parent)
    proc = fetch("--hash", V2_HASH, "--state", str(store_file), "--install", "--binary",
                 str(binary), "--node-id", "n1", "--dest", "new/sub/", mirror=mirror, cwd=work,
                 preexec_fn=_file_size_limit(60_000))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "previous binary" in one_line(proc)
    assert sorted(p.name for p in work.iterdir()) == ["node"]
    assert _snapshot(binary.parent) == before
    assert installs(store_file, V2_HASH, "n1") == 0


# -- item 5: the kill -9 harness -------------------------------------------------------------
KILL_SEED = 20240512
KILL_TRIALS = 24


def _state_after_kill(binary: Path, store_file: Path, node_id: str) -> str:
    """Where the kill landed, read from what it left (before any recovery)."""
    data = binary.read_bytes()
    assert data in (V1, V2), "the binary is neither exactly the old nor the new build"
    journal = (binary.parent / "the-block.install-pending").exists()
    if data == V1:
        return "old, journalled" if journal else "old"
    recorded = installs(store_file, V2_HASH, node_id)
    assert recorded <= 1
    if not journal:
        assert recorded == 1, "the new build is in place, unrecorded and not journalled"
        return "new, done"
    return "new, recorded, journal left" if recorded else "new, UNRECORDED (the window)"


def test_kill_9_at_random_points_of_an_install_leaves_old_or_new_and_recovers(
    mirror: Path, store_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Real ``fetch-release --install`` processes are SIGKILLed at seeded random points:
    half at any moment of their life, half at a moment after their install journal
    appeared (where the binary swap and the record happen). After each kill the binary is
    exactly the old or the new build; the next command on the node (a boot check, or
    another install into the same ``--dest``, run in this process) leaves no stale temp
    file next to the binary, backup or journal (nor at ``--dest`` after an install), no
    journal, and the new build, when in place, recorded exactly once."""
    rng = random.Random(KILL_SEED)
    for name in [n for n in os.environ if n.startswith("TB_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TB_RELEASE_SOURCE_URL", mirror.as_uri())
    # the whole life of one uncut install, to draw kill times from
    binary = new_node(tmp_path, "calibration")
    started = time.monotonic()
    full = start_cli(install_argv(store_file, binary, "calibration", tmp_path / "dl-c"),
                     tmp_path, mirror)
    assert full.wait(timeout=60) == 0, full.stderr.read() if full.stderr else ""
    life = time.monotonic() - started
    assert binary.read_bytes() == V2 and installs(store_file, V2_HASH, "calibration") == 1

    landed: dict[str, int] = {}
    for trial in range(KILL_TRIALS):
        node_id = f"n{trial}"
        binary = new_node(tmp_path, f"node{trial}")
        dest = tmp_path / f"dl{trial}"
        journal = binary.parent / "the-block.install-pending"
        proc = start_cli(install_argv(store_file, binary, node_id, dest), tmp_path, mirror)
        try:
            if trial % 2:
                deadline = time.monotonic() + 20
                while not journal.exists() and proc.poll() is None:
                    assert time.monotonic() < deadline
                    time.sleep(0.001)  # leave the other core to the installer
                time.sleep(rng.uniform(0, 0.03))
            else:
                time.sleep(rng.uniform(0, life * 1.1))
        finally:
            proc.kill()
            proc.wait()
        state = _state_after_kill(binary, store_file, node_id)
        landed[state] = landed.get(state, 0) + 1
        swapped = binary.read_bytes() == V2
        left = len(temporaries(binary.parent, dest))
        landed["temp files left by the kill"] = landed.get("temp files left by the kill", 0) + (
            left > 0)

        if trial % 3 == 2:  # the next command is another install into the same --dest
            assert main(install_argv(store_file, binary, node_id, dest)) == 0
            assert binary.read_bytes() == V2
            assert installs(store_file, V2_HASH, node_id) == 1 + swapped
            assert temporaries(binary.parent, dest) == []
        else:  # the next command is a boot check
            assert main(boot_argv(store_file, binary, node_id)) == 0
            assert installs(store_file, V2_HASH, node_id) == swapped
            assert temporaries(binary.parent) == []
        assert not journal.exists()
    capsys.readouterr()
    with capsys.disabled():
        print(f"\nkill -9 harness, seed {KILL_SEED}, {KILL_TRIALS} trials, install life"
              f" {life * 1000:.0f} ms: {dict(sorted(landed.items()))}")
