"""A bare SimPy model: the cost floor for a given number of processes and timeouts.

``run_bare(processes, timeouts, seed)`` starts ``processes`` generator processes that
together yield ``timeouts`` exponential timeouts (spread as evenly as possible) and do
nothing else. The overhead benchmark compares one replication of the full model with
this model at the same process and timeout counts (the world reports ``sim_processes``
and ``sim_timeouts`` in its summary), so the ratio is what the real release code,
recording and bookkeeping cost on top of SimPy's own scheduling.

Imports only simpy and numpy.
"""

from __future__ import annotations

import time
from collections.abc import Generator

import numpy as np
import simpy


def _worker(env: simpy.Environment, delays: np.ndarray) -> Generator[simpy.Event, None, None]:
    for delay in delays:
        yield env.timeout(float(delay))


def run_bare(processes: int, timeouts: int, seed: int = 0) -> float:
    """Build and run the bare model; return its wall time in seconds (incl. setup)."""
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    env = simpy.Environment()
    processes = max(1, int(processes))
    per, extra = divmod(int(timeouts), processes)
    delays = rng.exponential(60.0, size=int(timeouts))
    offset = 0
    for i in range(processes):
        n = per + (1 if i < extra else 0)
        env.process(_worker(env, delays[offset : offset + n]))
        offset += n
    env.run()
    return time.perf_counter() - start


if __name__ == "__main__":  # pragma: no cover - manual use
    import sys

    p, t = (int(a) for a in sys.argv[1:3])
    print(f"bare model: {p} processes, {t} timeouts: {run_bare(p, t):.3f} s")
