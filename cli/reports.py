"""The ``report`` and ``sweep`` commands of the ``releasesim`` CLI (``check``: ``cli.check``).

    releasesim report RUN_DIR [--out DIR]      (a run or an exploration directory)
    releasesim sweep SCENARIO --grid key.path=v1,v2 [--grid ...] [--set key.path=value ...]
                     [--replications N] [--seed S] [--executor serial|process|dask]
                     [--workers W] [--scheduler URL] [--max-forgery-prob P]
                     [--max-activation-s T] [--max-stall-prob P] [--max-stall-s S]
                     [--deadline-s D] [--target-ci-width W]
                     [--max-replications M] [--out DIR] [--json] [--quiet]

``sweep``'s SLOs (``reports.sweep.recommend``): ``--max-forgery-prob`` and
``--max-activation-s`` (safety and speed of activation), ``--max-stall-prob`` (95% upper
bound of P(consensus stalled)) and ``--max-stall-s`` (95% upper bound of the mean longest
stall, 0 without one; infinite when a replication was still stalled at the end). It prints
the sweep table and the recommendation, or with ``--json`` one JSON
document: the fields of ``sweep.json`` (``recommended``: the point, ``recommendation``: the
sentence, seed, SLOs, ...), ``out_dir`` and ``rows``, every row of the sweep table with
every column of ``sweep.csv`` (NaN and infinities as ``null``). On a terminal, a progress
bar counts the sweep's replications.

Exit codes: 0 ok (a sweep with SLOs and no feasible setting still exits 0 and says so);
2 unusable input (bad scenario, grid or run directory: one line on stderr).

Wiring only: runs go through ``releasesim.sim.sweep_runner`` (the runner and its executors),
tables and figures come from ``reports``; the simulator, pandas and matplotlib are imported
inside the commands. Registered by ``releasesim.cli.main``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import sys
from pathlib import Path
from typing import Any

from releasesim.cli.args import (
    EXECUTORS,
    fail,
    non_negative_float,
    positive_float,
    positive_int,
    probability,
    seed,
)
from releasesim.cli.output import StepProgress, print_json, table_records
from releasesim.model.errors import ReleasesimError
from releasesim.sim.errors import ScenarioError

EXIT_OK = 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``report`` and ``sweep`` to the CLI."""
    report = sub.add_parser(
        "report", help="(re)build report.html, report.md and the PNGs of a run directory",
        description="Rebuild the blast-radius report from a run directory's tables.")
    report.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                        help="a run directory (releasesim run) or an exploration directory"
                        " (releasesim explore)")
    report.add_argument("--out", type=Path, metavar="DIR",
                        help="write the report here instead of into RUN_DIR")
    report.set_defaults(func=cmd_report)

    sweep = sub.add_parser(
        "sweep", help="run a grid of settings with common random numbers; recommend one",
        description="Cartesian grid of overrides, same seeds for every point; tidy table "
                    "(with consensus stalls in stake: compare consensus.mode=rolling,"
                    "halt_at_height), safety-vs-liveness frontier and, with SLOs (forgery, "
                    "activation time, P(stall), stall duration), a recommendation.")
    sweep.add_argument("scenario", metavar="SCENARIO", help="shipped name or TOML path")
    sweep.add_argument("--grid", action="append", default=[], metavar="key.path=v1,v2",
                       help="a grid axis (repeatable; a..b is an integer range)")
    sweep.add_argument("--set", dest="overrides", action="append", default=[],
                       metavar="key.path=value", help="override for every point (repeatable)")
    sweep.add_argument("--replications", "-n", type=positive_int, metavar="N",
                       help="replications per point (default: the scenario's)")
    sweep.add_argument("--seed", "-s", type=seed, metavar="S",
                       help="root seed, shared by every point (default: the scenario's)")
    sweep.add_argument("--executor", "-e", choices=EXECUTORS, default="process",
                       help="where replications run (default: process)")
    sweep.add_argument("--workers", "-w", type=positive_int, metavar="W",
                       help="worker processes (default: CPU count)")
    sweep.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                       help="Dask scheduler address (--executor dask; default: a LocalCluster)")
    sweep.add_argument("--max-forgery-prob", type=probability, metavar="P",
                       help="SLO: 95%% upper bound of P(malicious build approved) <= P")
    sweep.add_argument("--max-activation-s", type=positive_float, metavar="T",
                       help="SLO: median time build -> activation <= T seconds")
    sweep.add_argument("--max-stall-prob", type=probability, metavar="P",
                       help="SLO: 95%% upper bound of P(consensus stalled) <= P (voting power "
                            "up not above the liveness threshold at some instant)")
    sweep.add_argument("--max-stall-s", type=non_negative_float, metavar="S",
                       help="SLO: 95%% upper bound of the mean longest consensus stall per "
                            "replication (0 without a stall) <= S seconds; a replication "
                            "still stalled at the end of the run makes it unbounded")
    sweep.add_argument("--deadline-s", type=positive_float, metavar="D",
                       help="deadline of P(activated on time) (default: --max-activation-s, "
                            "else the vote period plus sla_s)")
    sweep.add_argument("--target-ci-width", type=probability, metavar="W",
                       help="double the replications until the CI half-widths of "
                            "P(malicious approved) and P(on time) are <= W")
    sweep.add_argument("--max-replications", type=positive_int, default=1000, metavar="M",
                       help="cap for --target-ci-width (default 1000 per point)")
    sweep.add_argument("--out", "-o", type=Path, metavar="DIR",
                       help="output directory (default runs/sweep-<scenario>-<UTC time>)")
    sweep.add_argument("--json", action="store_true",
                       help="print one JSON document (every row of the sweep table and the "
                            "recommendation) instead of the table")
    sweep.add_argument("--quiet", "-q", action="store_true",
                       help="no progress bar or per-point lines on stderr")
    sweep.set_defaults(func=cmd_sweep)


