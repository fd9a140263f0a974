"""Every blast-radius measure, defined once: name, section, unit, definition, CI method.

``MEASURES`` is the single source of truth for the report tables, the terminal summary,
the sweep, the figures' error bars, the CI regression check (``worse``: which direction
is a regression) and the measure list in ``docs/reports.md`` (``measures_markdown()``; a
test keeps the doc in sync). Each measure has exactly one interval method, used by every
output (``releasesim.reports.estimates``):

- ``event``: a replication-level yes/no (activated, halted, forgery approved, a third
  of the fleet down): the share of replications, Wilson score interval over them;
- ``fraction``: a fleet fraction averaged over replications: the mean, a Student t
  interval over the replication values, widened to at least the Wilson interval of all
  node-trials pooled (so it cannot collapse to zero width because every replication saw
  the same value, and is never as wide as if each replication were one coin toss);
- ``km``: a time the horizon can cut off: the Kaplan-Meier median over replications
  (``releasesim.reports.survival``), censored at the horizon, "never" when the replication ended
  with the event impossible; it can read "> horizon";
- ``median``: a time defined only when something happened (``given``): the median of
  those replications, percentile bootstrap interval;
- ``mean``: a count per replication: the mean, Student t interval.

A measure with ``given`` is conditional: it is defined only in the replications where
that happened (e.g. lagging nodes *given activated*), and every output says so with
``n`` of ``N``.

``per_replication(summary, nodes, events)`` computes one value per measure and
replication (NaN where a measure is undefined), plus, for the ``km`` measures, the
censoring time of each replication where the event was not seen (``<name>_censored_at``:
``horizon - origin`` when the horizon cut the run, ``inf`` when the run ended with the
event impossible) and the time restricted to the horizon (``<name>_by_horizon``: the time
if seen, else ``horizon - origin``, "not by the horizon"; what the CI check compares),
and the fleet size (``fleet_nodes``) for pooled node-trials.

Reads the result tables only (columns of ``sim.summary``/``sim.recorder``); must not import
``sim`` or ``model``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

NAN = math.nan
ONE_THIRD = 1.0 / 3.0
CENSORED_SUFFIX = "_censored_at"
RESTRICTED_SUFFIX = "_by_horizon"
FLEET_NODES = "fleet_nodes"

SECTIONS: dict[str, str] = {
    "affected": "Affected set",
    "timing": "Timing",
    "containment": "Containment",
    "consensus": "Consensus impact",
    "governance": "Governance",
    "invariants": "Invariants",
}

METHODS: dict[str, str] = {
    "event": "share of replications; Wilson score 95% interval over replications",
    "fraction": "mean over replications; Student t 95% interval over the replication "
    "values, widened to at least the Wilson interval of all node-trials pooled",
    "km": "Kaplan-Meier median over replications (censored at the horizon; never when "
    "the event became impossible); 95% interval from the log-log Greenwood band",
    "median": "median over the replications where it is defined; percentile bootstrap "
    "95% interval (2000 resamples, fixed seed)",
    "mean": "mean over replications; Student t 95% interval",
}
ESTIMATES: dict[str, str] = {
    "event": "share", "fraction": "mean", "km": "median", "median": "median", "mean": "mean",
}


@dataclass(frozen=True, slots=True)
class Measure:
    """One measure of the report, with its one interval method (``METHODS``)."""

    name: str
    section: str
    unit: str
    definition: str
    method: str
    worse: str = "higher"
    """``higher``/``lower``: the direction the CI check treats as a regression; ``""``: not
    checked (context only)."""
    given: str = ""
    """The condition under which the measure is defined (``""``: every replication)."""
    origin: str = ""
    """``km`` measures: the event the time is measured from (``build`` or ``activation``)."""

    @property
    def estimate(self) -> str:
        return ESTIMATES[self.method]


MEASURES: tuple[Measure, ...] = (
    # -- affected set ---------------------------------------------------------------
    Measure("exposed_fraction", "affected", "fraction",
            "Nodes that installed the new release at least once.", "fraction", ""),
    Measure("lagging_fraction", "affected", "fraction",
            "Nodes not running the new release `sla_s` after activation (defined when "
            "it activated and the run reached activation + `sla_s`, or finished).",
            "fraction", given="activated, sla_s observed"),
    Measure("failed_startup_fraction", "affected", "fraction",
            "Nodes whose start on the new release failed (nodes table `failed_startup`).",
            "fraction"),
    Measure("rolled_back_fraction", "affected", "fraction",
            "Nodes that rolled back at least once.", "fraction"),
    Measure("stuck_old_fraction", "affected", "fraction",
            "Nodes still running the old build at the end (nodes table `final_build == "
            "\"old\"`).", "fraction"),
    Measure("malicious_installed_fraction", "affected", "fraction",
            "Nodes that installed the malicious build at least once (ran something "
            "unapproved by the honest signers).", "fraction"),
    Measure("malicious_running_fraction", "affected", "fraction",
            "Nodes running the malicious build at the end (`final_build == "
            "\"malicious\"`).", "fraction"),
    # -- timing ---------------------------------------------------------------------
    Measure("time_to_quorum_s", "timing", "s",
            "Build -> attestations of the configured signer set reach the threshold.",
            "km", origin="build"),
    Measure("time_to_activation_s", "timing", "s",
            "Build -> activation of the release by the governance tally (never when the "
            "vote rejected it).", "km", origin="build"),
    Measure("adoption_p50_s", "timing", "s",
            "Activation -> 50% of the fleet running the release.", "km",
            given="activated", origin="activation"),
    Measure("adoption_p90_s", "timing", "s",
            "Activation -> 90% of the fleet running the release.", "km",
            given="activated", origin="activation"),
    Measure("adoption_p99_s", "timing", "s",
            "Activation -> 99% of the fleet running the release.", "km",
            given="activated", origin="activation"),
    Measure("halt_time_s", "timing", "s",
            "Activation -> the rollout halt.", "median", "", given="halted"),
    Measure("time_to_recover_s", "timing", "s",
            "Activation -> the last node whose start failed is back up on the restored "
            "build (nodes table: max of `installed_s + down_s` over failed startups).",
            "median", given="a start failed"),
    # -- containment ----------------------------------------------------------------
    Measure("halted", "containment", "probability",
            "The wave rollout halted on the failed-startup rate.", "event", ""),
    Measure("exposure_at_halt_fraction", "containment", "fraction",
            "Nodes that had installed the new release when the halt fired: the peak "
            "exposure the halt allowed.", "fraction", given="halted"),
    Measure("failed_after_halt_fraction", "containment", "fraction",
            "Nodes whose failed start came after the halt (already in flight).",
            "fraction", given="halted"),
    # -- consensus impact -----------------------------------------------------------
    Measure("peak_down_fraction", "consensus", "fraction",
            "Largest fraction of the fleet down (restarting) at the same time. Nodes "
            "carry no stake, so this is also the share of voting power (one node, one "
            "vote).", "fraction"),
    Measure("down_over_third", "consensus", "probability",
            "`peak_down_fraction >= 1/3`: at some instant a third of the fleet was down "
            "(BFT consensus stalls).", "event"),
    Measure("down_node_seconds", "consensus", "node*s",
            "Total time nodes spent down (restarting), summed over nodes.", "mean"),
    # -- governance -----------------------------------------------------------------
    Measure("activated", "governance", "probability",
            "The release was activated by the governance tally within the horizon.",
            "event", "lower"),
    Measure("quorum_available_at_build", "governance", "probability",
            "At least `threshold` configured signers were online at build time.",
            "event", "lower"),
    Measure("proposal_attempts", "governance", "count",
            "Submissions of the release's proposal (refused plus accepted).", "mean"),
    Measure("release_quorum_fail_total", "governance", "count",
            "Submissions refused for lack of quorum (release manager and adversary).",
            "mean", ""),
    Measure("release_votes_total", "governance", "count",
            "Votes cast during the replication.", "mean", ""),
    Measure("malicious_proposed", "governance", "probability",
            "The adversary's proposal passed the real quorum check.", "event"),
    Measure("malicious_approved", "governance", "probability",
            "The adversary's build was activated by the real tally (the forgery "
            "succeeded).", "event"),
    # -- invariants -----------------------------------------------------------------
    Measure("unapproved_boots", "invariants", "count",
            "Must be 0: boots of a binary not approved at that moment.", "mean"),
    Measure("install_time_violations", "invariants", "count",
            "Must be 0: install times going backwards or differing from the simulation.",
            "mean"),
    Measure("rejected_installs_counted", "invariants", "count",
            "Must be 0: counted installs minus successful installs.", "mean"),
)

BY_NAME: dict[str, Measure] = {m.name: m for m in MEASURES}
INVARIANTS: tuple[str, ...] = tuple(m.name for m in MEASURES if m.section == "invariants")
HEADLINE: tuple[str, ...] = (
    "activated",
    "time_to_activation_s",
    "lagging_fraction",
    "adoption_p99_s",
    "peak_down_fraction",
    "down_over_third",
    "malicious_approved",
)
"""The measures every summary opens with (terminal, Markdown, HTML, JSON, sweep)."""
ORDERED: tuple[tuple[str, ...], ...] = (("adoption_p50_s", "adoption_p90_s", "adoption_p99_s"),)
"""Measures whose true values are ordered (each replication's p50 <= p90 <= p99, so their
medians are too). Censoring can break the order of the Kaplan-Meier medians of separate
levels, so ``releasesim.reports.estimates`` reports each level's estimate and bounds as the running
maximum over the lower levels (the order-restricted estimate): monotone by construction."""


# --------------------------------------------------------------------------- helpers


def activation_times(summary: pd.DataFrame, events: pd.DataFrame) -> pd.Series:
    """Absolute activation time (s since replication start) per replication, NaN if none.

    The release's ``build`` event time plus ``time_to_activation_s`` (build -> activation).
    """
    return build_times(summary, events) + summary.set_index("replication")[
        "time_to_activation_s"
    ].astype(float).reindex(summary["replication"].to_numpy())


def build_times(summary: pd.DataFrame, events: pd.DataFrame) -> pd.Series:
    """Absolute time of the release's build per replication (NaN if it never happened)."""
    reps = summary["replication"].to_numpy()
    build = pd.Series(NAN, index=reps, dtype=float)
    if len(events):
        builds = events[events["kind"] == "build"].groupby("replication")["time_s"].min()
        build = build.fillna(builds.reindex(reps))
    return build


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


