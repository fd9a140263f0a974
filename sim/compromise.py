"""The compromise model: which signer keys of the initial set the adversary holds.

Two models, exclusive (``sim.scenario`` checks it):

- **fixed**: ``signers.compromised = c`` keys, the first ``c`` of the initial set, in every
  replication;
- **probabilistic**: each key ``i`` of the initial set (indices ``0 .. n - 1``) is
  compromised independently with probability ``p_i`` (``signers.compromise_probs``, or
  ``signers.compromise_prob`` for every key), and on top of that each correlated group
  ``g`` (``signers.compromise_groups``: a shared HSM, a cloud account) falls with
  probability ``q_g``, taking all its keys; groups are independent of each other and of
  the keys, and may overlap. The compromised set S is the union of the keys that fell.

The number J = |S| of keys the adversary holds has an exact distribution
(``key_count_distribution``): for each of the 2^G outcomes of the G groups (merged by the
union U of the fallen groups' keys), the keys of U are compromised with probability 1 and
the others follow the Poisson-binomial distribution of their ``p_i``, computed by the
standard dynamic programme over keys (Chen & Liu 1997, *Statistica Sinica* 7: 875-892);
the result is the mixture over the group outcomes. Everything is done with logarithms
(``logaddexp``), so a possible count never underflows to an impossible one while the
weights are combined; the returned probabilities are ``exp`` of them.

``sample_compromised`` draws S for one replication: unconditioned, straight from the
model; or conditioned on J (``adversary.keys_held``), exactly from the conditional law
P(S | |S| = J) = P(S) / P(|S| = J). It first draws the group outcome (merged by U) with
weight P(U) * P(the other keys give exactly J - |U|), then the remaining J - |U| keys by
conditional Poisson (conditional Bernoulli) sampling with the sequential method: key i is
taken with probability p_i * P(J' - 1 among the keys after i) / P(J' among i and the keys
after it), J' the keys still needed (Chen, Dempster & Liu 1994, *Biometrika* 81: 457-469;
Tillé 2006, *Sampling Algorithms*, ch. 5). With equal ``p_i`` and no groups this is a
uniformly random J-subset; otherwise it is not uniform.

``lowest_threshold`` is the lowest signer threshold ever in force; the adversary's keys
are a subset of the initial set (rotation only removes keys), and the real quorum rule
counts one valid attestation per distinct configured key, so with J below it approval by
the adversary is logically impossible.

The exact weights are memoised per model (``functools.lru_cache`` over the probabilities:
pure functions of their inputs), so a run conditioned on J computes them once per process.
Their cost grows as (distinct unions of fallen groups, at most 2^G) x (keys in groups):
milliseconds for a few small groups, about a second for 16 groups of 3 keys among 40, and
some tens of seconds for 16 groups of 20 keys among 1000.

Imports ``numpy`` and ``sim.knobs`` only; no simulation state.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

from releasesim.sim.knobs import Scenario

Groups = tuple[tuple[tuple[int, ...], float], ...]
"""Correlated groups as ``((keys, prob), ...)``."""

_NEG_INF = -math.inf


# --------------------------------------------------------------------------------------
# The model of a scenario
# --------------------------------------------------------------------------------------


def _model(scenario: Scenario) -> tuple[int | None, tuple[float, ...], Groups]:
    """``(fixed count or None, per-key probabilities, groups)`` of ``scenario``."""
    cfg = scenario.signers
    n = int(cfg.n)
    if int(cfg.compromised) > 0:
        return int(cfg.compromised), (0.0,) * n, ()
    probs = tuple(float(p) for p in cfg.compromise_probs) or (float(cfg.compromise_prob),) * n
    groups = tuple((tuple(int(k) for k in g.keys), float(g.prob)) for g in cfg.compromise_groups)
    return None, probs, groups


def lowest_threshold(scenario: Scenario) -> int:
    """The lowest signer threshold in force at any time (initial and scheduled, in 1..n).

    Clamped as ``SignerPool`` clamps it (rotation keeps the set at ``signers.n`` keys).
    """
    cfg = scenario.signers
    n = int(cfg.n)
    thresholds = [int(cfg.threshold), *(int(c.threshold) for c in cfg.threshold_schedule)]
    return min(max(1, min(t, n)) for t in thresholds)


# --------------------------------------------------------------------------------------
# Exact distribution of the number of compromised keys
# --------------------------------------------------------------------------------------


def _logaddexp(a: float, b: float) -> float:
    if a == _NEG_INF:
        return b
    if b == _NEG_INF:
        return a
    high, low = (a, b) if a >= b else (b, a)
    return high + math.log1p(math.exp(low - high))


def _logs(p: float) -> tuple[float, float]:
    """``(log p, log(1 - p))`` with ``log 0 = -inf``."""
    return (math.log(p) if p > 0 else _NEG_INF, math.log1p(-p) if p < 1 else _NEG_INF)


def _log_poisson_binomial(probs: Sequence[float]) -> np.ndarray:
    """log P(exactly j of independent Bernoulli(``probs``) succeed), j = 0 .. len(probs)."""
    out = np.full(len(probs) + 1, _NEG_INF)
    out[0] = 0.0
    for p in probs:
        lp, lq = _logs(p)
        shifted = np.concatenate(([_NEG_INF], out[:-1]))
        out = np.logaddexp(out + lq, shifted + lp)
    return out


def _union_log_weights(groups: Groups) -> dict[int, float]:
    """log P(the fallen groups' keys are exactly U), U as a bit mask of key indices."""
    unions: dict[int, float] = {0: 0.0}
    for keys, prob in groups:
        if prob <= 0:
            continue
        mask = sum(1 << k for k in keys)
        lp, lq = _logs(prob)
        merged: dict[int, float] = {}
        for union, lw in unions.items():
            if lq > _NEG_INF:
                merged[union] = _logaddexp(merged.get(union, _NEG_INF), lw + lq)
            merged[union | mask] = _logaddexp(merged.get(union | mask, _NEG_INF), lw + lp)
        unions = merged
    return unions


def _split(n: int, groups: Groups) -> tuple[list[int], list[int]]:
    """``(grouped, ungrouped)`` key indices: in some group that can fall, or in none."""
    in_groups = {k for keys, prob in groups if prob > 0 for k in keys}
    return sorted(in_groups), [i for i in range(n) if i not in in_groups]


def _log_sum_at(a: np.ndarray, b: np.ndarray, total: int) -> float:
    """log of sum over i + j = total of exp(a[i] + b[j])."""
    low, high = max(0, total - (len(b) - 1)), min(total, len(a) - 1)
    if low > high:
        return _NEG_INF
    terms = a[low : high + 1] + b[total - high : total - low + 1][::-1]
    top = float(np.max(terms))
    if top == _NEG_INF:
        return _NEG_INF
    return top + math.log(float(np.sum(np.exp(terms - top))))


@functools.lru_cache(maxsize=64)
def _log_count_distribution(probs: tuple[float, ...], groups: Groups) -> np.ndarray:
    """log P(J = j), j = 0 .. n (read-only)."""
    n = len(probs)
    grouped, ungrouped = _split(n, groups)
    base = _log_poisson_binomial([probs[i] for i in ungrouped])
    mix = np.full(len(grouped) + 1, _NEG_INF)
    for union, lw in _union_log_weights(groups).items():
        rest = [probs[i] for i in grouped if not union >> i & 1]
        fallen = len(grouped) - len(rest)
        part = mix[fallen : fallen + len(rest) + 1]
        mix[fallen : fallen + len(rest) + 1] = np.logaddexp(part,
                                                            lw + _log_poisson_binomial(rest))
    out = np.array([_log_sum_at(base, mix, j) for j in range(n + 1)])
    out.setflags(write=False)
    return out


def key_count_distribution(scenario: Scenario) -> np.ndarray:
    """Exact P(J = j), j = 0 .. ``signers.n``, for the number J of compromised keys.

    The fixed model (``signers.compromised = c``) is a point mass at c; no compromise at
    all is a point mass at 0. A possible count can come out as 0.0 only by underflow
    (below ~1e-308); ``possible_key_counts`` says exactly which counts can happen.
    """
    fixed, probs, groups = _model(scenario)
    if fixed is not None:
        out = np.zeros(len(probs) + 1)
        out[fixed] = 1.0
        return out
    return np.exp(_log_count_distribution(probs, groups))


def possible_key_counts(probs: tuple[float, ...], groups: Groups) -> frozenset[int]:
    """The counts J with P(J) > 0 under per-key ``probs`` and ``groups`` (exact, no floats).

    For each possible group outcome (groups with prob 1 always fall, prob 0 never), the
    keys it takes plus the keys with p = 1 are certain and the keys with 0 < p < 1 may or
    may not fall: every count in between is possible.
    """
    unions = {0}
    for keys, prob in groups:
        if prob <= 0:
            continue
        mask = sum(1 << k for k in keys)
        fallen = {u | mask for u in unions}
        unions = fallen if prob >= 1 else unions | fallen
    sure = sum(1 << i for i, p in enumerate(probs) if p >= 1)
    maybe = sum(1 << i for i, p in enumerate(probs) if 0 < p < 1)
    out: set[int] = set()
    for union in unions:
        certain = union.bit_count() + (sure & ~union).bit_count()
        out.update(range(certain, certain + (maybe & ~union).bit_count() + 1))
    return frozenset(out)


# --------------------------------------------------------------------------------------
# Sampling the compromised set
# --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _conditional_plan(
    probs: tuple[float, ...], groups: Groups, held: int
) -> tuple[tuple[int, ...], np.ndarray]:
    """Group outcomes (union masks) and their cumulative probabilities given J = ``held``."""
    n = len(probs)
    grouped, ungrouped = _split(n, groups)
    base = _log_poisson_binomial([probs[i] for i in ungrouped])
    masks: list[int] = []
    weights: list[float] = []
    for union, lw in _union_log_weights(groups).items():
        rest = [probs[i] for i in grouped if not union >> i & 1]
        need = held - (len(grouped) - len(rest))
        if need < 0:
            continue
        weight = lw + _log_sum_at(_log_poisson_binomial(rest), base, need)
        if weight > _NEG_INF:
            masks.append(union)
            weights.append(weight)
    if not masks:
        raise ValueError(f"the compromise model never compromises exactly {held} keys")
    w = np.exp(np.array(weights) - max(weights))
    cumulative = np.cumsum(w) / np.sum(w)
    cumulative.setflags(write=False)
    return tuple(masks), cumulative


