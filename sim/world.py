"""One replication = one World: the SimPy environment, generators, store and recorder.

``simulate_replication(scenario, seed, replication)`` is the runner's contract. The
replication's root is ``numpy.random.SeedSequence(seed, spawn_key=(replication,))``, so
replication ``i`` is reproducible alone, whatever the total count or the executor; one
child sequence is spawned per component in the fixed order of ``COMPONENTS``, each
component getting its own ``Generator(PCG64(child))``. There is no global or module-level
mutable state and no wall clock: everything lives on the World.

Setup approves the *previous* build through the real governance flow at epoch 0 (one
genesis vote), so every node starts running an approved build. Then the actors run as
SimPy processes: signer pool, release manager, validators, adversary, mirrors, fleet and
rollout controller. Before them, the keys the adversary holds are drawn from the
``compromise`` stream (``sim.compromise.sample_compromised``: the compromise model, or its
exact conditional law given ``adversary.keys_held``). The replication ends at the horizon
or as soon as nothing is left to happen (no pending proposal, no rollout or node still
working).

Imports ``simpy``, ``numpy``, ``model`` and the other ``sim`` actor modules; must not
import ``reports`` or pandas.
"""

from __future__ import annotations

import contextlib
import gc
import math
import pathlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy

from releasesim.model.governance import cast_vote, propose_release, tally
from releasesim.model.store import GovernanceStore
from releasesim.sim.adversary import Adversary
from releasesim.sim.artifacts import make_artifact
from releasesim.sim.compromise import sample_compromised
from releasesim.sim.fleet import Fleet
from releasesim.sim.mirrors import Mirrors
from releasesim.sim.recorder import Recorder
from releasesim.sim.release_manager import ReleaseManager
from releasesim.sim.rollout import RolloutController
from releasesim.sim.signer_pool import SignerPool
from releasesim.sim.summary import summarise
from releasesim.sim.validators import Validators

COMPONENTS: tuple[str, ...] = (
    "signers",
    "release",
    "validators",
    "adversary",
    "mirrors",
    "fleet",
    "rollout",
    "compromise",
    "consensus",
)
"""The fixed order in which child seeds are spawned (never reorder: it changes results; a new
component goes at the end, so the existing ones keep their streams)."""

GENESIS_VOTER = "genesis"

Records = dict[str, np.ndarray] | list[tuple]
"""A result table: columns by name, or row tuples."""


@dataclass(slots=True)
class ReplicationResult:
    """What one replication returns to the runner: its summary row, its node table and
    down intervals as columns (``{column: numpy array}``, ``NODE_COLUMNS`` and
    ``DOWNTIME_COLUMNS``) and its event rows (tuples, ``EVENT_COLUMNS``). The executors
    turn the tables into DataFrames where the replication ran."""

    replication: int
    seed: int
    summary: dict[str, float | int | bool]
    nodes: Records
    events: list[tuple]
    downtime: Records = field(default_factory=list)


