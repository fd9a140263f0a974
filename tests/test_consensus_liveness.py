"""Consensus liveness (``releasesim.sim.consensus``) against a brute-force reference and by hand.

The reference below is written independently of the module: it takes every distinct event
time in the window, evaluates the down set at each with the definition itself (a node is
down at ``a`` iff one of its intervals has ``start <= a < end``; a set, so a node counts
once), applies the rule as ``Fraction(up, total) > threshold`` and merges stalled stretches
with a plain loop, all in exact ``Fraction`` arithmetic. Between two consecutive event times
no interval starts or ends, so the state on ``[a, b)`` is the state at ``a`` (the reference
also checks the midpoint to be sure of it).

Times are compared exactly: they are input values, ``0.0`` or ``end_s``. On the grid cases
(multiples of 0.25) every difference and sum is exact in binary floating point, so the
durations are compared exactly too. On the off-grid cases the durations are float
differences, compared with a relative tolerance of 1e-12 (each is one rounding, 1.1e-16
relative, away from the exact value). ``down_stake_s`` is a floating-point sum of products
in the module; it is compared with a relative tolerance of 1e-9, far above the ~1e-15
rounding error of summing at most a few thousand non-negative terms.
"""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from releasesim.sim.consensus import Liveness, liveness, threshold_fraction, voting_power

P = 2**40  # the voting power of the largest stake
TWO_THIRDS = Fraction(2, 3)

Interval = tuple[float, float, int, bool]  # start, end, node, still_down


def run(
    intervals: list[Interval],
    power: list[int] | np.ndarray,
    total_power: int | None = None,
    threshold: Fraction = TWO_THIRDS,
    end_s: float = 100.0,
) -> Liveness:
    power = np.asarray(power, dtype=np.int64)
    total = int(power.sum()) if total_power is None else total_power
    return liveness(
        np.array([i[0] for i in intervals], dtype=float),
        np.array([i[1] for i in intervals], dtype=float),
        np.array([i[2] for i in intervals], dtype=np.int64),
        np.array([i[3] for i in intervals], dtype=bool),
        power,
        total,
        threshold,
        end_s,
    )


# --- the brute-force reference -------------------------------------------------------------


def reference(
    intervals: list[Interval], power: np.ndarray, total: int, threshold: Fraction, end_s: float
) -> dict[str, object]:
    """Every field of ``Liveness`` from the definition, exact (durations as Fractions)."""
    out: dict[str, object] = {
        "stalled": False,
        "stall_count": 0,
        "stall_total_s": Fraction(0),
        "stall_longest_s": Fraction(0),
        "stall_longest_start_s": math.nan,
        "stall_first_s": math.nan,
        "stall_last_end_s": math.nan,
        "stall_open_at_end": False,
        "peak_down_stake": Fraction(0),
        "down_stake_s": Fraction(0),
    }
    if total == 0:
        return out

    exact = [(Fraction(s), Fraction(e), n) for s, e, n, _ in intervals]

    def down_at(t: Fraction) -> int:
        down_nodes = {n for s, e, n in exact if s <= t < e}
        return sum(int(power[n]) for n in down_nodes)

    def is_stalled(down: int) -> bool:
        return not Fraction(total - down, total) > threshold

    end_nodes = {n for _, _, n, still in intervals if still}
    out["stall_open_at_end"] = is_stalled(sum(int(power[n]) for n in end_nodes))

    times = {0.0, end_s} | {t for s, e, _, _ in intervals for t in (s, e) if 0 < t < end_s}
    points = sorted(t for t in times if t < end_s)
    stalls: list[list[float]] = []  # [start, end] of each maximal stall
    peak = Fraction(0)
    for i, a in enumerate(points):
        b = points[i + 1] if i + 1 < len(points) else end_s
        down = down_at(Fraction(a))
        assert down == down_at((Fraction(a) + Fraction(b)) / 2)  # constant on [a, b)
        peak = max(peak, Fraction(down, total))
        out["down_stake_s"] += Fraction(down, total) * (Fraction(b) - Fraction(a))
        if is_stalled(down):
            if stalls and stalls[-1][1] == a:
                stalls[-1][1] = b
            else:
                stalls.append([a, b])
    out["peak_down_stake"] = peak
    if stalls:
        lengths = [Fraction(e) - Fraction(s) for s, e in stalls]
        longest = max(lengths)
        out.update(
            stalled=True,
            stall_count=len(stalls),
            stall_total_s=sum(lengths, Fraction(0)),
            stall_longest_s=longest,
            stall_longest_start_s=stalls[lengths.index(longest)][0],
            stall_first_s=stalls[0][0],
            stall_last_end_s=stalls[-1][1],
        )
    return out


