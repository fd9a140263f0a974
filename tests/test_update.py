"""The update flow: quorum on fetch, authorized installs, boot check, rollback, the file slot.

Real parts throughout: Ed25519 signers, an in-memory SQLite governance store driven
through the governance API, ``file://`` release sources and ``FileSlot`` on ``tmp_path``.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from releasesim.model.crypto import ReleaseSigner, build_hash_of
from releasesim.model.errors import DigestMismatch, QuorumError, RollbackUnavailable, Unauthorized
from releasesim.model.governance import approve_release, propose_release
from releasesim.model.quorum import Attestation
from releasesim.model.slot import (
    ENV_AUDIT_LOG,
    ENV_NODE_BINARY,
    ENV_PREVIOUS_BINARY,
    FileAuditLog,
    FileSlot,
    MemoryAuditLog,
    MemorySlot,
    SlotError,
)
from releasesim.model.source import UrlSource
from releasesim.model.store import GovernanceStore
from releasesim.model.update import (
    DownloadedRelease,
    InstallRecord,
    boot_check,
    ensure_release_authorized,
    fetch_release,
    install_release,
    rollback_failed_startup,
)

INSTALLS = "release_installs_total"
V1 = b"the-block v1\n" * 50
V2 = b"the-block v2\n" * 50
EVIL = b"the-block v2 with a backdoor\n" * 50


def attest(signers: list[ReleaseSigner], data: bytes) -> list[Attestation]:
    build_hash = build_hash_of(data)
    return [Attestation(s.public_key, s.attest(build_hash)) for s in signers]


def approve(store: GovernanceStore, signers: list[ReleaseSigner], data: bytes) -> str:
    """Put ``data`` through governance: propose with every signer's attestation, approve."""
    build_hash = build_hash_of(data)
    proposal = propose_release(
        store,
        build_hash=build_hash,
        attestations=attest(signers, data),
        signer_set=tuple(s.public_key for s in signers),
        proposer="0xabc",
        epoch=0,
    )
    assert approve_release(store, proposal.id, voter="v1", epoch=0).status == "activated"
    return build_hash


def mirror(tmp_path: Path, *artifacts: bytes) -> UrlSource:
    folder = tmp_path / "mirror"
    folder.mkdir(exist_ok=True)
    for data in artifacts:
        (folder / f"{build_hash_of(data)}.bin").write_bytes(data)
    return UrlSource(folder.as_uri())


def released(data: bytes) -> DownloadedRelease:
    return DownloadedRelease(build_hash_of(data), None, data)


# -- quorum on fetch ------------------------------------------------------------------------
def test_fetch_applies_the_governance_threshold(
    signers: list[ReleaseSigner], tmp_path: Path
) -> None:
    trio = signers[:3]
    signer_set = tuple(s.public_key for s in trio)
    source = mirror(tmp_path, V1)
    dest = tmp_path / "dl" / "v1.bin"
    h = build_hash_of(V1)
    one_valid = [
        Attestation(trio[0].public_key, trio[0].attest(h)),
        Attestation(trio[1].public_key, trio[0].attest(h)),  # someone else's signature
        Attestation(trio[0].public_key.upper(), trio[0].attest(h)),  # same key again
    ]
    with pytest.raises(QuorumError, match="1 of 2"):
        fetch_release(h, one_valid, source=source, signer_set=signer_set, threshold=2, dest=dest)
    assert not dest.exists()

    two_valid = attest(trio[:2], V1)
    release = fetch_release(
        h, two_valid, source=source, signer_set=signer_set, threshold=2, dest=dest
    )
    assert release.quorum is not None and release.quorum.met
    assert set(release.quorum.valid) == {trio[0].public_key, trio[1].public_key}
    assert dest.read_bytes() == V1

    # threshold None means every signer of the set
    with pytest.raises(QuorumError, match="2 of 3"):
        fetch_release(h, two_valid, source=source, signer_set=signer_set)