class World:
    """Everything one replication owns. Actors reach each other through it."""

    def __init__(self, scenario: Any, seed: int, replication: int) -> None:
        self.scenario = scenario
        self.seed = int(seed)
        self.replication = int(replication)
        self.env = simpy.Environment()
        root = np.random.SeedSequence(self.seed, spawn_key=(self.replication,))
        children = root.spawn(len(COMPONENTS))
        self.rngs = {
            name: np.random.Generator(np.random.PCG64(child))
            for name, child in zip(COMPONENTS, children, strict=True)
        }
        self.store = GovernanceStore.memory()
        self.recorder = Recorder(self.replication)
        self.n_processes = 0
        self.n_timeouts = 0
        self.epoch_s = float(scenario.epoch_s)
        self.horizon_s = float(scenario.horizon_s)
        self.busy = 0  # open proposals + working rollouts/nodes: 0 means nothing left to do
        self.idle = self.env.event()
        self.end_s = math.nan
        self.finished = False

        held = int(scenario.adversary.keys_held)
        compromised = sample_compromised(
            self.rngs["compromise"], scenario, None if held < 0 else held
        )
        self.signers = SignerPool(self, self.rngs["signers"], compromised=compromised)
        self.validators = Validators(self, self.rngs["validators"])
        self.mirrors = Mirrors(self, self.rngs["mirrors"])
        self.fleet = Fleet(self, self.rngs["fleet"])
        self.rollout = RolloutController(self, self.rngs["rollout"])
        self.release = ReleaseManager(self, self.rngs["release"])
        self.adversary = Adversary(self, self.rngs["adversary"])
        self._approve_previous_build()
        self.fleet.setup_slots()
        self.counters_at_start = {name: value for name, _, value in self._counters()}

    # -- SimPy helpers that count what the benchmark's bare model must match ------------
    def process(self, generator: Generator[Any, Any, Any]) -> simpy.Process:
        self.n_processes += 1
        return self.env.process(generator)

    def timeout(self, delay: float) -> simpy.Timeout:
        self.n_timeouts += 1
        return self.env.timeout(delay)

    def epoch(self) -> int:
        return int(self.env.now // self.epoch_s)

    def hold(self) -> None:
        """Something started that the replication must wait for."""
        self.busy += 1

    def release_hold(self) -> None:
        self.busy -= 1
        if self.busy == 0 and not self.idle.triggered:
            self.idle.succeed()

    # -- setup ---------------------------------------------------------------------------
    def _approve_previous_build(self) -> None:
        """Approve the build every node runs at time 0 through the real governance code."""
        data, build_hash = make_artifact(self.rngs["release"], "previous")
        self.previous_bytes, self.previous_hash = data, build_hash
        pool = self.signers
        attestations = [pool.attestation(i, build_hash) for i in pool.configured]
        proposal = propose_release(
            self.store,
            build_hash=build_hash,
            attestations=attestations,
            signer_set=pool.signer_set(),
            threshold=pool.threshold_now(),
            proposer=GENESIS_VOTER,
            epoch=0,
            vote_period_epochs=0,
            vote_quorum=1.0,
        )
        cast_vote(self.store, proposal.id, voter=GENESIS_VOTER, weight=1.0, choice="yes", epoch=0)
        result = tally(self.store, proposal.id, epoch=0)
        assert result.passed, "the previous build must be approved at setup"
        self.mirrors.publish(build_hash, data)
        self.recorder.event(0.0, "previous_approved", build_hash, 0)

    def _counters(self) -> list[tuple[str, str, float]]:
        return self.store.counters()

    def counter_delta(self, name: str) -> int:
        total = sum(v for n, _, v in self._counters() if n == name)
        return int(round(total - self.counters_at_start.get(name, 0.0)))

    # -- run -----------------------------------------------------------------------------
    def run(self) -> None:
        self.signers.start()
        self.mirrors.start()
        self.hold()  # the release manager's build
        self.process(self.release.run())
        if self.adversary.active:
            self.hold()
            self.process(self.adversary.run())
        self.env.run(until=self.env.any_of([self.idle, self.env.timeout(self.horizon_s)]))
        self.end_s = min(float(self.env.now), self.horizon_s)
        self.finished = self.busy == 0  # False: the horizon cut work that was still going on
        # a node still down now stays down until the horizon: either the horizon cut the
        # run (end_s is the horizon) or nothing is left that could bring it back
        self.fleet.close_down_intervals(self.horizon_s)
        self.fleet.release_store.flush()  # the installs still queued for the store
        self.signers.stopped = True


@contextlib.contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector (restored afterwards, as it was).

    A replication holds hundreds of thousands of live objects (node processes, slots,
    events) that the collector would scan again and again as events are allocated: at
    100k nodes it took half the replication's time. The simulation makes no cyclic
    garbage worth collecting mid-run (finished events drop their callbacks; peak memory
    is the same with the collector paused, measured by ``benchmarks/bench_scale.py``);
    reference counting still frees everything else at once.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def simulate_replication(
    scenario: Any, seed: int, replication: int, *, keep_store: pathlib.Path | None = None
) -> ReplicationResult:
    """Run one replication of ``scenario`` and return its summary, node and event rows."""
    with cyclic_gc_paused():
        return _simulate(scenario, seed, replication, keep_store)


def _simulate(
    scenario: Any, seed: int, replication: int, keep_store: pathlib.Path | None
) -> ReplicationResult:
    world = World(scenario, seed, replication)
    world.run()
    summary = summarise(world)
    nodes = world.fleet.node_columns()
    summary["replication"] = world.replication
    summary["seed"] = world.seed
    if keep_store is not None:
        world.store.backup_to(keep_store)
    world.store.close()
    return ReplicationResult(
        world.replication, world.seed, summary, nodes, world.recorder.events,
        world.fleet.downtime_columns(),
    )


def nan_if_none(value: float | None) -> float:
    return math.nan if value is None else float(value)
