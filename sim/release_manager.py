"""The release manager: builds the release, collects attestations, submits the proposal.

At ``release.build_at_s`` a build is produced as real bytes with a real BLAKE3 hash and
published to the mirrors. Signers of the configured set that are online attest after a
signing delay (``signers.signing_delay``, drawn once per signer and release: the signing
*work*); offline ones start when they come back online (the pool's online listener); keys
added by a rotation attest like the others. Signing work is done only while the signer is
online: when its online spell ends mid-signature (the pool's offline listener), the work
pauses and the remaining work continues when the signer is next online, so the
attestation comes at start + delay + the offline gaps in between. Resuming rather than
restarting is the choice made here: the delay stands for the signer's work on this build
(fetch, check, sign), which an absence interrupts but does not undo, and a restart would
make a long signing task wait for one uninterrupted spell. Either way no attestation is
ever made while its signer is offline.

Once the valid attestations from the *current* configured set reach the *current*
threshold, a validator submits, after ``governance.submit_delay``, through the real
``releasesim.model.governance.propose_release``. If a rotation (or a threshold change) left the
collected attestations short in between, the real code refuses it with ``QuorumError``
(counting ``release_quorum_fail_total``); the refusal is recorded and collection resumes.
The accepted proposal goes to the validators (``releasesim.sim.validators``).

Imports ``model`` and ``numpy``; must not import ``reports``.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np

from releasesim.model.errors import QuorumError
from releasesim.model.governance import propose_release
from releasesim.model.quorum import Attestation
from releasesim.sim.artifacts import make_artifact

if TYPE_CHECKING:
    from releasesim.sim.world import World


class ReleaseManager:
    """The legitimate release: build, attestations, proposal attempts, outcome times."""

    def __init__(self, world: World, rng: np.random.Generator) -> None:
        self.world = world
        self.rng = rng
        self.build_hash: str | None = None
        self.data: bytes | None = None
        self.build_s = math.nan
        self.quorum_available_at_build: bool | None = None
        self.attestations: dict[int, Attestation] = {}  # signer index -> attestation
        # signer index -> (signing number, the time it will finish) while it signs online
        self.signing: dict[int, tuple[int, float]] = {}
        self.signings = 0
        self.work_left: dict[int, float] = {}  # signing work paused by an offline spell
        self.paused = 0  # signings paused by the end of an online spell (for tests)
        self.submitting = False
        self.proposed = False
        self.attempts = 0
        self.quorum_s = math.nan
        self.proposal_s = math.nan
        self.activation_s = math.nan
        self.rejected = False

    def run(self) -> Generator[Any, Any, None]:
        world = self.world
        cfg = world.scenario.release
        build_at = float(cfg.build_at_s)
        if build_at > 0:
            yield world.timeout(build_at)

        self.data, self.build_hash = make_artifact(self.rng, "release")
        self.build_s = world.env.now
        world.mirrors.publish(self.build_hash, self.data)
        pool = world.signers
        self.quorum_available_at_build = pool.online_in_set() >= pool.threshold_now()
        world.recorder.event(
            self.build_s, "build", self.build_hash, float(pool.online_in_set())
        )
        pool.online_listeners.append(self._signer_online)
        pool.offline_listeners.append(self._signer_offline)
        pool.config_listeners.append(self._check_quorum)
        for index in list(pool.configured):
            if pool.online[index]:
                self._signer_online(index)

    # -- attestations ------------------------------------------------------------------
    def _signer_online(self, index: int) -> None:
        """Start (or resume) signer ``index``'s signing work at the start of an online spell."""
        if self.proposed or index in self.attestations or index in self.signing:
            return
        if not self.world.signers.in_set(index):
            return
        work = self.work_left.pop(index, None)
        if work is None:
            delay = self.world.scenario.signers.signing_delay
            if delay.is_zero:
                self._attest(index)
                return
            work = float(delay.sample(self.rng))
        self.signings += 1
        self.signing[index] = (self.signings, self.world.env.now + work)
        self.world.process(self._sign(index, work, self.signings))

    def _signer_offline(self, index: int) -> None:
        """Pause signer ``index``'s signing work: its online spell ended mid-signature."""
        entry = self.signing.pop(index, None)
        if entry is None:
            return
        self.work_left[index] = max(0.0, entry[1] - self.world.env.now)
        self.paused += 1

    def _sign(self, index: int, work: float, number: int) -> Generator[Any, Any, None]:
        yield self.world.timeout(work)
        entry = self.signing.get(index)
        if entry is not None and entry[0] == number:  # else paused: its timer is stale
            self._attest(index)

    def _attest(self, index: int) -> None:
        self.signing.pop(index, None)
        if self.proposed or self.build_hash is None:
            return
        attestation = self.world.signers.attestation(index, self.build_hash)
        self.attestations[index] = attestation
        self.world.recorder.event(self.world.env.now, "attestation", attestation.signer[:16], index)
        self._check_quorum()

    def _count_in_set(self) -> int:
        pool = self.world.signers
        return sum(1 for i in pool.configured if i in self.attestations)

    def _check_quorum(self) -> None:
        if self.proposed or self.submitting or self.build_hash is None:
            return
        pool = self.world.signers
        if self._count_in_set() < pool.threshold_now():
            return
        self.submitting = True
        self.quorum_s = self.world.env.now
        self.world.process(self._submit())

    # -- submission ---------------------------------------------------------------------
    def _submit(self) -> Generator[Any, Any, None]:
        world = self.world
        delay = world.scenario.governance.submit_delay
        if not delay.is_zero:
            yield world.timeout(float(delay.sample(self.rng)))
        pool = world.signers
        self.attempts += 1
        proposer = world.validators.pick_proposer(self.rng)
        assert self.build_hash is not None
        try:
            proposal = propose_release(
                world.store,
                build_hash=self.build_hash,
                attestations=list(self.attestations.values()),
                signer_set=pool.signer_set(),
                threshold=pool.threshold_now(),
                proposer=proposer,
                epoch=world.epoch(),
                vote_period_epochs=int(world.scenario.governance.vote_period_epochs),
                vote_quorum=world.validators.vote_quorum,
            )
        except QuorumError as exc:
            world.recorder.event(world.env.now, "proposal_refused", str(exc), self.attempts)
            self.submitting = False
            self._check_quorum()
            return
        self.proposed = True
        self.proposal_s = world.env.now
        world.recorder.event(world.env.now, "proposed", proposer, proposal.id)
        world.validators.start_vote(proposal, self._decided)

    def _decided(self, activated: bool) -> None:
        world = self.world
        if activated:
            self.activation_s = world.env.now
            assert self.build_hash is not None
            world.rollout.start(self.build_hash, "new")
        else:
            self.rejected = True
        world.release_hold()
