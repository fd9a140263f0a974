"""Figures of an exploration report: what drives an outcome, and where it goes wrong.

- ``indices_figure``: the ranked sensitivity indices of one outcome as horizontal bars with
  their intervals (Sobol: total ST with S1 beside it; Morris: μ*), largest on top.
- ``morris_figure``: Morris μ* against σ, one labelled dot per knob; knobs near the x axis
  act linearly and alone, knobs high above it interact or act non-linearly.
- ``trajectory_figure``: PRIM's peeling trajectory, coverage against density, with the
  chosen box marked: the trade-off a reader picks a box from.

Pure matplotlib on the tables ``reports.sensitivity`` and ``reports.discovery`` return;
must not import ``sim`` or ``model``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from releasesim.reports.figures import new_figure

BAR = "#3b6ea5"
SECOND = "#9fbfdf"
MARK = "#c62828"


def indices_figure(indices: pd.DataFrame, design: str, outcome: str) -> Figure:
    """Ranked indices with intervals (``indices`` as ``analyze_sensitivity`` returns it)."""
    n = max(1, len(indices))
    fig, (ax,) = new_figure(8.0, 0.9 + 0.38 * n)
    frame = indices.iloc[::-1]  # the largest on top
    ys = np.arange(len(frame))
    if design == "sobol":
        ax.barh(ys + 0.18, frame["ST"], height=0.36, xerr=frame["ST_conf"], color=BAR,
                label="total ST", capsize=2)
        ax.barh(ys - 0.18, frame["S1"], height=0.36, xerr=frame["S1_conf"], color=SECOND,
                label="first-order S1", capsize=2)
        ax.set_xlabel("Sobol index (share of the outcome's variance), 95% interval")
        ax.axvline(0, color="#666", linewidth=0.8)
        ax.legend(loc="lower right", fontsize=8)
    else:
        ax.barh(ys, frame["mu_star"], height=0.6, xerr=frame["mu_star_conf"], color=BAR,
                capsize=2)
        ax.set_xlabel("Morris μ* (mean |effect| over the whole knob range), 95% interval")
    ax.set_yticks(ys, [str(k) for k in frame["knob"]], fontsize=8)
    ax.set_title(f"What drives {outcome} ({design})", fontsize=10)
    return fig


def morris_figure(indices: pd.DataFrame, outcome: str) -> Figure:
    """μ* against σ, one labelled point per knob."""
    fig, (ax,) = new_figure(6.5, 4.5)
    ax.scatter(indices["mu_star"], indices["sigma"], color=BAR, zorder=3)
    for row in indices.itertuples():
        ax.annotate(str(row.knob), (row.mu_star, row.sigma), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    top = float(max(indices["mu_star"].max(), indices["sigma"].max(), 1e-12))
    ax.plot([0, top], [0, top], color="#999", linewidth=0.8, linestyle="--",
            label="σ = μ*")
    ax.set_xlabel("μ* (importance)")
    ax.set_ylabel("σ (interactions or non-linearity)")
    ax.set_title(f"Morris screening of {outcome}", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def trajectory_figure(trajectory: pd.DataFrame, chosen: int, label: str) -> Figure:
    """PRIM's peeling trajectory (coverage vs density), the chosen box marked."""
    fig, (ax,) = new_figure(6.5, 4.5)
    points = ax.scatter(trajectory["coverage"], trajectory["density"],
                        c=trajectory["n_restricted"], cmap="viridis", s=18, zorder=3)
    fig.colorbar(points, ax=ax, label="knobs restricted")
    pick = trajectory.iloc[chosen]
    ax.scatter([pick["coverage"]], [pick["density"]], s=120, facecolors="none",
               edgecolors=MARK, linewidths=2, zorder=4, label="chosen box")
    _unit_axes(ax)
    ax.set_xlabel(f"coverage (share of all {label} inside the box)")
    ax.set_ylabel(f"density (share of the box that is {label})")
    ax.set_title("PRIM peeling trajectory", fontsize=10)
    ax.legend(loc="lower left", fontsize=8)
    return fig


def _unit_axes(ax: Axes) -> None:
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(True, linewidth=0.3)


__all__ = ["indices_figure", "morris_figure", "trajectory_figure"]
