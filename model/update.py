"""The node-side release flow: fetch → verify → stage → install → boot check → rollback.

- ``fetch_release`` gets the artifact from a ``ReleaseSource``, checks its BLAKE3 digest
  and, when attestations are given, the same k-of-n quorum rule governance applies
  (``model.quorum.require_quorum``; the threshold defaults to the size of the signer set).
  Attestations are checked before anything is downloaded. With ``dest`` the artifact is
  staged atomically (temp file in ``dest``'s folder, fsync, rename): on any failure no new
  file appears at ``dest`` and no temp file remains; a file already at ``dest`` is left
  untouched. Without ``dest`` the artifact stays in memory (the simulator).
- ``install_release`` re-checks the digest, refuses builds governance has not approved
  (``ensure_release_authorized``: an approval row must exist *and* its recorded attestations
  must meet the quorum rule over its recorded signer-set snapshot and threshold), writes
  the slot, and only then records the install (``release_installs_total`` += 1, install
  times per release never go backwards). A refused build, or a failed slot write, records
  nothing (and leaves no install journal).
- ``boot_check`` lets a node start only on a build whose approval verifies the same way;
  an unapproved build, an approval that fails the quorum rule, or a failed start calls
  ``rollback_failed_startup``, which writes the audit record (time, node, rolled_back_hash,
  restored_hash, reason) *first* and then restores the backup, so an audit log that cannot
  be written stops the rollback before the binary is touched; a failed restore takes the
  record back. It never counts an install. A rollback must change the binary: when there
  is no backup, or the backup is the very build that failed, it raises
  ``RollbackUnavailable``.
- Crash recovery (journaled slots, i.e. files): an install journals an ``InstallIntent``
  before the binary swap and drops it after the record; the next ``install_release`` or
  ``boot_check`` on the slot (``recover_interrupted_install``) removes stale temp files and
  records an install a crash left unrecorded exactly once. Only that record needs a
  writable store: a caller that reads (the CLI's ``gov boot-check``, which must never wait
  behind a writer) checks ``slot.pending_install()`` first, and only when it is not None
  opens a writer, calls ``recover_interrupted_install`` and closes it, then runs
  ``boot_check`` on its read-only store (whose own recovery then has nothing to record).

The quorum verification is ``model.quorum.evaluate_quorum``, memoised on its exact inputs,
so a simulated fleet re-verifying one approval costs a cache lookup per boot.

Time comes in as ``now``; storage, source, slot and audit log are passed in, so the
simulator drives exactly this code. This module must not import simpy, ``sim`` or
``reports``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from releasesim.model.crypto import build_hash_of, parse_hash
from releasesim.model.errors import (
    DigestMismatch,
    QuorumError,
    RollbackUnavailable,
    SlotError,
    Unauthorized,
)
from releasesim.model.quorum import Attestation, QuorumResult, evaluate_quorum, require_quorum
from releasesim.model.slot import AuditLog, BinarySlot, InstallIntent, atomic_write
from releasesim.model.source import DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT_S, ReleaseSource
from releasesim.model.store import ApprovedRelease, InstallRecord

__all__ = [
    "BootResult",
    "DownloadedRelease",
    "InstallRecord",
    "RollbackRecord",
    "boot_check",
    "ensure_release_authorized",
    "fetch_release",
    "install_release",
    "recover_interrupted_install",
    "rollback_failed_startup",
    "verify_approval",
    "verify_artifact",
]

REASON_UNAPPROVED = "unapproved build"
REASON_STARTUP_FAILED = "startup failed"
REASON_NO_BINARY = "no binary installed"
REASON_UNVERIFIED = "recorded approval fails the quorum rule"


class ReleaseStore(Protocol):
    """The part of ``releasesim.model.store.GovernanceStore`` the update flow uses."""

    def get_approved(self, build_hash: str) -> ApprovedRelease | None: ...

    def record_install(self, build_hash: str, node_id: str, ts: float) -> float: ...


class InstallLedger(ReleaseStore, Protocol):
    """A ``ReleaseStore`` that also lists recorded installs: what a journaled (file) slot
    needs to tell whether an interrupted install was recorded."""

    def installs(self, build_hash: str | None = None) -> list[InstallRecord]: ...


@dataclass(frozen=True, slots=True)
class DownloadedRelease:
    """A verified artifact: its build hash, where it was staged (None: memory only), its bytes,
    and the quorum result when attestations were checked."""

    hash: str
    path: Path | None
    bytes: bytes = field(repr=False)
    quorum: QuorumResult | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class RollbackRecord:
    """One rollback, as appended to the audit log."""

    time: float
    node: str
    rolled_back_hash: str | None
    restored_hash: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "node": self.node,
            "rolled_back_hash": self.rolled_back_hash,
            "restored_hash": self.restored_hash,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class BootResult:
    """The boot check's verdict; when not ``ok``, ``reason`` says why and ``rollback`` what
    was restored."""

    ok: bool
    build_hash: str | None
    reason: str | None = None
    rollback: RollbackRecord | None = None


def _effective_threshold(signer_set: Sequence[str], threshold: int | None) -> int:
    return len({k.lower() for k in signer_set}) if threshold is None else threshold


def check_digest(build_hash: str, data: bytes) -> str:
    """``build_hash`` (lowercased) if it is the BLAKE3 of ``data``, else ``DigestMismatch``."""
    expected = parse_hash(build_hash)
    actual = build_hash_of(data)
    if actual != expected:
        raise DigestMismatch(f"artifact digest mismatch: expected {expected}, got {actual}")
    return expected


def verify_artifact(
    build_hash: str,
    data: bytes,
    *,
    attestations: Sequence[Attestation] | None = None,
    signer_set: Sequence[str] = (),
    threshold: int | None = None,
) -> QuorumResult | None:
    """Check the digest, then (when ``attestations`` is not None) the governance quorum rule.

    Returns the quorum result, or None when no attestations were checked. Raises
    ``MalformedInput``, ``DigestMismatch`` or ``QuorumError``. An empty attestation list is
    checked (and fails); pass None to skip the signature check.
    """
    expected = check_digest(build_hash, data)
    if attestations is None:
        return None
    return require_quorum(
        expected, attestations, signer_set, _effective_threshold(signer_set, threshold)
    )


def fetch_release(
    build_hash: str,
    attestations: Sequence[Attestation] | None = None,
    *,
    source: ReleaseSource,
    signer_set: Sequence[str] = (),
    threshold: int | None = None,
    dest: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> DownloadedRelease:
    """Download, verify and (with ``dest``) stage the artifact of ``build_hash``.

    Raises ``MalformedInput`` (hash), ``QuorumError`` (before downloading),
    ``SourceError``, ``DigestMismatch``, ``SlotError`` (``dest`` cannot be written).
    """
    build_hash = parse_hash(build_hash, "--hash")
    attestations = None if attestations is None else tuple(attestations)
    effective = _effective_threshold(signer_set, threshold)
    if attestations is not None:
        require_quorum(build_hash, attestations, signer_set, effective)
    data = source.fetch(build_hash, timeout=timeout, max_bytes=max_bytes)
    quorum = verify_artifact(
        build_hash, data, attestations=attestations, signer_set=signer_set, threshold=effective
    )
    path: Path | None = None
    if dest is not None:
        path = Path(dest)
        atomic_write(path, data, 0o644, what="download destination")
    return DownloadedRelease(build_hash, path, data, quorum)


def verify_approval(approved: ApprovedRelease, build_hash: str) -> QuorumResult:
    """Re-evaluate an approval as recorded: its attestations of ``build_hash`` against its
    signer-set snapshot and threshold, with the quorum rule governance applied (memoised on
    these exact inputs). Never raises; read ``.met``."""
    return evaluate_quorum(
        build_hash, approved.attestations, approved.signer_set, approved.threshold
    )


def ensure_release_authorized(store: ReleaseStore, build_hash: str) -> ApprovedRelease:
    """The approved release of ``build_hash``; ``Unauthorized`` when governance has not
    approved it, ``QuorumError`` when the recorded approval fails the quorum rule (a row
    that did not come from governance)."""
    build_hash = parse_hash(build_hash)
    approved = store.get_approved(build_hash)
    if approved is None:
        raise Unauthorized(f"build {build_hash} is not approved by governance")
    result = verify_approval(approved, build_hash)
    if not result.met:
        raise QuorumError(
            f"build {build_hash}: {REASON_UNVERIFIED} ({result.describe()}); not installing"
        )
    return approved


def install_release(
    store: ReleaseStore,
    slot: BinarySlot,
    release: DownloadedRelease,
    *,
    node_id: str,
    now: float,
) -> InstallRecord:
    """Install an approved, verified artifact and record it once.

    Order: digest re-check, authorization, slot write, then the recorded install (the store
    counts ``release_installs_total`` and clamps the time so installs of a release never go
    backwards). Nothing is recorded when any earlier step fails. A journaled slot first
    recovers from an earlier crash, then journals this install until it is recorded (the
    store must then be an ``InstallLedger``).
    """
    build_hash = check_digest(release.hash, release.bytes)
    ensure_release_authorized(store, build_hash)
    if not slot.journaled:
        slot.install(release.bytes)
        ts = store.record_install(build_hash, node_id, now)
        return InstallRecord(build_hash, node_id, ts)
    ledger = cast(InstallLedger, store)
    recover_interrupted_install(ledger, slot)
    slot.begin_install(
        InstallIntent(build_hash, node_id, float(now), _recorded(ledger, build_hash, node_id))
    )
    try:
        slot.install(release.bytes)
    except SlotError:  # the binary was not replaced: nothing to recover later
        with contextlib.suppress(SlotError):
            slot.end_install()
        raise
    ts = store.record_install(build_hash, node_id, now)  # fails: the journal stays for later
    slot.end_install()
    return InstallRecord(build_hash, node_id, ts)


def _recorded(ledger: InstallLedger, build_hash: str, node_id: str) -> int:
    return sum(1 for r in ledger.installs(build_hash) if r.node_id == node_id)


def recover_interrupted_install(store: InstallLedger, slot: BinarySlot) -> InstallRecord | None:
    """Clean up after a process that died inside an install on ``slot``.

    Removes the slot's stale temp files; then, if a process that is gone journalled an
    install (``slot.pending_install()``): when its build is the one in place, still
    verifies, and its record is missing, records it (at the journalled time) and returns
    the record; in every case drops the journal. Writes to ``store`` only in that case, so
    a read-only store is enough when ``slot.pending_install()`` is None. A journal whose
    writer is still running is left alone. A no-op for a slot that is not journaled.
    """
    if not slot.journaled:
        return None
    slot.remove_stale_temporaries()
    intent = slot.pending_install()
    if intent is None:
        return None
    record = None
    current = slot.current()
    if (
        current is not None
        and build_hash_of(current) == intent.build_hash
        and _recorded(store, intent.build_hash, intent.node_id) <= intent.recorded_before
        and (approved := store.get_approved(intent.build_hash)) is not None
        and verify_approval(approved, intent.build_hash).met
    ):
        ts = store.record_install(intent.build_hash, intent.node_id, intent.ts)
        record = InstallRecord(intent.build_hash, intent.node_id, ts)
    slot.end_install()
    return record


def boot_check(
    store: ReleaseStore,
    slot: BinarySlot,
    *,
    node_id: str,
    now: float,
    audit: AuditLog,
    started: bool = True,
) -> BootResult:
    """Allow the start only of an approved build that ``started``; otherwise roll back.

    ``started=False`` reports a failed start (the simulator draws these). Raises
    ``RollbackUnavailable`` when a rollback is needed and impossible, ``SlotError`` (binary
    untouched) when its audit record cannot be written. A journaled slot first recovers
    from a crashed install (``recover_interrupted_install``; the store must then be an
    ``InstallLedger``, writable when ``slot.pending_install()`` is not None).
    """
    if slot.journaled:
        recover_interrupted_install(cast(InstallLedger, store), slot)
    data = slot.current()
    if data is None:
        record = rollback_failed_startup(
            slot, node_id=node_id, now=now, reason=REASON_NO_BINARY, audit=audit
        )
        return BootResult(False, None, REASON_NO_BINARY, record)
    build_hash = build_hash_of(data)
    approved = store.get_approved(build_hash)
    if approved is None:
        reason = REASON_UNAPPROVED
    elif not verify_approval(approved, build_hash).met:
        reason = REASON_UNVERIFIED
    elif started:
        return BootResult(True, build_hash)
    else:
        reason = REASON_STARTUP_FAILED
    record = rollback_failed_startup(slot, node_id=node_id, now=now, reason=reason, audit=audit)
    return BootResult(False, build_hash, reason, record)


def rollback_failed_startup(
    slot: BinarySlot,
    *,
    node_id: str,
    now: float,
    reason: str,
    audit: AuditLog,
) -> RollbackRecord:
    """Write the audit record, then restore the backup binary; never counts an install.

    ``RollbackUnavailable`` (and nothing changed) when there is no backup or the backup is
    the same build as the current binary; ``SlotError`` (and nothing changed) when the
    audit record cannot be written, or when the restore fails (the record is taken back).
    """
    previous = slot.previous()
    if previous is None:
        raise RollbackUnavailable(f"node {node_id}: {reason}, and no previous binary to restore")
    current = slot.current()
    rolled_back = None if current is None else build_hash_of(current)
    restored = build_hash_of(previous)
    if rolled_back == restored:
        raise RollbackUnavailable(
            f"node {node_id}: {reason}, and the previous binary is the same build {restored}"
        )
    record = RollbackRecord(float(now), node_id, rolled_back, restored, reason)
    with audit.recording(record.to_dict()):
        slot.restore_previous()
    return record
