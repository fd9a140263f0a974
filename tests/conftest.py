"""Shared fixtures: deterministic release signers and a fresh in-memory governance store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from releasesim.model.crypto import ReleaseSigner
from releasesim.model.store import GovernanceStore


@pytest.fixture
def signers() -> list[ReleaseSigner]:
    """Five deterministic Ed25519 signers (``ReleaseSigner.derived("signer-0")`` ...)."""
    return [ReleaseSigner.derived(f"signer-{i}") for i in range(5)]


@pytest.fixture
def store() -> Iterator[GovernanceStore]:
    """A fresh in-memory governance store, closed after the test."""
    with GovernanceStore.memory() as fresh:
        yield fresh