def _horizon_cut(summary: pd.DataFrame) -> np.ndarray:
    """Per replication: did the horizon stop work still going on?

    Tables written before the ``horizon_cut`` column existed: assume it did (a missing
    event is then censored at the run's end, never taken as impossible).
    """
    if "horizon_cut" in summary.columns:
        return _bool_column(summary, "horizon_cut").fillna(1.0).to_numpy() > 0.5
    return np.ones(len(summary), dtype=bool)


# --------------------------------------------------------------------------- tables


def per_replication(
    summary: pd.DataFrame, nodes: pd.DataFrame, events: pd.DataFrame
) -> pd.DataFrame:
    """One row per replication, one column per measure (NaN where undefined).

    Also ``<name>_censored_at`` for each ``km`` measure (module docstring) and
    ``fleet_nodes`` (nodes in the replication).
    """
    reps = summary["replication"].to_numpy()
    out = pd.DataFrame(index=pd.Index(reps, name="replication"))
    s = summary.set_index("replication")
    for m in MEASURES:
        if m.name in s.columns:
            if m.unit == "probability":
                out[m.name] = _bool_column(s, m.name).to_numpy()
            else:
                out[m.name] = s[m.name].astype(float).to_numpy()
    build = build_times(summary, events).reindex(reps).to_numpy()
    act = activation_times(summary, events).reindex(reps).to_numpy()
    halt = halt_times(summary, events).reindex(reps).to_numpy()
    groups = _node_groups(nodes, reps)
    derived: dict[str, list[float]] = {
        k: [] for k in ("failed_startup_fraction", "stuck_old_fraction",
                        "malicious_running_fraction", "time_to_recover_s",
                        "exposure_at_halt_fraction", "failed_after_halt_fraction",
                        FLEET_NODES)
    }
    for i, rep in enumerate(reps):
        g = groups[int(rep)]
        n = len(g)
        derived[FLEET_NODES].append(float(n) if n else NAN)
        if n == 0:
            for name, values in derived.items():
                if name != FLEET_NODES:
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
    ordered = [m.name for m in MEASURES if m.name in out.columns]
    censor = _censoring(summary, out, build, act)
    return pd.concat([out[ordered], censor, out[[FLEET_NODES]]], axis=1)


