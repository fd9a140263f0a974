"""Certified bounds on rare forgery probabilities: strata by the number of stolen keys.

The adversary's number of keys ``J`` has an exactly known distribution ``w_J = P(J = j)``
(computed by the simulator from the scenario). The probability of a forgery (a malicious
build approved, or installed on at least a fraction ``x`` of the fleet) is

    P(forgery) = sum_J w_J p_J,   p_J = P(forgery | the adversary holds exactly J keys).

This is stratified (conditional) Monte Carlo (Asmussen & Glynn, *Stochastic Simulation:
Algorithms and Analysis*, Springer 2007, ch. V, "Variance-reduction methods": stratification
and conditional Monte Carlo): the weights are exact, only the conditional probabilities
``p_J`` are simulated, and none of them is rare.

- **Exact part.** The real quorum rule refuses any release with fewer attestations than the
  lowest threshold in force, so ``p_J = 0`` for ``J < impossible_below``: a logical
  certificate from the rules, not a statistic. A success observed there is an error.
- **Simulated part.** For each simulated stratum, ``k_J`` forgeries in ``n_J`` replications
  give the one-sided exact binomial (Clopper & Pearson, Biometrika 26, 1934) upper bound
  ``U_J`` at level ``1 - alpha / (m * looks)``: Bonferroni over the ``m`` simulated strata and,
  when the sample sizes were chosen adaptively from a fixed grid of ``looks`` possible sizes
  per stratum, over those sizes too (a union bound: whatever data-dependent rule picked
  the final sizes, every stratum's bound holds at once with probability >= 1 - alpha).
- **Bounded part.** A stratum with weight > 0 that was not simulated is bounded by 1.

    upper = sum_J w_J U_J  (U_J = 0 exact, 1 bounded),   point = sum_J w_J k_J / n_J.

``allocate`` spends a budget of replications where it shrinks ``sum w_J U_J`` the most:
greedy doubling of one stratum at a time on the predicted reduction per replication
(rate assumed to stay ``k_J / n_J``), so every stratum's size stays on the grid
``first * 2**i`` that the union bound counts.

The binomial tails are summed in log space (``math.lgamma``) and inverted by bisection:
no scipy at run time (the tests check against ``scipy.stats.beta``). Numpy only (the
figure is ``reports.certify_figure``); must not import ``sim`` or ``model``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_CONFIDENCE = 0.95
NEGLIGIBLE_SHARE = 0.01
"""Strata whose combined weight is at most this share of the target are not simulated
(they count as bounded by 1, costing at most this share of the target)."""
WEIGHT_TOLERANCE = 1e-9
_BISECTIONS = 200

EXACT, SIMULATED, BOUNDED, ZERO_WEIGHT = "exact", "simulated", "bounded by 1", "zero weight"


# --------------------------------------------------------------------------- binomial tails


def _log_terms(first: int, last: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(i, log C(n, i))`` for ``i = first..last``: ``math.lgamma`` at ``first``, then the
    ratios ``C(n, i + 1) / C(n, i) = (n - i) / (i + 1)`` summed in log space."""
    i = np.arange(first, last + 1)
    start = math.lgamma(n + 1) - math.lgamma(first + 1) - math.lgamma(n - first + 1)
    steps = np.log((n - i[:-1]) / (i[:-1] + 1.0))
    return i, start + np.concatenate(([0.0], np.cumsum(steps)))


def _log_sum_exp(values: np.ndarray) -> float:
    peak = float(np.max(values))
    if peak == -math.inf:
        return -math.inf
    return peak + math.log(float(np.sum(np.exp(values - peak))))


def _log_tail(terms: tuple[np.ndarray, np.ndarray], n: int, p: float) -> float:
    """``log P(X in terms)``, ``X ~ Binomial(n, p)``, ``0 < p < 1``."""
    i, log_c = terms
    return _log_sum_exp(log_c + i * math.log(p) + (n - i) * math.log1p(-p))


