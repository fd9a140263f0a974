"""Benchmark: ``releasesim run`` end to end, 1,000 replications of the 10k-node baseline.

Times the whole command a user runs (``releasesim run baseline --replications 1000 --set
fleet.nodes=10000 --out DIR --quiet``: start-up, the replications on the default process
pool, the tables, the printed blast radius, the report with its figures and HTML) in a
fresh process per round, and splits it into the replications (the manifest's
``wall_s``) and everything after. The floor, measured in the same run: the bare-SimPy
model of one replication (``bench_overhead``) times the replications, over the workers.
Printed as median [min-max] over ``--rounds``; the target is 4 minutes.

    .venv/bin/python benchmarks/bench_end_to_end.py [--rounds 3] [--replications 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Figure, check_rounds, child, conclude, python, wait_for_quiet  # noqa: E402

TARGET_MIN = "<= 4"


def measure(replications: int = 1000, nodes: int = 10_000, rounds: int = 3,
            seed: int = 1) -> dict[str, Any]:
    totals: list[float] = []
    sims: list[float] = []
    floors: list[float] = []
    busy: list[float] = []
    workers = os.cpu_count() or 1
    for _ in range(rounds):
        busy.append(wait_for_quiet())
        scratch = Path(tempfile.mkdtemp(prefix="releasesim-e2e-"))
        out = scratch / "run"
        command = [python(), "-m", "releasesim", "run", "baseline",
                   "--replications", str(replications), "--seed", str(seed),
                   "--set", f"fleet.nodes={nodes}", "--out", str(out), "--quiet"]
        try:
            start = time.perf_counter()
            proc = subprocess.run(command, capture_output=True, text=True, check=False)
            totals.append(time.perf_counter() - start)
            if proc.returncode != 0:
                raise SystemExit(f"releasesim run failed ({proc.returncode}): "
                                 f"{proc.stderr.strip()[-500:]}")
            manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
            sims.append(float(manifest["wall_s"]))
            workers = int(manifest["workers"])
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        one = child("bench_overhead.py", "full", "baseline", str(nodes), str(seed))
        bare = child("bench_overhead.py", "bare", str(one["processes"]), str(one["timeouts"]),
                     str(seed))
        floors.append(bare["wall_s"] * replications / workers)
    return {"replications": replications, "nodes": nodes,
            "rounds": rounds, "workers": workers, "total_s": totals, "simulation_s": sims,
            "after_s": [t - s for t, s in zip(totals, sims, strict=True)],
            "floor_s": floors, "busy": busy}


def figures(r: dict[str, Any]) -> list[Figure]:
    minutes = [t / 60 for t in r["total_s"]]
    sims = Figure("", r["simulation_s"], "s")
    after = Figure("", r["after_s"], "s")
    floor = Figure("", r["floor_s"], "s")
    return [Figure(
        f"releasesim run: {r['replications']:,} replications of the "
        f"{r['nodes']:,}-node baseline, end to end", minutes, "min", TARGET_MIN,
        f"replications {sims.text(1)}, start-up, tables and report {after.text(1)}; "
        f"{r['workers']} workers; bare-SimPy floor of the replications {floor.text(1)}",
    )]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    check_rounds(parser, args.rounds)
    r = measure(args.replications, args.nodes, args.rounds)
    busy = r.pop("busy")
    return conclude("end_to_end", f"end to end ({args.rounds} rounds", figures(r), busy,
                    median_total_s=statistics.median(r["total_s"]), **r)


if __name__ == "__main__":
    main()
