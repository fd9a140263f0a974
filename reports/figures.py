"""The report's figures: each function takes tables and returns ``(fig, axes)``.

Figures are ``matplotlib.figure.Figure`` objects attached to the Agg canvas directly (no
pyplot, nothing shown or saved here; Agg is selected as matplotlib's backend unless pyplot
was imported first, e.g. by a notebook's inline backend): the caller saves them
(``fig.savefig(path)``) or displays them in a notebook (``IPython.display.display(fig)``).
Every figure states the number of replications behind it and draws 95% confidence
intervals (each measure's one method, ``releasesim.reports.measures.METHODS``).

Must not import ``sim`` or ``model``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

import matplotlib

if "matplotlib.pyplot" not in sys.modules:  # keep a notebook's inline backend
    matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from releasesim.reports.formatting import format_estimate, time_unit  # noqa: E402
from releasesim.reports.intervals import wilson  # noqa: E402
from releasesim.reports.measures import CENSORED_SUFFIX, ONE_THIRD  # noqa: E402
from releasesim.reports.series import Band, DownOverTime  # noqa: E402

DPI = 110
BLUE = "#1f77b4"
ORANGE = "#e6550d"
GREY = "#7f7f7f"
RED = "#c62828"

LABELS: dict[str, str] = {
    "exposed_fraction": "installed the release",
    "lagging_fraction": "lagging at the SLA",
    "failed_startup_fraction": "failed startup",
    "rolled_back_fraction": "rolled back",
    "stuck_old_fraction": "stuck on the old build",
    "malicious_installed_fraction": "installed the malicious build",
    "malicious_running_fraction": "running the malicious build",
    "time_to_quorum_s": "build -> signer quorum",
    "time_to_activation_s": "build -> activation",
    "adoption_p50_s": "activation -> 50% adopted",
    "adoption_p90_s": "activation -> 90% adopted",
    "adoption_p99_s": "activation -> 99% adopted",
    "halt_time_s": "activation -> halt",
    "time_to_recover_s": "activation -> recovered",
    "halted": "P(rollout halted)",
    "exposure_at_halt_fraction": "installed when halted",
    "failed_after_halt_fraction": "failed after the halt",
    "activated": "P(activated)",
    "quorum_available_at_build": "P(quorum online at build)",
    "malicious_proposed": "P(malicious proposed)",
    "malicious_approved": "P(malicious approved)",
    "proposal_attempts": "proposal attempts",
    "release_quorum_fail_total": "quorum failures",
    "release_votes_total": "votes cast",
}


def new_figure(width: float = 9.0, height: float = 4.5, ncols: int = 1) -> tuple[Figure, list]:
    """A Figure on the Agg canvas with ``ncols`` axes side by side."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def _fmt(value: float, unit: str) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if unit in ("fraction", "probability"):
        return f"{100 * value:.1f}%"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _n_label(row: pd.Series) -> str:
    n, total = int(row["n"]), int(row["N"])
    given = row.get("given", "") if hasattr(row, "get") else ""
    if given:
        return f"n={n}/{total} given {given}"
    return f"n={n}" if n == total else f"n={n}/{total}"


def _right_labels(ax: Axes, ys: np.ndarray, texts: Sequence[str]) -> None:
    """Estimate, CI and n of each row as tick labels on the right-hand side."""
    right = ax.twinx()
    right.set_ylim(ax.get_ylim())
    right.set_yticks(ys, list(texts), fontsize=8.5)
    right.tick_params(axis="y", length=0)


def _interval_panel(
    ax: Axes, table: pd.DataFrame, names: Sequence[str], xlabel: str, *, percent: bool,
    color: str = BLUE, unit: str = "",
) -> None:
    """Horizontal estimate + 95% CI bars, one per measure, labelled with CI and n."""
    rows = table.set_index("measure")
    present = [n for n in names if n in rows.index]
    ys = np.arange(len(present))[::-1]
    scale = 100.0 if percent else 1.0
    right = 0.0
    texts = []
    for y, name in zip(ys, present, strict=True):
        row = rows.loc[name]
        est, low, high = (float(row[k]) for k in ("value", "ci_low", "ci_high"))
        if not math.isfinite(est):
            texts.append(f"undefined ({_n_label(row)})")
            continue
        ax.barh(y, est * scale, height=0.55, color=color, alpha=0.75)
        if math.isfinite(low) and math.isfinite(high):
            ax.errorbar(est * scale, y, xerr=[[max(0.0, est - low) * scale],
                                             [max(0.0, high - est) * scale]],
                        fmt="none", ecolor="black", capsize=4, lw=1.2)
            right = max(right, high * scale)
        right = max(right, est * scale)
        u = "fraction" if percent else unit
        texts.append(f"{_fmt(est, u)} [{_fmt(low, u)}, {_fmt(high, u)}] {_n_label(row)}")
    ax.set_yticks(ys, [LABELS.get(n, n) for n in present], fontsize=9.5)
    ax.set_xlabel(xlabel)
    if percent:
        ax.set_xlim(0, 100 if right > 30 else max(5.0, right * 1.15))
    else:
        ax.set_xlim(0, (right or 1.0) * 1.15)
    ax.set_ylim(-0.6, len(present) - 0.4)
    ax.grid(axis="x", alpha=0.3)
    _right_labels(ax, ys, texts)


