"""Scenario discovery: the knob ranges where a yes/no outcome of interest is concentrated.

Input is an *experiments table* (one row per design point and replication; input columns
are the varied knobs -- float, int, or categorical/str/bool -- and outcome columns) and a
yes/no outcome, usually made by ``outcome_of_interest(table, "peak_down_stake", ">=", 1/3)``.
Each replication is one row, so a box's density estimates P(outcome) per replication.

**PRIM** (``prim``): the patient rule induction method of Friedman & Fisher (1999), "Bump
hunting in high-dimensional data", *Statistics and Computing* 9:123-143, as used for scenario
discovery by Bryant & Lempert (2010), *Technol. Forecast. Soc. Change* 77:34-49, and EMA
Workbench (``ema_workbench.analysis.prim``, BSD; read for reference, not copied):

1. *Peeling*: from the whole input space, each step removes the slice that leaves the box
   with the highest density (share of its rows with the outcome; ties: the smaller slice):
   the lowest or highest ``alpha`` share of the box's rows along a numeric input (equal
   values go together) or one category of a categorical input. As in Friedman & Fisher it
   goes on when the best step lowers the density, and stops when every slice would leave
   fewer than ``mass_min`` of the rows or the box is pure. ``PrimResult.trajectories`` keeps
   every step.
2. *Choice*: the box on the trajectory with the highest density whose coverage (share of
   the cases of interest in the box) is at least ``min_coverage``; ties: the larger box.
3. *Pasting*: the chosen box is widened by an ``alpha`` share of its rows along one
   restricted input (or one category added back) while that strictly raises its density.
4. *Pruning*: each restriction side gets a quasi-p-value as in EMA Workbench: P(X >= cases
   in the box) for X ~ Binomial(rows in the box, p), p the density with that lower limit,
   upper limit or category subset lifted (exact tail, summed in log space). While the
   largest exceeds ``max_qp`` (default 0.05) that side is lifted, so a limit that only fits
   noise is dropped (``max_qp=None`` keeps all).
5. *Covering* (``n_boxes > 1``): the box's rows are removed and 1-4 run on the rest, so a
   later box's ``rows`` exclude every earlier box's (its region may overlap an earlier one,
   which takes precedence). A later box's choice rule and trajectory use the remaining
   rows; its coverage, density and mass are reported against the whole table. Covering
   stops when a box has no restriction or is no denser than the whole table
   (``PrimResult.base_rate``), or no case of interest is left.

A numeric restriction is ``low <= x < high`` (``Interval``, ``None`` = open end), a
categorical one the allowed categories (``Levels``); unrestricted inputs are absent from
``Box.restrictions``. **Rules in words** (``box_rule``): "P(stall) = 41% (vs 3% overall) when
`fleet.poll_interval_s` < 90 and `rollout.strategy` = all_at_once; covers 78% of stalls (312
of 400; 761 replications in the box)". A decision tree as a second view is in
``releasesim.reports.decision_tree``.

Bad input (unknown column, missing values, a constant outcome, fewer than ``MIN_ROWS`` rows,
a bad parameter) raises ``DiscoveryError`` (exit code 2) with a one-line message naming it.
Pure numpy + pandas; must not import ``sim`` or ``model``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

__all__ = [
    "MIN_ROWS", "Box", "DiscoveryError", "Interval", "Levels", "PrimResult", "Restriction",
    "binom_sf", "box_mask", "box_rule", "boxes_table", "outcome_of_interest", "prim",
]

MIN_ROWS = 10
OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt,
       "==": operator.eq, "!=": operator.ne}


class DiscoveryError(Exception):
    """The experiments table, the outcome or a parameter cannot be used for discovery."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class Interval:
    """A numeric restriction ``low <= x < high``; ``None`` is an open end."""

    low: float | None = None
    high: float | None = None


@dataclass(frozen=True, slots=True)
class Levels:
    """A categorical restriction: ``x`` is one of ``levels`` (in the column's level order)."""

    levels: tuple[object, ...]


Restriction = Interval | Levels