def _bisect(
    log_tail: Callable[[float], float], target: float, *, increasing: bool
) -> tuple[float, float]:
    """The root of ``log_tail(p) = target`` in (0, 1) as ``(lo, hi)``, tail monotone."""
    lo, hi = 0.0, 1.0
    for _ in range(_BISECTIONS):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if (log_tail(mid) < target) == increasing:
            lo = mid
        else:
            hi = mid
    return lo, hi


def _alpha(alpha: float) -> float:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return float(alpha)


def _check_counts(k: int, n: int) -> None:
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= successes <= trials, got {k} of {n}")


@functools.lru_cache(maxsize=65536)
def clopper_pearson_upper(k: int, n: int, alpha: float) -> float:
    """One-sided exact upper bound at level ``1 - alpha``: the ``p`` with
    ``P(X <= k; n, p) = alpha`` (1 when ``k = n``; closed form for ``k = 0``).

    Bisection keeps the upper end, so rounding never makes the bound smaller.
    """
    _check_counts(k, n)
    alpha = _alpha(alpha)
    if k >= n:
        return 1.0
    if k == 0:
        return -math.expm1(math.log(alpha) / n)
    terms = _log_terms(0, k, n)
    return _bisect(lambda p: _log_tail(terms, n, p), math.log(alpha), increasing=False)[1]


@functools.lru_cache(maxsize=65536)
def clopper_pearson_lower(k: int, n: int, alpha: float) -> float:
    """One-sided exact lower bound at level ``1 - alpha``: the ``p`` with
    ``P(X >= k; n, p) = alpha`` (0 when ``k = 0``; closed form for ``k = n``).

    The upper tail is summed directly (no ``1 - ...`` cancellation); bisection keeps the
    lower end, so rounding never makes the bound larger.
    """
    _check_counts(k, n)
    alpha = _alpha(alpha)
    if k == 0:
        return 0.0
    if k == n:
        return math.exp(math.log(alpha) / n)
    terms = _log_terms(k, n, n)
    return _bisect(lambda p: _log_tail(terms, n, p), math.log(alpha), increasing=True)[0]


# --------------------------------------------------------------------------- the bound


@dataclass(frozen=True, slots=True)
class StratumBound:
    """One stratum: the adversary holds exactly ``keys`` keys."""

    keys: int
    weight: float
    trials: int
    successes: int
    rate: float
    """``successes / trials``; 0 for an exact stratum, NaN when not simulated."""
    upper: float
    lower: float
    label: str
    """``exact`` (0 by the quorum rule), ``simulated``, ``bounded by 1`` or ``zero weight``."""


@dataclass(frozen=True, slots=True)
class CertifiedBound:
    """``P(forgery) <= upper`` with probability >= ``confidence``; see the module docstring."""

    point: float
    upper: float
    lower: float
    confidence: float
    alpha_per_stratum: float
    strata_simulated: int
    bonferroni: int
    looks: int
    impossible_below: int
    exact_weight: float
    simulated_weight: float
    bounded_weight: float
    replications: int
    strata: tuple[StratumBound, ...]

    def keys(self, label: str) -> list[int]:
        return [s.keys for s in self.strata if s.label == label]


def _as_array(values: Sequence[float] | np.ndarray, name: str, size: int | None) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or (size is not None and len(array) != size):
        raise ValueError(f"{name} must be a 1-d sequence of length {size}")
    return array


def check_weights(weights: Sequence[float] | np.ndarray) -> np.ndarray:
    """The distribution of J as an array; ValueError unless >= 0 summing to 1."""
    w = _as_array(weights, "weights", None)
    if len(w) == 0 or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be finite and non-negative")
    if abs(float(w.sum()) - 1.0) > WEIGHT_TOLERANCE:
        raise ValueError(f"weights must sum to 1, got {float(w.sum())!r}")
    return w