def _sample_exactly(uniforms: np.ndarray, probs: Sequence[float], need: int) -> list[int]:
    """Positions of a draw of independent Bernoulli(``probs``) given exactly ``need`` succeed.

    Sequential conditional Poisson sampling: ``logq[i, c]`` = log P(c successes among
    positions i ..); position i is taken with probability
    ``p_i * exp(logq[i + 1, c - 1] - logq[i, c])``, c the successes still needed.
    """
    size = len(probs)
    logs = [_logs(p) for p in probs]
    logq = np.full((size + 1, need + 1), _NEG_INF)
    logq[size, 0] = 0.0
    for i in range(size - 1, -1, -1):
        lp, lq = logs[i]
        after = logq[i + 1]
        logq[i] = np.logaddexp(after + lq, np.concatenate(([_NEG_INF], after[:-1])) + lp)
    chosen: list[int] = []
    for i in range(size):
        if need == 0:
            break
        take = math.exp(logs[i][0] + logq[i + 1, need - 1] - logq[i, need])
        if uniforms[i] < take:
            chosen.append(i)
            need -= 1
    return chosen


def sample_compromised(
    rng: np.random.Generator, scenario: Scenario, keys_held: int | None = None
) -> tuple[int, ...]:
    """Sorted indices (0 .. n - 1 of the initial set) of the keys compromised in one replication.

    ``keys_held=None``: a draw from the model (``n`` key uniforms, then one per group).
    ``keys_held=J``: a draw from the exact conditional law given exactly J compromised
    keys (one uniform for the group outcome, one per remaining key). The fixed model
    gives the first ``signers.compromised`` keys and draws nothing. Raises ``ValueError``
    if J is impossible under the model.
    """
    fixed, probs, groups = _model(scenario)
    n = len(probs)
    if fixed is not None:
        if keys_held is not None and keys_held != fixed:
            raise ValueError(f"signers.compromised = {fixed} fixes the count; got {keys_held}")
        return tuple(range(fixed))
    if keys_held is None:
        if not groups and not any(p > 0 for p in probs):
            return ()
        key_u = rng.random(n)
        group_u = rng.random(len(groups))
        chosen = {i for i in range(n) if key_u[i] < probs[i]}
        for (keys, prob), u in zip(groups, group_u, strict=True):
            if u < prob:
                chosen.update(keys)
        return tuple(sorted(chosen))
    if not 0 <= keys_held <= n:
        raise ValueError(f"keys_held must be in 0 .. {n}, got {keys_held}")
    masks, cumulative = _conditional_plan(probs, groups, int(keys_held))
    pick = min(int(np.searchsorted(cumulative, rng.random(), side="right")), len(masks) - 1)
    union = masks[pick]
    rest = [i for i in range(n) if not union >> i & 1]
    need = int(keys_held) - (n - len(rest))
    taken = _sample_exactly(rng.random(len(rest)), [probs[i] for i in rest], need)
    chosen = {i for i in range(n) if union >> i & 1} | {rest[j] for j in taken}
    return tuple(sorted(chosen))


__all__ = [
    "key_count_distribution",
    "lowest_threshold",
    "possible_key_counts",
    "sample_compromised",
]
