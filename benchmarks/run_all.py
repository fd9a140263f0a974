"""Run the three performance benchmarks and print a table of figures against targets.

    .venv/bin/python benchmarks/run_all.py      (also: make bench)

Speed is measured here, never asserted in tests: each benchmark compares the model
with a baseline measured in the same run (bare SimPy model, empty world, serial run).
Each benchmark runs in a fresh interpreter, so one's heap (the 100k-node world) does not
slow the next one's forked workers; the overhead and parallel ones take the best of
alternating rounds (5 and 2).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = (
    ("bench_overhead", ["--repeat", "5"]),
    ("bench_memory", []),
    ("bench_parallel", ["--repeat", "2"]),
)
MARK = "RESULT-JSON "


def _run(module: str, args: list[str]) -> dict:
    code = (
        f"import json, sys; sys.path.insert(0, {str(HERE)!r}); import {module}; "
        f"print({MARK!r} + json.dumps({module}.main({args!r}), default=str))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    lines = proc.stdout.splitlines()
    for line in lines:
        if not line.startswith(MARK):
            print(line, flush=True)
    return json.loads(next(line for line in lines if line.startswith(MARK))[len(MARK):])


def main() -> int:
    rows = [_run(module, args) for module, args in BENCHMARKS]
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
