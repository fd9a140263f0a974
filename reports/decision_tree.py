"""A small classification tree as a second view of scenario discovery.

Where PRIM (``releasesim.reports.discovery``) looks for the densest boxes one at a time, a
tree splits the whole input space into disjoint leaves; both answer "under which knob
ranges does the outcome of interest happen?", and a region both find is worth trusting.

Method: CART (Breiman, Friedman, Olshen & Stone 1984, *Classification and Regression
Trees*) with the Gini impurity, grown greedily to ``max_depth`` (default 3) with at least
``min_leaf`` rows (default 20) per leaf, without pruning (the depth limit keeps it small).
A node is split on the input and cut that lowers the rows-weighted Gini impurity most
(ties: the earlier input, the lower cut); a node that is pure, too small to split or gains
nothing becomes a leaf. A numeric cut ``x < t`` / ``x >= t`` puts ``t`` halfway between two
neighbouring values (an integer input cuts at the upper value, ``x < 90``); a categorical
input is split into two groups of categories by ordering them by their rate of the outcome
(for a yes/no outcome the best of those orderings is the best split of all, Breiman et al.
sec. 9.4). Each leaf is a ``Box`` with the same fields as a PRIM box (restrictions,
coverage, density, mass, counts, quasi-p-values, rows), so ``box_rule`` writes it in words.

Pure numpy + pandas (no scikit-learn); must not import ``sim`` or ``model``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from releasesim.reports.discovery import (
    Box,
    DiscoveryError,
    Inputs,
    Interval,
    Levels,
    Restriction,
    box_rule,
    inside,
    make_box,
    normalize,
    prepare,
)

__all__ = ["TreeResult", "decision_tree", "tree_rules"]


@dataclass(slots=True)
class TreeResult:
    """The tree's leaves as boxes (densest first) and the overall base rate."""

    leaves: list[Box]
    base_rate: float
    n: int
    n_interest: int
    max_depth: int
    min_leaf: int


def _impurity(n_left: np.ndarray, k_left: np.ndarray, n: int, k: int) -> np.ndarray:
    """Rows-weighted Gini impurity (sum of n * 2p(1-p)) of the two sides of each cut."""
    n_right, k_right = n - n_left, k - k_left
    return 2.0 * (k_left - k_left**2 / n_left) + 2.0 * (k_right - k_right**2 / n_right)


def _best_split(inp: Inputs, y: np.ndarray, idx: np.ndarray, min_leaf: int,
                ) -> tuple[float, str, Restriction, Restriction] | None:
    """``(impurity, input, left, right)`` of the best cut of the node with rows ``idx``."""
    n, k = idx.size, int(y[idx].sum())
    best: tuple[float, str, Restriction, Restriction] | None = None
    for j, name in enumerate(inp.names):
        v, yy = inp.values[j][idx], y[idx].astype(float)
        if inp.levels[j] is None:
            order = np.argsort(v, kind="stable")
            vs, cum = v[order], np.cumsum(yy[order])
            n_left = np.arange(1, n)
            ok = (vs[:-1] < vs[1:]) & (n_left >= min_leaf) & (n - n_left >= min_leaf)
        else:
            codes, inverse = np.unique(v, return_inverse=True)
            counts = np.bincount(inverse).astype(float)
            rates = np.bincount(inverse, weights=yy) / counts
            rank = np.argsort(rates, kind="stable")
            n_left = np.cumsum(counts[rank])[:-1]
            cum = np.cumsum((rates * counts)[rank])
            ok = (n_left >= min_leaf) & (n - n_left >= min_leaf)
        if not ok.any():
            continue
        imp = np.where(ok, _impurity(n_left, cum[:-1], n, k), np.inf)
        i = int(np.argmin(imp))
        if best is not None and imp[i] >= best[0]:
            continue
        if inp.levels[j] is None:
            lo, hi = float(vs[i]), float(vs[i + 1])
            t = hi if inp.integer[j] else (lo + hi) / 2
            t = t if lo < t <= hi else hi
            best = (float(imp[i]), name, Interval(high=t), Interval(low=t))
        else:
            levels = inp.levels[j] or ()
            left = {levels[c] for c in codes[rank[: i + 1]]}
            best = (float(imp[i]), name,
                    Levels(tuple(x for x in levels if x in left)),
                    Levels(tuple(x for x in levels if x not in left and x in
                                 {levels[c] for c in codes})))
    return best


def _narrow(old: Restriction | None, new: Restriction) -> Restriction:
    if isinstance(new, Levels):
        kept = old.levels if isinstance(old, Levels) else new.levels
        return Levels(tuple(x for x in kept if x in new.levels))
    old = old if isinstance(old, Interval) else Interval()
    low = new.low if old.low is None or (new.low is not None and new.low > old.low) else old.low
    high = (new.high if old.high is None or (new.high is not None and new.high < old.high)
            else old.high)
    return Interval(low, high)


def decision_tree(table: pd.DataFrame, y: object, inputs: Sequence[str], *,
                  max_depth: int = 3, min_leaf: int = 20) -> TreeResult:
    """Grow a small CART tree for the yes/no outcome ``y`` over ``inputs``; leaves as boxes.

    ``y`` is as for ``discovery.prim`` (bool or 0/1 values, or an outcome column name).
    """
    for what, value, least in (("max_depth", max_depth, 1), ("min_leaf", min_leaf, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise DiscoveryError(f"{what} must be a whole number >= {least}, got {value!r}")
    inp, ys = prepare(table, y, inputs)
    n, k = ys.size, int(ys.sum())
    positions = np.arange(n)
    leaves: list[Box] = []
    stack: list[tuple[np.ndarray, dict[str, Restriction], int]] = [(positions, {}, 0)]
    while stack:
        idx, box, depth = stack.pop()
        split = None
        density = ys[idx].mean()
        if depth < max_depth and idx.size >= 2 * min_leaf and 0.0 < density < 1.0:
            split = _best_split(inp, ys, idx, min_leaf)
        parent = 2.0 * idx.size * density * (1.0 - density)
        if split is None or split[0] >= parent - 1e-9:
            leaves.append(make_box(inp, ys, normalize(inp, box), positions, n, k))
            continue
        _, name, left, right = split
        for side in (right, left):
            child = {**box, name: _narrow(box.get(name), side)}
            stack.append((idx[inside(inp.take(idx), {name: side})], child, depth + 1))
    leaves.sort(key=lambda b: (-b.density, -b.n))
    return TreeResult(leaves, k / n, n, k, max_depth, min_leaf)


def tree_rules(result: TreeResult, outcome_label: str, *, cases: str | None = None,
               ) -> list[str]:
    """Each leaf in words (densest first), as ``discovery.box_rule`` writes a PRIM box."""
    return [box_rule(leaf, result.base_rate, outcome_label, cases=cases)
            for leaf in result.leaves]
