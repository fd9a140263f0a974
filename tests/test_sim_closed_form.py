"""Whole-simulation quantities against closed-form answers, with stated tolerances.

Each check compares a simulated estimate with its exact expectation and allows
``Z = 4.5`` standard errors (a false failure about once in 150 000 runs per check; the
runs are seeded, so a pass is reproducible). The derivations:

(a) Signer availability is a stationary alternating renewal process with exponential
    spells, each signer starting online with probability ``a`` (memoryless, so exactly
    stationary). At the build time the number online is Binomial(n, a), so
    P(quorum_available_at_build) = P(Binomial(n, a) >= threshold), estimated over R
    independent replications: SE = sqrt(p (1 - p) / R).
(b) A node polls at ``phase + k * P`` with phase ~ Uniform(0, P) independent of the
    activation time, so (first poll after activation) - activation ~ Uniform(0, P):
    mean P/2, SE of the fleet mean P / sqrt(12 N). With fixed latency, bandwidth, hash
    speed and restart delay, no outages, no corruption, no startup failures and enough
    mirror capacity, every node runs the release exactly c = latency + transfer + hash +
    restart after it learns; the sample median of Uniform(0, P) has SE ~ P / (2 sqrt(N)).
(c) All-at-once rollout, every node boots the release once: failed startups ~
    Binomial(N, p): SE of the fraction sqrt(p (1 - p) / N).
(d) One mirror, corruption probability p: a node never gives up (a used-up round of
    1 + r attempts, r = max_retries, is followed by a new round at its next poll), so
    attempts per node A ~ Geometric(1 - p) whatever r: mean 1 / (1 - p), variance
    p / (1 - p)^2. A node uses up its first round when its first 1 + r attempts are all
    corrupt: probability p^(1 + r), so fetch_gave_up ~ Binomial(N, p^(1 + r)); and it
    runs exactly ceil(A / (1 + r)) rounds.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from releasesim.sim.api import resolve_scenario
from releasesim.sim.recorder import NODE_COLUMNS
from releasesim.sim.world import simulate_replication

Z = 4.5
COL = {name: i for i, name in enumerate(NODE_COLUMNS)}

QUIET = [
    "rollout.strategy=all_at_once",
    "mirrors.outage_rate_per_h=0.0",
    "mirrors.corruption_prob=0.0",
    "release.startup_failure_prob=0.0",
    "governance.participation=1.0",
    "governance.yes_probability=1.0",
]


def scenario(*overrides: str) -> Any:
    return resolve_scenario("baseline", list(overrides))


def column(result: Any, name: str) -> np.ndarray:
    return np.asarray(result.nodes[name], dtype=float)


def activation_time(result: Any) -> float:
    return next(row[1] for row in result.events if row[2] == "activated")


def binomial_tail(n: int, a: float, k: int) -> float:
    return sum(math.comb(n, j) * a**j * (1 - a) ** (n - j) for j in range(k, n + 1))


def test_quorum_available_at_build_is_binomial() -> None:
    n, threshold, a, reps = 7, 4, 0.6, 240
    sc = scenario(
        "fleet.nodes=1", f"signers.n={n}", f"signers.threshold={threshold}",
        f"signers.availability={a}", "signers.compromised=0", "governance.yes_probability=0.0",
    )
    hits = [bool(simulate_replication(sc, 11, r).summary["quorum_available_at_build"])
            for r in range(reps)]
    p = binomial_tail(n, a, threshold)
    se = math.sqrt(p * (1 - p) / reps)
    assert abs(np.mean(hits) - p) <= Z * se, (np.mean(hits), p, se)


def test_learning_delay_is_uniform_over_the_poll_interval() -> None:
    nodes, poll = 1500, 3600.0
    latency, bandwidth, size, speed, restart = 0.5, 100.0, 50.0, 25.0, 30.0
    sc = scenario(
        *QUIET, f"fleet.nodes={nodes}", f"fleet.poll_interval_s={poll}",
        f"mirrors.latency={latency}", f"mirrors.bandwidth_mbps={bandwidth}",
        f"mirrors.capacity={nodes}", f"release.artifact_size_mb={size}",
        f"fleet.hash_speed_mbps={speed}", f"fleet.restart_delay={restart}", f"sla_s={2 * poll}",
    )
    result = simulate_replication(sc, 5, 0)
    t_act = activation_time(result)
    learn = column(result, "learned_s") - t_act
    assert np.all((learn > 0) & (learn <= poll))
    assert abs(learn.mean() - poll / 2) <= Z * poll / math.sqrt(12 * nodes)
    c = latency + size * 8 / bandwidth + size / speed + restart
    booted = column(result, "booted_new_s")
    assert np.allclose(booted - column(result, "learned_s"), c, atol=1e-6)
    p50 = result.summary["adoption_p50_s"]
    assert abs(p50 - (c + poll / 2)) <= Z * poll / (2 * math.sqrt(nodes))
    assert result.summary["lagging_fraction"] == 0.0
    assert result.summary["adoption_p50_s"] <= result.summary["adoption_p99_s"] <= c + poll


def test_failed_startup_fraction_is_the_startup_failure_probability() -> None:
    nodes, p = 2000, 0.1
    sc = scenario(*QUIET, f"fleet.nodes={nodes}", f"release.startup_failure_prob={p}")
    summary = simulate_replication(sc, 9, 0).summary
    fraction = summary["failed_startups"] / nodes
    assert abs(fraction - p) <= Z * math.sqrt(p * (1 - p) / nodes)
    assert summary["rolled_back_fraction"] == fraction
    assert summary["exposed_fraction"] == 1.0
    assert summary["halted"] is False


@pytest.mark.parametrize("retries", [60, 1])
def test_fetch_attempts_with_corruption_are_geometric(retries: int) -> None:
    # Before: with few retries a node gave up for good after 1 + r attempts, so attempts
    # were a Geometric truncated at 1 + r (and ~p^(1 + r) of the fleet never updated).
    nodes, p = 1500, 0.3
    sc = scenario(
        *QUIET, f"fleet.nodes={nodes}", "mirrors.count=1", f"mirrors.corruption_prob={p}",
        f"fleet.max_retries={retries}", "fleet.backoff_base_s=1.0", "fleet.backoff_factor=1.0",
    )
    result = simulate_replication(sc, 4, 0)
    summary = result.summary
    se = math.sqrt(p) / (1 - p) / math.sqrt(nodes)
    assert abs(summary["mean_fetch_attempts"] - 1 / (1 - p)) <= Z * se
    assert summary["corrupt_downloads_caught"] == summary["fetch_failures"]
    q = p ** (1 + retries)
    assert abs(summary["fetch_gave_up"] / nodes - q) <= Z * math.sqrt(q * (1 - q) / nodes)
    attempts = column(result, "fetch_attempts")
    assert np.array_equal(column(result, "fetch_rounds"), np.ceil(attempts / (1 + retries)))
    assert summary["fetch_rounds_total"] == int(np.sum(column(result, "fetch_rounds")))
    assert summary["adopted_fraction"] == 1.0
    assert summary["unapproved_boots"] == 0
