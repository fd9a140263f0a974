"""Typed errors of the release flow, one root per origin.

- ``ReleaseError``: the release rules refused something (CLI exit code 1):
  ``QuorumError``, ``DigestMismatch``, ``SignatureInvalid``, ``Unauthorized``,
  ``RollbackUnavailable``, ``DuplicateRelease``, ``VoteRefused``.
- ``InputError``: the input cannot be used at all (exit code 2): ``MalformedInput``
  (bad hex, wrong length), ``SignerConfigError``, ``UnknownProposal``.
- ``SourceError``: the release source could not deliver (exit code 2); third-party
  network exceptions are wrapped in it, never leaked.
- ``SlotError``: a local file of the node (binary, backup, staged artifact, audit log)
  cannot be read or written (exit code 2).
- ``StoreError``: the governance store is unusable (corrupt, foreign, newer schema)
  (exit code 2).

Every error message is one line naming the input and what is wrong with it.
This module imports nothing from the project.
"""

from __future__ import annotations


class ReleasesimError(Exception):
    """Base of every error the CLI reports as one line (never a traceback)."""

    exit_code: int = 2


class ReleaseError(ReleasesimError):
    """The release rules refused the request."""

    exit_code = 1


class QuorumError(ReleaseError):
    """Too few valid, distinct attestations from trusted signers."""


class DigestMismatch(ReleaseError):
    """The artifact's BLAKE3 digest is not the build hash it was fetched for."""


class SignatureInvalid(ReleaseError):
    """A signature does not verify for its signer and the attested message."""


class Unauthorized(ReleaseError):
    """The build hash has not been approved by governance."""


class RollbackUnavailable(ReleaseError):
    """A rollback was needed but no previous binary exists."""


class DuplicateRelease(ReleaseError):
    """The build hash has already been proposed."""


class VoteRefused(ReleaseError):
    """A vote or tally that the vote rules do not allow (closed, past deadline, ...)."""


class InputError(ReleasesimError):
    """The input is unusable (malformed, unknown, missing)."""

    exit_code = 2


class MalformedInput(InputError):
    """A key, hash, signature or other value does not parse."""


class SignerConfigError(InputError):
    """The trusted signer configuration contains an invalid token."""


class UnknownProposal(InputError):
    """No proposal with that id exists in the store."""


class SourceError(ReleasesimError):
    """The release source failed: missing URL, HTTP error, timeout, too large."""

    exit_code = 2


class SlotError(ReleasesimError):
    """A local file of the node (binary, backup, staged artifact, audit log) cannot be
    read or written."""

    exit_code = 2


class StoreError(ReleasesimError):
    """The governance store is unusable: corrupt, foreign or from a newer version."""

    exit_code = 2
