"""Every blast-radius measure, defined once: name, section, unit, definition, CI method.

``MEASURES`` is the single source of truth for the report tables, the figures' error
bars, the CI regression check (``worse``: which direction is a regression) and the
measure list in ``docs/reports.md`` (``measures_markdown()``; a test keeps the doc in
sync).

``per_replication(summary, nodes, events)`` computes one value per measure and
replication (NaN where a measure is undefined, e.g. a time that never happened);
``measure_table(values)`` turns that into estimate, 95% CI, ``n`` (replications where the
measure is defined) and ``N`` (replications in the run).

Reads the result tables only (columns of ``sim.summary``/``sim.recorder``); must not import
``sim`` or ``model``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from reports.intervals import bootstrap, t_interval, wilson

NAN = math.nan
ONE_THIRD = 1.0 / 3.0

SECTIONS: dict[str, str] = {
    "affected": "Affected set",
    "timing": "Timing",
    "containment": "Containment",
    "consensus": "Consensus impact",
    "governance": "Governance",
    "invariants": "Invariants",
}

METHODS: dict[str, str] = {
    "wilson": "Wilson score interval; for a fleet fraction, p = mean over replications and "
    "n = replications (conservative: a value in [0, 1] has variance at most p(1-p))",
    "bootstrap": "percentile bootstrap of the median over replications (2000 resamples, "
    "fixed seed)",
    "t": "Student t-interval on the mean over replications",
}


@dataclass(frozen=True, slots=True)
class Measure:
    """One measure of the report. ``estimate`` is ``mean`` (wilson, t) or ``median``."""

    name: str
    section: str
    unit: str
    definition: str
    method: str
    worse: str = "higher"
    """``higher``/``lower``: the direction the CI check treats as a regression; ``""``: not
    checked (context only)."""

    @property
    def estimate(self) -> str:
        return "median" if self.method == "bootstrap" else "mean"


MEASURES: tuple[Measure, ...] = (
    # -- affected set ---------------------------------------------------------------
    Measure("exposed_fraction", "affected", "fraction",
            "Nodes that installed the new release at least once.", "wilson", ""),
    Measure("lagging_fraction", "affected", "fraction",
            "Nodes not running the new release `sla_s` after activation (NaN if not "
            "activated).", "wilson"),
    Measure("failed_startup_fraction", "affected", "fraction",
            "Nodes whose start on the new release failed (nodes table `failed_startup`).",
            "wilson"),
    Measure("rolled_back_fraction", "affected", "fraction",
            "Nodes that rolled back at least once.", "wilson"),
    Measure("stuck_old_fraction", "affected", "fraction",
            "Nodes still running the old build at the end (nodes table `final_build == "
            "\"old\"`).", "wilson"),
    Measure("malicious_installed_fraction", "affected", "fraction",
            "Nodes that installed the malicious build at least once (ran something "
            "unapproved by the honest signers).", "wilson"),
    Measure("malicious_running_fraction", "affected", "fraction",
            "Nodes running the malicious build at the end (`final_build == "
            "\"malicious\"`).", "wilson"),
    # -- timing ---------------------------------------------------------------------
    Measure("time_to_quorum_s", "timing", "s",
            "Build -> attestations of the configured signer set reach the threshold.",
            "bootstrap"),
    Measure("time_to_activation_s", "timing", "s",
            "Build -> activation of the release by the governance tally.", "bootstrap"),
    Measure("adoption_p50_s", "timing", "s",
            "Activation -> 50% of the fleet running the release.", "bootstrap"),
    Measure("adoption_p90_s", "timing", "s",
            "Activation -> 90% of the fleet running the release.", "bootstrap"),
    Measure("adoption_p99_s", "timing", "s",
            "Activation -> 99% of the fleet running the release.", "bootstrap"),
    Measure("halt_time_s", "timing", "s",
            "Activation -> the rollout halt (NaN when it did not halt).", "bootstrap", ""),
    Measure("time_to_recover_s", "timing", "s",
            "Activation -> the last node whose start failed is back up on the restored "
            "build (nodes table: max of `installed_s + down_s` over failed startups; NaN "
            "when no start failed).", "bootstrap"),
    # -- containment ----------------------------------------------------------------
    Measure("halted", "containment", "probability",
            "The wave rollout halted on the failed-startup rate.", "wilson", ""),
    Measure("exposure_at_halt_fraction", "containment", "fraction",
            "Nodes that had installed the new release when the halt fired (NaN when it "
            "did not halt): the peak exposure the halt allowed.", "wilson"),
    Measure("failed_after_halt_fraction", "containment", "fraction",
            "Nodes whose failed start came after the halt (already in flight; NaN when "
            "it did not halt).", "wilson"),
    # -- consensus impact -----------------------------------------------------------
    Measure("peak_down_fraction", "consensus", "fraction",
            "Largest fraction of the fleet down (restarting) at the same time. Nodes "
            "carry no stake, so this is also the share of voting power (one node, one "
            "vote).", "wilson"),
    Measure("down_over_third", "consensus", "probability",
            "`peak_down_fraction >= 1/3`: at some instant a third of the fleet was down "
            "(BFT consensus stalls).", "wilson"),
    Measure("down_node_seconds", "consensus", "node*s",
            "Total time nodes spent down (restarting), summed over nodes.", "t"),
    # -- governance -----------------------------------------------------------------
    Measure("activated", "governance", "probability",
            "The release was activated by the governance tally.", "wilson", "lower"),
    Measure("quorum_available_at_build", "governance", "probability",
            "At least `threshold` configured signers were online at build time.",
            "wilson", "lower"),
    Measure("proposal_attempts", "governance", "count",
            "Submissions of the release's proposal (refused plus accepted).", "t"),
    Measure("release_quorum_fail_total", "governance", "count",
            "Submissions refused for lack of quorum (release manager and adversary).",
            "t", ""),
    Measure("release_votes_total", "governance", "count",
            "Votes cast during the replication.", "t", ""),
    Measure("malicious_proposed", "governance", "probability",
            "The adversary's proposal passed the real quorum check.", "wilson"),
    Measure("malicious_approved", "governance", "probability",
            "The adversary's build was activated by the real tally (the forgery "
            "succeeded).", "wilson"),
    # -- invariants -----------------------------------------------------------------
    Measure("unapproved_boots", "invariants", "count",
            "Must be 0: boots of a binary not approved at that moment.", "t"),
    Measure("install_time_violations", "invariants", "count",
            "Must be 0: install times going backwards or differing from the simulation.",
            "t"),
    Measure("rejected_installs_counted", "invariants", "count",
            "Must be 0: counted installs minus successful installs.", "t"),
)

BY_NAME: dict[str, Measure] = {m.name: m for m in MEASURES}
INVARIANTS: tuple[str, ...] = tuple(m.name for m in MEASURES if m.section == "invariants")

TABLE_COLUMNS = ("measure", "section", "unit", "estimate", "value", "ci_low", "ci_high",
                 "n", "N", "method")


# --------------------------------------------------------------------------- helpers


def activation_times(summary: pd.DataFrame, events: pd.DataFrame) -> pd.Series:
    """Absolute activation time (s since replication start) per replication, NaN if none.

    The release's ``build`` event time plus ``time_to_activation_s`` (build -> activation).
    """
    reps = summary["replication"].to_numpy()
    build = pd.Series(NAN, index=reps, dtype=float)
    if len(events):
        builds = events[events["kind"] == "build"].groupby("replication")["time_s"].min()
        build = build.fillna(builds.reindex(reps))
    act = summary.set_index("replication")["time_to_activation_s"].astype(float)
    return build + act.reindex(reps)


def halt_times(summary: pd.DataFrame, events: pd.DataFrame) -> pd.Series:
    """Absolute halt time per replication (activation + ``halt_time_s``), NaN if none."""
    reps = summary["replication"].to_numpy()
    halt = summary.set_index("replication")["halt_time_s"].astype(float).reindex(reps)
    return activation_times(summary, events) + halt


def _node_groups(nodes: pd.DataFrame, reps: np.ndarray) -> dict[int, pd.DataFrame]:
    groups = {int(r): g for r, g in nodes.groupby("replication", sort=True)}
    empty = nodes.iloc[0:0]
    return {int(r): groups.get(int(r), empty) for r in reps}


def _bool_column(summary: pd.DataFrame, name: str) -> pd.Series:
    """A boolean summary column as float (1.0 / 0.0, NaN where undefined)."""
    column = summary[name]
    if column.dtype == object:
        column = column.map(lambda v: NAN if v is None else float(bool(v)))
    return column.astype(float)


# --------------------------------------------------------------------------- tables


def per_replication(
    summary: pd.DataFrame, nodes: pd.DataFrame, events: pd.DataFrame
) -> pd.DataFrame:
    """One row per replication, one column per measure (NaN where undefined)."""
    reps = summary["replication"].to_numpy()
    out = pd.DataFrame(index=pd.Index(reps, name="replication"))
    s = summary.set_index("replication")
    for m in MEASURES:
        if m.name in s.columns:
            if m.unit == "probability":
                out[m.name] = _bool_column(s, m.name).to_numpy()
            else:
                out[m.name] = s[m.name].astype(float).to_numpy()
    act = activation_times(summary, events).reindex(reps).to_numpy()
    halt = halt_times(summary, events).reindex(reps).to_numpy()
    groups = _node_groups(nodes, reps)
    derived: dict[str, list[float]] = {
        k: [] for k in ("failed_startup_fraction", "stuck_old_fraction",
                        "malicious_running_fraction", "time_to_recover_s",
                        "exposure_at_halt_fraction", "failed_after_halt_fraction")
    }
    for i, rep in enumerate(reps):
        g = groups[int(rep)]
        n = len(g)
        if n == 0:
            for values in derived.values():
                values.append(NAN)
            continue
        failed = g["failed_startup"].astype(bool).to_numpy()
        final = g["final_build"].astype(str).to_numpy()
        installed = g["installed_s"].to_numpy(dtype=float)
        rolled = g["rolled_back_s"].to_numpy(dtype=float)
        derived["failed_startup_fraction"].append(float(failed.mean()))
        derived["stuck_old_fraction"].append(float(np.mean(final == "old")))
        derived["malicious_running_fraction"].append(float(np.mean(final == "malicious")))
        if failed.any() and math.isfinite(act[i]):
            back = installed[failed] + g["down_s"].to_numpy(dtype=float)[failed]
            derived["time_to_recover_s"].append(float(np.nanmax(back)) - act[i])
        else:
            derived["time_to_recover_s"].append(NAN)
        if math.isfinite(halt[i]):
            derived["exposure_at_halt_fraction"].append(float(np.mean(installed <= halt[i])))
            late = failed & (rolled > halt[i])
            derived["failed_after_halt_fraction"].append(float(np.mean(late)))
        else:
            derived["exposure_at_halt_fraction"].append(NAN)
            derived["failed_after_halt_fraction"].append(NAN)
    for name, values in derived.items():
        out[name] = values
    if "peak_down_fraction" in out.columns:
        peak = out["peak_down_fraction"]
        out["down_over_third"] = np.where(peak.isna(), NAN, (peak >= ONE_THIRD - 1e-12) * 1.0)
    return out[[m.name for m in MEASURES if m.name in out.columns]]


def interval(measure: Measure, values: np.ndarray) -> tuple[float, float, float, int]:
    """``(estimate, low, high, n)`` of one measure's per-replication values."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if measure.method == "wilson":
        if n == 0:
            return NAN, NAN, NAN, 0
        p, low, high = wilson(float(np.sum(x)), n)
        return p, low, high, n
    if measure.method == "bootstrap":
        return bootstrap(x)
    return t_interval(x)


