"""Run the performance benchmarks and print every target with its median, range and floor.

    .venv/bin/python benchmarks/run_all.py [--quick] [--markdown FILE]
    (also: python3 tasks.py bench, make bench)

Speed is measured here, never asserted in tests: each benchmark compares the model with
a floor measured in the same run (a bare SimPy model, an empty world, a serial run) in
alternating rounds, and reports median [min-max] over at least 3 rounds, with the share
of the CPUs other work kept busy before each round (``harness``). Each benchmark runs in
a fresh interpreter. ``--quick`` leaves out the end-to-end run (3 x 1,000 replications,
about 10 minutes); ``--markdown FILE`` writes the table, dated and with the machine, as
the README quotes it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Figure, machine, run_json  # noqa: E402

HERE = Path(__file__).resolve().parent
BENCHMARKS = (
    ("bench_overhead", []),
    ("bench_scale", []),
    ("bench_parallel", []),
    ("bench_end_to_end", []),
)


def _run(module: str, args: list[str]) -> dict:
    code = (
        f"import sys; sys.path.insert(0, {str(HERE)!r}); import harness, {module}; "
        f"harness.emit({module}.main({args!r}))"
    )
    return run_json([sys.executable, "-c", code], module, echo=True)


def table(results: list[dict]) -> list[str]:
    """The markdown table: figure, median [range], target, verdict, floor."""
    rows = ["| figure | median [range] | target | | measured against |", "|---|---|---|---|---|"]
    for result in results:
        for f in result["figures"]:
            unit = "" if f["unit"] == "x" else f" {f['unit']}"
            target = f"{f['target'].replace('<=', '≤').replace('>=', '≥')}{unit}"
            verdict = {True: "meets", False: "**misses**", None: ""}[f["ok"]]
            cell = Figure.from_dict(f).text(times="×")
            rows.append(f"| {f['name']} | {cell} | {target} | {verdict} | {f['floor']} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="leave out the end-to-end run")
    parser.add_argument("--markdown", type=Path, help="write the dated table here")
    args = parser.parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    chosen = [b for b in BENCHMARKS if not (args.quick and b[0] == "bench_end_to_end")]
    results = [_run(module, extra) for module, extra in chosen]
    busy = [b for r in results for b in r.get("busy", [])]
    lines = table(results)
    header = (f"Measured {started:%Y-%m-%d} with `python3 tasks.py bench` on {machine()}; "
              f"other work kept {min(busy):.0%}-{max(busy):.0%} of the CPUs busy before the "
              f"rounds." if busy else f"Measured {started:%Y-%m-%d} on {machine()}.")
    print()
    print(header)
    print("\n".join(lines))
    if args.markdown is not None:
        args.markdown.write_text(header + "\n\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
