"""The node-side release flow: fetch → verify → stage → install → boot check → rollback.

- ``fetch_release`` gets the artifact from a ``ReleaseSource``, checks its BLAKE3 digest
  and, when attestations are given, the same k-of-n quorum rule governance applies
  (``model.quorum.require_quorum``; the threshold defaults to the size of the signer set).
  Attestations are checked before anything is downloaded. With ``dest`` the artifact is
  staged atomically (temp file in ``dest``'s folder, fsync, rename): on any failure no new
  file appears at ``dest`` and no temp file remains; a file already at ``dest`` is left
  untouched. Without ``dest`` the artifact stays in memory (the simulator).
- ``install_release`` re-checks the digest, refuses builds governance has not approved
  (``ensure_release_authorized``), writes the slot, and only then records the install
  (``release_installs_total`` += 1, install times per release never go backwards). A
  refused build, or a failed slot write, records nothing.
- ``boot_check`` lets a node start only on an approved build; an unapproved build or a
  failed start calls ``rollback_failed_startup``, which restores the backup and appends an
  audit record (time, node, rolled_back_hash, restored_hash, reason) and never counts an
  install. A rollback must change the binary: when there is no backup, or the backup is
  the very build that failed, it raises ``RollbackUnavailable``.

Time comes in as ``now``; storage, source, slot and audit log are passed in, so the
simulator drives exactly this code. This module must not import simpy, ``sim`` or
``reports``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from releasesim.model.crypto import build_hash_of, parse_hash
from releasesim.model.errors import DigestMismatch, RollbackUnavailable, Unauthorized
from releasesim.model.quorum import Attestation, QuorumResult, require_quorum
from releasesim.model.slot import AuditLog, BinarySlot, atomic_write
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
    "rollback_failed_startup",
    "verify_artifact",
]

REASON_UNAPPROVED = "unapproved build"
REASON_STARTUP_FAILED = "startup failed"
REASON_NO_BINARY = "no binary installed"


class ReleaseStore(Protocol):
    """The part of ``releasesim.model.store.GovernanceStore`` the update flow uses."""

    def get_approved(self, build_hash: str) -> ApprovedRelease | None: ...

    def record_install(self, build_hash: str, node_id: str, ts: float) -> float: ...


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


def ensure_release_authorized(store: ReleaseStore, build_hash: str) -> ApprovedRelease:
    """The approved release of ``build_hash``; ``Unauthorized`` when governance has not
    approved it."""
    build_hash = parse_hash(build_hash)
    approved = store.get_approved(build_hash)
    if approved is None:
        raise Unauthorized(f"build {build_hash} is not approved by governance")
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
    backwards). Nothing is recorded when any earlier step fails.
    """
    build_hash = check_digest(release.hash, release.bytes)
    ensure_release_authorized(store, build_hash)
    slot.install(release.bytes)
    ts = store.record_install(build_hash, node_id, now)
    return InstallRecord(build_hash, node_id, ts)


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
    ``RollbackUnavailable`` when a rollback is needed and impossible.
    """
    data = slot.current()
    if data is None:
        record = rollback_failed_startup(
            slot, node_id=node_id, now=now, reason=REASON_NO_BINARY, audit=audit
        )
        return BootResult(False, None, REASON_NO_BINARY, record)
    build_hash = build_hash_of(data)
    approved = store.get_approved(build_hash) is not None
    if approved and started:
        return BootResult(True, build_hash)
    reason = REASON_STARTUP_FAILED if approved else REASON_UNAPPROVED
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
    """Restore the backup binary and append the audit record; never counts an install.

    ``RollbackUnavailable`` (and nothing changed) when there is no backup or the backup is
    the same build as the current binary.
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
    slot.restore_previous()
    record = RollbackRecord(float(now), node_id, rolled_back, restored, reason)
    audit.append(record.to_dict())
    return record
