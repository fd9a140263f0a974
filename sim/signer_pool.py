"""The release signers of one replication: keys, online/offline churn, rotation, threshold.

Each signer holds a real Ed25519 key (``releasesim.model.crypto.ReleaseSigner``) derived from the
component's generator. Availability is an alternating renewal process with exponential
spells: mean offline ``signers.mean_offline_s``, mean online chosen so that the long-run
fraction online is ``signers.availability``. Each signer starts online with probability
``availability``; since exponential spells are memoryless, the residual spell at time 0
is again exponential, so the process is exactly stationary from time 0 and
P(k signers online at any fixed time) = Binomial(n, availability).

Membership rotation (every ``rotation_interval_s``) removes the ``rotation_count``
oldest keys of the configured set and adds as many new keys; scheduled threshold changes
apply at their times. Both change the *configured* signer set and threshold that
governance checks submissions against. The keys of the initial set in ``compromised``
(drawn by the World from the compromise model, ``releasesim.sim.compromise``; by default
the first ``signers.compromised``) are also held by the adversary; rotation removes the
oldest keys whether compromised or not.

Every change of a signer's state goes through ``set_online``, which keeps each signer's
online spells (``spells``: closed ``(start_s, end_s)`` intervals; ``online_spells`` adds
the spell still open) and calls the listeners: the release manager signs only while a
signer is online (``releasesim.sim.release_manager``), so it listens to both directions, and to
configuration changes. A few signers with a few spells each keep this cheap.

Imports ``simpy``, ``numpy`` and ``releasesim.model.crypto``; must not import ``reports``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import numpy as np

from releasesim.model.crypto import ReleaseSigner
from releasesim.model.quorum import Attestation

if TYPE_CHECKING:
    from releasesim.sim.world import World


class SignerPool:
    """All signer keys ever created, who is online, and the configured set and threshold."""

    def __init__(
        self,
        world: World,
        rng: np.random.Generator,
        *,
        compromised: tuple[int, ...] | None = None,
    ) -> None:
        self.world = world
        self.rng = rng
        cfg = world.scenario.signers
        self.availability = float(cfg.availability)
        self.mean_offline_s = float(cfg.mean_offline_s)
        a = self.availability
        self.mean_online_s = (
            float("inf") if a >= 1.0 else (0.0 if a <= 0.0 else self.mean_offline_s * a / (1 - a))
        )
        self.keys: list[ReleaseSigner] = []
        self.online: list[bool] = []
        self.online_since: list[float] = []  # start of the current online spell (NaN: offline)
        self.spells: list[list[tuple[float, float]]] = []  # closed online spells per signer
        self.configured: list[int] = []  # indices into keys, oldest first
        self.threshold = int(cfg.threshold)
        self.compromised: tuple[int, ...] = (
            tuple(range(int(cfg.compromised))) if compromised is None else tuple(compromised)
        )
        """Indices (into ``keys``, = of the initial set) of the keys the adversary holds."""
        self.online_listeners: list[Callable[[int], None]] = []
        self.offline_listeners: list[Callable[[int], None]] = []
        self.config_listeners: list[Callable[[], None]] = []
        self.stopped = False
        self.rotations = 0
        for _ in range(int(cfg.n)):
            self.configured.append(self._new_signer())
        self.key_index = {s.public_key: i for i, s in enumerate(self.keys)}

    # -- state -----------------------------------------------------------------------
    def _new_signer(self) -> int:
        index = len(self.keys)
        self.keys.append(ReleaseSigner(self.rng.bytes(32)))
        online = bool(self.rng.random() < self.availability)
        self.online.append(online)
        self.online_since.append(float(self.world.env.now) if online else math.nan)
        self.spells.append([])
        if 0.0 < self.availability < 1.0 and not self.stopped:
            self.world.process(self._churn(index))
        if hasattr(self, "key_index"):
            self.key_index[self.keys[index].public_key] = index
        return index

    def signer_set(self) -> tuple[str, ...]:
        """The configured signer set as hex public keys (what governance checks against)."""
        return tuple(self.keys[i].public_key for i in self.configured)

    def attestation(self, index: int, build_hash: str) -> Attestation:
        """Signer ``index``'s real Ed25519 attestation of ``release:<build_hash>``."""
        signer = self.keys[index]
        return Attestation(signer.public_key, signer.attest(build_hash))

    def threshold_now(self) -> int:
        """The configured threshold (kept within 1..len(signer set))."""
        return max(1, min(self.threshold, len(self.configured)))

    def online_in_set(self) -> int:
        return sum(1 for i in self.configured if self.online[i])

    def in_set(self, index: int) -> bool:
        return index in self.configured

    def online_spells(self, index: int) -> list[tuple[float, float]]:
        """Signer ``index``'s online spells so far; one still open ends at ``inf``."""
        spells = list(self.spells[index])
        if self.online[index]:
            spells.append((self.online_since[index], math.inf))
        return spells

    def set_online(self, index: int, online: bool) -> None:
        """Put signer ``index`` on or offline now: close or open a spell, call listeners."""
        if self.online[index] == online:
            return
        now = float(self.world.env.now)
        self.online[index] = online
        if online:
            self.online_since[index] = now
            listeners = self.online_listeners
        else:
            self.spells[index].append((self.online_since[index], now))
            self.online_since[index] = math.nan
            listeners = self.offline_listeners
        for listener in list(listeners):
            listener(index)

    # -- processes ---------------------------------------------------------------------
    def start(self) -> None:
        cfg = self.world.scenario.signers
        if float(cfg.rotation_interval_s) > 0 and int(cfg.rotation_count) > 0:
            interval, count = float(cfg.rotation_interval_s), int(cfg.rotation_count)
            self.world.process(self._rotation(interval, count))
        for at_s, threshold in _schedule(cfg.threshold_schedule):
            self.world.process(self._threshold_change(at_s, threshold))

    def _churn(self, index: int) -> Generator[Any, Any, None]:
        world, rng = self.world, self.rng
        mean_on, mean_off = self.mean_online_s, self.mean_offline_s
        while not self.stopped:
            mean = mean_on if self.online[index] else mean_off
            yield world.timeout(float(rng.exponential(mean)))
            if self.stopped:
                return
            self.set_online(index, not self.online[index])

    def _rotation(self, interval: float, count: int) -> Generator[Any, Any, None]:
        world = self.world
        while not self.stopped:
            yield world.timeout(interval)
            if self.stopped:
                return
            removed = self.configured[:count]
            del self.configured[:count]
            added = [self._new_signer() for _ in removed]
            self.configured.extend(added)
            self.rotations += 1
            world.recorder.event(
                world.env.now, "rotation", f"removed {removed} added {added}", len(removed)
            )
            self._config_changed()
            for index in added:
                if self.online[index]:
                    for listener in list(self.online_listeners):
                        listener(index)

    def _threshold_change(self, at_s: float, threshold: int) -> Generator[Any, Any, None]:
        world = self.world
        if at_s > 0:
            yield world.timeout(at_s)
        if self.stopped:
            return
        self.threshold = max(1, min(int(threshold), len(self.configured)))
        world.recorder.event(world.env.now, "threshold_change", "", self.threshold)
        self._config_changed()

    def _config_changed(self) -> None:
        for listener in list(self.config_listeners):
            listener()


def _schedule(value: object) -> list[tuple[float, int]]:
    """Threshold schedule entries as ``(at_s, threshold)`` pairs, sorted by time."""
    if not value:
        return []
    out: list[tuple[float, int]] = []
    for entry in value:  # type: ignore[attr-defined]
        if isinstance(entry, tuple | list):
            at_s, threshold = entry
        elif isinstance(entry, dict):
            at_s, threshold = entry["at_s"], entry["threshold"]
        else:
            at_s, threshold = entry.at_s, entry.threshold
        out.append((float(at_s), int(threshold)))
    return sorted(out)