def certified_bound(
    weights: Sequence[float] | np.ndarray,
    successes: Sequence[int] | np.ndarray,
    trials: Sequence[int] | np.ndarray,
    impossible_below: int,
    confidence: float = DEFAULT_CONFIDENCE,
    *,
    looks: int = 1,
    bonferroni: int | None = None,
) -> CertifiedBound:
    """Combine exact weights and per-stratum counts into the certified bound.

    ``weights[j] = P(J = j)``; ``successes[j]`` forgeries in ``trials[j]`` replications of
    stratum ``j`` (0 trials: not simulated). ``looks``: the number of sizes each stratum
    could have been stopped at (1 for a fixed design). ``bonferroni``: the number of strata
    the error is split over, when fixed before simulating (default: those simulated).
    """
    w = check_weights(weights)
    k = _as_array(successes, "successes", len(w)).astype(np.int64)
    n = _as_array(trials, "trials", len(w)).astype(np.int64)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if looks < 1:
        raise ValueError(f"looks must be >= 1, got {looks}")
    if np.any(n < 0) or np.any(k < 0) or np.any(k > n):
        raise ValueError("need 0 <= successes <= trials in every stratum")
    ib = max(0, int(impossible_below))
    below = np.arange(len(w)) < ib
    if np.any(k[below] > 0):
        j = int(np.flatnonzero(below & (k > 0))[0])
        raise ValueError(f"{int(k[j])} forgeries with {j} keys, below the lowest threshold "
                         f"{ib}: that contradicts the quorum rule")
    simulated = ~below & (n > 0) & (w > 0)
    m = int(simulated.sum())
    split = max(m, int(bonferroni)) if bonferroni is not None else m
    alpha = (1.0 - confidence) / (max(split, 1) * looks)
    rows, point, upper, lower = [], 0.0, 0.0, 0.0
    for j, weight in enumerate(w):
        if below[j]:
            row = StratumBound(j, weight, int(n[j]), 0, 0.0, 0.0, 0.0, EXACT)
        elif weight == 0.0:
            row = StratumBound(j, 0.0, int(n[j]), int(k[j]), math.nan, 0.0, 0.0, ZERO_WEIGHT)
        elif not simulated[j]:
            row = StratumBound(j, weight, 0, 0, math.nan, 1.0, 0.0, BOUNDED)
        else:
            kj, nj = int(k[j]), int(n[j])
            row = StratumBound(j, weight, nj, kj, kj / nj, clopper_pearson_upper(kj, nj, alpha),
                               clopper_pearson_lower(kj, nj, alpha), SIMULATED)
            point += weight * row.rate
        upper += row.weight * row.upper
        lower += row.weight * row.lower
        rows.append(row)
    return CertifiedBound(
        point=point, upper=min(1.0, upper), lower=lower, confidence=confidence,
        alpha_per_stratum=alpha, strata_simulated=m, bonferroni=split, looks=looks,
        impossible_below=ib, exact_weight=float(w[below].sum()),
        simulated_weight=float(w[simulated].sum()),
        bounded_weight=float(sum(r.weight for r in rows if r.label == BOUNDED)),
        replications=int(n[simulated].sum()), strata=tuple(rows))


# --------------------------------------------------------------------------- the design


def plan_strata(
    weights: Sequence[float] | np.ndarray, impossible_below: int, target: float | None
) -> list[int]:
    """The strata to simulate, fixed before any replication runs (from weights only).

    Every ``J >= impossible_below`` with weight > 0, except the lightest ones whose
    combined weight is at most ``NEGLIGIBLE_SHARE * target``: those stay bounded by 1.
    """
    w = check_weights(weights)
    live = [j for j in range(max(0, impossible_below), len(w)) if w[j] > 0]
    if target is None or target <= 0:
        return live
    budget, skipped = NEGLIGIBLE_SHARE * target, 0.0
    keep = sorted(live, key=lambda j: (w[j], -j))  # lightest first
    dropped: set[int] = set()
    for j in keep:
        if skipped + w[j] > budget:
            break
        skipped += w[j]
        dropped.add(j)
    return [j for j in live if j not in dropped]