def report_errors() -> tuple[type[BaseException], ...]:
    """The error roots a user's input can raise in ``report``, ``sweep`` and ``check``."""
    from releasesim.reports.regression import BaselineError
    from releasesim.reports.report import ReportError
    from releasesim.sim.executors import RunError  # imports pandas: not at start-up

    return (ScenarioError, ReportError, BaselineError, RunError, ReleasesimError)


# --------------------------------------------------------------------------- report


def cmd_report(args: argparse.Namespace) -> int:
    from releasesim.reports.discovery import DiscoveryError
    from releasesim.reports.exploration import is_exploration, write_exploration_report
    from releasesim.reports.report import write_report
    from releasesim.reports.sensitivity import SensitivityError

    try:
        if is_exploration(args.run_dir):  # an exploration directory: its own report
            paths = write_exploration_report(args.run_dir, args.out)
        else:
            paths = write_report(args.run_dir, args.out)
    except (*report_errors(), DiscoveryError, SensitivityError) as exc:
        return fail(exc)
    html = next(p for p in paths if p.name == "report.html")
    print(f"wrote {len(paths)} files -> {html}")
    return EXIT_OK


# --------------------------------------------------------------------------- sweep


def _deadline(scenario: Any, args: argparse.Namespace) -> float:
    if args.deadline_s is not None:
        return float(args.deadline_s)
    if args.max_activation_s is not None:
        return float(args.max_activation_s)
    from releasesim.sim.sweep_runner import default_deadline_s

    return default_deadline_s(scenario)


def measure_values(result: Any) -> Any:
    """A run's per-replication measure values (``reports.measures.per_replication``)."""
    from releasesim.reports.replications import per_replication

    return per_replication(result.summary, result.nodes, result.events)


