"""ReleaseVote governance: propose validation, votes, tally, activation and the signer view."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest

from releasesim.model.crypto import ReleaseSigner, build_hash_of, verify_release
from releasesim.model.errors import (
    DuplicateRelease,
    MalformedInput,
    QuorumError,
    StoreError,
    UnknownProposal,
    VoteRefused,
)
from releasesim.model.governance import (
    QUORUM_FAIL,
    VOTES,
    approve_release,
    cast_vote,
    count_votes,
    propose_release,
    release_signers,
    tally,
)
from releasesim.model.quorum import Attestation
from releasesim.model.store import ApprovedRelease, GovernanceStore

H = build_hash_of(b"governance artifact 1")
H2 = build_hash_of(b"governance artifact 2")
H3 = build_hash_of(b"governance artifact 3")
OUTSIDER = ReleaseSigner.derived("governance-outsider")


def keys(signers: Sequence[ReleaseSigner]) -> tuple[str, ...]:
    return tuple(s.public_key for s in signers)


def attest(signers: Sequence[ReleaseSigner], build_hash: str, *which: int) -> list[Attestation]:
    return [Attestation(signers[i].public_key, signers[i].attest(build_hash)) for i in which]


def snapshot(store: GovernanceStore) -> tuple:
    """Everything a governance call may change."""
    return (
        store.proposals(),
        [store.votes(p.id) for p in store.proposals()],
        store.approved_releases(),
        store.counters(),
        store.installs(),
    )


class CountingAttestations(Sequence[Attestation]):
    """An attestation list that remembers whether anyone looked at it."""

    def __init__(self, items: list[Attestation]) -> None:
        self._items = items
        self.touched = False

    def __len__(self) -> int:
        self.touched = True
        return len(self._items)

    def __getitem__(self, index):  # type: ignore[override]
        self.touched = True
        return self._items[index]

    def __iter__(self) -> Iterator[Attestation]:
        self.touched = True
        return iter(self._items)


def propose(store, signers, build_hash=H, which=(0, 1, 2, 3, 4), **kwargs):
    kwargs.setdefault("signer_set", keys(signers))
    kwargs.setdefault("proposer", "alice")
    kwargs.setdefault("epoch", 10)
    return propose_release(
        store, build_hash=build_hash, attestations=attest(signers, build_hash, *which), **kwargs
    )


# -- propose ------------------------------------------------------------------------


def test_propose_persists_an_open_proposal_with_default_threshold(store, signers):
    proposal = propose(store, signers, H.upper(), vote_period_epochs=4, vote_quorum=2.5)
    assert proposal.build_hash == H
    assert proposal.threshold == len(signers)  # default: the size of the configured set
    assert proposal.signer_set == keys(signers)
    assert proposal.status == "open"
    assert proposal.proposer == "alice"
    assert (proposal.created_epoch, proposal.deadline_epoch) == (10, 14)
    assert proposal.vote_quorum == 2.5
    assert proposal.activated_epoch is None
    assert store.proposals() == [proposal]
    assert store.find_proposal(H) == proposal
    assert store.counter(QUORUM_FAIL) == 0


def test_default_threshold_counts_distinct_keys_of_the_set(store, signers):
    signer_set = keys(signers[:3]) + (signers[0].public_key.upper(),)
    proposal = propose(store, signers, which=(0, 1, 2), signer_set=signer_set)
    assert proposal.threshold == 3
    assert proposal.signer_set == keys(signers[:3])


@dataclass(frozen=True)
class Refusal:
    name: str
    error: type[Exception]
    fragment: str
    quorum_fail_delta: int
    build_hash: str = H
    which: tuple[int, ...] = (0, 1, 2)
    threshold: object = 3
    signer_set: tuple[str, ...] | None = None  # None: all signers of the fixture
    extra: tuple[Attestation, ...] = ()
    signatures_examined: bool = True


REFUSALS = [
    Refusal("quorum short", QuorumError, "2 of 3", 1, which=(0, 1)),
    Refusal("quorum short with an invalid signature", QuorumError, "2 of 3", 1, which=(0, 1),
            extra=(Attestation(OUTSIDER.public_key, OUTSIDER.attest(H)),)),
    Refusal("one key three times", QuorumError, "1 of 3", 1, which=(0, 0, 0)),
    Refusal("default threshold short", QuorumError, "4 of 5", 1, which=(0, 1, 2, 3),
            threshold=None),
    Refusal("threshold 0", QuorumError, "outside 1..5", 0, threshold=0,
            signatures_examined=False),
    Refusal("threshold n+1", QuorumError, "outside 1..5", 0, threshold=6,
            signatures_examined=False),
    Refusal("threshold True", QuorumError, "integer", 0, threshold=True,
            signatures_examined=False),
    Refusal("no signers configured", QuorumError, "no release signers", 0, threshold=None,
            signer_set=(), signatures_examined=False),
    Refusal("no signers configured, explicit threshold", QuorumError, "no release signers", 0,
            threshold=1, signer_set=(), signatures_examined=False),
    Refusal("malformed hash", MalformedInput, "--hash", 0, build_hash="0x" + H[2:],
            signatures_examined=False),
    Refusal("short hash", MalformedInput, "--hash", 0, build_hash=H[:-1],
            signatures_examined=False),
]


@pytest.mark.parametrize("case", REFUSALS, ids=[r.name for r in REFUSALS])
def test_propose_refusals_persist_nothing(store, signers, case: Refusal):
    attestations = CountingAttestations(attest(signers, H, *case.which) + list(case.extra))
    before = snapshot(store)
    with pytest.raises(case.error) as info:
        propose_release(
            store,
            build_hash=case.build_hash,
            attestations=attestations,
            signer_set=keys(signers) if case.signer_set is None else case.signer_set,
            threshold=case.threshold,
            proposer="mallory",
            epoch=1,
        )
    assert case.fragment in str(info.value)
    assert "\n" not in str(info.value)
    assert store.proposals() == []
    assert store.counter(QUORUM_FAIL) == case.quorum_fail_delta
    after = snapshot(store)
    assert after[:3] == before[:3]
    if not case.signatures_examined:
        assert after == before
        assert not attestations.touched, "signatures were examined before the cheap checks"


def test_each_short_submission_counts_once(store, signers):
    for n in range(1, 4):
        with pytest.raises(QuorumError):
            propose(store, signers, which=(0,), threshold=2)
        assert store.counter(QUORUM_FAIL) == n
    propose(store, signers, which=(0, 1), threshold=2)
    assert store.counter(QUORUM_FAIL) == 3


@pytest.mark.parametrize("spelling", [H, H.upper()])
def test_a_known_hash_cannot_be_proposed_again(store, signers, spelling):
    first = propose(store, signers, threshold=2, which=(0, 1))
    with pytest.raises(DuplicateRelease, match=H):
        propose(store, signers, spelling, threshold=2, which=(2, 3), proposer="bob")
    assert store.proposals() == [first]


def test_a_rejected_hash_cannot_be_proposed_again(store, signers):
    proposal = propose(store, signers, threshold=1, which=(0,), vote_quorum=5)
    tally(store, proposal.id, epoch=proposal.deadline_epoch)
    with pytest.raises(DuplicateRelease):
        propose(store, signers, threshold=1, which=(1,))


def _bad(signers, i, build_hash=H):
    """Signer i's key with a signature over another hash."""
    return Attestation(signers[i].public_key, signers[i].attest(H3 if build_hash == H else H))


