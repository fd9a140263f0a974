"""Time series across replications: exposure and what is down vs time since activation.

Time is measured from each replication's activation of the new release
(``measures.activation_times``):

- **exposure**: the fraction of the fleet running the new release at ``t``: nodes whose
  boot on the new release succeeded at or before ``t`` (``booted_new_s``); a node that
  later moved to another build is counted until the end (the nodes table keeps only the
  first boot). ``installed``: nodes that had installed it (including failed starts).
  ``running_stake``: the same as a share of the chain's voting power.
- **down**: the fraction of the fleet down and the share of the chain's voting power down
  (``DownOverTime``), from exact step functions of the **recorded** down intervals
  (``downtime`` table: ``[start_s, end_s)``; an interval that was ``still_down`` at the end
  of the run stays open, so a replication that ended early keeps its last state). A
  curve's value at grid instant ``t[k]`` is the step function's largest value within
  ``[t[k], t[k + 1])`` (``step_max``): a restart shorter than a grid step is not lost, and
  a curve's maximum is the replication's exact peak. A node's share of voting power is
  its ``stake`` (nodes table) over the chain's total, ``sum(stake of the replication's
  nodes) / stake_in_fleet`` (summary): validators outside the fleet count as always up.
- **fallback** for run directories written before the intervals were recorded (no
  ``downtime.parquet``): each node's interval is reconstructed from the nodes table as
  ``[installed_s, installed_s + down_s)``. This is exact for nodes that updated once in
  rolling mode (at an upgrade height a node is down from the height, before it installs); a
  node that also installed the malicious build has two intervals summed in ``down_s``
  (``approximate``), and one that installed only the malicious build has no known start
  and is left out. ``DownOverTime.source`` says which was used.

``Band`` holds the pointwise median across replications, its bootstrap 95% CI and the
5-95% spread. Pure numpy/pandas; must not import ``sim`` or ``model``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from releasesim.reports.intervals import bootstrap_curve_median
from releasesim.reports.replications import activation_times

GRID_POINTS = 240
RECORDED = "recorded"
RECONSTRUCTED = "reconstructed"


@dataclass(frozen=True, slots=True)
class Band:
    """Curves of ``n`` replications on a common time grid (seconds since activation)."""

    t_s: np.ndarray
    curves: np.ndarray  # (n, len(t_s))
    median: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    p05: np.ndarray
    p95: np.ndarray

    @property
    def n(self) -> int:
        return int(self.curves.shape[0])


@dataclass(frozen=True, slots=True)
class DownOverTime:
    """What was down vs time since activation, over the activated replications."""

    nodes: Band
    """Fraction of the fleet's nodes down."""
    stake: Band | None
    """Share of the chain's voting power down; None when the run recorded no stake."""
    source: str
    """``recorded`` (the downtime table, exact) or ``reconstructed`` (nodes-table totals)."""
    approximate: int
    """Reconstructed only: nodes whose interval is approximate (0 when recorded)."""
    replications: tuple[int, ...]
    """The replication of each curve (row of ``nodes.curves`` and ``stake.curves``)."""


def _band(t: np.ndarray, curves: np.ndarray) -> Band:
    if curves.shape[0] == 0:
        empty = np.full(len(t), np.nan)
        return Band(t, curves, empty, empty, empty, empty, empty)
    median, low, high = bootstrap_curve_median(curves)
    p05, p95 = np.quantile(curves, [0.05, 0.95], axis=0)
    return Band(t, curves, median, low, high, p05, p95)


def _activated(summary: pd.DataFrame, events: pd.DataFrame) -> pd.Series:
    act = activation_times(summary, events)
    return act[np.isfinite(act.to_numpy(dtype=float))]


def _grid(end_s: float, points: int) -> np.ndarray:
    end_s = end_s if np.isfinite(end_s) and end_s > 0 else 1.0
    return np.linspace(0.0, end_s * 1.12, points)


