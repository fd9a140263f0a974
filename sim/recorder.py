"""Flat records of one replication: per-node outcome rows and governance event rows.

The engine appends plain tuples here (one node row per node, appended once at the end
of the replication; one event row per governance event); the runner builds DataFrames
from them after the run, never the engine. Column names are stable: reports, CI
baselines and notebooks depend on them.

Must not import pandas, ``reports`` or anything from ``sim`` beyond the standard library.
"""

from __future__ import annotations

import math

NODE_COLUMNS: tuple[str, ...] = (
    "replication",
    "node",
    "wave",
    "hash_speed_mbps",
    "learned_s",
    "first_fetch_s",
    "fetch_attempts",
    "fetch_failures",
    "corrupt_downloads",
    "installed_s",
    "booted_new_s",
    "failed_startup",
    "rolled_back_s",
    "down_s",
    "installed_malicious",
    "final_build",
)
"""One row per node. Times are simulated seconds since the start of the replication
(NaN when it never happened); ``wave`` is the node's rollout wave (0-based);
``final_build`` is ``new``, ``old`` or ``malicious`` (what the node runs at the end)."""

EVENT_COLUMNS: tuple[str, ...] = ("replication", "time_s", "kind", "detail", "value")
"""One row per governance or rollout event: ``kind`` (e.g. ``build``, ``attestation``,
``proposal_refused``, ``proposed``, ``vote``, ``vote_refused``, ``activated``,
``rejected``, ``rotation``, ``threshold_change``, ``wave_released``, ``halt``,
``malicious_build``), a free-text ``detail`` and a numeric ``value`` (NaN when none)."""

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
