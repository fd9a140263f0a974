"""Flat records of one replication: per-node outcome rows and governance event rows.

The engine appends plain tuples here (one node row per node, appended once at the end
of the replication; one event row per governance event); the runner builds DataFrames
from them after the run, never the engine. Column names are stable: reports, CI
baselines and notebooks depend on them. ``NODE_TABLE``, ``EVENT_TABLE`` and
``EVENT_KINDS`` document every column and event kind (unit and meaning);
``docs/metrics.md`` is rendered from them by ``releasesim.sim.summary.metrics_markdown`` and a test
checks that every kind the engine records is documented.

Must not import pandas, ``reports`` or anything from ``sim`` beyond the standard library.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Column:
    """One documented column of a result table (``docs/metrics.md`` is rendered from these)."""

    name: str
    unit: str
    meaning: str


NODE_TABLE: tuple[Column, ...] = (
    Column("replication", "index", "The replication (0-based); `nodes.parquet` also has "
           "its `seed` right after it."),
    Column("node", "index", "The node (0-based); its node id in the store is `node-<node>`."),
    Column("wave", "index", "The node's rollout wave for the release (0-based; all at once "
           "is wave 0); -1 if the release never activated."),
    Column("hash_speed_mbps", "MB/s", "The node's hashing throughput: verifying the "
           "artifact takes `release.artifact_size_mb / hash_speed_mbps` seconds."),
    Column("learned_s", "s", "The node's first poll strictly after the release's "
           "activation (when it learned of it). NaN if not activated."),
    Column("first_fetch_s", "s", "Start of the node's first download attempt of the "
           "release (its first poll after its wave's release). NaN if it never tried."),
    Column("fetch_attempts", "count", "Download attempts started by the node, of any "
           "build (the release, an activated malicious build)."),
    Column("fetch_rounds", "count", "Rounds of up to `1 + fleet.max_retries` attempts: a "
           "node that used up a round starts a new one at its next poll. 0 if it never "
           "fetched."),
    Column("fetch_failures", "count", "Attempts that failed: mirror down or going down "
           "mid-transfer, fetch timeout (queueing for a slot included), corrupt bytes."),
    Column("corrupt_downloads", "count", "Downloads whose corruption the real BLAKE3 check "
           "caught."),
    Column("installed_s", "s", "First install of the release through the real "
           "`install_release`. NaN if never installed."),
    Column("booted_new_s", "s", "Successful boot on the release (the real `boot_check` "
           "passed). NaN if the node never ran it."),
    Column("failed_startup", "bool", "The node's start on the release failed its boot "
           "check, so the real `rollback_failed_startup` restored the previous binary."),
    Column("rolled_back_s", "s", "First rollback of the node (any build). NaN if never."),
    Column("down_s", "s", "Total time the node was down (restarting, including the restart "
           "after a rollback; stopped at an upgrade height) up to the horizon if it was "
           "still down at the end: the sum of its `downtime.parquet` intervals."),
    Column("installed_malicious", "bool", "The node installed the adversary's build at "
           "least once."),
    Column("final_build", "label", "What the node runs at the end: `new` (the release), "
           "`old` (the previous build), `malicious` or `other`."),
    Column("stake", "weight", "The node's validator stake (its governance stake; voting "
           "power is proportional to it); 0 for a full node."),
    Column("stake_rank", "index", "The validator's rank by stake among all the chain's "
           "validators (0 = the largest; ties by validator index); -1 for a full node."),
)
"""One row per node and replication (``nodes.parquet``), built once at the end."""

EVENT_TABLE: tuple[Column, ...] = (
    Column("replication", "index", "The replication (0-based); `events.parquet` also has "
           "its `seed` right after it."),
    Column("time_s", "s", "Simulated time of the event since the start of the replication."),
    Column("kind", "label", "What happened (the kinds below)."),
    Column("detail", "text", "Free text; its meaning depends on the kind (below)."),
    Column("value", "number", "A number whose meaning depends on the kind (below); NaN "
           "when none."),
)
"""One row per governance, rollout, mirror or node event (``events.parquet``)."""

DOWNTIME_TABLE: tuple[Column, ...] = (
    Column("replication", "index", "The replication (0-based); `downtime.parquet` also has "
           "its `seed` right after it."),
    Column("node", "index", "The node that was down."),
    Column("start_s", "s", "When it went down (stopped to restart, or stopped at the upgrade "
           "height)."),
    Column("end_s", "s", "When it was up again (booted), or the horizon for a node still "
           "down at the end (`still_down`)."),
    Column("cause", "label", "`restart`: restarting into a build, and back after a "
           "rollback; `halt`: stopped at the upgrade height until it runs the release "
           "(`consensus.mode = \"halt_at_height\"`)."),
    Column("still_down", "bool", "The node was still down when the replication ended: "
           "`end_s` is the horizon, not a boot (the horizon cut the run, or nothing was "
           "left that could bring the node back)."),
)
"""One row per down interval ``[start_s, end_s)`` of a node (``downtime.parquet``), as the
engine recorded it: a node's intervals never overlap."""

