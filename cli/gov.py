"""The ``gov`` command group: store, proposal and vote commands, and the shared helpers.

Sub-commands of this module (same flags as the seed document; ``contract gov ...`` works
verbatim)::

    gov propose-release --hash H --signature S --signer K [...] [--threshold N]
    gov approve-release --id ID [--voter ADDR] [--weight W] [--epoch E]
    gov vote --id ID --choice yes|no|abstain [--voter ADDR] [--weight W] [--epoch E]
    gov tally --id ID [--epoch E]
    gov proposals
    gov release-signers
    gov metrics
    gov migrate-store

``gov fetch-release``/``boot-check`` live in ``cli.gov_release``, ``gov keygen``/``sign``/
``hash`` in ``cli.gov_keys`` (``cli.main`` adds them to this group); they, ``cli.explorer``
and ``cli.ops`` use the helpers here (``guard``, ``open_store``, ``store_path``, ...).

Every store command takes ``--state PATH`` (else ``TB_GOV_DB_PATH``, else
``~/.the_block/governance.db``) and ``--json``. Read-only commands, and commands that
can only fail on an empty store, never create a missing store: they see an empty one.
Commands that only read (``proposals``, ``release-signers``, ``metrics``, the explorer's,
``boot-check``) open the store with ``open_store(args, readonly=True)``
(``GovernanceStore.open_readonly``): they create, migrate and rewrite nothing and never
wait for a writer; ``gov migrate-store`` brings an older store to the current schema.
Weights and quorums are exact (``--weight 9007199254740993`` is kept as given).

**Chain epoch.** The CLI has no chain to ask, so the current epoch is the store's
(``releasesim.model.governance.chain_epoch``: the latest epoch at which anything was recorded, 0
for a new store); ``--epoch E`` acts at epoch E instead, which is how time advances. A
proposal gets ``deadline = epoch + --vote-period`` (default 0), and ``approve-release``
tallies as soon as ``epoch >= deadline``, so ``propose-release`` then ``approve-release``
with the defaults activates the release, however much wall-clock time passes between.

Exit codes: 0 success, 1 refused by the rules, 2 unusable input. This module only
parses, calls ``model`` and prints; the rules live in ``model``. Errors derived from
``releasesim.model.errors.ReleasesimError`` are turned into one line by ``releasesim.cli.main``.
Imports only the standard library, ``cli.args`` and ``model`` (``gov --help`` starts fast).
"""

from __future__ import annotations

import argparse
import functools
import getpass
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from releasesim.cli.args import (
    MAX_INT,
    non_empty,
    non_negative_int,
    show_usage,
    strict_positive_int,
)
from releasesim.model.crypto import parse_hash
from releasesim.model.errors import (
    InputError,
    MalformedInput,
    QuorumError,
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
from releasesim.model.metrics import counter_samples, render_prometheus
from releasesim.model.quorum import Attestation, threshold_problem
from releasesim.model.signers import load_signer_config
from releasesim.model.store import (
    CHOICES,
    SCHEMA_VERSION,
    GovernanceStore,
    Proposal,
    to_stake,
)

ENV_DB_PATH = "TB_GOV_DB_PATH"
DEFAULT_DB_PATH = Path("~/.the_block/governance.db")

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
        except BrokenPipeError:
            raise  # the reader of stdout went away: releasesim.cli.main ends quietly
        except sqlite3.Error as exc:
            where = _store_label(args) if hasattr(args, "state") else "governance store"
            raise StoreError(f"governance store {where}: unreadable ({exc})") from None
        except OSError as exc:
            name = exc.filename if exc.filename is not None else "a file"
            reason = exc.strerror or " ".join(str(exc).split())
            raise InputError(f"{name}: {reason}") from None

    return run


def open_store(
    args: argparse.Namespace, *, create: bool = False, readonly: bool = False
) -> GovernanceStore:
    """Open the governance store: a writer, or with ``readonly`` a reader.

    A missing file is created only with ``create``; otherwise the command sees an empty
    in-memory store and nothing is written to disk. The default folder
    ``~/.the_block`` is created on demand; an explicit path's folder must exist.
    ``readonly`` (every command that only reads): ``GovernanceStore.open_readonly``, which
    creates, migrates and rewrites nothing and never waits for a writer in WAL mode.
    """
    path = store_path(args)
    if not create and (not path.exists() or (path.is_file() and path.stat().st_size == 0)):
        # a missing or zero-byte store reads as empty and is never written by a reader
        return GovernanceStore.memory()
    if readonly:
        return GovernanceStore.open_readonly(path)
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


def emit(args: argparse.Namespace, payload: dict[str, Any] | list[Any], text: str) -> None:
    """Print ``payload`` as JSON with ``--json``, else ``text``."""
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
        "vote_quorum": stake_json(proposal.vote_quorum),
        "activated_epoch": proposal.activated_epoch,
    }


