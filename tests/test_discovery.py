"""Scenario discovery (issue 13, sections 3 and 5): PRIM and the decision tree recover a
planted box; box arithmetic against counts written here; trajectory, pasting and covering
properties; rules in words; the exact binomial tail against scipy; clean errors."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from releasesim.reports.decision_tree import decision_tree, tree_rules
from releasesim.reports.discovery import (
    Box,
    DiscoveryError,
    Interval,
    Levels,
    binom_sf,
    box_mask,
    box_rule,
    boxes_table,
    outcome_of_interest,
    prim,
)

INPUTS = [*(f"x{i}" for i in range(1, 11)), "cat"]
# Limits of a recovered box may differ from the planted ones by at most this much: the
# peels and cuts land on data values, 2,000 rows put about 80 in the planted box.
TOLERANCE = 0.05


def planted(seed: int = 0, n: int = 2000) -> tuple[pd.DataFrame, np.ndarray]:
    """Ten uniform inputs and a 3-level category; y ~ 0.9 in the planted box, 0.05 outside."""
    rng = np.random.default_rng(seed)
    table = pd.DataFrame({f"x{i}": rng.uniform(size=n) for i in range(1, 11)})
    table["cat"] = rng.choice(["a", "b", "c"], size=n)
    inside = (table.x1 < 0.3) & (table.x4 > 0.6) & (table.cat == "b")
    return table, rng.uniform(size=n) < np.where(inside, 0.9, 0.05)


def assert_planted_region(box: Box) -> None:
    assert set(box.restrictions) == {"x1", "x4", "cat"}
    x1, x4, cat = (box.restrictions[k] for k in ("x1", "x4", "cat"))
    assert x1 == Interval(None, x1.high) and abs(x1.high - 0.3) <= TOLERANCE
    assert x4 == Interval(x4.low, None) and abs(x4.low - 0.6) <= TOLERANCE
    assert cat == Levels(("b",))
    assert box.density >= 0.8


def test_prim_recovers_the_planted_box() -> None:
    table, y = planted()
    # The planted box holds ~45% of the cases of interest (the 5% outside it spread over
    # 96% of the space), so the choice rule must accept a coverage below the default 0.5;
    # the box is 4% of the rows, below the default mass_min of 5%.
    result = prim(table, y, INPUTS, min_coverage=0.3, mass_min=0.02)
    assert len(result.boxes) == 1
    assert_planted_region(result.boxes[0])
    assert all(qp < 1e-6 for qp in result.boxes[0].qp.values())
    assert result.base_rate == pytest.approx(y.mean())


def test_tree_finds_the_same_region() -> None:
    table, y = planted()
    tree = decision_tree(table, y, INPUTS)
    densest = tree.leaves[0]
    assert_planted_region(densest)
    found = prim(table, y, INPUTS, min_coverage=0.3, mass_min=0.02).boxes[0]
    shared = np.intersect1d(densest.rows, found.rows).size
    assert shared / np.union1d(densest.rows, found.rows).size >= 0.9
    assert sum(leaf.n for leaf in tree.leaves) == len(table)
    assert np.unique(np.concatenate([leaf.rows for leaf in tree.leaves])).size == len(table)
    assert tree_rules(tree, "y")[0] == box_rule(densest, tree.base_rate, "y")


def test_tree_on_a_hand_built_table() -> None:
    tree = decision_tree(small_table(), "stall", ["poll", "mode", "x"], max_depth=2, min_leaf=5)
    # an integer knob is cut at a value it takes (poll < 120, not < 105)
    assert [leaf.restrictions for leaf in tree.leaves] == [
        {"poll": Interval(None, 120.0), "mode": Levels(("all_at_once",))},
        {"poll": Interval(90.0, None), "mode": Levels(("canary",))},
        {"poll": Interval(120.0, None), "mode": Levels(("all_at_once",))},
        {"poll": Interval(None, 90.0), "mode": Levels(("canary",))}]
    assert [leaf.rows.tolist() for leaf in tree.leaves] == [
        [1, 5, 9, 13, 17], [2, 6, 10, 14, 18], [3, 7, 11, 15, 19], [0, 4, 8, 12, 16]]
    assert tree_rules(tree, "stall", cases="stalls")[3] == (
        "P(stall) = 0% (vs 30% overall) when `poll` < 90 and `mode` = canary; covers none of "
        "the stalls (5 replications in the box)")


def small_table() -> pd.DataFrame:
    """20 rows: an integer knob, a categorical knob, an irrelevant float; 6 stalls."""
    stalls = {1, 3, 5, 13, 14, 17}
    return pd.DataFrame({
        "poll": [30, 60, 90, 120] * 5,
        "mode": ["canary", "all_at_once"] * 10,
        "x": np.arange(20) / 20,
        "stall": [i in stalls for i in range(20)],
    })


def count(table: pd.DataFrame, restrictions: dict) -> tuple[int, int]:
    """Rows in the box and stalls among them, counted row by row."""
    n = k = 0
    for _, row in table.iterrows():
        ok = True
        for name, r in restrictions.items():
            if isinstance(r, Levels):
                ok = ok and row[name] in r.levels
            else:
                ok = ok and (r.low is None or row[name] >= r.low)
                ok = ok and (r.high is None or row[name] < r.high)
        if ok:
            n, k = n + 1, k + int(row["stall"])
    return n, k


def test_box_arithmetic_against_a_hand_count() -> None:
    table = small_table()
    result = prim(table, "stall", ["poll", "mode", "x"], alpha=0.1, min_coverage=0.6,
                  mass_min=0.1, max_qp=None, peel_criterion="density")
    (box,) = result.boxes
    # all_at_once rows are the odd ones (poll 60 or 120); poll < 120 leaves 1, 5, 9, 13, 17
    assert box.restrictions == {"poll": Interval(None, 120.0), "mode": Levels(("all_at_once",))}
    assert (box.n, box.n_interest) == count(table, box.restrictions) == (5, 4)
    assert (box.coverage, box.density, box.mass) == (4 / 6, 4 / 5, 5 / 20)
    assert box.rows.tolist() == [1, 5, 9, 13, 17]
    assert box_mask(table, box.restrictions).nonzero()[0].tolist() == [1, 5, 9, 13, 17]
    assert (result.n, result.n_interest, result.base_rate) == (20, 6, 0.3)
    for _, step in result.trajectories[0].iterrows():
        n, k = count(table, step["box"])
        assert (step["n"], step["n_interest"], step["n_restricted"]) == (n, k, len(step["box"]))
        assert (step["coverage"], step["density"], step["mass"]) == (k / 6, k / n, n / 20)
    # poll limit lifted: 5 stalls in the 10 all_at_once rows, P(X >= 4), X ~ Bin(5, 5/10);
    # mode lifted: 5 stalls in the 15 rows with poll < 120, X ~ Bin(5, 5/15)
    assert box.qp[("poll", "high")] == pytest.approx(6 / 32)
    assert box.qp[("mode", "levels")] == pytest.approx(5 * (1 / 3) ** 4 * (2 / 3) + (1 / 3) ** 5)
    table_out = boxes_table(result.boxes, result.base_rate, "stall", cases="stalls")
    assert table_out.loc[0, "rule"] == (
        "P(stall) = 80% (vs 30% overall) when `poll` < 120 and `mode` = all_at_once; "
        "covers 67% of stalls (4 of 6; 5 replications in the box)")


def test_trajectory_shrinks_and_pasting_never_lowers_density() -> None:
    for seed in range(3):
        table, y = planted(seed)
        settings = {"min_coverage": 0.3, "mass_min": 0.02, "max_qp": None}
        result = prim(table, y, INPUTS, **settings)
        traj = result.trajectories[0]
        assert traj["mass"].iloc[0] == 1.0 and (np.diff(traj["mass"]) < 0).all()
        chosen = traj[traj["chosen"]].iloc[0]
        assert chosen["coverage"] >= 0.3
        assert chosen["density"] == traj[traj["coverage"] >= 0.3]["density"].max()
        unpasted = prim(table, y, INPUTS, paste=False, **settings).boxes[0]
        assert unpasted.density == chosen["density"] and unpasted.n == chosen["n"]
        assert result.boxes[0].density >= unpasted.density


def test_covering_finds_a_second_box_without_the_first_ones_rows() -> None:
    rng = np.random.default_rng(7)
    table = pd.DataFrame({f"x{i}": rng.uniform(size=2000) for i in range(1, 6)})
    first = (table.x1 < 0.3) & (table.x4 > 0.6)
    second = (table.x2 > 0.7) & (table.x3 < 0.3)
    y = rng.uniform(size=2000) < np.where(first | second, 0.9, 0.03)
    result = prim(table, y, list(table.columns), n_boxes=2)
    a, b = result.boxes
    assert set(a.restrictions) == {"x1", "x4"} and set(b.restrictions) == {"x2", "x3"}
    assert np.intersect1d(a.rows, b.rows).size == 0
    in_b = box_mask(table, b.restrictions)
    assert set(b.rows) == set(np.flatnonzero(in_b)) - set(a.rows)
    assert b.n_interest == int(y[b.rows].sum()) and b.coverage == b.n_interest / y.sum()
    assert len(result.trajectories) == 2
    # the remaining rows hold no box worth keeping: covering stops at two
    assert len(prim(table, y, list(table.columns), n_boxes=5).boxes) == 2


def test_rule_text_of_a_hand_built_box() -> None:
    box = Box(
        restrictions={"fleet.poll_interval_s": Interval(None, 90.0),
                      "mirrors.latency.median": Interval(None, None),
                      "rollout.strategy": Levels(("all_at_once",))},
        coverage=312 / 400, density=312 / 761, mass=761 / 2000, n=761, n_interest=312)
    assert box_rule(box, 0.03, "stall", cases="stalls") == (
        "P(stall) = 41% (vs 3% overall) when `fleet.poll_interval_s` < 90 and "
        "`rollout.strategy` = all_at_once; covers 78% of stalls (312 of 400; 761 "
        "replications in the box)")
    two = Box({"share": Interval(0.125, 2.5), "mode": Levels(("a", "c"))},
              coverage=0.0, density=0.0004, mass=0.5, n=5000, n_interest=0)
    assert box_rule(two, 0.0004, "lagging > 0.05") == (
        "P(lagging > 0.05) = <0.1% (vs <0.1% overall) when 0.125 <= `share` < 2.5 and `mode` "
        "in {a, c}; covers none of the lagging > 0.05 cases (5000 replications in the box)")


def test_outcome_of_interest() -> None:
    table = small_table().assign(peak_down_stake=np.arange(20) / 30)
    y = outcome_of_interest(table, "peak_down_stake", ">=", 1 / 3)
    assert y.name == "peak_down_stake >= 0.3333" and y.dtype == bool
    assert y.tolist() == [i >= 10 for i in range(20)]
    assert outcome_of_interest(table, "mode", "==", "canary").sum() == 10
    as_category = table.assign(mode=table["mode"].astype("category"))
    assert outcome_of_interest(as_category, "mode", "!=", "canary").tolist() == [
        i % 2 == 1 for i in range(20)]


@pytest.mark.parametrize(
    ("column", "op", "threshold", "message"),
    [("nope", ">=", 1, "unknown outcome column `nope`"),
     ("x", ">=", 5, "outcome `x >= 5` is constant: true in none of the 20 rows"),
     ("x", ">=", 0, "outcome `x >= 0` is constant: true in all of the 20 rows"),
     ("x", "=>", 0.5, "unknown comparison `=>`"),
     ("mode", ">", "a", "outcome column `mode` is not numeric; use == or !="),
     ("x", ">", "0.5", "threshold '0.5' for numeric column `x` is text"),
     ("gap", ">", 0.5, "outcome column `gap` has 1 missing values")],
)
def test_outcome_errors(column: str, op: str, threshold: object, message: str) -> None:
    with pytest.raises(DiscoveryError, match=message.replace("{", r"\{")) as err:
        outcome_of_interest(small_table().assign(gap=[np.nan] + [1.0] * 19), column, op,
                            threshold)
    assert "\n" not in str(err.value) and err.value.exit_code == 2


def test_discovery_errors() -> None:
    table = small_table()
    cases = [
        (lambda: prim(table, [False] * 20, ["poll"]), "constant: true in none of the 20 rows"),
        (lambda: prim(table, "stall", ["poll", "missing"]), "unknown input column `missing`"),
        (lambda: prim(table, "stall", ["poll", "poll"]), "repeated input column `poll`"),
        (lambda: prim(table, "nope", ["poll"]), "unknown outcome column `nope`"),
        (lambda: prim(table.head(5), "stall", ["poll"]), "too few rows: 5"),
        (lambda: prim(table, "x", ["poll"]), r"yes/no \(bool or 0/1\)"),
        (lambda: prim(table.assign(poll=np.nan), "stall", ["poll"]), "has 20 missing values"),
        (lambda: prim(table, "stall", ["poll"], alpha=0.6), "alpha must be in"),
        (lambda: prim(table, "stall", ["poll"], n_boxes=0), "n_boxes must be"),
        (lambda: decision_tree(table, [True] * 20, ["poll"]), "outcome is constant"),
        (lambda: decision_tree(table, "stall", ["poll"], max_depth=0), "max_depth must be"),
        (lambda: outcome_of_interest(table.head(3), "x", ">", 0.05), "too few rows: 3"),
    ]
    for call, message in cases:
        with pytest.raises(DiscoveryError, match=message):
            call()


def test_binomial_tail() -> None:
    assert binom_sf(2, 3, 0.5) == pytest.approx(0.5)
    assert (binom_sf(0, 10, 0.3), binom_sf(11, 10, 0.3), binom_sf(1, 10, 0.0)) == (1.0, 0.0, 0.0)
    assert binom_sf(70, 80, 0.3) == pytest.approx(
        sum(math.comb(80, i) * 0.3**i * 0.7 ** (80 - i) for i in range(70, 81)), rel=1e-9)
    stats = pytest.importorskip("scipy.stats")
    for k, n, p in [(5, 20, 0.1), (300, 1000, 0.25), (950, 1000, 0.9), (40, 100000, 0.0002)]:
        want = stats.binomtest(k, n, p, alternative="greater").pvalue
        assert binom_sf(k, n, p) == pytest.approx(want, rel=1e-8)


def test_modules_need_only_numpy_and_pandas() -> None:
    """Scenario discovery works without the dev extras (no scipy, no scikit-learn)."""
    root = Path(__file__).resolve().parents[1] / "reports"
    for name in ("discovery.py", "decision_tree.py"):
        tree = ast.parse((root / name).read_text(encoding="utf-8"))
        imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                    if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module}
        assert imported <= {"__future__", "math", "operator", "collections", "dataclasses",
                            "numpy", "pandas", "releasesim"}, name
