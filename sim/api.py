"""The Python API for notebooks and scripts: ``run(...)`` returns the tables as DataFrames.

    >>> from releasesim.sim.api import run
    >>> result = run("lagging_release", replications=8, seed=1,
    ...              set=["fleet.nodes=200"], executor="serial")  # doctest: +SKIP
    >>> result.summary[["replication", "seed", "lagging_fraction"]]  # doctest: +SKIP
    >>> from releasesim.reports.blast_radius import blast_radius
    >>> blast_radius(result.summary, result.nodes, result.events)  # doctest: +SKIP

``run`` resolves the scenario exactly as ``releasesim run`` does (a shipped name, a TOML
path or a ``Scenario`` object, then ``key.path=value`` overrides), validates everything
before anything runs, and by default writes nothing: pass ``out_dir`` to write a run
directory. Imports ``releasesim.sim.scenario`` and ``releasesim.sim.runner``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from releasesim.sim import scenario as scenarios
from releasesim.sim.overrides import apply_overrides
from releasesim.sim.runner import RunResult, run_scenario


def resolve_scenario(
    scenario: Any = "baseline", overrides: Sequence[str] | None = None
) -> Any:
    """A validated ``Scenario`` from a name, a path or a ``Scenario``, plus overrides.

    Raises ``releasesim.sim.errors.ScenarioError`` (file and key path in the message) when the
    scenario or an override is invalid.
    """
    if isinstance(scenario, str | Path):
        source = str(scenario)
        if scenario == "baseline" and not (scenarios.SCENARIO_DIR / "baseline.toml").is_file():
            resolved = scenarios.default_scenario()  # the embedded defaults
        else:
            resolved = scenarios.load_scenario(scenario)
    else:
        resolved = scenario
        source = str(getattr(scenario, "name", None) or "scenario")
    if overrides:
        data = apply_overrides(resolved.to_dict(), list(overrides), source)
        resolved = scenarios.scenario_from_dict(data, source=source)
    return resolved


def run(
    scenario: Any = "baseline",
    *,
    replications: int | None = None,
    seed: int | None = None,
    workers: int | None = None,
    executor: str = "process",
    scheduler: str | None = None,
    set: Sequence[str] | None = None,  # noqa: A002 - mirrors the CLI's --set
    out_dir: str | Path | None = None,
    progress: bool = False,
    keep_store: bool | str | Path | None = None,
) -> RunResult:
    """Run a scenario and return its tables (``summary``, ``nodes``, ``events``).

    ``scenario``: ``"baseline"`` (the embedded defaults), another shipped name, a path to
    a TOML file, or a ``Scenario``. ``set``: overrides such as ``["fleet.nodes=50"]``.
    ``replications``/``seed`` default to the scenario's run settings. ``executor``:
    ``"serial"``, ``"process"`` (default; ``workers`` processes, default the CPU count)
    or ``"dask"`` (``scheduler="tcp://HOST:PORT"``, else a LocalCluster of ``workers``).
    A run directory is written only when ``out_dir`` is given.
    """
    resolved = resolve_scenario(scenario, set)
    return run_scenario(
        resolved,
        replications=replications,
        seed=seed,
        workers=workers,
        executor=executor,
        scheduler=scheduler,
        out_dir=out_dir,
        progress=progress,
        keep_store=keep_store,
        write=out_dir is not None,
        extra_manifest={"overrides": list(set or [])},
    )


__all__ = ["RunResult", "resolve_scenario", "run"]
