"""Run-side code of ``releasesim sweep`` and ``releasesim check``: many runs, one runner.

- ``parse_grid`` / ``grid_points``: ``--grid key.path=v1,v2`` options into the cartesian
  product of override lists (``2..7`` is an integer range; commas inside ``{}``, ``[]``
  or quotes do not split).
- ``run_sweep``: every grid point is the base scenario plus that point's overrides, run
  through ``releasesim.sim.runner.run_scenario`` (any executor) with the **same seed** and therefore
  the same replication seeds ``(seed, i)``: common random numbers across the grid, so
  differences between settings are not drowned in replication noise. Every point is
  validated before anything runs. With ``until`` (a predicate on the results so far) the
  replication count doubles, up to ``max_replications``, until it holds; replication ``i``
  is a pure function of ``(seed, i)``, so a longer run extends a shorter one exactly.
- ``run_suite``: each ``*.toml`` of a CI directory with its own fixed seed and
  replication count.

Imports ``sim.api`` and ``sim.runner``; never ``reports`` (the CLI passes the predicate).
"""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from releasesim.sim.api import resolve_scenario
from releasesim.sim.errors import ScenarioError
from releasesim.sim.runner import RunResult, resolve_run_settings, run_scenario

_RANGE = re.compile(r"^\s*(-?\d+)\s*\.\.\s*(-?\d+)\s*$")


@dataclass(frozen=True, slots=True)
class GridPoint:
    """One setting of the grid: ``(key, value text)`` pairs in ``--grid`` order."""

    settings: tuple[tuple[str, str], ...]

    @property
    def overrides(self) -> list[str]:
        return [f"{key}={value}" for key, value in self.settings]

    @property
    def label(self) -> str:
        return ", ".join(f"{key}={value}" for key, value in self.settings)


@dataclass(slots=True)
class SweepRun:
    """One grid point's scenario and run."""

    point: GridPoint
    scenario: Any
    result: RunResult


def split_values(text: str) -> list[str]:
    """Split ``v1,v2`` at top-level commas; ``a..b`` expands to the integers a..b."""
    match = _RANGE.match(text)
    if match:
        low, high = int(match.group(1)), int(match.group(2))
        step = 1 if high >= low else -1
        return [str(v) for v in range(low, high + step, step)]
    values, depth, quote, current = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            values.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    values.append("".join(current).strip())
    return values


def parse_grid(options: Sequence[str]) -> list[tuple[str, list[str]]]:
    """``["signers.threshold=3,4,5"]`` -> ``[("signers.threshold", ["3", "4", "5"])]``."""
    grid: list[tuple[str, list[str]]] = []
    seen: set[str] = set()
    for option in options:
        key, sep, rest = option.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ScenarioError(f"--grid {option!r}: expected key.path=v1,v2,...")
        if key in seen:
            raise ScenarioError(f"--grid {key} given twice")
        values = split_values(rest)
        if not values or any(v == "" for v in values):
            raise ScenarioError(f"--grid {option!r}: empty value in the list")
        seen.add(key)
        grid.append((key, values))
    if not grid:
        raise ScenarioError("sweep needs at least one --grid key.path=v1,v2,...")
    return grid


def grid_points(grid: Sequence[tuple[str, Sequence[str]]]) -> list[GridPoint]:
    """The cartesian product, first key varying slowest."""
    keys = [key for key, _ in grid]
    return [GridPoint(tuple(zip(keys, combo, strict=True)))
            for combo in itertools.product(*(values for _, values in grid))]


def resolve_points(
    scenario: Any, points: Sequence[GridPoint], base_overrides: Sequence[str] = ()
) -> list[Any]:
    """Every point's validated scenario (raises ``ScenarioError`` naming the point)."""
    resolved = []
    for point in points:
        try:
            resolved.append(resolve_scenario(scenario, [*base_overrides, *point.overrides]))
        except ScenarioError as exc:
            raise ScenarioError(f"grid point {point.label}: {exc}") from None
    return resolved


def default_deadline_s(scenario: Any) -> float:
    """The default deadline of "activated on time": the vote period plus ``sla_s``."""
    vote = float(scenario.governance.vote_period_epochs) * float(scenario.epoch_s)
    return vote + float(scenario.sla_s)


def run_sweep(
    scenario: Any,
    grid: Sequence[tuple[str, Sequence[str]]],
    *,
    base_overrides: Sequence[str] = (),
    replications: int | None = None,
    seed: int | None = None,
    executor: str = "process",
    workers: int | None = None,
    scheduler: str | None = None,
    until: Callable[[list[SweepRun]], bool] | None = None,
    max_replications: int = 1000,
    log: Callable[[str], None] | None = None,
    on_replication: Callable[[], None] | None = None,
) -> list[SweepRun]:
    """Run every grid point with common random numbers; see the module docstring."""
    say = log or (lambda text: print(text, file=sys.stderr))
    base = resolve_scenario(scenario, base_overrides)
    points = grid_points(grid)
    scenarios = resolve_points(base, points)
    reps, seed, _ = resolve_run_settings(base, replications=replications, seed=seed,
                                         workers=workers, executor=executor,
                                         scheduler=scheduler)
    max_replications = max(reps, int(max_replications))
    while True:
        runs = []
        for point, resolved in zip(points, scenarios, strict=True):
            result = run_scenario(resolved, replications=reps, seed=seed, workers=workers,
                                  executor=executor, scheduler=scheduler, progress=False,
                                  write=False, on_replication=on_replication,
                                  extra_manifest={"overrides": [*base_overrides,
                                                                *point.overrides]})
            say(f"  {point.label}: {reps} replications (seed {seed})")
            runs.append(SweepRun(point, resolved, result))
        if until is None or until(runs) or reps >= max_replications:
            return runs
        reps = min(max_replications, reps * 2)
        say(f"CIs wider than the target: rerunning with {reps} replications per point")


def run_suite(
    directory: str | Path, *, executor: str = "serial", workers: int | None = None,
    log: Callable[[str], None] | None = None,
    on_replication: Callable[[], None] | None = None,
) -> list[tuple[Path, Any, RunResult]]:
    """Run each scenario file of a CI directory with its own seed and replications."""
    say = log or (lambda text: print(text, file=sys.stderr))
    directory = Path(directory)
    files = sorted(directory.glob("*.toml"))
    if not files:
        raise ScenarioError("no *.toml scenario files", source=str(directory))
    scenarios = [resolve_scenario(path) for path in files]
    names = [getattr(s, "name", p.stem) for s, p in zip(scenarios, files, strict=True)]
    if len(set(names)) != len(names):
        raise ScenarioError("two scenario files share a name", source=str(directory))
    out = []
    for path, resolved in zip(files, scenarios, strict=True):
        result = run_scenario(resolved, executor=executor, workers=workers, progress=False,
                              write=False, on_replication=on_replication)
        say(f"  ran {resolved.name}: {len(result.summary)} replications, seed "
            f"{result.manifest.get('seed')} ({result.manifest.get('wall_s', 0):.1f} s)")
        out.append((path, resolved, result))
    return out


__all__ = [
    "GridPoint",
    "SweepRun",
    "default_deadline_s",
    "grid_points",
    "parse_grid",
    "resolve_points",
    "run_suite",
    "run_sweep",
    "split_values",
]