def assert_matches(got: Liveness, want: dict[str, object], exact_durations: bool) -> None:
    for name in ("stalled", "stall_count", "stall_open_at_end"):
        assert getattr(got, name) == want[name], name
    for name in ("stall_longest_start_s", "stall_first_s", "stall_last_end_s"):
        g, w = getattr(got, name), want[name]
        assert (math.isnan(g) and math.isnan(w)) or g == w, (name, g, w)
    # correctly rounded on both sides (Python int / int and float(Fraction))
    assert got.peak_down_stake == float(want["peak_down_stake"])
    for name in ("stall_total_s", "stall_longest_s"):
        g, w = getattr(got, name), want[name]
        if exact_durations:
            assert Fraction(g) == w, (name, g, w)
        else:
            assert g == pytest.approx(float(w), rel=1e-12, abs=0.0), name
    assert got.down_stake_s == pytest.approx(float(want["down_stake_s"]), rel=1e-9, abs=0.0)


# --- random cases --------------------------------------------------------------------------

THRESHOLDS = [threshold_fraction(2 / 3), threshold_fraction(0.5), threshold_fraction(0.9)]


def random_power(rng: np.random.Generator, nodes: int) -> np.ndarray:
    kind = rng.integers(4)
    if kind == 0:  # equal stakes: down fractions land exactly on 1/2, 2/3, ...
        stakes = np.ones(nodes)
    elif kind == 1:  # small integer weights, some zero (non-validator nodes)
        return rng.integers(0, 4, nodes).astype(np.int64)
    elif kind == 2:
        stakes = rng.integers(0, 4, nodes).astype(float)
    else:
        stakes = rng.uniform(0.0, 1.0, nodes)
    return voting_power(stakes)


def random_case(rng: np.random.Generator, grid: bool):
    nodes = int(rng.integers(1, 8))
    power = random_power(rng, nodes)
    outside = 0 if rng.random() < 0.5 else int(rng.integers(0, 3)) * max(int(power.max()), 1)
    total = int(power.sum()) + outside
    end_s = float(rng.choice([7.5, 10.0, 20.0]))
    intervals: list[Interval] = []
    for _ in range(int(rng.integers(0, 15))):
        node = int(rng.integers(nodes))
        if grid:
            start = float(rng.integers(-8, int(4 * end_s) + 8)) / 4
            length = float(rng.integers(0, 24)) / 4
        else:
            start = float(rng.uniform(-2.0, end_s + 2.0))
            length = 0.0 if rng.random() < 0.1 else float(rng.exponential(3.0))
        if intervals and rng.random() < 0.3:  # equal timestamps: start where another ends
            start = intervals[int(rng.integers(len(intervals)))][1]
        end = start + length
        still = False
        if end >= end_s:  # as the recorder closes an open interval at the end of the run
            end, still = end_s, bool(rng.random() < 0.9)
            start = min(start, end)
        elif rng.random() < 0.05:  # the flag, not the time, decides stall_open_at_end
            still = True
        if rng.random() < 0.2 and intervals:  # overlapping intervals on one node
            node = intervals[-1][2]
        intervals.append((start, end, node, still))
    threshold = THRESHOLDS[int(rng.integers(len(THRESHOLDS)))]
    return intervals, power, total, threshold, end_s


@pytest.mark.parametrize("grid", [True, False], ids=["grid", "off-grid"])
def test_random_cases_match_brute_force(grid: bool) -> None:
    rng = np.random.default_rng(20240611 if grid else 20240612)
    stalled = 0
    for _ in range(600):
        intervals, power, total, threshold, end_s = random_case(rng, grid)
        got = run(intervals, power, total, threshold, end_s)
        assert_matches(got, reference(intervals, power, total, threshold, end_s), grid)
        stalled += got.stalled
    assert 50 < stalled < 550  # the cases exercise both outcomes


