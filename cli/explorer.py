"""The ``explorer`` command group: browse the governance store's release history.

Sub-commands::

    explorer release-history [--state DB] [--proposer P] [--start-epoch E] [--end-epoch E]
                             [--page N] [--page-size M] [--json]
    explorer timeline [--state DB] [--bucket-s S] [--json]
    explorer persist-history [--state DB] [--json]
    explorer serve [--state DB] [--host 127.0.0.1] [--port 8088] [--quiet]
                   [--store-root DIR] [--workers N] [--timeout S]

``--state`` defaults like every ``gov`` command (``TB_GOV_DB_PATH``, else
``~/.the_block/governance.db``). ``release-history`` and ``timeline`` never write the
store; a missing store reads as empty (as for ``gov proposals``). ``serve`` runs
``releasesim.explorer.http`` until interrupted and prints the URL it serves on; it reads
stores read-only, ``?store=`` only under ``--store-root`` (default: the ``--state`` folder).
``persist-history`` is the one explorer command that writes: it upserts the proposer and
activation metadata of every approved release into the store's ``release_history`` table
(the seed's server did this on every cache miss; ours never writes, so a reader cannot
change a store, and an operator who wants the table asks for it).

Only parses, calls ``model.explorer`` / ``explorer.http`` and prints; errors derived
from ``ReleasesimError`` become one line via ``releasesim.cli.main``.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from pathlib import Path
from typing import Any

from releasesim.cli.args import (
    non_empty,
    port,
    positive_seconds,
    show_usage,
    strict_int,
    strict_positive_int,
)
from releasesim.cli.gov import emit, guard, open_store, store_path
from releasesim.explorer.http import ExplorerApp, ServerLimits, make_server
from releasesim.explorer.server import DEFAULT_REQUEST_TIMEOUT_S, DEFAULT_WORKERS
from releasesim.model.errors import MalformedInput
from releasesim.model.explorer import (
    DEFAULT_BUCKET_S,
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    InvalidParameter,
    persist_release_history,
    release_timeline,
)
from releasesim.model.explorer import release_history as history_query
from releasesim.model.store import GovernanceStore

DEFAULT_PORT = 8088
DEFAULT_TIMEOUT_S = DEFAULT_REQUEST_TIMEOUT_S
MAX_WORKERS = 256
MAX_TIMEOUT_S = 3600.0


def _host(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty (it would bind every interface)")
    return text.strip()


def _flag_error(exc: InvalidParameter) -> MalformedInput:
    """``InvalidParameter('page_size', ...)`` as the CLI names it: ``--page-size: ...``."""
    flag = "--" + exc.parameter.replace("_", "-")
    return MalformedInput(flag + str(exc)[len(exc.parameter) :])


def _short(key: str) -> str:
    return key[:12] + "…"


def _history_table(page: dict[str, Any], where: str) -> str:
    entries = page["entries"]
    if not entries:
        return f"no approved releases match (total {page['total']}) in {where}"
    first = page["page"] * page["page_size"] + 1
    lines = [
        f"releases {first}-{first + len(entries) - 1} of {page['total']}"
        f" (page {page['page']}, page size {page['page_size']}) in {where}",
        f"{'epoch':>8}  {'proposer':<14} {'quorum':<12} {'installs':>8}  {'last install':>12}"
        "  build hash",
    ]
    for e in entries:
        quorum = e["quorum"]
        status = "ok" if e["quorum_met"] else "SHORT"
        last = "-" if e["last_install_ts"] is None else str(e["last_install_ts"])
        lines.append(
            f"{e['activated_epoch']:>8}  {e['proposer'][:14]:<14}"
            f" {len(quorum['valid_signers'])}/{e['signature_threshold']} {status:<8}"
            f" {e['install_count']:>8}  {last:>12}  {e['build_hash']}"
        )
        if quorum["problem"]:
            lines.append(f"{'':>10}quorum problem: {quorum['problem']}")
        if quorum["missing_signers"]:
            missing = ", ".join(_short(k) for k in quorum["missing_signers"])
            lines.append(f"{'':>10}missing signers: {missing}")
        for invalid in quorum["invalid_signers"]:
            lines.append(
                f"{'':>10}invalid signer: {_short(invalid['signer'])} ({invalid['reason']})"
            )
    return "\n".join(lines)


def cmd_release_history(args: argparse.Namespace) -> int:
    path = store_path(args)
    with open_store(args, readonly=True) as store:
        try:
            page = history_query(
                store,
                proposer=args.proposer,
                start_epoch=args.start_epoch,
                end_epoch=args.end_epoch,
                page=args.page,
                page_size=args.page_size,
            )
        except InvalidParameter as exc:
            raise _flag_error(exc) from None
    if args.json:
        print(json.dumps(page, indent=2))
    else:
        where = str(path) if path.exists() else f"{path} (store does not exist)"
        print(_history_table(page, where))
    return 0


def cmd_persist_history(args: argparse.Namespace) -> int:
    """Write the ``release_history`` table (a writer: the store must exist)."""
    path = store_path(args)
    with GovernanceStore.open(path, create=False) as store:
        rows = persist_release_history(store)
    emit(args, {"store": str(path), "rows": rows},
         f"release_history of {path}: {rows} approved release(s) written")
    return 0


def cmd_timeline(args: argparse.Namespace) -> int:
    if args.bucket_s < 1:
        raise MalformedInput(f"--bucket-s: must be >= 1, got {args.bucket_s}")
    with open_store(args, readonly=True) as store:
        try:
            points = release_timeline(store, args.bucket_s)
        except InvalidParameter as exc:
            raise _flag_error(exc) from None
    if args.json:
        print(json.dumps({"bucket_s": args.bucket_s, "points": points}, indent=2))
        return 0
    if not points:
        print("no installs recorded")
        return 0
    print(f"{'bucket start':>12}  {'count':>6}  {'cumulative':>10}  build hash")
    for p in points:
        print(f"{p['ts']:>12}  {p['count']:>6}  {p['cumulative']:>10}  {p['build_hash']}")
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(args: argparse.Namespace) -> int:
    path = store_path(args)
    root = path.absolute().parent if args.store_root is None else Path(args.store_root)
    if not root.expanduser().is_dir():
        raise MalformedInput(f"--store-root: {root} is not a folder")
    if args.timeout > MAX_TIMEOUT_S:
        raise MalformedInput(f"--timeout: must be at most {MAX_TIMEOUT_S:.0f} s")
    if args.workers > MAX_WORKERS:
        raise MalformedInput(f"--workers: must be at most {MAX_WORKERS}, got {args.workers}")
    app = ExplorerApp(path, store_root=root)
    limits = ServerLimits(workers=args.workers, request_timeout_s=args.timeout)
    server = make_server(app, args.host, args.port, quiet=args.quiet, limits=limits)
    if not _is_loopback(args.host):
        print(
            f"warning: serving on non-loopback address {args.host}; any client that can reach"
            f" it may read any store under {app.root.folder} via ?store=",
            file=sys.stderr,
        )
    print(
        f"releasesim explorer serving {path} on {server.url}"
        " (GET /releases, /releases/timeline, /metrics); Ctrl-C to stop",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("explorer stopped", file=sys.stderr)
    finally:
        server.server_close()
        app.close()
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``explorer`` group to the top-level sub-parsers."""
    explorer = sub.add_parser("explorer", help="browse approved releases (CLI and HTTP)",
                              description="Browse the approved releases of a governance store.")
    cmds = explorer.add_subparsers(dest="command", metavar="COMMAND", parser_class=type(explorer))
    explorer.set_defaults(func=show_usage(explorer))

    def add(name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
        parser = cmds.add_parser(name, help=help_text, description=help_text)
        parser.add_argument(
            "--state", metavar="DB", type=non_empty,
            help="governance store (else $TB_GOV_DB_PATH, else ~/.the_block/governance.db)",
        )
        parser.set_defaults(func=guard(handler))
        return parser

    p = add("persist-history", cmd_persist_history,
            "write the approved releases' proposer/activation metadata into the store's"
            " release_history table (the only explorer command that writes)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add("release-history", cmd_release_history, "list approved releases, newest first")
    p.add_argument("--proposer", metavar="P", help="only this proposer (case-insensitive)")
    p.add_argument("--start-epoch", type=strict_int, metavar="E", help="activated at or after E")
    p.add_argument("--end-epoch", type=strict_int, metavar="E", help="activated at or before E")
    p.add_argument(
        "--page", type=strict_int, default=0, metavar="N", help="0-based page (default 0)"
    )
    p.add_argument(
        "--page-size", type=strict_int, default=DEFAULT_PAGE_SIZE, metavar="M",
        help=f"entries per page (default {DEFAULT_PAGE_SIZE}, capped at {MAX_PAGE_SIZE})",
    )
    p.add_argument("--json", action="store_true", help="the GET /releases page as JSON")

    p = add("timeline", cmd_timeline, "install counts per release over time (chart data)")
    p.add_argument(
        "--bucket-s", type=strict_int, default=DEFAULT_BUCKET_S, metavar="S",
        help=f"bucket width in seconds (default {DEFAULT_BUCKET_S})",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add("serve", cmd_serve, "serve GET /releases, /releases/timeline and /metrics over HTTP")
    p.add_argument(
        "--host", type=_host, default="127.0.0.1", help="address to bind (default 127.0.0.1)"
    )
    p.add_argument(
        "--port", type=port, default=DEFAULT_PORT, metavar="N",
        help=f"port (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    p.add_argument("--quiet", action="store_true", help="do not log each request")
    p.add_argument(
        "--store-root", metavar="DIR", type=non_empty,
        help="?store= may only name stores under DIR (default: the folder of --state)",
    )
    p.add_argument(
        "--workers", type=strict_positive_int, default=DEFAULT_WORKERS, metavar="N",
        help=f"threads answering requests (default {DEFAULT_WORKERS})",
    )
    p.add_argument(
        "--timeout", type=positive_seconds, default=DEFAULT_TIMEOUT_S, metavar="S",
        help="seconds a request (or an idle keep-alive connection) may take to arrive, and a"
        f" client to take its answer (default {DEFAULT_TIMEOUT_S:.0f})",
    )
