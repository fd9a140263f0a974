"""The ``check`` command of the ``releasesim`` CLI: CI regression mode.

    releasesim check [DIR] [--update-baseline] [--baseline FILE] [--junit FILE]
                     [--executor serial|process] [--workers W] [--verbose] [--json] [--quiet]

Runs each scenario of the CI suite (default: the shipped ``releasesim.scenarios/ci``),
checks the invariants and the forgery-free safety measures, and compares every other
measure with the committed baseline (``releasesim.reports.regression``). Output: the diff
table on stdout, or with ``--json`` one JSON document with every row of the comparison.
On a terminal, a progress bar counts the suite's replications (``--quiet``: none).

JUnit XML (``--junit``) carries real times: a scenario's testsuite ``time`` is the wall
time of running its replications plus comparing them with the baseline; each of its
testcases gets an equal share of it (every case is judged from the same run, so no
finer split is measurable).

Exit codes: 0 passed (or baseline written); 1 a regression or a violated invariant;
2 unusable input (bad directory, scenario or baseline: one line on stderr).
Wiring only: runs go through ``releasesim.sim.sweep_runner``; comparisons come from
``releasesim.reports.regression``. The simulator and pandas are imported inside the
command. Registered by ``releasesim.cli.main``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from releasesim.cli.args import fail, positive_int
from releasesim.cli.output import StepProgress, print_json, table_records
from releasesim.cli.reports import measure_values, report_errors
from releasesim.sim.errors import ScenarioError

EXIT_OK = 0
EXIT_REGRESSION = 1
CI_SUITE = "ci"
"""The CI suite shipped with the scenarios (``releasesim.scenarios/ci``)."""
BASELINE_NAME = "baseline.json"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``check`` to the CLI."""
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
    check.add_argument("--junit", type=Path, metavar="FILE",
                       help="write JUnit XML here (one testsuite per scenario, real times)")
    check.add_argument("--executor", "-e", choices=("serial", "process"), default="serial",
                       help="where replications run (default: serial)")
    check.add_argument("--workers", "-w", type=positive_int, metavar="W",
                       help="worker processes for --executor process (default: CPU count)")
    check.add_argument("--verbose", "-v", action="store_true",
                       help="show every check, not only the ones that are not ok")
    check.add_argument("--json", action="store_true",
                       help="print one JSON document (every row of the comparison, the "
                            "verdict and each scenario's time) instead of the table")
    check.add_argument("--quiet", "-q", action="store_true",
                       help="no progress bar or per-scenario lines on stderr")
    check.set_defaults(func=cmd_check)


def _installed(path: Path) -> bool:
    """Is ``path`` inside an installed package (site-packages), not a checkout?"""
    return any(part in ("site-packages", "dist-packages") for part in path.resolve().parts)


def _suite_replications(directory: Path, executor: str) -> list[int]:
    """Each CI scenario's replication count, in the order ``run_suite`` runs them."""
    from releasesim.sim.api import resolve_scenario
    from releasesim.sim.runner import resolve_run_settings

    return [resolve_run_settings(resolve_scenario(path), replications=None, seed=None,
                                 workers=None, executor=executor, scheduler=None)[0]
            for path in sorted(directory.glob("*.toml"))]


def cmd_check(args: argparse.Namespace) -> int:
    import pandas as pd

    from releasesim.reports.regression import (
        compare,
        failed,
        false_alarm_bound,
        format_diff,
        junit_xml,
        make_baseline,
        read_baseline,
        scenario_entry,
        write_baseline,
    )
    from releasesim.reports.report import atomic_write
    from releasesim.sim.scenario import SCENARIO_DIR, config_hash
    from releasesim.sim.sweep_runner import run_suite

    directory: Path = args.directory or SCENARIO_DIR / CI_SUITE
    baseline_path = args.baseline or directory / BASELINE_NAME
    progress = StepProgress(quiet=args.quiet)
    try:
        if args.update_baseline and args.baseline is None and _installed(directory):
            raise ScenarioError("the shipped CI suite is part of the installed package; "
                                "copy it and pass its DIR (or --baseline FILE) to update a "
                                "baseline", source=str(directory))
        if not directory.is_dir():
            raise ScenarioError("not a directory of CI scenarios", source=str(directory))
        baseline = None if args.update_baseline else read_baseline(baseline_path)
        replications = _suite_replications(directory, args.executor)
        print(f"check {directory} ({args.executor})", file=sys.stderr)
        with progress:
            progress.start(sum(replications), f"check {directory.name}")
            done = iter(replications)
            suite = run_suite(directory, executor=args.executor, workers=args.workers,
                              log=lambda line: progress.step(next(done, 0), line),
                              on_replication=progress.tick)
    except report_errors() as exc:
        return fail(exc)
    run_times = progress.durations
    if len(run_times) != len(suite):  # run_suite logs once per scenario; else the runner's
        run_times = [float(result.manifest.get("wall_s") or 0.0) for _, _, result in suite]
    entries, frames, times, scenarios = {}, [], {}, []
    for (path, scenario, result), run_s in zip(suite, run_times, strict=True):
        started = time.perf_counter()
        values = measure_values(result)
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
        times[scenario.name] = run_s + (time.perf_counter() - started)
        scenarios.append({"name": scenario.name, **info, "replications": len(result.summary),
                          "time_s": times[scenario.name]})
    rows = pd.concat(frames, ignore_index=True)
    if args.junit is not None:
        args.junit.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(args.junit, junit_xml(rows, times=times).encode("utf-8"))
    document: dict[str, Any] = {
        "directory": str(directory),
        "baseline": str(baseline_path),
        "scenarios": scenarios,
        "rows": table_records(rows),
        "checks": len(rows),
        "false_alarm_bound": false_alarm_bound(rows),
    }
    if args.update_baseline:
        if (rows["status"] == "violated").any():
            _print_result(args, document, format_diff(rows, verbose=args.verbose), "refused",
                          "refusing to write a baseline with violated invariants", refused=True)
            return EXIT_REGRESSION
        write_baseline(baseline_path, make_baseline(entries))
        _print_result(args, document, None, "baseline written",
                      f"baseline written: {baseline_path} ({len(entries)} scenarios)")
        return EXIT_OK
    if failed(rows):
        _print_result(args, document, format_diff(rows, verbose=args.verbose), "failed",
                      "check FAILED: regression against the baseline "
                      "(see REGRESSED/VIOLATED above)")
        return EXIT_REGRESSION
    _print_result(args, document, format_diff(rows, verbose=args.verbose), "passed",
                  "check passed")
    return EXIT_OK


def _print_result(args: argparse.Namespace, document: dict[str, Any], table: str | None,
                  verdict: str, sentence: str, *, refused: bool = False) -> None:
    """The table and the verdict sentence (on stderr when ``refused``), or one JSON
    document with both."""
    if args.json:
        print_json({"verdict": verdict, "summary": sentence, **document})
        return
    if table is not None:
        print(table)
    print(sentence, file=sys.stderr if refused else sys.stdout)
