"""Hypothesis properties of the quorum rule over a fixed pool of keys."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from releasesim.model.crypto import ReleaseSigner, build_hash_of
from releasesim.model.errors import QuorumError
from releasesim.model.quorum import Attestation, evaluate_quorum, require_quorum

TRUSTED = [ReleaseSigner.derived(f"props-trusted-{i}") for i in range(6)]
UNTRUSTED = [ReleaseSigner.derived(f"props-untrusted-{i}") for i in range(2)]
POOL = TRUSTED + UNTRUSTED
SIGNER_SET = tuple(s.public_key for s in TRUSTED)
H = build_hash_of(b"props artifact")
OTHER = build_hash_of(b"props other artifact")

# Signature kinds for an attestation claimed by POOL[i].
KINDS = ("good", "other-hash", "borrowed", "bare-hash", "malformed")
_SIGNATURES = {
    (i, kind): {
        "good": s.attest(H),
        "other-hash": s.attest(OTHER),
        "borrowed": POOL[(i + 1) % len(POOL)].attest(H),
        "bare-hash": s.sign(H.encode()),
        "malformed": s.attest(H)[:-2],
    }[kind]
    for i, s in enumerate(POOL)
    for kind in KINDS
}

SPEC = st.tuples(
    st.integers(0, len(POOL) - 1),
    st.sampled_from(KINDS),
    st.booleans(),  # uppercase key
    st.booleans(),  # uppercase signature
)
THRESHOLD = st.integers(1, len(TRUSTED))


def build(spec: tuple[int, str, bool, bool]) -> Attestation:
    index, kind, upper_key, upper_sig = spec
    key = POOL[index].public_key
    signature = _SIGNATURES[(index, kind)]
    return Attestation(key.upper() if upper_key else key,
                       signature.upper() if upper_sig else signature)


def expected_valid(specs: list[tuple[int, str, bool, bool]]) -> set[str]:
    """Model: the trusted keys that carry at least one good signature."""
    return {POOL[i].public_key for i, kind, _, _ in specs if i < len(TRUSTED) and kind == "good"}


@settings(max_examples=150, deadline=None)
@given(specs=st.lists(SPEC, max_size=14), threshold=THRESHOLD)
def test_met_iff_enough_distinct_trusted_valid_keys(specs, threshold):
    attestations = [build(s) for s in specs]
    result = evaluate_quorum(H, attestations, SIGNER_SET, threshold)
    model_valid = expected_valid(specs)
    assert set(result.valid) == model_valid
    assert len(result.valid) == len(set(result.valid))
    assert set(result.missing) == set(SIGNER_SET) - model_valid
    assert result.met == (len(model_valid) >= threshold)
    if result.met:
        assert require_quorum(H, attestations, SIGNER_SET, threshold).met
    else:
        try:
            require_quorum(H, attestations, SIGNER_SET, threshold)
        except QuorumError:
            pass
        else:
            raise AssertionError("require_quorum did not raise on a short quorum")


@settings(max_examples=100, deadline=None)
@given(data=st.data(), specs=st.lists(SPEC, max_size=12), threshold=THRESHOLD)
def test_permutation_invariance(data, specs, threshold):
    attestations = [build(s) for s in specs]
    shuffled = data.draw(st.permutations(attestations))
    a = evaluate_quorum(H, attestations, SIGNER_SET, threshold)
    b = evaluate_quorum(H, shuffled, SIGNER_SET, threshold)
    assert set(a.valid) == set(b.valid)
    assert set(a.missing) == set(b.missing)
    assert a.met == b.met


@settings(max_examples=100, deadline=None)
@given(
    data=st.data(),
    specs=st.lists(SPEC, max_size=12),
    bad=SPEC.filter(lambda s: s[1] != "good" or s[0] >= len(TRUSTED)),
    threshold=THRESHOLD,
)
def test_adding_an_invalid_attestation_never_changes_valid(data, specs, bad, threshold):
    attestations = [build(s) for s in specs]
    position = data.draw(st.integers(0, len(attestations)))
    extended = attestations[:position] + [build(bad)] + attestations[position:]
    before = evaluate_quorum(H, attestations, SIGNER_SET, threshold)
    after = evaluate_quorum(H, extended, SIGNER_SET, threshold)
    assert set(after.valid) == set(before.valid)
    assert after.met == before.met


@settings(max_examples=100, deadline=None)
@given(
    data=st.data(),
    specs=st.lists(SPEC, min_size=1, max_size=8),
    threshold=THRESHOLD,
)
def test_duplicating_attestations_never_changes_the_outcome(data, specs, threshold):
    attestations = [build(s) for s in specs]
    extra = data.draw(st.lists(st.sampled_from(attestations), max_size=10))
    before = evaluate_quorum(H, attestations, SIGNER_SET, threshold)
    after = evaluate_quorum(H, attestations + extra, SIGNER_SET, threshold)
    assert set(after.valid) == set(before.valid)
    assert after.met == before.met


HEXISH = st.text(alphabet="0123456789abcdefABCDEFx \n,#", max_size=140)
ANY_TEXT = st.one_of(st.text(max_size=140), HEXISH)


@settings(max_examples=200, deadline=None)
@given(
    build_hash=ANY_TEXT,
    pairs=st.lists(st.tuples(ANY_TEXT, ANY_TEXT), max_size=5),
    signer_set=st.lists(ANY_TEXT, max_size=5),
    threshold=st.one_of(st.integers(-3, 8), st.booleans()),
)
def test_evaluate_quorum_never_raises_on_arbitrary_text(build_hash, pairs, signer_set, threshold):
    result = evaluate_quorum(
        build_hash, [Attestation(s, g) for s, g in pairs], signer_set, threshold
    )
    assert isinstance(result.met, bool)
    assert set(result.valid) <= {k.lower() for k in signer_set}
    assert len(result.valid) == len(set(result.valid))
    assert isinstance(result.describe(), str)
