"""Waves picked up at each node's next poll; fetch rounds and queue time against the timeout.

Issue 8, items 1 and 5. Statistical checks allow ``Z = 4`` standard errors (seeded, so a
pass is reproducible; a false failure about once in 16 000 runs per check). The exact
cases run a deterministic world (every delay fixed, signers always online, no outages
or corruption unless a test sets a mirror down by hand): the release activates at
``ACTIVATION = 480 s`` and each node's poll phase is set by hand, so every time below is
exact.

Uniform(0, P) facts used: mean P/2, variance P^2/12, fourth central moment P^4/80, so
the sample variance of m draws has SE sqrt((P^4/80 - P^4/144) / m) = P^2 / sqrt(180 m);
the Kolmogorov-Smirnov statistic D_m satisfies P(sqrt(m) D_m > x) <= 2 exp(-2 x^2)
(Dvoretzky-Kiefer-Wolfowitz with Massart's constant), so ``KS_X = 2.2`` is exceeded with
probability below 1.3e-4.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from releasesim.sim.api import resolve_scenario
from releasesim.sim.recorder import NODE_COLUMNS
from releasesim.sim.summary import summarise
from releasesim.sim.world import World, simulate_replication

Z = 4.0
KS_X = 2.2
COL = {name: i for i, name in enumerate(NODE_COLUMNS)}
ACTIVATION = 480.0
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
    "mirrors.count=1",
    "release.artifact_size_mb=10",
    "release.startup_failure_prob=0.0",
    "fleet.hash_speed_mbps=10",  # 1 s to verify 10 MB
    f"fleet.restart_delay={RESTART}",
    "rollout.strategy=all_at_once",
]


def exact_world(phases: list[float], *overrides: str) -> World:
    """A deterministic world whose node ``i`` polls at ``phases[i] + k * poll_interval_s``."""
    scenario = resolve_scenario("baseline", [*EXACT, f"fleet.nodes={len(phases)}", *overrides])
    world = World(scenario, 1, 0)
    world.fleet.phase[:] = phases
    return world


def node_rows(world: World) -> list[tuple]:
    """The fleet's node table as row tuples (``NODE_COLUMNS`` order), from its columns."""
    columns = world.fleet.node_columns()
    assert list(columns) == list(NODE_COLUMNS)
    return [tuple(v.item() if hasattr(v, "item") else v for v in row)
            for row in zip(*columns.values(), strict=True)]


def column(rows: list[tuple], name: str) -> list[Any]:
    return [row[COL[name]] for row in rows]


def activation_time(events: list[tuple]) -> float:
    return next(row[1] for row in events if row[2] == "activated")


# -- item 1: a wave is picked up at each node's next poll ---------------------------------
def test_first_fetch_within_a_wave_is_uniform_over_one_poll_interval() -> None:
    # Before: every node of wave k >= 1 first fetched at the wave's release instant.
    nodes, poll = 2000, 600.0
    sc = resolve_scenario("baseline", [
        f"fleet.nodes={nodes}", f"fleet.poll_interval_s={poll}", "rollout.strategy=waves",
        "release.startup_failure_prob=0.0", "signers.compromised=0",
    ])
    result = simulate_replication(sc, 17, 0)
    released = {int(row[4]): row[1] for row in result.events if row[2] == "wave_released"}
    assert sorted(released) == [0, 1, 2, 3]
    assert released[0] == activation_time(result.events)
    wave = result.nodes["wave"]
    first = np.asarray(result.nodes["first_fetch_s"], dtype=float)
    pooled = []
    for k, release_s in released.items():
        delay = (first[wave == k] - release_s) / poll  # Uniform(0, 1] in units of P
        m = len(delay)
        assert m > 0 and np.all((delay > 0) & (delay <= 1)), k
        assert abs(delay.mean() - 0.5) <= Z / math.sqrt(12 * m), (k, delay.mean())
        if m >= 100:
            assert abs(delay.var(ddof=1) - 1 / 12) <= Z / math.sqrt(180 * m), (k, delay.var())
        pooled.append(delay)
    u = np.sort(np.concatenate(pooled))
    m = len(u)
    assert m == nodes
    ranks = np.arange(1, m + 1) / m
    ks = max(np.max(ranks - u), np.max(u - (ranks - 1 / m)))
    assert math.sqrt(m) * ks <= KS_X, ks


@pytest.mark.parametrize("poll", [0.0, 60.0, 600.0])
def test_waves_never_peak_higher_than_all_at_once(poll: float) -> None:
    # Before (poll 600 s, 1000 nodes): waves 0.481 against all-at-once 0.054 of the fleet
    # down at once. Paired replications (same seed and index: common random numbers);
    # one-sided: mean(waves - all_at_once) <= Z * SE of the paired differences.
    nodes, reps = 300, 10
    common = [f"fleet.nodes={nodes}", f"fleet.poll_interval_s={poll}",
              "release.startup_failure_prob=0.0", "signers.compromised=0"]
    peaks = {}
    for strategy in ("all_at_once", "waves"):
        sc = resolve_scenario("baseline", [*common, f"rollout.strategy={strategy}"])
        peaks[strategy] = np.array(
            [simulate_replication(sc, 23, r).summary["peak_down_fraction"] for r in range(reps)]
        )
    diff = peaks["waves"] - peaks["all_at_once"]
    se = diff.std(ddof=1) / math.sqrt(reps)
    assert diff.mean() <= Z * se, (peaks["waves"].mean(), peaks["all_at_once"].mean(), se)


