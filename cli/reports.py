"""The ``report``, ``sweep`` and ``check`` commands of the ``releasesim`` CLI.

    releasesim report RUN_DIR [--out DIR]
    releasesim sweep SCENARIO --grid key.path=v1,v2 [--grid ...] [--set key.path=value ...]
                     [--replications N] [--seed S] [--executor serial|process|dask]
                     [--workers W] [--scheduler URL] [--max-forgery-prob P]
                     [--max-activation-s T] [--deadline-s D] [--target-ci-width W]
                     [--max-replications M] [--out DIR]
    releasesim check [DIR] [--update-baseline] [--baseline FILE] [--junit FILE]
                     [--executor serial|process] [--workers W] [--verbose]

Exit codes: 0 ok; 1 ``check`` found a regression or a violated invariant (``sweep``:
never; a sweep with SLOs and no feasible setting still exits 0 and says so); 2 unusable
input (bad scenario, grid, run directory or baseline: one line on stderr).

Wiring only: runs go through ``releasesim.sim.sweep_runner`` (the runner and its executors), tables
and figures come from ``reports``. Registered by ``releasesim.cli.main``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import sys
from pathlib import Path
from typing import Any

from releasesim.cli.args import fail, positive_float, positive_int, probability, seed
from releasesim.model.errors import ReleasesimError
from releasesim.sim.errors import ScenarioError
from releasesim.sim.executors import EXECUTORS, RunError

EXIT_OK = 0
EXIT_REGRESSION = 1
CI_SUITE = "ci"
"""The CI suite shipped with the scenarios (``releasesim.scenarios/ci``)."""
BASELINE_NAME = "baseline.json"


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``report``, ``sweep`` and ``check`` to the CLI."""
    report = sub.add_parser(
        "report", help="(re)build report.html, report.md and the PNGs of a run directory",
        description="Rebuild the blast-radius report from a run directory's tables.")
    report.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    report.add_argument("--out", type=Path, metavar="DIR",
                        help="write the report here instead of into RUN_DIR")
    report.set_defaults(func=cmd_report)

    sweep = sub.add_parser(
        "sweep", help="run a grid of settings with common random numbers; recommend one",
        description="Cartesian grid of overrides, same seeds for every point; tidy table, "
                    "safety-vs-liveness frontier and, with SLOs, a recommendation.")
    sweep.add_argument("scenario", metavar="SCENARIO", help="shipped name or TOML path")
    sweep.add_argument("--grid", action="append", default=[], metavar="key.path=v1,v2",
                       help="a grid axis (repeatable; a..b is an integer range)")
    sweep.add_argument("--set", dest="overrides", action="append", default=[],
                       metavar="key.path=value", help="override for every point (repeatable)")
    sweep.add_argument("--replications", "-n", type=positive_int, metavar="N",
                       help="replications per point (default: the scenario's)")
    sweep.add_argument("--seed", "-s", type=seed, metavar="S",
                       help="root seed, shared by every point (default: the scenario's)")
    sweep.add_argument("--executor", "-e", choices=EXECUTORS, default="process")
    sweep.add_argument("--workers", "-w", type=positive_int, metavar="W")
    sweep.add_argument("--scheduler", metavar="tcp://HOST:PORT")
    sweep.add_argument("--max-forgery-prob", type=probability, metavar="P",
                       help="SLO: 95%% upper bound of P(malicious build approved) <= P")
    sweep.add_argument("--max-activation-s", type=positive_float, metavar="T",
                       help="SLO: median time build -> activation <= T seconds")
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
    sweep.set_defaults(func=cmd_sweep)

    check = sub.add_parser(
        "check", help="CI regression mode: run the CI suite and compare with the baseline",
        description="Run each CI scenario, check the invariants and the forgery-free "
                    "safety measures, compare every other measure with the committed "
                    "baseline by an exact test (docs/reports.md).")
    check.add_argument("directory", nargs="?", type=Path, default=None, metavar="DIR",
                       help="directory of CI scenarios (default: the shipped CI suite, "
                            "scenarios/ci)")
    check.add_argument("--baseline", type=Path, metavar="FILE",
                       help="baseline file (default DIR/baseline.json)")
    check.add_argument("--update-baseline", action="store_true",
                       help="rewrite the baseline from this run (atomically)")
    check.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML here")
    check.add_argument("--executor", "-e", choices=("serial", "process"), default="serial")
    check.add_argument("--workers", "-w", type=positive_int, metavar="W")
    check.add_argument("--verbose", "-v", action="store_true", help="show every check")
    check.set_defaults(func=cmd_check)


def _report_errors() -> tuple[type[BaseException], ...]:
    from releasesim.reports.regression import BaselineError
    from releasesim.reports.report import ReportError

    return (ScenarioError, ReportError, BaselineError, RunError, ReleasesimError)


# --------------------------------------------------------------------------- report


def cmd_report(args: argparse.Namespace) -> int:
    from releasesim.reports.report import write_report

    try:
        paths = write_report(args.run_dir, args.out)
    except _report_errors() as exc:
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


