"""The rollout controller: who may update when, and the halt on failed startups.

Each activation (the release, or an activated malicious build) starts one ``Rollout``.
``rollout.strategy`` is ``all_at_once`` (one wave, the whole fleet, released at
activation) or ``waves``: cumulative fractions ``rollout.waves`` of a random permutation
of the nodes, wave ``k`` released ``k * rollout.wave_interval_s`` after activation. A
node learns of the activation at its first poll strictly after it, and of its wave's
release the same way: it starts updating (``releasesim.sim.fleet``) at its first poll strictly
after the wave's release time (poll ``j`` of node ``i`` is at ``phase_i + j *
fleet.poll_interval_s``, phases Uniform(0, interval); ``poll_interval_s = 0``: at once).
So the nodes of a wave start spread over one poll interval after its release, exactly
as the whole fleet does after an all-at-once activation; the wake-up times are computed
directly rather than by polling. One dispatcher process per wave starts the node
updates in time order.

The halt is an abort condition evaluated in simulated time whenever a boot outcome
arrives: with waves, when ``failed / attempted > rollout.halt_failure_rate`` and
``attempted >= rollout.halt_min_attempts``, the rollout halts; waves not yet released
never update (their nodes lag on the old build). Nodes already updating carry on; a
node of a released wave that had not started yet learns of the halt at its next poll and
does not start (nor does a node between two fetch rounds), as an operator's halt of the
rollout would have it.

With ``consensus.mode = "halt_at_height"`` (all at once only) the release's activation
also sets the upgrade height, ``consensus.upgrade_after_epochs`` epochs later (simulated
time ``upgrade_s``). Each node pre-fetches with probability ``consensus.prefetch_fraction``
(drawn from the ``consensus`` stream): a pre-fetching node starts its update at its first
poll after activation as above, but stages the verified build until the height and then
installs and restarts by itself (the Cosmovisor pattern). At the height every node not
running the release stops (``Fleet.stop_at_height``): the chain halts. A node that did
not pre-fetch starts its update (fetch, verify, install, restart) when its operator
responds, ``consensus.operator_response`` after the height (one draw per such node, in
node order). Until a node boots the release it is down; past the height no other build
follows the chain, so a node whose start fails rolls back and stays stopped, and so does
one that boots an adversary's build.

Imports ``numpy``; must not import ``reports``.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np
from simpy.events import Timeout

from releasesim.model.store import ApprovedRelease

if TYPE_CHECKING:
    from releasesim.sim.world import World


class Rollout:
    """One activated build's rollout: waves, counters, halt state."""

    __slots__ = (
        "controller",
        "build_hash",
        "kind",
        "approved",
        "activation_s",
        "attempted",
        "failed",
        "halted",
        "halt_s",
        "waves_released",
        "wave_of",
        "upgrade_s",
    )

    def __init__(
        self, controller: RolloutController, build_hash: str, kind: str,
        approved: ApprovedRelease, activation_s: float,
    ) -> None:
        self.controller = controller
        self.build_hash = build_hash
        self.kind = kind
        self.approved = approved
        self.activation_s = activation_s
        self.attempted = 0
        self.failed = 0
        self.halted = False
        self.halt_s = math.nan
        self.waves_released = 0
        self.wave_of: np.ndarray | None = None
        self.upgrade_s = math.nan  # halt_at_height: when the chain reaches the upgrade height

    def boot_outcome(self, failed: bool, now: float) -> None:
        """A node's start on this build succeeded or failed: maybe halt the waves."""
        self.attempted += 1
        if failed:
            self.failed += 1
        controller = self.controller
        if (
            controller.waves_strategy
            and not self.halted
            and self.attempted >= controller.halt_min_attempts
            and self.failed / self.attempted > controller.halt_failure_rate
        ):
            self.halted = True
            self.halt_s = now
            controller.world.recorder.event(
                now, "halt", self.build_hash, self.failed / self.attempted
            )