@dataclass(frozen=True, slots=True, eq=False)
class Box:
    """A region of the input space and how the outcome of interest behaves in it.

    ``restrictions`` holds the restricted inputs only (input order); ``coverage`` is the
    share of all cases of interest in the box, ``density`` the share of the box's rows that
    are cases of interest, ``mass`` the share of all rows in the box; ``n`` rows, of which
    ``n_interest`` cases of interest; ``qp`` maps ``(input, "low" | "high" | "levels")`` to the
    restriction's quasi-p-value; ``rows`` are the box's row positions in the table.
    """

    restrictions: dict[str, Restriction]
    coverage: float
    density: float
    mass: float
    n: int
    n_interest: int
    qp: dict[tuple[str, str], float] = field(default_factory=dict)
    rows: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))


@dataclass(slots=True)
class PrimResult:
    """Boxes found by PRIM (may be empty), the base rate and one peeling trajectory per box.

    A trajectory has one row per peeling step (step 0 = all remaining rows): ``coverage``,
    ``density``, ``mass``, ``n``, ``n_interest``, ``n_restricted`` (restricted inputs),
    ``chosen`` (the step the choice rule took) and ``box`` (that step's restrictions).
    """

    boxes: list[Box]
    trajectories: list[pd.DataFrame]
    base_rate: float
    n: int
    n_interest: int
    settings: dict[str, object]


@dataclass(slots=True)
class Inputs:
    """Input columns as arrays: float values, or integer codes into ``levels``."""

    names: list[str]
    values: list[np.ndarray]
    levels: list[tuple[object, ...] | None]
    integer: list[bool]

    def take(self, rows: np.ndarray) -> Inputs:
        return Inputs(self.names, [v[rows] for v in self.values], self.levels, self.integer)


def prepare(table: pd.DataFrame, y: object, inputs: Sequence[str]) -> tuple[Inputs, np.ndarray]:
    """Check the table, the input columns and the yes/no outcome; return them as arrays."""
    _check_table(table)
    names = [inputs] if isinstance(inputs, str) else list(inputs)
    if not names:
        raise DiscoveryError("no input columns given")
    out = Inputs([], [], [], [])
    for name in names:
        if name not in table.columns or name in out.names:
            word = "unknown" if name not in table.columns else "repeated"
            raise DiscoveryError(f"{word} input column `{name}`")
        col = table[name]
        if col.isna().any():
            missing = int(col.isna().sum())
            raise DiscoveryError(f"input column `{name}` has {missing} missing values")
        out.names.append(name)
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            values = col.to_numpy(dtype=float)
            if not np.isfinite(values).all():
                raise DiscoveryError(f"input column `{name}` has infinite values")
            out.values.append(values)
            out.levels.append(None)
            out.integer.append(pd.api.types.is_integer_dtype(col))
        else:
            cat = col if isinstance(col.dtype, pd.CategoricalDtype) else col.astype("category")
            if not isinstance(col.dtype, pd.CategoricalDtype):
                cat = cat.cat.reorder_categories(sorted(cat.cat.categories, key=str))
            out.values.append(cat.cat.codes.to_numpy(dtype=np.int64))
            out.levels.append(tuple(cat.cat.categories))
            out.integer.append(False)
    return out, _outcome_array(table, y)


def _check_table(table: pd.DataFrame) -> None:
    if not isinstance(table, pd.DataFrame):
        raise DiscoveryError("the experiments table must be a pandas DataFrame")
    if len(table) < MIN_ROWS:
        raise DiscoveryError(f"too few rows: {len(table)} (scenario discovery needs {MIN_ROWS})")


def _outcome_array(table: pd.DataFrame, y: object) -> np.ndarray:
    if isinstance(y, str):
        if y not in table.columns:
            raise DiscoveryError(f"unknown outcome column `{y}`")
        y = table[y]
    arr = pd.Series(y).to_numpy() if not isinstance(y, np.ndarray) else y
    if arr.shape != (len(table),):
        raise DiscoveryError(f"the outcome has {arr.size} values for {len(table)} rows")
    if pd.isna(arr).any():
        raise DiscoveryError(f"the outcome has {int(pd.isna(arr).sum())} missing values")
    if not np.isin(arr, (0, 1)).all():
        raise DiscoveryError("the outcome must be yes/no (bool or 0/1)")
    arr = arr.astype(bool)
    if arr.all() or not arr.any():
        word = "all" if arr.all() else "none"
        raise DiscoveryError(f"the outcome is constant: true in {word} of the {arr.size} rows")
    return arr