def grid_looks(first: int, max_per_stratum: int) -> int:
    """How many sizes ``first * 2**i <= max_per_stratum`` a stratum can have (>= 1)."""
    if first < 1:
        raise ValueError(f"first batch must be >= 1, got {first}")
    return max(1, int(math.floor(math.log2(max(max_per_stratum, first) / first) + 1e-12)) + 1)


def allocate(
    weights: Sequence[float] | np.ndarray,
    successes: Sequence[int] | np.ndarray,
    trials: Sequence[int] | np.ndarray,
    budget: int,
    *,
    strata: Sequence[int],
    first: int,
    alpha_per_stratum: float,
    max_per_stratum: int,
) -> np.ndarray:
    """Extra replications per stratum (same length as ``weights``) within ``budget``.

    Un-simulated strata of ``strata`` first get ``first`` replications each, heaviest
    first; once all have some, greedy doubling: repeatedly double the stratum whose
    doubling shrinks ``w_J U_J`` the most per replication, predicting ``2 k_J`` forgeries
    in ``2 n_J`` replications, until the budget or ``max_per_stratum`` stops it. When no
    doubling can lower an upper bound (every stratum saw only forgeries), the one that
    narrows ``w_J (U_J - L_J)`` the most is doubled instead: its lower bound may then show
    the target cannot be met. Sizes stay on the grid ``first * 2**i`` (``certified_bound``).
    """
    w = check_weights(weights)
    k = _as_array(successes, "successes", len(w)).copy()
    n = _as_array(trials, "trials", len(w)).astype(np.int64).copy()
    extra = np.zeros(len(w), dtype=np.int64)
    remaining = int(budget)
    fresh = sorted((j for j in strata if n[j] == 0), key=lambda j: (-w[j], j))
    if fresh:
        for j in fresh:
            if remaining >= first:
                extra[j], remaining = first, remaining - first
        return extra
    def width(kj: int, nj: int, upper_only: bool) -> float:
        upper = clopper_pearson_upper(kj, nj, alpha_per_stratum)
        return upper if upper_only else upper - clopper_pearson_lower(kj, nj, alpha_per_stratum)

    while True:
        best = -1
        for upper_only in (True, False):
            gain = 0.0
            for j in strata:
                size, kj = int(n[j]), int(round(k[j]))
                if size == 0 or 2 * size > max_per_stratum or size > remaining:
                    continue
                shrink = width(kj, size, upper_only) - width(2 * kj, 2 * size, upper_only)
                if w[j] * shrink / size > gain:
                    best, gain = j, w[j] * shrink / size
            if best >= 0:
                break
        if best < 0:
            return extra
        extra[best] += n[best]
        remaining -= int(n[best])
        k[best] *= 2
        n[best] *= 2