# -- item 5: a node that used up its retries tries again at its next poll ----------------
def test_a_node_that_used_up_its_retries_fetches_again_at_its_next_poll() -> None:
    # Poll every 1000 s at phase 100: the node learns at 1100. Round 1: attempts at 1100
    # (fails at 1100.5, the mirror is down) and, after the 10 s backoff, 1110.5 (fails at
    # 1111). The node waits for its next poll (2100): round 2, backoff restarting at 10 s:
    # 2100 (mirror still down until 2101: fails at 2100.5), 2110.5 (up: 0.5 s latency +
    # 1 s transfer, 1 s verify) -> installed 2113, booted 2213 after the restart.
    # Before: the node gave up at 1111 and stayed on the old build.
    world = exact_world(
        [100.0], "fleet.poll_interval_s=1000", "fleet.max_retries=1",
        "fleet.backoff_base_s=10", "fleet.backoff_factor=2", "mirrors.latency=0.5",
        "mirrors.bandwidth_mbps=80",
    )
    world.mirrors.mirrors[0].down_until = 2101.0
    world.run()
    summary = summarise(world)
    (row,) = node_rows(world)
    assert activation_time(world.recorder.events) == ACTIVATION
    assert row[COL["learned_s"]] == row[COL["first_fetch_s"]] == 1100.0
    assert row[COL["fetch_attempts"]] == 4
    assert row[COL["fetch_failures"]] == 3
    assert row[COL["fetch_rounds"]] == 2
    assert row[COL["installed_s"]] == 2113.0
    assert row[COL["booted_new_s"]] == 2113.0 + RESTART
    assert row[COL["final_build"]] == "new"
    assert summary["fetch_gave_up"] == 1
    assert summary["fetch_rounds_total"] == 2
    assert summary["sim_end_s"] == 2113.0 + RESTART  # busy while it waited for the poll


def test_a_round_that_takes_no_time_is_not_repeated_forever() -> None:
    # Zero latency, backoff and poll interval against a mirror down for good: every
    # attempt fails at the same instant, so a new round would never let time move on.
    world = exact_world(
        [0.0], "fleet.poll_interval_s=0", "fleet.max_retries=2", "fleet.backoff_base_s=0",
        "mirrors.latency=0",
    )
    world.mirrors.mirrors[0].down_until = math.inf
    world.run()
    summary = summarise(world)
    assert summary["fetch_attempts_total"] == 3
    assert summary["fetch_rounds_total"] == 1
    assert summary["sim_end_s"] == ACTIVATION and world.finished
    stalled = [row for row in world.recorder.events if row[2] == "fetch_stalled"]
    assert [(row[1], row[4]) for row in stalled] == [(ACTIVATION, 0.0)]


# -- item 5: queue time counts against the fetch timeout ----------------------------------
QUEUE = (
    "fleet.poll_interval_s=1000", "fleet.max_retries=0", "fleet.backoff_base_s=0",
    "fleet.fetch_timeout_s=100", "mirrors.capacity=1", "mirrors.latency=0",
    "mirrors.bandwidth_mbps=1",  # 80 Mbit: an 80 s transfer
)


@pytest.mark.parametrize("horizon", [1209.5, 1210.5, 3000.0])
def test_a_request_granted_late_fails_at_its_fetch_timeout(horizon: float) -> None:
    # One slot, 80 s transfers, 100 s timeout. Node 0 asks at 1100 and downloads until
    # 1180. Node 1 asked at 1110: served at 1180 with 30 s of its timeout left, it fails
    # at exactly 1210 and the slot goes to node 2 (asked at 1200, 90 s left: done 1290,
    # verified 1291). Node 1 tries again at its next poll, 2110 (installed 2191).
    # Before: node 1 downloaded 1180-1260 and node 2 1260-1340.
    world = exact_world([100.0, 110.0, 200.0], *QUEUE, f"horizon_s={horizon}")
    world.run()
    rows = node_rows(world)
    failures = column(rows, "fetch_failures")
    if horizon < 1210:
        assert failures == [0, 0, 0]
        return
    assert failures == [0, 1, 0]
    if horizon < 3000:
        return
    assert column(rows, "installed_s") == [1181.0, 2191.0, 1291.0]
    assert column(rows, "fetch_attempts") == [1, 2, 1]
    assert column(rows, "fetch_rounds") == [1, 2, 1]
    assert column(rows, "final_build") == ["new", "new", "new"]
    mirror = world.mirrors.mirrors[0]
    assert mirror.in_use == 0 and not mirror.waiting


