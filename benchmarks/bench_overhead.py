"""Benchmark: the full model's cost over a bare SimPy model (target: at most 2x).

One 10k-node replication of ``lagging_release`` with the full model (real signatures,
digests, governance store, recorder), then a bare SimPy model (``bare_model.py``) with
the same number of processes and timeouts, as reported by the world in its summary
(``sim_processes``, ``sim_timeouts``). Both are measured in this run, best of
``--repeat``; the ratio is printed, never asserted.

    .venv/bin/python benchmarks/bench_overhead.py [--nodes 10000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bare_model import run_bare  # noqa: E402

TARGET = 2.0


def measure(nodes: int = 10_000, seed: int = 1, repeat: int = 2) -> dict[str, Any]:
    from releasesim.sim.api import resolve_scenario
    from releasesim.sim.world import simulate_replication

    scenario = resolve_scenario("lagging_release", [f"fleet.nodes={nodes}"])
    full_times: list[float] = []
    bare_times: list[float] = []
    for _ in range(repeat):  # alternate, so a burst of load hits both sides alike
        start = time.perf_counter()
        result = simulate_replication(scenario, seed, 0)
        full_times.append(time.perf_counter() - start)
        summary = result.summary
        if "sim_processes" not in summary or "sim_timeouts" not in summary:
            raise SystemExit("the world's summary lacks sim_processes/sim_timeouts")
        processes, timeouts = int(summary["sim_processes"]), int(summary["sim_timeouts"])
        bare_times.append(run_bare(processes, timeouts, seed))
    full, bare = min(full_times), min(bare_times)
    return {
        "benchmark": "overhead",
        "nodes": nodes,
        "sim_processes": processes,
        "sim_timeouts": timeouts,
        "full_s": full,
        "bare_s": bare,
        "ratio": full / bare,
        "target": f"<= {TARGET}x",
        "ok": full / bare <= TARGET,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    r = measure(args.nodes, repeat=args.repeat)
    print(
        f"overhead: {r['nodes']} nodes, {r['sim_processes']} processes, "
        f"{r['sim_timeouts']} timeouts: full {r['full_s']:.3f} s, bare {r['bare_s']:.3f} s, "
        f"ratio {r['ratio']:.2f}x (target {r['target']})"
    )
    return r


if __name__ == "__main__":
    main()
