"""Sensitivity indices from an experiments table: Morris screening and Sobol indices.

Input: the **experiments table** of an exploration -- one row per (design point,
replication), with the columns ``point`` (design point index, ``0..n-1`` in design
order), ``replication``, the varied knobs and the outcome columns -- plus the design's
kind, its SALib ``problem`` dict and its unit-hypercube matrix (``sim.design.Design``
makes all three; the knob columns themselves are not read). Output: a
``SensitivityResult`` (a ranked ``indices`` DataFrame, the method in words, the noise
share and a list of warnings for the report). Nothing is printed.

Methods (SALib, the optional extra ``releasesim[analysis]``):

- **Morris** elementary effects (Morris 1991, "Factorial sampling plans for preliminary
  computational experiments", Technometrics 33:161-174) with μ*, the mean absolute
  effect (Campolongo, Cariboni & Saltelli 2007, "An effective screening design for
  sensitivity analysis of large models", Environ. Model. Softw. 22:1509-1518), via
  ``SALib.analyze.morris``: ``mu_star``, its bootstrap interval ``mu_star_conf``,
  ``sigma`` (spread of the effects: interactions or non-linearity) and ``mu`` per knob,
  ranked by μ*. The design lives in the unit hypercube, so an effect is the change of the
  outcome per *whole knob range* (linearised over a step of 2/3 of the range).
- **Sobol** first-order and total indices (Saltelli et al. 2010, "Variance based
  sensitivity analysis of model output", Comput. Phys. Commun. 181:259-270: the Saltelli
  S1 and Jansen ST estimators) via ``SALib.analyze.sobol`` (``calc_second_order=False``),
  with seeded bootstrap intervals: ``S1``, ``S1_conf``, ``ST``, ``ST_conf``, ranked by ST.
  Intervals are half-widths at ``conf_level`` (95%).

**Replication noise.** A replication is a draw of the simulator's randomness, but SALib's
estimators assume a deterministic model ``y = f(x)``. So the outcome is first averaged
over the replications of each design point; averaging R replications divides the noise
variance by R. The rest of the noise still enters the indices: Jansen's ST of a knob that
does nothing is about the noise share (below), not 0, and S1 gets noisier. The
**noise share** -- the variance of a point's replication mean (the mean within-point
variance over R) relative to the variance of the point means -- says how much of the
indices could be noise; above ``NOISE_WARN`` (0.2) it is a warning. (The alternative,
treating the replication seed as one more uniform input so that its own index measures
the noise -- Iooss & Ribatet 2009, Marrel et al. 2012 -- needs the simulator to take the
seed as a design input; it is not used here.)

**Warnings** (``SensitivityResult.warnings``, one sentence each): a Sobol index negative
beyond its interval; an interval wider than 0.1, or wider than an index of at least 0.05
(so it cannot be told from 0); fewer than ``MIN_SOBOL_N`` (64) Sobol base samples or
``MIN_MORRIS_TRAJECTORIES`` (10) Morris trajectories; a Morris μ*_conf wider than a μ* of
at least a tenth of the largest; the noise share above 0.2 (or unknown with one
replication); an outcome constant across design points (no indices then, instead of a
division by zero); NaN outcomes -- a value defined only in some replications (e.g. a time
to activation) is averaged over the replications that have it, and a design point with no
value is dropped with its Sobol block (``D + 2`` points) or Morris trajectory (``D + 1``
points), since the estimators need them whole.

Must not import ``sim`` or ``model``.
"""

from __future__ import annotations

import warnings as _warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

try:  # optional extra: releasesim[analysis]
    from SALib.analyze import morris as salib_morris
    from SALib.analyze import sobol as salib_sobol
except ImportError:  # pragma: no cover - exercised only without the extra
    salib_morris = None
    salib_sobol = None