def _values(result: Any) -> Any:
    from releasesim.reports.measures import per_replication

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
    from releasesim.sim.sweep_runner import SweepRun, parse_grid, run_sweep

    try:
        grid = parse_grid(args.grid)
        base = resolve_scenario(args.scenario, args.overrides)
        if args.out is not None and args.out.exists() and any(args.out.iterdir()):
            raise RunError(f"--out {args.out} already exists and is not empty; choose another")

        def table_of(runs: list[SweepRun]) -> Any:
            return sweep_table([(dict(r.point.settings), _values(r.result),
                                 _deadline(r.scenario, args)) for r in runs])

        until = None
        if args.target_ci_width is not None:
            def until(runs: list[SweepRun]) -> bool:
                return max_half_width(table_of(runs)) <= args.target_ci_width

        print(f"sweep {base.name}: {len(grid)} axes, "
              f"{math.prod(len(v) for _, v in grid)} points", file=sys.stderr)
        runs = run_sweep(base, grid, replications=args.replications, seed=args.seed,
                         executor=args.executor, workers=args.workers,
                         scheduler=args.scheduler, until=until,
                         max_replications=args.max_replications)
    except _report_errors() as exc:
        return fail(exc)
    table = table_of(runs)
    rec = recommend(table, args.max_forgery_prob, args.max_activation_s)
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
                "max_activation_s": args.max_activation_s},
        "deadline_s": float(table["deadline_s"].iloc[0]),
        "recommended": rec.label,
        "recommendation": rec.sentence,
        "config_hashes": {r.point.label: r.result.manifest.get("config_hash") for r in runs},
    }
    atomic_write(out / "sweep.json", (json.dumps(manifest, indent=2) + "\n").encode())
    print(_format_sweep(table))
    print()
    print(rec.sentence)
    print(f"wrote sweep.csv, sweep.parquet, frontier.png, sweep.md, sweep.json -> {out}",
          file=sys.stderr)
    return EXIT_OK


def _format_sweep(table: Any) -> str:
    from releasesim.reports.formatting import format_estimate

    def ci(row: Any, name: str, unit: str) -> str:
        follow = float(row.get(name + "_follow_up", math.nan))
        low, high = row[name + "_ci_low"], row[name + "_ci_high"]
        return (f"{format_estimate(row[name], unit, follow)} "
                f"[{format_estimate(low, unit, follow)}, {format_estimate(high, unit, follow)}]")

    header = (f"{'setting':<28} {'n':>5}  {'P(activated) [95% CI]':<26} "
              f"{'P(malicious approved) [95% CI]':<30} "
              f"{'P(on time) [95% CI]':<26} {'median activation [95% CI]':<30} feasible")
    lines = [header]
    for _, row in table.iterrows():
        lines.append(
            f"{row['point']:<28} {row['replications']:>5}  "
            f"{ci(row, 'activated', 'probability'):<26} "
            f"{ci(row, 'malicious_approved', 'probability'):<30} "
            f"{ci(row, 'activated_on_time', 'probability'):<26} "
            f"{ci(row, 'time_to_activation_s', 's'):<30} {'yes' if row['feasible'] else 'no'}"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- check


def _installed(path: Path) -> bool:
    """Is ``path`` inside an installed package (site-packages), not a checkout?"""
    return any(part in ("site-packages", "dist-packages") for part in path.resolve().parts)


def cmd_check(args: argparse.Namespace) -> int:
    import pandas as pd

    from releasesim.reports.regression import (
        compare,
        failed,
        format_diff,
        junit_xml,
        make_baseline,
        read_baseline,
        scenario_entry,
        write_baseline,
    )
    from releasesim.reports.report import atomic_write
    from releasesim.sim.scenario import SCENARIO_DIR
    from releasesim.sim.sweep_runner import run_suite

    directory: Path = args.directory or SCENARIO_DIR / CI_SUITE
    baseline_path = args.baseline or directory / BASELINE_NAME
    try:
        if args.update_baseline and args.baseline is None and _installed(directory):
            raise ScenarioError("the shipped CI suite is part of the installed package; "
                                "copy it and pass its DIR (or --baseline FILE) to update a "
                                "baseline", source=str(directory))
        if not directory.is_dir():
            raise ScenarioError("not a directory of CI scenarios", source=str(directory))
        baseline = None if args.update_baseline else read_baseline(baseline_path)
        print(f"check {directory} ({args.executor})", file=sys.stderr)
        suite = run_suite(directory, executor=args.executor, workers=args.workers)
    except _report_errors() as exc:
        return fail(exc)
    entries, frames = {}, []
    for path, scenario, result in suite:
        values = _values(result)
        from releasesim.sim.scenario import config_hash

        info = {"file": path.name, "seed": result.manifest.get("seed"),
                "config_hash": config_hash(scenario)}
        entries[scenario.name] = scenario_entry(values, info)
        base_entry = None if baseline is None else baseline["scenarios"].get(scenario.name)
        if base_entry is not None and base_entry.get("config_hash") != info["config_hash"]:
            print(f"note: {scenario.name}: scenario changed since the baseline "
                  "(config hash differs)", file=sys.stderr)
        if base_entry is None and baseline is not None:
            print(f"note: {scenario.name}: not in the baseline (run --update-baseline)",
                  file=sys.stderr)
        frames.append(compare(scenario.name, base_entry if baseline is not None else
                              entries[scenario.name], values))
    rows = pd.concat(frames, ignore_index=True)
    if args.junit is not None:
        args.junit.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(args.junit, junit_xml(rows).encode("utf-8"))
    if args.update_baseline:
        invariants_bad = rows["status"] == "violated"
        if invariants_bad.any():
            print(format_diff(rows, verbose=args.verbose))
            print("refusing to write a baseline with violated invariants", file=sys.stderr)
            return EXIT_REGRESSION
        write_baseline(baseline_path, make_baseline(entries))
        print(f"baseline written: {baseline_path} ({len(entries)} scenarios)")
        return EXIT_OK
    print(format_diff(rows, verbose=args.verbose))
    if failed(rows):
        print("check FAILED: regression against the baseline (see REGRESSED/VIOLATED above)")
        return EXIT_REGRESSION
    print("check passed")
    return EXIT_OK
