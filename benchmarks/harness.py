"""What every benchmark here shares: quiet-machine checks, child processes, medians.

Speed is compared, never asserted: each benchmark measures the model and its floor (a
bare SimPy model, an empty world, a serial run) in the same run, in alternating rounds,
and reports the median and the range over the rounds -- not a best-of minimum, which
flatters the typical run. Each measurement runs in a fresh interpreter (``child``), so
one measurement's heap (a 100k-node world) does not slow the next.

Before each round ``wait_for_quiet`` samples ``/proc/stat`` for half a second while this
benchmark is idle: the busy share of the machine then is other work. It waits (up to
``max_wait_s``) until that is below ``QUIET_BUSY``, and the round records what it saw, so
a figure taken on a busy machine says so.

Imports only the standard library.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
QUIET_BUSY = 0.10
"""A machine is quiet when other work keeps less than this share of its CPUs busy."""
MARK = "BENCH-JSON "


def _cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat (Linux)."""
    with open("/proc/stat", encoding="ascii") as handle:
        fields = [float(x) for x in handle.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    total = sum(fields[:8])
    return total - idle, total


def background_busy(window_s: float = 0.5) -> float:
    """Share of all CPUs busy with other work over ``window_s`` (this process sleeps)."""
    if not os.path.exists("/proc/stat"):
        return float("nan")
    busy0, total0 = _cpu_times()
    time.sleep(window_s)
    busy1, total1 = _cpu_times()
    return (busy1 - busy0) / max(total1 - total0, 1e-9)


def wait_for_quiet(max_wait_s: float = 60.0) -> float:
    """Wait until other work is below ``QUIET_BUSY``; return the last busy share seen."""
    deadline = time.monotonic() + max_wait_s
    busy = background_busy()
    while busy > QUIET_BUSY and time.monotonic() < deadline:
        time.sleep(2.0)
        busy = background_busy()
    return busy


def python() -> str:
    """The interpreter measurements run in: this one, or ``$RELEASESIM_BENCH_PYTHON``
    (another installation of releasesim to compare, e.g. an earlier commit's)."""
    return os.environ.get("RELEASESIM_BENCH_PYTHON") or sys.executable


def run_json(command: list[str], what: str, echo: bool = False) -> dict[str, Any]:
    """Run ``command``; the JSON of its ``MARK`` line (``emit``). ``echo`` prints its
    other lines."""
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed:\n{proc.stderr.strip()[-2000:]}")
    lines = proc.stdout.splitlines()
    if echo:
        for x in lines:
            if not x.startswith(MARK):
                print(x, flush=True)
    line = next((x for x in lines if x.startswith(MARK)), None)
    if line is None:
        raise SystemExit(f"{what} printed no result:\n{proc.stdout.strip()}")
    return json.loads(line[len(MARK):])


def child(script: str, *args: str) -> dict[str, Any]:
    """Run ``benchmarks/<script> --child args...`` in a fresh interpreter (``python()``);
    its result."""
    return run_json([python(), str(HERE / script), "--child", *args],
                    f"{script} --child {' '.join(args)}")


def check_rounds(parser: argparse.ArgumentParser, rounds: int) -> None:
    """Refuse fewer than 3 rounds: a median of fewer says little."""
    if rounds < 3:
        parser.error("--rounds must be at least 3 (a median of fewer says little)")


def emit(result: dict[str, Any]) -> None:
    """A child's result, as the one line ``run_json`` reads."""
    print(MARK + json.dumps(result, default=str), flush=True)


@dataclass
class Figure:
    """One measured figure over the rounds: its median and range, and its target."""

    name: str
    values: list[float] = field(default_factory=list)
    unit: str = "x"
    target: str = ""
    floor: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def meets(self) -> bool | None:
        """Whether the median meets the target (``<= v`` or ``>= v``), None without one."""
        if not self.target:
            return None
        op, _, bound = self.target.partition(" ")
        value = float(bound)
        return self.median <= value if op == "<=" else self.median >= value

    def text(self, digits: int = 2, times: str = "x") -> str:
        """``median [min-max] unit`` over the rounds (a ratio's unit is ``times``)."""
        lo, hi = min(self.values), max(self.values)
        unit = "" if self.unit == "x" else f" {self.unit}"
        mark = times if self.unit == "x" else ""
        return f"{self.median:.{digits}f}{mark} [{lo:.{digits}f}-{hi:.{digits}f}]{unit}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "median": self.median, "min": min(self.values),
                "max": max(self.values), "values": self.values, "unit": self.unit,
                "target": self.target, "floor": self.floor, "ok": self.meets()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Figure:
        return cls(data["name"], data["values"], data["unit"], data["target"], data["floor"])


def machine() -> str:
    """One line naming the machine: CPUs, processor, Python."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            names = [x.split(":", 1)[1].strip() for x in handle if x.startswith("model name")]
        if names:
            cpu = names[0]
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}"


def report(figures: list[Figure], busy: list[float]) -> None:
    """Print each figure with its median, range, target and the floor it was measured on."""
    for f in figures:
        ok = f.meets()
        verdict = "" if ok is None else ("  meets" if ok else "  MISSES")
        target = f" (target {f.target}{'' if f.unit == 'x' else ' ' + f.unit})" if f.target else ""
        print(f"  {f.name}: {f.text()}{target}{verdict}" + (f"; {f.floor}" if f.floor else ""))
    if busy:
        print(f"  other work before the rounds: {min(busy):.0%}-{max(busy):.0%} of the CPUs")


def conclude(benchmark: str, heading: str, figures: list[Figure], busy: list[float],
             **details: Any) -> dict[str, Any]:
    """Print ``heading`` and the figures (``report``); the benchmark's result for
    ``run_all``: its name, details, figures and the busy shares seen."""
    print(f"{heading}, median [min-max]):")
    report(figures, busy)
    return {"benchmark": benchmark, **details, "figures": [f.to_dict() for f in figures],
            "busy": busy}