STORED_CASES = {
    "duplicates": lambda s: attest(s, H, 0, 0, 1, 1, 0),
    "uppercase duplicates": lambda s: [
        Attestation(a.signer.upper(), a.signature.upper()) for a in attest(s, H, 0, 1)
    ] + attest(s, H, 0, 1),
    "untrusted and malformed extras": lambda s: [
        Attestation(OUTSIDER.public_key, OUTSIDER.attest(H)),
        Attestation("zz", "yy"),
        *attest(s, H, 1, 0),
    ],
    "bad signature before a good one by the same key": lambda s: [
        _bad(s, 0), *attest(s, H, 0, 1)
    ],
    "upper-case key": lambda s: [
        Attestation(a.signer.upper(), a.signature) for a in attest(s, H, 0, 1)
    ],
    "bad signature after a good one by the same key": lambda s: [
        *attest(s, H, 0, 1), _bad(s, 1)
    ],
}


@pytest.mark.parametrize("case", list(STORED_CASES))
def test_stored_attestations_are_verified_and_distinct(store, signers, case):
    attestations = STORED_CASES[case](signers)
    proposal = propose_release(
        store, build_hash=H, attestations=attestations, signer_set=keys(signers), threshold=2,
        proposer="alice", epoch=0,
    )
    stored = proposal.attestations
    assert {a.signer for a in stored} == {signers[0].public_key, signers[1].public_key}
    assert len({a.signer for a in stored}) == len(stored)
    for a in stored:
        assert a.signer == a.signer.lower() and a.signature == a.signature.lower()
        assert verify_release(a.signer, H, a.signature), f"unverified attestation stored: {a}"
    assert store.get_proposal(proposal.id) == proposal