def stake_arg(text: str) -> Fraction:
    """argparse type of ``--weight``/``--vote-quorum``: an exact stake (``to_stake``)."""
    try:
        return to_stake(text, "value")
    except MalformedInput as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("value: ")) from None


def stake_json(value: Fraction | float) -> int | float:
    """An exact stake in JSON: an integer when whole (exact at any size), else a float."""
    exact = Fraction(value)
    if exact.denominator == 1:
        return int(exact)
    try:
        return float(exact)
    except OverflowError:  # a fractional sum beyond the float range: shown to the unit
        return int(exact)


def _weight(value: Fraction | float) -> str:
    shown = stake_json(value)
    return str(shown) if isinstance(shown, int) else f"{shown:g}"


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
    emit(
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


def _vote_report(
    args: argparse.Namespace, store: GovernanceStore, proposal: Proposal, voter: str, choice: str
) -> tuple[dict[str, Any], str]:
    """The JSON payload and text of a vote; read inside the vote's transaction, so a damaged
    vote met here undoes the new one (an unusable command leaves the store unchanged)."""
    counted = count_votes(proposal, store.votes(proposal.id))
    payload = _proposal_dict(proposal)
    payload.update(
        voter=voter,
        choice=choice,
        weight=stake_json(args.weight),
        tally=_tally_json(counted.yes, counted.no, counted.abstain),
    )
    return payload, (
        f"proposal {proposal.id} (build {proposal.build_hash}): {choice} vote by {voter}"
        f" with weight {_weight(args.weight)}\n"
        f"  votes so far: yes {_weight(counted.yes)}, no {_weight(counted.no)},"
        f" abstain {_weight(counted.abstain)} (vote quorum {_weight(proposal.vote_quorum)})\n"
        f"  {_status_line(proposal)}"
    )


def cmd_approve(args: argparse.Namespace) -> int:
    voter = args.voter or _default_actor()
    with _existing_proposal_store(args) as store, store.transaction():
        proposal = approve_release(
            store, args.id, voter=voter, weight=args.weight, epoch=_epoch(args, store)
        )
        payload, text = _vote_report(args, store, proposal, voter, "yes")
    emit(args, payload, text)
    return 0


def cmd_vote(args: argparse.Namespace) -> int:
    voter = args.voter or _default_actor()
    with _existing_proposal_store(args) as store, store.transaction():
        cast_vote(
            store, args.id, voter=voter, weight=args.weight, choice=args.choice,
            epoch=_epoch(args, store),
        )
        proposal = store.get_proposal(args.id)
        assert proposal is not None
        payload, text = _vote_report(args, store, proposal, voter, args.choice)
    emit(args, payload, text)
    return 0


def cmd_tally(args: argparse.Namespace) -> int:
    with _existing_proposal_store(args) as store, store.transaction():
        result = tally(store, args.id, epoch=_epoch(args, store))
        proposal = store.get_proposal(args.id)
    assert proposal is not None
    payload = _proposal_dict(proposal)
    payload["tally"] = _tally_json(result.yes, result.no, result.abstain)
    emit(
        args,
        payload,
        f"proposal {proposal.id} (build {proposal.build_hash}) tallied: yes {_weight(result.yes)},"
        f" no {_weight(result.no)}, abstain {_weight(result.abstain)}"
        f" (vote quorum {_weight(result.vote_quorum)})\n  {_status_line(proposal)}",
    )
    return 0


def _tally_json(yes: Fraction, no: Fraction, abstain: Fraction) -> dict[str, int | float]:
    return {"yes": stake_json(yes), "no": stake_json(no), "abstain": stake_json(abstain)}


def cmd_proposals(args: argparse.Namespace) -> int:
    with open_store(args, readonly=True) as store:
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
    with open_store(args, readonly=True) as store:
        view = release_signers(store, config.signers)
    print(json.dumps(view.to_dict(), indent=2 if args.json else None))
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    with open_store(args, readonly=True) as store:
        if args.json:  # every counter, zeros included, labels as an object
            print(json.dumps([sample.to_dict() for sample in counter_samples(store)], indent=2))
        else:
            sys.stdout.write(render_prometheus(store))
    return 0


def cmd_migrate_store(args: argparse.Namespace) -> int:
    """Bring an existing store to the current schema (readers report an older one)."""
    path = store_path(args)
    with GovernanceStore.open(path, create=False) as store:
        before = store.migrated_from
    if before is None:
        text = (f"governance store {path}: already at schema version {SCHEMA_VERSION};"
                " nothing to migrate")
    else:
        text = f"governance store {path}: migrated from schema version {before} to {SCHEMA_VERSION}"
    emit(args, {"store": str(path), "migrated_from": before, "schema_version": SCHEMA_VERSION},
         text)
    return 0


# -- registration ---------------------------------------------------------------------------
def _common(*, store: bool) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    if store:
        common.add_argument(
            "--state",
            type=non_empty,
            metavar="PATH",
            help=f"governance store (else ${ENV_DB_PATH}, else {DEFAULT_DB_PATH})",
        )
    common.add_argument("--json", action="store_true", help="machine-readable output")
    return common


def add_command(
    commands: argparse._SubParsersAction,  # type: ignore[type-arg]
    name: str,
    handler: Handler,
    help_text: str,
    *,
    store: bool = True,
) -> argparse.ArgumentParser:
    """Add ``gov NAME`` running ``guard(handler)``, with ``--json`` (and ``--state`` with
    ``store``); ``help_text`` is both the line in ``gov --help`` and the description."""
    parser = commands.add_parser(
        name, parents=[_common(store=store)], help=help_text, description=help_text
    )
    parser.set_defaults(func=guard(handler))
    return parser


def add_attestation_flags(parser: argparse.ArgumentParser) -> None:
    """``--signature``/``--signer`` pairs (repeatable) and ``--threshold``."""
    parser.add_argument(
        "--signature", action="append", metavar="SIG",
        help="hex Ed25519 signature over release:<hash> (repeat; pairs with --signer in order)",
    )
    parser.add_argument("--signer", action="append", metavar="PUBKEY",
                        help="hex Ed25519 public key of a configured release signer (repeat)")
    parser.add_argument("--threshold", type=strict_positive_int, metavar="N",
                        help="required valid distinct attestations (default: the signer set size)")


def _add_id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--id", type=strict_positive_int, required=True, metavar="ID",
                        help="the proposal id (see gov proposals)")


