"""95% confidence intervals used by every report measure: Wilson, bootstrap, t.

Three methods, chosen per measure in ``releasesim.reports.measures``:

- ``wilson``: Wilson score interval for a proportion ``k / n``. Used for booleans (the
  share of replications where something happened) and for per-replication fleet
  fractions averaged over replications (``p`` = mean fraction, ``n`` = replications; a
  fraction in [0, 1] has variance at most ``p (1 - p)``, so this is conservative, and
  unlike a t-interval it does not collapse to zero width when every replication saw 0).
- ``bootstrap``: percentile bootstrap of a statistic (the median by default) with a
  fixed, seeded ``numpy.random.Generator`` so a report is reproducible to the digit.
- ``t``: Student t-interval on the mean (counts per replication).

Pure numpy; no scipy (the t quantile uses a table plus a Cornish-Fisher expansion). A
large curve bootstrap shares its (fixed) resamples among the CPUs' threads.
Must not import ``sim``, ``model`` or pandas.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

NAN = math.nan
Z95 = 1.959963984540054
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20240601

_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        return NAN
    if df <= len(_T975):
        return _T975[df - 1]
    z, v = Z95, float(df)
    return (
        z
        + (z**3 + z) / (4 * v)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3)
    )


def wilson(successes: float, n: int) -> tuple[float, float, float]:
    """``(p, low, high)``: the Wilson score 95% interval of ``successes / n``.

    ``successes`` may be fractional (a mean fraction times ``n``). NaNs when ``n == 0``.
    """
    if n <= 0:
        return NAN, NAN, NAN
    p = min(1.0, max(0.0, float(successes) / n))
    z2 = Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    # exactly 0 (or 1) when nothing (everything) happened, not a rounding error away from it
    low = 0.0 if p <= 0.0 else max(0.0, centre - half)
    high = 1.0 if p >= 1.0 else min(1.0, centre + half)
    return p, low, high


def t_interval(values: np.ndarray) -> tuple[float, float, float, int]:
    """``(mean, low, high, n)`` of the finite values; no interval when ``n < 2``."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return NAN, NAN, NAN, 0
    mean = float(np.mean(x))
    if n < 2:
        return mean, NAN, NAN, n
    half = t975(n - 1) * float(np.std(x, ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half, n


def bootstrap(
    values: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray] | None = None,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float, float, int]:
    """``(estimate, low, high, n)``: percentile bootstrap 95% interval of ``statistic``.

    ``statistic`` maps a ``(resamples, n)`` array to ``(resamples,)`` along axis 1 (default:
    the median). NaNs are dropped (``inf`` is kept: "never", ranked last by the median);
    the Generator is seeded with ``seed`` so the interval is reproducible. No interval when
    ``n < 2``.
    """
    stat = statistic or (lambda a: np.median(a, axis=-1))
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return NAN, NAN, NAN, 0
    estimate = float(stat(x[np.newaxis, :])[0])
    if n < 2:
        return estimate, NAN, NAN, n
    rng = np.random.Generator(np.random.PCG64(seed))
    samples = x[rng.integers(0, n, size=(resamples, n))]
    stats = stat(samples)
    low, high = np.quantile(stats, [0.025, 0.975], method="inverted_cdf")
    return estimate, float(low), float(high), n


def bootstrap_curve_median(
    curves: np.ndarray, *, resamples: int = 1000, seed: int = BOOTSTRAP_SEED
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pointwise median of ``curves`` (replications x grid) and its bootstrap 95% band."""
    curves = np.asarray(curves, dtype=float)
    n = curves.shape[0]
    median = np.median(curves, axis=0)
    if n < 2:
        return median, np.full_like(median, NAN), np.full_like(median, NAN)
    rng = np.random.Generator(np.random.PCG64(seed))
    idx = rng.integers(0, n, size=(resamples, n))
    meds = np.empty((resamples, curves.shape[1]))

    def medians(rows: range) -> None:
        for i in rows:
            meds[i] = np.median(curves[idx[i]], axis=0)

    # the resamples are fixed above; numpy's median releases the GIL, so the CPUs share
    # them (each resample's median lands in its own row: the same numbers as one loop)
    parts = _split(resamples, os.cpu_count() or 1)
    if len(parts) > 1 and curves.size * resamples >= PARALLEL_MIN_WORK:
        with ThreadPoolExecutor(max_workers=len(parts)) as pool:
            list(pool.map(medians, parts))
    else:
        medians(range(resamples))
    low, high = np.quantile(meds, [0.025, 0.975], axis=0)
    return median, low, high


PARALLEL_MIN_WORK = 10_000_000
"""Resampled values below which ``bootstrap_curve_median`` stays on one thread."""


def _split(count: int, parts: int) -> list[range]:
    """``range(count)`` cut into at most ``parts`` contiguous, non-empty pieces."""
    size = -(-count // max(1, parts))
    return [range(i, min(i + size, count)) for i in range(0, count, size)]


__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "bootstrap",
    "bootstrap_curve_median",
    "t975",
    "t_interval",
    "wilson",
]
