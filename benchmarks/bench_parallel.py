"""Benchmark: speed-up of a process pool and of a Dask cluster with 2 workers over serial.

Calibrates a fleet size so that one replication takes at least ``--min-rep-s`` (0.5 s),
then runs the same ``--replications`` (24: enough that the last replication to finish
does not decide the figure) through the runner, in each round: serially,
on a process pool of ``--workers`` (2) and on a warm Dask ``LocalCluster`` of as many
single-threaded worker processes (started once, before the rounds: its start-up is not a
replication's cost), in an order that rotates round by round. No run directory is
written. Every executor's tables must equal the serial ones. Printed: each speed-up
(serial time over the executor's, per round) as median [min-max] over ``--rounds``, next
to the machine's ceiling measured in the same rounds: the same replications split
between ``--workers`` forked processes that compute their shares alone (no pool, no
results sent back): two replications side by side run slower than one alone on a
machine whose CPUs share caches and memory bandwidth.

    .venv/bin/python benchmarks/bench_parallel.py [--rounds 5] [--replications 24] [--no-dask]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Figure, check_rounds, conclude, wait_for_quiet  # noqa: E402

TARGETS = {"process": ">= 1.85", "dask": ">= 1.6"}


def _half(scenario: Any, seed: int, replications: int, part: int, parts: int) -> None:
    from releasesim.sim.world import simulate_replication

    for i in range(part, replications, parts):
        simulate_replication(scenario, seed, i)


def run_split(scenario: Any, seed: int, replications: int, workers: int) -> float:
    """The machine's ceiling: ``workers`` forked processes, each computing its share of
    the replications alone (no pool, no results sent back); wall time of the slowest."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    start = time.perf_counter()
    procs = [context.Process(target=_half, args=(scenario, seed, replications, p, workers))
             for p in range(workers)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
        if proc.exitcode != 0:
            raise SystemExit(f"a split process failed ({proc.exitcode})")
    return time.perf_counter() - start


def calibrate(scenario_name: str, min_rep_s: float, seed: int) -> tuple[Any, int, float]:
    """The smallest fleet (growing from 500 nodes) whose replication takes min_rep_s."""
    from releasesim.sim.api import resolve_scenario
    from releasesim.sim.world import simulate_replication

    nodes = 500
    while True:
        scenario = resolve_scenario(scenario_name, [f"fleet.nodes={nodes}"])
        start = time.perf_counter()
        simulate_replication(scenario, seed, 0)
        wall = time.perf_counter() - start
        if wall >= min_rep_s or nodes >= 200_000:
            return scenario, nodes, wall
        nodes = int(nodes * max(1.3, min(4.0, 1.2 * min_rep_s / max(wall, 1e-3))))


def measure(replications: int = 24, workers: int = 2, scenario: str = "baseline",
            min_rep_s: float = 0.5, seed: int = 1, rounds: int = 3,
            dask: bool = True) -> dict[str, Any]:
    import pandas.testing as pdt

    from releasesim.sim.runner import run_scenario

    resolved, nodes, rep_s = calibrate(scenario, min_rep_s, seed)
    common = {"replications": replications, "seed": seed, "progress": False, "write": False}
    cluster = None
    executors = ["serial", "split", "process"]
    if dask:
        import distributed

        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                           processes=True, dashboard_address=None,
                                           silence_logs=logging.ERROR)
        executors.append("dask")
    times: dict[str, list[float]] = {name: [] for name in executors}
    busy: list[float] = []
    try:
        reference = None
        for r in range(rounds):
            busy.append(wait_for_quiet())
            order = executors[r % len(executors):] + executors[: r % len(executors)]
            for name in order:
                if name == "split":
                    times[name].append(run_split(resolved, seed, replications, workers))
                    continue
                extra: dict[str, Any] = {}
                if name == "process":
                    extra = {"workers": workers}
                elif name == "dask":
                    extra = {"scheduler": cluster.scheduler_address}  # type: ignore[union-attr]
                start = time.perf_counter()
                result = run_scenario(resolved, executor=name, **common, **extra)
                times[name].append(time.perf_counter() - start)
                if reference is None:
                    reference = result
                else:
                    pdt.assert_frame_equal(reference.summary, result.summary)
                    pdt.assert_frame_equal(reference.nodes, result.nodes)
    finally:
        if cluster is not None:
            cluster.close()
    speedups = {name: [s / t for s, t in zip(times["serial"], times[name], strict=True)]
                for name in executors if name != "serial"}
    return {"scenario": scenario, "nodes": nodes,
            "replication_s": rep_s, "replications": replications, "workers": workers,
            "rounds": rounds, "times": times, "speedups": speedups, "busy": busy}


def figures(r: dict[str, Any]) -> list[Figure]:
    serial = Figure("", r["times"]["serial"], "s")
    ceiling = Figure("", r["speedups"]["split"])
    names = {"process": "process pool", "dask": "Dask LocalCluster (warm, tasks batched)"}
    return [
        Figure(f"{r['replications']} replications of {r['nodes']:,}-node {r['scenario']}, "
               f"{names[name]} with {r['workers']} workers vs serial", values, "x",
               TARGETS[name], f"serial {serial.text()}, "
               f"{name} {Figure('', r['times'][name], 's').text()}; the machine's ceiling "
               f"({r['workers']} forked processes computing their shares alone) "
               f"{ceiling.text()}")
        for name, values in r["speedups"].items() if name != "split"
    ]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=24)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scenario", default="baseline")
    parser.add_argument("--min-rep-s", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask cluster")
    args = parser.parse_args(argv)
    check_rounds(parser, args.rounds)
    r = measure(args.replications, args.workers, args.scenario, args.min_rep_s,
                rounds=args.rounds, dask=not args.no_dask)
    busy = r.pop("busy")
    return conclude("parallel", f"parallel ({args.rounds} rounds, rotating order",
                    figures(r), busy, **r)


if __name__ == "__main__":
    main()
