"""The ``gov`` command group: the operator CLI of the release flow, plus ``releasesim demo``.

Sub-commands (same flags as the seed document; ``contract gov ...`` works verbatim)::

    gov propose-release --hash H --signature S --signer K [...] [--threshold N]
    gov approve-release --id ID [--voter ADDR] [--weight W] [--epoch E]
    gov vote --id ID --choice yes|no|abstain [--voter ADDR] [--weight W] [--epoch E]
    gov tally --id ID [--epoch E]
    gov proposals
    gov release-signers
    gov fetch-release --hash H [--signature S --signer K ...] [--dest PATH] [--install]
    gov boot-check [--binary PATH] [--node-id ID] [--audit-log PATH]
    gov metrics

Every sub-command takes ``--state PATH`` (else ``TB_GOV_DB_PATH``, else
``~/.the_block/governance.db``) and ``--json``. Read-only commands, and commands that
can only fail on an empty store, never create a missing store: they see an empty one.

**Chain epoch.** The CLI has no chain to ask, so the current epoch is the store's
(``releasesim.model.governance.chain_epoch``: the latest epoch at which anything was recorded, 0
for a new store); ``--epoch E`` acts at epoch E instead, which is how time advances. A
proposal gets ``deadline = epoch + --vote-period`` (default 0), and ``approve-release``
tallies as soon as ``epoch >= deadline``, so ``propose-release`` then ``approve-release``
with the defaults activates the release, however much wall-clock time passes between.

Exit codes: 0 success, 1 refused by the rules, 2 unusable input. This module only
parses, calls ``model`` and prints; the rules live in ``model``. Errors derived from
``releasesim.model.errors.ReleasesimError`` are turned into one line by ``releasesim.cli.main``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import getpass
import json
import os
import socket
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from releasesim.cli.args import (
    MAX_INT,
    finite_non_negative,
    non_empty,
    non_negative_int,
    positive_seconds,
    strict_positive_int,
)
from releasesim.model.crypto import build_hash_of, parse_hash
from releasesim.model.errors import (
    InputError,
    MalformedInput,
    QuorumError,
    RollbackUnavailable,
    SlotError,
    StoreError,
    UnknownProposal,
)
from releasesim.model.governance import (
    approve_release,
    cast_vote,
    chain_epoch,
    count_votes,
    propose_release,
    release_signers,
    tally,
)
from releasesim.model.metrics import render_prometheus
from releasesim.model.quorum import Attestation, threshold_problem
from releasesim.model.signers import load_signer_config
from releasesim.model.slot import FileAuditLog, FileSlot
from releasesim.model.source import DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT_S, UrlSource
from releasesim.model.store import CHOICES, GovernanceStore, Proposal
from releasesim.model.update import (
    boot_check,
    ensure_release_authorized,
    fetch_release,
    install_release,
)

ENV_DB_PATH = "TB_GOV_DB_PATH"
DEFAULT_DB_PATH = Path("~/.the_block/governance.db")
DEFAULT_DOWNLOADS = Path("downloads")

Handler = Callable[[argparse.Namespace], int]


# -- shared helpers ---------------------------------------------------------------------
def _epoch(args: argparse.Namespace, store: GovernanceStore) -> int:
    """``--epoch`` when given, else the store's current chain epoch."""
    return chain_epoch(store) if args.epoch is None else int(args.epoch)


def _default_actor() -> str:
    try:
        return getpass.getuser() or "operator"
    except Exception:  # noqa: BLE001 - getuser raises various errors without a user entry
        return "operator"


def expand_path(text: str | Path, what: str) -> Path:
    """``Path(text).expanduser()``; an unknown ``~user`` or a NUL byte is an ``InputError``."""
    try:
        path = Path(text).expanduser()
        if "\0" in str(path):
            raise ValueError("embedded NUL byte")
    except (RuntimeError, ValueError) as exc:
        raise InputError(f"{what} {str(text)!r}: unusable path ({exc})") from None
    return path


def store_path(args: argparse.Namespace) -> Path:
    """``--state``, else ``TB_GOV_DB_PATH``, else ``~/.the_block/governance.db``.

    An empty ``TB_GOV_DB_PATH`` counts as unset; an empty ``--state`` is refused by argparse.
    """
    if args.state:
        return expand_path(args.state, "--state")
    env = os.environ.get(ENV_DB_PATH)
    if env and env.strip():
        return expand_path(env, ENV_DB_PATH)
    return expand_path(DEFAULT_DB_PATH, "default governance store")