def test_many_intervals_match_brute_force() -> None:
    rng = np.random.default_rng(7)
    nodes = 40
    power = voting_power(rng.pareto(1.5, nodes) + 0.05)
    total = int(power.sum()) + int(power.max())
    end_s = 1000.0
    starts = rng.integers(-20, 1000, 400).astype(float)
    ends = np.minimum(starts + rng.integers(0, 40, 400), end_s)
    intervals = [
        (float(s), float(e), int(n), bool(e >= end_s))
        for s, e, n in zip(starts, ends, rng.integers(0, nodes, 400), strict=True)
    ]
    totals = []
    for threshold in (TWO_THIRDS, threshold_fraction(0.9)):
        got = run(intervals, power, total, threshold, end_s)
        assert_matches(got, reference(intervals, power, total, threshold, end_s), True)
        assert got.stall_count > 1  # the case has several stalls to merge and rank
        totals.append(got.stall_total_s)
    assert totals[0] < totals[1]  # a higher threshold stalls whenever a lower one does


# --- hand cases ----------------------------------------------------------------------------


def test_one_of_three_equal_validators_down_is_a_stall() -> None:
    # 2/3 of the power is up: not MORE than 2/3, so no block from 10 s to 20 s.
    got = run([(10.0, 20.0, 0, False)], voting_power([1.0, 1.0, 1.0]))
    assert got.stalled and got.stall_count == 1
    assert got.stall_total_s == 10.0 and got.stall_longest_s == 10.0
    assert got.stall_longest_start_s == 10.0 and got.stall_first_s == 10.0
    assert got.stall_last_end_s == 20.0 and not got.stall_open_at_end
    assert got.peak_down_stake == 1 / 3
    assert got.down_stake_s == pytest.approx(10 / 3, rel=1e-12)


def test_one_of_four_equal_validators_down_is_live() -> None:
    got = run([(10.0, 20.0, 0, False)], voting_power([1.0] * 4))
    assert not got.stalled and got.stall_count == 0
    assert got.stall_total_s == 0.0 and got.stall_longest_s == 0.0
    assert math.isnan(got.stall_longest_start_s) and math.isnan(got.stall_first_s)
    assert math.isnan(got.stall_last_end_s)
    assert got.peak_down_stake == 0.25 and got.down_stake_s == 2.5


