"""What a finished fleet reports: its node table, down intervals, stakes and final builds.

``FleetResults`` is the results half of ``releasesim.sim.fleet.Fleet`` (a mixin over the
fleet's per-node arrays): the per-node outcome table (``NODE_TABLE``) and the recorded
down intervals (``DOWNTIME_TABLE``) as columns (numpy arrays, no row tuples), each
node's validator stake and rank, the build each node runs at the end, and the
``unapproved_boots`` invariant. Everything here runs once, after
the replication; nothing here is on the simulation's hot path.

Imports ``numpy`` and ``sim.recorder`` (the column names); must not import ``reports``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from releasesim.sim.recorder import DOWNTIME_COLUMNS, NODE_COLUMNS

if TYPE_CHECKING:
    from releasesim.sim.fleet import Fleet

DOWN_CAUSES = ("restart", "halt")
"""Why a node was down: restarting into a build (and back after a rollback), or stopped
at the upgrade height until it runs the release (``halt_at_height``)."""
RESTART, HALT = 0, 1


class FleetResults:
    """The fleet's results, computed from its arrays at the end of the replication."""

    def unapproved_boots(self: Fleet) -> int:
        """Invariant: boots of a build not approved in the store at the boot's moment.

        Checked against the real store's approved releases at the end: approvals are
        append-only (nothing revokes one), so a build was approved at time ``t`` exactly
        when it is approved now and its tally had run by ``t``. A simulated tally closes
        the activation epoch, at its end (``(activated_epoch + 1) * epoch_s``,
        ``releasesim.sim.validators``); the previous build was approved at setup, time 0.
        """
        if not self.boot_times:
            return 0
        epoch_s = self.world.epoch_s
        activated = {
            a.build_hash: (a.activated_epoch + 1) * epoch_s
            for a in self.world.store.approved_releases()
        }
        activated[self.world.previous_hash] = 0.0
        since = np.full(len(self.hash_codes), np.inf)
        for build_hash, code in self.hash_codes.items():
            if build_hash in activated:
                since[code] = activated[build_hash]
        times = np.frombuffer(self.boot_times, dtype=float)
        codes = np.frombuffer(self.boot_codes, dtype=np.uint8)
        return int(np.count_nonzero(times + 1e-6 < since[codes]))

    def downtime_columns(self: Fleet) -> dict[str, np.ndarray]:
        """The recorded down intervals as columns (``DOWNTIME_COLUMNS``), in table order:
        by node, then start, intervals alike in both kept in recording order (the stable
        sort the run's table would otherwise make, done here, where the replication ran)."""
        nodes = np.frombuffer(self.down_nodes, dtype=np.int32).astype(np.int64)
        starts = np.frombuffer(self.down_starts, dtype=float)
        order = np.lexsort((starts, nodes))  # stable: ties keep recording order
        causes = np.array(DOWN_CAUSES, dtype=object)[np.frombuffer(self.down_causes, np.uint8)]
        return _columns(DOWNTIME_COLUMNS, (
            np.full(len(nodes), self.world.replication, dtype=np.int64),
            nodes[order],
            starts[order],
            np.frombuffer(self.down_ends, dtype=float)[order],
            causes[order],
            np.frombuffer(self.down_open, dtype=np.uint8).astype(np.bool_)[order],
        ))

    def stakes(self: Fleet) -> tuple[np.ndarray, np.ndarray]:
        """Each node's stake (0 for a full node) and stake rank (-1 for a full node).

        Validator ``i`` runs node ``i`` (``fleet.validators`` of them); the rank is among
        every validator of the chain (0 = the largest stake; ties by validator index).
        """
        all_stakes = self.world.validators.stakes
        order = sorted(range(len(all_stakes)), key=lambda i: (-all_stakes[i], i))
        rank_of = {v: r for r, v in enumerate(order)}
        k = self.validator_nodes
        stake = np.zeros(self.n, dtype=float)
        stake[:k] = [float(all_stakes[i]) for i in range(k)]
        rank = np.full(self.n, -1, dtype=np.int64)
        rank[:k] = [rank_of[i] for i in range(k)]
        return stake, rank

    def final_builds(self: Fleet) -> np.ndarray:
        """The build each node runs at the end: ``old``, ``new``, ``malicious`` or ``other``
        (an object array of those shared strings)."""
        world = self.world
        names = {world.previous_hash: "old"}
        if world.release.build_hash:
            names[world.release.build_hash] = "new"
        if world.adversary.build_hash:
            names[world.adversary.build_hash] = "malicious"
        by_id = {}
        for mirror_hash, data in world.mirrors.mirrors[0].artifacts.items():
            by_id[id(data)] = names.get(mirror_hash, "other")
        previous = by_id.get(id(self.previous_bytes), "other")
        finals = np.full(self.n, previous, dtype=object)
        for node, slot in enumerate(self.slots):
            if slot is not None:
                finals[node] = by_id.get(id(slot.current()), "other")
        return finals

    def node_columns(self: Fleet) -> dict[str, np.ndarray]:
        """The per-node outcome table of the replication as columns (``NODE_COLUMNS``): the
        dtypes ``pandas.DataFrame.from_records`` gives the same values as Python rows
        (int64, float64, bool, object), at a fraction of the memory of row tuples."""
        return _columns(NODE_COLUMNS, (
            np.full(self.n, self.world.replication, dtype=np.int64),
            np.arange(self.n, dtype=np.int64),
            self.wave.astype(np.int64),
            self.hash_speed.astype(float, copy=True),
            self.learned_s.copy(),
            self.first_fetch_s.copy(),
            np.frombuffer(self.fetch_attempts, dtype=np.int32).astype(np.int64),
            np.frombuffer(self.fetch_rounds, dtype=np.int32).astype(np.int64),
            np.frombuffer(self.fetch_failures, dtype=np.int32).astype(np.int64),
            np.frombuffer(self.corrupt, dtype=np.int32).astype(np.int64),
            self.installed_s.copy(),
            self.booted_new_s.copy(),
            self.failed_startup.copy(),
            self.rolled_back_s.copy(),
            self.down_s.copy(),
            self.installed_malicious.copy(),
            self.final_builds(),
            *self.stakes(),
        ))


def _columns(names: tuple[str, ...], arrays: tuple[np.ndarray, ...]) -> dict[str, np.ndarray]:
    """``{name: array}`` in table order; every table column exactly once (``zip`` checks)."""
    return dict(zip(names, arrays, strict=True))
