"""Censored times: the Kaplan-Meier estimate over replications and its quantiles.

A time such as *build -> activation* is not known in every replication: the horizon can
stop a replication before the event (right-censored at ``horizon - origin``), or the
replication can end with the event impossible (a rejected release never activates:
censored at infinity, i.e. "never"). Averaging only the replications where the event
happened answers a different question ("how long, among the lucky ones?") and is what
this module exists to avoid.

- ``kaplan_meier(durations, observed)``: the product-limit estimate of the survival
  function ``S(t) = P(T > t)`` at each distinct event time, with Greenwood's variance and
  a pointwise 95% interval on the log-log scale (``S ** exp(+-z * se)``), which stays in
  [0, 1]. Ties: events at a time count before censorings at the same time.
- ``km_quantile(curve, q)``: the ``q`` quantile ``min{t : S(t) <= 1 - q}`` (the same
  "inverted CDF" convention as ``releasesim.sim.summary.quantile_time``) and its 95% interval by
  inverting the pointwise band (Brookmeyer-Crowley style: the lower bound is where the
  lower band crosses ``1 - q``, the upper bound where the upper band does). A quantile
  the curve never reaches is ``inf``: reported as "> the longest follow-up" (or "never"
  when every unobserved replication ended with the event impossible).

Pure numpy; no scipy (tests check these numbers against ``scipy.stats.ecdf``). Must not
import ``sim``, ``model`` or pandas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054


@dataclass(frozen=True, slots=True)
class SurvivalCurve:
    """The Kaplan-Meier estimate of one censored time over replications."""

    times: np.ndarray
    """Distinct event times, ascending."""
    survival: np.ndarray
    """``S(t)`` just after each event time."""
    low: np.ndarray
    """Pointwise 95% lower bound of ``S(t)`` (log-log, Greenwood)."""
    high: np.ndarray
    """Pointwise 95% upper bound of ``S(t)``."""
    n: int
    """Replications in the estimate (observed + censored)."""
    events: int
    """Replications where the event was observed."""
    follow_up: float
    """Longest finite censoring time (NaN when no replication was cut by the horizon)."""

    def at(self, t: float) -> float:
        """``S(t)``: the estimate at time ``t`` (1 before the first event)."""
        i = int(np.searchsorted(self.times, t, side="right"))
        return 1.0 if i == 0 else float(self.survival[i - 1])


def kaplan_meier(durations: np.ndarray, observed: np.ndarray) -> SurvivalCurve:
    """Product-limit estimate from ``durations`` (event or censoring time) and flags.

    ``durations`` may hold ``inf`` for a replication censored at infinity (the event can
    no longer happen); NaN durations are dropped (the time is not defined there).
    """
    t = np.asarray(durations, dtype=float)
    d = np.asarray(observed, dtype=bool)
    keep = ~np.isnan(t)
    t, d = t[keep], d[keep]
    n = len(t)
    censored = t[~d]
    finite_censor = censored[np.isfinite(censored)]
    follow_up = float(finite_censor.max()) if len(finite_censor) else math.nan
    event_times = np.unique(t[d])
    if len(event_times) == 0:
        empty = np.array([], dtype=float)
        return SurvivalCurve(empty, empty, empty, empty, n, 0, follow_up)
    # at risk at t_j: durations >= t_j (events at t_j count before censorings at t_j)
    sorted_t = np.sort(t)
    at_risk = n - np.searchsorted(sorted_t, event_times, side="left")
    deaths = np.searchsorted(np.sort(t[d]), event_times, side="right") - np.searchsorted(
        np.sort(t[d]), event_times, side="left"
    )
    factors = 1.0 - deaths / at_risk
    survival = np.cumprod(factors)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(at_risk > deaths, deaths / (at_risk * (at_risk - deaths)), np.inf)
        greenwood = np.cumsum(terms)  # Var(S) / S^2
        log_s = np.log(survival)
        se_loglog = np.sqrt(greenwood) / np.abs(log_s)
        low = survival ** np.exp(Z95 * se_loglog)
        high = survival ** np.exp(-Z95 * se_loglog)
    # S = 1 cannot occur after an event; S = 0 (everyone had the event): the band is {0}
    zero = survival <= 0.0
    low = np.where(zero, 0.0, low)
    high = np.where(zero, 0.0, high)
    return SurvivalCurve(event_times, survival, low, high, n, int(d.sum()), follow_up)


def _first_at_or_below(times: np.ndarray, curve: np.ndarray, level: float) -> float:
    below = np.nonzero(curve <= level + 1e-12)[0]
    return float(times[below[0]]) if len(below) else math.inf


def km_quantile(curve: SurvivalCurve, q: float) -> tuple[float, float, float]:
    """``(estimate, low, high)`` of the ``q`` quantile; ``inf`` where never reached."""
    if curve.n == 0:
        return math.nan, math.nan, math.nan
    level = 1.0 - q
    estimate = _first_at_or_below(curve.times, curve.survival, level)
    low = _first_at_or_below(curve.times, curve.low, level)
    high = _first_at_or_below(curve.times, curve.high, level)
    return estimate, low, high


def censored_quantile(
    durations: np.ndarray, observed: np.ndarray, q: float = 0.5
) -> tuple[float, float, float, int]:
    """``(estimate, low, high, n)``: the Kaplan-Meier ``q`` quantile and its 95% interval."""
    curve = kaplan_meier(durations, observed)
    estimate, low, high = km_quantile(curve, q)
    return estimate, low, high, curve.n


__all__ = ["SurvivalCurve", "censored_quantile", "kaplan_meier", "km_quantile"]
