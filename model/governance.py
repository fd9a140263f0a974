"""``ReleaseVote`` governance: propose, vote, tally, activate; the signer view.

Rules (see ``../shared/reference/release-flow-semantics.md``):

- A proposal is validated completely before anything is persisted: the build hash
  and every attestation parse; the threshold (default: the size of the configured
  signer set) lies in 1..len(set); the signatures verify against the configured
  signers, each key counted once. A proposal whose valid distinct attestations fall
  short is rejected and counts ``release_quorum_fail_total`` once. A known build hash
  cannot be proposed again.
- Votes carry voter, weight (stake) and choice (yes/no/abstain); a later vote by the
  same voter replaces the earlier one; votes after the deadline epoch are refused.
  Each vote counts ``release_votes_total{choice}``.
- Tallying at or after the deadline activates the release when yes weight >= the
  proposal's vote quorum **and** yes > no (ties do not pass); otherwise rejects it.
  Activation publishes the hash with its quorum data and activation epoch.
- Stake is exact: weights and quorums are ``fractions.Fraction`` (``model.store.to_stake``
  converts ints, floats, decimals and decimal text exactly), so a tally never rounds
  (2**53 + 1 + 1) or overflows (1.7e308 + 1.7e308) to a wrong outcome.

Time is passed in as an epoch number; nothing here reads a clock. Imports only
``model.crypto``, ``model.errors``, ``model.quorum`` and ``model.store``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from releasesim.model.crypto import parse_hash, verify_release
from releasesim.model.errors import (
    DuplicateRelease,
    MalformedInput,
    QuorumError,
    UnknownProposal,
    VoteRefused,
)
from releasesim.model.quorum import Attestation, QuorumResult, evaluate_quorum, threshold_problem
from releasesim.model.store import (
    CHOICES,
    ApprovedRelease,
    GovernanceStore,
    Proposal,
    Vote,
    to_stake,
)

QUORUM_FAIL = "release_quorum_fail_total"
VOTES = "release_votes_total"
INSTALLS = "release_installs_total"


@dataclass(frozen=True, slots=True)
class Tally:
    """The weights on a proposal (exact sums) and the outcome of counting them."""

    proposal_id: int
    yes: Fraction
    no: Fraction
    abstain: Fraction
    vote_quorum: Fraction
    status: str

    @property
    def passed(self) -> bool:
        return self.status == "activated"


def evaluate_submission(
    build_hash: str,
    attestations: Sequence[Attestation],
    signer_set: Sequence[str],
    threshold: int | None,
) -> QuorumResult:
    """The pure quorum evaluation governance applies to a submission (never raises)."""
    effective = len(set(k.lower() for k in signer_set)) if threshold is None else threshold
    return evaluate_quorum(build_hash, attestations, signer_set, effective)


def propose_release(
    store: GovernanceStore,
    *,
    build_hash: str,
    attestations: Sequence[Attestation],
    signer_set: Sequence[str],
    threshold: int | None = None,
    proposer: str,
    epoch: int,
    vote_period_epochs: int = 0,
    vote_quorum: float | Fraction | str = 1,
) -> Proposal:
    """Validate and persist a ``ReleaseVote`` proposal; returns it with status ``open``.

    Raises ``MalformedInput`` (bad hash), ``QuorumError`` (short quorum or unusable
    threshold; counted in ``release_quorum_fail_total`` when signatures fall short),
    ``DuplicateRelease`` (hash already proposed, also when another process proposes it
    between the check here and the insert).
    """
    build_hash = parse_hash(build_hash, "--hash")
    if vote_period_epochs < 0:
        raise MalformedInput(f"vote period: must be >= 0 epochs, got {vote_period_epochs}")
    quorum = to_stake(vote_quorum, "vote quorum")
    trusted = tuple(dict.fromkeys(k.lower() for k in signer_set))
    effective = len(trusted) if threshold is None else threshold
    problem = threshold_problem(effective, len(trusted))
    if problem is not None:
        raise QuorumError(f"ReleaseVote for {build_hash[:16]}… refused: {problem}")
    if store.find_proposal(build_hash) is not None:
        raise DuplicateRelease(f"build {build_hash} has already been proposed")
    result = evaluate_quorum(build_hash, attestations, trusted, effective)
    if not result.met:
        store.increment(QUORUM_FAIL)
        raise QuorumError(f"ReleaseVote for {build_hash[:16]}… refused: {result.describe()}")
    # Store one verified attestation per counted key: the first that parses and verifies
    # (an earlier bad signature by the same key must not be the one kept).
    valid = frozenset(result.valid)
    kept: dict[str, Attestation] = {}
    for attestation in attestations:
        try:
            parsed = Attestation.parse(attestation.signer, attestation.signature)
        except MalformedInput:
            continue
        if (
            parsed.signer in valid
            and parsed.signer not in kept
            and verify_release(parsed.signer, build_hash, parsed.signature)
        ):
            kept[parsed.signer] = parsed
    proposal_id = store.insert_proposal(
        build_hash=build_hash,
        proposer=proposer,
        threshold=effective,
        signer_set=trusted,
        attestations=tuple(kept.values()),
        created_epoch=epoch,
        deadline_epoch=epoch + vote_period_epochs,
        vote_quorum=quorum,
    )
    proposal = store.get_proposal(proposal_id)
    assert proposal is not None
    return proposal


def _require_proposal(store: GovernanceStore, proposal_id: int) -> Proposal:
    proposal = store.get_proposal(proposal_id)
    if proposal is None:
        raise UnknownProposal(f"--id: no proposal with id {proposal_id}")
    return proposal


def cast_vote(
    store: GovernanceStore,
    proposal_id: int,
    *,
    voter: str,
    weight: float | Fraction | str,
    choice: str,
    epoch: int,
) -> Vote:
    """Record ``voter``'s vote (replacing an earlier one); counts ``release_votes_total``.

    ``weight`` is converted exactly (``to_stake``): a float counts with its exact value."""
    if choice not in CHOICES:
        raise MalformedInput(f"--choice: must be one of {', '.join(CHOICES)}, got {choice!r}")
    exact = to_stake(weight, "--weight")
    if not voter:
        raise MalformedInput("--voter: must not be empty")
    vote = Vote(proposal_id, voter, exact, choice, epoch)
    with store.transaction():
        proposal = _require_proposal(store, proposal_id)
        if proposal.status != "open":
            raise VoteRefused(f"proposal {proposal_id} is {proposal.status}; voting is closed")
        if epoch > proposal.deadline_epoch:
            raise VoteRefused(
                f"proposal {proposal_id}: vote at epoch {epoch} is after the deadline "
                f"epoch {proposal.deadline_epoch}"
            )
        store.put_vote(vote)
        store.increment(VOTES, choice=choice)
    return vote


def count_votes(proposal: Proposal, votes: Sequence[Vote]) -> Tally:
    """Pure tally in exact arithmetic: activated when yes >= vote quorum and yes > no."""
    weights = {c: Fraction(0) for c in CHOICES}
    for vote in votes:
        weights[vote.choice] += to_stake(vote.weight, f"weight of {vote.voter}")
    yes, no = weights["yes"], weights["no"]
    quorum = to_stake(proposal.vote_quorum, "vote quorum")
    passed = yes >= quorum and yes > no
    return Tally(
        proposal.id, yes, no, weights["abstain"], quorum, "activated" if passed else "rejected"
    )


def tally(store: GovernanceStore, proposal_id: int, *, epoch: int) -> Tally:
    """Count the votes at or after the deadline; activate or reject the proposal."""
    with store.transaction():
        proposal = _require_proposal(store, proposal_id)
        if proposal.status != "open":
            raise VoteRefused(f"proposal {proposal_id} is already {proposal.status}")
        if epoch < proposal.deadline_epoch:
            raise VoteRefused(
                f"proposal {proposal_id}: cannot tally at epoch {epoch}, before the deadline "
                f"epoch {proposal.deadline_epoch}"
            )
        result = count_votes(proposal, store.votes(proposal_id))
        if result.passed:
            store.set_status(proposal_id, "activated", epoch)
            store.put_approved(
                ApprovedRelease(
                    build_hash=proposal.build_hash,
                    proposal_id=proposal.id,
                    proposer=proposal.proposer,
                    activated_epoch=epoch,
                    signer_set=proposal.signer_set,
                    threshold=proposal.threshold,
                    attestations=proposal.attestations,
                )
            )
        else:
            store.set_status(proposal_id, "rejected", None)
    return result


def approve_release(
    store: GovernanceStore,
    proposal_id: int,
    *,
    voter: str,
    weight: float | Fraction | str = 1,
    epoch: int,
) -> Proposal:
    """Vote yes; when the deadline has been reached, tally. Returns the proposal after it."""
    with store.transaction():
        cast_vote(store, proposal_id, voter=voter, weight=weight, choice="yes", epoch=epoch)
        proposal = _require_proposal(store, proposal_id)
        if epoch >= proposal.deadline_epoch:
            tally(store, proposal_id, epoch=epoch)
        updated = store.get_proposal(proposal_id)
    assert updated is not None
    return updated


def chain_epoch(store: GovernanceStore) -> int:
    """The store's current chain epoch: the latest epoch at which anything was recorded.

    A store has no clock of its own: time advances only when a caller acts at a later
    epoch (the CLI's ``--epoch``, the simulator's ``env.now // epoch_s``). A new store is
    at epoch 0.
    """
    return store.latest_epoch()


@dataclass(frozen=True, slots=True)
class SignerView:
    """``gov.release_signers``: the active signers and the most recently applied threshold."""

    signers: tuple[str, ...]
    threshold: int

    def to_dict(self) -> dict[str, object]:
        return {"signers": list(self.signers), "threshold": self.threshold}


def release_signers(store: GovernanceStore, signer_set: Sequence[str]) -> SignerView:
    """The configured signers; threshold of the latest activation, else the set size."""
    trusted = tuple(dict.fromkeys(k.lower() for k in signer_set))
    latest = store.latest_threshold()
    return SignerView(trusted, len(trusted) if latest is None else latest)
