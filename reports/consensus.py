"""The report's consensus section in stake: stalls, their durations and who was down.

Consensus stalls (a *chain halt*: no blocks) while the voting power that is down -- or, past
an upgrade height, not yet on the release -- is at least ``1 - liveness_threshold`` (1/3) of
the chain's total. The engine records the outcome per replication (summary
``consensus_stalled``, ``stall_longest_s``, ``stall_longest_start_s``, ``stall_total_s``,
``stall_open_at_end``, ``stake_in_fleet``, ...); this module reads those columns and the
down intervals (``reports.series``) to build:

- ``StallFacts``: P(stall) with its Wilson interval, the stall durations of the stalled
  replications (censored ones -- still stalled at the end of the run -- flagged: their
  durations are lower bounds), how much of the voting power runs in the fleet;
- ``validators_in_longest_stall``: for the top stake ranks (``stake_rank`` 0 = the
  largest validator of the chain) and the rest, the share of stalled replications in which
  that validator was down during the longest stall ``[stall_longest_start_s, +
  stall_longest_s)`` (an interval ``[s, e)`` overlapping it: ``s < end and e > start``) and
  in which it was still down when the stall ended (``s < end <= e``), with Wilson 95%
  intervals and the validator's share of voting power;
- the section's lead sentences, the JSON block, and two figures (``stall_duration_figure``,
  ``stall_validators_figure``; each returns ``(fig, axes)``, the caller saves).

The *rollout halt* (``halted``: the wave rollout stopped on failed startups) is a different
thing and is never called a stall here. Must not import ``sim`` or ``model``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from releasesim.reports.figures import BLUE, GREY, ORANGE, new_figure
from releasesim.reports.formatting import format_estimate, format_value, time_unit
from releasesim.reports.intervals import wilson
from releasesim.reports.series import RECORDED, stake_shares
from releasesim.reports.survival import censored_quantile, kaplan_meier

TOP_RANKS = 10
DEFAULT_THRESHOLD = 2.0 / 3.0
STALL_COLUMNS = ("consensus_stalled", "stall_longest_s", "stall_longest_start_s",
                 "stall_total_s", "stall_open_at_end")


@dataclass(frozen=True, slots=True)
class StallFacts:
    """Per-run consensus facts read from the summary (and the manifest's scenario)."""

    replications: int
    stalled: int
    p: float
    ci_low: float
    ci_high: float
    longest_s: np.ndarray
    """Longest stall of each stalled replication."""
    total_s: np.ndarray
    """Total stalled time of each stalled replication."""
    open_at_end: np.ndarray
    """Still stalled at the end of the run (durations are lower bounds)."""
    stake_in_fleet: np.ndarray
    """Per replication: share of the chain's voting power held by fleet validators."""
    validators_in_fleet: np.ndarray
    chain_validators: int | None
    threshold: float
    mode: str

    @property
    def stall_line(self) -> float:
        """Share of voting power down at which consensus stalls (1/3 by default)."""
        return 1.0 - self.threshold


def _flag(column: pd.Series) -> np.ndarray:
    return column.map(lambda v: False if v is None or v != v else bool(v)).to_numpy(bool)


def stall_facts(summary: pd.DataFrame, manifest: dict[str, Any]) -> StallFacts | None:
    """The run's ``StallFacts``; None when the summary has no consensus columns (a run
    directory written before stake existed)."""
    if any(c not in summary.columns for c in STALL_COLUMNS):
        return None
    scenario = manifest.get("scenario") or {}
    consensus = scenario.get("consensus") or {}
    stalled = _flag(summary["consensus_stalled"])
    reps = len(summary)
    p, low, high = wilson(int(stalled.sum()), reps)
    validators = (scenario.get("governance") or {}).get("validators")

    def column(name: str) -> np.ndarray:
        if name not in summary.columns:
            return np.full(reps, np.nan)
        return summary[name].to_numpy(dtype=float)

    return StallFacts(
        replications=reps, stalled=int(stalled.sum()), p=p, ci_low=low, ci_high=high,
        longest_s=summary["stall_longest_s"].to_numpy(dtype=float)[stalled],
        total_s=summary["stall_total_s"].to_numpy(dtype=float)[stalled],
        open_at_end=_flag(summary["stall_open_at_end"])[stalled],
        stake_in_fleet=column("stake_in_fleet"),
        validators_in_fleet=column("validators_in_fleet"),
        chain_validators=int(validators) if isinstance(validators, int | float) else None,
        threshold=float(consensus.get("liveness_threshold", DEFAULT_THRESHOLD)),
        mode=str(consensus.get("mode", "rolling")),
    )


def validators_in_longest_stall(
    summary: pd.DataFrame, nodes: pd.DataFrame, intervals: pd.DataFrame, top: int = TOP_RANKS
) -> pd.DataFrame:
    """One row per stake rank ``0..top-1`` and one for the others (``rank`` -1).

    Columns: ``label``, ``rank``, ``stalled`` (replications that stalled: the n of every
    share), ``in_fleet`` (of those, how many had this validator in the fleet: stakes are
    drawn per replication, so a rank's validator may run outside it, always up),
    ``stake_share`` (its mean share of voting power over the replications where it was in
    the fleet; the others' stake is not in the tables), ``down_during`` and ``down_at_end``
    (counts; for the others: any of them), ``p_during``, ``low``, ``high`` (Wilson 95% of
    ``down_during / stalled``), ``p_at_end`` and ``stake_down`` (the row's voting power
    down during the stall, mean over all stalled replications, 0 where not in the fleet).
    ``intervals``: ``(replication, node, start_s, end_s)``, an open interval ending at
    ``inf`` (``series.down_intervals_of``).
    """
    stalled = summary[_flag(summary["consensus_stalled"])]
    shares = stake_shares(summary, nodes)
    labels = [str(r) for r in range(top)] + [f"others ({top}+)"]
    counts = {k: np.zeros(top + 1) for k in ("in_fleet", "stake_share", "down_during",
                                             "down_at_end", "stake_down")}
    by_rep = intervals.groupby("replication").indices
    node_groups = dict(tuple(nodes.groupby("replication")))
    for rep, start, length in zip(stalled["replication"], stalled["stall_longest_start_s"],
                                  stalled["stall_longest_s"], strict=True):
        end = float(start) + float(length)
        iv = intervals.iloc[by_rep.get(rep, np.zeros(0, dtype=int))]
        during = iv[(iv["start_s"] < end) & (iv["end_s"] > start)]["node"].unique()
        at_end = iv[(iv["start_s"] < end) & (iv["end_s"] >= end)]["node"].unique()
        g = node_groups.get(rep, nodes.iloc[0:0])
        g = g[g["stake_rank"].to_numpy() >= 0]
        rank = g["stake_rank"].to_numpy(dtype=int)
        row = np.where(rank < top, rank, top)
        node = g["node"].to_numpy()
        share = (shares.reindex(pd.MultiIndex.from_arrays([np.full(len(g), rep), node]))
                 .to_numpy(dtype=float) if shares is not None else np.full(len(g), np.nan))
        was_down, still_down = np.isin(node, during), np.isin(node, at_end)
        for k in range(top + 1):
            mine = row == k
            if not mine.any():
                continue
            counts["in_fleet"][k] += 1
            counts["stake_share"][k] += float(np.sum(share[mine]))
            counts["down_during"][k] += bool(was_down[mine].any())
            counts["down_at_end"][k] += bool(still_down[mine].any())
            counts["stake_down"][k] += float(np.sum(share[mine & was_down]))
    n = len(stalled)
    rows = []
    for k, label in enumerate(labels):
        p, low, high = wilson(counts["down_during"][k], n)
        in_fleet = int(counts["in_fleet"][k])
        rows.append({
            "label": label, "rank": k if k < top else -1, "stalled": n, "in_fleet": in_fleet,
            "stake_share": counts["stake_share"][k] / in_fleet if in_fleet else math.nan,
            "down_during": int(counts["down_during"][k]),
            "down_at_end": int(counts["down_at_end"][k]),
            "p_during": p, "low": low, "high": high,
            "p_at_end": counts["down_at_end"][k] / n if n else math.nan,
            "stake_down": counts["stake_down"][k] / n if n else math.nan,
        })
    return pd.DataFrame(rows)


RANK_HEADER = ["stake rank (0 = largest)", "share of voting power (mean when in the fleet)",
               "in the fleet",
               "down during the longest stall", "95% CI", "still down when it ended",
               "voting power down then (mean over stalled replications)"]


def rank_rows(table: pd.DataFrame) -> list[list[str]]:
    """``validators_in_longest_stall`` formatted for the report (``RANK_HEADER``)."""
    rows = []
    for r in table.itertuples(index=False):
        n = int(r.stalled)
        rows.append([
            r.label, format_value(r.stake_share, "fraction"), f"{r.in_fleet}/{n}",
            f"{format_value(r.p_during, 'fraction')} ({r.down_during}/{n})",
            f"[{format_value(r.low, 'fraction')}, {format_value(r.high, 'fraction')}]",
            f"{format_value(r.p_at_end, 'fraction')} ({r.down_at_end}/{n})",
            format_value(r.stake_down, "fraction"),
        ])
    return rows


def _pct(x: float) -> str:
    return format_value(x, "fraction")


def lead_sentences(
    facts: StallFacts | None, source: str, approximate: int, has_stake: bool
) -> list[str]:
    """What the consensus section says first: the stall probability, the durations, the
    voting power in the fleet and where the down intervals came from."""
    lines = []
    if source == RECORDED:
        lines.append("Down intervals: recorded per node (downtime table); the over-time "
                     "curves are exact.")
    else:
        lines.append("Down intervals: reconstructed from the nodes table's totals as "
                     "[installed_s, installed_s + down_s) -- this run directory has no "
                     f"downtime.parquet (approximate nodes: {approximate}).")
    if facts is None:
        lines.append("Consensus liveness was not recorded in this run directory (written "
                     "before stake existed): no stall figures; the curves are node counts"
                     + ("" if has_stake else " only") + ".")
        return lines
    n, k = facts.replications, facts.stalled
    stall_at = _pct(facts.stall_line)
    if k == 0:
        lines.append(f"No stall in {n} replications: P(consensus stalled) <= "
                     f"{_pct(facts.ci_high)} (Wilson 95% upper bound).")
    else:
        censored = int(facts.open_at_end.sum())
        median, low, high, _ = censored_quantile(facts.longest_s, ~facts.open_at_end)
        follow = float(facts.longest_s[facts.open_at_end].max()) if censored else math.nan
        shown = [format_estimate(v, "s", follow) for v in (median, low, high)]
        lines.append(
            f"Consensus stalled in {k} of {n} replications: P(stall) = {_pct(facts.p)} "
            f"[{_pct(facts.ci_low)}, {_pct(facts.ci_high)}] (Wilson 95%). Longest stall: "
            f"median {shown[0]} [{shown[1]}, {shown[2]}] over the stalled replications "
            f"(Kaplan-Meier); {censored} of them {'was' if censored == 1 else 'were'} still "
            "stalled when the run ended (censored: their durations are lower bounds).")
    lines.append(f"Consensus stalls while at least {stall_at} of the chain's voting power "
                 f"is down (liveness threshold {_pct(facts.threshold)}); upgrade mode: "
                 f"{facts.mode}. A chain halt is not the rollout halt (`halted`).")
    in_fleet = facts.stake_in_fleet[np.isfinite(facts.stake_in_fleet)]
    if len(in_fleet) and in_fleet.min() < 1.0:
        count = facts.validators_in_fleet[np.isfinite(facts.validators_in_fleet)]
        validators = f"{int(count.min())}" if len(count) else "?"
        if len(count) and count.max() != count.min():
            validators = f"{int(count.min())}-{int(count.max())}"
        of = f" of {facts.chain_validators}" if facts.chain_validators else ""
        lines.append(f"{validators}{of} validators run in the fleet, holding "
                     f"{_pct(float(in_fleet.mean()))} of the voting power (mean over "
                     f"replications; {_pct(float(in_fleet.min()))}-"
                     f"{_pct(float(in_fleet.max()))}); the other validators count as "
                     "always up, so the share down can never exceed that.")
    elif len(in_fleet):
        lines.append("Every validator of the chain runs in the fleet (100% of the voting "
                     "power); full nodes carry no stake.")
    return lines


def consensus_json(
    facts: StallFacts | None, ranks: pd.DataFrame | None, source: str, approximate: int
) -> dict[str, Any]:
    """The ``consensus`` block of ``report.json`` (finite numbers only; NaN as null)."""

    def num(x: float) -> float | None:
        return float(x) if x is not None and math.isfinite(float(x)) else None

    doc: dict[str, Any] = {"down_intervals": source, "approximate_nodes": approximate}
    if facts is None:
        return {**doc, "recorded": False}
    doc.update({
        "recorded": True, "replications": facts.replications, "stalled": facts.stalled,
        "p_stall": num(facts.p), "p_stall_ci": [num(facts.ci_low), num(facts.ci_high)],
        "liveness_threshold": facts.threshold, "mode": facts.mode,
        "stall_longest_s": [num(x) for x in facts.longest_s],
        "stall_total_s": [num(x) for x in facts.total_s],
        "stall_open_at_end": [bool(x) for x in facts.open_at_end],
        "stake_in_fleet_mean": num(float(np.nanmean(facts.stake_in_fleet)))
        if np.isfinite(facts.stake_in_fleet).any() else None,
    })
    if ranks is not None:
        doc["validators_in_longest_stall"] = [
            {k: (num(v) if isinstance(v, float) else v) for k, v in row.items()}
            for row in ranks.to_dict(orient="records")
        ]
    return doc


# --------------------------------------------------------------------------- figures


def stall_duration_figure(facts: StallFacts) -> tuple[Figure, list[Axes]]:
    """Distribution of the longest and the total stall over the stalled replications.

    Kaplan-Meier estimate of ``P(duration <= x | stalled)`` (a replication still stalled at
    the end of the run is censored at its lower bound), with each replication's value as a
    tick: filled = observed, hollow > = censored. One curve when every stalled replication
    stalled once (longest = total); log time axis when the durations span > 50x.
    """
    fig, (ax,) = new_figure(9.0, 4.4)
    observed = ~facts.open_at_end
    both = np.concatenate([facts.longest_s, facts.total_s])
    positive = both[both > 0]
    log = len(positive) > 0 and positive.max() / positive.min() > 50
    div, unit = time_unit(float(both.max()) if len(both) else 0.0)
    origin = float(positive.min()) / div if log else 0.0
    series = [(facts.longest_s, BLUE, "longest stall", -0.04)]
    if np.array_equal(facts.longest_s, facts.total_s):
        series = [(facts.longest_s, BLUE, "longest stall = total stalled time (one stall "
                   "each)", -0.05)]
    else:
        series.append((facts.total_s, ORANGE, "total stalled time", -0.09))
    for values, color, label, y in series:
        curve = kaplan_meier(values, observed)
        right = max(float(values.max()), float(curve.times[-1]) if len(curve.times) else 0.0)
        x = np.concatenate([[origin], curve.times / div, [right / div]])

        def shown(s: np.ndarray) -> np.ndarray:
            return 100 * (1 - np.concatenate([[1.0], s, s[-1:] if len(s) else [1.0]]))

        ax.step(x, shown(curve.survival), where="post", color=color, lw=2,
                label=f"{label} (Kaplan-Meier)")
        ax.fill_between(x, shown(curve.low), shown(curve.high), step="post", color=color,
                        alpha=0.15)
        ax.scatter(values[observed] / div, np.full(int(observed.sum()), 100 * y),
                   marker="|", s=80, color=color)
        if (~observed).any():
            ax.scatter(values[~observed] / div, np.full(int((~observed).sum()), 100 * y),
                       marker=">", s=60, facecolors="none", edgecolors=color, lw=1.5)
    if log:
        ax.set_xscale("log")
    censored = int((~observed).sum())
    ax.set_xlabel(f"stall duration [{unit}]{' (log scale)' if log else ''}; ticks: one "
                  "stalled replication, hollow > = still stalled at the end (a lower bound)")
    ax.set_ylabel("stalled replications with a shorter stall [%]")
    ax.set_ylim(-12, 102)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8.5, loc="upper left")
    ax.set_title(f"Stall duration (n={facts.stalled} stalled of {facts.replications} "
                 f"replications; {censored} censored at the end of the run; band: 95% CI)",
                 fontsize=10.5)
    return fig, [ax]


