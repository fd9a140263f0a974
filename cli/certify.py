"""The ``certify`` command: a proof-grade upper bound on the forgery probability.

    releasesim certify SCENARIO --target P [--set key.path=value ...] [--grid key.path=v1,v2 ...]
                       [--confidence 0.95] [--installed-fraction X] [--replications N]
                       [--max-replications M] [--liveness-replications L] [--deadline-s D]
                       [--seed S] [--executor serial|process|dask] [--workers W]
                       [--scheduler URL] [--out DIR] [--json] [--quiet]

For each setting (the scenario plus one point of the grid) it prints the certified upper
bound on P(malicious build approved) and on P(malicious build installed on >= X of the
fleet), the point estimates, which part is exact (no approval below the lowest threshold:
the quorum rule) and which simulated (strata ``adversary.keys_held = J``), the replications
used and whether the target is met, e.g.::

    threshold 4 of 7: P(malicious approved) <= 3.4e-07 (95%, exact 0 below 4 keys (quorum
    rule), simulated at 4 keys with 32 replications, bounded by 1 at 5-7 keys (weight 2.1e-09))

It writes into ``--out`` (default ``runs/certify-<scenario>-<UTC time>``): ``certify.csv``
and ``certify.parquet`` (one row per setting), ``strata.csv`` (one row per setting and
stratum), ``certify.json`` (the manifest, every setting with its sentences and strata),
``certify.md`` and ``frontier.png`` (bounds per setting, and bound vs P(activated on time)
from a plain run of ``--liveness-replications``). ``--json`` prints ``certify.json`` plus
``out_dir``. Exit codes: 0 done (met or not: the output says), 2 unusable input (one line).

Wiring only: strata run through ``releasesim.sim.certify_runner``, the bound and the design
come from ``releasesim.reports.certify``; the simulator, pandas and matplotlib are imported
inside the command. Registered by ``releasesim.cli.main``. ``certify_point`` is also what
``sweep --max-forgery-prob`` uses for a scenario with a probabilistic compromise model.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import sys
from pathlib import Path
from typing import Any

from releasesim.cli.args import EXECUTORS, fail, positive_float, positive_int, probability, seed
from releasesim.cli.output import StepProgress, json_safe, print_json
from releasesim.model.errors import ReleasesimError
from releasesim.sim.errors import ScenarioError

EXIT_OK = 0
DEFAULT_FIRST = 32
DEFAULT_MAX_REPLICATIONS = 4096
FILES = ("certify.csv", "certify.parquet", "strata.csv", "certify.json", "certify.md",
         "frontier.png")


def _open_probability(text: str) -> float:
    value = probability(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be strictly between 0 and 1, got {value}")
    return value


def _fraction(text: str) -> float:
    value = probability(text)
    if value <= 0.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``certify`` to the CLI."""
    p = sub.add_parser(
        "certify", help="certify P(malicious build approved) <= P with a proof-grade bound",
        description="Stratify by the number of stolen keys: exact zero below the lowest "
                    "threshold (the quorum rule), Clopper-Pearson bounds on the simulated "
                    "strata, exact weights. See docs/certify.md.")
    p.add_argument("scenario", metavar="SCENARIO", help="shipped name or TOML path")
    p.add_argument("--target", type=_open_probability, required=True, metavar="P",
                   help="the forgery probability to certify (e.g. 1e-6)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="key.path=value", help="override for every setting (repeatable)")
    p.add_argument("--grid", action="append", default=[], metavar="key.path=v1,v2",
                   help="a grid axis (repeatable; a..b is an integer range)")
    p.add_argument("--confidence", type=_open_probability, default=0.95, metavar="C",
                   help="confidence of every bound (default 0.95)")
    p.add_argument("--installed-fraction", type=_fraction, default=0.1, metavar="X",
                   help="bound P(malicious build installed on >= X of the fleet) (default 0.1)")
    p.add_argument("--replications", "-n", type=positive_int, default=DEFAULT_FIRST,
                   metavar="N", help=f"first batch per simulated stratum (default "
                                     f"{DEFAULT_FIRST}); later batches double a stratum")
    p.add_argument("--max-replications", type=positive_int, default=DEFAULT_MAX_REPLICATIONS,
                   metavar="M", help="budget of stratum replications per setting (default "
                                     f"{DEFAULT_MAX_REPLICATIONS})")
    p.add_argument("--liveness-replications", type=int, metavar="L",
                   help="plain replications per setting for P(activated on time) "
                        "(default: the scenario's; 0 = skip)")
    p.add_argument("--deadline-s", type=positive_float, metavar="D",
                   help="deadline of P(activated on time) (default: vote period + sla_s)")
    p.add_argument("--seed", "-s", type=seed, metavar="S",
                   help="root seed, shared by every stratum and setting (default: the "
                        "scenario's)")
    p.add_argument("--executor", "-e", choices=EXECUTORS, default="process",
                   help="where replications run (default: process)")
    p.add_argument("--workers", "-w", type=positive_int, metavar="W",
                   help="worker processes (default: CPU count)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="Dask scheduler address (--executor dask; default: a LocalCluster)")
    p.add_argument("--out", "-o", type=Path, metavar="DIR",
                   help="output directory (default runs/certify-<scenario>-<UTC time>)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON document (certify.json and out_dir) instead of text")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="no progress bar or per-stratum lines on stderr")
    p.set_defaults(func=cmd_certify)


# --------------------------------------------------------------------------- one setting


def strata_records(approved: Any, installed: Any) -> list[dict[str, Any]]:
    """One row per stratum: weight, label, counts, rates and bounds of both events."""
    return [{
        "keys_held": a.keys, "weight": a.weight, "label": a.label, "replications": a.trials,
        "approvals": a.successes, "approved_rate": a.rate, "approved_upper": a.upper,
        "approved_lower": a.lower, "installs": i.successes, "installed_rate": i.rate,
        "installed_upper": i.upper, "installed_lower": i.lower,
    } for a, i in zip(approved.strata, installed.strata, strict=True)]


def setting_record(approved: Any, installed: Any, target: float | None) -> dict[str, Any]:
    """The per-setting row of ``certify.csv`` (bounds, point estimates, what is exact)."""
    from releasesim.reports.certify import BOUNDED, SIMULATED, key_range

    return {
        "approved_point": approved.point, "approved_upper": approved.upper,
        "approved_lower": approved.lower, "installed_point": installed.point,
        "installed_upper": installed.upper, "installed_lower": installed.lower,
        "confidence": approved.confidence, "target": target,
        "target_met": None if target is None else bool(approved.upper <= target),
        "installed_target_met": None if target is None else bool(installed.upper <= target),
        "replications": approved.replications, "exact_below_keys": approved.impossible_below,
        "exact_weight": approved.exact_weight,
        "simulated_keys": key_range(approved.keys(SIMULATED)),
        "simulated_weight": approved.simulated_weight,
        "bounded_keys": key_range(approved.keys(BOUNDED)),
        "bounded_weight": approved.bounded_weight, "looks": approved.looks,
        "bonferroni": approved.bonferroni, "alpha_per_stratum": approved.alpha_per_stratum,
    }


def certify_point(
    scenario: Any, *, target: float | None, confidence: float = 0.95,
    installed_fraction: float = 0.1, first: int = DEFAULT_FIRST,
    max_replications: int = DEFAULT_MAX_REPLICATIONS, seed: int | None = None,
    executor: str = "process", workers: int | None = None, scheduler: str | None = None,
    liveness_replications: int = 0, deadline_s: float | None = None,
    log: Any = None,
) -> dict[str, Any]:
    """Certify one validated scenario: its row, strata, sentences and the run itself."""
    from releasesim.reports.certify import Design, bound_sentence, method_text
    from releasesim.reports.intervals import wilson
    from releasesim.sim.certify_runner import certify_setting, run_liveness
    from releasesim.sim.sweep_runner import default_deadline_s

    design = Design(target=target, confidence=confidence, first=first,
                    max_replications=max(first, max_replications))
    run = certify_setting(scenario, design.next_batch, installed_fraction=installed_fraction,
                          seed=seed, executor=executor, workers=workers, scheduler=scheduler,
                          log=log)
    approved = design.bound(run.weights, run.approvals, run.trials, run.impossible_below)
    installed = design.bound(run.weights, run.installs, run.trials, run.impossible_below)
    row = setting_record(approved, installed, target)
    deadline = float(deadline_s) if deadline_s is not None else default_deadline_s(scenario)
    row.update(on_time=math.nan, on_time_ci_low=math.nan, on_time_ci_high=math.nan,
               on_time_n=0, deadline_s=deadline, stop=run.stop, wall_s=run.wall_s)
    if liveness_replications > 0:
        live = run_liveness(scenario, replications=liveness_replications, seed=run.seed,
                            executor=executor, workers=workers, scheduler=scheduler)
        hit = live["activated"].astype(bool) & (live["time_to_activation_s"] <= deadline)
        p, low, high = wilson(float(hit.sum()), len(hit))
        row.update(on_time=p, on_time_ci_low=low, on_time_ci_high=high, on_time_n=len(hit))
        if log is not None:
            log(len(hit), f"  plain run: {len(hit)} replications, P(on time) {p:.0%}")
    percent = f"{installed_fraction:.0%}"
    row["approved_method"], row["installed_method"] = method_text(approved), method_text(installed)
    row["approved_sentence"] = bound_sentence("P(malicious approved)", approved)
    row["installed_sentence"] = bound_sentence(
        f"P(malicious installed on >= {percent} of the fleet)", installed)
    return {"row": row, "strata": strata_records(approved, installed), "run": run,
            "approved": approved, "installed": installed}


def threshold_text(scenario: Any) -> str:
    """``threshold 4 of 7`` (``, lowest 3`` with a schedule that lowers it)."""
    from releasesim.sim.compromise import lowest_threshold

    text = f"threshold {scenario.signers.threshold} of {scenario.signers.n}"
    low = lowest_threshold(scenario)
    return text + (f", lowest {low}" if low != int(scenario.signers.threshold) else "")


# --------------------------------------------------------------------------- the command


def cmd_certify(args: argparse.Namespace) -> int:
    from releasesim.sim.api import resolve_scenario
    from releasesim.sim.certify_runner import check_base
    from releasesim.sim.executors import RunError
    from releasesim.sim.runner import resolve_run_settings
    from releasesim.sim.sweep_runner import GridPoint, grid_points, parse_grid, resolve_points

    progress = StepProgress(quiet=args.quiet or args.json)
    results = []
    try:
        grid = parse_grid(args.grid) if args.grid else []
        points = grid_points(grid) if grid else [GridPoint(())]
        base = resolve_scenario(args.scenario, args.overrides)
        check_base(base)
        scenarios = resolve_points(base, points)
        for s in scenarios:
            check_base(s)
        if args.out is not None and args.out.exists() and any(args.out.iterdir()):
            raise RunError(f"--out {args.out} already exists and is not empty; choose another")
        if args.liveness_replications is not None and args.liveness_replications < 0:
            raise RunError(f"--liveness-replications must be >= 0, got "
                           f"{args.liveness_replications}")
        reps, seed_, _ = resolve_run_settings(base, replications=None, seed=args.seed,
                                              workers=args.workers, executor=args.executor,
                                              scheduler=args.scheduler)
        live = reps if args.liveness_replications is None else args.liveness_replications
        print(f"certify {base.name}: {len(points)} setting{'s' if len(points) != 1 else ''}, "
              f"target {args.target:.2g}, {args.confidence:.0%} confidence", file=sys.stderr)
        with progress:
            for point, scenario in zip(points, scenarios, strict=True):
                label = ", ".join(filter(None, [point.label, threshold_text(scenario)]))
                progress.start(args.max_replications + live,
                               f"certify {label} (budget {args.max_replications:,})")
                result = certify_point(
                    scenario, target=args.target, confidence=args.confidence,
                    installed_fraction=args.installed_fraction, first=args.replications,
                    max_replications=args.max_replications, seed=seed_,
                    executor=args.executor, workers=args.workers, scheduler=args.scheduler,
                    liveness_replications=live, deadline_s=args.deadline_s, log=progress.step)
                result["row"] = {"setting": label, "point": point.label or threshold_text(scenario),
                                 **dict(point.settings), **result["row"]}
                results.append(result)
                progress.close()
                if not args.json:
                    print(_setting_text(result["row"], args.target))
    except (ScenarioError, RunError, ReleasesimError) as exc:
        return fail(exc)
    out = _write(args, base, grid, seed_, live, results)
    if args.json:
        print_json({**json.loads((out / "certify.json").read_text()), "out_dir": str(out)})
    print(f"wrote {', '.join(FILES)} -> {out}", file=sys.stderr)
    return EXIT_OK


def _setting_text(row: dict[str, Any], target: float) -> str:
    met = "met" if row["target_met"] else "NOT met"
    lines = [f"{row['setting']}: {row['approved_sentence']}",
             f"  {row['installed_sentence']}",
             f"  point estimates: approved {row['approved_point']:.2g}, installed "
             f"{row['installed_point']:.2g}"
             + (f" (+ up to {row['bounded_weight']:.2g} from strata not simulated)"
                if row["bounded_weight"] > 0 else "")]
    if row["on_time_n"]:
        lines[-1] += (f"; P(activated on time) {row['on_time']:.0%} [{row['on_time_ci_low']:.0%}"
                      f", {row['on_time_ci_high']:.0%}] (n={row['on_time_n']})")
    lines.append(f"  target {target:.2g}: {met} ({row['replications']:,} stratum replications, "
                 f"stopped: {row['stop']}, {row['wall_s']:.1f} s)")
    return "\n".join(lines)


def _write(args: argparse.Namespace, base: Any, grid: list[tuple[str, list[str]]],
           seed_: int, live: int, results: list[dict[str, Any]]) -> Path:
    import pandas as pd

    from releasesim.reports.certify_figure import certify_figure
    from releasesim.reports.report import atomic_write, figure_png

    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or Path("runs") / f"certify-{base.name}-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    rows = [r["row"] for r in results]
    table = pd.DataFrame(rows)
    table.to_csv(out / "certify.csv", index=False)
    table.to_parquet(out / "certify.parquet", index=False)
    strata = pd.DataFrame([{"setting": r["row"]["setting"], **s} for r in results
                           for s in r["strata"]])
    strata.to_csv(out / "strata.csv", index=False)
    fig, _ = certify_figure(rows, target=args.target, title=str(base.name))
    atomic_write(out / "frontier.png", figure_png(fig))
    document = {
        "format": "releasesim-certify/1", "scenario_name": base.name,
        "grid": [[k, v] for k, v in grid], "overrides": list(args.overrides),
        "target": args.target, "confidence": args.confidence,
        "installed_fraction": args.installed_fraction, "seed": seed_,
        "first_batch": args.replications, "max_replications": args.max_replications,
        "liveness_replications": live,
        "common_random_numbers": "every stratum and setting uses replication seeds (seed, i)",
        "method": "stratified by keys held: exact weights; 0 below the lowest threshold "
                  "(quorum rule); one-sided Clopper-Pearson per simulated stratum, "
                  "Bonferroni over strata and the doubling sizes (docs/certify.md)",
        "settings": [{**r["row"], "strata": r["strata"]} for r in results],
    }
    text = json.dumps(json_safe(document), indent=2, allow_nan=False) + "\n"
    atomic_write(out / "certify.json", text.encode())
    atomic_write(out / "certify.md", _markdown(document).encode())
    return out


def _markdown(document: dict[str, Any]) -> str:
    lines = [f"# Certify: {document['scenario_name']}", "",
             f"Target {document['target']:.2g} at {document['confidence']:.0%} confidence; "
             "method in docs/certify.md.", "", "![frontier](frontier.png)", ""]
    for s in document["settings"]:
        lines += [f"- **{s['setting']}**: {s['approved_sentence']}; "
                  f"{s['installed_sentence']}; target {'met' if s['target_met'] else 'NOT met'}"]
    return "\n".join(lines) + "\n"


__all__ = ["certify_point", "cmd_certify", "register", "setting_record", "strata_records",
           "threshold_text"]
