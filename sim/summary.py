"""Per-replication summary metrics: the stable column table and how each is computed.

``METRICS`` is the single source of truth: name, unit and meaning of every summary
column, in order. ``SUMMARY_COLUMNS`` is derived from it, and ``metrics_markdown()``
renders ``docs/metrics.md`` from it (a test keeps the file in sync).
``summarise(world)`` turns a finished World into one row (a dict). Times that never
happen are NaN, never 0.

Imports ``numpy`` and ``model`` only at run time through the World it is given; must not
import pandas or ``reports``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from releasesim.sim.consensus_summary import CONSENSUS_METRICS, consensus_row
from releasesim.sim.recorder import (
    DOWNTIME_TABLE,
    EVENT_KINDS,
    EVENT_TABLE,
    NODE_TABLE,
    Column,
)

if TYPE_CHECKING:
    from releasesim.sim.world import World

NAN = math.nan


Metric = Column
"""A summary column: name, unit and meaning (the same record as the node and event columns)."""


METRICS: tuple[Metric, ...] = (
    Metric(
        "activated",
        "bool",
        "The release built by the release manager was activated by the governance tally.",
    ),
    Metric(
        "quorum_available_at_build",
        "bool",
        "At least `threshold` signers of the configured set were online when the build "
        "was produced.",
    ),
    Metric(
        "time_to_quorum_s",
        "s",
        "Build -> the moment the valid attestations of the configured set reached the "
        "threshold for the accepted proposal. NaN if never.",
    ),
    Metric(
        "time_to_proposal_s",
        "s",
        "Build -> the accepted `ReleaseVote` proposal (quorum plus submit delay, plus "
        "refused attempts). NaN if never.",
    ),
    Metric(
        "time_to_activation_s",
        "s",
        "Build -> activation by the tally. NaN if the release was never activated.",
    ),
    Metric(
        "proposal_attempts",
        "count",
        "Submissions of the release's `ReleaseVote` (refused ones plus the accepted one).",
    ),
    Metric(
        "release_quorum_fail_total",
        "count",
        "Store counter: submissions refused for lack of quorum during the replication "
        "(release manager and adversary).",
    ),
    Metric(
        "release_votes_total",
        "count",
        "Store counter: votes cast during the replication (all choices, on every "
        "proposal, an adversary's included; the setup of the previous build is excluded).",
    ),
    Metric(
        "release_installs_total",
        "count",
        "Store counter: successful installs of approved builds during the replication "
        "(the release and an activated malicious build).",
    ),
    Metric(
        "adoption_p50_s",
        "s",
        "Activation -> 50% of the fleet running the release. NaN if never reached.",
    ),
    Metric(
        "adoption_p90_s",
        "s",
        "Activation -> 90% of the fleet running the release. NaN if never reached.",
    ),
    Metric(
        "adoption_p99_s",
        "s",
        "Activation -> 99% of the fleet running the release. NaN if never reached.",
    ),
    Metric(
        "adopted_fraction",
        "fraction",
        "Nodes running the release (installed and booted) when the replication ends. "
        "NaN if not activated.",
    ),
    Metric(
        "lagging_fraction",
        "fraction",
        "Nodes not running the release `sla_s` after activation. NaN if not activated, "
        "or if the horizon stopped the replication before activation + `sla_s` with the "
        "rollout still going on (the answer is not known).",
    ),
    Metric(
        "failed_startups",
        "count",
        "Nodes whose start on the new build failed (each then rolled back).",
    ),
    Metric("rolled_back_fraction", "fraction", "Nodes that rolled back at least once."),
    Metric("exposed_fraction", "fraction", "Nodes that installed the new build at least once."),
    Metric(
        "peak_down_fraction",
        "fraction",
        "Largest fraction of the fleet down (restarting) at the same time; a node still "
        "restarting at the end of the replication counts as down until then.",
    ),
    Metric(
        "down_node_seconds",
        "node*s",
        "Total time nodes spent down (restarting, including the restart after a "
        "rollback), summed over nodes, up to the end of the replication.",
    ),
    Metric("halted", "bool", "The wave rollout halted on the failed-startup rate."),
    Metric("halt_time_s", "s", "Activation -> the halt. NaN if the rollout did not halt."),
    Metric("waves_released", "count", "Rollout waves released (all-at-once counts as one)."),
    Metric("fetch_attempts_total", "count", "Download attempts by the whole fleet."),
    Metric(
        "fetch_failures",
        "count",
        "Download attempts that failed (outage, timeout, corrupt artifact).",
    ),
    Metric(
        "corrupt_downloads_caught",
        "count",
        "Downloads whose corruption the real BLAKE3 check caught.",
    ),
    Metric(
        "fetch_gave_up",
        "count",
        "Nodes that used up a round of `1 + fleet.max_retries` download attempts without "
        "a verified artifact (of any build) at least once, each counted once; such a node "
        "tries again in a new round at its next poll.",
    ),
    Metric(
        "fetch_rounds_total",
        "count",
        "Rounds of download attempts started by the whole fleet: one per build a node "
        "started fetching, plus one per new round a node started at its next poll after "
        "using up its retries.",
    ),
    Metric(
        "mean_fetch_attempts",
        "count",
        "Mean download attempts at the release per node that started fetching it (a node "
        "still trying when the replication ends counts the attempts it started); "
        "fetches of a malicious build are left out. NaN if none.",
    ),
    Metric("mirror_outages", "count", "Outages (a correlated outage counts once)."),
    Metric("signer_rotations", "count", "Membership rotations of the signer set."),
    Metric(
        "keys_held",
        "count",
        "Signer keys of the initial set the adversary holds in this replication "
        "(`signers.compromised`, the compromise model's draw, or `adversary.keys_held`).",
    ),
    Metric(
        "malicious_proposed",
        "bool",
        "The adversary's proposal passed the real quorum check and was persisted.",
    ),
    Metric("malicious_approved", "bool", "The adversary's build was activated by the real tally."),
    Metric(
        "malicious_installed_fraction",
        "fraction",
        "Nodes that installed the malicious build at least once.",
    ),
    Metric(
        "unapproved_boots",
        "count",
        "Invariant, must be 0: successful boots of a binary whose hash was not approved "
        "in the store at that moment.",
    ),
    Metric(
        "install_time_violations",
        "count",
        "Invariant, must be 0: recorded install times of a release going backwards, or "
        "differing from the simulated install time.",
    ),
    Metric(
        "rejected_installs_counted",
        "count",
        "Invariant, must be 0: `release_installs_total` minus the installs that "
        "succeeded.",
    ),
    Metric(
        "sim_processes",
        "count",
        "Processes started in the replication, node updates (`NodeTask`s) included: the "
        "process count of the benchmark's bare-SimPy floor.",
    ),
    Metric(
        "sim_timeouts",
        "count",
        "Modelled waits in the replication (each download, backoff, hashing, restart, "
        "queued download request's fetch timeout, ...), whether or not the engine gives "
        "each its own event: the timeout count of the benchmark's bare-SimPy floor.",
    ),
    Metric(
        "sim_end_s",
        "s",
        "Simulated time at which the replication ended (all activity done, or the "
        "horizon).",
    ),
    Metric(
        "horizon_s",
        "s",
        "The scenario's horizon: the longest a replication runs (times from an origin "
        "are censored at `horizon_s` minus the origin).",
    ),
    Metric(
        "horizon_cut",
        "bool",
        "The horizon stopped the replication with work still going on (a proposal "
        "open, a rollout or a node still updating). When False, an event that did not "
        "happen never would have (e.g. a rejected release never activates); when True, it "
        "is censored at the horizon.",
    ),
    *CONSENSUS_METRICS,
)

SUMMARY_COLUMNS: tuple[str, ...] = tuple(m.name for m in METRICS)
INVARIANTS: tuple[str, ...] = (
    "unapproved_boots",
    "install_time_violations",
    "rejected_installs_counted",
)


def metrics_markdown() -> str:
    """``docs/metrics.md``: every column of the summary, node and event tables, and every
    event kind, with unit and meaning (from ``METRICS`` and ``releasesim.sim.recorder``)."""
    lines = [
        "# Result tables",
        "",
        "<!-- Generated from sim/summary.py (METRICS) and sim/recorder.py (NODE_TABLE,",
        "EVENT_TABLE, EVENT_KINDS); do not edit by hand: python3 tasks.py docs -->",
        "",
        "A run directory holds four tables (Parquet; the summary also as CSV). Times are",
        "simulated seconds since the start of the replication; a time that never happens is",
        "NaN, never 0.",
        "",
        "## Summary metrics: `summary.parquet`, `summary.csv`",
        "",
        "One row per replication, plus the `replication` and `seed` columns. The three",
        "invariants must be 0 in every replication.",
        "",
        "| column | unit | meaning |",
        "|---|---|---|",
    ]
    lines += [f"| `{m.name}` | {m.unit} | {m.meaning} |" for m in METRICS]
    lines += ["", "## Nodes: `nodes.parquet`", "",
              "One row per node and replication, written once at the end of the replication.",
              "", "| column | unit | meaning |", "|---|---|---|"]
    lines += [f"| `{c.name}` | {c.unit} | {c.meaning} |" for c in NODE_TABLE]
    lines += ["", "## Events: `events.parquet`", "",
              "One row per event, in time order within a replication.", "",
              "| column | unit | meaning |", "|---|---|---|"]
    lines += [f"| `{c.name}` | {c.unit} | {c.meaning} |" for c in EVENT_TABLE]
    lines += ["", "### Event kinds", "", "| kind | what happened | `detail` | `value` |",
              "|---|---|---|---|"]
    lines += [f"| `{kind}` | {what} | {detail or '(empty)'} | {value} |"
              for kind, (what, detail, value) in EVENT_KINDS.items()]
    lines += ["", "## Down intervals: `downtime.parquet`", "",
              "One row per interval a node was down, as the engine recorded it (a node's",
              "intervals never overlap); what the consensus metrics are computed from.", "",
              "| column | unit | meaning |", "|---|---|---|"]
    lines += [f"| `{c.name}` | {c.unit} | {c.meaning} |" for c in DOWNTIME_TABLE]
    lines.append("")
    return "\n".join(lines)


def quantile_time(delays: np.ndarray, fraction: float, total: int) -> float:
    """Smallest delay by which ``fraction`` of ``total`` nodes are done; NaN if never."""
    needed = max(1, math.ceil(fraction * total - 1e-9))
    if total == 0 or len(delays) < needed:
        return NAN
    return float(np.partition(delays, needed - 1)[needed - 1])


def peak_concurrent(starts: np.ndarray, ends: np.ndarray) -> int:
    """Largest number of intervals ``[start, end)`` open at one instant."""
    if len(starts) == 0:
        return 0
    times = np.concatenate([starts, ends])
    steps = np.concatenate([np.ones(len(starts)), -np.ones(len(ends))])
    order = np.lexsort((steps, times))  # at equal times, ends (-1) before starts
    return int(np.max(np.cumsum(steps[order])))


def _fraction(count: float, total: int) -> float:
    return float(count) / total if total > 0 else NAN


def summarise(world: World) -> dict[str, float | int | bool]:
    """One summary row for a finished World (keys: ``SUMMARY_COLUMNS``)."""
    fleet = world.fleet
    release = world.release
    adversary = world.adversary
    n = fleet.n
    new = world.rollout.by_kind("new")
    malicious = world.rollout.by_kind("malicious")
    activated = new is not None
    build_s = release.build_s

    def since_build(t: float) -> float:
        return t - build_s if not math.isnan(t) else NAN

    row: dict[str, float | int | bool] = {
        "activated": activated,
        "quorum_available_at_build": bool(release.quorum_available_at_build)
        if release.quorum_available_at_build is not None
        else NAN,
        "time_to_quorum_s": since_build(release.quorum_s) if release.proposed else NAN,
        "time_to_proposal_s": since_build(release.proposal_s),
        "time_to_activation_s": since_build(release.activation_s),
        "proposal_attempts": int(release.attempts),
        "release_quorum_fail_total": world.counter_delta("release_quorum_fail_total"),
        "release_votes_total": world.counter_delta("release_votes_total"),
        "release_installs_total": world.counter_delta("release_installs_total"),
    }
    if activated:
        t_act = new.activation_s
        booted = fleet.booted_new_s
        delays = booted[~np.isnan(booted)] - t_act
        row["adoption_p50_s"] = quantile_time(delays, 0.50, n)
        row["adoption_p90_s"] = quantile_time(delays, 0.90, n)
        row["adoption_p99_s"] = quantile_time(delays, 0.99, n)
        finals = fleet.final_builds()
        # running = installed *and* booted: a node still restarting when the horizon cuts
        # the run has the release installed but runs nothing yet
        running = int(np.count_nonzero((finals == "new") & ~np.isnan(booted)))
        row["adopted_fraction"] = _fraction(running, n)
        sla = float(world.scenario.sla_s)
        lagging_defined = not (world.end_s < t_act + sla and not world.finished)
        if not lagging_defined:
            row["lagging_fraction"] = NAN  # censored: the run stopped before activation + sla
        else:
            on_time = int(np.count_nonzero(booted <= t_act + sla))
            row["lagging_fraction"] = _fraction(n - on_time, n)
        row["halt_time_s"] = new.halt_s - t_act if new.halted else NAN
    else:
        finals, lagging_defined = None, False
        for name in ("adoption_p50_s", "adoption_p90_s", "adoption_p99_s", "adopted_fraction",
                     "lagging_fraction", "halt_time_s"):
            row[name] = NAN
    row["failed_startups"] = int(np.count_nonzero(fleet.failed_startup))
    row["rolled_back_fraction"] = _fraction(np.count_nonzero(~np.isnan(fleet.rolled_back_s)), n)
    row["exposed_fraction"] = _fraction(np.count_nonzero(~np.isnan(fleet.installed_s)), n)
    starts = np.array(fleet.down_starts, dtype=float)
    ends = np.array(fleet.down_ends, dtype=float)
    row["peak_down_fraction"] = _fraction(peak_concurrent(starts, ends), n)
    row["down_node_seconds"] = float(np.sum(ends - starts)) if len(starts) else 0.0
    row["halted"] = bool(new.halted) if new is not None else False
    row["waves_released"] = int(new.waves_released) if new is not None else 0
    row["fetch_attempts_total"] = int(np.sum(fleet.fetch_attempts))
    row["fetch_failures"] = int(np.sum(fleet.fetch_failures))
    row["corrupt_downloads_caught"] = int(np.sum(fleet.corrupt))
    row["fetch_gave_up"] = fleet.gave_up.count(1)
    row["fetch_rounds_total"] = int(np.sum(fleet.fetch_rounds))
    tried = fleet.release_fetch_nodes  # the release only: a malicious build's fetches differ
    row["mean_fetch_attempts"] = fleet.release_fetch_attempts / tried if tried else NAN
    row["mirror_outages"] = int(world.mirrors.outages)
    row["signer_rotations"] = int(world.signers.rotations)
    row["keys_held"] = len(world.signers.compromised)
    row["malicious_proposed"] = bool(adversary.proposed)
    row["malicious_approved"] = malicious is not None
    row["malicious_installed_fraction"] = _fraction(
        np.count_nonzero(fleet.installed_malicious), n
    )
    row["unapproved_boots"] = fleet.unapproved_boots()
    row["install_time_violations"] = (
        int(fleet.install_time_violations) + fleet.release_store.time_mismatches
        + world.store.backwards_installs()
    )
    row["rejected_installs_counted"] = int(row["release_installs_total"]) - int(fleet.installs_ok)
    row["sim_processes"] = int(world.n_processes)
    row["sim_timeouts"] = int(world.n_timeouts)
    row["sim_end_s"] = float(world.end_s)
    row["horizon_s"] = float(world.horizon_s)
    row["horizon_cut"] = not world.finished
    row.update(consensus_row(world, lagging_defined, finals))
    return {name: row[name] for name in SUMMARY_COLUMNS}


if __name__ == "__main__":  # pragma: no cover - maintenance entry point
    from pathlib import Path

    target = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"
    target.write_text(metrics_markdown(), encoding="utf-8")
    print(f"{target}: written")