def stake_shares(summary: pd.DataFrame, nodes: pd.DataFrame) -> pd.Series | None:
    """Each node's share of the chain's voting power, indexed by ``(replication, node)``.

    ``stake / (sum of the replication's node stakes / stake_in_fleet)``; 0 for full nodes
    and for every node when no validator runs in the fleet. None when the run recorded no
    stake (no ``stake`` column or no ``stake_in_fleet``).
    """
    if "stake" not in nodes.columns or "stake_in_fleet" not in summary.columns:
        return None
    stake = nodes["stake"].to_numpy(dtype=float)
    in_fleet = nodes.groupby("replication")["stake"].transform("sum").to_numpy(dtype=float)
    fraction = (summary.set_index("replication")["stake_in_fleet"].astype(float)
                .reindex(nodes["replication"].to_numpy()).to_numpy())
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(stake > 0, stake * fraction / in_fleet, 0.0)
    index = pd.MultiIndex.from_arrays(
        [nodes["replication"].to_numpy(), nodes["node"].to_numpy()], names=["replication", "node"])
    return pd.Series(share, index=index, name="stake_share")


def recorded_intervals(downtime: pd.DataFrame) -> pd.DataFrame:
    """``(replication, node, start_s, end_s)`` of the downtime table; a ``still_down``
    interval ends at ``inf`` (down when the run ended, for as long as anyone can tell)."""
    still = downtime["still_down"].to_numpy(dtype=bool)
    return pd.DataFrame({
        "replication": downtime["replication"].to_numpy(),
        "node": downtime["node"].to_numpy(),
        "start_s": downtime["start_s"].to_numpy(dtype=float),
        "end_s": np.where(still, np.inf, downtime["end_s"].to_numpy(dtype=float)),
    })