def cmd_sweep(args: argparse.Namespace) -> int:
    from releasesim.reports.report import atomic_write, figure_png
    from releasesim.reports.sweep import (
        frontier_figure,
        max_half_width,
        recommend,
        sweep_markdown,
        sweep_table,
    )
    from releasesim.sim.api import resolve_scenario
    from releasesim.sim.executors import RunError
    from releasesim.sim.runner import resolve_run_settings
    from releasesim.sim.sweep_runner import SweepRun, parse_grid, run_sweep

    progress = StepProgress(quiet=args.quiet)
    try:
        grid = parse_grid(args.grid)
        base = resolve_scenario(args.scenario, args.overrides)
        if args.out is not None and args.out.exists() and any(args.out.iterdir()):
            raise RunError(f"--out {args.out} already exists and is not empty; choose another")
        points = math.prod(len(v) for _, v in grid)
        reps, _, _ = resolve_run_settings(base, replications=args.replications, seed=args.seed,
                                          workers=args.workers, executor=args.executor,
                                          scheduler=args.scheduler)
        cap = max(reps, args.max_replications)
        # run_sweep logs one line per finished point, and one line before each rerun with
        # doubled replications (when ``until`` says the CIs are still too wide)
        state = {"reps": reps, "rerun": False}

        def table_of(runs: list[SweepRun]) -> Any:
            return sweep_table([(dict(r.point.settings), measure_values(r.result),
                                 _deadline(r.scenario, args)) for r in runs])

        def log(line: str) -> None:
            if state["rerun"]:
                state["rerun"] = False
                progress.say(line)
            else:
                progress.step(int(state["reps"]), line)

        until = None
        if args.target_ci_width is not None:
            def until(runs: list[SweepRun]) -> bool:
                done = max_half_width(table_of(runs)) <= args.target_ci_width
                now = len(runs[0].result.summary)
                if not done and now < cap:
                    state.update(reps=min(cap, now * 2), rerun=True)
                    progress.start(points * int(state["reps"]),
                                   f"sweep {base.name} ({state['reps']} rep/point)")
                return done

        print(f"sweep {base.name}: {len(grid)} axes, {points} points", file=sys.stderr)
        with progress:
            progress.start(points * reps, f"sweep {base.name} ({reps} rep/point)")
            runs = run_sweep(base, grid, replications=args.replications, seed=args.seed,
                             executor=args.executor, workers=args.workers,
                             scheduler=args.scheduler, until=until,
                             max_replications=args.max_replications, log=log,
                             on_replication=progress.tick)
    except report_errors() as exc:
        return fail(exc)
    table = table_of(runs)
    try:
        certified = _certify_points(table, runs, args)
    except report_errors() as exc:
        return fail(exc)
    rec = recommend(table, args.max_forgery_prob, args.max_activation_s,
                    args.max_stall_prob, args.max_stall_s)
    table["feasible"] = list(rec.feasible)
    table["recommended"] = table["point"] == rec.label
    fig, _ = frontier_figure(table, max_forgery_prob=args.max_forgery_prob,
                             max_activation_s=args.max_activation_s, recommended=rec.label,
                             title=str(base.name))
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or Path("runs") / f"sweep-{base.name}-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "sweep.csv", index=False)
    table.to_parquet(out / "sweep.parquet", index=False)
    atomic_write(out / "frontier.png", figure_png(fig))
    atomic_write(out / "sweep.md", sweep_markdown(table, rec, str(base.name)).encode())
    manifest = {
        "format": "releasesim-sweep/1",
        "scenario_name": base.name,
        "grid": [[k, v] for k, v in grid],
        "overrides": list(args.overrides),
        "seed": runs[0].result.manifest.get("seed"),
        "replications_per_point": len(runs[0].result.summary),
        "common_random_numbers": "every point uses replication seeds (seed, i)",
        "slo": {"max_forgery_prob": args.max_forgery_prob,
                "max_activation_s": args.max_activation_s,
                "max_stall_prob": args.max_stall_prob,
                "max_stall_s": args.max_stall_s},
        "deadline_s": float(table["deadline_s"].iloc[0]),
        "forgery_bound": ("certified (stratified by keys held, docs/certify.md)" if certified
                          else "Wilson 95% upper bound of the plain replications"),
        "recommended": rec.label,
        "recommendation": rec.sentence,
        "config_hashes": {r.point.label: r.result.manifest.get("config_hash") for r in runs},
    }
    atomic_write(out / "sweep.json", (json.dumps(manifest, indent=2) + "\n").encode())
    if args.json:
        print_json({
            **{k: v for k, v in manifest.items() if k != "format"},  # sweep.json's fields
            "out_dir": str(out),
            "rows": table_records(table),
        })
    else:
        print(_format_sweep(table, stalls=args.max_stall_prob is not None
                            or args.max_stall_s is not None))
        print()
        print(rec.sentence)
    print(f"wrote sweep.csv, sweep.parquet, frontier.png, sweep.md, sweep.json -> {out}",
          file=sys.stderr)
    return EXIT_OK


