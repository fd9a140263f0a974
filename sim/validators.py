"""The validators: stake-weighted votes on ``ReleaseVote`` proposals and the tally.

``governance.validators`` validators get stake weights drawn from ``governance.stake`` (or
given one by one in ``governance.stakes``); the first ``fleet.validators`` of them run the
fleet's first nodes, with the same stakes (``releasesim.sim.consensus``).
On each accepted proposal every validator participates with probability
``governance.participation`` and, after ``governance.vote_delay``, votes yes with
probability ``governance.yes_probability`` (else no) through the real
``releasesim.model.governance.cast_vote``; a vote the real rules refuse (after the deadline epoch,
or once the tally has closed the vote) is recorded as a ``vote_refused`` event. The vote
quorum is ``governance.vote_quorum`` times the total stake.

Tally timing: a proposal made in epoch ``e`` has the deadline epoch
``d = e + governance.vote_period_epochs``; votes are accepted up to and including epoch
``d`` (every ``t < (d + 1) * epoch_s``; a vote at ``(d + 1) * epoch_s`` or later is
refused). The real ``tally`` closes the deadline epoch: it runs at its end, simulated time
``(d + 1) * epoch_s``, after every vote cast in it, and is recorded *at* the deadline
epoch (``tally(..., epoch=d)``), so the store's (and the explorer's) ``activated_epoch``
is ``d``, exactly what an operator's ``releasesim gov tally --epoch <deadline>`` records
for the same proposal. The fleet learns of the activation from time ``(d + 1) * epoch_s``
on. Activation or rejection is handed back to the proposal's owner through a callback.

Imports ``model`` and ``numpy``; must not import ``reports``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import numpy as np

from releasesim.model.errors import VoteRefused
from releasesim.model.governance import cast_vote, tally
from releasesim.model.store import Proposal

if TYPE_CHECKING:
    from releasesim.sim.world import World


class Validators:
    """Validator names, stakes and the vote/tally processes."""

    def __init__(self, world: World, rng: np.random.Generator) -> None:
        self.world = world
        self.rng = rng
        cfg = world.scenario.governance
        count = int(cfg.validators)
        self.names = [f"validator-{i}" for i in range(count)]
        if cfg.stakes:  # given in the scenario, validator by validator
            stakes = np.asarray(cfg.stakes, dtype=float)
        else:
            stakes = np.asarray(cfg.stake.sample_many(rng, count), dtype=float)
        self.stakes = [max(0.0, float(s)) for s in stakes]
        self.total_stake = float(sum(self.stakes))
        self.vote_quorum = float(cfg.vote_quorum) * self.total_stake
        self.refused = 0

    def pick_proposer(self, rng: np.random.Generator) -> str:
        return self.names[int(rng.integers(len(self.names)))] if self.names else "validator"

    def start_vote(self, proposal: Proposal, decided: Callable[[bool], None]) -> None:
        """Schedule every participating validator's vote and the tally of ``proposal``."""
        world, rng = self.world, self.rng
        cfg = world.scenario.governance
        participation = float(cfg.participation)
        yes_p = float(cfg.yes_probability)
        delay = cfg.vote_delay
        for name, stake in zip(self.names, self.stakes, strict=True):
            if rng.random() >= participation:
                continue
            choice = "yes" if rng.random() < yes_p else "no"
            wait = 0.0 if delay.is_zero else float(delay.sample(rng))
            world.process(self._vote(proposal, name, stake, choice, wait))
        world.process(self._tally(proposal, decided))

    def _vote(
        self, proposal: Proposal, name: str, stake: float, choice: str, wait: float
    ) -> Generator[Any, Any, None]:
        world = self.world
        if wait > 0:
            yield world.timeout(wait)
        try:
            cast_vote(
                world.store, proposal.id, voter=name, weight=stake, choice=choice,
                epoch=world.epoch(),
            )
        except VoteRefused as exc:
            self.refused += 1
            world.recorder.event(world.env.now, "vote_refused", str(exc), proposal.id)
            return
        world.recorder.event(world.env.now, "vote", f"{name} {choice}", stake)

    def _tally(
        self, proposal: Proposal, decided: Callable[[bool], None]
    ) -> Generator[Any, Any, None]:
        world = self.world
        deadline = proposal.deadline_epoch
        close_s = (deadline + 1) * world.epoch_s  # the end of the deadline epoch
        wait = close_s - world.env.now
        if wait > 0:
            yield world.timeout(wait)
        result = tally(world.store, proposal.id, epoch=deadline)
        world.fleet.release_store.invalidate()  # approvals may have changed
        world.recorder.event(
            world.env.now, "activated" if result.passed else "rejected",
            proposal.build_hash, result.yes,
        )
        decided(result.passed)