# -- votes ----------------------------------------------------------------------------


def test_a_later_vote_replaces_the_earlier_one(store, signers):
    proposal = propose(store, signers, vote_period_epochs=5)
    cast_vote(store, proposal.id, voter="v1", weight=1, choice="yes", epoch=10)
    cast_vote(store, proposal.id, voter="v2", weight=3, choice="yes", epoch=11)
    cast_vote(store, proposal.id, voter="v1", weight=2, choice="no", epoch=12)
    votes = {v.voter: (v.weight, v.choice, v.epoch) for v in store.votes(proposal.id)}
    assert votes == {"v1": (2.0, "no", 12), "v2": (3.0, "yes", 11)}
    # every cast vote is counted by choice, replaced or not
    assert store.counter(VOTES, choice="yes") == 2
    assert store.counter(VOTES, choice="no") == 1
    assert store.counter(VOTES, choice="abstain") == 0
    result = tally(store, proposal.id, epoch=15)
    assert (result.yes, result.no, result.abstain) == (3.0, 2.0, 0.0)


def test_votes_up_to_the_deadline_count_and_later_ones_are_refused(store, signers):
    proposal = propose(store, signers, epoch=10, vote_period_epochs=5)
    assert proposal.deadline_epoch == 15
    cast_vote(store, proposal.id, voter="early", weight=1, choice="yes", epoch=10)
    cast_vote(store, proposal.id, voter="last", weight=1, choice="no", epoch=15)
    before = snapshot(store)
    with pytest.raises(VoteRefused, match="deadline"):
        cast_vote(store, proposal.id, voter="late", weight=1, choice="yes", epoch=16)
    assert snapshot(store) == before


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"choice": "maybe"}, MalformedInput, "--choice"),
        ({"weight": -1}, MalformedInput, "--weight"),
        ({"weight": float("nan")}, MalformedInput, "--weight"),
        ({"weight": float("inf")}, MalformedInput, "--weight"),
        ({"voter": ""}, MalformedInput, "--voter"),
        ({"proposal_id": 999}, UnknownProposal, "999"),
    ],
    ids=["choice", "negative-weight", "nan-weight", "inf-weight", "empty-voter", "unknown-id"],
)
def test_bad_votes_leave_the_store_unchanged(store, signers, kwargs, error, fragment):
    proposal = propose(store, signers, vote_period_epochs=5)
    args = {"proposal_id": proposal.id, "voter": "v", "weight": 1.0, "choice": "yes",
            "epoch": 11} | kwargs
    proposal_id = args.pop("proposal_id")
    before = snapshot(store)
    with pytest.raises(error, match=fragment):
        cast_vote(store, proposal_id, **args)
    assert snapshot(store) == before


def test_tally_before_the_deadline_is_refused(store, signers):
    proposal = propose(store, signers, epoch=10, vote_period_epochs=5)
    cast_vote(store, proposal.id, voter="v", weight=1, choice="yes", epoch=10)
    before = snapshot(store)
    with pytest.raises(VoteRefused, match="before the deadline"):
        tally(store, proposal.id, epoch=14)
    assert snapshot(store) == before
    with pytest.raises(UnknownProposal):
        tally(store, proposal.id + 1, epoch=99)


