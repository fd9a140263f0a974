"""The certify frontier figure: certified forgery bounds per setting, and safety vs liveness.

Takes the rows ``releasesim certify`` tabulates and returns ``(fig, axes)`` (the caller
saves it). Kept apart from ``reports.certify`` so the estimator stays numpy-only. Must not
import ``sim`` or ``model``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from releasesim.reports.figures import BLUE, GREY, ORANGE, RED, new_figure
from releasesim.reports.sweep import short_label


def certify_figure(rows: Sequence[dict[str, object]], *, target: float | None = None,
                   title: str = "") -> tuple[object, list[object]]:
    """Left: the certified bounds and point estimates per setting (log scale); right:
    the safety-vs-liveness frontier (bound against P(activated on time), Wilson CI).

    ``rows``: ``setting_record`` rows with ``setting``, ``on_time``, ``on_time_ci_low``,
    ``on_time_ci_high``.
    """
    fig, (ax1, ax2) = new_figure(12.0, 5.0, ncols=2)
    x = np.arange(len(rows))
    points = [str(r.get("point") or r["setting"]) for r in rows]
    labels = [short_label(p) if all("=" in part for part in p.split(", ")) else p for p in points]
    floor = min([float(r[k]) for r in rows for k in ("approved_upper", "installed_upper",
                 "approved_point") if float(r[k]) > 0] + [target or 1.0]) / 10
    for key, color, name, dx in (("approved", RED, "approved", -0.08),
                                 ("installed", ORANGE, "installed on >= x", 0.08)):
        upper = np.array([float(r[f"{key}_upper"]) for r in rows])
        point = np.array([float(r[f"{key}_point"]) for r in rows])
        ax1.plot(x + dx, np.maximum(upper, floor), "v", color=color, ms=9,
                 label=f"P(malicious {name}) certified bound")
        ax1.plot(x + dx, np.where(point > 0, point, np.nan), "o", mfc="none", color=color,
                 label=f"P(malicious {name}) point estimate (simulated strata)")
    if target is not None:
        ax1.axhline(target, color=GREY, ls="--", lw=1.2, label=f"target {target:.2g}")
    ax1.set_xticks(x, labels, rotation=20 if len(rows) > 4 else 0, fontsize=8.5)
    ax1.set_xlim(-0.5, len(rows) - 0.5)
    ax1.set_yscale("log")
    ax1.set_ylabel("probability per release (log)")
    ax1.set_title("certified forgery bounds (exact below the lowest threshold)", fontsize=10.5)
    ax1.legend(fontsize=7.5, loc="best")
    for i, r in enumerate(rows):
        p = float(r.get("on_time", math.nan))  # type: ignore[arg-type]
        if not math.isfinite(p):
            continue
        lo, hi = float(r["on_time_ci_low"]), float(r["on_time_ci_high"])  # type: ignore[arg-type]
        y = max(float(r["approved_upper"]), floor)  # type: ignore[arg-type]
        ax2.errorbar(100 * p, y, xerr=[[100 * (p - lo)], [100 * (hi - p)]], fmt="v",
                     color=BLUE, ecolor=BLUE, capsize=3)
        ax2.annotate(labels[i], (100 * p, y), xytext=(-8, 7), textcoords="offset points",
                     fontsize=8.5, color=BLUE, ha="right")
    if target is not None:
        ax2.axhline(target, color=GREY, ls="--", lw=1.2)
    ax2.set_yscale("log")
    ax2.set_xlim(-3, 103)
    ax2.set_xlabel("P(activated on time) [%] (plain runs, Wilson 95% CI)")
    ax2.set_ylabel("certified bound on P(malicious approved) (log)")
    ax2.set_title("safety vs liveness", fontsize=10.5)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(f"{title}{' - ' if title else ''}{len(rows)} settings, stratified by keys held "
                 f"({float(rows[0]['confidence']):.0%} bounds)" if rows else title, fontsize=11)
    return fig, [ax1, ax2]


__all__ = ["certify_figure"]
