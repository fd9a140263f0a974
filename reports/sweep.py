"""Threshold tuning: the tidy sweep table, the SLO rule and the safety-vs-liveness frontier.

Input: for each grid point, its settings (``{"signers.threshold": "5"}``), its
per-replication measure values (``releasesim.reports.measures.per_replication``) and its activation
deadline. Output:

- ``sweep_table``: one row per grid point, P(activated) first, then the main metrics'
  estimate, 95% CI and ``n`` (``<metric>``, ``<metric>_ci_low``, ``<metric>_ci_high``,
  ``<metric>_n``), computed with each measure's one method (``releasesim.reports.estimates``), so a
  sweep row shows what the run's report shows. The consensus metrics (P(consensus
  stalled), the longest stall, recovery, peak voting power down, lagging stake) make a
  sweep over ``consensus.mode=rolling,halt_at_height`` compare the upgrade modes.
- ``recommend``: the SLO rule. A point is **feasible** when every SLO given holds:

  - ``max_forgery_prob``: the 95% *upper* bound of P(malicious build approved) is ``<=``
    it -- the certified stratified bound (``CERTIFIED``, ``releasesim.reports.certify``,
    docs/certify.md) when the table has it for every point (a probabilistic compromise
    model), else the Wilson bound of the plain replications (the fixed-count model);
  - ``max_activation_s``: the Kaplan-Meier median time build -> activation (censored at
    the horizon; a rejected release never activates; ``inf`` when not reached within the
    horizon) is ``<=`` it;
  - ``max_stall_prob``: the Wilson 95% upper bound of P(consensus stalled) is ``<=`` it;
  - ``max_stall_s``: the Student t 95% upper bound of the mean longest stall per
    replication (0 without a stall, so it weighs how often and how long the chain stops)
    is ``<=`` it; a replication still stalled at the end of the run has only a lower
    bound, so the upper bound is infinite and the point is not feasible.

  Among feasible points the one with the fastest median activation is recommended (ties:
  the lower forgery bound, then the grid order); the reason is one sentence, naming the
  bounds used. With no feasible point, the sentence says so and why.
- ``frontier_figure``: P(malicious approved) vs median time to activation and vs
  P(activated by the deadline), with CIs, the SLO lines and the recommendation.

Must not import ``sim`` or ``model``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from releasesim.reports.estimates import estimate, follow_up
from releasesim.reports.figures import BLUE, GREY, RED, new_figure, time_unit
from releasesim.reports.formatting import format_estimate, format_value
from releasesim.reports.measures import BY_NAME, Measure

SWEEP_METRICS: tuple[str, ...] = (
    "activated",
    "malicious_approved",
    "malicious_installed_fraction",
    "activated_on_time",
    "time_to_activation_s",
    "time_to_quorum_s",
    "lagging_fraction",
    "failed_startup_fraction",
    "peak_down_fraction",
    "down_over_third",
    "consensus_stalled",
    "stall_open_at_end",
    "stall_longest_s",
    "stall_recover_s",
    "peak_down_stake",
    "lagging_stake",
)
"""The sweep's columns: measures of ``releasesim.reports.measures`` (each with its one interval
method, as in every report) plus ``activated_on_time`` (an event: activated within the
deadline of the build, Wilson interval)."""
PRECISION_METRICS = ("malicious_approved", "activated_on_time")
"""The metrics ``--target-ci-width`` makes precise (half-widths in probability units)."""
CERTIFIED = "malicious_approved_certified"
"""Column of the certified upper bound on P(malicious approved) (``releasesim certify``);
``CERTIFIED + "_point"`` and ``CERTIFIED + "_method"`` hold its point estimate and what is
exact and what simulated."""
WILSON_BOUND = "malicious_approved_ci_high"
STALL_BOUND = "consensus_stalled_ci_high"
"""Wilson 95% upper bound of P(consensus stalled): what ``max_stall_prob`` constrains."""
STALL_S_BOUND = "stall_longest_s_ci_high"
"""t 95% upper bound of the mean longest stall (``inf`` when a replication was still stalled
at the end): what ``max_stall_s`` constrains."""
ON_TIME = Measure("activated_on_time", "governance", "probability",
                  "Activated within the deadline of the build.", "event", "lower")


@dataclass(frozen=True, slots=True)
class Recommendation:
    label: str | None
    """The recommended grid point (``key=value, ...``), or None when none is feasible."""
    sentence: str
    feasible: tuple[bool, ...]


def sweep_values(values: pd.DataFrame, deadline_s: float) -> pd.DataFrame:
    """Add the sweep's ``activated_on_time`` to one point's per-replication values."""
    out = values.copy()
    act = out["time_to_activation_s"].astype(float)
    activated = out["activated"].astype(float) > 0.5
    out["activated_on_time"] = (activated & (act <= deadline_s)).astype(float)
    return out


def sweep_table(
    points: Sequence[tuple[Mapping[str, str], pd.DataFrame, float]],
) -> pd.DataFrame:
    """One row per point from ``(settings, per-replication values, deadline_s)``.

    For each metric: ``<m>``, ``<m>_ci_low``, ``<m>_ci_high``, ``<m>_n`` and, for a
    conditional one, ``<m>_given``; a censored time also has ``<m>_censored``.
    """
    rows = []
    for settings, values, deadline in points:
        v = sweep_values(values, deadline)
        row: dict[str, object] = {key: _typed(value) for key, value in settings.items()}
        row["point"] = ", ".join(f"{k}={val}" for k, val in settings.items())
        row["replications"] = len(v)
        row["deadline_s"] = float(deadline)
        for name in SWEEP_METRICS:
            if name not in v.columns:
                continue
            measure = ON_TIME if name == ON_TIME.name else BY_NAME[name]
            est, low, high, n, censored = estimate(measure, v)
            row[name], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = est, low, high
            row[f"{name}_n"] = n
            if measure.given:
                row[f"{name}_given"] = measure.given
            if measure.method == "km" or measure.lower_bound_when:
                row[f"{name}_censored"] = censored
                row[f"{name}_follow_up"] = follow_up(measure, v)
        rows.append(row)
    return pd.DataFrame(rows)


def _typed(text: str) -> object:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def max_half_width(table: pd.DataFrame, metrics: Sequence[str] = PRECISION_METRICS) -> float:
    """Largest CI half-width of ``metrics`` over the grid points."""
    widths = [((table[f"{m}_ci_high"] - table[f"{m}_ci_low"]) / 2).max() for m in metrics
              if f"{m}_ci_high" in table.columns]
    return float(max(widths)) if widths else math.nan


def recommend(
    table: pd.DataFrame,
    max_forgery_prob: float | None,
    max_activation_s: float | None,
    max_stall_prob: float | None = None,
    max_stall_s: float | None = None,
) -> Recommendation:
    """Apply the SLO rule (module docstring) to a sweep table."""
    slos = (max_forgery_prob, max_activation_s, max_stall_prob, max_stall_s)
    if all(v is None for v in slos):
        return Recommendation(None, "No SLO given (--max-forgery-prob, --max-activation-s, "
                              "--max-stall-prob, --max-stall-s): no recommendation.",
                              tuple(False for _ in range(len(table))))
    bound, certified = forgery_bound(table)
    checks = {
        "forgery": _within(table, bound, max_forgery_prob),
        "speed": _within(table, "time_to_activation_s", max_activation_s),
        "stall": _within(table, STALL_BOUND, max_stall_prob),
        "stall_s": _within(table, STALL_S_BOUND, max_stall_s),
    }
    feasible = pd.Series(True, index=table.index)
    for ok in checks.values():
        feasible &= ok
    slo = _slo_text(max_forgery_prob, max_activation_s, certified, max_stall_prob, max_stall_s)
    if not feasible.any():
        given = {k: ok for (k, ok), v in zip(checks.items(), slos, strict=True) if v is not None}
        return Recommendation(None, _none_sentence(table, given, slo, bound),
                              tuple(bool(f) for f in feasible))
    candidates = table[feasible].assign(_order=np.arange(len(table))[feasible.to_numpy()])
    best = candidates.sort_values(["time_to_activation_s", bound,
                                   "_order"], kind="stable").iloc[0]
    n_feasible = int(feasible.sum())
    if certified:
        why = (f"its P(malicious approved) <= {best[CERTIFIED]:.2g}: "
               f"{best[CERTIFIED + '_method']}")
    else:
        why = (f"its P(malicious approved) is {_pct(best['malicious_approved'])}, 95% CI "
               f"[{_pct(best['malicious_approved_ci_low'])}, "
               f"{_pct(best['malicious_approved_ci_high'])}], n={int(best['replications'])}")
    if max_stall_prob is not None or max_stall_s is not None:
        why += f"; {_stall_text(best)}"
    sentence = (
        f"Recommended: {best['point']} - the fastest median activation "
        f"({_activation(best)}) among the {n_feasible} of "
        f"{len(table)} settings meeting {slo} ({why})."
    )
    return Recommendation(str(best["point"]), sentence, tuple(bool(f) for f in feasible))


def _within(table: pd.DataFrame, column: str, limit: float | None) -> pd.Series:
    """``table[column] <= limit``: True everywhere without a limit, False where missing."""
    if limit is None:
        return pd.Series(True, index=table.index)
    if column not in table.columns:
        return pd.Series(False, index=table.index)
    return table[column].astype(float) <= limit


def _stall_text(row: Mapping[str, object]) -> str:
    """``P(consensus stall) 5.0% [..], mean longest stall 30 s [.., ..]`` of a sweep row."""
    if "consensus_stalled" not in row:
        return "consensus stalls not recorded"
    return (f"P(consensus stall) {_with_ci(row, 'consensus_stalled', 'probability')}, "
            f"mean longest stall {_with_ci(row, 'stall_longest_s', 's')}")


def _with_ci(row: Mapping[str, object], name: str, unit: str) -> str:
    """``estimate [low, high]`` of one metric of a sweep row ("> x" past a lower bound)."""
    follow = float(row.get(f"{name}_follow_up", math.nan))  # type: ignore[arg-type]
    est, low, high = (format_estimate(float(row[key]), unit, follow)  # type: ignore[arg-type]
                      for key in (name, f"{name}_ci_low", f"{name}_ci_high"))
    return f"{est} [{low}, {high}]"


def _activation(row: Mapping[str, object]) -> str:
    """The median activation of a sweep row; "> follow-up" when not reached."""
    follow = row.get("time_to_activation_s_follow_up", math.nan)
    return format_estimate(float(row["time_to_activation_s"]), "s",  # type: ignore[arg-type]
                           float(follow))  # type: ignore[arg-type]


def _pct(value: float) -> str:
    return format_value(value, "probability")


def forgery_bound(table: pd.DataFrame) -> tuple[str, bool]:
    """``(column, certified)``: the certified bound when every point has one, else Wilson's."""
    if CERTIFIED in table.columns and len(table) and table[CERTIFIED].notna().all():
        return CERTIFIED, True
    return WILSON_BOUND, False