@dataclass(frozen=True)
class TallyCase:
    name: str
    votes: tuple[tuple[str, float, str], ...]
    vote_quorum: float
    status: str
    weights: tuple[float, float, float]  # yes, no, abstain after replacement


TALLIES = [
    TallyCase("single yes meets quorum 1", (("a", 1, "yes"),), 1.0, "activated", (1, 0, 0)),
    TallyCase("tie does not pass", (("a", 1, "yes"), ("b", 1, "no")), 1.0, "rejected",
              (1, 1, 0)),
    TallyCase("heavier tie does not pass", (("a", 3, "yes"), ("b", 3, "no"), ("c", 9, "abstain")),
              1.0, "rejected", (3, 3, 9)),
    TallyCase("yes beats no", (("a", 2, "yes"), ("b", 1, "no")), 1.0, "activated", (2, 1, 0)),
    TallyCase("narrow majority passes", (("a", 2, "yes"), ("b", 1.75, "no")), 2.0, "activated",
              (2, 1.75, 0)),
    TallyCase("yes below the vote quorum", (("a", 0.5, "yes"),), 1.0, "rejected", (0.5, 0, 0)),
    TallyCase("yes exactly at the vote quorum", (("a", 1, "yes"), ("b", 1.5, "yes")), 2.5,
              "activated", (2.5, 0, 0)),
    TallyCase("abstain only", (("a", 5, "abstain"),), 0.0, "rejected", (0, 0, 5)),
    TallyCase("no votes, quorum 0", (), 0.0, "rejected", (0, 0, 0)),
    TallyCase("zero-weight yes with quorum 0", (("a", 0, "yes"),), 0.0, "rejected", (0, 0, 0)),
    TallyCase("small yes with quorum 0", (("a", 0.25, "yes"),), 0.0, "activated", (0.25, 0, 0)),
    TallyCase("no outweighs yes", (("a", 2, "yes"), ("b", 3, "no")), 1.0, "rejected", (2, 3, 0)),
    TallyCase("replaced vote counts once", (("a", 3, "yes"), ("b", 1, "yes"), ("a", 3, "no")),
              1.0, "rejected", (1, 3, 0)),
]


@pytest.mark.parametrize("case", TALLIES, ids=[t.name for t in TALLIES])
def test_tally_rules(store, signers, case: TallyCase):
    proposal = propose(store, signers, epoch=10, vote_period_epochs=3,
                       vote_quorum=case.vote_quorum)
    for voter, weight, choice in case.votes:
        cast_vote(store, proposal.id, voter=voter, weight=weight, choice=choice, epoch=11)
    pure = count_votes(proposal, store.votes(proposal.id))
    result = tally(store, proposal.id, epoch=20)
    assert result == pure
    assert (result.yes, result.no, result.abstain) == case.weights
    assert result.status == case.status
    assert result.passed is (case.status == "activated")
    after = store.get_proposal(proposal.id)
    assert after.status == case.status
    approved = store.get_approved(H)
    if case.status == "activated":
        assert after.activated_epoch == 20
        assert approved is not None and approved.activated_epoch == 20
    else:
        assert after.activated_epoch is None
        assert approved is None
        assert store.approved_releases() == []


def test_activation_publishes_the_release_with_its_quorum_data(store, signers):
    signer_set = keys(signers[:4])
    proposal = propose(store, signers, which=(3, 1, 2), threshold=3, signer_set=signer_set,
                       epoch=7, vote_period_epochs=2, proposer="carol")
    cast_vote(store, proposal.id, voter="v", weight=1, choice="yes", epoch=8)
    assert store.get_approved(H) is None  # nothing published while the vote is open
    assert tally(store, proposal.id, epoch=12).passed
    approved = store.get_approved(H.upper())
    assert approved == ApprovedRelease(
        build_hash=H,
        proposal_id=proposal.id,
        proposer="carol",
        activated_epoch=12,
        signer_set=signer_set,
        threshold=3,
        attestations=proposal.attestations,
    )
    assert store.approved_releases() == [approved]
    activated = store.get_proposal(proposal.id)
    assert (activated.status, activated.activated_epoch) == ("activated", 12)
    with pytest.raises(VoteRefused, match="already activated"):
        tally(store, proposal.id, epoch=13)
    with pytest.raises(VoteRefused, match="closed"):
        cast_vote(store, proposal.id, voter="w", weight=1, choice="no", epoch=12)


