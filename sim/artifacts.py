"""Simulated build artifacts: real bytes with their real BLAKE3 build hash.

What the World and the actors that build releases (release manager, adversary) share,
kept below all of them so no actor imports ``sim.world``. Imports ``numpy`` and
``model.crypto`` only.
"""

from __future__ import annotations

import numpy as np

from releasesim.model.crypto import blake3_hex

ARTIFACT_BYTES = 4096
"""Real bytes per simulated artifact (its *simulated* size is ``release.artifact_size_mb``)."""


def make_artifact(rng: np.random.Generator, label: str) -> tuple[bytes, str]:
    """Real artifact bytes (header + random body) and their real BLAKE3 build hash."""
    data = f"releasesim artifact {label}\n".encode() + rng.bytes(ARTIFACT_BYTES)
    return data, blake3_hex(data)


__all__ = ["ARTIFACT_BYTES", "make_artifact"]