def down_intervals(nodes: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Reconstructed down intervals ``(replication, node, start_s, end_s)`` and the count of
    nodes whose interval is approximate (they also installed the malicious build)."""
    installed = nodes["installed_s"].to_numpy(dtype=float)
    down = nodes["down_s"].to_numpy(dtype=float)
    keep = np.isfinite(installed) & (down > 0)
    frame = pd.DataFrame({
        "replication": nodes["replication"].to_numpy()[keep],
        "node": nodes["node"].to_numpy()[keep],
        "start_s": installed[keep],
        "end_s": installed[keep] + down[keep],
    })
    approximate = int(np.count_nonzero(keep & nodes["installed_malicious"].to_numpy(dtype=bool)))
    return frame, approximate


def peak_down(starts: np.ndarray, ends: np.ndarray) -> int:
    """Largest number of ``[start, end)`` intervals open at one instant."""
    if len(starts) == 0:
        return 0
    times = np.concatenate([starts, ends])
    steps = np.concatenate([np.ones(len(starts)), -np.ones(len(ends))])
    order = np.lexsort((steps, times))
    return int(np.max(np.cumsum(steps[order])))


def step_function(
    starts: np.ndarray, ends: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The total weight of the ``[start, end)`` intervals open at ``t``, exactly.

    Returns ``(times, values)``: distinct ascending breakpoints and the value on
    ``[times[i], times[i + 1])`` (0 before ``times[0]``). Every change at one instant is
    applied together, so an interval ending at ``t`` and another starting at ``t`` never
    add up at ``t``; an ``inf`` end never closes.
    """
    weights = np.asarray(weights, dtype=float)
    times = np.concatenate([starts, ends]).astype(float)
    deltas = np.concatenate([weights, -weights])
    keep = np.isfinite(times)
    times, deltas = times[keep], deltas[keep]
    if len(times) == 0:
        return np.zeros(0), np.zeros(0)
    order = np.argsort(times, kind="stable")
    times, deltas = times[order], deltas[order]
    distinct, first = np.unique(times, return_index=True)
    return distinct, np.cumsum(np.add.reduceat(deltas, first))


def step_at(times: np.ndarray, values: np.ndarray, t: np.ndarray) -> np.ndarray:
    """A ``step_function`` evaluated at the instants ``t``."""
    i = np.searchsorted(times, t, side="right") - 1
    return np.where(i >= 0, values[np.maximum(i, 0)] if len(values) else 0.0, 0.0)


def step_max(times: np.ndarray, values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Largest value of a ``step_function`` within each ``[edges[k], edges[k + 1])``.

    The value at each window's start, or at any breakpoint inside it, whichever is
    larger: a short spike between two grid instants is never lost.
    """
    out = step_at(times, values, edges[:-1]).astype(float)
    inside = (times > edges[0]) & (times < edges[-1])
    window = np.searchsorted(edges, times[inside], side="right") - 1
    np.maximum.at(out, window, values[inside])
    return out


def step_peak(times: np.ndarray, values: np.ndarray, end_s: float = math.inf) -> float:
    """Largest value of a ``step_function`` over ``[0, end_s)`` (0 if nothing was open)."""
    following = np.append(times[1:], np.inf)
    overlaps = (times < end_s) & (following > 0.0)
    return float(max(0.0, values[overlaps].max())) if overlaps.any() else 0.0


def down_intervals_of(
    nodes: pd.DataFrame, downtime: pd.DataFrame | None
) -> tuple[pd.DataFrame, str, int]:
    """``(intervals, source, approximate)``: recorded when there is a downtime table,
    else reconstructed from the nodes table (module docstring)."""
    if downtime is not None:
        return recorded_intervals(downtime), RECORDED, 0
    frame, approximate = down_intervals(nodes)
    return frame, RECONSTRUCTED, approximate


def _weights(intervals: pd.DataFrame, shares: pd.Series) -> np.ndarray:
    index = pd.MultiIndex.from_arrays([intervals["replication"].to_numpy(),
                                       intervals["node"].to_numpy()])
    return shares.reindex(index).fillna(0.0).to_numpy(dtype=float)


def peak_down_stake(
    summary: pd.DataFrame, nodes: pd.DataFrame, downtime: pd.DataFrame | None
) -> pd.Series:
    """Per replication: the largest share of voting power down at once over ``[0, sim_end_s)``
    (NaN for every replication when the run recorded no stake)."""
    reps = summary["replication"].to_numpy()
    shares = stake_shares(summary, nodes)
    if shares is None:
        return pd.Series(np.nan, index=reps, dtype=float)
    intervals, _, _ = down_intervals_of(nodes, downtime)
    weights = _weights(intervals, shares)
    end = (summary.set_index("replication")["sim_end_s"].astype(float)
           if "sim_end_s" in summary.columns else pd.Series(math.inf, index=reps))
    peaks = {}
    by_rep = intervals.groupby("replication").indices
    for rep in reps:
        rows = by_rep.get(rep, np.zeros(0, dtype=int))
        iv = intervals.iloc[rows]
        times, values = step_function(iv["start_s"].to_numpy(), iv["end_s"].to_numpy(),
                                      weights[rows])
        peaks[rep] = step_peak(times, values, float(end.get(rep, math.inf)))
    return pd.Series(peaks, dtype=float).reindex(reps)


def _cumulative(times: np.ndarray, weights: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Sum of ``weights`` of the finite ``times`` at or before each ``t``."""
    done = np.isfinite(times)
    order = np.argsort(times[done], kind="stable")
    at = np.sort(times[done])
    total = np.concatenate([[0.0], np.cumsum(weights[done][order])])
    return total[np.searchsorted(at, t, side="right")]


def exposure_curves(
    summary: pd.DataFrame, nodes: pd.DataFrame, events: pd.DataFrame,
    points: int = GRID_POINTS,
) -> dict[str, Band]:
    """``{"running": Band, "installed": Band}`` over activated replications, and
    ``"running_stake"`` (share of the chain's voting power running it) when the run
    recorded stake."""
    act = _activated(summary, events)
    shares = stake_shares(summary, nodes)
    per_rep: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    end = 0.0
    # each replication's rows, in table order, found once (not one scan per replication)
    by_rep = nodes.groupby("replication", sort=False).indices
    booted_all = nodes["booted_new_s"].to_numpy(dtype=float)
    installed_all = nodes["installed_s"].to_numpy(dtype=float)
    node_all = nodes["node"].to_numpy()
    for rep, t_act in act.items():
        rows = by_rep.get(rep, np.zeros(0, dtype=np.intp))
        booted = booted_all[rows] - t_act
        installed = installed_all[rows] - t_act
        share = (shares.loc[rep].reindex(node_all[rows]).to_numpy(dtype=float)
                 if shares is not None else np.zeros(len(rows)))
        per_rep.append((booted, installed, share))
        finite = np.concatenate([booted[np.isfinite(booted)], installed[np.isfinite(installed)]])
        if len(finite):
            end = max(end, float(finite.max()))
    t = _grid(end, points)

    def curves(pick: int, fleet_share: bool) -> np.ndarray:
        rows = []
        for item in per_rep:
            n = len(item[0])
            if not n:
                rows.append(np.zeros(len(t)))
            elif fleet_share:  # counts of nodes, then one division: exact k / n
                rows.append(_cumulative(item[pick], np.ones(n), t) / n)
            else:
                rows.append(_cumulative(item[pick], item[2], t))
        return np.array(rows).reshape(-1, len(t))

    bands = {"running": _band(t, curves(0, True)), "installed": _band(t, curves(1, True))}
    if shares is not None:
        bands["running_stake"] = _band(t, curves(0, False))
    return bands


def down_over_time(
    summary: pd.DataFrame, nodes: pd.DataFrame, events: pd.DataFrame,
    downtime: pd.DataFrame | None = None, points: int = GRID_POINTS,
) -> DownOverTime:
    """Fraction of the fleet and share of voting power down vs time since activation.

    Each curve's value at grid instant ``t[k]`` is the largest value of the exact step
    function within the time step ``[t[k], t[k + 1])`` (``step_max``), so a curve's
    maximum is the replication's exact peak over the grid's span.
    """
    act = _activated(summary, events)
    intervals, source, approximate = down_intervals_of(nodes, downtime)
    shares = stake_shares(summary, nodes)
    stake_weights = _weights(intervals, shares) if shares is not None else None
    sizes = nodes.groupby("replication").size()
    by_rep = intervals.groupby("replication").indices
    end = 0.0
    per_rep = []
    for rep, t_act in act.items():
        rows = by_rep.get(rep, np.zeros(0, dtype=int))
        s = intervals["start_s"].to_numpy()[rows] - t_act
        e = intervals["end_s"].to_numpy()[rows] - t_act
        per_rep.append((s, e, rows, int(sizes.get(rep, 0))))
        closed = e[np.isfinite(e)]
        if len(closed):
            end = max(end, float(closed.max()))
        elif len(s):
            end = max(end, float(s.max()))
    t = _grid(end, points * 2)
    edges = np.append(t, 2 * t[-1] - t[-2])  # window k: [t[k], t[k + 1])
    node_rows, stake_rows = [], []
    for s, e, rows, n in per_rep:
        times, values = step_function(s, e, np.ones(len(s)))
        node_rows.append(step_max(times, values, edges) / n if n else np.zeros(len(t)))
        if stake_weights is not None:
            times, values = step_function(s, e, stake_weights[rows])
            stake_rows.append(step_max(times, values, edges))
    stake = (_band(t, np.array(stake_rows).reshape(-1, len(t)))
             if stake_weights is not None else None)
    return DownOverTime(_band(t, np.array(node_rows).reshape(-1, len(t))), stake, source,
                        approximate, tuple(int(r) for r in act.index))


def down_curves(
    summary: pd.DataFrame, nodes: pd.DataFrame, events: pd.DataFrame,
    points: int = GRID_POINTS, downtime: pd.DataFrame | None = None,
) -> tuple[Band, int]:
    """Fraction of the fleet down vs time since activation, and the approximate count."""
    down = down_over_time(summary, nodes, events, downtime, points)
    return down.nodes, down.approximate


__all__ = [
    "RECONSTRUCTED",
    "RECORDED",
    "Band",
    "DownOverTime",
    "down_curves",
    "down_intervals",
    "down_intervals_of",
    "down_over_time",
    "exposure_curves",
    "peak_down",
    "peak_down_stake",
    "recorded_intervals",
    "stake_shares",
    "step_at",
    "step_function",
    "step_max",
    "step_peak",
]