def test_votes_total_counts_each_choice(store, signers):
    proposal = propose(store, signers, vote_period_epochs=9)
    for i, choice in enumerate(["yes", "yes", "no", "abstain", "yes", "abstain"]):
        cast_vote(store, proposal.id, voter=f"v{i}", weight=1, choice=choice, epoch=10)
    assert [store.counter(VOTES, choice=c) for c in ("yes", "no", "abstain")] == [3, 1, 2]


# -- signer view and approve ------------------------------------------------------------


def test_release_signers_view_reports_the_latest_applied_threshold(store, signers):
    config = keys(signers) + (signers[0].public_key.upper(),)
    view = release_signers(store, config)
    assert view.signers == keys(signers)
    assert view.threshold == len(signers)  # nothing applied yet
    assert view.to_dict() == {"signers": list(keys(signers)), "threshold": 5}

    first = propose(store, signers, H, which=(0, 1), threshold=2, epoch=1, vote_period_epochs=4)
    second = propose(store, signers, H2, which=(0, 1, 2, 3), threshold=4, epoch=2,
                     vote_period_epochs=4)
    rejected = propose(store, signers, H3, which=(0,), threshold=1, epoch=3, vote_quorum=9,
                       vote_period_epochs=4)
    approve_release(store, first.id, voter="v", epoch=5)
    assert release_signers(store, config).threshold == 2
    approve_release(store, second.id, voter="v", epoch=6)
    assert release_signers(store, config).threshold == 4
    approve_release(store, rejected.id, voter="v", epoch=7)  # rejected: not applied
    assert store.get_proposal(rejected.id).status == "rejected"
    assert release_signers(store, config).threshold == 4


def test_approve_release_tallies_at_the_deadline(store, signers):
    proposal = propose(store, signers, epoch=10, vote_period_epochs=3)
    after_first = approve_release(store, proposal.id, voter="v1", epoch=11)
    assert after_first.status == "open"
    assert store.get_approved(H) is None
    after_second = approve_release(store, proposal.id, voter="v2", weight=2, epoch=13)
    assert after_second.status == "activated"
    assert after_second.activated_epoch == 13
    assert store.get_approved(H).activated_epoch == 13
    assert store.counter(VOTES, choice="yes") == 2


def test_default_flow_propose_then_approve_activates(store, signers):
    proposal = propose(store, signers)  # default period 0, default vote quorum 1
    approved = approve_release(store, proposal.id, voter="operator", epoch=proposal.created_epoch)
    assert approved.status == "activated"
    assert store.get_approved(H) is not None


def test_approve_release_unknown_proposal(store):
    with pytest.raises(UnknownProposal, match="--id"):
        approve_release(store, 42, voter="v", epoch=0)


def test_a_failed_approval_rolls_back_the_vote(store, signers):
    proposal = propose(store, signers)
    # A conflicting published row makes the activation write fail after the vote was written.
    store.put_approved(ApprovedRelease(H, proposal.id, "someone", 0, (), 1, ()))
    before = snapshot(store)
    with pytest.raises((sqlite3.IntegrityError, StoreError)):
        approve_release(store, proposal.id, voter="v", epoch=10)
    assert snapshot(store) == before
    assert store.votes(proposal.id) == []
    assert store.counter(VOTES, choice="yes") == 0
    assert store.get_proposal(proposal.id).status == "open"


def test_chain_epoch_is_the_latest_recorded_epoch(store, signers):
    from releasesim.model.governance import chain_epoch

    assert chain_epoch(store) == 0
    proposal = propose_release(
        store, build_hash=H, attestations=attest(signers, H, 0, 1), signer_set=keys(signers),
        threshold=2, proposer="alice", epoch=5, vote_period_epochs=4,
    )
    assert chain_epoch(store) == 5
    cast_vote(store, proposal.id, voter="v", weight=1.0, choice="yes", epoch=7)
    assert chain_epoch(store) == 7
    tally(store, proposal.id, epoch=9)
    assert chain_epoch(store) == 9
