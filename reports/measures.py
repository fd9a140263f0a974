"""Every blast-radius measure, defined once: name, section, unit, definition, CI method.

``MEASURES`` is the single source of truth for the report tables, the terminal summary,
the sweep, the figures' error bars, the CI regression check (``worse``: which direction
is a regression) and the measure list in ``docs/reports.md`` (``measures_markdown()``; a
test keeps the doc in sync). Each measure has exactly one interval method, used by every
output (``releasesim.reports.estimates``):

- ``event``: a replication-level yes/no (activated, halted, forgery approved, consensus
  stalled): the share of replications, Wilson score interval over them;
- ``fraction``: a fleet fraction averaged over replications: the mean, a Student t
  interval over the replication values, widened to at least the Wilson interval of all
  node-trials pooled (so it cannot collapse to zero width because every replication saw
  the same value, and is never as wide as if each replication were one coin toss);
- ``stake``: a share of the chain's voting power averaged over replications: the mean, a
  Student t interval over the replication values, widened to at least the Wilson interval
  with the validators' Kish effective number pooled over replications (``(sum s)^2 / sum
  s^2`` per replication): one whale validator is not worth as many trials as its node;
- ``km``: a time the horizon can cut off: the Kaplan-Meier median over replications
  (``releasesim.reports.survival``), censored at the horizon, "never" when the replication ended
  with the event impossible; it can read "> horizon";
- ``median``: a time defined only when something happened (``given``): the median of
  those replications, percentile bootstrap interval;
- ``mean``: a count or duration per replication: the mean, Student t interval. A measure
  with ``lower_bound_when`` (the stall durations) names the 0/1 measure marking the
  replications where its value is only a lower bound (still stalled at the end of the
  run): then the interval has no finite upper bound ("> the largest such value").

A measure with ``given`` is conditional: it is defined only in the replications where
that happened (e.g. lagging nodes *given activated*), and every output says so with
``n`` of ``N``.

Stake. Validator ``i`` runs fleet node ``i`` (nodes table ``stake``, 0 for full nodes);
validators outside the fleet count as always up, never lagging and never affected, and
every share is of the chain's TOTAL voting power: fleet stake / summary ``stake_in_fleet``.

``releasesim.reports.replications.per_replication`` computes each measure's value per
replication.

Reads the result tables only (columns of ``sim.summary``/``sim.recorder``); must not import
``sim`` or ``model``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

NAN = math.nan
ONE_THIRD = 1.0 / 3.0
CENSORED_SUFFIX = "_censored_at"
RESTRICTED_SUFFIX = "_by_horizon"
FLEET_NODES = "fleet_nodes"
VALIDATORS_EFFECTIVE = "validators_effective"

SECTIONS: dict[str, str] = {
    "affected": "Affected set",
    "timing": "Timing",
    "containment": "Containment",
    "consensus": "Consensus impact (in stake)",
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
    "stake": "mean over replications; Student t 95% interval over the replication values, "
    "widened to at least the Wilson interval with the validators' Kish effective number "
    "((sum s)^2 / sum s^2 per replication) pooled over replications",
    "mean": "mean over replications; Student t 95% interval (no finite upper bound when a "
    "value is only a lower bound: still stalled at the end of the run)",
}
ESTIMATES: dict[str, str] = {
    "event": "share", "fraction": "mean", "stake": "mean", "km": "median", "median": "median",
    "mean": "mean",
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
    """``km`` measures: the event the time is measured from (``build``, ``activation`` or
    ``stall``: the first stall, summary ``stall_first_s``)."""
    lower_bound_when: str = ""
    """``mean`` measures: the 0/1 measure marking replications where the value is only a
    lower bound (``""``: always exact)."""

    @property
    def estimate(self) -> str:
        return ESTIMATES[self.method]


_NODE_STAKE: tuple[tuple[str, str, str], ...] = (
    # (fleet fraction it weighs, what the node did, given)
    ("exposed", "installed the new release at least once", ""),
    ("failed_startup", "failed to start the new release", ""),
    ("rolled_back", "rolled back at least once", ""),
    ("stuck_old", "still runs the old build at the end", ""),
    ("malicious_installed", "installed the malicious build at least once", ""),
    ("malicious_running", "runs the malicious build at the end", ""),
    ("exposure_at_halt", "had installed the new release when the rollout halted", "halted"),
    ("failed_after_halt", "failed to start after the rollout halted", "halted"),
)
"""The stake versions of the fleet fractions. Not checked by ``releasesim check`` (``worse``
empty): the fleet fraction each one weighs is, and every further check spends the suite's
false-alarm budget (``reports.regression``)."""
STAKE_FROM_NODES: tuple[str, ...] = tuple(f"{name}_stake" for name, *_ in _NODE_STAKE)
"""The stake shares ``per_replication`` computes from the nodes table (the summary has the
others: ``peak_down_stake``, ``lagging_stake``)."""

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
    # -- consensus impact (in stake) ---------------------------------------------
    Measure("consensus_stalled", "consensus", "probability",
            "Consensus stalled (a chain halt, not the rollout halt `halted`): at some "
            "instant the voting power up -- and, past an upgrade height, running the "
            "release -- was not more than `consensus.liveness_threshold` (2/3) of the "
            "chain's total, so no blocks.", "event"),
    Measure("stall_recover_s", "consensus", "s",
            "First stall -> consensus recovered for good (end of the last stall). "
            "Censored at the horizon when still stalled at the end (consensus is judged up "
            "to the horizon).", "km",
            given="consensus stalled", origin="stall"),
    Measure("stall_longest_s", "consensus", "s",
            "The longest stall, 0 without one (mean over every replication: read it with "
            "P(stall)). A lower bound when still stalled at the end (`stall_open_at_end`).",
            "mean", lower_bound_when="stall_open_at_end"),
    Measure("stall_total_s", "consensus", "s",
            "Total stalled time up to the horizon, 0 without a stall. A lower bound when "
            "still stalled at the end.", "mean", lower_bound_when="stall_open_at_end"),
    Measure("stall_open_at_end", "consensus", "probability",
            "Consensus was still stalled when the run ended (nodes still down then stay "
            "down until the horizon; the stall times are lower bounds).", "event", ""),
    Measure("peak_down_stake", "consensus", "fraction",
            "Largest share of the chain's voting power down at the same instant (recorded "
            "down intervals; validators outside the fleet count as up).", "stake"),
    Measure("down_over_third", "consensus", "probability",
            "`peak_down_stake >= 1/3`: at some instant a third of the voting power was "
            "down (with the default 2/3 threshold, consensus stalls; context only: the CI "
            "check tests `consensus_stalled`).", "event", ""),
    Measure("down_stake_s", "consensus", "s",
            "Integral over time of the share of voting power down (a third of the power "
            "down for 60 s adds 20 s).", "mean", ""),
    Measure("peak_down_fraction", "consensus", "fraction",
            "Largest fraction of the fleet's nodes down (restarting or stopped) at the "
            "same time, counting full nodes and validators alike (node count, not "
            "stake: see `peak_down_stake`).", "fraction"),
    Measure("down_node_seconds", "consensus", "node*s",
            "Total time nodes spent down (restarting or stopped), summed over nodes.",
            "mean"),
    *(Measure(f"{name}_stake", "consensus", "fraction",
              f"Share of the chain's voting power whose node {what} (nodes table `stake` "
              "over those nodes / the total: fleet stake / `stake_in_fleet`).", "stake", "",
              given)
      for name, what, given in _NODE_STAKE),
    Measure("lagging_stake", "consensus", "fraction",
            "Share of the chain's voting power whose node does not run the new release "
            "`sla_s` after activation (validators outside the fleet are not lagging; "
            "defined exactly when `lagging_fraction` is).", "stake", "",
            given="activated, sla_s observed"),
    Measure("validators_in_fleet", "consensus", "count",
            "Validators running one of the fleet's nodes; any other validator counts as "
            "always up.", "mean", ""),
    Measure("stake_in_fleet", "consensus", "fraction",
            "Share of the chain's voting power held by the validators in the fleet (below "
            "100%: the others count as always up).", "mean", ""),
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
HALT_STAKE = ("exposure_at_halt_stake", "failed_after_halt_stake")
RECORDED_STAKE: tuple[str, ...] = tuple(
    m.name for m in MEASURES if m.section == "consensus" and m.name not in STAKE_FROM_NODES
    and m.name not in ("peak_down_fraction", "down_node_seconds", "down_over_third"))
"""Summary columns of the consensus section; NaN for tables written before stake existed."""
INVARIANTS: tuple[str, ...] = tuple(m.name for m in MEASURES if m.section == "invariants")
HEADLINE: tuple[str, ...] = (
    "activated",
    "time_to_activation_s",
    "lagging_fraction",
    "adoption_p99_s",
    "consensus_stalled",
    "stall_longest_s",
    "peak_down_stake",
    "malicious_approved",
)
"""The measures every summary opens with (terminal, Markdown, HTML, JSON, sweep)."""
ORDERED: tuple[tuple[str, ...], ...] = (("adoption_p50_s", "adoption_p90_s", "adoption_p99_s"),)
"""Measures whose true values are ordered (each replication's p50 <= p90 <= p99, so their
medians are too). Censoring can break the order of the Kaplan-Meier medians of separate
levels, so ``releasesim.reports.estimates`` reports each level's estimate and bounds as the running
maximum over the lower levels (the order-restricted estimate): monotone by construction."""


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
                  "stake": "mean, t widened to Wilson with pooled Kish n_eff",
                  "km": "Kaplan-Meier median", "median": "median, bootstrap",
                  "mean": "mean, t"}[m.method]
        if m.lower_bound_when:
            method += " (no finite upper bound when a value is a lower bound)"
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
    "STAKE_FROM_NODES",
    "VALIDATORS_EFFECTIVE",
    "INVARIANTS",
    "MEASURES",
    "METHODS",
    "ORDERED",
    "Measure",
    "ONE_THIRD",
    "SECTIONS",
    "measures_markdown",
    "sync_docs",
]


if __name__ == "__main__":  # pragma: no cover - maintenance entry point
    import sys

    target = sys.argv[1] if len(sys.argv) > 1 else "docs/reports.md"
    print(f"{target}: {'updated' if sync_docs(target) else 'already in sync'}")