def _add_epoch(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epoch", type=non_negative_int, metavar="E",
                        help="act at this chain epoch (default: the store's current epoch)")


def _add_voter(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--voter", type=non_empty, metavar="ADDR",
                        help="voter address (default: your user name)")
    parser.add_argument("--weight", type=stake_arg, default="1", metavar="W",
                        help="voting weight / stake, kept exactly (default 1)")


def register(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:  # type: ignore[type-arg]
    """Add the ``gov`` group with its store, proposal and vote commands; return the group's
    sub-parsers, to which ``releasesim.cli.main`` adds the commands of ``gov_release`` and
    ``gov_keys``. ``releasesim gov`` alone prints the group's help (exit 2)."""
    gov = sub.add_parser(
        "gov", help="release governance and update (operator CLI)",
        description="Release governance, update and key tooling for operators.",
    )
    cmds = gov.add_subparsers(dest="command", metavar="COMMAND", parser_class=type(gov))
    gov.set_defaults(func=show_usage(gov))

    p = add_command(cmds, "propose-release", cmd_propose,
                    "submit a ReleaseVote proposal for a signed build")
    p.add_argument("--hash", required=True, metavar="H", help="BLAKE3 build hash (64 hex)")
    add_attestation_flags(p)
    p.add_argument("--proposer", type=non_empty, metavar="ADDR",
                   help="proposer address (default: your user name)")
    _add_epoch(p)
    p.add_argument(
        "--vote-period", type=non_negative_int, default=0, metavar="EPOCHS",
        help="epochs until the vote deadline (default 0: approve-release tallies at once)",
    )
    p.add_argument("--vote-quorum", type=stake_arg, default="1", metavar="WEIGHT",
                   help="yes weight needed to activate, kept exactly (default 1)")

    p = add_command(cmds, "approve-release", cmd_approve,
                    "vote yes on a proposal; tallies at the deadline")
    _add_id(p)
    _add_voter(p)
    _add_epoch(p)

    p = add_command(cmds, "vote", cmd_vote, "cast a yes/no/abstain vote on a proposal (no tally)")
    _add_id(p)
    p.add_argument("--choice", required=True, choices=CHOICES,
                   help="the vote: " + ", ".join(CHOICES))
    _add_voter(p)
    _add_epoch(p)

    p = add_command(cmds, "tally", cmd_tally,
                    "count the votes at or after the deadline; activate or reject")
    _add_id(p)
    _add_epoch(p)

    add_command(cmds, "proposals", cmd_proposals, "list the proposals in the store")
    add_command(cmds, "release-signers", cmd_release_signers,
                "the configured signers and latest threshold")
    add_command(cmds, "metrics", cmd_metrics,
                "Prometheus text exposition of the release counters (--json: a list)")
    add_command(cmds, "migrate-store", cmd_migrate_store,
                "bring an existing store to the current schema (read-only commands never do)")
    return cmds