def _store_label(args: argparse.Namespace) -> str:
    try:
        return str(store_path(args))
    except InputError:
        return "(unusable path)"


def guard(handler: Handler) -> Handler:
    """Run ``handler`` turning stray SQLite and filesystem errors into one-line errors.

    The model raises ``ReleasesimError`` for every failure it knows about; this is the net
    under it, so a damaged store page or an odd path never shows a traceback.
    """

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except sqlite3.Error as exc:
            where = _store_label(args) if hasattr(args, "state") else "governance store"
            raise StoreError(f"governance store {where}: unreadable ({exc})") from None
        except OSError as exc:
            name = exc.filename if exc.filename is not None else "a file"
            reason = exc.strerror or " ".join(str(exc).split())
            raise InputError(f"{name}: {reason}") from None

    return run


def open_store(args: argparse.Namespace, *, create: bool = False) -> GovernanceStore:
    """Open the governance store.

    A missing file is created only with ``create``; otherwise the command sees an empty
    in-memory store and nothing is written to disk. The default folder
    ``~/.the_block`` is created on demand; an explicit path's folder must exist.
    """
    path = store_path(args)
    if not create and (not path.exists() or (path.is_file() and path.stat().st_size == 0)):
        # a missing or zero-byte store reads as empty and is never written by a reader
        return GovernanceStore.memory()
    if create and not path.exists() and not args.state and not os.environ.get(ENV_DB_PATH):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"governance store {path}: cannot create its folder: {exc}") from None
    return GovernanceStore.open(path, create=create)


def parse_attestations(
    signers: Sequence[str] | None, signatures: Sequence[str] | None
) -> tuple[Attestation, ...]:
    """Pair each ``--signer`` with the ``--signature`` at the same position (strict hex)."""
    signers = list(signers or ())
    signatures = list(signatures or ())
    if len(signers) != len(signatures):
        raise MalformedInput(
            f"{len(signers)} --signer value(s) but {len(signatures)} --signature value(s); "
            "each --signer pairs with the --signature at the same position"
        )
    return tuple(
        Attestation.parse(signer, signature, position)
        for position, (signer, signature) in enumerate(zip(signers, signatures, strict=True), 1)
    )


def _emit(args: argparse.Namespace, payload: dict[str, Any] | list[Any], text: str) -> None:
    if args.json:
        print(json.dumps(payload, indent=2, sort_keys=False))
    else:
        print(text)


def _proposal_dict(proposal: Proposal) -> dict[str, Any]:
    return {
        "id": proposal.id,
        "hash": proposal.build_hash,
        "threshold": proposal.threshold,
        "status": proposal.status,
        "proposer": proposal.proposer,
        "signer_set": list(proposal.signer_set),
        "attested_signers": [a.signer for a in proposal.attestations],
        "created_epoch": proposal.created_epoch,
        "deadline_epoch": proposal.deadline_epoch,
        "vote_quorum": proposal.vote_quorum,
        "activated_epoch": proposal.activated_epoch,
    }


