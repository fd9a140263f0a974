"""A table of quorum cases for ``evaluate_quorum`` / ``require_quorum``."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from releasesim.model.crypto import ReleaseSigner, build_hash_of
from releasesim.model.errors import QuorumError
from releasesim.model.quorum import Attestation, evaluate_quorum, require_quorum

S = [ReleaseSigner.derived(f"quorum-{i}") for i in range(4)]
K = [s.public_key for s in S]
OUTSIDER = ReleaseSigner.derived("quorum-outsider")
H = build_hash_of(b"artifact v1")
H2 = build_hash_of(b"artifact v2")


def att(i: int, build_hash: str = H) -> Attestation:
    return Attestation(K[i], S[i].attest(build_hash))


def over(i: int, message: bytes) -> Attestation:
    """Signer ``i``'s signature over an arbitrary message."""
    return Attestation(K[i], S[i].sign(message))


@dataclass(frozen=True)
class Case:
    name: str
    attestations: tuple[Attestation, ...]
    signer_set: tuple[str, ...]
    threshold: object
    met: bool
    valid: tuple[str, ...] = ()
    invalid: tuple[tuple[str, str], ...] = ()  # (signer as reported, fragment of the reason)
    problem: str | None = None  # fragment of the problem, when the evaluation cannot run
    build_hash: object = H

    @property
    def missing(self) -> tuple[str, ...]:
        if self.problem is not None:
            trusted = dict.fromkeys(k.lower() for k in self.signer_set)
            return tuple(trusted)
        return tuple(k for k in dict.fromkeys(x.lower() for x in self.signer_set)
                     if k not in self.valid)


SET3 = (K[0], K[1], K[2])
BAD = "signature does not verify"
UNTRUSTED = "not a trusted signer"

