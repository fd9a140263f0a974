"""The adversary: a malicious build signed with the compromised signer keys.

When it holds at least one key (``SignerPool.compromised``: the first
``signers.compromised`` keys of the initial set, or the keys the World drew from the
compromise model, ``releasesim.sim.compromise``), at ``adversary.attack_at_s`` the
adversary builds a malicious artifact (real bytes, real BLAKE3 hash), publishes it to the
mirrors, signs it with those keys only (even if a rotation has removed them since) and
submits it through the real
``releasesim.model.governance.propose_release`` with the current signer set and threshold. It gets
in only if the real quorum check lets it through. An accepted proposal is voted on by
the validators like any other; if the real tally activates it, the fleet may install it
(it *is* an approved release), which the summary counts.

Imports ``model`` and ``numpy``; must not import ``reports``.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np

from releasesim.model.errors import QuorumError
from releasesim.model.governance import propose_release
from releasesim.sim.artifacts import make_artifact

if TYPE_CHECKING:
    from releasesim.sim.world import World


class Adversary:
    """Holds the compromised keys; one attack per replication."""

    def __init__(self, world: World, rng: np.random.Generator) -> None:
        self.world = world
        self.rng = rng
        self.active = len(world.signers.compromised) > 0
        self.build_hash: str | None = None
        self.proposed = False
        self.approved = False
        self.attack_s = math.nan

    def run(self) -> Generator[Any, Any, None]:
        world = self.world
        at_s = float(world.scenario.adversary.attack_at_s)
        if at_s > 0:
            yield world.timeout(at_s)

        data, build_hash = make_artifact(self.rng, "malicious")
        self.build_hash = build_hash
        self.attack_s = world.env.now
        world.mirrors.publish(build_hash, data)
        pool = world.signers
        attestations = [pool.attestation(i, build_hash) for i in pool.compromised]
        world.recorder.event(world.env.now, "malicious_build", build_hash, len(attestations))
        try:
            proposal = propose_release(
                world.store,
                build_hash=build_hash,
                attestations=attestations,
                signer_set=pool.signer_set(),
                threshold=pool.threshold_now(),
                proposer="adversary",
                epoch=world.epoch(),
                vote_period_epochs=int(world.scenario.governance.vote_period_epochs),
                vote_quorum=world.validators.vote_quorum,
            )
        except QuorumError as exc:
            world.recorder.event(world.env.now, "malicious_refused", str(exc), len(attestations))
            world.release_hold()
            return
        self.proposed = True
        world.recorder.event(world.env.now, "malicious_proposed", build_hash, proposal.id)
        world.validators.start_vote(proposal, self._decided)

    def _decided(self, activated: bool) -> None:
        if activated:
            self.approved = True
            assert self.build_hash is not None
            self.world.rollout.start(self.build_hash, "malicious")
        self.world.release_hold()
