"""Benchmark: cost and memory per node from 10k to 100k nodes (baseline, lagging_release).

``baseline@mirrors-scaled`` is baseline with mirror slots in proportion to the fleet: at
100k nodes plain baseline's 3 x 50 slots make queues, so each node does more (its floor
grows with it); the scaled variant keeps the work per node the same at both sizes.

Per round and scenario, each in a fresh interpreter: one replication at ``--small`` nodes
(10k) and one at ``--large`` nodes (100k), timed, the bare-SimPy floor of each (the same
processes and timeouts, ``bench_overhead``), and the peak RSS of a worker computing the
large replication (``executors._run_one``: the simulation and its tables as DataFrames)
over that of an empty world (1 node). Figures, as median [min-max] over the rounds:

- cost per node at 100k over that at 10k (target <= 1.2). More nodes can mean more work
  per node (queues at the mirrors grow: more attempts, waits and retries), which the
  floor at each size measures: the floor's own growth and the model's growth over it
  (the cost per node relative to the floor) are printed next to it;
- memory per node at 100k: (peak RSS - empty world's) / nodes, in KB of 1,000 bytes
  (target <= 1.5).

    .venv/bin/python benchmarks/bench_scale.py [--rounds 3] [--scenario baseline ...]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Figure, check_rounds, child, conclude, emit, wait_for_quiet  # noqa: E402

SCENARIOS = ("baseline", "lagging_release", "baseline@mirrors-scaled")
SCALED = "@mirrors-scaled"
"""A scenario name with this suffix gets mirror slots in proportion to the fleet
(``mirrors.capacity`` = 5 per 1,000 nodes, baseline's 50 at 10k): the same work per
node at every size, so its cost per node shows the code's own scaling."""
COST_TARGET = "<= 1.2"
MEMORY_TARGET = "<= 1.5"
SCRIPT = "bench_scale.py"


def _child_run(scenario_name: str, nodes: int, seed: int) -> None:
    from releasesim.sim.api import resolve_scenario
    from releasesim.sim.executors import _run_one
    from releasesim.sim.world import simulate_replication

    overrides = [f"fleet.nodes={nodes}"]
    if scenario_name.endswith(SCALED):
        scenario_name = scenario_name.removesuffix(SCALED)
        overrides.append(f"mirrors.capacity={max(1, round(nodes * 5 / 1000))}")
    scenario = resolve_scenario(scenario_name, overrides)
    if nodes > 1:  # warm-up at the empty world's size (its peak is the reference)
        _run_one(simulate_replication, resolve_scenario(scenario_name, ["fleet.nodes=1"]),
                 seed + 1, 0, None)
    start = time.perf_counter()
    result = _run_one(simulate_replication, scenario, seed, 0, None)
    wall = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    emit({"wall_s": wall, "peak_bytes": peak_kib * 1024,
          "processes": int(result.summary["sim_processes"]),
          "timeouts": int(result.summary["sim_timeouts"])})


def measure(scenario: str, small: int, large: int, rounds: int, seed: int = 1,
            busy: list[float] | None = None) -> dict[str, Any]:
    runs: dict[int, list[dict[str, Any]]] = {small: [], large: []}
    floors: dict[int, list[float]] = {small: [], large: []}
    empty: list[int] = []
    for r in range(rounds):
        if busy is not None:
            busy.append(wait_for_quiet())
        sizes = (small, large) if r % 2 == 0 else (large, small)
        for nodes in sizes:
            out = child(SCRIPT, "run", scenario, str(nodes), str(seed))
            runs[nodes].append(out)
            floor = child("bench_overhead.py", "bare", str(out["processes"]),
                          str(out["timeouts"]), str(seed))
            floors[nodes].append(floor["wall_s"])
        empty.append(child(SCRIPT, "run", scenario, "1", str(seed))["peak_bytes"])
    cost = [(b["wall_s"] / large) / (a["wall_s"] / small)
            for a, b in zip(runs[small], runs[large], strict=True)]
    floor_growth = [(fb / large) / (fa / small)
                    for fa, fb in zip(floors[small], floors[large], strict=True)]
    over_floor = [c / f for c, f in zip(cost, floor_growth, strict=True)]
    kb = [(run["peak_bytes"] - e) / (large - 1) / 1000
          for run, e in zip(runs[large], empty, strict=True)]
    return {
        "benchmark": "scale", "scenario": scenario, "small": small, "large": large,
        "rounds": rounds, "cost_ratio": cost, "floor_ratio": floor_growth,
        "cost_over_floor": over_floor, "kb_per_node": kb,
        "us_per_node": {n: statistics.median(x["wall_s"] for x in runs[n]) / n * 1e6
                        for n in runs},
        "floor_us_per_node": {n: statistics.median(floors[n]) / n * 1e6 for n in floors},
        "events_per_node": {n: runs[n][0]["timeouts"] / n for n in runs},
        "empty_peak_mib": statistics.median(empty) / 2**20,
    }


def figures(results: list[dict[str, Any]]) -> list[Figure]:
    out = []
    for r in results:
        s, g = r["small"], r["large"]
        us, fl, ev = r["us_per_node"], r["floor_us_per_node"], r["events_per_node"]
        growth = Figure("", r["floor_ratio"])
        model = Figure("", r["cost_over_floor"])
        out.append(Figure(
            f"{r['scenario']}: cost per node at {g:,} over {s:,} nodes",
            r["cost_ratio"], "x", COST_TARGET,
            f"{us[s]:.1f} -> {us[g]:.1f} µs per node; the floor's own growth "
            f"{growth.text()} ({fl[s]:.1f} -> {fl[g]:.1f} µs, timeouts per node "
            f"{ev[s]:.1f} -> {ev[g]:.1f}), so the model over its floor {model.text()}",
        ))
        out.append(Figure(
            f"{r['scenario']}: memory at {g:,} nodes", r["kb_per_node"], "KB/node",
            MEMORY_TARGET, f"a worker's peak RSS over an empty world's "
            f"({r['empty_peak_mib']:.0f} MiB)",
        ))
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scenario", action="append",
                        help=f"repeatable; default {', '.join(SCENARIOS)}")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child_run(args.child[1], int(args.child[2]), int(args.child[3]))
        return {}
    check_rounds(parser, args.rounds)
    busy: list[float] = []
    results = [measure(s, args.small, args.large, args.rounds, busy=busy)
               for s in (args.scenario or SCENARIOS)]
    return conclude("scale", f"scale ({args.rounds} alternating rounds", figures(results),
                    busy, results=results)


if __name__ == "__main__":
    main()