def test_a_request_still_queued_at_its_timeout_leaves_the_queue() -> None:
    # Nodes 0-2 ask at 1100 together, node 3 at 1190. The first served downloads
    # 1100-1180; the second is served at 1180 with 20 s left and fails at 1200; the third,
    # still queued at 1200, is withdrawn then (its timeout), so the slot freed at 1200
    # goes to node 3 (90 s left: done 1280, verified 1281), not to the withdrawn request.
    # At the next poll (2100) the two that failed ask together again: one is done at 2180,
    # the other fails at 2200 and gets through at 3100 (done 3180).
    # Before: served one after the other, node 3 last (1340-1420).
    world = exact_world([100.0, 100.0, 100.0, 190.0], *QUEUE)
    world.run()
    rows = node_rows(world)
    installed = column(rows, "installed_s")
    assert installed[3] == 1281.0
    assert sorted(installed[:3]) == [1181.0, 2181.0, 3181.0]
    assert sorted(column(rows, "fetch_rounds")[:3]) == [1, 2, 3]
    assert column(rows, "fetch_attempts") == column(rows, "fetch_rounds")  # 1 per round
    mirror = world.mirrors.mirrors[0]
    assert mirror.in_use == 0 and all(request.triggered for request in mirror.waiting)
    assert summarise(world)["sim_end_s"] == 3181.0 + RESTART


# -- item 5 on lagging_release: no node is left behind idle --------------------------------
def test_lagging_release_strands_no_node_idle_on_the_old_build() -> None:
    # Before: a node that used up its retries stayed on the old build for good, idle, and
    # the replication could end before the horizon with those nodes stranded. Now such a
    # node tries again at its next poll: at the end, a node still on the old build is one
    # still working on the release (busy: retrying, queued or waiting for its next poll)
    # when the horizon stops the run, and every node that used up a round and finished
    # runs the release.
    nodes, reps = 300, 3
    sc = resolve_scenario("lagging_release", [f"fleet.nodes={nodes}"])
    used_up = 0
    for replication in range(reps):
        world = World(sc, sc.seed, replication)
        world.run()
        summary = summarise(world)
        fleet = world.fleet
        assert summary["activated"]
        finals = fleet.final_builds()
        old = [i for i, build in enumerate(finals) if build == "old"]
        assert all(fleet.busy[i] for i in old)
        if old:
            assert summary["sim_end_s"] == sc.horizon_s and not world.finished
        gave_up = fleet.gave_up_nodes()
        assert summary["fetch_gave_up"] == len(gave_up)
        assert all(finals[i] == "new" for i in gave_up if not fleet.busy[i])
        # a second round only after a used-up one; a used-up round is followed by another
        # unless the horizon came first (the node is then still waiting, busy)
        rounds = np.array(fleet.fetch_rounds)
        assert set(np.flatnonzero(rounds >= 2).tolist()) <= gave_up
        assert all(rounds[i] >= 2 or fleet.busy[i] for i in gave_up)
        used_up += len(gave_up)
    assert used_up > 0  # the case is exercised: nodes that the old rule left behind


# --------------------------------------------------------------------------- the halt


def test_nodes_that_poll_after_the_halt_do_not_start() -> None:
    """A halted rollout stops the nodes of released waves that had not started yet."""
    scenario = resolve_scenario("bad_release_rollback", [
        "fleet.nodes=400", "rollout.waves=[0.5, 1.0]", "rollout.halt_min_attempts=5",
        "fleet.poll_interval_s=600"])
    halted = 0
    for replication in range(6):
        world = World(scenario, 3, replication)
        world.run()
        new = world.rollout.by_kind("new")
        if new is None or not new.halted:
            continue
        halted += 1
        first = world.fleet.first_fetch_s
        started = first[~np.isnan(first)]
        assert np.all(started <= new.halt_s), (replication, started.max(), new.halt_s)
        # wave 0 was released: some of its members polled after the halt and stayed put
        wave0 = world.fleet.wave == 0
        assert np.isnan(first[wave0]).any()
    assert halted >= 4  # the scenario's bad build halts nearly every time


def test_the_boot_invariant_counts_a_boot_before_the_tally_closed() -> None:
    """``unapproved_boots`` dates an approval at the end of its activation epoch."""
    world = exact_world([10.0])
    world.run()
    fleet = world.fleet
    assert fleet.unapproved_boots() == 0
    release = world.release.build_hash
    approved = world.store.get_approved(release)
    tally_s = (approved.activated_epoch + 1) * world.epoch_s
    assert tally_s == ACTIVATION
    code = fleet.hash_codes.setdefault(release, len(fleet.hash_codes))
    fleet.boot_times.append(tally_s)  # at the tally: approved
    fleet.boot_codes.append(code)
    assert fleet.unapproved_boots() == 0
    fleet.boot_times.append(tally_s - 1.0)  # one second before: not yet approved
    fleet.boot_codes.append(code)
    assert fleet.unapproved_boots() == 1
