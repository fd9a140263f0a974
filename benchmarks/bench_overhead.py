"""Benchmark: one replication's cost over its bare-SimPy floor (lagging_release, baseline).

The full model (real signatures, digests, governance store, recorder) runs one 10k-node
replication; the floor is ``bare_model.py``: a bare SimPy model with the same number of
processes and timeouts as the world counts (``sim_processes``, ``sim_timeouts``: one
process per node update and one timeout per modelled wait -- download, backoff, hashing,
restart, a queued download request's fetch timeout, ...), i.e. what a straightforward
SimPy model of the same steps schedules. The full model may schedule fewer events than
that (``sim.node_task``, ``sim.mirrors.DeadlineWatch``); both counts are printed. Both
run with Python's cyclic garbage collector paused, as ``simulate_replication`` does.

Each measurement runs in a fresh interpreter (after a small warm-up replication), in
alternating order round by round (full then floor, floor then full, ...); the ratio of
each round is printed as median [min-max] over ``--rounds`` rounds (at least 3).

    .venv/bin/python benchmarks/bench_overhead.py [--nodes 10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Figure, check_rounds, child, conclude, emit, wait_for_quiet  # noqa: E402

TARGETS = {"lagging_release": "<= 1.5", "baseline": "<= 2.5"}
SCRIPT = "bench_overhead.py"


def _child_full(scenario_name: str, nodes: int, seed: int) -> None:
    from releasesim.sim.api import resolve_scenario
    from releasesim.sim.world import World, simulate_replication

    small = resolve_scenario(scenario_name, ["fleet.nodes=100"])
    simulate_replication(small, seed + 1, 0)  # warm-up: imports, first-call paths
    scenario = resolve_scenario(scenario_name, [f"fleet.nodes={nodes}"])
    start = time.perf_counter()
    result = simulate_replication(scenario, seed, 0)
    wall = time.perf_counter() - start
    summary = result.summary
    del result
    # untimed: how many events the full model really processes (Environment.step calls)
    gc.disable()
    world = World(scenario, seed, 0)
    steps = [0]
    step = world.env.step

    def counting_step() -> None:
        steps[0] += 1
        step()

    world.env.step = counting_step  # type: ignore[method-assign]
    world.run()
    emit({"wall_s": wall, "processes": int(summary["sim_processes"]),
          "timeouts": int(summary["sim_timeouts"]), "events": steps[0]})


def _child_bare(processes: int, timeouts: int, seed: int) -> None:
    from bare_model import run_bare

    run_bare(100, 1000, seed + 1)  # warm-up
    gc.disable()
    emit({"wall_s": run_bare(processes, timeouts, seed)})


def measure(scenario: str, nodes: int = 10_000, rounds: int = 3, seed: int = 1,
            busy: list[float] | None = None) -> dict[str, Any]:
    """``rounds`` alternating rounds of the full replication and its floor."""
    full_s: list[float] = []
    bare_s: list[float] = []
    counts: dict[str, Any] = {}
    for r in range(rounds):
        if busy is not None:
            busy.append(wait_for_quiet())
        order = ("full", "bare") if r % 2 == 0 else ("bare", "full")
        for side in order:
            if side == "full":
                out = child(SCRIPT, "full", scenario, str(nodes), str(seed))
                counts = out
                full_s.append(out["wall_s"])
            else:
                if not counts:  # the floor needs the counts: the first round runs full first
                    raise AssertionError("unreachable: round 0 runs the full model first")
                out = child(SCRIPT, "bare", str(counts["processes"]), str(counts["timeouts"]),
                            str(seed))
                bare_s.append(out["wall_s"])
    ratios = [f / b for f, b in zip(full_s, bare_s, strict=True)]
    return {
        "benchmark": "overhead", "scenario": scenario, "nodes": nodes, "rounds": rounds,
        "processes": counts["processes"], "timeouts": counts["timeouts"],
        "events": counts["events"], "full_s": full_s, "bare_s": bare_s, "ratios": ratios,
        "us_per_node": statistics.median(full_s) / nodes * 1e6,
        "floor_us_per_node": statistics.median(bare_s) / nodes * 1e6,
    }


def figures(results: list[dict[str, Any]]) -> list[Figure]:
    out = []
    for r in results:
        out.append(Figure(
            f"{r['nodes']:,}-node {r['scenario']} vs its bare-SimPy floor",
            r["ratios"], "x", TARGETS.get(r["scenario"], ""),
            f"{r['us_per_node']:.1f} µs per node, floor {r['floor_us_per_node']:.1f} "
            f"({r['processes']:,} processes, {r['timeouts']:,} timeouts; the model "
            f"processed {r['events']:,} events)",
        ))
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scenario", action="append",
                        help="scenario (repeatable; default lagging_release and baseline)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, *rest = args.child
        if kind == "full":
            _child_full(rest[0], int(rest[1]), int(rest[2]))
        else:
            _child_bare(int(rest[0]), int(rest[1]), int(rest[2]))
        return {}
    check_rounds(parser, args.rounds)
    busy: list[float] = []
    results = [measure(s, args.nodes, args.rounds, busy=busy)
               for s in (args.scenario or list(TARGETS))]
    return conclude("overhead", f"overhead ({args.rounds} alternating rounds",
                    figures(results), busy, results=results)


if __name__ == "__main__":
    main()
