"""Run the three performance benchmarks and print a table of figures against targets.

    .venv/bin/python benchmarks/run_all.py      (also: make bench)

Speed is measured here, never asserted in tests: each benchmark compares the model
with a baseline measured in the same run (bare SimPy model, empty world, serial run).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_memory  # noqa: E402
import bench_overhead  # noqa: E402
import bench_parallel  # noqa: E402


def main() -> int:
    rows = []
    for module in (bench_overhead, bench_memory, bench_parallel):
        result = module.main([])
        rows.append(result)
    print()
    print(f"{'benchmark':<10} {'figure':>14} {'target':>16}  ok  baseline")
    for r in rows:
        if r["benchmark"] == "overhead":
            figure = f"{r['ratio']:.2f}x"
            base = f"full {r['full_s']:.2f} s vs bare SimPy {r['bare_s']:.2f} s"
        elif r["benchmark"] == "memory":
            figure = f"{r['kb_per_node']:.2f} KB/node"
            base = f"{r['full_peak_mib']:.0f} MiB vs empty world {r['empty_peak_mib']:.0f} MiB"
        else:
            figure = f"{r['speedup']:.2f}x"
            base = f"serial {r['serial_s']:.2f} s vs {r['workers']} workers {r['process_s']:.2f} s"
        ok = "yes" if r["ok"] else "NO"
        print(f"{r['benchmark']:<10} {figure:>14} {r['target']:>16}  {ok:<3} {base}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
