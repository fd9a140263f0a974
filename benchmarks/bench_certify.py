"""Benchmark: certify P(malicious approved) <= 1e-6 (issue 10, item 5; target <= 10 min).

The setting: 7 release signer keys, threshold 4, each key stolen independently with
probability 0.01 (the shipped ``certify_threshold`` without its shared HSM:
``signers.compromise_groups=[]``), 1,000 nodes, 2 worker processes. It runs exactly what
``releasesim certify`` runs (``cli.certify.certify_point``) and prints the wall time, the
stratum replications used, the bound and its method, and what plain Monte Carlo would need
for the same bound: with no forgery in n replications the one-sided 95% upper bound is
``1 - 0.05**(1/n)`` (about 3/n), so n = ln(1/0.05) / target replications, and at the
measured seconds per plain replication (a plain run of ``--plain`` replications) that many
replications take the printed time. ``--first`` (default 256) is the first batch per
stratum: larger batches give a tighter bound than the target needs. No timing is asserted
anywhere; this prints figures.

    .venv/bin/python benchmarks/bench_certify.py [--target 1e-6] [--nodes 1000] [--workers 2]
"""

from __future__ import annotations

import argparse
import math
import os
import time
from typing import Any

TARGET_S = 600.0


def measure(target: float = 1e-6, nodes: int = 1000, workers: int = 2, first: int = 256,
            plain: int = 40, seed: int = 0, hsm: bool = False) -> dict[str, Any]:
    from releasesim.cli.certify import certify_point
    from releasesim.sim.api import resolve_scenario
    from releasesim.sim.runner import run_scenario

    overrides = [f"fleet.nodes={nodes}"] + ([] if hsm else ["signers.compromise_groups=[]"])
    scenario = resolve_scenario("certify_threshold", overrides)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    result = certify_point(scenario, target=target, first=first, max_replications=16 * first,
                           seed=seed, executor="process", workers=workers)
    certify_s = time.perf_counter() - start
    start = time.perf_counter()
    run_scenario(scenario, replications=plain, seed=seed, executor="process", workers=workers,
                 progress=False, write=False)
    per_rep_s = (time.perf_counter() - start) / plain
    row = result["row"]
    plain_needed = math.log(1 / 0.05) / target
    return {
        "setting": f"7 keys, threshold 4, p = 0.01{' + HSM' if hsm else ''}, {nodes} nodes",
        "target": target, "target_met": row["target_met"], "stop": row["stop"],
        "bound": row["approved_upper"], "point": row["approved_point"],
        "sentence": row["approved_sentence"], "stratum_replications": row["replications"],
        "certify_s": certify_s, "plain_replications_needed": plain_needed,
        "plain_s_per_replication": per_rep_s,
        "plain_hours_needed": plain_needed * per_rep_s / 3600, "workers": workers,
        "load_before": load,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=float, default=1e-6)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--first", type=int, default=256)
    parser.add_argument("--plain", type=int, default=40)
    parser.add_argument("--hsm", action="store_true", help="keep the shared HSM group")
    args = parser.parse_args(argv)
    out = measure(args.target, args.nodes, args.workers, args.first, args.plain,
                  hsm=args.hsm)
    print(f"{out['setting']}: {out['sentence']}")
    print(f"  target {out['target']:.0e}: {'met' if out['target_met'] else 'NOT met'} "
          f"(stopped: {out['stop']}), {out['stratum_replications']:,} stratum replications "
          f"in {out['certify_s']:.1f} s on {out['workers']} workers (target <= {TARGET_S:.0f} "
          f"s; load {out['load_before']:.1f})")
    print(f"  plain Monte Carlo would need {out['plain_replications_needed']:,.0f} clean "
          f"replications (ln 20 / target) at {out['plain_s_per_replication'] * 1e3:.0f} ms "
          f"each = {out['plain_hours_needed']:.0f} h")
    return out


if __name__ == "__main__":
    main()