class RolloutController:
    """Starts a ``Rollout`` per activation and dispatches its waves."""

    def __init__(self, world: World, rng: np.random.Generator) -> None:
        self.world = world
        self.rng = rng
        cfg = world.scenario.rollout
        self.waves_strategy = str(cfg.strategy) == "waves"
        fractions = [float(f) for f in cfg.waves] if self.waves_strategy else [1.0]
        if not fractions or fractions[-1] < 1.0:
            fractions.append(1.0)
        self.fractions = fractions
        self.wave_interval_s = float(cfg.wave_interval_s)
        self.halt_failure_rate = float(cfg.halt_failure_rate)
        self.halt_min_attempts = int(cfg.halt_min_attempts)
        self.rollouts: list[Rollout] = []
        consensus = world.scenario.consensus
        self.halt_at_height = str(consensus.mode) == "halt_at_height"
        self.upgrade_after_s = int(consensus.upgrade_after_epochs) * world.epoch_s
        self.prefetch_fraction = float(consensus.prefetch_fraction)
        self.operator_response = consensus.operator_response

    def by_kind(self, kind: str) -> Rollout | None:
        for rollout in self.rollouts:
            if rollout.kind == kind:
                return rollout
        return None

    def start(self, build_hash: str, kind: str) -> Rollout:
        """Begin the rollout of an activated build (called at activation time)."""
        world = self.world
        approved = world.store.get_approved(build_hash)
        assert approved is not None, "a rollout starts only for an approved build"
        now = world.env.now
        rollout = Rollout(self, build_hash, kind, approved, now)
        self.rollouts.append(rollout)
        fleet = world.fleet
        n = fleet.n
        learn = fleet.learn_times(now)
        if kind == "new":
            fleet.learned_s[:] = learn
        permutation = self.rng.permutation(n)
        wave_of = np.empty(n, dtype=np.int32)
        bounds = [0] + [min(n, int(round(f * n))) for f in self.fractions]
        waiting = np.empty(0, dtype=np.int64)
        if kind == "new" and self.halt_at_height:
            rollout.upgrade_s = fleet.upgrade_s = now + self.upgrade_after_s
            prefetch = world.rngs["consensus"].random(n) < self.prefetch_fraction
            waiting = np.flatnonzero(~prefetch)
            permutation = permutation[prefetch[permutation]]  # one wave: the pre-fetchers
            bounds = [0] + [len(permutation)] * len(self.fractions)
            world.hold()
            world.process(self._height(rollout, waiting))
        for k in range(len(self.fractions)):
            members = permutation[bounds[k] : bounds[k + 1]]
            wave_of[members] = k
            world.hold()
            world.process(self._wave(rollout, k, members, learn[members]))
        wave_of[waiting] = 0
        rollout.wave_of = wave_of
        if kind == "new":
            fleet.wave[:] = wave_of
        return rollout

    def _wave(
        self, rollout: Rollout, k: int, members: np.ndarray, learn: np.ndarray
    ) -> Generator[Any, Any, None]:
        world = self.world
        env = world.env
        release_at = rollout.activation_s + k * self.wave_interval_s
        if k > 0 and release_at > env.now:
            yield world.timeout(release_at - env.now)
        if rollout.halted:
            world.recorder.event(env.now, "wave_skipped", rollout.build_hash, k)
            world.release_hold()
            return
        rollout.waves_released += 1
        world.recorder.event(env.now, "wave_released", rollout.build_hash, k)
        # each member's first poll strictly after the release (its learn time for wave 0)
        starts = learn if k == 0 else world.fleet.learn_times(release_at, members)
        order = np.argsort(starts, kind="stable")
        begin = world.fleet.begin
        for node, start in zip(members[order].tolist(), starts[order].tolist(), strict=True):
            wait = start - env.now
            if wait > 0:
                world.n_timeouts += 1  # what World.timeout counts, without the call
                yield Timeout(env, wait)
            begin(node, rollout)
        world.release_hold()

    def _height(self, rollout: Rollout, waiting: np.ndarray) -> Generator[Any, Any, None]:
        """halt_at_height: stop the chain at the height, then start each node that did not
        pre-fetch when its operator responds."""
        world = self.world
        env = world.env
        if rollout.upgrade_s > env.now:
            yield world.timeout(rollout.upgrade_s - env.now)
        stopped = world.fleet.stop_at_height(env.now)
        world.recorder.event(env.now, "upgrade_height", rollout.build_hash, stopped)
        rng = world.rngs["consensus"]
        response = np.asarray(self.operator_response.sample_many(rng, len(waiting)), dtype=float)
        starts = env.now + np.maximum(response, 0.0)
        order = np.argsort(starts, kind="stable")
        begin = world.fleet.begin
        for node, start in zip(waiting[order].tolist(), starts[order].tolist(), strict=True):
            if start > env.now:
                yield world.timeout(start - env.now)
            begin(node, rollout)
        world.release_hold()