def measure_table(values: pd.DataFrame, names: list[str] | None = None) -> pd.DataFrame:
    """Estimate, 95% CI, ``n`` and ``N`` of each measure (columns ``TABLE_COLUMNS``)."""
    rows = []
    total = len(values)
    for m in MEASURES:
        if m.name not in values.columns or (names is not None and m.name not in names):
            continue
        est, low, high, n = interval(m, values[m.name].to_numpy())
        rows.append((m.name, m.section, m.unit, m.estimate, est, low, high, n, total, m.method))
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def measures_markdown() -> str:
    """The measure list of ``docs/reports.md`` (between the generated-section markers)."""
    lines = [
        "| measure | section | unit | definition | estimate and 95% CI | regression if |",
        "|---|---|---|---|---|---|",
    ]
    for m in MEASURES:
        worse = {"higher": "higher", "lower": "lower", "": "not checked"}[m.worse]
        method = {"wilson": "mean, Wilson", "bootstrap": "median, bootstrap",
                  "t": "mean, t"}[m.method]
        lines.append(
            f"| `{m.name}` | {SECTIONS[m.section]} | {m.unit} | {m.definition} | {method} "
            f"| {worse} |"
        )
    return "\n".join(lines) + "\n"


__all__ = [
    "BY_NAME",
    "INVARIANTS",
    "MEASURES",
    "METHODS",
    "Measure",
    "ONE_THIRD",
    "SECTIONS",
    "activation_times",
    "halt_times",
    "interval",
    "measure_table",
    "measures_markdown",
    "per_replication",
]


BEGIN_MARK = "<!-- measures:begin (generated by `python -m reports.measures`; do not edit) -->"
END_MARK = "<!-- measures:end -->"


def sync_docs(path: str) -> bool:
    """Rewrite the generated measure list in ``path``; True when the file changed."""
    from pathlib import Path

    doc = Path(path)
    text = doc.read_text(encoding="utf-8")
    start, end = text.index(BEGIN_MARK) + len(BEGIN_MARK), text.index(END_MARK)
    new = text[:start] + "\n" + measures_markdown() + text[end:]
    if new != text:
        doc.write_text(new, encoding="utf-8")
    return new != text


if __name__ == "__main__":  # pragma: no cover - maintenance entry point
    import sys

    target = sys.argv[1] if len(sys.argv) > 1 else "docs/reports.md"
    print(f"{target}: {'updated' if sync_docs(target) else 'already in sync'}")
