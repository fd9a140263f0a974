"""The release store simulated nodes install against: the real store, batched and cached.

A ``model.update.ReleaseStore`` for ten thousand nodes: approvals are read once per build
and tally (``sim.validators`` clears the cache after every tally); installs are recorded
in the real ``GovernanceStore`` in batches (``GovernanceStore.record_installs``: the same
statement per install, one transaction per batch), and the times the store recorded are
checked against the times the nodes installed at when each batch lands. Imports
``model.store`` only.
"""

from __future__ import annotations

from releasesim.model.store import ApprovedRelease, GovernanceStore

INSTALL_BATCH = 4096
"""Installs recorded per store transaction (and the most held back at any time)."""


class SimReleaseStore:
    """The ``releasesim.model.update.ReleaseStore`` the nodes use: the real store, approvals
    cached, installs recorded in batches.

    ``record_install`` queues the install and returns the time it was asked for; the
    queue goes to the real store (``record_installs``: it counts
    ``release_installs_total`` and clamps install times) every ``INSTALL_BATCH`` installs
    and at ``flush``, which the World calls when the run ends, before anything reads the
    store. ``time_mismatches`` counts recorded times that differ from the asked ones
    (invariant ``install_time_violations``). ``get_approved`` answers from a cache of the
    real store's answers that the World clears after every tally (the only way approvals
    change), so ten thousand nodes do not decode the same row each. The answer is always
    the real store's.
    """

    __slots__ = ("store", "_approved", "_pending", "time_mismatches")

    def __init__(self, store: GovernanceStore) -> None:
        self.store = store
        self._approved: dict[str, ApprovedRelease | None] = {}
        self._pending: list[tuple[str, str, float]] = []
        self.time_mismatches = 0

    def get_approved(self, build_hash: str) -> ApprovedRelease | None:
        try:
            return self._approved[build_hash]
        except KeyError:
            approved = self.store.get_approved(build_hash)
            self._approved[build_hash] = approved
            return approved

    def record_install(self, build_hash: str, node_id: str, ts: float) -> float:
        ts = float(ts)
        self._pending.append((build_hash, node_id, ts))
        if len(self._pending) >= INSTALL_BATCH:
            self.flush()
        return ts

    def flush(self) -> None:
        """Record the queued installs in the real store, in one transaction."""
        rows, self._pending = self._pending, []
        recorded = self.store.record_installs(rows)
        self.time_mismatches += sum(
            1 for (_, _, asked), ts in zip(rows, recorded, strict=True) if ts != asked
        )

    def invalidate(self) -> None:
        self._approved.clear()


__all__ = ["INSTALL_BATCH", "SimReleaseStore"]