def stall_validators_figure(ranks: pd.DataFrame) -> tuple[Figure, list[Axes]]:
    """Per stake rank: P(down during the longest stall) with its Wilson CI, P(still down
    when it ended), and the rank's share of voting power."""
    fig, (ax1, ax2) = new_figure(11.0, 4.6, ncols=2)
    x = np.arange(len(ranks))
    p = 100 * ranks["p_during"].to_numpy(dtype=float)
    err = [p - 100 * ranks["low"].to_numpy(dtype=float),
           100 * ranks["high"].to_numpy(dtype=float) - p]
    ax1.bar(x - 0.2, p, width=0.4, color=BLUE, alpha=0.8, label="down during it")
    ax1.errorbar(x - 0.2, p, yerr=err, fmt="none", ecolor="black", capsize=3, lw=1)
    ax1.bar(x + 0.2, 100 * ranks["p_at_end"].to_numpy(dtype=float), width=0.4,
            color=ORANGE, alpha=0.8, label="still down when it ended")
    ax1.set_xticks(x, ranks["label"].tolist(), fontsize=8.5, rotation=30)
    ax1.set_xlabel("validator stake rank [0 = largest]")
    ax1.set_ylabel("stalled replications [%] (Wilson 95% CI)")
    ax1.set_ylim(0, 105)
    ax1.grid(axis="y", alpha=0.3)
    ax1.legend(fontsize=8.5)
    n = int(ranks["stalled"].iloc[0]) if len(ranks) else 0
    ax1.set_title(f"Down during the longest stall (n={n} stalled replications)",
                  fontsize=10.5)
    ax2.bar(x, 100 * ranks["stake_share"].to_numpy(dtype=float), color=GREY, alpha=0.8,
            label="share of voting power (mean, when in the fleet)")
    ax2.bar(x, 100 * ranks["stake_down"].to_numpy(dtype=float), color=BLUE, alpha=0.8,
            width=0.5, label="down during the stall (mean over stalled replications)")
    ax2.set_xticks(x, ranks["label"].tolist(), fontsize=8.5, rotation=30)
    ax2.set_xlabel("validator stake rank [0 = largest]")
    ax2.set_ylabel("share of the chain's voting power [%]")
    ax2.grid(axis="y", alpha=0.3)
    ax2.legend(fontsize=8.5)
    ax2.set_title("Voting power by rank (over the stalled replications)", fontsize=10.5)
    return fig, [ax1, ax2]


__all__ = [
    "RANK_HEADER",
    "STALL_COLUMNS",
    "TOP_RANKS",
    "StallFacts",
    "consensus_json",
    "lead_sentences",
    "rank_rows",
    "stall_duration_figure",
    "stall_facts",
    "stall_validators_figure",
    "validators_in_longest_stall",
]