def test_validator_holding_more_than_a_third() -> None:
    power = voting_power([2.0, 1.0, 1.0])  # the first holds 1/2 of the power
    assert power.tolist() == [P, P // 2, P // 2]
    got = run([(5.0, 17.0, 0, False)], power)
    assert got.stall_total_s == 12.0 and got.stall_longest_s == 12.0
    assert got.stall_longest_start_s == 5.0 and got.stall_last_end_s == 17.0
    assert got.peak_down_stake == 0.5
    assert run([(5.0, 17.0, 1, False)], power).stalled is False  # 1/4 down


def test_touching_intervals_do_not_add_up() -> None:
    power = voting_power([1.0, 1.0, 1.0])
    half = Fraction(1, 2)  # one of three down is live at 1/2, two are not
    touching = [(10.0, 20.0, 0, False), (20.0, 30.0, 1, False)]
    got = run(touching, power, threshold=half)
    assert not got.stalled and got.peak_down_stake == 1 / 3
    overlapping = [(10.0, 20.5, 0, False), (20.0, 30.0, 1, False)]
    got = run(overlapping, power, threshold=half)
    assert got.stall_count == 1 and got.stall_total_s == 0.5 and got.stall_first_s == 20.0
    # at 2/3 each alone stalls: the touching stalls merge into one, 10 s to 30 s
    got = run(touching, power)
    assert got.stall_count == 1 and got.stall_total_s == 20.0
    assert got.stall_longest_start_s == 10.0 and got.stall_last_end_s == 30.0


def test_a_node_counts_once() -> None:
    power = voting_power([1.0] * 4)
    got = run([(0.0, 10.0, 0, False), (5.0, 15.0, 0, False)], power)
    assert not got.stalled and got.peak_down_stake == 0.25 and got.down_stake_s == 3.75
    both_flagged = [(50.0, 100.0, 0, True), (60.0, 100.0, 0, True)]
    assert run(both_flagged, power).stall_open_at_end is False


def test_still_down_flags_decide_open_at_end() -> None:
    power = voting_power([1.0, 1.0, 1.0, 0.0])
    got = run([(50.0, 100.0, 0, True)], power)
    assert got.stall_open_at_end and got.stall_last_end_s == 100.0 and got.stall_total_s == 50.0
    got = run([(50.0, 100.0, 0, False)], power)  # same times, closed: not inferred from them
    assert not got.stall_open_at_end and got.stall_last_end_s == 100.0
    got = run([(50.0, 60.0, 0, True)], power)  # the flag alone decides
    assert got.stall_open_at_end and got.stall_last_end_s == 60.0
    assert run([(50.0, 100.0, 3, True)], power).stall_open_at_end is False  # no power


def test_validators_outside_the_fleet_count_as_up() -> None:
    both_down = [(0.0, 10.0, 0, False), (0.0, 10.0, 1, False)]
    power = [P, P]
    assert run(both_down, power, total_power=6 * P).stall_total_s == 10.0  # up 4/6: not more
    got = run(both_down, power, total_power=7 * P)  # up 5/7 > 2/3
    assert not got.stalled and got.peak_down_stake == 2 / 7
    got = run(both_down, power, total_power=2**70)  # no int64 overflow
    assert not got.stalled and got.peak_down_stake == 2.0**-29


def test_window_clipping_and_zero_length() -> None:
    power = voting_power([2.0, 1.0, 1.0])
    got = run([(-5.0, 5.0, 0, False), (95.0, 200.0, 0, True)], power)
    assert got.stall_count == 2 and got.stall_total_s == 10.0
    assert got.stall_first_s == 0.0 and got.stall_last_end_s == 100.0
    assert got.stall_longest_start_s == 0.0  # the first on ties
    assert got.down_stake_s == 5.0
    got = run([(10.0, 10.0, 0, False)], power)
    assert not got.stalled and got.peak_down_stake == 0.0 and got.down_stake_s == 0.0


def test_zero_total_power_is_the_empty_outcome() -> None:
    got = run([(0.0, 100.0, 0, True)], [0, 0], total_power=0)
    assert not got.stalled and not got.stall_open_at_end and got.stall_count == 0
    assert got.peak_down_stake == 0.0 and got.down_stake_s == 0.0


def test_liveness_record_fields() -> None:
    assert [f.name for f in dataclasses.fields(Liveness)] == [
        "stalled",
        "stall_count",
        "stall_total_s",
        "stall_longest_s",
        "stall_longest_start_s",
        "stall_first_s",
        "stall_last_end_s",
        "stall_open_at_end",
        "peak_down_stake",
        "down_stake_s",
    ]
    got = run([], [P])
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.stalled = True  # type: ignore[misc]


def test_threshold_fraction() -> None:
    assert threshold_fraction(2 / 3) == Fraction(2, 3)
    assert threshold_fraction(0.9) == Fraction(9, 10)
    assert threshold_fraction(0.5) == Fraction(1, 2)
    for bad in (0.0, 1.0, -0.1, 1.5, math.nan, 1e-9, 1 - 1e-12):
        with pytest.raises(ValueError):
            threshold_fraction(bad)


def test_voting_power() -> None:
    equal = voting_power([3.5, 3.5, 3.5])
    assert equal.dtype == np.int64 and equal.tolist() == [P, P, P]
    assert voting_power([1.0, 0.5, 0.0]).tolist() == [P, P // 2, 0]
    assert voting_power([]).dtype == np.int64 and voting_power([]).size == 0
    assert voting_power([0.0, 0.0]).tolist() == [0, 0]
    assert voting_power([3.0, 1.0]).tolist() == [P, round(P / 3)]
    for bad in ([1.0, -1.0], [math.nan], [math.inf]):
        with pytest.raises(ValueError):
            voting_power(bad)


@pytest.mark.parametrize(
    "change",
    [
        {"nodes": np.array([0, 5])},  # node outside power
        {"ends": np.array([1.0, 0.5])},  # end before start
        {"starts": np.array([math.nan, 0.0])},
        {"still_down": np.array([False])},  # length mismatch
        {"power": np.array([-1, 1])},
        {"power": np.array([2**41, 1])},  # more than voting_power gives
        {"total_power": 1},  # less than the fleet's power
        {"threshold": Fraction(1)},
        {"end_s": math.inf},
    ],
)
def test_malformed_input_is_refused(change: dict[str, object]) -> None:
    args: dict[str, object] = {
        "starts": np.array([0.0, 1.0]),
        "ends": np.array([1.0, 2.0]),
        "nodes": np.array([0, 1]),
        "still_down": np.array([False, False]),
        "power": np.array([P, P]),
        "total_power": 2 * P,
        "threshold": TWO_THIRDS,
        "end_s": 10.0,
    }
    liveness(**args)  # the unchanged input is fine
    args.update(change)
    with pytest.raises(ValueError):
        liveness(**args)


def test_imports_no_simulator_or_reports() -> None:
    code = (
        "import sys, releasesim.sim.consensus\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('pandas', 'simpy')"
        " or m.startswith('releasesim.reports')"
        " or (m.startswith('releasesim.sim.') and m != 'releasesim.sim.consensus')]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
