"""Review of the simulation engine: exact small cases and one closed-form check per fix.

Most cases run a fully deterministic world (every delay fixed, signers always online, no
outages or corruption unless a test sets a mirror down by hand), so the expected numbers
are exact. With the ``EXACT`` knobs: the build is at 0, the seven signers attest at 120 s,
the submission is at 150 s (epoch 2), the deadline epoch is 7 and the tally closing it
activates at its end (480 s; activated_epoch 7). A node learns at once
(``poll_interval_s = 0``) and needs
``FETCH = 0.5 s latency + 10 MB * 8 / 80 Mbit/s + 10 MB / 10 MB/s = 2.5 s`` to download
and verify, then restarts for ``RESTART = 100 s``.

The one statistical case (the mirrors' stationary start) allows ``Z = 4.5`` standard
errors of a binomial proportion (a false failure about once in 150 000 runs; seeded, so a
pass is reproducible).
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from releasesim.sim.api import resolve_scenario
from releasesim.sim.recorder import NODE_COLUMNS
from releasesim.sim.summary import summarise
from releasesim.sim.world import World, simulate_replication

Z = 4.5
COL = {name: i for i, name in enumerate(NODE_COLUMNS)}
ACTIVATION = 480.0
FETCH = 2.5
RESTART = 100.0

EXACT = [
    "signers.availability=1.0",
    "signers.signing_delay=120",
    "governance.submit_delay=30",
    "governance.vote_period_epochs=5",
    "governance.vote_delay=1",
    "governance.participation=1.0",
    "governance.yes_probability=1.0",
    "mirrors.outage_rate_per_h=0.0",
    "mirrors.corruption_prob=0.0",
    "mirrors.latency=0.5",
    "mirrors.bandwidth_mbps=80",
    "mirrors.capacity=1000",
    "release.artifact_size_mb=10",
    "release.startup_failure_prob=0.0",
    "fleet.hash_speed_mbps=10",
    "fleet.poll_interval_s=0",
    f"fleet.restart_delay={RESTART}",
    "fleet.backoff_base_s=0",
    "rollout.strategy=all_at_once",
]


def exact(*overrides: str, nodes: int = 20) -> Any:
    return resolve_scenario("baseline", [*EXACT, f"fleet.nodes={nodes}", *overrides])


def activation_time(events: list[tuple]) -> float:
    return next(row[1] for row in events if row[2] == "activated")


def run_world(world: World) -> dict[str, Any]:
    world.run()
    return summarise(world)


def test_the_exact_world_activates_when_expected() -> None:
    result = simulate_replication(exact(), 1, 0)
    assert activation_time(result.events) == ACTIVATION
    booted = set(result.nodes["booted_new_s"].tolist())
    assert booted == {ACTIVATION + FETCH + RESTART}


# -- lagging_fraction when the horizon comes before activation + sla_s ---------------------
def test_lagging_fraction_is_nan_when_the_horizon_censors_it() -> None:
    # Before: every node still restarting at the horizon counted as lagging (1.0), an
    # answer the run cannot know: they boot 582.5 s, well within sla_s = 3600 s.
    horizon = ACTIVATION + FETCH + 40.0
    summary = simulate_replication(exact(f"horizon_s={horizon}"), 1, 0).summary
    assert summary["sim_end_s"] == horizon
    assert math.isnan(summary["lagging_fraction"])


def test_lagging_fraction_is_known_when_the_rollout_finished_before_the_sla() -> None:
    summary = simulate_replication(exact(), 1, 0).summary
    assert summary["sim_end_s"] == ACTIVATION + FETCH + RESTART < ACTIVATION + 3600.0
    assert summary["lagging_fraction"] == 0.0
    assert summary["adopted_fraction"] == 1.0


# -- down time: censored restarts and the rollback restart -----------------------------------
def test_nodes_restarting_at_the_horizon_count_as_down_until_it() -> None:
    # Before: the open down intervals were dropped (0 node-seconds, peak 0) and the nodes
    # counted as running the release although none had booted it.
    nodes, cut = 20, 40.0
    result = simulate_replication(
        exact(f"horizon_s={ACTIVATION + FETCH + cut}", nodes=nodes), 1, 0
    )
    summary = result.summary
    assert summary["down_node_seconds"] == pytest.approx(nodes * cut)
    assert summary["peak_down_fraction"] == 1.0
    assert summary["adopted_fraction"] == 0.0
    assert summary["exposed_fraction"] == 1.0
    assert all(down == pytest.approx(cut) for down in result.nodes["down_s"].tolist())


def test_down_time_includes_the_restart_after_a_rollback() -> None:
    nodes = 20
    summary = simulate_replication(
        exact("release.startup_failure_prob=1.0", nodes=nodes), 1, 0
    ).summary
    assert summary["failed_startups"] == nodes
    assert summary["rolled_back_fraction"] == 1.0
    assert summary["down_node_seconds"] == pytest.approx(nodes * 2 * RESTART)
    assert summary["peak_down_fraction"] == 1.0
    assert summary["adopted_fraction"] == 0.0
    assert summary["lagging_fraction"] == 1.0


# -- fetch timeout, retries and failover -----------------------------------------------------
def test_a_down_mirror_fails_the_attempt_at_the_fetch_timeout_at_the_latest() -> None:
    # Before: an attempt against a down mirror took the whole latency (50 s) although the
    # node's fetch timeout is 10 s, so three attempts ended at 630 s instead of 510 s.
    # A round is 1 + max_retries = 3 attempts (480-490, 490-500, 500-510); the node then
    # starts a new round at its next poll (at once: poll_interval_s = 0), whose first
    # attempt (510-520) is still running at the horizon (515 s).
    world = World(
        exact("mirrors.count=1", "mirrors.latency=50", "fleet.fetch_timeout_s=10",
              "fleet.max_retries=2", f"horizon_s={ACTIVATION + 35.0}", nodes=1),
        1, 0,
    )
    world.mirrors.mirrors[0].down_until = math.inf
    summary = run_world(world)
    assert summary["sim_end_s"] == ACTIVATION + 35.0
    assert summary["fetch_attempts_total"] == 4  # a round of 1 + max_retries, then one more
    assert summary["fetch_failures"] == 3
    assert summary["fetch_gave_up"] == 1
    assert summary["fetch_rounds_total"] == 2
    assert summary["mean_fetch_attempts"] == 4.0
    assert world.mirrors.mirrors[0].in_use == 1 and not world.mirrors.mirrors[0].waiting


@pytest.mark.parametrize(("start", "attempts"), [(0, 3), (1, 2), (2, 1)])
def test_failover_moves_to_the_next_mirror(start: int, attempts: int) -> None:
    world = World(exact("mirrors.count=3", "fleet.max_retries=5", nodes=1), 1, 0)
    world.mirrors.mirrors[0].down_until = math.inf
    world.mirrors.mirrors[1].down_until = math.inf
    world.fleet.start_mirror[0] = start
    summary = run_world(world)
    assert summary["fetch_attempts_total"] == attempts
    assert summary["fetch_failures"] == attempts - 1
    assert summary["adopted_fraction"] == 1.0
    assert all(m.in_use == 0 and not m.waiting for m in world.mirrors.mirrors)


# -- the adversary's build stays out of the release's fetch metrics --------------------------
COMPROMISED = ("signers.compromised=7", "adversary.attack_at_s=0")


def test_mean_fetch_attempts_counts_the_release_only() -> None:
    # Both builds activate (the malicious one at 360 s, the release at 480 s) and every
    # node fetches each once. Before: mean_fetch_attempts was 2.0 (both builds' attempts
    # over the nodes that fetched anything).
    nodes = 20
    summary = simulate_replication(exact(*COMPROMISED, nodes=nodes), 1, 0).summary
    assert summary["malicious_approved"] and summary["activated"]
    assert summary["malicious_installed_fraction"] == 1.0
    assert summary["exposed_fraction"] == 1.0
    assert summary["fetch_attempts_total"] == 2 * nodes
    assert summary["mean_fetch_attempts"] == 1.0


def test_fetch_gave_up_counts_each_node_once() -> None:
    # Every mirror is down for good: each node uses up rounds on the malicious build and
    # then on the release. Before: 2 per node. Every node polls at 50 + 100 k s: it learns
    # of the malicious build at 450 s (round 450-451, two 0.5 s attempts), of the release
    # at 550 s, the poll at which it would retry the malicious build, so it takes up the
    # release there (rounds 550-551 and 650-651; the next poll, 750 s, is past the horizon).
    nodes, horizon = 20, 700.0
    world = World(
        exact(*COMPROMISED, "fleet.max_retries=1", "fleet.poll_interval_s=100",
              f"horizon_s={horizon}", nodes=nodes),
        1, 0,
    )
    world.fleet.phase[:] = 50.0
    for mirror in world.mirrors.mirrors:
        mirror.down_until = math.inf
    summary = run_world(world)
    rows = list(zip(*world.fleet.node_columns().values(), strict=True))
    assert summary["fetch_gave_up"] == nodes
    assert summary["fetch_attempts_total"] == nodes * (2 + 2 * 2)
    assert summary["fetch_rounds_total"] == nodes * (1 + 2)
    assert summary["mean_fetch_attempts"] == 4.0
    assert summary["sim_end_s"] == horizon  # the nodes wait for their next poll
    assert {row[COL["first_fetch_s"]] for row in rows} == {550.0}
    assert {row[COL["fetch_rounds"]] for row in rows} == {3}


# -- the mirrors' outage process starts stationary -------------------------------------------
def test_a_mirror_is_down_at_time_zero_with_its_stationary_probability() -> None:
    # Outage starts hit mirror 0 as a Poisson process of rate r_eff = r (1 - c + c M)
    # (its own outages plus the correlated ones of every mirror), durations Exponential(D).
    # The number of outages covering a fixed instant is Poisson(r_eff D), so the mirror is
    # down with probability 1 - exp(-r_eff D) at every instant, time 0 included.
    # Before: every mirror started up (probability 0 at time 0).
    r_per_h, c, count, mean_d, reps = 1.0, 0.5, 3, 900.0, 800
    sc = resolve_scenario("baseline", [
        "fleet.nodes=1", f"mirrors.count={count}", f"mirrors.outage_rate_per_h={r_per_h}",
        f"mirrors.correlated_outage_prob={c}",
        f'mirrors.outage_duration={{dist = "exponential", mean = {mean_d}}}',
        "horizon_s=86400",
    ])
    down = 0
    for replication in range(reps):
        world = World(sc, 21, replication)
        world.mirrors.start()
        down += world.mirrors.mirrors[0].down_until > 0.0
    r_eff = r_per_h / 3600.0 * (1 - c + c * count)
    p = 1.0 - math.exp(-r_eff * mean_d)
    se = math.sqrt(p * (1 - p) / reps)
    assert abs(down / reps - p) <= Z * se, (down / reps, p, se)
