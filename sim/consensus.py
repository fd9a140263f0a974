"""Consensus liveness: did the chain stop producing blocks while validators were down?

CometBFT commits a block only with precommits from validators holding MORE than a threshold
(2/3 by default) of the total voting power. A replication records when the fleet's nodes were
down; this module turns those down intervals and each node's voting power into the times at
which consensus stalled.

The rule. At an instant ``t`` the *down power* is the sum of ``power[node]`` over the nodes
with a down interval containing ``t``; a node counts once even when several of its intervals
overlap (the intervals are united per node first). Blocks are produced at ``t`` iff::

    (total_power - down) * threshold.denominator > threshold.numerator * total_power

and consensus is *stalled* otherwise; up power of exactly the threshold (3 equal validators,
one down) is a stall, as in CometBFT.

Conventions.

- Down intervals are half-open, ``[start, end)``: a node whose interval ends at ``t`` is up at
  ``t``. All events at one instant are applied together, so an interval ending at ``t`` and
  another one starting at ``t`` never add up at ``t``. Zero-length intervals and intervals of
  nodes with zero voting power change nothing.
- Only the window ``[0, end_s]`` is looked at: intervals are clipped to it first, and stall
  intervals are the maximal stretches of ``[0, end_s)`` that are stalled (adjacent stalled
  stretches merged), so every reported time is an input time, ``0.0`` or ``end_s``.
- Integer arithmetic. Voting power is int64, as in CometBFT: stakes are scaled by
  ``voting_power`` to at most ``2**40`` each, so the running sum of up to two million
  nodes' power stays below ``2**63`` and every down-power sum is exact. The threshold is an
  exact ``fractions.Fraction`` (``threshold_fraction``) and the test above is rewritten as
  ``down <= max_live_down`` with ``max_live_down`` computed once in Python integers, so no
  product can overflow and nothing is rounded.
- ``total_power`` may exceed ``power.sum()``: validators outside the simulated fleet count as
  always up. With ``total_power == 0`` there is no validator to stall, and ``liveness``
  returns the empty outcome (``stalled`` False, counts and durations 0, times NaN).

The fields of ``Liveness``:

- ``stalled``: consensus stalled at some instant of ``[0, end_s)``.
- ``stall_count``: number of maximal stall intervals (adjacent ones merged).
- ``stall_total_s``: total stalled time within ``[0, end_s]``; 0.0 if none.
- ``stall_longest_s``: the longest single stall; 0.0 if none.
- ``stall_longest_start_s``: start of the longest stall (the first one on ties); NaN if none.
- ``stall_first_s``: start of the first stall; NaN if none.
- ``stall_last_end_s``: end of the last stall (``end_s`` when still stalled at the end); NaN
  if none.
- ``stall_open_at_end``: still stalled when the run ended, judged on exactly the nodes whose
  interval has ``still_down`` True (not inferred from the times, so flags that disagree
  with the times are reported as given); the durations are then lower bounds.
- ``peak_down_stake``: the largest ``down / total_power`` over ``[0, end_s)``; 0.0 if
  nothing was down.
- ``down_stake_s``: the integral over ``[0, end_s]`` of ``down / total_power``, in seconds
  (stake-weighted downtime; floating point, relative error about 1e-15).

Standard library and numpy only: must not import pandas, simpy, ``releasesim.reports`` or
other ``releasesim.sim`` modules, so reports and tests can use it on recorded tables.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np
import numpy.typing as npt

__all__ = ["Liveness", "liveness", "threshold_fraction", "voting_power", "MAX_VOTING_POWER"]

#: Voting power of the largest stake; the sum of 2**23 such nodes still fits in int64.
MAX_VOTING_POWER = 2**40

_NAN = float("nan")


def voting_power(stakes: Sequence[float]) -> np.ndarray:
    """Stakes (non-negative floats, relative weights) as int64 voting power.

    Like CometBFT's integer voting power: ``round(stake / max(stakes) * 2**40)`` (round half
    to even); all-zero or empty stakes give zeros. Then every sum is exact integer
    arithmetic. A negative or non-finite stake is a ``ValueError``.
    """
    values = np.asarray(stakes, dtype=float).reshape(-1)
    if values.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError("stakes must be finite and non-negative")
    largest = float(values.max())
    if largest == 0.0:
        return np.zeros(values.size, dtype=np.int64)
    return np.rint(values / largest * float(MAX_VOTING_POWER)).astype(np.int64)


def threshold_fraction(threshold: float) -> Fraction:
    """The liveness threshold as an exact fraction.

    ``Fraction(threshold).limit_denominator(1_000_000)``, so ``0.6666666666666666`` is exactly
    ``2/3``. The threshold (and its fraction) must lie in (0, 1), else ``ValueError``.
    """
    value = float(threshold)
    if not 0.0 < value < 1.0:
        raise ValueError(f"liveness threshold must be in (0, 1), got {threshold!r}")
    fraction = Fraction(value).limit_denominator(1_000_000)
    if not 0 < fraction < 1:
        raise ValueError(f"liveness threshold {threshold!r} rounds to {fraction}, not in (0, 1)")
    return fraction


@dataclass(frozen=True, slots=True)
class Liveness:
    """Consensus liveness of one replication (fields described in the module docstring)."""

    stalled: bool
    stall_count: int
    stall_total_s: float
    stall_longest_s: float
    stall_longest_start_s: float
    stall_first_s: float
    stall_last_end_s: float
    stall_open_at_end: bool
    peak_down_stake: float
    down_stake_s: float


def _max_live_down(total_power: int, threshold: Fraction) -> int:
    """The largest down power at which blocks are still produced.

    ``(total - down) * den > num * total`` iff ``down * den < total * (den - num)`` iff
    ``down <= ceil(total * (den - num) / den) - 1`` (down is an integer).
    """
    num, den = threshold.numerator, threshold.denominator
    return -((-total_power * (den - num)) // den) - 1


def _power_steps(
    starts: np.ndarray, ends: np.ndarray, nodes: np.ndarray, power: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The distinct event times and the down power from each of them on.

    Takes valid intervals only (positive length, positive power). Each time gets its rank
    among the distinct times, and the events (+1 at a start, -1 at an end) are sorted once by
    the integer key ``node * distinct + rank``. A node's depth (how many of its intervals
    cover ``t``) is the cumulative sum of its steps; since every node's steps sum to zero,
    one cumulative sum over all nodes gives every node's depth at once. The node's power is
    added where its depth leaves 0 and removed where it returns to 0; those power steps are
    summed per instant (exact int64) and accumulated over time into the down power. The order
    of one node's events at one instant does not matter: its power steps at that instant
    telescope to ``power * ([down after] - [down before])``, so all events of an instant act
    together.
    """
    count = starts.size
    times = np.concatenate([starts, ends])
    by_time = np.argsort(times)
    sorted_times = times[by_time]
    new = np.ones(times.size, dtype=bool)
    new[1:] = sorted_times[1:] != sorted_times[:-1]
    distinct = sorted_times[new]
    rank = np.empty(times.size, dtype=np.int64)
    rank[by_time] = np.cumsum(new) - 1
    key = np.concatenate([nodes, nodes]) * np.int64(distinct.size) + rank
    deltas = np.concatenate([np.ones(count, np.int64), np.full(count, -1, np.int64)])
    order = np.argsort(key)
    key, deltas = key[order], deltas[order]
    depth_after = np.cumsum(deltas)
    depth_before = depth_after - deltas
    goes_down = (depth_before == 0) & (depth_after > 0)
    comes_up = (depth_before > 0) & (depth_after == 0)
    changed = goes_down | comes_up
    key, goes_down = key[changed], goes_down[changed]
    node_power = power[key // distinct.size]
    steps = np.zeros(distinct.size, dtype=np.int64)
    np.add.at(steps, key % distinct.size, np.where(goes_down, node_power, -node_power))
    return distinct, np.cumsum(steps)


def _empty(stall_open_at_end: bool = False) -> Liveness:
    return Liveness(
        stalled=False,
        stall_count=0,
        stall_total_s=0.0,
        stall_longest_s=0.0,
        stall_longest_start_s=_NAN,
        stall_first_s=_NAN,
        stall_last_end_s=_NAN,
        stall_open_at_end=stall_open_at_end,
        peak_down_stake=0.0,
        down_stake_s=0.0,
    )


def liveness(
    starts: npt.ArrayLike,
    ends: npt.ArrayLike,
    nodes: npt.ArrayLike,
    still_down: npt.ArrayLike,
    power: npt.ArrayLike,
    total_power: int,
    threshold: Fraction,
    end_s: float,
) -> Liveness:
    """Whether, when and for how long consensus stalled in one replication.

    ``starts``/``ends``: one half-open down interval ``[start, end)`` each; ``nodes``: the
    node of each interval; ``still_down``: True for an interval closed only because the run
    ended at ``end_s``; ``power``: int64 voting power indexed by node (0 for non-validators);
    ``total_power``: the chain's total voting power (at least ``power.sum()``; the rest is
    validators outside the fleet, always up); ``threshold``: the exact liveness threshold
    (``threshold_fraction``); ``end_s``: the end of the run. See the module docstring for the
    rule and the fields. Malformed input (mismatched lengths, a node outside ``power``,
    power outside ``[0, 2**40]``, ``end < start``, NaN times, a non-finite ``end_s``,
    ``total_power < power.sum()``, a threshold outside (0, 1)) is a ``ValueError``.
    """
    starts_a = np.asarray(starts, dtype=float).reshape(-1)
    ends_a = np.asarray(ends, dtype=float).reshape(-1)
    nodes_a = np.asarray(nodes).reshape(-1)
    still_a = np.asarray(still_down, dtype=bool).reshape(-1)
    power_a = np.asarray(power).reshape(-1)
    _check(starts_a, ends_a, nodes_a, still_a, power_a, total_power, threshold, end_s)
    nodes_a = nodes_a.astype(np.int64, copy=False)
    power_a = power_a.astype(np.int64, copy=False)
    total_power = int(total_power)
    end_s = float(end_s)
    if total_power == 0:
        return _empty()

    limit = _max_live_down(total_power, threshold)
    end_down = int(power_a[np.unique(nodes_a[still_a])].sum()) if still_a.any() else 0
    open_at_end = end_down > limit

    clipped_starts = np.maximum(starts_a, 0.0) + 0.0  # + 0.0 turns -0.0 into 0.0
    clipped_ends = np.minimum(ends_a, end_s)
    keep = (clipped_ends > clipped_starts) & (power_a[nodes_a] > 0)
    if not keep.any():
        return _empty(open_at_end)
    times, down = _power_steps(clipped_starts[keep], clipped_ends[keep], nodes_a[keep], power_a)
    inside = times < end_s  # from end_s on, outside the window
    times, down = times[inside], down[inside]
    if times.size == 0:
        return _empty(open_at_end)

    # Segment i is [times[i], seg_ends[i]) with down power down[i]; before times[0] nothing
    # is down (live, since limit >= 0).
    seg_ends = np.append(times[1:], end_s)
    lengths = seg_ends - times
    peak = int(down.max())
    down_stake_s = float(np.sum(down / float(total_power) * lengths))
    stalled_seg = down > limit if limit < peak else np.zeros(times.size, dtype=bool)
    if not stalled_seg.any():
        return replace(_empty(open_at_end), peak_down_stake=peak / total_power,
                       down_stake_s=down_stake_s)

    edges = np.diff(np.concatenate([[False], stalled_seg, [False]]).astype(np.int8))
    run_first = np.flatnonzero(edges == 1)
    run_last = np.flatnonzero(edges == -1) - 1
    run_starts = times[run_first]
    run_ends = seg_ends[run_last]
    durations = run_ends - run_starts
    longest = int(np.argmax(durations))
    return Liveness(
        stalled=True,
        stall_count=int(run_starts.size),
        stall_total_s=math.fsum(durations.tolist()),
        stall_longest_s=float(durations[longest]),
        stall_longest_start_s=float(run_starts[longest]),
        stall_first_s=float(run_starts[0]),
        stall_last_end_s=float(run_ends[-1]),
        stall_open_at_end=open_at_end,
        peak_down_stake=peak / total_power,
        down_stake_s=down_stake_s,
    )


def _check(
    starts: np.ndarray,
    ends: np.ndarray,
    nodes: np.ndarray,
    still_down: np.ndarray,
    power: np.ndarray,
    total_power: int,
    threshold: Fraction,
    end_s: float,
) -> None:
    """Raise ``ValueError`` on malformed ``liveness`` input."""
    if not starts.size == ends.size == nodes.size == still_down.size:
        raise ValueError("starts, ends, nodes and still_down must have the same length")
    if nodes.size and not np.issubdtype(nodes.dtype, np.integer):
        raise ValueError("nodes must be integers")
    if power.size and not np.issubdtype(power.dtype, np.integer):
        raise ValueError("power must be integer voting power (see voting_power)")
    if np.any(power < 0) or np.any(power > MAX_VOTING_POWER):
        raise ValueError("voting power must be in [0, 2**40], as voting_power gives")
    if float(np.sum(power, dtype=float)) >= 2.0**62:
        raise ValueError("the fleet's voting power is too large for exact int64 sums")
    if nodes.size and (nodes.min() < 0 or nodes.max() >= power.size):
        raise ValueError("every node must index into power")
    if np.any(np.isnan(starts)) or np.any(np.isnan(ends)):
        raise ValueError("down interval times must not be NaN")
    if np.any(ends < starts):
        raise ValueError("every down interval needs end >= start")
    if not math.isfinite(float(end_s)):
        raise ValueError("end_s must be finite")
    if power.size * (2 * starts.size + 1) >= 2**63:
        raise ValueError("too many nodes times intervals for int64 event keys")
    if int(total_power) < int(power.sum(dtype=np.int64)):
        raise ValueError("total_power must be at least the fleet's voting power")
    if not 0 < threshold < 1:
        raise ValueError(f"liveness threshold must be in (0, 1), got {threshold}")