@pytest.mark.parametrize(
    ("attestations", "signer_set", "threshold", "message"),
    [
        ("NONE", ("SET",), 1, "0 of 1"),
        ("VALID", (), None, "no release signers are configured"),
        ("VALID", ("SET",), 2, "outside 1..1"),
        ("UNTRUSTED", ("SET",), 1, "not a trusted signer"),
    ],
)
def test_fetch_quorum_table(
    signers: list[ReleaseSigner],
    tmp_path: Path,
    attestations: str,
    signer_set: tuple[str, ...],
    threshold: int | None,
    message: str,
) -> None:
    h = build_hash_of(V1)
    trusted, outsider = signers[0], signers[4]
    chosen = {
        "NONE": [],
        "VALID": attest([trusted], V1),
        "UNTRUSTED": attest([outsider], V1),
    }[attestations]
    keys = tuple(trusted.public_key for _ in signer_set)
    with pytest.raises(QuorumError, match=message):
        fetch_release(h, chosen, source=mirror(tmp_path, V1), signer_set=keys, threshold=threshold)


def test_quorum_is_checked_before_downloading(signers: list[ReleaseSigner]) -> None:
    # The source is unreachable; a short quorum must be reported without touching it.
    source = UrlSource("http://127.0.0.1:9")
    with pytest.raises(QuorumError):
        fetch_release(build_hash_of(V1), [], source=source, signer_set=(signers[0].public_key,))


def test_fetch_wrong_bytes_from_a_file_mirror(tmp_path: Path) -> None:
    folder = tmp_path / "mirror"
    folder.mkdir()
    (folder / f"{build_hash_of(V2)}.bin").write_bytes(EVIL)
    dest = tmp_path / "dl" / "v2.bin"
    with pytest.raises(DigestMismatch):
        fetch_release(build_hash_of(V2), source=UrlSource(folder.as_uri()), dest=dest)
    assert not dest.exists()
    assert not dest.parent.exists() or list(dest.parent.iterdir()) == []


def test_fetch_leaves_an_existing_destination_untouched_on_failure(tmp_path: Path) -> None:
    dest = tmp_path / "v2.bin"
    dest.write_bytes(b"older download")
    folder = tmp_path / "mirror"
    folder.mkdir()
    (folder / f"{build_hash_of(V2)}.bin").write_bytes(EVIL)
    with pytest.raises(DigestMismatch):
        fetch_release(build_hash_of(V2), source=UrlSource(folder.as_uri()), dest=dest)
    assert dest.read_bytes() == b"older download"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mirror", "v2.bin"]


# -- install ---------------------------------------------------------------------------------
def test_install_refuses_an_unapproved_build(store: GovernanceStore, tmp_path: Path) -> None:
    slot = FileSlot(tmp_path / "bin" / "the-block", tmp_path / "bin" / "the-block.previous")
    slot.install(V1)
    with pytest.raises(Unauthorized, match=f"build {build_hash_of(V2)} is not approved"):
        install_release(store, slot, released(V2), node_id="n1", now=10.0)
    assert store.counter(INSTALLS) == 0
    assert store.installs() == []
    assert slot.current() == V1 and slot.previous() is None


def test_install_of_an_approved_build_counts_once(
    store: GovernanceStore, signers: list[ReleaseSigner]
) -> None:
    h1 = approve(store, signers[:3], V1)
    slot = MemorySlot()
    record = install_release(store, slot, released(V1), node_id="n1", now=100.0)
    assert record == InstallRecord(h1, "n1", 100.0)
    assert store.counter(INSTALLS) == 1
    assert slot.current() is V1 and slot.previous() is None
    # a successful boot check does not count the install again
    result = boot_check(store, slot, node_id="n1", now=101.0, audit=MemoryAuditLog())
    assert result.ok and result.build_hash == h1 and result.rollback is None
    assert store.counter(INSTALLS) == 1
    assert ensure_release_authorized(store, h1.upper()).build_hash == h1