def _censoring(
    summary: pd.DataFrame, out: pd.DataFrame, build: np.ndarray, act: np.ndarray
) -> pd.DataFrame:
    """``<name>_censored_at`` of each ``km`` measure (NaN where observed or undefined)."""
    cut = _horizon_cut(summary)
    end = (summary["sim_end_s"].to_numpy(dtype=float) if "sim_end_s" in summary.columns
           else np.full(len(summary), np.inf))
    # tables from before the horizon_s column: the longest run is the best guess
    horizon = (summary["horizon_s"].to_numpy(dtype=float) if "horizon_s" in summary.columns
               else np.full(len(summary), np.nanmax(end) if len(end) else np.inf))
    activated = (out["activated"].to_numpy() == 1.0 if "activated" in out.columns
                 else np.isfinite(act))
    columns: dict[str, np.ndarray] = {}
    for m in MEASURES:
        if m.method != "km" or m.name not in out.columns:
            continue
        seen = np.isfinite(out[m.name].to_numpy(dtype=float))
        if m.origin == "activation":
            origin, defined = act, activated
        else:
            # no build yet: the horizon came before it (censored at 0)
            origin, defined = np.where(np.isfinite(build), build, end), np.ones(len(end), bool)
        at = np.where(cut, np.maximum(end - origin, 0.0), np.inf)
        columns[m.name + CENSORED_SUFFIX] = np.where(seen | ~defined, NAN, at)
        window = np.maximum(horizon - origin, 0.0)
        restricted = np.where(seen, out[m.name].to_numpy(dtype=float), window)
        columns[m.name + RESTRICTED_SUFFIX] = np.where(defined, restricted, NAN)
    return pd.DataFrame(columns, index=out.index)


