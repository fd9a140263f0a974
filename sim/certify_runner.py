"""Run-side code of ``releasesim certify``: the strata of one setting, run adaptively.

For one setting (a validated scenario with a probabilistic compromise model) the number J
of keys the adversary holds has the exact distribution
``releasesim.sim.compromise.key_count_distribution``, and approval is impossible while J
is below ``releasesim.sim.compromise.lowest_threshold``. Stratum J is an ordinary run of
the scenario with ``adversary.keys_held=J`` through ``releasesim.sim.runner.run_scenario``
(any executor), with the **same seed** for every stratum and every setting (common random
numbers). Replication ``i`` is a pure function of ``(seed, i)``, so a stratum grows by
running replications ``n .. n + extra - 1`` only (``ExtendBy``): its table is exactly the
first ``n + extra`` replications of a plain run. Node and event rows are dropped in the
workers (certify reads the summary only), which keeps big fleets cheap.

What to run next and when to stop is the caller's ``decide`` (``releasesim.reports.
certify.Design.next_batch``: the CLI passes it, as ``sweep`` passes its predicate), called
with the weights, the lowest threshold, the approvals and the replications per stratum;
it returns extra replications per stratum, or a reason to stop. Strata of weight 0 and
strata below the lowest threshold are never run. The fixed model
(``signers.compromised``) is a point mass: its one stratum is the scenario as it is.

Every stratum's rows are checked: ``keys_held`` must be J, and no replication below the
lowest threshold may be run. Imports ``sim`` only; never ``reports``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from releasesim.sim.api import resolve_scenario
from releasesim.sim.compromise import key_count_distribution, lowest_threshold
from releasesim.sim.errors import ScenarioError
from releasesim.sim.executors import RunError
from releasesim.sim.runner import resolve_run_settings, run_scenario
from releasesim.sim.world import ReplicationResult, simulate_replication

Decide = Callable[[np.ndarray, int, np.ndarray, np.ndarray], tuple[np.ndarray, "str | None"]]
"""``decide(weights, impossible_below, approvals, trials) -> (extra per stratum, stop)``."""
SUMMARY_COLUMNS = ("replication", "seed", "keys_held", "malicious_approved",
                   "malicious_installed_fraction", "activated", "time_to_activation_s")
"""The summary columns a stratum keeps."""


@dataclass(frozen=True, slots=True)
class ExtendBy:
    """A replication function computing replication ``offset + i`` of the plain run.

    The runner numbers its replications ``0 .. extra - 1``; the result keeps that number
    (so the runner's bookkeeping holds) and the caller adds ``offset`` back. The summary
    row is the plain run's; node and event rows are dropped (``keep_rows`` keeps them).
    """

    offset: int
    keep_rows: bool = False

    def __call__(self, scenario: Any, seed: int, replication: int, *,
                 keep_store: Any = None) -> ReplicationResult:
        result = simulate_replication(scenario, seed, self.offset + replication)
        result.replication = replication
        if not self.keep_rows:
            result.nodes, result.events, result.downtime = [], [], []
        return result


@dataclass(slots=True)
class CertifyRun:
    """One setting's strata: exact weights, what ran, and why it stopped."""

    scenario: Any
    seed: int
    weights: np.ndarray
    impossible_below: int
    installed_fraction: float
    stop: str
    trials: np.ndarray
    approvals: np.ndarray
    installs: np.ndarray
    summaries: dict[int, pd.DataFrame] = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def keys(self) -> int:
        return len(self.weights) - 1

    @property
    def replications(self) -> int:
        return int(self.trials.sum())

    def strata_table(self) -> pd.DataFrame:
        """Per stratum: J, weight, replications, approvals, installs (counts only)."""
        return pd.DataFrame({
            "keys_held": np.arange(len(self.weights)), "weight": self.weights,
            "replications": self.trials, "approvals": self.approvals,
            "installs": self.installs,
        })


def probabilistic(scenario: Any) -> bool:
    """Does ``scenario`` draw its compromised keys at random (more than one possible J)?"""
    if int(getattr(scenario.adversary, "keys_held", -1)) >= 0:
        return False
    return int(np.count_nonzero(key_count_distribution(scenario) > 0)) > 1


def stratum_scenario(scenario: Any, keys: int) -> Any:
    """Stratum ``keys`` of ``scenario``: the adversary holds exactly that many keys."""
    if int(scenario.signers.compromised) > 0:
        return scenario  # the fixed model is its own (only) stratum
    return resolve_scenario(scenario, [f"adversary.keys_held={keys}"])


def check_base(scenario: Any) -> None:
    """Certify draws the strata itself: a conditioned base scenario is refused."""
    held = int(getattr(scenario.adversary, "keys_held", -1))
    if held >= 0:
        raise ScenarioError(
            f"is {held}: certify conditions on every possible count itself; leave it at -1",
            path="adversary.keys_held", source=str(getattr(scenario, "name", "scenario")))


def run_stratum(
    scenario: Any, keys: int, *, first: int, extra: int, seed: int, executor: str,
    workers: int | None, scheduler: str | None,
) -> pd.DataFrame:
    """Replications ``first .. first + extra - 1`` of stratum ``keys`` (summary rows)."""
    result = run_scenario(scenario, replications=extra, seed=seed, workers=workers,
                          executor=executor, scheduler=scheduler, progress=False,
                          write=False, replication_fn=ExtendBy(first))
    table = result.summary
    table = table.loc[:, [c for c in SUMMARY_COLUMNS if c in table.columns]].copy()
    table["replication"] = table["replication"] + first
    if "keys_held" in table.columns and not (table["keys_held"] == keys).all():
        raise RunError(f"stratum {keys}: replications held "
                       f"{sorted(set(table['keys_held']))} keys, not {keys}")
    return table


def certify_setting(
    scenario: Any,
    decide: Decide,
    *,
    installed_fraction: float = 0.1,
    seed: int | None = None,
    executor: str = "process",
    workers: int | None = None,
    scheduler: str | None = None,
    log: Callable[[int, str], None] | None = None,
) -> CertifyRun:
    """Run the strata of one validated scenario until ``decide`` stops; see the docstring.

    ``installed_fraction``: a replication counts as "installed" when its
    ``malicious_installed_fraction`` is at least this. ``log(replications, line)`` is
    called after each stratum batch.
    """
    check_base(scenario)
    if not 0.0 < installed_fraction <= 1.0:
        raise ScenarioError(f"installed fraction must be in (0, 1], got {installed_fraction}")
    _, seed, workers = resolve_run_settings(scenario, replications=1, seed=seed,
                                            workers=workers, executor=executor,
                                            scheduler=scheduler)
    weights = np.asarray(key_count_distribution(scenario), dtype=float)
    impossible_below = int(lowest_threshold(scenario))
    size = len(weights)
    trials = np.zeros(size, dtype=np.int64)
    approvals = np.zeros(size, dtype=np.int64)
    installs = np.zeros(size, dtype=np.int64)
    tables: dict[int, list[pd.DataFrame]] = {}
    strata: dict[int, Any] = {}
    t0 = time.perf_counter()
    while True:
        extra, stop = decide(weights, impossible_below, approvals.copy(), trials.copy())
        if stop is not None:
            break
        extra = np.asarray(extra, dtype=np.int64)
        if not extra.any():
            stop = "nothing to run"
            break
        for keys in np.flatnonzero(extra):
            keys = int(keys)
            if keys < impossible_below or weights[keys] <= 0:
                raise RunError(f"stratum {keys} cannot contribute (weight {weights[keys]:.3g}, "
                               f"lowest threshold {impossible_below}): not run")
            if keys not in strata:
                strata[keys] = stratum_scenario(scenario, keys)
            table = run_stratum(strata[keys], keys, first=int(trials[keys]),
                                extra=int(extra[keys]), seed=seed, executor=executor,
                                workers=workers, scheduler=scheduler)
            tables.setdefault(keys, []).append(table)
            trials[keys] += len(table)
            approvals[keys] += int(table["malicious_approved"].astype(bool).sum())
            installs[keys] += int((table["malicious_installed_fraction"].astype(float)
                                   >= installed_fraction).sum())
            if log is not None:
                log(len(table), f"  {keys} keys: {trials[keys]} replications, "
                                f"{approvals[keys]} approved, {installs[keys]} installed")
    return CertifyRun(
        scenario=scenario, seed=seed, weights=weights, impossible_below=impossible_below,
        installed_fraction=float(installed_fraction), stop=stop, trials=trials,
        approvals=approvals, installs=installs,
        summaries={k: pd.concat(v, ignore_index=True) for k, v in sorted(tables.items())},
        wall_s=time.perf_counter() - t0)


def run_liveness(
    scenario: Any, *, replications: int, seed: int | None = None, executor: str = "process",
    workers: int | None = None, scheduler: str | None = None,
) -> pd.DataFrame:
    """A plain run of the setting (keys drawn from the model): its liveness rows."""
    result = run_scenario(scenario, replications=replications, seed=seed, workers=workers,
                          executor=executor, scheduler=scheduler, progress=False,
                          write=False, replication_fn=ExtendBy(0))
    return result.summary.loc[:, [c for c in SUMMARY_COLUMNS if c in result.summary.columns]]


__all__ = [
    "CertifyRun",
    "Decide",
    "ExtendBy",
    "certify_setting",
    "check_base",
    "probabilistic",
    "run_liveness",
    "run_stratum",
    "stratum_scenario",
]