ANALYSIS_INSTALL_HINT = "pip install 'releasesim[analysis]'"
SENSITIVITY_DESIGNS = ("morris", "sobol")
NOISE_WARN = 0.2
WIDE_INTERVAL = 0.1
NEGLIGIBLE_INDEX = 0.05
MIN_SOBOL_N = 64
MIN_MORRIS_TRAJECTORIES = 10
MORRIS_LEVELS = 4
MORRIS_COLUMNS = ("knob", "mu_star", "mu_star_conf", "sigma", "mu", "rank")
SOBOL_COLUMNS = ("knob", "S1", "S1_conf", "ST", "ST_conf", "rank")


class SensitivityError(Exception):
    """The experiments table cannot be analysed (wrong design, columns or size)."""

    exit_code = 2


@dataclass(frozen=True)
class SensitivityResult:
    """Sensitivity indices of one outcome, with what limits them.

    ``indices``: one row per knob, ranked (``rank`` 1 = most influential); columns
    ``MORRIS_COLUMNS`` or ``SOBOL_COLUMNS``; empty when no index could be computed (see
    ``warnings``). ``base_samples``: Sobol base samples or Morris trajectories used (after
    dropping incomplete ones); ``points_used``: design points used; ``replications``: the
    most defined replication values of any point; ``noise_share``: see the module
    docstring (``None`` when it cannot be estimated); ``point_means``: the outcome averaged
    per design point (index ``point``; NaN where undefined).
    """

    outcome: str
    design: str
    method: str
    indices: pd.DataFrame
    base_samples: int
    points_used: int
    replications: int
    noise_share: float | None
    conf_level: float
    warnings: tuple[str, ...]
    point_means: pd.Series


# --------------------------------------------------------------------------------------
# Replications -> one value per design point
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _PointValues:
    means: np.ndarray  # per design point, NaN where undefined
    counts: np.ndarray  # defined replication values per point
    within: np.ndarray  # sample variance within each point (NaN below 2 values)
    nan_values: int  # replication values that are NaN
    total_values: int


def _point_values(experiments: pd.DataFrame, outcome: str, n_points: int) -> _PointValues:
    for column in ("point", outcome):
        if column not in experiments.columns:
            raise SensitivityError(f"the experiments table has no column {column!r}")
    values = experiments[outcome]
    if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)):
        raise SensitivityError(f"outcome {outcome!r} is not numeric ({values.dtype})")
    frame = pd.DataFrame({"point": experiments["point"].to_numpy(),
                          "y": pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)})
    points = frame["point"]
    if points.isna().any() or (points < 0).any() or (points >= n_points).any():
        raise SensitivityError(
            f"column 'point' must hold design point indices 0..{n_points - 1} "
            "(the table does not match the design)")
    frame.loc[~np.isfinite(frame["y"]), "y"] = np.nan
    grouped = frame.groupby("point")["y"]
    index = pd.RangeIndex(n_points)
    return _PointValues(
        means=grouped.mean().reindex(index).to_numpy(dtype=float),
        counts=grouped.count().reindex(index, fill_value=0).to_numpy(dtype=int),
        within=grouped.var(ddof=1).reindex(index).to_numpy(dtype=float),
        nan_values=int(frame["y"].isna().sum()),
        total_values=len(frame),
    )


def noise_share(means: np.ndarray, within: np.ndarray, counts: np.ndarray) -> float | None:
    """Variance of a point's replication mean relative to the variance of the point means.

    ``mean(within_i / counts_i)`` over points with at least two values, divided by the
    sample variance of ``means``. ``None`` when no point has two values or the means do
    not vary. About 1 means the differences between points are replication noise.
    """
    usable = counts >= 2
    between = float(np.var(means, ddof=1)) if len(means) >= 2 else 0.0
    if not usable.any() or between <= 0.0:
        return None
    return float(np.mean(within[usable] / counts[usable]) / between)


# --------------------------------------------------------------------------------------
# Analysis
# --------------------------------------------------------------------------------------


def _knob_list(names: list[str]) -> str:
    return ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")