def inside(inp: Inputs, box: Mapping[str, Restriction], skip: tuple[str, str] | None = None,
          ) -> np.ndarray:
    """Rows of ``inp`` inside ``box``; ``skip`` lifts one side of one restriction."""
    keep = np.ones(len(inp.values[0]), dtype=bool)
    for j, name in enumerate(inp.names):
        r = box.get(name)
        if r is None:
            continue
        v = inp.values[j]
        if isinstance(r, Levels):
            if skip != (name, "levels"):
                levels = inp.levels[j] or ()
                keep &= np.isin(v, [levels.index(x) for x in r.levels])
            continue
        if r.low is not None and skip != (name, "low"):
            keep &= v >= r.low
        if r.high is not None and skip != (name, "high"):
            keep &= v < r.high
    return keep


def _sides(box: Mapping[str, Restriction]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name, r in box.items():
        if isinstance(r, Levels):
            out.append((name, "levels"))
        else:
            out += [(name, s) for s, v in (("low", r.low), ("high", r.high)) if v is not None]
    return out


def _lift(box: dict[str, Restriction], side: tuple[str, str]) -> dict[str, Restriction]:
    name, which = side
    r = box[name]
    new = None if isinstance(r, Levels) else replace(r, **{which: None})
    return {k: new if k == name else v for k, v in box.items()
            if k != name or new not in (None, Interval())}


def normalize(inp: Inputs, box: Mapping[str, Restriction]) -> dict[str, Restriction]:
    """Drop what does not restrict the rows of ``inp``; keep the input order."""
    out: dict[str, Restriction] = {}
    for j, name in enumerate(inp.names):
        r = box.get(name)
        v = inp.values[j]
        if isinstance(r, Levels):
            present = {(inp.levels[j] or ())[c] for c in np.unique(v)}
            if not present <= set(r.levels):
                out[name] = Levels(tuple(x for x in inp.levels[j] or () if x in r.levels))
        elif isinstance(r, Interval):
            low = r.low if r.low is not None and r.low > v.min() else None
            high = r.high if r.high is not None and r.high <= v.max() else None
            if low is not None or high is not None:
                out[name] = Interval(low, high)
    return out


def binom_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p): the exact tail, summed in log space."""
    if k <= 0 or p >= 1.0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    log_first = (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                 + k * math.log(p) + (n - k) * math.log1p(-p))
    i = np.arange(k, n, dtype=float)
    steps = np.log((n - i) / (i + 1)) + math.log(p) - math.log1p(-p)
    logs = log_first + np.concatenate(([0.0], np.cumsum(steps)))
    top = logs.max()
    return float(min(1.0, math.exp(top) * np.exp(logs - top).sum()))


def _quasi_p(inp: Inputs, y: np.ndarray, box: dict[str, Restriction],
             ) -> dict[tuple[str, str], float]:
    mask = inside(inp, box)
    n, k = int(mask.sum()), int(y[mask].sum())
    return {side: binom_sf(k, n, float(y[inside(inp, box, skip=side)].mean()))
            for side in _sides(box)}


def _peel_step(inp: Inputs, y: np.ndarray, idx: np.ndarray, box: dict[str, Restriction],
               alpha: float, n_min: int, lenient: bool = True,
               ) -> tuple[np.ndarray, dict[str, Restriction]] | None:
    """The best peel of the box with rows ``idx``, or ``None`` when every peel is too big."""
    n = idx.size
    m = max(1, round(alpha * n))
    base = float(y[idx].mean())
    best: tuple[float, int] | None = None
    chosen: tuple[np.ndarray, dict[str, Restriction]] | None = None
    for j, name in enumerate(inp.names):
        v = inp.values[j][idx]
        cands: list[tuple[np.ndarray, Restriction]] = []
        old = box.get(name)
        if inp.levels[j] is None:
            old = old if isinstance(old, Interval) else Interval()
            s = np.sort(v)
            keep = v > s[m - 1]
            if keep.any():
                cands.append((keep, replace(old, low=float(v[keep].min()))))
            keep = v < s[n - m]
            if keep.any():
                cands.append((keep, replace(old, high=float(s[n - m]))))
        else:
            levels = inp.levels[j] or ()
            allowed = old.levels if isinstance(old, Levels) else levels
            present = np.unique(v)
            for code in present if present.size > 1 else ():
                cands.append((v != code, Levels(tuple(x for x in allowed if x != levels[code]))))
        for keep, restriction in cands:
            size = int(keep.sum())
            if size < n_min or size == n:
                continue
            # density gained per share of the box peeled away (Friedman & Fisher 1999,
            # sec. 8; EMA Workbench's "lenient" criterion): a peel that drops a whole level
            # of an integer or categorical knob must earn its larger bite
            gain = float(y[idx[keep]].mean()) - base
            score = (gain / ((n - size) / n) if lenient else gain, size)
            if best is None or score > best:
                best, chosen = score, (idx[keep], {**box, name: restriction})
    return chosen


def _paste(inp: Inputs, y: np.ndarray, box: dict[str, Restriction], alpha: float,
           ) -> dict[str, Restriction]:
    """Widen the box while that strictly raises its density (Friedman & Fisher, sec. 2.2)."""
    while True:
        mask = inside(inp, box)
        density, m = float(y[mask].mean()), max(1, round(alpha * int(mask.sum())))
        best: tuple[float, dict[str, Restriction]] | None = None
        for name, r in box.items():
            j = inp.names.index(name)
            others = inside(inp, {k: v for k, v in box.items() if k != name})
            v = inp.values[j]
            wider: list[Restriction] = []
            if isinstance(r, Levels):
                levels = inp.levels[j] or ()
                for code in np.unique(v[others]):
                    if levels[code] not in r.levels:
                        add = {*r.levels, levels[code]}
                        wider.append(Levels(tuple(x for x in levels if x in add)))
            else:
                if r.low is not None and (below := np.sort(v[others & (v < r.low)])).size:
                    wider.append(replace(r, low=float(below[max(0, below.size - m)])))
                if r.high is not None and (above := np.sort(v[others & (v >= r.high)])).size:
                    rest = above[above > above[min(m, above.size) - 1]]
                    wider.append(replace(r, high=float(rest[0]) if rest.size else None))
            for w in wider:
                trial = normalize(inp, {**box, name: w})
                d = float(y[inside(inp, trial)].mean())
                if d > density and (best is None or d > best[0]):
                    best = (d, trial)
        if best is None:
            return box
        box = best[1]


def make_box(inp: Inputs, y: np.ndarray, box: dict[str, Restriction], positions: np.ndarray,
             n_total: int, interest_total: int) -> Box:
    """The box's figures on these rows, against ``n_total`` rows and ``interest_total`` cases."""
    mask = inside(inp, box)
    n, k = int(mask.sum()), int(y[mask].sum())
    return Box(dict(box), k / interest_total, k / n if n else 0.0, n / n_total, n, k,
               _quasi_p(inp, y, box), positions[mask])


