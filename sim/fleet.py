"""The fleet: N nodes that fetch, verify, install, restart and boot-check releases.

Nodes are kept small (parallel numpy arrays plus one ``MemorySlot`` per node that holds
references to shared ``bytes``, made at the node's first install: until then the node runs
the shared previous build; no per-node dicts or history). A node's update is one
``NodeTask`` (``releasesim.sim.node_task``: a SimPy process without a ``Timeout`` object per
wait, events in the same order), started by the rollout dispatcher at the node's first
poll after its wave was released (``releasesim.sim.rollout``):

1. download in rounds of up to ``1 + fleet.max_retries`` attempts, backoff
   ``backoff_base_s * backoff_factor**(j - 1)`` after the ``j``-th failed attempt of a
   round (not after its last) and failover to the next mirror after every failed attempt
   (round-robin from a random start mirror per node). ``fleet.fetch_timeout_s`` runs
   from the moment an attempt asks its mirror for a download slot: a request still
   queued at the timeout leaves the queue and fails then. A node that used up a round
   waits, busy, for its next poll (``phase + k * fleet.poll_interval_s``, strictly
   after) and starts a new round (backoff restarting, mirror rotation carrying on): it
   never gives up while the replication runs. With ``poll_interval_s = 0`` the new round
   starts at once, except after a round in which no simulated time passed: the node
   then stops (event ``fetch_stalled``), so one instant cannot repeat forever. Rounds
   are counted per node (``fetch_rounds``), nodes that used up one in
   ``gave_up_nodes``. The download timing is simulated around the real
   ``releasesim.model.update.fetch_release`` call (``releasesim.sim.mirrors``);
2. verification takes ``artifact_size_mb / hash_speed_mbps`` simulated seconds (the
   node's hash speed in MB/s), then the real ``fetch_release`` checks the digest and the
   attestation quorum recorded with the approved release (its signer set and threshold);
3. install through the real ``install_release`` (which calls ``ensure_release_authorized``);
4. restart (down for ``fleet.restart_delay``), then the real ``boot_check`` with
   ``started = rng.random() >= release.startup_failure_prob`` for the release
   (always True for any other build); a failed start rolls back through the real
   ``rollback_failed_startup`` (one shared ``MemoryAuditLog``), and the node restarts
   again on the restored build (down again for ``restart_delay``). A node does not retry
   a release it rolled back from.

If a newer rollout reaches a node that is still updating, the node takes it up right
after; a node waiting for its next poll to retry takes it up at that poll instead of a
new round (a node's polls and a rollout's start share one grid, so the node's wake-up
is ordered after every ordinary event of its instant: ``AFTER_NORMAL``).

Every down interval ``[start, end)`` of a node is recorded as it closes, with its node and
cause (``down_*`` arrays): ``restart`` from the install to the boot (on the release, or
back on the restored build after a rollback); ``halt`` in ``halt_at_height`` mode, from
the upgrade height (``stop_at_height``) until the node boots the release -- past the
height only the release follows the chain, so a node that boots any other build (the
restored one after a failed start, an adversary's) stays stopped; a pre-fetching node
stages the verified build until the height (``releasesim.sim.rollout``). An interval
still open at the end of the run is closed at the horizon and flagged
(``close_down_intervals``): the horizon cut the run, or nothing is left that could bring
the node back.

The per-node outcome row, the down intervals and the stakes are built once, at the end
(``releasesim.sim.fleet_results``). Every successful boot is checked against the store
(invariant ``unapproved_boots``).

Imports ``simpy``, ``numpy``, ``model``, ``sim.node_task``, ``sim.release_store`` and
``sim.fleet_results``; must not import ``reports``.
"""

from __future__ import annotations

import math
from array import array
from typing import TYPE_CHECKING

import numpy as np
from simpy.events import EventPriority

from releasesim.model.errors import DigestMismatch, ReleaseError, SourceError
from releasesim.model.slot import MemoryAuditLog, MemorySlot
from releasesim.model.update import (
    DownloadedRelease,
    boot_check,
    fetch_release,
    install_release,
)
from releasesim.sim.fleet_results import HALT, RESTART, FleetResults
from releasesim.sim.node_task import PARKED, NodeGenerator, NodeTask
from releasesim.sim.release_store import SimReleaseStore