def _plot_band(
    ax: Axes, t: np.ndarray, band: Band, prefix: str, median_label: str,
    *, spread_alpha: float, lw: float,
) -> None:
    """A band across replications in percent: 5-95% spread, 95% CI of the median, median."""
    ax.fill_between(t, 100 * band.p05, 100 * band.p95, color=BLUE, alpha=spread_alpha,
                    label=f"{prefix}5-95% of replications")
    ax.fill_between(t, 100 * band.ci_low, 100 * band.ci_high, color=BLUE, alpha=0.4,
                    label=f"{prefix}95% CI of the median")
    ax.plot(t, 100 * band.median, color=BLUE, lw=lw, label=median_label)


def exposure_figure(bands: dict[str, Band], replications: int) -> tuple[Figure, list[Axes]]:
    """Fraction of the fleet (and of the voting power) running the new release vs time
    since activation."""
    fig, (ax,) = new_figure(9.0, 4.6)
    running, installed = bands["running"], bands["installed"]
    if running.n == 0:
        ax.text(0.5, 0.5, "the release was never activated in any replication",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig, [ax]
    div, unit = time_unit(float(running.t_s[-1]))
    t = running.t_s / div
    _plot_band(ax, t, running, "running: ", "running the release (median)",
               spread_alpha=0.15, lw=2)
    ax.plot(t, 100 * installed.median, color=ORANGE, lw=1.5, ls="--",
            label="installed it (median; includes failed starts)")
    stake = bands.get("running_stake")
    if stake is not None and stake.n:
        ax.plot(t, 100 * stake.median, color=GREY, lw=1.8, ls="-.",
                label="voting power running it (median, % of the chain's total)")
    ax.set_xlabel(f"time since activation [{unit}]")
    ax.set_ylabel("running the new release [% of the fleet / of the voting power]"
                  if stake is not None else "fleet running the new release [%]")
    peak = 100 * float(np.nanmax([np.nanmax(running.p95), np.nanmax(installed.median)]))
    top = 102.0 if peak > 60 else max(5.0, peak * 1.3)
    ax.set_ylim(-top / 50, top)
    ax.set_xlim(t[0], t[-1])
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right" if peak > 60 else "upper left", fontsize=8.5)
    in_stake = ("; dash-dot: share of voting power" if stake is not None
                else "; stake not recorded in this run")
    ax.set_title(f"Exposure over time (n={running.n} activated of {replications} "
                 f"replications{in_stake})", fontsize=10.5)
    return fig, [ax]


def affected_figure(table: pd.DataFrame) -> tuple[Figure, list[Axes]]:
    """The affected set: fleet fractions with Wilson 95% CIs."""
    names = [m for m in ("exposed_fraction", "lagging_fraction", "failed_startup_fraction",
                         "rolled_back_fraction", "stuck_old_fraction",
                         "malicious_installed_fraction", "malicious_running_fraction")
             if m in set(table["measure"])]
    fig, (ax,) = new_figure(9.0, 0.55 * len(names) + 1.6)
    _interval_panel(ax, table, names, "share of the fleet [%] (mean, Wilson 95% CI)", percent=True)
    total = int(table["N"].iloc[0]) if len(table) else 0
    ax.set_title(f"Affected set ({total} replications)", fontsize=10.5)
    return fig, [ax]


def timing_figure(table: pd.DataFrame, values: pd.DataFrame) -> tuple[Figure, list[Axes]]:
    """The times: Kaplan-Meier medians (censored) or medians given the event, 95% CIs.

    Grey dots: one replication's observed time; hollow triangles: a replication censored
    by the horizon at that time; an estimate or bound not reached within the follow-up is
    drawn as an arrow to the right edge and labelled "> follow-up".
    """
    names = [m for m in ("time_to_quorum_s", "time_to_activation_s", "adoption_p50_s",
                         "adoption_p90_s", "adoption_p99_s", "halt_time_s", "time_to_recover_s")
             if m in values.columns]
    fig, (ax,) = new_figure(9.5, 0.6 * len(names) + 1.9)
    rows = table.set_index("measure")
    seen = values[names].to_numpy(dtype=float)
    censored_columns = [n + CENSORED_SUFFIX for n in names if n + CENSORED_SUFFIX in values]
    cut = values[censored_columns].to_numpy(dtype=float) if censored_columns else np.array([])
    finite = np.concatenate([seen[np.isfinite(seen)], cut[np.isfinite(cut)]])
    div, unit = time_unit(float(finite.max()) if len(finite) else 0.0)
    edge = (float(finite.max()) / div * 1.08) if len(finite) else 1.0
    ys = np.arange(len(names))[::-1]
    rng = np.random.Generator(np.random.PCG64(0))
    positive = finite[finite > 0]
    log = len(positive) > 0 and positive.max() / max(positive.min(), 1e-9) > 50
    texts: list[str] = []
    for y, name in zip(ys, names, strict=True):
        x = values[name].to_numpy(dtype=float)
        x = x[np.isfinite(x)] / div
        row = rows.loc[name]
        if len(x):
            ax.scatter(x, y + rng.uniform(-0.18, 0.18, len(x)), s=9, color=GREY, alpha=0.5,
                       zorder=1)
        if name + CENSORED_SUFFIX in values:
            c = values[name + CENSORED_SUFFIX].to_numpy(dtype=float)
            c = c[np.isfinite(c)] / div
            if len(c):
                ax.scatter(c, y + rng.uniform(-0.18, 0.18, len(c)), s=16, marker=">",
                           facecolors="none", edgecolors=GREY, alpha=0.7, zorder=1)
        est, low, high = (float(row[k]) / div for k in ("value", "ci_low", "ci_high"))
        label = _n_label(row)
        follow = float(row["follow_up"]) if "follow_up" in row else math.nan
        shown = [format_estimate(v * div, "s", follow) for v in (est, low, high)]
        if math.isinf(est):
            ax.annotate("", xy=(edge, y), xytext=(edge * 0.93, y),
                        arrowprops={"arrowstyle": "->", "color": BLUE, "lw": 2})
            texts.append(f"{shown[0]} [{shown[1]}, {shown[2]}]  {label}")
        elif math.isfinite(est):
            high_drawn = edge if math.isinf(high) else high
            if math.isfinite(low):
                ax.errorbar(est, y, xerr=[[est - low], [high_drawn - est]], fmt="o",
                            color=BLUE, ecolor="black", capsize=4, ms=7, zorder=3)
            else:
                ax.plot(est, y, "o", color=BLUE, ms=7, zorder=3)
            texts.append(f"{shown[0]} [{shown[1]}, {shown[2]}]  {label}")
        else:
            texts.append(f"never happened ({label})")
    if log:
        ax.set_xscale("log")
    ax.set_yticks(ys, [LABELS.get(n, n) for n in names], fontsize=9.5)
    ax.set_ylim(-0.6, len(names) - 0.4)
    _right_labels(ax, ys, texts)
    ax.set_xlabel(f"time [{unit}]{' (log scale)' if log else ''}: median, 95% CI; grey dot = "
                  "one replication, hollow > = censored by the horizon")
    ax.grid(axis="x", alpha=0.3, which="both")
    total = len(values)
    ax.set_title(f"Timing ({total} replications; Kaplan-Meier medians where the horizon can "
                 "cut a time off)", fontsize=10.5)
    return fig, [ax]


def containment_figure(table: pd.DataFrame) -> tuple[Figure, list[Axes]]:
    """Did the rollout halt, and how much of the fleet it had reached by then."""
    names = ["halted", "exposure_at_halt_fraction", "failed_after_halt_fraction"]
    fig, (ax,) = new_figure(9.0, 2.9)
    _interval_panel(ax, table, names, "probability / share of the fleet [%] (Wilson 95% CI)",
                    percent=True, color=ORANGE)
    total = int(table["N"].iloc[0]) if len(table) else 0
    ax.set_title(f"Containment ({total} replications; fractions over replications that halted)",
                 fontsize=10.5)
    return fig, [ax]


def _down_panel(
    ax: Axes, band: Band, ylabel: str, title: str, line: float, line_label: str,
    height_s: float,
) -> None:
    """One down-over-time band in percent, with the stall line and the upgrade height."""
    if band.n:
        div, unit = time_unit(float(band.t_s[-1]))
        t = band.t_s / div
        _plot_band(ax, t, band, "", "median", spread_alpha=0.18, lw=1.8)
        ax.set_xlim(t[0], t[-1])
        if math.isfinite(height_s):
            ax.axvline(height_s / div, color=GREY, ls=":", lw=1.5,
                       label="upgrade height (median)")
        ax.set_xlabel(f"time since activation [{unit}]")
    else:
        ax.text(0.5, 0.5, "never activated", ha="center", transform=ax.transAxes)
        ax.set_xlabel("time since activation [s]")
    if math.isfinite(line):
        ax.axhline(100 * line, color=RED, ls="--", lw=1.5, label=line_label)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper right")
    ax.set_title(title, fontsize=10.5)


def consensus_figure(
    down: DownOverTime, peaks: np.ndarray, replications: int, *,
    stall_line: float = ONE_THIRD, stalled: tuple[int, int] | None = None,
    height_s: float = math.nan,
) -> tuple[Figure, list[Axes]]:
    """Voting power and fleet down over time, and the peak share down, vs the stall line.

    ``down.stake`` (share of the chain's voting power) is the main panel when the run
    recorded stake; ``peaks`` are the per-replication peaks in the same unit (the summary's
    ``peak_down_stake``, else ``peak_down_fraction``); ``stalled``: ``(stalled, n)`` for
    P(consensus stalled) in the title; ``height_s``: the upgrade height since activation.
    """
    fig = Figure(figsize=(11.0, 7.6), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 2, height_ratios=[1.15, 1])
    top = fig.add_subplot(grid[0, :])
    left, right = fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[1, 1])
    exact = "exact, recorded intervals" if down.source == "recorded" else "reconstructed"
    stake_line = f"{_fmt(stall_line, 'fraction')} of the voting power: consensus stalls"
    if down.stake is not None:
        _down_panel(top, down.stake, "voting power down [% of the chain's total]",
                    f"Voting power down over time ({exact}; n={down.stake.n})",
                    stall_line, stake_line, height_s)
        in_stake = True
    else:
        top.text(0.5, 0.5, "stake not recorded in this run directory: node counts only",
                 ha="center", va="center", transform=top.transAxes)
        top.set_axis_off()
        in_stake = False
    _down_panel(left, down.nodes, "fleet nodes down [%]",
                f"Fleet nodes down, validators and full nodes alike (n={down.nodes.n})",
                math.nan if in_stake else stall_line, "1/3 of the nodes", height_s)
    peaks = np.asarray(peaks, dtype=float)
    peaks = peaks[np.isfinite(peaks)]
    right.hist(100 * peaks, bins=np.linspace(0, 100, 41), color=BLUE, alpha=0.75,
               edgecolor="white")
    right.axvline(100 * stall_line, color=RED, ls="--", lw=1.5,
                  label=_fmt(stall_line, "fraction"))
    unit = "voting power" if in_stake else "fleet"
    right.set_xlabel(f"peak share of the {unit} down at once [%]")
    right.set_ylabel("replications")
    right.yaxis.set_major_locator(MaxNLocator(integer=True))
    if stalled is not None:
        p, low, high = wilson(*stalled)
        head = f"P(consensus stalled) = {_fmt(p, 'probability')}"
    else:
        over = int(np.count_nonzero(peaks >= stall_line - 1e-12))
        p, low, high = wilson(over, len(peaks))
        head = f"P(peak >= {_fmt(stall_line, 'fraction')})= {_fmt(p, 'probability')}"
    right.set_title(f"Peak down: {head} [{_fmt(low, 'probability')}, "
                    f"{_fmt(high, 'probability')}], n={len(peaks)}", fontsize=10.5)
    right.legend(fontsize=8.5)
    right.grid(alpha=0.3)
    weight = "in stake" if in_stake else "one node = one vote"
    fig.suptitle(f"Consensus impact ({replications} replications; {weight}; curves: the "
                 "largest share down within each time step)", fontsize=11)
    return fig, [top, left, right]