def _slo_text(max_forgery_prob: float | None, max_activation_s: float | None,
              certified: bool = False, max_stall_prob: float | None = None,
              max_stall_s: float | None = None) -> str:
    parts = []
    if max_forgery_prob is not None and certified:
        parts.append(f"P(malicious approved) certified 95% upper bound (stratified by keys "
                     f"held, docs/certify.md) <= {max_forgery_prob:.2g}")
    elif max_forgery_prob is not None:
        parts.append(f"P(malicious approved) 95% upper bound <= {_pct(max_forgery_prob)}")
    if max_activation_s is not None:
        parts.append(f"median activation <= {format_value(max_activation_s, 's')}")
    if max_stall_prob is not None:
        parts.append(f"P(consensus stall) 95% upper bound <= {_pct(max_stall_prob)}")
    if max_stall_s is not None:
        parts.append(f"mean longest stall 95% upper bound <= {format_value(max_stall_s, 's')}")
    return " and ".join(parts)


def _none_sentence(table: pd.DataFrame, checks: Mapping[str, pd.Series], slo: str,
                   bound: str = WILSON_BOUND) -> str:
    """Why no setting is feasible: the SLOs no setting meets, else the ones in conflict."""
    never = [name for name, ok in checks.items() if not ok.any()]
    if never:
        why = "; ".join(_never_text(table, name, bound) for name in never)
    elif set(checks) == {"forgery", "speed"}:
        safe = table[checks["forgery"]]
        fastest = safe.sort_values("time_to_activation_s", kind="stable").iloc[0]
        why = (f"the safe settings activate too slowly (fastest safe: {fastest['point']}, "
               f"median {_activation(fastest)}) and the fast "
               "ones are not safe enough")
    else:
        labels = {"forgery": "safe enough", "speed": "fast enough",
                  "stall": "rarely stalling", "stall_s": "short stalls"}
        why = "each SLO is met by some setting, but none meets all (" + "; ".join(
            f"{labels[name]}: {', '.join(table.loc[ok, 'point'].astype(str))}"
            for name, ok in checks.items()) + ")"
    return f"No setting meets {slo}: {why}."