if TYPE_CHECKING:
    from releasesim.sim.rollout import Rollout
    from releasesim.sim.world import World

NAN = math.nan
MAX_BYTES = 1 << 20

AFTER_NORMAL = EventPriority(2)
"""Below simpy's ``NORMAL`` (1): processed after every ordinary event of its instant. A
node waking for a new fetch round first sees every rollout that reached it at that very
poll (the dispatcher starts node updates with ordinary timeouts on the same poll grid),
whatever the order the events were scheduled in."""


class Fleet(FleetResults):
    """Per-node state as parallel arrays, and the node update process."""

    def __init__(self, world: World, rng: np.random.Generator) -> None:
        self.world = world
        self.rng = rng
        cfg = world.scenario.fleet
        self.cfg = cfg
        n = int(cfg.nodes)
        self.n = n
        self.poll_interval_s = float(cfg.poll_interval_s)
        self.hash_speed = np.maximum(
            np.asarray(cfg.hash_speed_mbps.sample_many(rng, n), dtype=float), 1e-9
        )
        interval = self.poll_interval_s
        self.phase = rng.uniform(0.0, interval, n) if interval > 0 else np.zeros(n)
        self.start_mirror = rng.integers(0, int(world.scenario.mirrors.count), n)
        self.wave = np.full(n, -1, dtype=np.int32)
        self.learned_s = np.full(n, NAN)
        self.first_fetch_s = np.full(n, NAN)
        self.installed_s = np.full(n, NAN)
        self.booted_new_s = np.full(n, NAN)
        self.rolled_back_s = np.full(n, NAN)
        self.down_s = np.zeros(n)
        # per-node counters bumped in the node process: ``array`` items are cheaper to
        # update one at a time than numpy scalars (same int32 values, same .tolist())
        self.fetch_attempts = array("i", bytes(4 * n))
        self.fetch_rounds = array("i", bytes(4 * n))
        self.fetch_failures = array("i", bytes(4 * n))
        self.corrupt = array("i", bytes(4 * n))
        self.failed_startup = np.zeros(n, dtype=np.bool_)
        self.installed_malicious = np.zeros(n, dtype=np.bool_)
        self.busy = bytearray(n)
        self.pending: dict[int, Rollout] = {}
        # a node's slot is made at its first update; None: it runs ``previous_bytes``
        self.slots: list[MemorySlot | None] = []  # sized by setup_slots
        self.previous_bytes: bytes | None = None
        self.audit = MemoryAuditLog()
        # the recorded down intervals [start, end) of every node (``downtime_columns``)
        self.down_starts = array("d")
        self.down_ends = array("d")
        self.down_nodes = array("i")
        self.down_causes = array("B")  # index into DOWN_CAUSES
        self.down_open = array("B")  # 1: closed only by the end of the run
        self.validator_nodes = (
            min(len(world.validators.stakes), n) if int(cfg.validators) < 0
            else int(cfg.validators)
        )
        # 1: the node used up a round of attempts at least once (``gave_up_nodes``)
        self.gave_up = bytearray(n)
        self.release_fetch_attempts = 0  # attempts at the release ("new") build only
        self.release_fetch_nodes = 0  # nodes that started fetching it
        self.upgrade_s = NAN  # halt_at_height: the release's upgrade height (set by rollout)
        # node -> (start, cause) of its open down interval
        self.down_since: dict[int, tuple[float, int]] = {}
        self.installs_ok = 0
        self.release_store = SimReleaseStore(world.store)
        self.boot_times = array("d")
        self.boot_codes = array("B")
        self.hash_codes: dict[str | None, int] = {}
        self.install_time_violations = 0
        # constants of the node process, read once per replication (see ``_update``)
        scenario = world.scenario
        self.mirror_list = world.mirrors.mirrors
        latency = world.mirrors.latency
        self.latency_sample = None if latency.is_zero else latency.sampler(rng)
        self.bandwidth_sample = scenario.mirrors.bandwidth_mbps.sampler(rng)
        self.artifact_size_mb = float(scenario.release.artifact_size_mb)
        self.megabits = self.artifact_size_mb * 8.0
        self.startup_failure_prob = float(scenario.release.startup_failure_prob)
        self.fetch_timeout_s = float(cfg.fetch_timeout_s)
        self.max_retries = int(cfg.max_retries)
        self.backoff_base_s = float(cfg.backoff_base_s)
        self.backoff_factor = float(cfg.backoff_factor)
        restart = cfg.restart_delay
        self.restart_sample = None if restart.is_zero else restart.sampler(rng)

    def setup_slots(self) -> None:
        """Every node runs the approved previous build at time 0 (shared bytes).

        A node's ``MemorySlot(previous_bytes)`` is only made when it first updates
        (``slot``): a node that never updates holds no slot object.
        """
        self.previous_bytes = self.world.previous_bytes
        self.slots = [None] * self.n

    def slot(self, node: int) -> MemorySlot:
        """The node's binary slot, made (running the previous build) on first use."""
        slot = self.slots[node]
        if slot is None:
            slot = self.slots[node] = MemorySlot(self.previous_bytes)
        return slot

    def current(self, node: int) -> bytes | None:
        """The binary the node runs now."""
        slot = self.slots[node]
        return self.previous_bytes if slot is None else slot.current()

    def gave_up_nodes(self) -> set[int]:
        """The nodes that used up a round of attempts at least once."""
        return set(np.flatnonzero(np.frombuffer(self.gave_up, dtype=np.uint8)).tolist())

    def learn_times(self, activation_s: float, nodes: np.ndarray | None = None) -> np.ndarray:
        """Each node's (or each of ``nodes``') first poll strictly after ``activation_s``.

        Poll ``k`` of node ``i`` is at ``phase_i + k * poll_interval_s`` (``k >= 0``);
        with ``poll_interval_s = 0`` a node learns at once (at ``activation_s``).
        """
        phase = self.phase if nodes is None else self.phase[nodes]
        interval = self.poll_interval_s
        if interval <= 0:
            return np.full(len(phase), float(activation_s))
        k = np.floor((activation_s - phase) / interval) + 1.0
        k = np.maximum(k, 0.0)
        return phase + k * interval

    def next_poll(self, node: int, now: float) -> float:
        """``node``'s first poll strictly after ``now`` (``now`` itself when polling is 0)."""
        interval = self.poll_interval_s
        if interval <= 0:
            return now
        phase = float(self.phase[node])
        k = max(math.floor((now - phase) / interval) + 1.0, 0.0)
        poll = phase + k * interval
        return poll if poll > now else poll + interval  # guard a rounding of (now - phase)

    def begin(self, node: int, rollout: Rollout) -> None:
        """The rollout dispatcher says ``node`` may update now."""
        if self.busy[node]:
            self.pending[node] = rollout  # taken up when the current update ends
            return
        if not self._wants(node, rollout):
            return
        self.busy[node] = 1
        world = self.world
        world.hold()
        self._start(node, rollout)

    def _start(self, node: int, rollout: Rollout) -> None:
        """Start the node's update as a ``NodeTask`` (counted as a process, as
        ``World.process`` counts one)."""
        self.world.n_processes += 1
        task = NodeTask(self.world.env)
        task.start(self._update(task, node, rollout))

    def _wants(self, node: int, rollout: Rollout) -> bool:
        """False when the node already runs the build, rolled back from the release, or
        polls after the rollout halted (it learns of the halt at that poll)."""
        if rollout.halted:
            return False
        current = self.current(node)
        if current is not None and current is self.world.mirrors.artifact(rollout.build_hash):
            return False
        return not (rollout.kind == "new" and self.failed_startup[node])

    def _finish(self, node: int) -> None:
        """The node's update ended: take up a pending rollout, or go idle."""
        following = self.pending.pop(node, None)
        if following is not None and self._wants(node, following):
            self._start(node, following)
            return
        self.busy[node] = 0
        self.world.release_hold()

    # -- the node process --------------------------------------------------------------
    # The hot path of a replication: one resume per download attempt, backoff and
    # restart (and per queued slot request and new round, which are rarer). A free
    # download slot is taken inline, and a wait of d seconds is ``yield d`` (``NodeTask``:
    # the task puts itself back on the queue, as a ``Timeout(env, d)`` would be; counted on
    # the World like ``World.timeout`` does). Two phases, two generators: the download
    # (``_update``) returns the install-and-boot generator (``_install``), which the task
    # goes on with, so a node at work holds one small frame at a time (a 100k-node fleet
    # has a frame per node at work).
    def _update(self, task: NodeTask, node: int, rollout: Rollout) -> NodeGenerator:
        world = self.world
        env = world.env
        build_hash = rollout.build_hash
        is_new = rollout.kind == "new"
        mirrors = self.mirror_list
        latency_sample = self.latency_sample  # None: zero latency
        bandwidth_sample = self.bandwidth_sample  # Mbit/s, drawn per download
        megabits = self.megabits
        fetch_timeout = self.fetch_timeout_s
        fetch_attempts = self.fetch_attempts
        m = int(self.start_mirror[node])
        attempts = 0  # in this round
        self.fetch_rounds[node] += 1
        round_start = env.now
        downloaded = None
        if is_new and math.isnan(self.first_fetch_s[node]):
            self.first_fetch_s[node] = env.now
            self.release_fetch_nodes += 1
        while True:
            attempts += 1
            fetch_attempts[node] += 1
            if is_new:
                self.release_fetch_attempts += 1
            mirror = mirrors[m]
            # the mirror's download slots: a FIFO counting semaphore (simpy.Resource
            # semantics) whose waiters give up at the fetch timeout; a free slot costs no
            # event, a queued request one event (and at most one deadline entry)
            budget = fetch_timeout  # what is left of the fetch timeout once served
            granted = True
            if mirror.in_use < mirror.capacity:
                mirror.in_use += 1
            else:  # queued: woken when granted (True) or at the fetch timeout (False)
                asked = env.now
                world.n_timeouts += 1  # the request's fetch timeout (``DeadlineWatch``)
                mirror.queue_request(task, fetch_timeout)
                granted = yield PARKED
                budget = fetch_timeout - (env.now - asked)
            ok = False
            if granted:
                t0 = env.now
                lat = 0.0 if latency_sample is None else latency_sample()
                transfer = megabits / bandwidth_sample()
                up = t0 >= mirror.down_until  # a down mirror refuses once the request is there
                need = lat + transfer if up else lat
                wait = need if need < budget else budget  # never past the fetch timeout
                if wait > 0:
                    world.n_timeouts += 1
                    yield wait
                ok = up and need <= budget and not mirror.outage_between(t0, env.now)
                # free the slot: hand it to the first request still queued
                if not (mirror.waiting and mirror.grant_next()):
                    mirror.in_use -= 1
            if ok:
                hash_s = self.artifact_size_mb / float(self.hash_speed[node])
                if hash_s > 0:
                    world.n_timeouts += 1
                    yield hash_s
                approved = rollout.approved
                try:
                    downloaded = fetch_release(
                        build_hash,
                        approved.attestations,
                        source=mirror,
                        signer_set=approved.signer_set,
                        threshold=approved.threshold,
                        timeout=fetch_timeout if fetch_timeout > 0 else 1.0,
                        max_bytes=MAX_BYTES,
                    )
                except DigestMismatch:
                    self.corrupt[node] += 1
                except (SourceError, ReleaseError) as exc:
                    world.recorder.event(env.now, "fetch_refused", str(exc), node)
            if downloaded is not None:
                return self._install(node, rollout, downloaded)
            self.fetch_failures[node] += 1
            m = (m + 1) % len(mirrors)
            if attempts <= self.max_retries:
                backoff = self.backoff_base_s * self.backoff_factor ** (attempts - 1)
                if backoff > 0:
                    world.n_timeouts += 1
                    yield backoff
                continue
            # the round is used up: a new round at the node's next poll
            self.gave_up[node] = 1
            if node not in self.pending:
                now = env.now
                if now == round_start and self.poll_interval_s <= 0:
                    world.recorder.event(now, "fetch_stalled", build_hash, node)
                    self._finish(node)
                    return None
                world.n_timeouts += 1  # ordered after every ordinary event of that instant
                task.sleep(self.next_poll(node, now) - now, AFTER_NORMAL)
                yield PARKED
            if node in self.pending or rollout.halted:  # a newer rollout, or the halt
                self._finish(node)
                return None
            self.fetch_rounds[node] += 1
            round_start = env.now
            attempts = 0

    def _install(
        self, node: int, rollout: Rollout, downloaded: DownloadedRelease
    ) -> NodeGenerator:
        """The update's second phase: install the verified download, restart, boot check
        (and a rollback, restart and boot check after a failed start)."""
        world = self.world
        env = world.env
        is_new = rollout.kind == "new"
        if rollout.upgrade_s > env.now:  # halt at height: staged until the height
            world.n_timeouts += 1
            yield rollout.upgrade_s - env.now
        slot = self.slot(node)
        node_id = f"node-{node}"
        try:
            record = install_release(
                self.release_store, slot, downloaded, node_id=node_id, now=env.now
            )
        except ReleaseError as exc:
            world.recorder.event(env.now, "install_refused", str(exc), node)
            self._finish(node)
            return
        self.installs_ok += 1
        if record.ts != env.now:
            self.install_time_violations += 1
        if is_new:
            if math.isnan(self.installed_s[node]):
                self.installed_s[node] = env.now
        elif rollout.kind == "malicious":
            self.installed_malicious[node] = True

        # restart on the new binary, then the boot check
        restart = self.restart_sample  # None: no restart delay
        # closed by _down, or at the end of the run; a node stopped at the upgrade height
        # has been down since the height
        down_from = self.down_since.setdefault(node, (env.now, RESTART))[0]
        if restart is not None:
            world.n_timeouts += 1
            yield restart()
        started = self.rng.random() >= self.startup_failure_prob if is_new else True
        result = boot_check(
            self.release_store, slot, node_id=node_id, now=env.now, audit=self.audit,
            started=started,
        )
        if result.ok:
            self._booted(result.build_hash, env.now)
            self._up_or_stopped(node, down_from, env.now, on_release=is_new)
            if is_new:
                self.booted_new_s[node] = env.now
            rollout.boot_outcome(False, env.now)
            self._finish(node)
            return
        # failed start: rolled back by the real code; restart on the restored build
        if is_new:
            self.failed_startup[node] = True
        if math.isnan(self.rolled_back_s[node]):
            self.rolled_back_s[node] = env.now
        rollout.boot_outcome(True, env.now)
        if restart is not None:
            world.n_timeouts += 1
            yield restart()
        result = boot_check(
            self.release_store, slot, node_id=node_id, now=env.now, audit=self.audit,
            started=True,
        )
        if result.ok:
            self._booted(result.build_hash, env.now)
        else:
            world.recorder.event(env.now, "boot_failed_after_rollback", str(result.reason), node)
        self._up_or_stopped(node, down_from, env.now, on_release=False)
        self._finish(node)

    def _up_or_stopped(self, node: int, down_from: float, now: float, on_release: bool) -> None:
        """The node booted: it is up again, unless the chain is past the upgrade height
        and the build is not the release -- that build cannot follow the chain, so the
        node stays stopped (its interval stays open, to the end of the run)."""
        if on_release or not now >= self.upgrade_s:  # upgrade_s is NaN in rolling mode
            self._down(node, down_from, now)
        else:
            self.down_since[node] = (down_from, HALT)

    def _booted(self, build_hash: str | None, now: float) -> None:
        """Note a successful boot (build, time) for the ``unapproved_boots`` check."""
        code = self.hash_codes.setdefault(build_hash, len(self.hash_codes))
        self.boot_times.append(now)
        self.boot_codes.append(code)

    def _down(self, node: int, start: float, end: float, still_down: int = 0) -> None:
        """Record the node's down interval ``[start, end)`` (its open one, now closed)."""
        _, cause = self.down_since.pop(node, (start, RESTART))
        if end > start:
            self.down_starts.append(start)
            self.down_ends.append(end)
            self.down_nodes.append(node)
            self.down_causes.append(cause)
            self.down_open.append(still_down)
            self.down_s[node] += end - start

    def stop_at_height(self, height_s: float) -> int:
        """The chain reached the upgrade height: every node not on the release stops.

        A node already down (restarting) keeps its interval; one already running the
        release (it cannot, before the height: installs wait for it) is left alone.
        Returns how many nodes stopped.
        """
        since = self.down_since
        stopped = 0
        for node in np.flatnonzero(np.isnan(self.booted_new_s)).tolist():
            if node not in since:
                since[node] = (height_s, HALT)
                stopped += 1
        return stopped

    def close_down_intervals(self, end_s: float) -> None:
        """Count the nodes still down when the run stops as down until ``end_s``."""
        for node, (start, _) in list(self.down_since.items()):
            self._down(node, start, max(start, end_s), still_down=1)
