"""Benchmark: memory per node of one large replication (target: at most 2 KB/node).

Each measurement runs in a fresh interpreter that imports everything, resolves the
scenario, runs one replication and reports its peak RSS (``ru_maxrss``). Memory per
node is ``(peak RSS with N nodes - peak RSS of an empty world) / N``, both measured in
this run; the empty world is the same scenario with ``--empty-nodes`` nodes (1). The
node records the replication returns are included (they are part of its cost).

    .venv/bin/python benchmarks/bench_memory.py [--nodes 100000] [--scenario baseline]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any

TARGET_KB = 2.0


def _child(scenario_name: str, nodes: int, seed: int) -> None:
    from releasesim.sim.api import resolve_scenario
    from releasesim.sim.world import simulate_replication

    scenario = resolve_scenario(scenario_name, [f"fleet.nodes={nodes}"])
    start = time.perf_counter()
    result = simulate_replication(scenario, seed, 0)
    wall = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"nodes": nodes, "peak_kib": peak_kib, "wall_s": wall,
                      "node_rows": len(result.nodes)}))


def _peak(scenario_name: str, nodes: int, seed: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", scenario_name, str(nodes), str(seed)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(
    nodes: int = 100_000, scenario: str = "baseline", seed: int = 1, empty_nodes: int = 1
) -> dict[str, Any]:
    empty = _peak(scenario, empty_nodes, seed)
    full = _peak(scenario, nodes, seed)
    per_node_kb = (full["peak_kib"] - empty["peak_kib"]) * 1024 / max(1, nodes - empty_nodes) / 1000
    return {
        "benchmark": "memory",
        "scenario": scenario,
        "nodes": nodes,
        "empty_peak_mib": empty["peak_kib"] / 1024,
        "full_peak_mib": full["peak_kib"] / 1024,
        "wall_s": full["wall_s"],
        "kb_per_node": per_node_kb,
        "target": f"<= {TARGET_KB} KB/node",
        "ok": per_node_kb <= TARGET_KB,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100_000)
    parser.add_argument("--scenario", default="baseline")
    parser.add_argument("--empty-nodes", type=int, default=1)
    args = parser.parse_args(argv)
    r = measure(args.nodes, args.scenario, empty_nodes=args.empty_nodes)
    print(
        f"memory: {r['nodes']} nodes of {r['scenario']}: peak RSS {r['full_peak_mib']:.1f} MiB "
        f"vs empty world {r['empty_peak_mib']:.1f} MiB -> {r['kb_per_node']:.2f} KB/node "
        f"(target {r['target']}; replication took {r['wall_s']:.1f} s)"
    )
    return r


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        _child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