def _sobol_warnings(indices: pd.DataFrame, n: int) -> list[str]:
    out: list[str] = []
    if n < MIN_SOBOL_N:
        out.append(f"only N={n} Sobol base samples (< {MIN_SOBOL_N}): the indices are not "
                   f"stable; use --samples {MIN_SOBOL_N} or more (a power of 2)")
    for name in ("S1", "ST"):
        value, conf = indices[name], indices[f"{name}_conf"]
        negative = indices.loc[value + conf < 0, "knob"].tolist()
        if negative:
            out.append(f"{name} is negative beyond its interval for {_knob_list(negative)}: "
                       "the sample is too small for stable indices")
        wide = (conf > WIDE_INTERVAL) | ((conf > value.abs()) & (value.abs() >= NEGLIGIBLE_INDEX))
        if wide.any():
            out.append(f"{name} intervals are wide (over {WIDE_INTERVAL} or over the index) "
                       f"for {_knob_list(indices.loc[wide, 'knob'].tolist())}: "
                       "more samples would narrow them")
    return out


def _morris_warnings(indices: pd.DataFrame, trajectories: int) -> list[str]:
    out: list[str] = []
    if trajectories < MIN_MORRIS_TRAJECTORIES:
        out.append(f"only {trajectories} Morris trajectories (< {MIN_MORRIS_TRAJECTORIES}): "
                   "the ranking is not stable; use --samples 10 or more")
    top = float(indices["mu_star"].max())
    unclear = indices.loc[(indices["mu_star_conf"] > indices["mu_star"])
                          & (indices["mu_star"] >= 0.1 * top), "knob"].tolist()
    if unclear:
        out.append(f"mu* cannot be told from 0 (interval wider than mu*) for "
                   f"{_knob_list(unclear)}: more trajectories would settle it")
    return out


def _ranked(frame: pd.DataFrame, by: str, columns: tuple[str, ...]) -> pd.DataFrame:
    frame = frame.sort_values(by, ascending=False, kind="stable").reset_index(drop=True)
    frame["rank"] = np.arange(1, len(frame) + 1)
    return frame.loc[:, list(columns)]


def _empty(columns: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object if c == "knob" else float)
                         for c in columns})


