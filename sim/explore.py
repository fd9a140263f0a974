"""Run-side code of ``releasesim explore``: a design over uncertain knobs, run as one batch.

An exploration is a base scenario, knobs varied over ranges (``sim.design``: ``--vary
KNOB=LOW..HIGH`` or ``KNOB=a,b,c``), a design (``lhs``, ``sobol``, ``morris``) of
``samples`` and ``replications`` per design point. Every design point is the base scenario
plus that point's overrides, validated (against the scenario schema, with the point named)
before anything runs.

**Common random numbers.** Every point runs with the same seed and therefore the same
replication seeds ``(seed, r)``: replication ``r`` of every point sees the same random
streams, so differences between points are differences of the knobs, not of luck.

**One batch.** The ``points × replications`` tasks go to the executor as one job (task
``k`` is point ``k // R``, replication ``k % R``; ``ExplorationTask`` carries the points'
scenarios), so a process pool or a Dask cluster is started once, not once per point.
Only the per-replication summary row travels back. Results are identical whatever the
executor and worker count: each task is a pure function of ``(scenario of point, seed, r)``.

**Files** (``out_dir``): ``manifest.json`` (scenario, design, seed, replications, the
SALib problem, the plan's fingerprint, package versions), ``design.parquet`` (one row per
point: the knob values), ``unit.parquet`` (the design in the unit hypercube, which the
Morris and Sobol analyses need), ``points/point-NNNNN.parquet`` (a finished point's
summary rows, written atomically as soon as its last replication arrives), and at the end
``experiments.parquet`` + ``experiments.csv``: one row per (point, replication) with every
varied knob and every summary outcome.

**Resume.** ``resume=True`` on an existing directory checks the plan's fingerprint (base
scenario, overrides, design, samples, seed, replications: nothing may differ) and runs only
the points with no file yet; an interrupted exploration loses at most the points in flight.

Imports ``sim.design``, ``sim.api``, ``sim.runner``, ``sim.executors`` and ``sim.world``;
never ``reports``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from releasesim.sim.api import resolve_scenario
from releasesim.sim.design import Design, make_design, parse_knobs
from releasesim.sim.errors import ScenarioError
from releasesim.sim.executors import RunError, execute
from releasesim.sim.runner import (
    _json_safe,
    package_versions,
    resolve_run_settings,
    utc_now,
)
from releasesim.sim.scenario import config_hash
from releasesim.sim.world import simulate_replication

FORMAT = "releasesim-exploration/1"
MANIFEST = "manifest.json"
EXPERIMENTS = "experiments"
POINTS_DIR = "points"
MAX_TASKS = 2_000_000
ID_COLUMNS = ("point", "replication", "seed")


@dataclass(frozen=True, slots=True)
class ExplorationTask:
    """What every worker needs: each point's scenario and the replications per point."""

    scenarios: tuple[Any, ...]
    replications: int


def run_task(task: ExplorationTask, seed: int, k: int, *, keep_store: Any = None) -> Any:
    """Task ``k``: point ``k // R``, replication ``k % R``; returns ``(k, summary row)``."""
    point, replication = divmod(k, task.replications)
    result = simulate_replication(task.scenarios[point], seed, replication)
    return k, result.summary


