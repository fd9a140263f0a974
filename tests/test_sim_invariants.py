"""Property test: over random small scenarios the invariants hold and the metrics are sane."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from releasesim.sim.api import resolve_scenario
from releasesim.sim.summary import INVARIANTS
from releasesim.sim.world import simulate_replication

FRACTIONS = (
    "lagging_fraction",
    "rolled_back_fraction",
    "exposed_fraction",
    "peak_down_fraction",
    "malicious_installed_fraction",
    "adopted_fraction",
)


@st.composite
def knobs(draw: st.DrawFn) -> list[str]:
    count = draw(st.integers(2, 7))
    threshold = draw(st.integers(1, count))
    strategy = draw(st.sampled_from(["all_at_once", "waves"]))
    return [
        f"fleet.nodes={draw(st.integers(1, 25))}",
        f"signers.n={count}",
        f"signers.threshold={threshold}",
        f"signers.availability={draw(st.floats(0.05, 1.0))}",
        f"signers.compromised={draw(st.integers(0, count))}",
        f"signers.rotation_interval_s={draw(st.sampled_from([0.0, 900.0, 7200.0]))}",
        f"signers.rotation_count={draw(st.integers(0, 2))}",
        f"governance.participation={draw(st.floats(0.0, 1.0))}",
        f"governance.yes_probability={draw(st.floats(0.0, 1.0))}",
        f"release.startup_failure_prob={draw(st.floats(0.0, 1.0))}",
        f"mirrors.count={draw(st.integers(1, 3))}",
        f"mirrors.corruption_prob={draw(st.floats(0.0, 0.9))}",
        f"mirrors.outage_rate_per_h={draw(st.floats(0.0, 2.0))}",
        f"mirrors.correlated_outage_prob={draw(st.floats(0.0, 1.0))}",
        f"mirrors.capacity={draw(st.integers(1, 5))}",
        f"fleet.max_retries={draw(st.integers(0, 4))}",
        f"rollout.strategy={strategy}",
        f"rollout.halt_min_attempts={draw(st.integers(1, 5))}",
        f"rollout.halt_failure_rate={draw(st.floats(0.0, 1.0))}",
    ]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(overrides=knobs(), seed=st.integers(0, 2**32 - 1), replication=st.integers(0, 50))
def test_invariants_hold_on_random_small_scenarios(
    overrides: list[str], seed: int, replication: int
) -> None:
    scenario = resolve_scenario("baseline", overrides)
    summary = simulate_replication(scenario, seed, replication).summary
    for name in INVARIANTS:
        assert summary[name] == 0, (name, overrides)
    for name in FRACTIONS:
        value = summary[name]
        assert math.isnan(value) or 0.0 <= value <= 1.0, (name, value)
    p50, p90, p99 = (summary[f"adoption_p{q}_s"] for q in (50, 90, 99))
    defined = [v for v in (p50, p90, p99) if not math.isnan(v)]
    assert defined == sorted(defined)
    if not math.isnan(p99):
        assert not math.isnan(p50) and not math.isnan(p90)
    if summary["activated"]:
        assert summary["time_to_activation_s"] >= summary["time_to_quorum_s"] >= 0
    else:
        assert math.isnan(summary["time_to_activation_s"])
    if summary["malicious_approved"]:
        assert summary["malicious_proposed"]
    assert summary["failed_startups"] >= 0