def governance_figure(table: pd.DataFrame) -> tuple[Figure, list[Axes]]:
    """Probabilities (Wilson) and counts per replication (t) of the governance flow."""
    fig = Figure(figsize=(11.0, 5.2), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 2, height_ratios=[4, 2.6])
    ax1 = fig.add_subplot(grid[0, :])
    ax2 = fig.add_subplot(grid[1, 0])
    ax3 = fig.add_subplot(grid[1, 1])
    _interval_panel(ax1, table, ["activated", "quorum_available_at_build", "malicious_proposed",
                                 "malicious_approved"],
                    "probability [%] (share of replications, Wilson 95% CI)", percent=True)
    _interval_panel(ax2, table, ["proposal_attempts", "release_quorum_fail_total"],
                    "submissions [count per replication] (mean, t 95% CI)", percent=False,
                    color=GREY, unit="count")
    _interval_panel(ax3, table, ["release_votes_total"],
                    "votes [count per replication] (mean, t 95% CI)", percent=False, color=GREY,
                    unit="count")
    total = int(table["N"].iloc[0]) if len(table) else 0
    fig.suptitle(f"Governance ({total} replications)", fontsize=11)
    return fig, [ax1, ax2, ax3]


__all__ = [
    "affected_figure",
    "consensus_figure",
    "containment_figure",
    "exposure_figure",
    "governance_figure",
    "new_figure",
    "time_unit",
    "timing_figure",
]