def _never_text(table: pd.DataFrame, name: str, bound: str) -> str:
    """Why one SLO is met by no setting, naming the setting that comes closest."""
    if name == "speed":
        best = table.sort_values("time_to_activation_s", kind="stable").iloc[0]
        return (f"no setting activates fast enough (fastest: {best['point']}, median "
                f"{_activation(best)})")
    if name == "forgery":
        best = table.sort_values(bound, kind="stable").iloc[0]
        if bound == CERTIFIED:
            return (f"no setting is safe enough (lowest certified bound: {best['point']}, "
                    f"{best[bound]:.2g}; a larger --max-replications may narrow it)")
        return (f"no setting is safe enough (lowest upper bound: {best['point']}, "
                f"{_pct(best[bound])}; more replications narrow it)")
    column = STALL_BOUND if name == "stall" else STALL_S_BOUND
    if column not in table.columns:
        return "the sweep table records no consensus stalls"
    best = table.sort_values(column, kind="stable").iloc[0]
    if name == "stall":
        return (f"no setting stalls consensus rarely enough (lowest upper bound of "
                f"P(stall): {best['point']}, {_pct(best[column])}; more replications "
                "narrow it)")
    if math.isinf(float(best[column])):
        return ("consensus was still stalled at the end of some replication of every "
                "setting, so no stall duration is bounded")
    return (f"no setting keeps stalls short enough (lowest upper bound of the mean longest "
            f"stall: {best['point']}, {format_value(float(best[column]), 's')})")