@dataclass(slots=True)
class ExplorationPlan:
    """Everything decided before a run: the base scenario, the design, the point scenarios."""

    base: Any
    design: Design
    scenarios: list[Any]
    base_overrides: tuple[str, ...]
    replications: int
    seed: int
    workers: int | None

    @property
    def fingerprint(self) -> str:
        """Hash of what fixes the results: scenario, overrides, design, seed, replications."""
        text = json.dumps({
            "scenario": config_hash(self.base),
            "overrides": list(self.base_overrides),
            "design": self.design.kind,
            "knobs": [k.spec for k in self.design.knobs],
            "samples": self.design.samples,
            "seed": self.seed,
            "replications": self.replications,
        }, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(slots=True)
class Exploration:
    """A finished exploration: the plan, its experiments table and where it was written."""

    plan: ExplorationPlan
    experiments: pd.DataFrame
    manifest: dict[str, Any]
    directory: Path | None
    resumed_points: int


def plan_exploration(
    scenario: Any,
    vary: Sequence[str],
    *,
    design: str = "lhs",
    samples: int = 32,
    replications: int | None = None,
    seed: int | None = None,
    base_overrides: Sequence[str] = (),
    executor: str = "process",
    workers: int | None = None,
    scheduler: str | None = None,
) -> ExplorationPlan:
    """Parse the knobs, draw the design and validate every point; nothing runs yet."""
    base = resolve_scenario(scenario, base_overrides)
    knobs = parse_knobs(vary)  # refuses an empty list too
    reps, seed, workers = resolve_run_settings(
        base, replications=replications, seed=seed, workers=workers, executor=executor,
        scheduler=scheduler,
    )
    drawn = make_design(knobs, design, samples, seed)
    if drawn.size * reps > MAX_TASKS:
        raise RunError(
            f"{drawn.size:,} design points x {reps} replications is more than"
            f" {MAX_TASKS:,} replications; use fewer --samples or --replications"
        )
    scenarios = []
    for point in range(drawn.size):
        overrides = drawn.overrides(point)
        try:
            scenarios.append(resolve_scenario(base, overrides))
        except ScenarioError as exc:
            raise ScenarioError(f"design point {point} ({', '.join(overrides)}): {exc}") from None
    return ExplorationPlan(base, drawn, scenarios, tuple(base_overrides), reps, seed, workers)


def _atomic_parquet(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def _point_file(directory: Path, point: int) -> Path:
    return directory / POINTS_DIR / f"point-{point:05d}.parquet"


def _write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    text = json.dumps(manifest, indent=2, allow_nan=False, default=str)
    tmp = directory / f".{MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, directory / MANIFEST)


def _prepare_directory(plan: ExplorationPlan, directory: Path, resume: bool,
                       manifest: dict[str, Any]) -> set[int]:
    """Create (or, resuming, check) the directory; the points already finished."""
    manifest_path = directory / MANIFEST
    if directory.exists() and not directory.is_dir():
        raise RunError(f"--out {directory} exists and is not a directory")
    if resume:
        if not manifest_path.is_file():
            raise RunError(f"--resume: {directory} holds no exploration ({MANIFEST} missing)")
        try:
            previous = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RunError(f"--resume: {manifest_path}: unreadable ({exc})") from None
        if previous.get("plan") != plan.fingerprint:
            raise RunError(
                f"--resume: {directory} holds a different exploration (scenario, overrides,"
                " design, samples, seed or replications differ); give the same arguments"
            )
        done = set()
        for point in range(plan.design.size):
            if _point_file(directory, point).is_file():
                done.add(point)
        return done
    if directory.exists() and any(directory.iterdir()):
        raise RunError(
            f"--out {directory} already exists and is not empty; choose another or --resume"
        )
    (directory / POINTS_DIR).mkdir(parents=True, exist_ok=True)
    _atomic_parquet(plan.design.points.reset_index(), directory / "design.parquet")
    unit = pd.DataFrame(plan.design.unit, columns=[k.name for k in plan.design.knobs])
    _atomic_parquet(unit, directory / "unit.parquet")
    _write_manifest(directory, {**manifest, "complete": False})  # what --resume checks
    return set()


def _manifest(plan: ExplorationPlan, executor: str, started: str, wall_s: float,
              argv: Sequence[str] | None) -> dict[str, Any]:
    design = plan.design
    return _json_safe({
        "format": FORMAT,
        "plan": plan.fingerprint,
        "complete": True,
        "scenario_name": str(getattr(plan.base, "name", "scenario")),
        "config_hash": config_hash(plan.base),
        "scenario": plan.base.to_dict(),
        "overrides": list(plan.base_overrides),
        "design": design.kind,
        "knobs": [{"name": k.name, "kind": k.kind, "spec": k.spec} for k in design.knobs],
        "samples": design.samples,
        "points": design.size,
        "replications": plan.replications,
        "seed": plan.seed,
        "seed_rule": "every point runs replications r = 0..R-1 with seeds (seed, r):"
                     " common random numbers across points",
        "problem": design.problem,
        "design_notes": list(design.notes),
        "executor": executor,
        "workers": plan.workers,
        "started_utc": started,
        "wall_s": round(wall_s, 3),
        "python": sys.version.split()[0],
        "packages": package_versions(("SALib",)),
        "argv": list(argv) if argv is not None else None,
        "files": ["design.parquet", "unit.parquet", f"{EXPERIMENTS}.parquet",
                  f"{EXPERIMENTS}.csv"],
    })


def _experiments(plan: ExplorationPlan, rows: pd.DataFrame) -> pd.DataFrame:
    """Knob columns joined to the summary rows, sorted by (point, replication)."""
    points = plan.design.points.reset_index()
    table = points.merge(rows, on="point", how="right", validate="one_to_many")
    outcome = [c for c in rows.columns if c not in (*ID_COLUMNS, "point")]
    knobs = [k.name for k in plan.design.knobs]
    table = table[[*ID_COLUMNS, *knobs, *outcome]]
    return table.sort_values(["point", "replication"], kind="stable").reset_index(drop=True)


def run_exploration(
    plan: ExplorationPlan,
    *,
    executor: str = "process",
    scheduler: str | None = None,
    out_dir: Path | str | None = None,
    resume: bool = False,
    argv: Sequence[str] | None = None,
    on_replication: Callable[[int], None] | None = None,
    replication_fn: Callable[..., Any] = run_task,
) -> Exploration:
    """Run the plan's remaining points as one batch; see the module docstring.

    ``on_replication(n)`` is called with the number of replications just finished
    (``n > 1`` once at the start for the replications a resumed run already has).
    """
    started = utc_now()
    directory = None if out_dir is None else Path(out_dir)
    planned = _manifest(plan, executor, started.isoformat(), 0.0, argv)
    done = set() if directory is None else _prepare_directory(plan, directory, resume, planned)
    reps = plan.replications
    frames = {p: pd.read_parquet(_point_file(directory, p)) for p in sorted(done)} \
        if directory is not None else {}
    if on_replication is not None and done:
        on_replication(len(done) * reps)
    todo = [p for p in range(plan.design.size) if p not in done]
    pending: dict[int, dict[int, dict[str, Any]]] = {}
    if todo:
        # tasks are numbered over the points still to run, in design order
        task = ExplorationTask(tuple(plan.scenarios[p] for p in todo), reps)
        for k, summary in execute(executor, replication_fn, task, plan.seed, len(todo) * reps,
                                  workers=plan.workers, scheduler=scheduler):
            index, replication = divmod(int(k), reps)
            point = todo[index]
            pending.setdefault(point, {})[replication] = summary
            if on_replication is not None:
                on_replication(1)
            if len(pending[point]) == reps:
                finished = pending.pop(point)
                rows = pd.DataFrame([finished[r] for r in range(reps)])
                rows.insert(0, "point", point)
                frames[point] = rows
                if directory is not None:
                    _atomic_parquet(rows, _point_file(directory, point))
    rows = pd.concat([frames[p] for p in sorted(frames)], ignore_index=True)
    experiments = _experiments(plan, rows)
    wall_s = (utc_now() - started).total_seconds()
    manifest = _manifest(plan, executor, started.isoformat(), wall_s, argv)
    if directory is not None:
        _atomic_parquet(experiments, directory / f"{EXPERIMENTS}.parquet")
        experiments.to_csv(directory / f"{EXPERIMENTS}.csv", index=False)
        _write_manifest(directory, manifest)
    return Exploration(plan, experiments, manifest, directory, len(done))


def unit_matrix(directory: Path) -> np.ndarray:
    """The design in the unit hypercube, as written (``unit.parquet``)."""
    return pd.read_parquet(Path(directory) / "unit.parquet").to_numpy(dtype=float)


__all__ = [
    "Exploration",
    "ExplorationPlan",
    "ExplorationTask",
    "plan_exploration",
    "run_exploration",
    "run_task",
    "unit_matrix",
]