def analyze_sensitivity(
    experiments: pd.DataFrame,
    outcome: str,
    *,
    design: str,
    problem: Mapping[str, Any],
    unit: np.ndarray | pd.DataFrame,
    seed: int = 0,
    conf_level: float = 0.95,
    num_resamples: int = 1000,
) -> SensitivityResult:
    """Morris or Sobol indices of ``outcome`` over the knobs of ``problem``.

    ``design`` is ``"morris"`` or ``"sobol"`` (an LHS design has no index estimator here:
    it feeds scenario discovery); ``problem`` and ``unit`` are the design's SALib problem
    dict and unit-hypercube matrix (one row per design point, in order). ``seed`` makes
    the bootstrap intervals reproducible. Raises ``SensitivityError`` for a table that
    does not fit the design, never for a sample that is merely too small (a warning).
    """
    if design not in SENSITIVITY_DESIGNS:
        raise SensitivityError(
            f"sensitivity indices need a morris or sobol design, not {design!r} "
            "(an lhs design feeds scenario discovery)")
    if salib_morris is None or salib_sobol is None:
        raise SensitivityError(f"sensitivity indices need SALib: {ANALYSIS_INSTALL_HINT}")
    names = [str(n) for n in problem["names"]]
    dims = len(names)
    unit = np.asarray(unit, dtype=float)
    n_points = len(unit)
    block = dims + 2 if design == "sobol" else dims + 1
    if unit.ndim != 2 or unit.shape[1] != dims or n_points == 0 or n_points % block:
        raise SensitivityError(
            f"the unit matrix {unit.shape} does not fit a {design} design over {dims} knobs "
            f"(rows must be a multiple of {block})")
    values = _point_values(experiments, outcome, n_points)
    notes: list[str] = []
    if values.nan_values:
        notes.append(f"{values.nan_values} of {values.total_values} replication values of "
                     f"{outcome} are NaN; point means use the defined ones (a conditional "
                     "mean)")
    complete = ~np.isnan(values.means).reshape(-1, block).any(axis=1)
    kept_points = np.repeat(complete, block)
    n_base = int(complete.sum())
    unit_name = "Sobol base samples" if design == "sobol" else "Morris trajectories"
    one_unit = "Sobol block" if design == "sobol" else "Morris trajectory"
    if not complete.all():
        missing = int(np.isnan(values.means).sum())
        notes.append(f"{missing} design points have no value of {outcome}; dropped with "
                     f"their {one_unit} ({n_base} of {len(complete)} {unit_name} left)")
    means = values.means[kept_points]
    replications = int(values.counts.max()) if len(values.counts) else 0
    share = noise_share(means, values.within[kept_points], values.counts[kept_points])
    method = _method_text(design, n_base, replications, conf_level, num_resamples)
    columns = SOBOL_COLUMNS if design == "sobol" else MORRIS_COLUMNS
    result = {"outcome": outcome, "design": design, "method": method,
              "base_samples": n_base, "points_used": int(kept_points.sum()),
              "replications": replications, "noise_share": share,
              "conf_level": conf_level,
              "point_means": pd.Series(values.means, index=pd.RangeIndex(n_points,
                                                                          name="point"))}
    if n_base < 2:
        notes.append(f"only {n_base} complete {unit_name}: no indices can be computed")
        return SensitivityResult(indices=_empty(columns), warnings=tuple(notes), **result)
    if float(np.ptp(means)) == 0.0:
        notes.append(f"{outcome} is {means[0]:g} at every design point: it does not depend "
                     "on the varied knobs here, so there are no indices")
        return SensitivityResult(indices=_empty(columns), warnings=tuple(notes), **result)
    if replications < 2:
        notes.append("one replication per design point: the noise share cannot be "
                     "estimated and replication noise is inside the indices")
    elif share is not None and share > NOISE_WARN:
        verdict = ("the indices are mostly noise" if share >= 0.5
                   else "that much of the indices could be noise")
        notes.append(f"noise share {share:.2f}: replication noise is {share:.0%} of the "
                     f"variance between design points, so {verdict} (a knob that does "
                     f"nothing gets a total index of about {share:.2f}); more replications "
                     "per point shrink it as 1/R")
    rng = np.random.default_rng(seed)
    salib_problem = {"num_vars": dims, "names": names, "bounds": [[0.0, 1.0]] * dims}
    with _warnings.catch_warnings(), np.errstate(all="ignore"):
        _warnings.simplefilter("ignore")
        if design == "sobol":
            si = salib_sobol.analyze(salib_problem, means, calc_second_order=False,
                                     num_resamples=num_resamples, conf_level=conf_level,
                                     seed=rng)
            frame = pd.DataFrame({"knob": names, **{k: np.asarray(si[k], dtype=float)
                                                    for k in ("S1", "S1_conf", "ST",
                                                              "ST_conf")}})
            indices = _ranked(frame, "ST", SOBOL_COLUMNS)
            notes.extend(_sobol_warnings(indices, n_base))
        else:
            si = salib_morris.analyze(salib_problem, unit[kept_points], means,
                                      num_resamples=num_resamples, conf_level=conf_level,
                                      num_levels=MORRIS_LEVELS, seed=rng)
            frame = pd.DataFrame({"knob": names, **{k: np.asarray(si[k], dtype=float)
                                                    for k in ("mu_star", "mu_star_conf",
                                                              "sigma", "mu")}})
            indices = _ranked(frame, "mu_star", MORRIS_COLUMNS)
            notes.extend(_morris_warnings(indices, n_base))
    return SensitivityResult(indices=indices, warnings=tuple(notes), **result)


def _method_text(design: str, n: int, replications: int, conf_level: float,
                 resamples: int) -> str:
    averaged = (f"the outcome averaged over up to {replications} replications per design "
                "point" if replications > 1 else "one replication per design point")
    level = f"{conf_level:.0%} bootstrap intervals ({resamples} resamples)"
    if design == "sobol":
        return (f"Sobol first-order (S1) and total (ST) indices, Saltelli et al. (2010) "
                f"estimators via SALib, {n} base samples, {level}; {averaged}")
    return (f"Morris elementary effects (mu*, sigma; Morris 1991, Campolongo et al. 2007) "
            f"via SALib, {n} trajectories on a {MORRIS_LEVELS}-level grid, {level}; "
            f"{averaged}")