def _weight(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


# -- governance commands ------------------------------------------------------------------
def cmd_propose(args: argparse.Namespace) -> int:
    build_hash = parse_hash(args.hash, "--hash")
    attestations = parse_attestations(args.signer, args.signature)
    config = load_signer_config()
    if args.epoch is not None:  # checked again below with the store's epoch
        _check_deadline(args.epoch, args.vote_period)
    proposer = args.proposer or _default_actor()
    trusted = set(config.signers)
    problem = threshold_problem(len(trusted) if args.threshold is None else args.threshold,
                                len(trusted))
    if problem is not None:  # refused before any store is opened (or created)
        raise QuorumError(f"ReleaseVote for {build_hash[:16]}… refused: {problem}")
    with open_store(args, create=True) as store:
        epoch = _epoch(args, store)
        _check_deadline(epoch, args.vote_period)
        proposal = propose_release(
            store,
            build_hash=build_hash,
            attestations=attestations,
            signer_set=config.signers,
            threshold=args.threshold,
            proposer=proposer,
            epoch=epoch,
            vote_period_epochs=args.vote_period,
            vote_quorum=args.vote_quorum,
        )
    _emit(
        args,
        _proposal_dict(proposal),
        f"proposal {proposal.id} created for build {proposal.build_hash}\n"
        f"  attestations: {len(proposal.attestations)} valid of threshold {proposal.threshold}"
        f" (signer set of {len(proposal.signer_set)} from {config.source})\n"
        f"  status: {proposal.status}; votes accepted until epoch {proposal.deadline_epoch}"
        f" (vote quorum {_weight(proposal.vote_quorum)})\n"
        f"  next: releasesim gov approve-release --id {proposal.id}",
    )
    return 0


def _check_deadline(epoch: int, vote_period: int) -> None:
    if epoch + vote_period > MAX_INT:
        raise MalformedInput(
            f"--vote-period: deadline epoch {epoch} + {vote_period} exceeds {MAX_INT}"
        )


def _existing_proposal_store(args: argparse.Namespace) -> GovernanceStore:
    """The store for commands on an existing proposal; a missing store knows no id."""
    path = store_path(args)
    if not path.exists():
        raise UnknownProposal(f"--id: no proposal with id {args.id} (store {path} does not exist)")
    return open_store(args)


def _status_line(proposal: Proposal) -> str:
    if proposal.status == "activated":
        return f"status: activated at epoch {proposal.activated_epoch}"
    if proposal.status == "open":
        return (
            f"status: open until the deadline epoch {proposal.deadline_epoch}; then run"
            f" releasesim gov tally --id {proposal.id}"
        )
    return "status: rejected"


def _vote_result(
    args: argparse.Namespace, store: GovernanceStore, proposal: Proposal, voter: str, choice: str
) -> int:
    counted = count_votes(proposal, store.votes(proposal.id))
    payload = _proposal_dict(proposal)
    payload.update(
        voter=voter,
        choice=choice,
        weight=args.weight,
        tally={"yes": counted.yes, "no": counted.no, "abstain": counted.abstain},
    )
    _emit(
        args,
        payload,
        f"proposal {proposal.id} (build {proposal.build_hash}): {choice} vote by {voter}"
        f" with weight {_weight(args.weight)}\n"
        f"  votes so far: yes {_weight(counted.yes)}, no {_weight(counted.no)},"
        f" abstain {_weight(counted.abstain)} (vote quorum {_weight(proposal.vote_quorum)})\n"
        f"  {_status_line(proposal)}",
    )
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    voter = args.voter or _default_actor()
    with _existing_proposal_store(args) as store:
        proposal = approve_release(
            store, args.id, voter=voter, weight=args.weight, epoch=_epoch(args, store)
        )
        return _vote_result(args, store, proposal, voter, "yes")


def cmd_vote(args: argparse.Namespace) -> int:
    voter = args.voter or _default_actor()
    with _existing_proposal_store(args) as store:
        cast_vote(
            store, args.id, voter=voter, weight=args.weight, choice=args.choice,
            epoch=_epoch(args, store),
        )
        proposal = store.get_proposal(args.id)
        assert proposal is not None
        return _vote_result(args, store, proposal, voter, args.choice)


def cmd_tally(args: argparse.Namespace) -> int:
    with _existing_proposal_store(args) as store:
        result = tally(store, args.id, epoch=_epoch(args, store))
        proposal = store.get_proposal(args.id)
    assert proposal is not None
    payload = _proposal_dict(proposal)
    payload["tally"] = {"yes": result.yes, "no": result.no, "abstain": result.abstain}
    _emit(
        args,
        payload,
        f"proposal {proposal.id} (build {proposal.build_hash}) tallied: yes {_weight(result.yes)},"
        f" no {_weight(result.no)}, abstain {_weight(result.abstain)}"
        f" (vote quorum {_weight(result.vote_quorum)})\n  {_status_line(proposal)}",
    )
    return 0


def cmd_proposals(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        proposals = store.proposals()
    if args.json:
        print(json.dumps([_proposal_dict(p) for p in proposals], indent=2))
        return 0
    if not proposals:
        print("no proposals")
        return 0
    print(f"{'id':>4}  {'status':<9}  {'threshold':>9}  {'deadline':>9}  {'proposer':<12}  hash")
    for p in proposals:
        print(
            f"{p.id:>4}  {p.status:<9}  {p.threshold:>4} of {len(p.signer_set):<2}"
            f"  {p.deadline_epoch:>9}  {p.proposer[:12]:<12}  {p.build_hash}"
        )
    return 0


def cmd_release_signers(args: argparse.Namespace) -> int:
    """``gov.release_signers``: always JSON, as the seed's JSON-RPC method returns it."""
    config = load_signer_config()
    with open_store(args) as store:
        view = release_signers(store, config.signers)
    print(json.dumps(view.to_dict(), indent=2 if args.json else None))
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        if args.json:
            counters = [
                {"name": name, "labels": labels, "value": value}
                for name, labels, value in store.counters()
            ]
            print(json.dumps(counters, indent=2))
        else:
            sys.stdout.write(render_prometheus(store))
    return 0


# -- update commands ----------------------------------------------------------------------
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
    _emit(args, payload, "\n".join(lines))
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
        _emit(args, payload, f"boot allowed: {slot.binary} is approved build {result.build_hash}")
        return 0
    restored = result.rollback.restored_hash if result.rollback else None
    text = (
        f"boot refused: {slot.binary} is build {result.build_hash} ({result.reason});"
        f" rolled back to {restored} from {slot.backup}; audit record appended to {audit.path}"
    )
    if args.json:
        _emit(args, payload, text)
    print(f"error: {text}", file=sys.stderr)
    return 1


# -- registration ---------------------------------------------------------------------------
def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--state",
        type=non_empty,
        metavar="PATH",
        help=f"governance store (else ${ENV_DB_PATH}, else {DEFAULT_DB_PATH})",
    )
    common.add_argument("--json", action="store_true", help="machine-readable output")
    return common


def _add_attestation_flags(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument(
        "--signature", action="append", required=required, metavar="SIG",
        help="hex Ed25519 signature over release:<hash> (repeat; pairs with --signer in order)",
    )
    parser.add_argument(
        "--signer", action="append", required=required, metavar="PUBKEY",
        help="hex Ed25519 public key of a configured release signer (repeat)",
    )
    parser.add_argument(
        "--threshold", type=strict_positive_int, metavar="N",
        help="required valid distinct attestations (default: the signer set size)",
    )


def _add_epoch(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--epoch", type=non_negative_int, metavar="E",
        help="act at this chain epoch (default: the store's current epoch)",
    )


def _add_voter(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--voter", type=non_empty, metavar="ADDR",
        help="voter address (default: your user name)",
    )
    parser.add_argument(
        "--weight", type=finite_non_negative, default=1.0, metavar="W",
        help="voting weight / stake (default 1)",
    )


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``gov`` group and the ``demo`` command to the top-level sub-parsers."""
    common = _common()
    gov = sub.add_parser("gov", help="release governance and update (operator CLI)")
    cmds = gov.add_subparsers(dest="command", metavar="COMMAND", parser_class=type(gov))
    cmds.required = True

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        parser = cmds.add_parser(name, parents=[common], help=help_text, description=help_text)
        parser.set_defaults(func=guard(handler))
        return parser

    p = add("propose-release", cmd_propose, "submit a ReleaseVote proposal for a signed build")
    p.add_argument("--hash", required=True, metavar="H", help="BLAKE3 build hash (64 hex)")
    _add_attestation_flags(p, required=False)
    p.add_argument(
        "--proposer", type=non_empty, metavar="ADDR",
        help="proposer address (default: your user name)",
    )
    _add_epoch(p)
    p.add_argument(
        "--vote-period", type=non_negative_int, default=0, metavar="EPOCHS",
        help="epochs until the vote deadline (default 0: approve-release tallies at once)",
    )
    p.add_argument(
        "--vote-quorum", type=finite_non_negative, default=1.0, metavar="WEIGHT",
        help="yes weight needed to activate (default 1)",
    )

    p = add("approve-release", cmd_approve, "vote yes on a proposal; tallies at the deadline")
    p.add_argument("--id", type=strict_positive_int, required=True, metavar="ID")
    _add_voter(p)
    _add_epoch(p)

    p = add("vote", cmd_vote, "cast a yes/no/abstain vote on a proposal (no tally)")
    p.add_argument("--id", type=strict_positive_int, required=True, metavar="ID")
    p.add_argument("--choice", required=True, choices=CHOICES)
    _add_voter(p)
    _add_epoch(p)

    p = add("tally", cmd_tally, "count the votes at or after the deadline; activate or reject")
    p.add_argument("--id", type=strict_positive_int, required=True, metavar="ID")
    _add_epoch(p)

    add("proposals", cmd_proposals, "list the proposals in the store")
    add("release-signers", cmd_release_signers, "the configured signers and latest threshold")

    p = add("fetch-release", cmd_fetch, "download <hash>.bin from $TB_RELEASE_SOURCE_URL, verify")
    p.add_argument("--hash", required=True, metavar="H", help="BLAKE3 build hash (64 hex)")
    _add_attestation_flags(p, required=False)
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

    p = add("boot-check", cmd_boot_check, "refuse to start an unapproved binary and roll back")
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

    add("metrics", cmd_metrics, "Prometheus text exposition of the release counters")

    from releasesim.cli import demo

    demo.register(sub)