def test_install_times_never_go_backwards(
    store: GovernanceStore, signers: list[ReleaseSigner]
) -> None:
    h1 = approve(store, signers[:3], V1)
    first = install_release(store, MemorySlot(), released(V1), node_id="a", now=50.0)
    second = install_release(store, MemorySlot(), released(V1), node_id="b", now=20.0)
    assert (first.ts, second.ts) == (50.0, 50.0)
    assert [r.ts for r in store.installs(h1)] == [50.0, 50.0]


def test_install_rechecks_the_digest(store: GovernanceStore, signers: list[ReleaseSigner]) -> None:
    h1 = approve(store, signers[:3], V1)
    slot = MemorySlot(V2)
    with pytest.raises(DigestMismatch):
        install_release(store, slot, DownloadedRelease(h1, None, EVIL), node_id="n", now=1.0)
    assert slot.current() is V2 and store.counter(INSTALLS) == 0


def test_a_failed_slot_write_records_nothing(
    store: GovernanceStore, signers: list[ReleaseSigner], tmp_path: Path
) -> None:
    approve(store, signers[:3], V1)
    blocker = tmp_path / "not-a-folder"
    blocker.write_bytes(b"")
    slot = FileSlot(blocker / "the-block", blocker / "the-block.previous")
    with pytest.raises(SlotError, match="cannot write"):
        install_release(store, slot, released(V1), node_id="n", now=1.0)
    assert store.counter(INSTALLS) == 0 and store.installs() == []


# -- boot check and rollback -------------------------------------------------------------------
def test_boot_check_rolls_back_an_unapproved_binary(
    store: GovernanceStore, signers: list[ReleaseSigner], tmp_path: Path
) -> None:
    h1 = approve(store, signers[:3], V1)
    slot = FileSlot(tmp_path / "the-block", tmp_path / "the-block.previous")
    install_release(store, slot, released(V1), node_id="node-7", now=5.0)
    slot.install(EVIL)  # the drill: a corrupted binary staged in the live path
    audit_path = tmp_path / "audit" / "rollback.jsonl"
    result = boot_check(store, slot, node_id="node-7", now=42.5, audit=FileAuditLog(audit_path))

    assert not result.ok and result.reason == "unapproved build"
    assert result.build_hash == build_hash_of(EVIL)
    assert slot.current() == V1
    lines = audit_path.read_text().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0]) == {
        "time": 42.5,
        "node": "node-7",
        "rolled_back_hash": build_hash_of(EVIL),
        "restored_hash": h1,
        "reason": "unapproved build",
    }
    assert result.rollback is not None and result.rollback.to_dict() == json.loads(lines[0])
    assert store.counter(INSTALLS) == 1  # only the install of V1; the rollback counts nothing
    # the restored build now boots
    assert boot_check(store, slot, node_id="node-7", now=43.0, audit=FileAuditLog(audit_path)).ok


def test_boot_check_rolls_back_a_failed_start_of_an_approved_build(
    store: GovernanceStore, signers: list[ReleaseSigner]
) -> None:
    h1 = approve(store, signers[:3], V1)
    h2 = approve(store, signers[:3], V2)
    slot, audit = MemorySlot(), MemoryAuditLog()
    install_release(store, slot, released(V1), node_id="n", now=1.0)
    install_release(store, slot, released(V2), node_id="n", now=2.0)
    result = boot_check(store, slot, node_id="n", now=3.0, audit=audit, started=False)
    assert not result.ok and result.reason == "startup failed" and result.build_hash == h2
    assert slot.current() is V1
    assert audit == [
        {
            "time": 3.0,
            "node": "n",
            "rolled_back_hash": h2,
            "restored_hash": h1,
            "reason": "startup failed",
        }
    ]
    assert store.counter(INSTALLS) == 2


