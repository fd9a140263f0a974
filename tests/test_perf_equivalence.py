"""Determinism guards for the engine's fast paths (no timing assertions here).

``Distribution.sampler`` must draw exactly what ``Distribution.sample`` draws and leave
the generator in the same state; a replication must give identical tables when run twice.
"""

from __future__ import annotations

import numpy as np
import pytest

from releasesim.sim.distributions import Exponential, Fixed, LogNormal, Pareto, Uniform


@pytest.mark.parametrize(
    "dist",
    [
        LogNormal(50.0, 1.0),
        LogNormal(20.0, 0.0),
        LogNormal(0.2, 0.5),
        Pareto(0.1, 1.2),
        Pareto(3.0, 0.7),
        Exponential(60.0),
        Uniform(1.0, 4.0),
        Fixed(2.5),
        Fixed(0.0),
    ],
)
def test_sampler_draws_exactly_what_sample_draws(dist) -> None:
    slow_rng, fast_rng = np.random.default_rng(12345), np.random.default_rng(12345)
    fast = dist.sampler(fast_rng)
    slow = [dist.sample(slow_rng) for _ in range(2000)]
    quick = [fast() for _ in range(2000)]
    assert all(type(x) is float for x in quick)
    assert slow == quick
    assert slow_rng.random() == fast_rng.random()  # same generator state afterwards


def test_a_replication_is_identical_when_run_twice() -> None:
    from releasesim.sim.api import resolve_scenario
    from releasesim.sim.world import simulate_replication

    scenario = resolve_scenario("lagging_release", ["fleet.nodes=300"])
    a = simulate_replication(scenario, 3, 1)
    b = simulate_replication(scenario, 3, 1)
    # the columns' exact bytes (NaN equals NaN), repr for rows: exact for floats
    for table in ("nodes", "downtime"):
        left, right = getattr(a, table), getattr(b, table)
        assert list(left) == list(right)
        for name in left:
            assert left[name].dtype == right[name].dtype, (table, name)
            if left[name].dtype == object:
                assert left[name].tolist() == right[name].tolist(), (table, name)
            else:
                assert left[name].tobytes() == right[name].tobytes(), (table, name)
    assert repr(a.events) == repr(b.events)
    assert repr(a.summary) == repr(b.summary)