def prim(table: pd.DataFrame, y: object, inputs: Sequence[str], *, alpha: float = 0.05,
         min_coverage: float = 0.5, mass_min: float = 0.05, paste: bool = True,
         max_qp: float | None = 0.05, n_boxes: int = 1,
         peel_criterion: str = "lenient") -> PrimResult:
    """Find up to ``n_boxes`` boxes where the yes/no outcome ``y`` is concentrated.

    ``y`` is a bool (or 0/1) array or Series with one value per row, or an outcome column
    name; ``inputs`` are the varied knobs' columns. See the module docstring for the method.
    ``peel_criterion``: ``"lenient"`` (default) picks the peel with the largest density gain
    per share of the box removed, so dropping a whole level of an integer or categorical
    knob (often far more than ``alpha`` of the rows) must earn its bite; ``"density"``
    picks the peel leaving the densest box (Friedman & Fisher's plain rule).
    """
    if peel_criterion not in ("lenient", "density"):
        raise DiscoveryError(f"peel_criterion must be lenient or density, got {peel_criterion!r}")
    lenient = peel_criterion == "lenient"
    if not 0.0 < alpha < 0.5:
        raise DiscoveryError(f"alpha must be in (0, 0.5), got {alpha}")
    if not 0.0 <= min_coverage <= 1.0:
        raise DiscoveryError(f"min_coverage must be in [0, 1], got {min_coverage}")
    if not 0.0 <= mass_min < 1.0:
        raise DiscoveryError(f"mass_min must be in [0, 1), got {mass_min}")
    if max_qp is not None and not 0.0 < max_qp <= 1.0:
        raise DiscoveryError(f"max_qp must be in (0, 1], got {max_qp}")
    if isinstance(n_boxes, bool) or not isinstance(n_boxes, int) or n_boxes < 1:
        raise DiscoveryError(f"n_boxes must be a whole number >= 1, got {n_boxes!r}")
    inp_all, y_all = prepare(table, y, inputs)
    n_total, interest_total = y_all.size, int(y_all.sum())
    remaining = np.arange(n_total)
    boxes: list[Box] = []
    trajectories: list[pd.DataFrame] = []
    while len(boxes) < n_boxes and remaining.size >= MIN_ROWS and y_all[remaining].any():
        inp, ys = inp_all.take(remaining), y_all[remaining]
        n, k = ys.size, int(ys.sum())
        idx, box = np.arange(n), {}
        steps: list[tuple[np.ndarray, dict[str, Restriction]]] = [(idx, box)]
        n_min = max(1, math.ceil(mass_min * n))
        while 0 < ys[idx].sum() < idx.size and (nxt := _peel_step(inp, ys, idx, box, alpha,
                                                                   n_min, lenient)):
            idx, box = nxt[0], normalize(inp, nxt[1])
            steps.append((idx, box))
        traj = pd.DataFrame([
            {"step": i, "coverage": ys[rows].sum() / k, "density": ys[rows].mean(),
             "mass": rows.size / n, "n": rows.size, "n_interest": int(ys[rows].sum()),
             "n_restricted": len(b), "box": b} for i, (rows, b) in enumerate(steps)])
        ok = traj[traj["coverage"] >= min_coverage]
        pick = int(ok["step"].iloc[int(np.argmax(ok["density"].to_numpy()))])
        traj["chosen"] = traj["step"] == pick
        trajectories.append(traj)
        box = steps[pick][1]
        if paste and box:
            box = _paste(inp, ys, box, alpha)
        while max_qp is not None and box:
            qp = _quasi_p(inp, ys, box)
            side = max(qp, key=lambda s: qp[s])
            if qp[side] <= max_qp:
                break
            box = _lift(box, side)
        found = make_box(inp, ys, box, remaining, n_total, interest_total) if box else None
        if found is None or found.density <= interest_total / n_total:
            break
        boxes.append(found)
        remaining = np.setdiff1d(remaining, found.rows, assume_unique=True)
    settings = {"alpha": alpha, "min_coverage": min_coverage, "mass_min": mass_min,
                "paste": paste, "max_qp": max_qp, "n_boxes": n_boxes}
    return PrimResult(boxes, trajectories, interest_total / n_total, n_total, interest_total,
                      settings)