def test_rollback_unavailable(store: GovernanceStore, tmp_path: Path) -> None:
    audit = MemoryAuditLog()
    slot = FileSlot(tmp_path / "the-block", tmp_path / "the-block.previous")
    with pytest.raises(RollbackUnavailable, match="no binary installed"):
        boot_check(store, slot, node_id="n", now=0.0, audit=audit)
    slot.install(EVIL)
    with pytest.raises(RollbackUnavailable, match="no previous binary"):
        boot_check(store, slot, node_id="n", now=0.0, audit=audit)
    slot.install(EVIL)  # the backup is now the same build: rolling back would change nothing
    with pytest.raises(RollbackUnavailable, match="same build"):
        rollback_failed_startup(slot, node_id="n", now=0.0, reason="test", audit=audit)
    with pytest.raises(RollbackUnavailable):
        MemorySlot(V1).restore_previous()
    assert audit == [] and slot.current() == EVIL


def test_no_binary_with_a_backup_restores_it(store: GovernanceStore) -> None:
    slot, audit = MemorySlot(None, V1), MemoryAuditLog()
    result = boot_check(store, slot, node_id="n", now=0.0, audit=audit)
    assert not result.ok and result.reason == "no binary installed" and result.build_hash is None
    assert slot.current() is V1
    assert audit[0]["rolled_back_hash"] is None and audit[0]["restored_hash"] == build_hash_of(V1)


# -- the file slot ------------------------------------------------------------------------------
def test_file_slot_install_keeps_the_previous_binary(tmp_path: Path) -> None:
    folder = tmp_path / "node" / "bin"
    slot = FileSlot(folder / "the-block", folder / "the-block.previous")
    assert slot.current() is None and slot.previous() is None
    slot.install(V1)
    assert slot.current() == V1 and slot.previous() is None
    slot.install(V2)
    assert slot.current() == V2 and slot.previous() == V1
    for path in (slot.binary, slot.backup):
        assert stat.S_IMODE(path.stat().st_mode) == 0o755
    assert slot.restore_previous() == V1
    assert slot.current() == V1 and slot.previous() == V1
    assert sorted(p.name for p in folder.iterdir()) == ["the-block", "the-block.previous"]


def test_resolve_precedence(tmp_path: Path) -> None:
    home = Path("~").expanduser()
    default = FileSlot.resolve(None, {})
    assert default.binary == home / ".the_block" / "bin" / "the-block"
    assert default.backup == home / ".the_block" / "bin" / "the-block.previous"

    env = {ENV_NODE_BINARY: str(tmp_path / "env-node")}
    assert FileSlot.resolve(None, env).binary == tmp_path / "env-node"
    assert FileSlot.resolve(None, env).backup == tmp_path / "env-node.previous"
    assert FileSlot.resolve(str(tmp_path / "arg-node"), env).binary == tmp_path / "arg-node"
    assert FileSlot.resolve("", env).binary == tmp_path / "env-node"

    env[ENV_PREVIOUS_BINARY] = str(tmp_path / "backup")
    assert FileSlot.resolve(str(tmp_path / "arg-node"), env).backup == tmp_path / "backup"


def test_audit_log_resolve_precedence(tmp_path: Path) -> None:
    binary = tmp_path / "the-block"
    assert FileAuditLog.resolve(binary=binary, env={}).path == tmp_path / "the-block.rollback.jsonl"
    env = {ENV_AUDIT_LOG: str(tmp_path / "env.jsonl")}
    assert FileAuditLog.resolve(binary=binary, env=env).path == tmp_path / "env.jsonl"
    assert FileAuditLog.resolve("arg.jsonl", binary=binary, env=env).path == Path("arg.jsonl")
    fallback = FileAuditLog.resolve(env={ENV_NODE_BINARY: str(binary)}).path
    assert fallback == tmp_path / "the-block.rollback.jsonl"


def test_file_audit_log_appends_lines(tmp_path: Path) -> None:
    log = FileAuditLog(tmp_path / "a.jsonl")
    log.append({"n": 1})
    log.append({"n": 2})
    assert [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()] == [
        {"n": 1},
        {"n": 2},
    ]
    with pytest.raises(SlotError, match="cannot append"):
        FileAuditLog(tmp_path / "a.jsonl" / "nested").append({"n": 3})