EVENT_KINDS: dict[str, tuple[str, str, str]] = {
    # kind: (what happened, detail, value)
    "previous_approved": ("Setup approved the build every node runs at time 0 (one "
                          "genesis vote through the real governance flow).",
                          "its build hash", "its activation epoch (0)"),
    "build": ("The release manager produced the release (real bytes, BLAKE3 hash).",
              "the build hash", "signers of the configured set online at that moment"),
    "attestation": ("An online signer attested the release (real Ed25519 signature).",
                    "the first 16 hex digits of the signer's key", "the signer's index"),
    "proposal_refused": ("The real `propose_release` refused the release's `ReleaseVote` "
                         "(a rotation or threshold change left it short of quorum).",
                         "the error", "the submission attempt (1-based)"),
    "proposed": ("The release's `ReleaseVote` proposal was accepted and persisted.",
                 "the proposing validator", "the proposal id"),
    "vote": ("A validator's vote was recorded by the real `cast_vote`.",
             "`<validator> yes|no`", "the vote's stake weight"),
    "vote_refused": ("The real rules refused a vote (after the deadline epoch).",
                     "the error", "the proposal id"),
    "activated": ("The real `tally` at the end of the deadline epoch activated a build.",
                  "the build hash", "the yes stake weight"),
    "rejected": ("The real `tally` rejected a proposal (quorum not met, or a tie).",
                 "the build hash", "the yes stake weight"),
    "rotation": ("The oldest keys left the configured signer set and new ones joined.",
                 "`removed [..] added [..]` (signer indices)", "keys swapped"),
    "threshold_change": ("A scheduled change of the signer threshold applied.", "",
                         "the new threshold"),
    "malicious_build": ("The adversary signed its build with the compromised keys.",
                        "the malicious build hash", "attestations it holds"),
    "malicious_refused": ("The real quorum check refused the adversary's proposal.",
                          "the error", "attestations it held"),
    "malicious_proposed": ("The adversary's proposal passed the real quorum check.",
                           "the malicious build hash", "the proposal id"),
    "wave_released": ("A rollout wave was released (nodes start at their next poll).",
                      "the build hash", "the wave (0-based)"),
    "wave_skipped": ("A wave was not released because the rollout had halted.",
                     "the build hash", "the wave (0-based)"),
    "halt": ("The wave rollout halted on the failed-startup rate.",
             "the build hash", "failed / attempted starts at the halt"),
    "upgrade_height": ("halt_at_height: the chain reached the upgrade height; every node "
                       "not running the release stopped.", "the release's build hash",
                       "nodes that stopped"),
    "outage": ("A mirror outage began (a correlated one hits every mirror).",
               "`all` or `mirror <i>`", "its duration [s]"),
    "outage_at_start": ("A mirror was already down at time 0 (stationary start).",
                        "`mirror <i>`", "when it comes back [s]"),
    "fetch_refused": ("The real `fetch_release` refused a download for another reason "
                      "than a digest mismatch (e.g. the quorum check).",
                      "the error", "the node"),
    "fetch_stalled": ("A node's fetch round used no simulated time with "
                      "`fleet.poll_interval_s = 0`; the node stops rather than loop.",
                      "the build hash", "the node"),
    "install_refused": ("The real `install_release` refused an install.", "the error",
                        "the node"),
    "boot_failed_after_rollback": ("The restored build failed its boot check too.",
                                   "the reason", "the node"),
}
"""Every event kind the engine records, with the meaning of ``detail`` and ``value``."""

NODE_COLUMNS: tuple[str, ...] = tuple(c.name for c in NODE_TABLE)
EVENT_COLUMNS: tuple[str, ...] = tuple(c.name for c in EVENT_TABLE)
DOWNTIME_COLUMNS: tuple[str, ...] = tuple(c.name for c in DOWNTIME_TABLE)

NAN = math.nan


class Recorder:
    """Appends event tuples during the run and node tuples at its end."""

    __slots__ = ("replication", "events", "nodes")

    def __init__(self, replication: int) -> None:
        self.replication = replication
        self.events: list[tuple] = []
        self.nodes: list[tuple] = []

    def event(self, time_s: float, kind: str, detail: str = "", value: float = NAN) -> None:
        self.events.append((self.replication, float(time_s), kind, detail, float(value)))

    def count(self, kind: str) -> int:
        return sum(1 for e in self.events if e[2] == kind)