CASES = [
    # distinct signers
    Case("2-of-3 met", (att(0), att(1)), SET3, 2, True, valid=(K[0], K[1])),
    Case("3-of-3 met in any order", (att(2), att(0), att(1)), SET3, 3, True,
         valid=(K[2], K[0], K[1])),
    Case("one key three times counts once (GHSA-pwqf-9h7j-7mv8)", (att(0),) * 3, SET3, 2, False,
         valid=(K[0],)),
    Case("one key in three letter cases counts once",
         (att(0), Attestation(K[0].upper(), att(0).signature),
          Attestation(K[0], att(0).signature.upper())), SET3, 2, False, valid=(K[0],)),
    Case("no attestations", (), SET3, 1, False),
    # wrong message
    Case("signature over another hash", (att(0), att(1, H2)), SET3, 2, False, valid=(K[0],),
         invalid=((K[1], BAD),)),
    Case("signature over release: + uppercase hash",
         (att(0), over(1, b"release:" + H.upper().encode())), SET3, 2, False, valid=(K[0],),
         invalid=((K[1], BAD),)),
    Case("signature over the hash without prefix", (att(0), over(1, H.encode())), SET3, 2,
         False, valid=(K[0],), invalid=((K[1], BAD),)),
    Case("signature over the raw digest bytes", (att(0), over(1, bytes.fromhex(H))), SET3, 2,
         False, valid=(K[0],), invalid=((K[1], BAD),)),
    Case("another signer's signature under my key",
         (att(0), Attestation(K[1], att(0).signature)), SET3, 2, False, valid=(K[0],),
         invalid=((K[1], BAD),)),
    Case("a bad attempt then a good one by the same key", (over(0, b"junk"), att(0)), SET3, 1,
         True, valid=(K[0],), invalid=((K[0], BAD),)),
    # unknown signer
    Case("unknown signer does not count",
         (att(0), Attestation(OUTSIDER.public_key, OUTSIDER.attest(H))), SET3, 2, False,
         valid=(K[0],), invalid=((OUTSIDER.public_key, UNTRUSTED),)),
    Case("unknown signer beside a met quorum",
         (Attestation(OUTSIDER.public_key.upper(), OUTSIDER.attest(H)), att(0)), SET3, 1, True,
         valid=(K[0],), invalid=((OUTSIDER.public_key, UNTRUSTED),)),
    # threshold bounds
    Case("threshold 0 is unusable", (att(0), att(1), att(2)), SET3, 0, False,
         problem="outside 1..3"),
    Case("threshold n+1 is unusable", (att(0), att(1), att(2)), SET3, 4, False,
         problem="outside 1..3"),
    Case("threshold -1 is unusable", (att(0),), SET3, -1, False, problem="outside 1..3"),
    Case("threshold n with all n", (att(0), att(1), att(2)), SET3, 3, True,
         valid=(K[0], K[1], K[2])),
    Case("threshold n with n-1", (att(0), att(1)), SET3, 3, False, valid=(K[0], K[1])),
    Case("threshold 1 with one", (att(2),), SET3, 1, True, valid=(K[2],)),
    Case("threshold True is not an integer", (att(0), att(1)), SET3, True, False,
         problem="integer"),
    Case("threshold 2.0 is not an integer", (att(0), att(1)), SET3, 2.0, False,
         problem="integer"),
    Case("threshold '2' is not an integer", (att(0), att(1)), SET3, "2", False,
         problem="integer"),
    Case("duplicate keys in the signer set do not inflate n", (att(0), att(1)),
         (K[0], K[0].upper(), K[1]), 3, False, problem="outside 1..2"),
    # letter case
    Case("uppercase signer set, lowercase attestations", (att(0), att(1)),
         tuple(k.upper() for k in SET3), 2, True, valid=(K[0], K[1])),
    Case("uppercase keys and signatures",
         tuple(Attestation(a.signer.upper(), a.signature.upper()) for a in (att(0), att(1))),
         SET3, 2, True, valid=(K[0], K[1])),
    Case("uppercase build hash", (att(0), att(1)), SET3, 2, True, valid=(K[0], K[1]),
         build_hash=H.upper()),
    # rotation of the configured set: 0 removed, 3 added
    Case("rotation: a removed key stops counting", (att(0), att(1)), (K[1], K[2], K[3]), 2,
         False, valid=(K[1],), invalid=((K[0], UNTRUSTED),)),
    Case("rotation: a new key counts", (att(0), att(1), att(3)), (K[1], K[2], K[3]), 2, True,
         valid=(K[1], K[3]), invalid=((K[0], UNTRUSTED),)),
    Case("before rotation the new key is unknown", (att(3), att(1)), SET3, 2, False,
         valid=(K[1],), invalid=((K[3], UNTRUSTED),)),
    # no signers configured
    Case("no signers configured", (att(0),), (), 1, False, problem="no release signers"),
    Case("no signers configured, threshold 0", (att(0),), (), 0, False,
         problem="no release signers"),
    # malformed input inside attestations: invalid, never an exception
    Case("malformed hex inside attestations",
         (Attestation("zz" * 32, att(0).signature), Attestation(K[0], "0x" + "00" * 63),
          Attestation(K[1], att(1).signature[:-2]), Attestation(K[2][:-2], att(2).signature),
          att(2)),
         SET3, 1, True, valid=(K[2],),
         invalid=(("zz" * 32, "not hexadecimal"), (K[0], "0x"), (K[1], "expected 64 bytes"),
                  (K[2][:-2], "expected 32 bytes"))),
    Case("malformed build hash", (att(0),), SET3, 1, False, problem="hash",
         build_hash="0x" + H[2:]),
    Case("build hash of the wrong type", (att(0),), SET3, 1, False, problem="hash",
         build_hash=None),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_evaluate_quorum(case: Case):
    result = evaluate_quorum(case.build_hash, case.attestations, case.signer_set, case.threshold)
    assert result.met is case.met
    assert result.valid == case.valid
    assert result.missing == case.missing
    assert len(result.invalid) == len(case.invalid)
    for got, (signer, reason) in zip(result.invalid, case.invalid, strict=True):
        assert got.signer == signer
        assert reason in got.reason
    if case.problem is None:
        assert result.problem is None
    else:
        assert result.problem is not None and case.problem in result.problem
        assert case.problem in result.describe()
    assert result.threshold == case.threshold
    assert "\n" not in result.describe()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_require_quorum_raises_exactly_when_not_met(case: Case):
    if case.met:
        result = require_quorum(case.build_hash, case.attestations, case.signer_set,
                                case.threshold)
        assert result.valid == case.valid
    else:
        with pytest.raises(QuorumError) as info:
            require_quorum(case.build_hash, case.attestations, case.signer_set, case.threshold)
        assert "\n" not in str(info.value)


def test_describe_counts_valid_against_threshold():
    result = evaluate_quorum(H, (att(0), att(1, H2)), SET3, 2)
    text = result.describe()
    assert text.startswith("1 of 2 required")
    assert BAD in text


def test_evaluation_is_repeatable_and_accepts_any_iterable():
    pool = [att(0), att(1)]
    first = evaluate_quorum(H, iter(pool), list(SET3), 2)
    second = evaluate_quorum(H, (a for a in pool), SET3, 2)
    assert first.met and second.met
    assert first.valid == second.valid == (K[0], K[1])


def test_attestation_parse_is_strict_and_lowercases():
    a = att(0)
    parsed = Attestation.parse(a.signer.upper(), a.signature.upper(), position=2)
    assert parsed == a
    with pytest.raises(Exception, match="--signer #2"):
        Attestation.parse("abc", a.signature, position=2)
    with pytest.raises(Exception, match="--signature #3"):
        Attestation.parse(a.signer, "abc", position=3)
