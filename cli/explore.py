"""The ``explore`` command: which knobs drive the blast radius, and where it goes wrong.

    releasesim explore [SCENARIO] --vary KNOB=LOW..HIGH [--vary KNOB=a,b,c ...]
                       [--design lhs|sobol|morris] [--samples N] [--replications R]
                       [--seed S] [--set key.path=value ...] [--executor serial|process|dask]
                       [--workers W] [--scheduler URL] [--out DIR] [--resume]
                       [--outcome COLUMN ...] [--interest 'COLUMN OP VALUE' ...]
                       [--json] [--quiet]

Draws the design (``sim.design``), checks every design point against the scenario schema,
runs all ``points x replications`` as one batch with common random numbers
(``sim.explore``), writes the experiments table and the report (``reports.exploration``:
sensitivity indices for Morris/Sobol designs, PRIM boxes and tree rules for the outcomes of
interest) into ``--out`` (default ``runs/explore-<scenario>-<UTC time>``), and prints the
ranking and the rules. ``--resume`` continues an interrupted exploration in ``--out``
without recomputing finished points. ``releasesim report DIR`` rebuilds the report.

Exit codes: 0 ok, 2 unusable input (bad knob spec, a knob the scenario does not have, a
design without SALib, an existing ``--out`` without ``--resume``), 130 interrupted.
Wiring only; registered by ``releasesim.cli.main``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from releasesim.cli.args import EXECUTORS, fail, positive_int, seed
from releasesim.cli.output import StepProgress
from releasesim.model.errors import ReleasesimError
from releasesim.sim.errors import ScenarioError

EXIT_OK = 0
DEFAULT_SAMPLES = 16


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``explore`` to the CLI."""
    p = sub.add_parser(
        "explore", help="vary knobs over ranges: sensitivity indices and scenario discovery",
        description="Run a design over uncertain knobs; rank the knobs that drive each"
        " outcome (Morris/Sobol) and find the knob ranges where an outcome goes bad (PRIM).")
    p.add_argument("scenario", nargs="?", default="baseline", metavar="SCENARIO",
                   help="a shipped scenario name or a TOML path (default: baseline)")
    p.add_argument("--vary", action="append", default=[], metavar="KNOB=LOW..HIGH|a,b,c",
                   help="a knob and its range (integer range when both ends are integers;"
                   " a comma list is categorical); repeat for more knobs")
    p.add_argument("--design", default="lhs", metavar="lhs|sobol|morris",
                   help="lhs (discovery), morris (screening) or sobol (indices); default lhs")
    p.add_argument("--samples", type=positive_int, default=DEFAULT_SAMPLES, metavar="N",
                   help="LHS points, Morris trajectories or Sobol base samples (power of 2);"
                   f" default {DEFAULT_SAMPLES}")
    p.add_argument("--replications", "-n", type=positive_int, metavar="R",
                   help="replications per design point (default: the scenario's, else 20)")
    p.add_argument("--seed", "-s", type=seed, metavar="S",
                   help="root seed: the design and every point's replications (S, r)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="key.path=value", help="override a scenario value for every point")
    p.add_argument("--executor", "-e", choices=EXECUTORS, default="process",
                   help="where replications run (default: process)")
    p.add_argument("--workers", "-w", type=positive_int, metavar="W",
                   help="worker processes (default: CPU count)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="Dask scheduler address (--executor dask)")
    p.add_argument("--out", "-o", type=Path, metavar="DIR",
                   help="exploration directory (default: runs/explore-<scenario>-<time>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the exploration in --out: run only unfinished points")
    p.add_argument("--outcome", action="append", default=None, metavar="COLUMN",
                   help="an outcome to rank the knobs for (default: the main blast-radius"
                   " outcomes); repeat for more")
    p.add_argument("--interest", action="append", default=None, metavar="'COLUMN OP VALUE'",
                   help="a yes/no outcome to find boxes for, e.g. 'peak_down_stake>=1/3'"
                   " (default: stake down >= 1/3, lagging > 5%%, consensus stalled)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_explore)


def _errors() -> tuple[type[BaseException], ...]:
    from releasesim.reports.discovery import DiscoveryError
    from releasesim.reports.report import ReportError
    from releasesim.reports.sensitivity import SensitivityError

    return (ScenarioError, ReleasesimError, ReportError, DiscoveryError, SensitivityError)


def _print_text(report: Any, directory: Path) -> None:
    for result in report.sensitivity:
        if result.indices.empty:
            print(f"{result.outcome}: no indices ({'; '.join(result.warnings)[:200]})")
            continue
        key = "ST" if result.design == "sobol" else "mu_star"
        ranked = ", ".join(f"{row.knob} {getattr(row, key):.3g}"
                           for row in result.indices.head(5).itertuples())
        print(f"{result.outcome}: {key} {ranked}"
              + (f" ({len(result.warnings)} warnings)" if result.warnings else ""))
    for found in report.discovery:
        if found.problem is not None:
            print(f"where {found.interest.text}: no boxes ({found.problem})")
            continue
        for rule in found.rules[:2] or ["no box denser than the whole table"]:
            print(f"where {found.interest.text}: {rule}")
        if found.note is not None:
            print(f"  ({found.note})")
    print(f"report: {directory / 'report.html'}", file=sys.stderr)


def cmd_explore(args: argparse.Namespace) -> int:
    from releasesim.reports.exploration import (
        build_exploration_report,
        load_exploration,
        parse_interest,
        report_json,
        save_exploration_report,
    )
    from releasesim.sim.executors import probe_scheduler
    from releasesim.sim.explore import plan_exploration, run_exploration
    from releasesim.sim.runner import default_out_dir

    progress = StepProgress(quiet=args.quiet)
    try:
        for text in args.interest or []:
            parse_interest(text)  # checked before anything runs
        plan = plan_exploration(
            args.scenario, args.vary, design=args.design, samples=args.samples,
            replications=args.replications, seed=args.seed, base_overrides=args.overrides,
            executor=args.executor, workers=args.workers, scheduler=args.scheduler,
        )
        if args.resume and args.out is None:
            raise ScenarioError("--resume needs --out DIR (the exploration to continue)")
        if args.scheduler is not None:
            probe_scheduler(args.scheduler)
        out = args.out or default_out_dir(f"explore-{plan.base.name}")
        total = plan.design.size * plan.replications
        with progress:
            progress.start(total, f"explore {plan.base.name}")
            progress.say(f"exploring {plan.base.name}: {plan.design.kind} design,"
                         f" {plan.design.size} points x {plan.replications} replications"
                         f" (seed {plan.seed}) -> {out}")
            for note in plan.design.notes:
                progress.say(f"note: {note}")
            exploration = run_exploration(
                plan, executor=args.executor, scheduler=args.scheduler, out_dir=out,
                resume=args.resume, argv=sys.argv,
                on_replication=progress.tick,
            )
        if exploration.resumed_points:
            print(f"resumed: {exploration.resumed_points} of {plan.design.size} points were"
                  " already finished", file=sys.stderr)
        report = build_exploration_report(load_exploration(out), outcomes=args.outcome,
                                          interests=args.interest)
        save_exploration_report(report, Path(out))
    except _errors() as exc:
        return fail(exc)
    if args.json:
        print(json.dumps({**report_json(report), "out_dir": str(out)}, indent=2,
                         allow_nan=False, default=str))
    else:
        _print_text(report, Path(out))
    return EXIT_OK
