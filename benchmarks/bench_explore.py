"""Benchmark: the issue-13 workflow end to end at 1,000 nodes (target: <= 30 min on 2 cores).

1. Morris screening of 10 knobs (``--samples`` trajectories -> N (10 + 1) points);
2. Sobol indices of the 5 knobs with the largest μ* for ``--outcome``
   (``--sobol-samples`` base samples -> N (5 + 2) points);
3. PRIM and the tree on ``--interest`` over the Sobol experiments.

Each stage runs ``--replications`` per point on the process pool (``--workers``, default
all cores). The baseline, measured in the same run: plain ``run_scenario`` of the same
base scenario (same nodes, same pool) for ``--baseline-replications``, giving the cost of
one replication; the workflow's *overhead ratio* is its wall time over (its replications
x that cost). With ``--dask`` stage 1 runs again on a Dask ``LocalCluster`` with the same
worker count and its experiments table must equal the process pool's (printed).
Nothing is asserted; it prints, and ``main`` returns the figures.

    .venv/bin/python benchmarks/bench_explore.py [--nodes 1000] [--samples 10]
        [--sobol-samples 32] [--replications 4] [--dask]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from releasesim.reports.exploration import (
    discover,
    load_exploration,
    parse_interest,
    sensitivity_of,
)
from releasesim.sim.api import resolve_scenario
from releasesim.sim.explore import plan_exploration, run_exploration
from releasesim.sim.runner import run_scenario

KNOBS = (
    "signers.threshold=3..7",
    "signers.availability=0.6..1.0",
    "governance.vote_period_epochs=10..40",
    "mirrors.latency.median=0.05..2",
    "mirrors.outage_rate_per_h=0.0..2",
    "mirrors.corruption_prob=0.0..0.05",
    "fleet.poll_interval_s=60.0..1200",
    "release.startup_failure_prob=0.0..0.2",
    "mirrors.capacity=10..200",
    "release.artifact_size_mb=20.0..400",
)
TARGET_S = 30 * 60


def _stage(plan: Any, executor: str, out: Path) -> tuple[Any, float]:
    start = time.perf_counter()
    result = run_exploration(plan, executor=executor, out_dir=out)
    return result, time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--sobol-samples", type=int, default=32)
    parser.add_argument("--replications", type=int, default=4)
    parser.add_argument("--baseline-replications", type=int, default=40)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--outcome", default="lagging_fraction")
    parser.add_argument("--interest", default="lagging_fraction>0.05")
    parser.add_argument("--dask", action="store_true")
    args = parser.parse_args(argv)
    base = [f"fleet.nodes={args.nodes}"]
    load = os.getloadavg()[0]
    print(f"explore benchmark: {args.nodes} nodes, {args.workers} workers,"
          f" load average {load:.1f}", flush=True)

    start = time.perf_counter()
    run_scenario(resolve_scenario("baseline", base), replications=args.baseline_replications,
                 seed=1, workers=args.workers, executor="process", progress=False,
                 write=False)
    per_rep = (time.perf_counter() - start) / args.baseline_replications
    print(f"  baseline: {args.baseline_replications} plain replications,"
          f" {per_rep * 1000:.0f} ms each (wall, {args.workers} workers)", flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-explore-") as tmp:
        folder = Path(tmp)
        morris = plan_exploration("baseline", KNOBS, design="morris", samples=args.samples,
                                  replications=args.replications, seed=13,
                                  base_overrides=base, workers=args.workers)
        screened, morris_s = _stage(morris, "process", folder / "morris")
        tables = load_exploration(folder / "morris")
        indices = sensitivity_of(tables, args.outcome).indices
        top = list(indices["knob"].head(5))
        print(f"  Morris: {morris.design.size} points x {args.replications} in {morris_s:.0f} s;"
              f" top 5 for {args.outcome}: {', '.join(top)}", flush=True)

        specs = [k for k in KNOBS if k.split("=")[0] in top]
        sobol = plan_exploration("baseline", specs, design="sobol",
                                 samples=args.sobol_samples, replications=args.replications,
                                 seed=14, base_overrides=base, workers=args.workers)
        _, sobol_s = _stage(sobol, "process", folder / "sobol")
        sobol_tables = load_exploration(folder / "sobol")
        sobol_indices = sensitivity_of(sobol_tables, args.outcome).indices
        print(f"  Sobol: {sobol.design.size} points x {args.replications} in {sobol_s:.0f} s;"
              " ST " + ", ".join(f"{r.knob} {r.ST:.2f}±{r.ST_conf:.2f}"
                                 for r in sobol_indices.itertuples()), flush=True)

        start = time.perf_counter()
        found = discover(sobol_tables, parse_interest(args.interest))
        prim_s = time.perf_counter() - start
        print(f"  PRIM + tree on {args.interest}: {prim_s:.1f} s;"
              f" {found.rules[0] if found.rules else found.problem}", flush=True)

        total_s = morris_s + sobol_s + prim_s
        reps = (morris.design.size + sobol.design.size) * args.replications
        ratio = total_s / (reps * per_rep)
        print(f"  total {total_s / 60:.1f} min for {reps} replications (target <= 30 min):"
              f" {ratio:.2f}x the plain runs' cost per replication", flush=True)
        same = None
        dask_s = None
        if args.dask:
            again, dask_s = _stage(morris, "dask", folder / "morris-dask")
            same = again.experiments.equals(screened.experiments)
            pd.testing.assert_frame_equal(again.experiments, screened.experiments)
            print(f"  Morris on a Dask LocalCluster ({args.workers} workers): {dask_s:.0f} s,"
                  f" experiments identical: {same}", flush=True)
    return {"benchmark": "explore", "total_s": total_s, "target_s": TARGET_S,
            "ok": total_s <= TARGET_S, "overhead_ratio": ratio, "replications": reps,
            "per_replication_s": per_rep, "dask_s": dask_s, "dask_identical": same,
            "load": load}


if __name__ == "__main__":
    main()
