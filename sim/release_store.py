"""The release store simulated nodes install against: the real store, approvals cached.

A ``model.update.ReleaseStore`` for ten thousand nodes: installs go straight to the real
``GovernanceStore``; approvals are read once per build and tally (``sim.validators``
clears the cache after every tally). Imports ``model.store`` only.
"""

from __future__ import annotations

from releasesim.model.store import ApprovedRelease, GovernanceStore


class SimReleaseStore:
    """The ``releasesim.model.update.ReleaseStore`` the nodes use: the real store, approvals cached.

    ``record_install`` goes straight to the real store (it counts
    ``release_installs_total`` and clamps install times). ``get_approved`` answers from a
    cache of the real store's answers that the World clears after every tally (the only
    way approvals change), so ten thousand nodes do not decode the same row each. The
    answer is always the real store's.
    """

    __slots__ = ("store", "_approved")

    def __init__(self, store: GovernanceStore) -> None:
        self.store = store
        self._approved: dict[str, ApprovedRelease | None] = {}

    def get_approved(self, build_hash: str) -> ApprovedRelease | None:
        try:
            return self._approved[build_hash]
        except KeyError:
            approved = self.store.get_approved(build_hash)
            self._approved[build_hash] = approved
            return approved

    def record_install(self, build_hash: str, node_id: str, ts: float) -> float:
        return self.store.record_install(build_hash, node_id, ts)

    def invalidate(self) -> None:
        self._approved.clear()


__all__ = ["SimReleaseStore"]