@dataclass(frozen=True, slots=True)
class Design:
    """The adaptive design of one certification: what to run next, and when to stop.

    ``first`` replications per planned stratum, then rounds of greedy doubling
    (``allocate``), each round spending about what was spent so far, until the bound on
    P(approved) is ``<= target`` ("target met"), its lower bound is ``> target`` ("target
    missed": certified not met), or ``max_replications`` (per setting) is spent ("budget
    exhausted"). The planned strata, ``looks`` and the Bonferroni split are fixed from
    the weights, the target and the budget before anything runs, so the final bound is
    valid whatever the data made the design do.
    """

    target: float | None
    confidence: float = DEFAULT_CONFIDENCE
    first: int = 32
    max_replications: int = 4096

    @property
    def looks(self) -> int:
        return grid_looks(self.first, self.max_replications)

    @property
    def max_per_stratum(self) -> int:
        return self.first * 2 ** (self.looks - 1)

    def strata(self, weights: Sequence[float] | np.ndarray, impossible_below: int) -> list[int]:
        return plan_strata(weights, impossible_below, self.target)

    def bound(
        self, weights: Sequence[float] | np.ndarray, successes: Sequence[int] | np.ndarray,
        trials: Sequence[int] | np.ndarray, impossible_below: int,
    ) -> CertifiedBound:
        planned = len(self.strata(weights, impossible_below))
        return certified_bound(weights, successes, trials, impossible_below, self.confidence,
                               looks=self.looks, bonferroni=planned)

    def next_batch(
        self, weights: Sequence[float] | np.ndarray, impossible_below: int,
        successes: Sequence[int] | np.ndarray, trials: Sequence[int] | np.ndarray,
    ) -> tuple[np.ndarray, str | None]:
        """``(extra replications per stratum, None)``, or ``(zeros, why we stop)``."""
        w = check_weights(weights)
        n = _as_array(trials, "trials", len(w)).astype(np.int64)
        none = np.zeros(len(w), dtype=np.int64)
        strata = self.strata(w, impossible_below)
        if not strata:
            return none, "nothing to simulate"
        remaining = self.max_replications - int(n.sum())
        common = {"strata": strata, "first": self.first, "max_per_stratum": self.max_per_stratum}
        if any(n[j] == 0 for j in strata):
            extra = allocate(w, successes, n, remaining, alpha_per_stratum=0.5, **common)
            return (extra, None) if extra.any() else (none, "budget exhausted")
        bound = self.bound(w, successes, n, impossible_below)
        if self.target is not None and bound.upper <= self.target:
            return none, "target met"
        if self.target is not None and bound.lower > self.target:
            return none, "target missed"
        alpha = bound.alpha_per_stratum
        for budget in (min(remaining, max(int(n.sum()), self.first)), remaining):
            extra = allocate(w, successes, n, budget, alpha_per_stratum=alpha, **common)
            if extra.any():
                return extra, None
        return none, "budget exhausted"


# --------------------------------------------------------------------------- words


def key_range(keys: Sequence[int]) -> str:
    """``[4, 5, 6, 7]`` -> ``4-7``; ``[4, 6]`` -> ``4, 6``."""
    keys = sorted(keys)
    if not keys:
        return "none"
    if keys == list(range(keys[0], keys[-1] + 1)) and len(keys) > 1:
        return f"{keys[0]}-{keys[-1]}"
    return ", ".join(str(j) for j in keys)


def method_text(bound: CertifiedBound) -> str:
    """``95%, exact 0 below 4 keys (quorum rule), simulated at 4-7 keys with 256
    replications``; ``certain: ...`` when no stratum was simulated (no statistics)."""
    simulated = bound.keys(SIMULATED)
    parts = [f"{bound.confidence:.0%}" if simulated else "certain: nothing simulated"]
    if bound.impossible_below > 0:
        parts.append(f"exact 0 below {bound.impossible_below} keys (quorum rule)")
    if simulated:
        parts.append(f"simulated at {key_range(simulated)} keys with "
                     f"{bound.replications:,} replications")
    bounded = bound.keys(BOUNDED)
    if bounded:
        parts.append(f"bounded by 1 at {key_range(bounded)} keys "
                     f"(weight {bound.bounded_weight:.2g})")
    return ", ".join(parts)


def bound_sentence(what: str, bound: CertifiedBound) -> str:
    """``P(malicious approved) <= 3.4e-07 (95%, exact 0 below 4 keys, ...)``."""
    return f"{what} <= {bound.upper:.2g} ({method_text(bound)})"



__all__ = [
    "BOUNDED",
    "DEFAULT_CONFIDENCE",
    "EXACT",
    "SIMULATED",
    "ZERO_WEIGHT",
    "CertifiedBound",
    "Design",
    "StratumBound",
    "allocate",
    "bound_sentence",
    "certified_bound",
    "check_weights",
    "clopper_pearson_lower",
    "clopper_pearson_upper",
    "grid_looks",
    "key_range",
    "method_text",
    "plan_strata",
]
