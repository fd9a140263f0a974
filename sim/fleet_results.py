"""What a finished fleet reports: outcome rows, down intervals, stakes and final builds.

``FleetResults`` is the results half of ``releasesim.sim.fleet.Fleet`` (a mixin over the
fleet's per-node arrays): the per-node outcome rows (``NODE_TABLE``), the recorded down
intervals (``DOWNTIME_TABLE``), each node's validator stake and rank, the build each node
runs at the end, and the ``unapproved_boots`` invariant. Everything here runs once, after
the replication; nothing here is on the simulation's hot path.

Imports ``numpy`` and ``itertools``; must not import ``reports``.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import numpy as np

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

    def downtime_rows(self: Fleet) -> list[tuple]:
        """One row per recorded down interval (``DOWNTIME_TABLE``), in recording order."""
        rep = self.world.replication
        causes = [DOWN_CAUSES[c] for c in self.down_causes]
        return list(zip(
            itertools.repeat(rep, len(self.down_nodes)), self.down_nodes.tolist(),
            self.down_starts.tolist(), self.down_ends.tolist(), causes,
            [bool(o) for o in self.down_open], strict=True,
        ))

    def stakes(self: Fleet) -> tuple[list[float], list[int]]:
        """Each node's stake (0 for a full node) and stake rank (-1 for a full node).

        Validator ``i`` runs node ``i`` (``fleet.validators`` of them); the rank is among
        every validator of the chain (0 = the largest stake; ties by validator index).
        """
        all_stakes = self.world.validators.stakes
        order = sorted(range(len(all_stakes)), key=lambda i: (-all_stakes[i], i))
        rank_of = {v: r for r, v in enumerate(order)}
        k = self.validator_nodes
        stake = [float(all_stakes[i]) for i in range(k)] + [0.0] * (self.n - k)
        rank = [rank_of[i] for i in range(k)] + [-1] * (self.n - k)
        return stake, rank

    def final_builds(self: Fleet) -> list[str]:
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
        return [
            previous if slot is None else by_id.get(id(slot.current()), "other")
            for slot in self.slots
        ]

    def node_rows(self: Fleet) -> list[tuple]:
        rep = self.world.replication
        finals = self.final_builds()
        columns = (
            self.wave.tolist(),
            self.hash_speed.tolist(),
            self.learned_s.tolist(),
            self.first_fetch_s.tolist(),
            self.fetch_attempts.tolist(),
            self.fetch_rounds.tolist(),
            self.fetch_failures.tolist(),
            self.corrupt.tolist(),
            self.installed_s.tolist(),
            self.booted_new_s.tolist(),
            self.failed_startup.tolist(),
            self.rolled_back_s.tolist(),
            self.down_s.tolist(),
            self.installed_malicious.tolist(),
            finals,
            *self.stakes(),
        )
        # the row tuples are built by zip in C: (replication, node, *the columns above)
        return list(zip(itertools.repeat(rep, self.n), range(self.n), *columns, strict=True))
