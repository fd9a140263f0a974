"""The ``gov fetch-release`` and ``gov boot-check`` commands: a node's side of the update.

    gov fetch-release --hash H [--signature S --signer K ...] [--threshold N] [--dest PATH]
                      [--install [--binary PATH] [--node-id ID]] [--timeout S] [--max-bytes N]
    gov boot-check [--binary PATH] [--node-id ID] [--audit-log PATH]

``fetch-release`` downloads ``$TB_RELEASE_SOURCE_URL/<hash>.bin``, verifies its digest and
quorum and optionally installs it into the node binary slot; ``boot-check`` refuses to start
an unapproved binary and rolls back to the previous one, appending an audit record.

Only parses, calls ``releasesim.model.update`` and prints; the shared helpers (store,
``guard``, attestation flags) come from ``releasesim.cli.gov``, and ``releasesim.cli.main``
adds these commands to the ``gov`` group. Imports nothing heavier than ``model``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from releasesim.cli.args import non_empty, positive_seconds, strict_positive_int
from releasesim.cli.gov import (
    add_attestation_flags,
    add_command,
    emit,
    expand_path,
    open_store,
    parse_attestations,
)
from releasesim.model.crypto import build_hash_of, parse_hash
from releasesim.model.errors import RollbackUnavailable, SlotError
from releasesim.model.quorum import Attestation
from releasesim.model.signers import load_signer_config
from releasesim.model.slot import FileAuditLog, FileSlot
from releasesim.model.source import DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT_S, UrlSource
from releasesim.model.update import (
    boot_check,
    ensure_release_authorized,
    fetch_release,
    install_release,
)

DEFAULT_DOWNLOADS = Path("downloads")


def _node_id(args: argparse.Namespace) -> str:
    return args.node_id or socket.gethostname() or "node"


def cmd_fetch(args: argparse.Namespace) -> int:
    build_hash = parse_hash(args.hash, "--hash")
    attestations: tuple[Attestation, ...] | None = parse_attestations(args.signer, args.signature)
    dest = (
        expand_path(args.dest, "--dest") if args.dest else DEFAULT_DOWNLOADS / f"{build_hash}.bin"
    )
    if dest.is_dir():
        raise SlotError(f"download destination {dest}: is a directory")
    source = UrlSource.from_env()
    slot = FileSlot.resolve(args.binary) if args.install else None
    with open_store(args) as store:
        approved = store.get_approved(build_hash)
        if slot is not None:
            ensure_release_authorized(store, build_hash)  # refuse before downloading
            slot.current(), slot.previous()  # an unreadable slot fails before downloading
        dest_existed = dest.exists()
        signer_set: tuple[str, ...] = ()
        threshold: int | None = args.threshold
        if attestations:
            signer_set = load_signer_config().signers
            if threshold is None and approved is not None:
                threshold = approved.threshold
            if threshold is None:
                threshold = len(signer_set)
            check = f"quorum of {threshold} over the given attestations and configured signers"
        elif approved is not None:
            attestations = approved.attestations
            signer_set = approved.signer_set
            threshold = approved.threshold if threshold is None else threshold
            check = f"quorum of {threshold} over the attestations governance approved"
        else:
            attestations, threshold = None, None
            check = "digest check only (no attestations given and the build is not approved)"
        release = fetch_release(
            build_hash,
            attestations,
            source=source,
            signer_set=signer_set,
            threshold=threshold,
            dest=dest,
            timeout=args.timeout,
            max_bytes=args.max_bytes,
        )
        valid = list(release.quorum.valid) if release.quorum is not None else []
        payload: dict[str, Any] = {
            "hash": release.hash,
            "path": str(release.path),
            "size": len(release.bytes),
            "verified": check,
            "valid_signers": valid,
            "installed": False,
        }
        lines = [
            f"fetched {source.url_for(release.hash)}",
            f"  BLAKE3 digest verified; {check}"
            + (f": {len(valid)} valid" if release.quorum is not None else ""),
            f"  saved {len(release.bytes)} bytes to {release.path}",
        ]
        if slot is not None:
            node_id = _node_id(args)
            with _discard_on_failure(dest if not dest_existed else None):
                record = install_release(store, slot, release, node_id=node_id, now=time.time())
            payload.update(
                installed=True, binary=str(slot.binary), backup=str(slot.backup),
                node_id=node_id, install_ts=record.ts,
            )
            lines.append(
                f"  installed into {slot.binary} for node {node_id}"
                f" (previous binary kept at {slot.backup})"
            )
    emit(args, payload, "\n".join(lines))
    return 0


@contextlib.contextmanager
def _discard_on_failure(path: Path | None) -> Iterator[None]:
    """Remove ``path`` (a download this command created) if the block fails."""
    try:
        yield
    except BaseException:
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        raise


def _check_appendable(path: Path) -> None:
    """``SlotError`` unless ``path`` could be appended to (without creating anything)."""
    if path.is_dir():
        raise SlotError(f"rollback audit log {path}: cannot append: is a directory")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise SlotError(f"rollback audit log {path}: cannot append: permission denied")
        return
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise SlotError(f"rollback audit log {path}: cannot append: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SlotError(f"rollback audit log {path}: cannot append: {folder} is not writable")


def cmd_boot_check(args: argparse.Namespace) -> int:
    slot = FileSlot.resolve(args.binary)
    audit = FileAuditLog.resolve(args.audit_log, binary=slot.binary)
    with open_store(args) as store:
        current = slot.current()
        if current is None or store.get_approved(build_hash_of(current)) is None:
            # a rollback is coming: make sure its audit record can be written before the
            # binary is touched, so a bad --audit-log never leaves an unrecorded rollback
            _check_appendable(audit.path)
        try:
            result = boot_check(
                store, slot, node_id=_node_id(args), now=time.time(), audit=audit, started=True
            )
        except RollbackUnavailable as exc:
            raise RollbackUnavailable(f"boot refused: {slot.binary}: {exc}") from None
    payload: dict[str, Any] = {
        "ok": result.ok,
        "hash": result.build_hash,
        "binary": str(slot.binary),
        "reason": result.reason,
        "rollback": None if result.rollback is None else result.rollback.to_dict(),
        "audit_log": None if result.rollback is None else str(audit.path),
    }
    if result.ok:
        emit(args, payload, f"boot allowed: {slot.binary} is approved build {result.build_hash}")
        return 0
    restored = result.rollback.restored_hash if result.rollback else None
    text = (
        f"boot refused: {slot.binary} is build {result.build_hash} ({result.reason});"
        f" rolled back to {restored} from {slot.backup}; audit record appended to {audit.path}"
    )
    if args.json:
        emit(args, payload, text)
    print(f"error: {text}", file=sys.stderr)
    return 1


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``fetch-release`` and ``boot-check`` to the ``gov`` group's sub-parsers."""
    p = add_command(commands, "fetch-release", cmd_fetch,
                    "download <hash>.bin from $TB_RELEASE_SOURCE_URL, verify")
    p.add_argument("--hash", required=True, metavar="H", help="BLAKE3 build hash (64 hex)")
    add_attestation_flags(p)
    p.add_argument(
        "--dest", type=non_empty, metavar="PATH",
        help="where to save (default ./downloads/<hash>.bin)",
    )
    p.add_argument("--install", action="store_true", help="install into the node binary slot")
    p.add_argument(
        "--binary", type=non_empty, metavar="PATH",
        help="node binary (else $TB_NODE_BINARY)",
    )
    p.add_argument(
        "--node-id", type=non_empty, metavar="ID",
        help="node id recorded with the install (hostname)",
    )
    p.add_argument(
        "--timeout", type=positive_seconds, default=DEFAULT_TIMEOUT_S, metavar="S",
        help=f"give up after S seconds (default {DEFAULT_TIMEOUT_S:g})",
    )
    p.add_argument(
        "--max-bytes", type=strict_positive_int, default=DEFAULT_MAX_BYTES, metavar="N",
        help=f"refuse artifacts larger than N bytes (default {DEFAULT_MAX_BYTES})",
    )

    p = add_command(commands, "boot-check", cmd_boot_check,
                    "refuse to start an unapproved binary and roll back")
    p.add_argument(
        "--binary", type=non_empty, metavar="PATH",
        help="node binary (else $TB_NODE_BINARY)",
    )
    p.add_argument(
        "--node-id", type=non_empty, metavar="ID",
        help="node id for the audit record (hostname)",
    )
    p.add_argument(
        "--audit-log", type=non_empty, metavar="PATH",
        help="rollback audit log (JSON lines)",
    )
