"""Simulated release mirrors: the ``releasesim.model.source.ReleaseSource`` the fleet fetches from.

``SimMirror.fetch`` is what the real ``releasesim.model.update.fetch_release`` calls: it returns the
published bytes instantly, or, with probability ``mirrors.corruption_prob``, a copy with
one real flipped byte, which the real BLAKE3 check in ``fetch_release`` then catches.
The *timing* lives in SimPy around that call (in ``releasesim.sim.fleet``): ``capacity``
concurrent downloads per mirror (a FIFO counting semaphore whose queued requests
leave the queue, failed, at the node's fetch timeout), a latency draw, a
transfer time of ``artifact_size_mb * 8 / bandwidth_mbps`` seconds (bandwidth drawn per
download), outages (a Poisson process of ``outage_rate_per_h`` per mirror with durations
from ``outage_duration``; with probability ``correlated_outage_prob`` an outage hits
every mirror at once). The outage process starts in its stationary state, drawn exactly
and independently of ``horizon_s`` (not counted in ``mirror_outages``): outage starts
form a Poisson process of rate ``lam`` (all mirrors together) with i.i.d. durations of
mean ``mu``, an M/G/infinity system, so the outages in progress at time 0 number
Poisson(``lam * mu``), each with its own mirror(s) hit and an equilibrium residual
duration ``U * L`` (``U`` uniform on (0, 1), ``L`` the length-biased duration, of density
``x g(x) / mu``). ``L`` has a closed form for every distribution shipped: ``fixed``
itself, ``exponential`` Gamma(2, mean), ``uniform`` ``sqrt(low^2 + V (high^2 - low^2))``,
``lognormal`` the same sigma with median ``median * exp(sigma^2)``, ``pareto`` the same
scale with shape ``shape - 1``. A duration of infinite mean (``pareto`` with shape <= 1)
has no stationary state; the outages that began in a fixed ``WARM_UP_WINDOW_S`` before
time 0 are drawn instead. The warm-up draws from its own child stream of the mirrors'
seed, so the outages after time 0 are the same draws whatever the start state, and no
draw depends on the horizon: a replication that ends before two horizons is identical
under both. So a mirror is already down at time 0 with the probability it has at any
later time, instead of every mirror starting up. A download fails when its
mirror is down when it starts (after the latency, or the fetch timeout if that is
shorter), when an outage starts while it transfers (noticed at the end of the transfer),
or when it would not finish within ``fleet.fetch_timeout_s`` of asking for a slot (time
queued for a slot counts; it fails at the timeout, queued or holding the slot).

Imports ``simpy``, ``numpy``, ``model.errors`` and ``sim.distributions``; must not import
``reports``.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Generator
from heapq import heappush
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy
from simpy.events import NORMAL

from releasesim.model.errors import SourceError
from releasesim.sim.distributions import (
    Distribution,
    Exponential,
    Fixed,
    LogNormal,
    Pareto,
    Uniform,
)

if TYPE_CHECKING:
    from releasesim.sim.node_task import NodeTask
    from releasesim.sim.world import World

OK, DOWN, TIMEOUT = 0, 1, 2

WARM_UP_WINDOW_S = 7 * 86400.0
"""Warm-up window for outage durations of infinite mean (no stationary state exists)."""


def length_biased(dist: Distribution, rng: np.random.Generator, n: int) -> np.ndarray | None:
    """``n`` draws of the length-biased ``dist`` (density ``x g(x) / mean``), or ``None``
    when it has no closed form here or the mean is infinite."""
    if isinstance(dist, Fixed):
        return np.full(n, dist.value)
    if isinstance(dist, Exponential):
        return rng.gamma(2.0, dist.mean, n)
    if isinstance(dist, Uniform):
        low2, high2 = dist.low**2, dist.high**2
        return np.sqrt(low2 + rng.random(n) * (high2 - low2))
    if isinstance(dist, LogNormal):
        return rng.lognormal(math.log(dist.median) + dist.sigma**2, dist.sigma, n)
    if isinstance(dist, Pareto) and dist.shape > 1:
        return dist.scale * (1.0 + rng.pareto(dist.shape - 1.0, n))
    return None


def equilibrium_residuals(
    dist: Distribution, rng: np.random.Generator, n: int
) -> np.ndarray | None:
    """``n`` residual durations of the outages in progress at a fixed instant of the
    stationary process: ``U * L``, ``L`` length-biased (``None`` as ``length_biased``)."""
    lengths = length_biased(dist, rng, n)
    return None if lengths is None else rng.random(n) * lengths


class SimMirror:
    """One mirror: published artifacts, outage state and its download slots (``in_use``
    of ``capacity``, FIFO ``waiting`` requests with one ``DeadlineWatch``; the fleet takes
    a free slot inline, ``grant_next`` hands a freed one over, skipping the requests
    already withdrawn at their fetch timeout)."""

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
        "deadlines",
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
        self.waiting: deque[SlotRequest] = deque()
        self.deadlines = DeadlineWatch(self)
        self.down_until = 0.0
        self.outage_starts: list[float] = []
        self.corrupted = 0
        self.fetches = 0

    def publish(self, build_hash: str, data: bytes) -> None:
        self.artifacts[build_hash] = data

    def queue_request(self, task: NodeTask, fetch_timeout: float) -> None:
        """Queue ``task`` (parked) for the next free download slot; it is woken with True
        when granted, or False at ``fetch_timeout`` from now if still queued then."""
        env = self.env
        request = SlotRequest(task, env._now + fetch_timeout, next(env._eid))
        self.waiting.append(request)
        if self.deadlines.request is None:
            self.deadlines.arm(request)

    def grant_next(self) -> bool:
        """A download slot came free: hand it to the first request still queued (True),
        or return False when none is left (the slot stays free)."""
        waiting = self.waiting
        while waiting:
            request = waiting.popleft()
            if not request.triggered:  # not withdrawn at its timeout
                request.triggered = True
                request.task.wake(True)
                return True
        return False

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


class SlotRequest:
    """A node's queued request for a download slot: the parked task, its fetch deadline
    (``asked + fetch_timeout``) and the event id its deadline keeps in the queue order;
    ``triggered`` once granted or withdrawn."""

    __slots__ = ("task", "deadline", "eid", "triggered")

    def __init__(self, task: NodeTask, deadline: float, eid: int) -> None:
        self.task = task
        self.deadline = deadline
        self.eid = eid
        self.triggered = False


class DeadlineWatch:
    """A mirror's one pending fetch-deadline entry on the environment's queue.

    Every request a mirror queues has the same fetch timeout, so deadlines come in the
    FIFO's order and only the oldest pending request's deadline needs to be on the queue
    at any time: it withdraws that request if still pending, then puts itself back for
    the next pending one. Each entry keeps the key ``(deadline, NORMAL, eid)`` the
    request's own ``Timeout`` would have had (its event id is taken when the request
    queues, as that ``Timeout`` took it), so withdrawals happen in exactly the order one
    timeout per request gives -- without an event for every request granted in time.
    """

    __slots__ = ("mirror", "request", "callbacks", "_callbacks", "_ok", "_value")

    def __init__(self, mirror: SimMirror) -> None:
        self.mirror = mirror
        self.request: SlotRequest | None = None  # None: not on the queue
        self._ok = True
        self._value = None
        self._callbacks = [self._expire]
        self.callbacks: list[Any] | None = None

    def arm(self, request: SlotRequest) -> None:
        self.request = request
        self.callbacks = self._callbacks
        heappush(self.mirror.env._queue, (request.deadline, NORMAL, request.eid, self))

    def _expire(self, _event: object) -> None:
        request = self.request
        assert request is not None
        if not request.triggered:  # still queued at its fetch timeout: leaves, failed
            request.triggered = True
            request.task.wake(False)
        waiting = self.mirror.waiting
        while waiting and waiting[0].triggered:  # withdrawn ones (granted ones are gone)
            waiting.popleft()
        if waiting:
            self.arm(waiting[0])
        else:
            self.request = None


class Mirrors:
    """The mirror set, its outage process and the timed download around ``fetch``."""

    def __init__(self, world: World, rng: np.random.Generator) -> None:
        self.world = world
        self.rng = rng
        cfg = world.scenario.mirrors
        self.cfg = cfg
        count = int(cfg.count)
        # one child per mirror (corruption draws), then one for the warm-up (time-0 state)
        child_seeds = rng.bit_generator.seed_seq.spawn(count + 1)  # type: ignore[attr-defined]
        self.warm_up_rng = np.random.Generator(np.random.PCG64(child_seeds[count]))
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
            self._warm_up(rate_per_s)
            self.world.process(self._outages(rate_per_s))

    def _hit(self, rng: np.random.Generator, end: float) -> list[SimMirror]:
        """The mirror(s) one outage takes down, marked down until ``end``."""
        correlated = float(self.cfg.correlated_outage_prob)
        if correlated > 0 and rng.random() < correlated:
            hit = self.mirrors
        else:
            hit = [self.mirrors[int(rng.integers(len(self.mirrors)))]]
        for mirror in hit:
            mirror.down_until = max(mirror.down_until, end)
        return hit

    def _draw_outage(self, start: float) -> tuple[list[SimMirror], float]:
        """One outage beginning at ``start``: mark the mirrors it hits down until its end."""
        duration = float(self.outage_duration.sample(self.rng))
        return self._hit(self.rng, start + duration), duration

    def _warm_up(self, rate_per_s: float) -> None:
        """The outages in progress at time 0 of the stationary process: who is down then."""
        rng, dist = self.warm_up_rng, self.outage_duration
        mean = float(dist.mean)
        residuals = None
        if math.isfinite(mean):
            residuals = equilibrium_residuals(dist, rng, int(rng.poisson(rate_per_s * mean)))
        if residuals is None:  # no stationary state: outages begun in a fixed window
            window = WARM_UP_WINDOW_S
            starts = rng.uniform(-window, 0.0, int(rng.poisson(rate_per_s * window)))
            residuals = starts + dist.sample_many(rng, len(starts))
        for end in residuals.tolist():
            if end > 0:
                self._hit(rng, end)
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