def box_mask(table: pd.DataFrame, restrictions: Mapping[str, Restriction]) -> np.ndarray:
    """Rows of ``table`` inside a box (e.g. to mark them in a figure)."""
    keep = np.ones(len(table), dtype=bool)
    for name, r in restrictions.items():
        if name not in table.columns:
            raise DiscoveryError(f"unknown input column `{name}`")
        col = table[name]
        if isinstance(r, Levels):
            keep &= col.isin(list(r.levels)).to_numpy()
            continue
        if r.low is not None:
            keep &= (col >= r.low).to_numpy()
        if r.high is not None:
            keep &= (col < r.high).to_numpy()
    return keep


def _num(v: float) -> str:
    if float(v).is_integer() and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.0f}" if abs(v) >= 1e4 else f"{v:.4g}"


def _pct(x: float) -> str:
    if x in (0.0, 1.0) or 0.01 <= x <= 0.99:
        return f"{x:.0%}"
    return "<0.1%" if x < 0.001 else ">99.9%" if x > 0.999 else f"{x:.1%}"


def _condition(name: str, r: Restriction) -> str | None:
    if isinstance(r, Levels):
        if len(r.levels) == 1:
            return f"`{name}` = {r.levels[0]}"
        return f"`{name}` in {{{', '.join(str(x) for x in r.levels)}}}"
    if r.low is not None and r.high is not None:
        return f"{_num(r.low)} <= `{name}` < {_num(r.high)}"
    if r.low is not None:
        return f"`{name}` >= {_num(r.low)}"
    return f"`{name}` < {_num(r.high)}" if r.high is not None else None