def durations(values: pd.DataFrame, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(durations, observed)`` of a ``km`` measure: event time, else its censoring time."""
    seen = values[name].to_numpy(dtype=float)
    censor_column = name + CENSORED_SUFFIX
    censored = (values[censor_column].to_numpy(dtype=float) if censor_column in values.columns
                else np.full(len(seen), NAN))
    observed = np.isfinite(seen)
    return np.where(observed, seen, censored), observed


def measures_markdown() -> str:
    """The measure list of ``docs/reports.md`` (between the generated-section markers)."""
    lines = [
        "| measure | section | unit | definition | defined | estimate and 95% CI "
        "| regression if |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in MEASURES:
        worse = {"higher": "higher", "lower": "lower", "": "not checked"}[m.worse]
        method = {"event": "share, Wilson", "fraction": "mean, t widened to pooled Wilson",
                  "km": "Kaplan-Meier median", "median": "median, bootstrap",
                  "mean": "mean, t"}[m.method]
        defined = f"given {m.given}" if m.given else "every replication"
        lines.append(
            f"| `{m.name}` | {SECTIONS[m.section]} | {m.unit} | {m.definition} | {defined} "
            f"| {method} | {worse} |"
        )
    return "\n".join(lines) + "\n"


BEGIN_MARK = "<!-- measures:begin (generated by `python3 tasks.py docs`; do not edit) -->"
END_MARK = "<!-- measures:end -->"


def sync_docs(path: str) -> bool:
    """Rewrite the generated measure list in ``path``; True when the file changed."""
    doc = Path(path)
    text = doc.read_text(encoding="utf-8")
    start, end = text.index(BEGIN_MARK) + len(BEGIN_MARK), text.index(END_MARK)
    new = text[:start] + "\n" + measures_markdown() + text[end:]
    if new != text:
        doc.write_text(new, encoding="utf-8")
    return new != text


__all__ = [
    "BY_NAME",
    "CENSORED_SUFFIX",
    "RESTRICTED_SUFFIX",
    "FLEET_NODES",
    "HEADLINE",
    "INVARIANTS",
    "MEASURES",
    "METHODS",
    "ORDERED",
    "Measure",
    "ONE_THIRD",
    "SECTIONS",
    "activation_times",
    "build_times",
    "durations",
    "halt_times",
    "measures_markdown",
    "per_replication",
    "sync_docs",
]


if __name__ == "__main__":  # pragma: no cover - maintenance entry point
    import sys

    target = sys.argv[1] if len(sys.argv) > 1 else "docs/reports.md"
    print(f"{target}: {'updated' if sync_docs(target) else 'already in sync'}")
