"""The ``gov fetch-release`` and ``gov boot-check`` commands: a node's side of the update.

    gov fetch-release --hash H [--signature S --signer K ...] [--threshold N] [--dest PATH]
                      [--install [--binary PATH] [--node-id ID]] [--timeout S] [--max-bytes N]
    gov boot-check [--binary PATH] [--node-id ID] [--audit-log PATH]

``fetch-release`` downloads ``$TB_RELEASE_SOURCE_URL/<hash>.bin``, verifies its digest and
quorum and optionally installs it into the node binary slot; ``boot-check`` refuses to start
an unapproved binary and rolls back to the previous one, appending an audit record.

``--dest`` is a file path; a value ending in ``/`` names a folder, and the artifact is saved
as ``<folder>/<hash>.bin`` there (``--dest newdir/``). A missing folder is created, like
the default ``./downloads/``, but only once the artifact has been downloaded and verified,
so a refused or failed command creates no folder; with ``--install``, a failed install
removes the file and the folders it created. An existing folder without the trailing ``/``
is refused (exit 2): it may have been meant as a file name.

``boot-check`` reads the store read-only, so it never waits behind a writer. Only when a
crashed install left a journal (``<binary>.install-pending``, see ``model.slot``) does it
first open the store as a writer to record that install once
(``model.update.recover_interrupted_install``), then it proceeds as a reader.

Only parses, calls ``releasesim.model.update`` and prints; the shared helpers (store,
``guard``, attestation flags) come from ``releasesim.cli.gov``, and ``releasesim.cli.main``
adds these commands to the ``gov`` group. Imports nothing heavier than ``model``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from releasesim.cli.args import (
    actor_name,
    name_problem,
    non_empty,
    positive_seconds,
    print_error,
    strict_positive_int,
    utf8_problem,
)
from releasesim.cli.gov import (
    add_attestation_flags,
    add_command,
    emit,
    expand_path,
    open_store,
    parse_attestations,
    store_path,
)
from releasesim.model.crypto import build_hash_of, parse_hash
from releasesim.model.errors import MalformedInput, RollbackUnavailable, SlotError
from releasesim.model.quorum import Attestation
from releasesim.model.signers import load_signer_config
from releasesim.model.slot import FileAuditLog, FileSlot
from releasesim.model.source import DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT_S, UrlSource
from releasesim.model.update import (
    boot_check,
    ensure_release_authorized,
    fetch_release,
    install_release,
    recover_interrupted_install,
)

DEFAULT_DOWNLOADS = Path("downloads")


def _node_id(args: argparse.Namespace) -> str:
    """``--node-id`` (checked by argparse), else the host name, checked by the same rules
    (``releasesim.cli.args.name_problem``) before anything is touched."""
    if args.node_id:
        return str(args.node_id)
    host = socket.gethostname() or "node"
    problem = name_problem(host)
    if problem is not None:
        raise MalformedInput(
            f"--node-id not given and the host name {host!r} cannot be a node id: {problem}"
            " (pass --node-id)"
        )
    return host


def _check_paths(args: argparse.Namespace, paths: dict[str, Path | None]) -> None:
    """Every file the command may touch has a UTF-8 name, the store's included.

    The flags are checked by argparse; this catches the same problem in a path from the
    environment (``$TB_NODE_BINARY``, ``$TB_PREVIOUS_BINARY``, ``$TB_ROLLBACK_AUDIT_LOG``,
    ``$TB_GOV_DB_PATH``) or the working folder, before anything is written.
    """
    paths = {**paths, "governance store (--state, $TB_GOV_DB_PATH)": store_path(args)}
    for what, path in paths.items():
        problem = None if path is None else utf8_problem(str(path))
        if problem is not None:
            raise MalformedInput(f"{what} {str(path)!r}: {problem}")


def _names_folder(text: str) -> bool:
    """Does ``--dest`` name a folder: a trailing separator, or ``.``/``..`` as its last part
    (``Path`` would drop both)?"""
    ends = tuple(sep for sep in (os.sep, os.altsep) if sep)
    return text.endswith(ends) or os.path.basename(text) in ("", ".", "..")


def _destination(text: str | None, build_hash: str) -> tuple[Path, Path | None]:
    """Where ``fetch-release`` saves the artifact, and the first of its folders that does
    not exist yet (None: all exist). Nothing is created here.

    ``--dest`` is a file path, or with a trailing ``/`` a folder that gets ``<hash>.bin``;
    default ``./downloads/<hash>.bin``. ``SlotError`` for a destination that is a folder or
    lies under a file.
    """
    name = f"{build_hash}.bin"
    if not text:
        dest = DEFAULT_DOWNLOADS / name
    elif _names_folder(text):
        dest = expand_path(text, "--dest") / name
    else:
        dest = expand_path(text, "--dest")
        if dest.is_dir():
            raise SlotError(
                f"download destination {dest}: is a directory (end --dest with / to save"
                f" {name} in it)"
            )
    if dest.is_dir():
        raise SlotError(f"download destination {dest}: is a directory")
    missing: Path | None = None
    folder = dest.parent
    while not folder.exists() and folder != folder.parent:
        missing, folder = folder, folder.parent
    if not folder.is_dir():
        raise SlotError(f"download destination {dest}: {folder} is not a folder")
    return dest, missing


def cmd_fetch(args: argparse.Namespace) -> int:
    build_hash = parse_hash(args.hash, "--hash")
    attestations: tuple[Attestation, ...] | None = parse_attestations(args.signer, args.signature)
    dest, new_folder = _destination(args.dest, build_hash)
    source = UrlSource.from_env()
    slot = FileSlot.resolve(args.binary) if args.install else None
    node_id = _node_id(args) if slot is not None else None
    _check_paths(args, {
        "--dest": dest,
        "node binary (--binary, $TB_NODE_BINARY)": None if slot is None else slot.binary,
        "previous binary ($TB_PREVIOUS_BINARY)": None if slot is None else slot.backup,
    })
    # every input is checked before the store is opened, the download starts or the slot is
    # touched (the signer configuration too, when attestations are given)
    configured = load_signer_config().signers if attestations else ()
    with open_store(args, readonly=slot is None) as store:  # only --install writes
        approved = store.get_approved(build_hash)
        if slot is not None:
            ensure_release_authorized(store, build_hash)  # refuse before downloading
            slot.current(), slot.previous()  # an unreadable slot fails before downloading
        dest_existed = dest.exists()
        signer_set: tuple[str, ...] = ()
        threshold: int | None = args.threshold
        if attestations:
            signer_set = configured
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
        with _discard_on_failure(dest, remove_file=False, new_folder=new_folder):
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
            assert node_id is not None
            with _discard_on_failure(dest, remove_file=not dest_existed, new_folder=new_folder):
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
def _discard_on_failure(
    dest: Path, *, remove_file: bool, new_folder: Path | None
) -> Iterator[None]:
    """If the block fails: remove ``dest`` when ``remove_file`` (a download this command
    created), and the folders between ``dest`` and ``new_folder`` (the first one this
    command created) that are empty."""
    try:
        yield
    except BaseException:
        if remove_file:
            with contextlib.suppress(OSError):
                dest.unlink(missing_ok=True)
        folder = dest.parent
        while new_folder is not None and folder.is_relative_to(new_folder):
            try:
                folder.rmdir()  # only an empty folder goes
            except OSError:
                break
            folder = folder.parent
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
    """Allow the start of an approved binary, else roll back (exit 1).

    The store is opened read-only (so the check never waits behind a writer), except that
    when a crashed install left its journal next to the binary (``slot.pending_install()``)
    a writer is opened just to record that install once
    (``recover_interrupted_install``); the check itself then runs as a reader.
    """
    slot = FileSlot.resolve(args.binary)
    audit = FileAuditLog.resolve(args.audit_log, binary=slot.binary)
    node_id = _node_id(args)  # checked before the binary or the audit log is touched
    _check_paths(args, {
        "node binary (--binary, $TB_NODE_BINARY)": slot.binary,
        "previous binary ($TB_PREVIOUS_BINARY)": slot.backup,
        "rollback audit log (--audit-log, $TB_ROLLBACK_AUDIT_LOG)": audit.path,
    })
    pending = slot.pending_install()  # a damaged journal is refused before anything
    with open_store(args, readonly=True) as store:  # a reader: never waits behind a writer
        current = slot.current()
        if current is None or store.get_approved(build_hash_of(current)) is None:
            # a rollback is coming: make sure its audit record can be written before the
            # binary is touched, so a bad --audit-log never leaves an unrecorded rollback
            _check_appendable(audit.path)
        if pending is not None:
            # a crashed install to reconcile: only now, and only for that record, a writer
            with open_store(args) as writer:
                recover_interrupted_install(writer, slot)
        try:
            result = boot_check(
                store, slot, node_id=node_id, now=time.time(), audit=audit, started=True
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
    print_error(f"error: {text}")
    return 1


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``fetch-release`` and ``boot-check`` to the ``gov`` group's sub-parsers."""
    p = add_command(commands, "fetch-release", cmd_fetch,
                    "download <hash>.bin from $TB_RELEASE_SOURCE_URL, verify")
    p.add_argument("--hash", required=True, metavar="H", help="BLAKE3 build hash (64 hex)")
    add_attestation_flags(p)
    p.add_argument(
        "--dest", type=non_empty, metavar="PATH",
        help="file to save to; ending in / a folder to save <hash>.bin in, created on"
        " success if missing (default ./downloads/<hash>.bin)",
    )
    p.add_argument("--install", action="store_true", help="install into the node binary slot")
    p.add_argument(
        "--binary", type=non_empty, metavar="PATH",
        help="node binary (else $TB_NODE_BINARY)",
    )
    p.add_argument(
        "--node-id", type=actor_name, metavar="ID",
        help="node id recorded with the install (default: the host name; up to 255"
        " printable characters)",
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
        "--node-id", type=actor_name, metavar="ID",
        help="node id for the audit record (default: the host name; up to 255 printable"
        " characters)",
    )
    p.add_argument(
        "--audit-log", type=non_empty, metavar="PATH",
        help="rollback audit log (JSON lines)",
    )