def frontier_figure(
    table: pd.DataFrame,
    *,
    max_forgery_prob: float | None = None,
    max_activation_s: float | None = None,
    recommended: str | None = None,
    title: str = "",
) -> tuple[Figure, list[Axes]]:
    """Safety vs liveness: P(malicious approved) against activation time and on-time P."""
    fig, (ax1, ax2) = new_figure(12.0, 5.0, ncols=2)
    act = table["time_to_activation_s"].to_numpy(dtype=float)
    finite = act[np.isfinite(act)]
    hi_ci = table["time_to_activation_s_ci_high"].to_numpy(dtype=float)
    span = np.concatenate([finite, hi_ci[np.isfinite(hi_ci)]])
    if max_activation_s is not None:
        span = np.append(span, max_activation_s)
    div, unit = time_unit(float(span.max()) if len(span) else 0.0)
    right = (float(span.max()) / div * 1.12) if len(span) else 1.0
    y = 100 * table["malicious_approved"].to_numpy(dtype=float)
    ylo = 100 * table["malicious_approved_ci_low"].to_numpy(dtype=float)
    yhi = 100 * table["malicious_approved_ci_high"].to_numpy(dtype=float)
    on = 100 * table["activated_on_time"].to_numpy(dtype=float)
    onlo = 100 * table["activated_on_time_ci_low"].to_numpy(dtype=float)
    onhi = 100 * table["activated_on_time_ci_high"].to_numpy(dtype=float)
    def err(mid: float, low: float, high: float) -> list[list[float]]:
        return [[max(0.0, mid - low)], [max(0.0, high - mid)]]

    for i, row in enumerate(table.itertuples(index=False)):
        label = short_label(row.point)
        rec = recommended is not None and row.point == recommended
        color = RED if rec else BLUE
        x = act[i] / div
        xl = table["time_to_activation_s_ci_low"].iloc[i] / div
        xh = table["time_to_activation_s_ci_high"].iloc[i] / div
        if math.isfinite(x):
            xerr = err(x, xl, xh) if math.isfinite(xl) and math.isfinite(xh) else None
            ax1.errorbar(x, y[i], xerr=xerr, yerr=err(y[i], ylo[i], yhi[i]),
                         fmt="o", color=color, ecolor=color, capsize=3, ms=8 if rec else 6)
            ax1.annotate(label, (x, y[i]), xytext=(10, 12 + 15 * (i % 4)),
                         textcoords="offset points", fontsize=9, color=color,
                         arrowprops={"arrowstyle": "-", "color": color, "lw": 0.6})
        else:
            ax1.annotate(f"{label}: median activation not reached", (0.02, y[i]),
                         xycoords=("axes fraction", "data"), fontsize=8.5, color=GREY)
        ax2.errorbar(on[i], y[i], xerr=err(on[i], onlo[i], onhi[i]),
                     yerr=err(y[i], ylo[i], yhi[i]), fmt="o", color=color,
                     ecolor=color, capsize=3, ms=8 if rec else 6)
        ax2.annotate(label, (on[i], y[i]), xytext=(-10, 12 + 15 * (i % 4)),
                     textcoords="offset points", fontsize=9, color=color, ha="right",
                     arrowprops={"arrowstyle": "-", "color": color, "lw": 0.6})
    if recommended is not None:
        for ax in (ax1, ax2):
            ax.plot([], [], "o", color=RED, label=f"recommended: {short_label(recommended)}")
    top = max(5.0, float(np.nanmax(yhi)) * 1.15 if len(yhi) else 5.0)
    top = min(top + 8.0, 110.0) if top > 50 else top * 1.3
    if max_forgery_prob is not None:
        top = max(top, 100 * max_forgery_prob * 1.3)
        for ax in (ax1, ax2):
            ax.axhline(100 * max_forgery_prob, color=RED, ls="--", lw=1.2,
                       label=f"max forgery {_pct(max_forgery_prob)} (upper CI must be below)")
    if max_activation_s is not None:
        ax1.axvline(max_activation_s / div, color=RED, ls=":", lw=1.4,
                    label=f"max activation {format_value(max_activation_s, 's')}")
    ax1.set_xlim(0, right)
    ax2.set_xlim(-3, 103)
    for ax in (ax1, ax2):
        ax.set_ylim(-top * 0.04, top)
        ax.set_ylabel("P(malicious build approved) [%]")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="center right")
    ax1.set_xlabel(f"median time build -> activation [{unit}] (never = infinite)")
    deadline = table["deadline_s"].iloc[0] if len(table) else math.nan
    ax2.set_xlabel(f"P(activated within {format_value(deadline, 's')} of the build) [%]")
    reps = int(table["replications"].min()) if len(table) else 0
    ax1.set_title("safety vs speed (Wilson / bootstrap 95% CIs)", fontsize=10.5)
    ax2.set_title("safety vs liveness (Wilson 95% CIs)", fontsize=10.5)
    fig.suptitle(f"{title}{' - ' if title else ''}{len(table)} settings x {reps} replications "
                 "(common random numbers)", fontsize=11)
    return fig, [ax1, ax2]


