"""Experiment designs (``sim.design``) and sensitivity indices (``reports.sensitivity``).

Validation against exact answers, with stated tolerances:

- the Ishigami function ``y = sin x1 + a sin^2 x2 + b x3^4 sin x1`` on ``[-pi, pi]^3``,
  whose Sobol indices have a closed form (derived in ``ishigami_exact``), must come out
  within ``max(4 x bootstrap half-width, 0.03)`` of it from a Sobol design with N=1024;
- the issue's screening check in miniature: of ten knobs only ``x1`` and ``x2`` move
  ``y = 3 x1 + x2^2 + noise`` (noise sd 0.1, R=4 replications): Morris must rank them on
  top and the Sobol total index of each other knob must be 0 within noise
  (``|ST| <= 4 conf + 0.02``; Jansen's ST of an inert knob is about the noise share,
  here ~0.003);
- pure noise: the noise share is about 1 and a warning says the indices are noise.

Every design and bootstrap is seeded, so a pass is reproducible.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from releasesim.reports.sensitivity import SensitivityError, analyze_sensitivity
from releasesim.sim.design import Design, Knob, make_design, parse_knob, parse_knobs
from releasesim.sim.errors import ScenarioError


def _experiments(design: Design, outcome: np.ndarray) -> pd.DataFrame:
    """An experiments table: ``outcome`` has shape (replications, points)."""
    outcome = np.atleast_2d(outcome)
    rows = [
        pd.DataFrame({"point": np.arange(design.size), "replication": rep,
                      **{k: design.points[k].to_numpy() for k in design.points.columns},
                      "y": outcome[rep]})
        for rep in range(outcome.shape[0])
    ]
    return pd.concat(rows, ignore_index=True)


def _analyze(design: Design, table: pd.DataFrame, outcome: str = "y"):
    return analyze_sensitivity(table, outcome, design=design.kind, problem=design.problem,
                               unit=design.unit, seed=11)


# --------------------------------------------------------------------------------------
# Sobol indices against the Ishigami closed form
# --------------------------------------------------------------------------------------


def ishigami_exact(a: float, b: float) -> tuple[list[float], list[float]]:
    """Exact (S1, ST) of ``sin x1 + a sin^2 x2 + b x3^4 sin x1``, ``xi ~ U(-pi, pi)``.

    With E[sin^2] = 1/2, Var(sin^2) = 1/8, E[x^4] = pi^4/5, E[x^8] = pi^8/9:
    V1 = Var(E[y|x1]) = Var((1 + b pi^4/5) sin x1) = (1 + b pi^4/5)^2 / 2;
    V2 = a^2 Var(sin^2 x2) = a^2 / 8; V3 = 0 (E[y|x3] does not depend on x3, as
    E[sin x1] = 0); V13 = b^2 Var(x3^4) E[sin^2 x1] = b^2 pi^8 (1/9 - 1/25) / 2;
    V = V1 + V2 + V13. ST1 = (V1 + V13)/V, ST2 = V2/V, ST3 = V13/V.
    """
    pi4 = math.pi ** 4
    v1 = (1 + b * pi4 / 5) ** 2 / 2
    v2 = a * a / 8
    v13 = b * b * math.pi ** 8 * (1 / 9 - 1 / 25) / 2
    total = v1 + v2 + v13
    return [v1 / total, v2 / total, 0.0], [(v1 + v13) / total, v2 / total, v13 / total]


def test_ishigami_exact_values_match_the_literature() -> None:
    s1, st = ishigami_exact(7.0, 0.1)
    assert s1 == pytest.approx([0.3139, 0.4424, 0.0], abs=1e-4)
    assert st == pytest.approx([0.5576, 0.4424, 0.2437], abs=1e-4)


def test_sobol_recovers_ishigami_indices() -> None:
    pytest.importorskip("SALib")
    a, b = 7.0, 0.1
    knobs = parse_knobs([f"x{i}={-math.pi!r}..{math.pi!r}" for i in (1, 2, 3)])
    design = make_design(knobs, "sobol", 1024, seed=2024)
    x = design.points
    y = np.sin(x.x1) + a * np.sin(x.x2) ** 2 + b * x.x3 ** 4 * np.sin(x.x1)
    result = _analyze(design, _experiments(design, y.to_numpy()))
    s1, st = ishigami_exact(a, b)
    got = result.indices.set_index("knob").loc[["x1", "x2", "x3"]]
    for name, exact in (("S1", s1), ("ST", st)):
        tolerance = np.maximum(4 * got[f"{name}_conf"].to_numpy(), 0.03)
        assert np.all(np.abs(got[name].to_numpy() - exact) <= tolerance), (name, got)
    assert result.indices["knob"].tolist() == ["x1", "x2", "x3"]  # ranked by ST
    assert result.base_samples == 1024 and result.points_used == 1024 * 5


# --------------------------------------------------------------------------------------
# Screening: two of ten knobs matter, with replication noise
# --------------------------------------------------------------------------------------


def _screening(kind: str, samples: int):
    knobs = parse_knobs([f"x{i}=0.0..1.0" for i in range(1, 11)])
    design = make_design(knobs, kind, samples, seed=5)
    rng = np.random.default_rng(99)
    x = design.points
    signal = (3 * x.x1 + x.x2 ** 2).to_numpy()
    y = signal + rng.normal(0.0, 0.1, size=(4, design.size))
    return _analyze(design, _experiments(design, y))


def test_morris_ranks_the_two_active_knobs_on_top() -> None:
    pytest.importorskip("SALib")
    result = _screening("morris", 20)
    assert result.indices["knob"].tolist()[:2] == ["x1", "x2"]
    assert result.replications == 4
    assert result.noise_share is not None and result.noise_share < 0.01
    assert list(result.indices.columns) == ["knob", "mu_star", "mu_star_conf", "sigma",
                                            "mu", "rank"]
    pd.testing.assert_frame_equal(result.indices, _screening("morris", 20).indices)


def test_sobol_total_index_of_inert_knobs_is_noise() -> None:
    pytest.importorskip("SALib")
    result = _screening("sobol", 256)
    indices = result.indices.set_index("knob")
    assert result.indices["knob"].tolist()[:2] == ["x1", "x2"]
    inert = indices.drop(index=["x1", "x2"])
    assert len(inert) == 8
    assert np.all(inert["ST"].abs() <= 4 * inert["ST_conf"] + 0.02), inert
    assert np.all(indices.loc[["x1", "x2"], "ST"] > 0.05)


# --------------------------------------------------------------------------------------
# Replication noise, NaN and constant outcomes, table errors
# --------------------------------------------------------------------------------------


def test_pure_noise_has_noise_share_near_one_and_says_so() -> None:
    pytest.importorskip("SALib")
    knobs = parse_knobs(["a=0.0..1.0", "b=1..5", "c=x,y,z"])
    design = make_design(knobs, "sobol", 64, seed=3)
    y = np.random.default_rng(4).normal(10.0, 1.0, size=(4, design.size))
    result = _analyze(design, _experiments(design, y))
    assert result.noise_share is not None and 0.7 < result.noise_share < 1.3
    assert any("mostly noise" in w for w in result.warnings), result.warnings


def test_nan_outcomes_drop_whole_blocks_and_say_how_many() -> None:
    pytest.importorskip("SALib")
    knobs = parse_knobs(["a=0.0..1.0", "b=0.0..1.0"])
    design = make_design(knobs, "sobol", 64, seed=3)  # blocks of 4 points
    y = np.tile(2 * design.points["a"].to_numpy() + design.points["b"].to_numpy(), (2, 1))
    y += np.random.default_rng(8).normal(0.0, 0.01, size=y.shape)
    y[0, 5] = np.nan  # one replication undefined: point 5 keeps the other
    y[:, 9] = np.nan  # point 9 undefined in both: block 2 (points 8-11) is dropped
    result = _analyze(design, _experiments(design, y))
    assert result.base_samples == 63 and result.points_used == 63 * 4
    assert any("3 of 512 replication values" in w for w in result.warnings)
    assert any("1 design points have no value" in w and "63 of 64" in w
               for w in result.warnings), result.warnings
    assert result.indices["knob"].tolist() == ["a", "b"]


def test_constant_outcome_gives_no_indices_and_says_so() -> None:
    pytest.importorskip("SALib")
    design = make_design(parse_knobs(["a=0.0..1.0", "b=0.0..1.0"]), "morris", 10, seed=1)
    result = _analyze(design, _experiments(design, np.full((3, design.size), 0.25)))
    assert result.indices.empty
    assert any("0.25 at every design point" in w for w in result.warnings)


def test_small_sobol_sample_is_flagged() -> None:
    pytest.importorskip("SALib")
    design = make_design(parse_knobs(["a=0.0..1.0", "b=0.0..1.0"]), "sobol", 16, seed=1)
    y = design.points["a"].to_numpy() + 0.1 * design.points["b"].to_numpy()
    result = _analyze(design, _experiments(design, y))
    assert any("only N=16 Sobol base samples" in w for w in result.warnings)
    assert any("one replication per design point" in w for w in result.warnings)


def test_tables_that_do_not_fit_the_design_are_refused() -> None:
    pytest.importorskip("SALib")
    knobs = parse_knobs(["a=0.0..1.0", "b=0.0..1.0"])
    lhs = make_design(knobs, "lhs", 8, seed=1)
    table = _experiments(lhs, np.arange(8.0))
    with pytest.raises(SensitivityError, match="morris or sobol design"):
        _analyze(lhs, table)
    sobol = make_design(knobs, "sobol", 8, seed=1)
    with pytest.raises(SensitivityError, match="does not fit a sobol design"):
        analyze_sensitivity(table, "y", design="sobol", problem=sobol.problem,
                            unit=sobol.unit[:-1])
    with pytest.raises(SensitivityError, match="does not match the design"):
        analyze_sensitivity(table.assign(point=table["point"] + 100), "y", design="sobol",
                            problem=sobol.problem, unit=sobol.unit)
    with pytest.raises(SensitivityError, match="no column 'missing'"):
        analyze_sensitivity(table, "missing", design="sobol", problem=sobol.problem,
                            unit=sobol.unit)


# --------------------------------------------------------------------------------------
# Designs
# --------------------------------------------------------------------------------------


def test_lhs_hits_every_stratum_once_and_balances_discrete_knobs() -> None:
    knobs = parse_knobs(["lat=0.5..2.5", "nodes=1..5", "mode=rolling,halt,all_at_once"])
    design = make_design(knobs, "lhs", 60, seed=7)
    points = design.points
    assert design.size == 60 and list(points.columns) == ["lat", "nodes", "mode"]
    assert points.index.name == "point"
    strata = np.floor((points["lat"].to_numpy() - 0.5) / 2.0 * 60).astype(int)
    assert sorted(strata) == list(range(60))
    for j in range(3):
        assert sorted(np.floor(design.unit[:, j] * 60).astype(int)) == list(range(60))
    assert points["nodes"].dtype == np.int64
    assert points["nodes"].value_counts().to_dict() == {n: 12 for n in range(1, 6)}
    assert points["mode"].value_counts().to_dict() == {
        "rolling": 20, "halt": 20, "all_at_once": 20}
    assert points["lat"].dtype == np.float64 and points["mode"].dtype == object


def test_designs_are_deterministic_per_seed() -> None:
    knobs = parse_knobs(["a=0.0..1.0", "b=-3..3", "c=p,q"])
    kinds = ["lhs"]
    try:
        import SALib  # noqa: F401
        kinds += ["sobol", "morris"]
    except ImportError:
        pass
    for kind in kinds:
        one = make_design(knobs, kind, 16, seed=1)
        again = make_design(knobs, kind, 16, seed=1)
        other = make_design(knobs, kind, 16, seed=2)
        pd.testing.assert_frame_equal(one.points, again.points)
        assert np.array_equal(one.unit, again.unit)
        assert not np.array_equal(one.unit, other.unit), kind


def test_salib_design_sizes_and_mapping() -> None:
    pytest.importorskip("SALib")
    knobs = parse_knobs(["a=0.0..1.0", "n=0..2", "mode=p,q,r"])
    sobol = make_design(knobs, "sobol", 32, seed=1)
    assert sobol.size == 32 * 5 and sobol.notes == ()
    assert set(sobol.points["n"]) == {0, 1, 2} and set(sobol.points["mode"]) == {"p", "q", "r"}
    assert "power of 2" in make_design(knobs, "sobol", 24, seed=1).notes[0]
    morris = make_design(knobs, "morris", 6, seed=1)
    assert morris.size == 6 * 4
    assert set(np.round(morris.unit.ravel(), 6)) <= {0.0, 0.333333, 0.666667, 1.0}
    assert morris.problem == {"num_vars": 3, "names": ["a", "n", "mode"],
                              "bounds": [[0.0, 1.0]] * 3}


def test_knob_mapping_and_overrides() -> None:
    knob = parse_knob("fleet.nodes=10..12")
    assert knob == Knob("fleet.nodes", "int", 10, 12)
    assert knob.from_unit(np.array([0.0, 0.34, 0.67, 0.999, 1.0])).tolist() == [
        10, 11, 12, 12, 12]
    assert parse_knob("x=1.0..5").kind == "float"
    assert parse_knob("x=1e0..5").kind == "float"
    assert parse_knob("x=-5..-1") == Knob("x", "int", -5, -1)
    assert parse_knob(" rollout.strategy = canary, all_at_once ").values == (
        "canary", "all_at_once")
    design = make_design(parse_knobs(["a=0.5..1.5", "n=1..3", "s=p,q"]), "lhs", 4, seed=0)
    items = design.overrides(0)
    row = design.points.iloc[0]
    assert items == [f"a={float(row['a'])!r}", f"n={int(row['n'])}", f"s={row['s']}"]


@pytest.mark.parametrize(("item", "message"), [
    ("fleet.nodes", "expected KNOB=LOW..HIGH or KNOB=a,b,c"),
    ("=1..5", "the knob name is empty"),
    ("a b=1..5", "the knob name is empty or has spaces"),
    ("x=5..1", "LOW 5 is above HIGH 1"),
    ("x=2.5..2.5", "LOW equals HIGH"),
    ("x=0..inf", "HIGH 'inf' must be a finite number"),
    ("x=nan..1", "LOW 'nan' must be a finite number"),
    ("x=1e999..2e999", "LOW '1e999' must be a finite number"),
    ("x=abc..1", "LOW 'abc' is not a number"),
    ("x=..1", "LOW '' is not a number"),
    ("x=1..2..3", "HIGH '2..3' is not a number"),
    ("x=", "no values"),
    ("x=solo", "one value 'solo'"),
    ("x=a,,b", "an empty value"),
    ("x=a,b,a", "value 'a' is listed twice"),
    ("x=" + ",".join(f"v{i}" for i in range(51)), "51 values; at most 50"),
])
def test_bad_knob_specs_are_one_line_errors(item: str, message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_knob(item)
    text = str(caught.value)
    assert message in text and "\n" not in text
    assert text.startswith(f"--vary {item}: ")


def test_duplicate_knobs_missing_knobs_and_bad_design_arguments() -> None:
    with pytest.raises(ScenarioError, match="knob x is varied twice"):
        parse_knobs(["x=1..2", "y=a,b", "x=0.0..1.0"])
    with pytest.raises(ScenarioError, match="at least one knob"):
        parse_knobs([])
    knobs = parse_knobs(["x=1..2"])
    with pytest.raises(ScenarioError, match="--design: unknown design 'grid'"):
        make_design(knobs, "grid", 8, seed=0)
    with pytest.raises(ScenarioError, match="--samples: must be an integer of at least 2"):
        make_design(knobs, "lhs", 1, seed=0)


def test_without_salib_sobol_and_morris_say_how_to_install() -> None:
    """A real interpreter where ``import SALib`` fails (the extra is not installed)."""
    code = (
        "import sys; sys.modules['SALib'] = None\n"
        "from releasesim.sim.design import make_design, parse_knobs\n"
        "from releasesim.reports import sensitivity\n"
        "knobs = parse_knobs(['x=0.0..1.0'])\n"
        "print(make_design(knobs, 'lhs', 4, seed=0).size)\n"
        "for kind in ('sobol', 'morris'):\n"
        "    try:\n"
        "        make_design(knobs, kind, 4, seed=0)\n"
        "    except Exception as exc:\n"
        "        print(type(exc).__name__, exc)\n"
        "try:\n"
        "    sensitivity.analyze_sensitivity(None, 'y', design='sobol', problem={}, unit=[])\n"
        "except sensitivity.SensitivityError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout.splitlines()
    hint = "pip install 'releasesim[analysis]'"
    assert out[0] == "4"
    assert out[1] == f"RunError --design sobol needs SALib: {hint}"
    assert out[2] == f"RunError --design morris needs SALib: {hint}"
    assert out[3] == f"SensitivityError sensitivity indices need SALib: {hint}"
