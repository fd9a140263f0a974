"""The ``ops`` command group: the seed document's operator tools.

Sub-commands::

    ops migrate-overlay-store [OLD] [NEW] [--format node|rich] [--now T] [--force] [--json]
    ops release-notes (--state-dir D | --history FILE) [--since-epoch E] [--since-proposal P]
                      [--json]
    ops rollback-drill [--workdir DIR] [--source file|http] [--json]

``migrate-overlay-store`` defaults to ``~/.the_block/overlay_peers.json`` ->
``~/.the_block/overlay/peers.json`` and writes the store the node reads
(``releasesim.model.overlay``), stamped with wall time unless ``--now`` pins it;
``release-notes`` reads ``<D>/governance/history/dependency_policy.json`` (or the earlier
``<D>/governance/backend_history.jsonl``) or ``FILE`` (``releasesim.model.release_notes``);
``rollback-drill`` runs ``releasesim.model.rollback_drill`` in a temporary folder (kept only with
``--workdir``). Formats are documented in ``docs/ops.md``.

Exit codes: 0 success, 1 a drill step misbehaved, 2 unusable input (a malformed peer id,
a bad history line, ...). Only parses, calls and prints.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from releasesim.cli.args import non_empty, non_negative_int, show_usage
from releasesim.cli.gov import expand_path, guard
from releasesim.model.errors import InputError
from releasesim.model.overlay import (
    DEFAULT_NEW,
    DEFAULT_OLD,
    STORE_FORMATS,
    migrate_overlay_store,
)
from releasesim.model.release_notes import history_path, load_history, render_markdown, summarise
from releasesim.model.rollback_drill import SOURCES, StepResult, run_drill


def _empty_workdir(text: str) -> Path:
    """``--workdir``: an empty folder or a path that does not exist yet (then created)."""
    workdir = expand_path(text, "--workdir")
    if workdir.exists() and not workdir.is_dir():
        raise InputError(f"--workdir {workdir}: not a folder")
    if workdir.is_dir() and any(workdir.iterdir()):
        raise InputError(f"--workdir {workdir}: must be empty or absent")
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InputError(f"--workdir {workdir}: cannot create: {reason}") from None
    return workdir


def cmd_migrate(args: argparse.Namespace) -> int:
    old = expand_path(args.old, "OLD")
    new = expand_path(args.new, "NEW")
    now = time.time() if args.now is None else args.now
    report = migrate_overlay_store(
        old, new, now=now, force=args.force, store_format=args.store_format
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    source = str(report.old) if report.old_exists else f"{report.old} (absent: no peers)"
    print(
        f"migrated {report.peers} peer(s) from {source} to {report.new}, {report.store_format}"
        f" format ({report.converted_hex} converted from hex, {report.kept_base58} already"
        f" base58-check, {report.duplicates} duplicate(s) dropped); stamped {report.migrated_at}"
    )
    return 0


def cmd_release_notes(args: argparse.Namespace) -> int:
    if args.history is not None:
        path = expand_path(args.history, "--history")
    else:
        state_dir = expand_path(args.state_dir, "--state-dir")
        if not state_dir.is_dir():
            raise InputError(f"--state-dir {state_dir}: not a directory")
        path = history_path(state_dir)
    summary = summarise(
        load_history(path), since_epoch=args.since_epoch, since_proposal=args.since_proposal
    )
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(render_markdown(summary))
    return 0


def _print_step(step: StepResult) -> None:
    print(f"step {step.number}: {step.title}: {'ok' if step.ok else 'FAILED'}", flush=True)
    print(f"  {step.detail}", flush=True)


def _drill(args: argparse.Namespace, workdir: Path) -> int:
    report = run_drill(
        workdir, source=args.source, on_step=None if args.json else _print_step
    )
    payload: dict[str, Any] = report.to_dict()
    if args.json:
        print(json.dumps(payload, indent=2))
    else:
        failed_setup = [s for s in report.steps if s.number == 0]
        for step in failed_setup:
            print(f"setup: FAILED\n  {step.detail}")
        verdict = "passed" if report.ok else "FAILED"
        kept = f"; files kept in {workdir}" if args.workdir else ""
        print(f"rollback drill {verdict} ({len(report.steps)} step(s) run){kept}")
    return 0 if report.ok else 1


def cmd_rollback_drill(args: argparse.Namespace) -> int:
    if args.workdir is not None:
        return _drill(args, _empty_workdir(args.workdir))
    with tempfile.TemporaryDirectory(prefix="releasesim-drill-") as folder:
        return _drill(args, Path(folder))


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``ops`` group to the top-level sub-parsers."""
    ops = sub.add_parser("ops", help="operator tools: peer-store migration, notes, drills")
    cmds = ops.add_subparsers(dest="command", metavar="COMMAND", parser_class=type(ops),
                              help="the operator tool to run")
    ops.set_defaults(func=show_usage(ops))  # a bare `releasesim ops` prints its usage, exit 2

    p = cmds.add_parser(
        "migrate-overlay-store",
        help="migrate a legacy overlay peer store to the store the node reads",
        description="Read every legacy layout the original node wrote (JSON list of ids,"
        " of 'ID ADDR' strings or of {peer|id, address} objects, {\"peers\": [...]},"
        " text lines 'ID [ADDR]'; a missing file means no peers), canonicalise each id to"
        " base58-check and write the new store atomically. Nothing is written if any entry"
        " is malformed. Formats: docs/ops.md.",
    )
    p.add_argument("old", nargs="?", type=non_empty, default=str(DEFAULT_OLD), metavar="OLD",
                   help=f"legacy peer store (default {DEFAULT_OLD})")
    p.add_argument("new", nargs="?", type=non_empty, default=str(DEFAULT_NEW), metavar="NEW",
                   help=f"canonical peer store to write (default {DEFAULT_NEW})")
    p.add_argument("--format", dest="store_format", choices=STORE_FORMATS, default="node",
                   help="node: {\"peers\": [{address, id, last_seen}]}, what the node reads"
                   " (default); rich: releasesim's audit layout with provenance and every"
                   " legacy field")
    p.add_argument("--now", type=non_negative_int, metavar="T",
                   help="stamp last_seen with unix time T instead of the wall clock")
    p.add_argument("--force", action="store_true", help="replace NEW if it exists")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.set_defaults(func=guard(cmd_migrate))

    p = cmds.add_parser(
        "release-notes",
        help="summarise the runtime/transport/storage backend policies of the cycle",
        description="Summarise the dependency policies governance approved (previous and"
        " current backends, added and removed, per kind and per update) as Markdown (or"
        " JSON), ready to paste into the release notes. Formats: docs/ops.md.",
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--state-dir", type=non_empty, metavar="D",
                       help="node state folder (reads D/governance/history/"
                       "dependency_policy.json, or D/governance/backend_history.jsonl if only"
                       " that exists)")
    where.add_argument("--history", type=non_empty, metavar="FILE",
                       help="an exported history: the node's JSON array or the JSON-lines log")
    p.add_argument("--since-epoch", type=non_negative_int, default=0, metavar="E",
                   help="only policies with epoch >= E (default 0: the whole history)")
    p.add_argument("--since-proposal", type=non_negative_int, metavar="P",
                   help="only policies with proposal_id >= P (default: no proposal filter)")
    p.add_argument("--json", action="store_true", help="JSON instead of Markdown")
    p.set_defaults(func=guard(cmd_release_notes))

    p = cmds.add_parser(
        "rollback-drill",
        help="rehearse the four-step rollback drill offline with real files",
        description="Fetch a known-good release, stage a corrupted binary, watch the boot"
        " check roll back, confirm the audit record and counters, reinstall.",
    )
    p.add_argument("--workdir", type=non_empty, metavar="DIR",
                   help="run in DIR and keep the files (default: a temporary folder)")
    p.add_argument("--source", choices=SOURCES, default="file",
                   help="release source: file:// folder or an HTTP server on 127.0.0.1")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.set_defaults(func=guard(cmd_rollback_drill))