def _certify_points(table: Any, runs: list[Any], args: argparse.Namespace) -> bool:
    """With ``--max-forgery-prob`` and a probabilistic compromise model, certify every
    point (``releasesim certify``'s bound, budget ``--max-replications`` per point, the
    sweep's seed) into the table's ``CERTIFIED`` columns; True when it did."""
    from releasesim.cli.certify import certify_point
    from releasesim.reports.sweep import CERTIFIED
    from releasesim.sim.certify_runner import probabilistic

    if args.max_forgery_prob is None or not any(probabilistic(r.scenario) for r in runs):
        return False
    seed_ = runs[0].result.manifest.get("seed")
    rows = []
    with StepProgress(quiet=args.quiet) as progress:
        for r in runs:
            progress.start(args.max_replications, f"certify {r.point.label}")
            rows.append(certify_point(
                r.scenario, target=args.max_forgery_prob, max_replications=args.max_replications,
                seed=seed_, executor=args.executor, workers=args.workers,
                scheduler=args.scheduler, log=progress.step)["row"])
            progress.say(f"  {r.point.label}: {rows[-1]['approved_sentence']}")
    table[CERTIFIED] = [row["approved_upper"] for row in rows]
    table[CERTIFIED + "_point"] = [row["approved_point"] for row in rows]
    table[CERTIFIED + "_method"] = [row["approved_method"] for row in rows]
    return True


def _format_sweep(table: Any, stalls: bool = False) -> str:
    """The sweep table as text; with P(consensus stall) and the mean longest stall when
    ``stalls`` (a stall SLO) or when some setting stalled consensus."""
    from releasesim.reports.formatting import format_estimate

    def ci(row: Any, name: str, unit: str) -> str:
        follow = float(row.get(name + "_follow_up", math.nan))
        low, high = row[name + "_ci_low"], row[name + "_ci_high"]
        return (f"{format_estimate(row[name], unit, follow)} "
                f"[{format_estimate(low, unit, follow)}, {format_estimate(high, unit, follow)}]")

    stalls = "consensus_stalled" in table.columns and (
        stalls or bool((table["consensus_stalled"].fillna(0) > 0).any()))
    header = (f"{'setting':<28} {'n':>5}  {'P(activated) [95% CI]':<26} "
              f"{'P(malicious approved) [95% CI]':<30} "
              f"{'P(on time) [95% CI]':<26} {'median activation [95% CI]':<30} ")
    if stalls:
        header += f"{'P(stall) [95% CI]':<26} {'mean longest stall [95% CI]':<32} "
    lines = [header + "feasible"]
    for _, row in table.iterrows():
        line = (
            f"{row['point']:<28} {row['replications']:>5}  "
            f"{ci(row, 'activated', 'probability'):<26} "
            f"{ci(row, 'malicious_approved', 'probability'):<30} "
            f"{ci(row, 'activated_on_time', 'probability'):<26} "
            f"{ci(row, 'time_to_activation_s', 's'):<30} "
        )
        if stalls:
            line += (f"{ci(row, 'consensus_stalled', 'probability'):<26} "
                     f"{ci(row, 'stall_longest_s', 's'):<32} ")
        lines.append(line + ("yes" if row["feasible"] else "no"))
    return "\n".join(lines)