def box_rule(box: Box, base_rate: float, outcome_label: str, *, cases: str | None = None) -> str:
    """The box as a sentence a person can act on.

    ``cases`` names the cases of interest in the plural (default ``"<outcome_label> cases"``):
    ``box_rule(box, 0.03, "stall", cases="stalls")`` -> "P(stall) = 41% (vs 3% overall) when
    `fleet.poll_interval_s` < 90 and `rollout.strategy` = all_at_once; covers 78% of stalls
    (312 of 400; 761 replications in the box)": 312 of the 400 stalls of the table are in the
    box, which holds 761 rows. Restrictions that do not restrict are left out.
    """
    conds = [c for name, r in box.restrictions.items() if (c := _condition(name, r))]
    where = "when " + " and ".join(conds) if conds else "everywhere (no restriction)"
    head = f"P({outcome_label}) = {_pct(box.density)} (vs {_pct(base_rate)} overall) {where}"
    cases = cases or f"{outcome_label} cases"
    if box.coverage <= 0:
        return f"{head}; covers none of the {cases} ({box.n} replications in the box)"
    total = round(box.n_interest / box.coverage)
    return (f"{head}; covers {_pct(box.coverage)} of {cases} ({box.n_interest} of {total}; "
            f"{box.n} replications in the box)")


def boxes_table(boxes: Sequence[Box], base_rate: float, outcome_label: str, *,
                cases: str | None = None) -> pd.DataFrame:
    """One row per box: ``box`` (1-based), coverage, density, mass, n, n_interest, rule."""
    return pd.DataFrame([
        {"box": i, "coverage": b.coverage, "density": b.density, "mass": b.mass, "n": b.n,
         "n_interest": b.n_interest, "rule": box_rule(b, base_rate, outcome_label, cases=cases)}
        for i, b in enumerate(boxes, start=1)
    ], columns=["box", "coverage", "density", "mass", "n", "n_interest", "rule"])


def outcome_of_interest(table: pd.DataFrame, column: str, op: str, threshold: object,
                        ) -> pd.Series:
    """``table[column] <op> threshold`` as a bool Series named like ``"lagging > 0.05"``.

    ``op`` is one of ``>=``, ``>``, ``<=``, ``<``, ``==``, ``!=``. Raises ``DiscoveryError``
    for an unknown column or op, missing values, a non-numeric column with an ordering op,
    fewer than ``MIN_ROWS`` rows, or an outcome that is the same in every row.
    """
    _check_table(table)
    if column not in table.columns:
        raise DiscoveryError(f"unknown outcome column `{column}`")
    if op not in OPS:
        raise DiscoveryError(f"unknown comparison `{op}` (use one of {', '.join(OPS)})")
    col = table[column]
    if missing := int(col.isna().sum()):
        raise DiscoveryError(f"outcome column `{column}` has {missing} missing values")
    numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
    if op not in ("==", "!=") and not numeric:
        raise DiscoveryError(f"outcome column `{column}` is not numeric; use == or !=")
    if numeric and isinstance(threshold, str):
        raise DiscoveryError(f"threshold {threshold!r} for numeric column `{column}` is text")
    result = OPS[op](col, threshold)
    text = _num(threshold) if isinstance(threshold, int | float) else str(threshold)
    label = f"{column} {op} {text}"
    hits = int(result.sum())
    if hits in (0, len(table)):
        word = "none" if hits == 0 else "all"
        raise DiscoveryError(f"outcome `{label}` is constant: true in {word} of the "
                             f"{len(table)} rows")
    return result.astype(bool).rename(label)
