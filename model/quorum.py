"""The k-of-n attestation quorum rule, shared by governance and the updater.

``evaluate_quorum`` is pure and never raises: it returns a ``QuorumResult`` with the
threshold, the valid distinct signers, the trusted signers that are missing and the
attestations that are invalid (bad hex, untrusted key, or a signature that does not
verify over ``release:<hash>``). Each trusted key counts once, whatever its letter
case or how often it appears (cf. python-tuf GHSA-pwqf-9h7j-7mv8).
``require_quorum`` raises ``QuorumError`` on a short result.

Imports only ``releasesim.model.crypto`` and ``releasesim.model.errors``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from releasesim.model.crypto import parse_hash, parse_public_key, parse_signature, verify_release
from releasesim.model.errors import MalformedInput, QuorumError


@dataclass(frozen=True, slots=True)
class Attestation:
    """A signer's claim that it attests a build: hex public key and hex signature."""

    signer: str
    signature: str

    @classmethod
    def parse(cls, signer: str, signature: str, position: int | None = None) -> Attestation:
        """Strictly parse both hex values (lowercased); raises ``MalformedInput`` naming them."""
        where = f" #{position}" if position is not None else ""
        return cls(
            parse_public_key(signer, f"--signer{where}"),
            parse_signature(signature, f"--signature{where}"),
        )

    def to_dict(self) -> dict[str, str]:
        return {"signer": self.signer, "signature": self.signature}


@dataclass(frozen=True, slots=True)
class InvalidAttestation:
    """An attestation that did not count, and why."""

    signer: str
    reason: str


@dataclass(frozen=True, slots=True)
class QuorumResult:
    """The outcome of a quorum evaluation; ``met`` tells whether it passes."""

    threshold: int
    signer_set: tuple[str, ...]
    valid: tuple[str, ...]
    missing: tuple[str, ...]
    invalid: tuple[InvalidAttestation, ...]
    problem: str | None = None

    @property
    def met(self) -> bool:
        return self.problem is None and len(self.valid) >= self.threshold

    def describe(self) -> str:
        """One line for an error message or a report."""
        if self.problem is not None:
            return self.problem
        text = f"{len(self.valid)} of {self.threshold} required valid distinct attestations"
        if self.invalid:
            text += "; invalid: " + ", ".join(
                f"{a.signer[:16] or '?'}… ({a.reason})" for a in self.invalid
            )
        return text


def threshold_problem(threshold: int, set_size: int) -> str | None:
    """Why ``threshold`` is unusable for a signer set of ``set_size`` keys, or None."""
    if set_size == 0:
        return "no release signers are configured; attestations cannot be verified"
    if isinstance(threshold, bool) or not isinstance(threshold, int):
        return f"threshold must be an integer, got {threshold!r}"
    if not 1 <= threshold <= set_size:
        return f"threshold {threshold} is outside 1..{set_size} (the signer set size)"
    return None


def evaluate_quorum(
    build_hash: str,
    attestations: Iterable[Attestation],
    signer_set: Sequence[str],
    threshold: int,
) -> QuorumResult:
    """Count valid, distinct, trusted attestations of ``release:<build_hash>``. Never raises.

    Pure, so it is memoised on its exact inputs (a simulated fleet verifies the same
    release many times); unhashable inputs are evaluated without the cache. The same
    tuple objects asked again (ten thousand nodes checking one approval) are answered
    by identity first, without hashing every attestation (``_RECENT``).
    """
    if type(attestations) is tuple and type(signer_set) is tuple:
        key = (build_hash, id(attestations), id(signer_set), threshold)
        recent = _RECENT.get(key)
        if recent is not None and recent[0] is attestations and recent[1] is signer_set:
            return recent[2]
    else:
        attestations = tuple(attestations)
        signer_set = tuple(signer_set)
        key = None
    try:
        result = _evaluate_cached(build_hash, attestations, signer_set, threshold)
    except TypeError:
        return _evaluate(build_hash, attestations, signer_set, threshold)
    if key is not None:
        if len(_RECENT) >= RECENT_MAX:
            _RECENT.clear()
        # the entry holds the tuples themselves, so their ids cannot be reused while it
        # lives; tuples of frozen attestations and strings cannot change
        _RECENT[key] = (attestations, signer_set, result)
    return result


RECENT_MAX = 256
_RECENT: dict[tuple[object, int, int, object], tuple[tuple, tuple, QuorumResult]] = {}
"""Results by the identity of their attestation and signer-set tuples (bounded)."""


@functools.lru_cache(maxsize=1024, typed=True)
def _evaluate_cached(
    build_hash: str,
    attestations: tuple[Attestation, ...],
    signer_set: tuple[str, ...],
    threshold: int,
) -> QuorumResult:
    return _evaluate(build_hash, attestations, signer_set, threshold)


def _evaluate(
    build_hash: str,
    attestations: tuple[Attestation, ...],
    signer_set: tuple[str, ...],
    threshold: int,
) -> QuorumResult:
    try:
        trusted = tuple(dict.fromkeys(k.lower() for k in signer_set))
    except AttributeError:
        return QuorumResult(threshold, (), (), (), (), "signer set must contain hex strings")
    problem = threshold_problem(threshold, len(trusted))
    if problem is not None:
        return QuorumResult(threshold, trusted, (), trusted, (), problem)
    try:
        build_hash = parse_hash(build_hash)
    except MalformedInput as exc:
        return QuorumResult(threshold, trusted, (), trusted, (), str(exc))
    trusted_set = frozenset(trusted)
    valid: dict[str, None] = {}
    invalid: list[InvalidAttestation] = []
    for attestation in attestations:
        try:
            key = parse_public_key(attestation.signer)
            signature = parse_signature(attestation.signature)
        except MalformedInput as exc:
            invalid.append(InvalidAttestation(str(attestation.signer), str(exc)))
            continue
        if key in valid:
            continue
        if key not in trusted_set:
            invalid.append(InvalidAttestation(key, "not a trusted signer"))
        elif verify_release(key, build_hash, signature):
            valid[key] = None
        else:
            invalid.append(InvalidAttestation(key, "signature does not verify"))
    missing = tuple(k for k in trusted if k not in valid)
    return QuorumResult(threshold, trusted, tuple(valid), missing, tuple(invalid))


def require_quorum(
    build_hash: str,
    attestations: Iterable[Attestation],
    signer_set: Sequence[str],
    threshold: int,
) -> QuorumResult:
    """``evaluate_quorum`` that raises ``QuorumError`` when the quorum is not met."""
    result = evaluate_quorum(build_hash, attestations, signer_set, threshold)
    if not result.met:
        raise QuorumError(f"quorum not met for {str(build_hash)[:16]}…: {result.describe()}")
    return result