def short_label(point: str) -> str:
    """``signers.threshold=5`` -> ``threshold=5`` (the last key segment)."""
    return ", ".join(part.split("=", 1)[0].rsplit(".", 1)[-1] + "=" + part.split("=", 1)[1]
                     for part in point.split(", "))


def sweep_markdown(table: pd.DataFrame, recommendation: Recommendation, title: str) -> str:
    """``sweep.md``: the recommendation, the table and the frontier picture (with P(stall)
    and the mean longest stall when the table records consensus stalls)."""
    stalls = "consensus_stalled" in table.columns and STALL_S_BOUND in table.columns
    extra = " P(consensus stall) | mean longest stall |" if stalls else ""
    lines = [f"# Sweep: {title}", "", recommendation.sentence, "",
             "![frontier](frontier.png)", "",
             "| setting | n | P(activated) | P(malicious approved) | P(activated on time) "
             f"| median activation |{extra} feasible |",
             "|---|---|---|---|---|---|" + ("---|---|" if stalls else "") + "---|"]
    for i, row in enumerate(table.itertuples(index=False)):
        feasible = recommendation.feasible[i] if recommendation.feasible else False
        cells = ""
        if stalls:
            record = row._asdict()
            cells = (f" {_with_ci(record, 'consensus_stalled', 'probability')} "
                     f"| {_with_ci(record, 'stall_longest_s', 's')} |")
        lines.append(
            f"| {row.point} | {row.replications} | {_pct(row.activated)} "
            f"[{_pct(row.activated_ci_low)}, {_pct(row.activated_ci_high)}] "
            f"| {_pct(row.malicious_approved)} "
            f"[{_pct(row.malicious_approved_ci_low)}, {_pct(row.malicious_approved_ci_high)}] "
            f"| {_pct(row.activated_on_time)} [{_pct(row.activated_on_time_ci_low)}, "
            f"{_pct(row.activated_on_time_ci_high)}] | "
            f"{_activation(row._asdict())} |{cells} {'yes' if feasible else 'no'} |"
        )
    return "\n".join(lines) + "\n"


__all__ = [
    "CERTIFIED",
    "PRECISION_METRICS",
    "STALL_BOUND",
    "STALL_S_BOUND",
    "Recommendation",
    "SWEEP_METRICS",
    "forgery_bound",
    "frontier_figure",
    "max_half_width",
    "recommend",
    "sweep_markdown",
    "sweep_table",
    "sweep_values",
]
