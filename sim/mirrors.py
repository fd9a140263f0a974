"""Simulated release mirrors: the ``model.source.ReleaseSource`` the fleet fetches from.

``SimMirror.fetch`` is what the real ``model.update.fetch_release`` calls: it returns the
published bytes instantly, or, with probability ``mirrors.corruption_prob``, a copy with
one real flipped byte, which the real BLAKE3 check in ``fetch_release`` then catches.
The *timing* lives in SimPy around that call (in ``sim.fleet``): ``capacity``
concurrent downloads per mirror (a FIFO counting semaphore), a latency draw, a
transfer time of ``artifact_size_mb * 8 / bandwidth_mbps`` seconds (bandwidth drawn per
download), outages (a Poisson process of ``outage_rate_per_h`` per mirror with durations
from ``outage_duration``; with probability ``correlated_outage_prob`` an outage hits
every mirror at once). The outage process starts in its stationary state: the outages
that began in the ``horizon_s`` before time 0 are drawn at setup (not counted in
``mirror_outages``), so a mirror is already down at time 0 with the probability it has
at any later time, instead of every mirror starting up. A download fails when its
mirror is down when it starts (after the latency, or the fetch timeout if that is
shorter), when an outage starts while it transfers (noticed at the end of the transfer),
or when it would exceed ``fleet.fetch_timeout_s`` (after the timeout).

Imports ``simpy``, ``numpy``, ``model.errors``; must not import ``reports``.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from model.errors import SourceError

if TYPE_CHECKING:
    from sim.world import World

OK, DOWN, TIMEOUT = 0, 1, 2


class SimMirror:
    """One mirror: published artifacts, outage state and its download slots (``in_use``
    of ``capacity``, FIFO ``waiting`` events; the fleet takes and frees them inline)."""

    __slots__ = (
        "index",
        "artifacts",
        "rng",
        "corruption_prob",
        "capacity",
        "in_use",
        "waiting",
        "env",
        "down_until",
        "outage_starts",
        "corrupted",
        "fetches",
    )

    def __init__(
        self, index: int, env: simpy.Environment, capacity: int, corruption_prob: float,
        rng: np.random.Generator,
    ) -> None:
        self.index = index
        self.artifacts: dict[str, bytes] = {}
        self.rng = rng
        self.corruption_prob = corruption_prob
        self.env = env
        self.capacity = capacity
        self.in_use = 0
        self.waiting: deque[simpy.Event] = deque()
        self.down_until = 0.0
        self.outage_starts: list[float] = []
        self.corrupted = 0
        self.fetches = 0

    def publish(self, build_hash: str, data: bytes) -> None:
        self.artifacts[build_hash] = data

    def fetch(self, build_hash: str, *, timeout: float, max_bytes: int) -> bytes:
        """The published bytes (possibly with one flipped byte); ``SourceError`` if unknown."""
        self.fetches += 1
        data = self.artifacts.get(build_hash.lower())
        if data is None:
            raise SourceError(f"mirror {self.index}: no artifact for {build_hash[:16]}…")
        if len(data) > max_bytes:
            raise SourceError(f"mirror {self.index}: artifact larger than {max_bytes} bytes")
        if self.corruption_prob > 0 and self.rng.random() < self.corruption_prob:
            self.corrupted += 1
            damaged = bytearray(data)
            position = int(self.rng.integers(len(damaged)))
            damaged[position] ^= 1 << int(self.rng.integers(8))
            return bytes(damaged)
        return data

    def outage_between(self, start: float, end: float) -> bool:
        """True when an outage started in ``(start, end]``."""
        starts = self.outage_starts
        return bool(starts) and bisect.bisect_right(starts, start) < bisect.bisect_right(
            starts, end
        )


class Mirrors:
    """The mirror set, its outage process and the timed download around ``fetch``."""

    def __init__(self, world: World, rng: np.random.Generator) -> None:
        self.world = world
        self.rng = rng
        cfg = world.scenario.mirrors
        self.cfg = cfg
        count = int(cfg.count)
        child_seeds = rng.bit_generator.seed_seq.spawn(count)  # type: ignore[attr-defined]
        self.mirrors = [
            SimMirror(
                i, world.env, int(cfg.capacity), float(cfg.corruption_prob),
                np.random.Generator(np.random.PCG64(child_seeds[i])),
            )
            for i in range(count)
        ]
        self.latency = cfg.latency
        self.outage_duration = cfg.outage_duration
        self.outages = 0

    def publish(self, build_hash: str, data: bytes) -> None:
        for mirror in self.mirrors:
            mirror.publish(build_hash, data)

    def artifact(self, build_hash: str) -> bytes | None:
        """The published (uncorrupted) bytes of ``build_hash``, shared by every mirror."""
        return self.mirrors[0].artifacts.get(build_hash) if self.mirrors else None

    def start(self) -> None:
        rate_per_s = float(self.cfg.outage_rate_per_h) / 3600.0 * len(self.mirrors)
        if rate_per_s > 0 and not self.outage_duration.is_zero:
            self._warm_up(rate_per_s, float(self.world.horizon_s))
            self.world.process(self._outages(rate_per_s))

    def _draw_outage(self, start: float) -> tuple[list[SimMirror], float]:
        """One outage beginning at ``start``: mark the mirrors it hits down until its end."""
        rng = self.rng
        correlated = float(self.cfg.correlated_outage_prob)
        duration = float(self.outage_duration.sample(rng))
        if correlated > 0 and rng.random() < correlated:
            hit = self.mirrors
        else:
            hit = [self.mirrors[int(rng.integers(len(self.mirrors)))]]
        for mirror in hit:
            mirror.down_until = max(mirror.down_until, start + duration)
        return hit, duration

    def _warm_up(self, rate_per_s: float, window_s: float) -> None:
        """The same Poisson outage process on ``[-window_s, 0)``: who is down at time 0."""
        rng = self.rng
        count = int(rng.poisson(rate_per_s * window_s))
        for start in np.sort(rng.uniform(-window_s, 0.0, count)).tolist():
            self._draw_outage(start)
        for mirror in self.mirrors:
            if mirror.down_until > 0:
                self.world.recorder.event(0.0, "outage_at_start", f"mirror {mirror.index}",
                                          mirror.down_until)

    def _outages(self, rate_per_s: float) -> Generator[Any, Any, None]:
        world, rng, env = self.world, self.rng, self.world.env
        while True:
            yield world.timeout(float(rng.exponential(1.0 / rate_per_s)))
            now = env.now
            hit, duration = self._draw_outage(now)
            for mirror in hit:
                mirror.outage_starts.append(now)
            self.outages += 1
            world.recorder.event(
                now, "outage", "all" if len(hit) > 1 else f"mirror {hit[0].index}", duration
            )
