"""BLAKE3 build hashes, the attested release message and Ed25519 through PyNaCl.

Strict parsing of the wire formats (``../shared/reference/release-flow-semantics.md``):
hex in any letter case, no ``0x``, normalised to lowercase; a build hash is 32 bytes,
an Ed25519 public key 32 bytes, a signature 64 bytes. ``verify`` is a pure function
of its exact inputs and is memoised (allowed: the answer is never faked).

Imports nothing from the project but ``releasesim.model.errors``.
"""

from __future__ import annotations

import functools
import hashlib

import blake3
from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import SigningKey, VerifyKey

from releasesim.model.errors import MalformedInput

HASH_BYTES = 32
KEY_BYTES = 32
SIGNATURE_BYTES = 64
RELEASE_PREFIX = b"release:"
_HEX = frozenset("0123456789abcdef")


def parse_hex(text: object, nbytes: int, what: str) -> str:
    """Return ``text`` as lowercase hex of exactly ``nbytes`` bytes, or raise naming ``what``.

    Values already accepted are answered from a bounded memo of exact strings (``_VALID``):
    a simulated fleet parses the same few hashes and keys hundreds of thousands of times.
    """
    if type(text) is str:
        valid = _VALID.get((text, nbytes))
        if valid is not None:
            return valid
    if not isinstance(text, str):
        raise MalformedInput(f"{what}: expected a hex string, got {type(text).__name__}")
    lowered = text.lower()
    if lowered.startswith("0x"):
        raise MalformedInput(f"{what}: hex must not start with 0x: {_show(text)}")
    if not lowered or not set(lowered) <= _HEX:
        raise MalformedInput(f"{what}: not hexadecimal: {_show(text)}")
    if len(lowered) != 2 * nbytes:
        raise MalformedInput(
            f"{what}: expected {nbytes} bytes ({2 * nbytes} hex characters), "
            f"got {len(lowered)} characters: {_show(text)}"
        )
    if type(text) is str:
        if len(_VALID) >= VALID_MAX:
            _VALID.clear()
        _VALID[(text, nbytes)] = lowered
    return lowered


VALID_MAX = 4096
_VALID: dict[tuple[str, int], str] = {}
"""Exact strings already accepted by ``parse_hex``, with their lowercase form (bounded)."""


def _show(text: str, limit: int = 24) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def parse_hash(text: object, what: str = "hash") -> str:
    """A BLAKE3-256 build hash: 64 hex characters, returned in lowercase."""
    return parse_hex(text, HASH_BYTES, what)


def parse_public_key(text: object, what: str = "signer key") -> str:
    """An Ed25519 public key: 64 hex characters, returned in lowercase."""
    return parse_hex(text, KEY_BYTES, what)


def parse_signature(text: object, what: str = "signature") -> str:
    """An Ed25519 signature: 128 hex characters, returned in lowercase."""
    return parse_hex(text, SIGNATURE_BYTES, what)


def blake3_hex(data: bytes) -> str:
    """BLAKE3-256 of ``data`` as lowercase hex: the build hash of an artifact."""
    return blake3.blake3(data).hexdigest()


@functools.lru_cache(maxsize=4096)
def _blake3_cached(data: bytes) -> str:
    return blake3_hex(data)


def build_hash_of(data: bytes) -> str:
    """BLAKE3 build hash, memoised on the exact bytes (simulated fleets hash one artifact often)."""
    return _blake3_cached(data)


def release_message(build_hash: str) -> bytes:
    """The attested message: ASCII ``release:`` + the lowercase 64-hex build hash (72 bytes)."""
    return RELEASE_PREFIX + parse_hash(build_hash).encode("ascii")


@functools.lru_cache(maxsize=65536)
def verify(public_key_hex: str, message: bytes, signature_hex: str) -> bool:
    """True when ``signature_hex`` is a valid Ed25519 signature of ``message`` by the key.

    Never raises on bad signatures or keys that are not curve points; inputs must
    already be parsed hex of the right lengths.
    """
    try:
        VerifyKey(bytes.fromhex(public_key_hex)).verify(message, bytes.fromhex(signature_hex))
    except (BadSignatureError, CryptoError, ValueError):
        return False
    return True


def verify_release(public_key_hex: str, build_hash: str, signature_hex: str) -> bool:
    """True when the signature attests ``release:<build_hash>`` for the key."""
    return verify(public_key_hex, release_message(build_hash), signature_hex)


class ReleaseSigner:
    """An Ed25519 key that attests build hashes (build infrastructure, simulated signers)."""

    __slots__ = ("_key", "public_key")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise MalformedInput(f"signing seed: expected 32 bytes, got {len(seed)}")
        self._key = SigningKey(seed)
        self.public_key: str = self._key.verify_key.encode().hex()

    @classmethod
    def from_hex(cls, seed_hex: str) -> ReleaseSigner:
        return cls(bytes.fromhex(parse_hex(seed_hex, 32, "signing seed")))

    @classmethod
    def derived(cls, label: str) -> ReleaseSigner:
        """A deterministic key for tests and simulations: seed = SHA-256 of ``label``."""
        return cls(hashlib.sha256(label.encode()).digest())

    def sign(self, message: bytes) -> str:
        return self._key.sign(message).signature.hex()

    def attest(self, build_hash: str) -> str:
        """Signature over ``release:<build_hash>`` as lowercase hex."""
        return self.sign(release_message(build_hash))
