"""Time series across replications: exposure and nodes down vs time since activation.

Both are reconstructed from the nodes table (one row per node and replication), with time
measured from each replication's activation of the new release (``measures.activation_times``):

- **exposure**: the fraction of the fleet running the new release at ``t``: nodes whose
  boot on the new release succeeded at or before ``t`` (``booted_new_s``); a node that
  later moved to another build is counted until the end (the nodes table keeps only the
  first boot). ``installed``: nodes that had installed it (including failed starts).
- **down**: the fraction of the fleet down (restarting) at ``t``. The engine records each
  node's total down time (``down_s``), not its intervals; a node's update is one
  contiguous down interval from its install to its last boot, so the interval is
  reconstructed as ``[installed_s, installed_s + down_s)``. This is exact for nodes that
  updated once; a node that also installed the malicious build has two intervals summed
  in ``down_s`` (reported as ``approximate_nodes``), and one that installed only the
  malicious build has no known start and is left out. The reconstruction's peak matches
  ``peak_down_fraction`` when no node installed a malicious build (tested).

Nodes carry no stake in the engine (consensus is one node, one vote), so fractions of
stake equal fractions of nodes; the report says so.

``Band`` holds the pointwise median across replications, its bootstrap 95% CI and the
5-95% spread. Pure numpy/pandas; must not import ``sim`` or ``model``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from releasesim.reports.intervals import bootstrap_curve_median
from releasesim.reports.measures import activation_times

GRID_POINTS = 240


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


def exposure_curves(
    summary: pd.DataFrame, nodes: pd.DataFrame, events: pd.DataFrame,
    points: int = GRID_POINTS,
) -> dict[str, Band]:
    """``{"running": Band, "installed": Band}`` over activated replications."""
    act = _activated(summary, events)
    per_rep: list[tuple[np.ndarray, np.ndarray, int]] = []
    end = 0.0
    for rep, t_act in act.items():
        g = nodes[nodes["replication"] == rep]
        booted = g["booted_new_s"].to_numpy(dtype=float) - t_act
        installed = g["installed_s"].to_numpy(dtype=float) - t_act
        per_rep.append((booted, installed, len(g)))
        finite = np.concatenate([booted[np.isfinite(booted)], installed[np.isfinite(installed)]])
        if len(finite):
            end = max(end, float(finite.max()))
    t = _grid(end, points)
    running = np.array([_cumulative(b, n, t) for b, _, n in per_rep]).reshape(-1, len(t))
    installed = np.array([_cumulative(i, n, t) for _, i, n in per_rep]).reshape(-1, len(t))
    return {"running": _band(t, running), "installed": _band(t, installed)}


def _cumulative(times: np.ndarray, total: int, t: np.ndarray) -> np.ndarray:
    done = np.sort(times[np.isfinite(times)])
    if total == 0:
        return np.zeros(len(t))
    return np.searchsorted(done, t, side="right") / total


def down_intervals(nodes: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Reconstructed down intervals ``(replication, start_s, end_s)`` and the count of
    nodes whose interval is approximate (they also installed the malicious build)."""
    installed = nodes["installed_s"].to_numpy(dtype=float)
    down = nodes["down_s"].to_numpy(dtype=float)
    keep = np.isfinite(installed) & (down > 0)
    frame = pd.DataFrame({
        "replication": nodes["replication"].to_numpy()[keep],
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


def down_curves(
    summary: pd.DataFrame, nodes: pd.DataFrame, events: pd.DataFrame,
    points: int = GRID_POINTS,
) -> tuple[Band, int]:
    """Fraction of the fleet down vs time since activation, and the approximate count."""
    act = _activated(summary, events)
    intervals, approximate = down_intervals(nodes)
    sizes = nodes.groupby("replication").size()
    end = 0.0
    per_rep = []
    for rep, t_act in act.items():
        iv = intervals[intervals["replication"] == rep]
        s = iv["start_s"].to_numpy() - t_act
        e = iv["end_s"].to_numpy() - t_act
        per_rep.append((s, e, int(sizes.get(rep, 0))))
        if len(e):
            end = max(end, float(e.max()))
    t = _grid(end, points * 2)
    rows = []
    for s, e, n in per_rep:
        open_at = (s[:, None] <= t[None, :]) & (t[None, :] < e[:, None])
        rows.append(open_at.sum(axis=0) / n if n else np.zeros(len(t)))
    curves = np.array(rows).reshape(-1, len(t))
    return _band(t, curves), approximate


__all__ = ["Band", "down_curves", "down_intervals", "exposure_curves", "peak_down"]
