"""The resolved scenario's sections: one frozen dataclass per TOML table.

``releasesim.sim.knobs`` builds ``Scenario`` from these (its knob table lists every field,
with its default, range and meaning); the actors read their settings from them. Fields are
exactly the knobs of their section, in the knob table's order.

Imports the standard library and ``sim.distributions`` only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from releasesim.sim.distributions import Distribution


@dataclass(frozen=True, slots=True)
class ThresholdChange:
    """One entry of ``signers.threshold_schedule``: from ``at_s`` on, the threshold is ..."""

    at_s: float
    threshold: int


@dataclass(frozen=True, slots=True)
class CompromiseGroup:
    """One entry of ``signers.compromise_groups``: with probability ``prob`` all ``keys`` fall."""

    keys: tuple[int, ...]
    prob: float


@dataclass(frozen=True, slots=True)
class Signers:
    n: int
    threshold: int
    availability: float
    mean_offline_s: float
    signing_delay: Distribution
    rotation_interval_s: float
    rotation_count: int
    threshold_schedule: tuple[ThresholdChange, ...]
    compromised: int
    compromise_prob: float
    compromise_probs: tuple[float, ...]
    compromise_groups: tuple[CompromiseGroup, ...]

    @property
    def mean_online_s(self) -> float:
        """Mean online spell, derived: ``mean_offline_s * a / (1 - a)`` (inf when a = 1)."""
        a = self.availability
        return math.inf if a >= 1.0 else self.mean_offline_s * a / (1.0 - a)


@dataclass(frozen=True, slots=True)
class Governance:
    vote_period_epochs: int
    vote_quorum: float
    validators: int
    stake: Distribution
    participation: float
    yes_probability: float
    vote_delay: Distribution
    submit_delay: Distribution
    stakes: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Release:
    artifact_size_mb: float
    build_at_s: float
    bad_release: bool
    startup_failure_prob: float


@dataclass(frozen=True, slots=True)
class Adversary:
    attack_at_s: float
    keys_held: int


@dataclass(frozen=True, slots=True)
class Mirrors:
    count: int
    latency: Distribution
    bandwidth_mbps: Distribution
    capacity: int
    outage_rate_per_h: float
    outage_duration: Distribution
    correlated_outage_prob: float
    corruption_prob: float


@dataclass(frozen=True, slots=True)
class Fleet:
    nodes: int
    poll_interval_s: float
    fetch_timeout_s: float
    max_retries: int
    backoff_base_s: float
    backoff_factor: float
    hash_speed_mbps: Distribution
    restart_delay: Distribution
    validators: int


@dataclass(frozen=True, slots=True)
class Rollout:
    strategy: str
    waves: tuple[float, ...]
    wave_interval_s: float
    halt_failure_rate: float
    halt_min_attempts: int




@dataclass(frozen=True, slots=True)
class Consensus:
    mode: str
    liveness_threshold: float
    upgrade_after_epochs: int
    prefetch_fraction: float
    operator_response: Distribution


__all__ = [
    "Adversary",
    "CompromiseGroup",
    "Consensus",
    "Fleet",
    "Governance",
    "Mirrors",
    "Release",
    "Rollout",
    "Signers",
    "ThresholdChange",
]
