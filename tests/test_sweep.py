"""``releasesim sweep``: grid parsing, common random numbers, the SLO rule, the frontier and
a recommendation for the shipped ``compromised_signers`` scenario."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from releasesim.cli.main import main
from releasesim.reports.sweep import frontier_figure, recommend
from releasesim.sim.errors import ScenarioError
from releasesim.sim.sweep_runner import grid_points, parse_grid, run_sweep, split_values


@pytest.mark.parametrize(
    ("text", "values"),
    [("3,4,5", ["3", "4", "5"]), ("2..4", ["2", "3", "4"]), ("5..3", ["5", "4", "3"]),
     ('{dist = "fixed", value = 1.0}, 2.5', ['{dist = "fixed", value = 1.0}', "2.5"]),
     ('"waves","all_at_once"', ['"waves"', '"all_at_once"']), ("[0.5, 1.0]", ["[0.5, 1.0]"])],
)
def test_split_values(text: str, values: list[str]) -> None:
    assert split_values(text) == values


def test_grid_is_a_cartesian_product() -> None:
    grid = parse_grid(["signers.threshold=3,4", "fleet.nodes=10,20,30"])
    points = grid_points(grid)
    assert len(points) == 6
    assert points[0].overrides == ["signers.threshold=3", "fleet.nodes=10"]
    assert points[-1].label == "signers.threshold=4, fleet.nodes=30"


@pytest.mark.parametrize("bad", [[], ["signers.threshold"], ["=3"], ["a=1,,2"],
                                 ["a=1", "a=2"]])
def test_bad_grids_are_refused(bad: list[str]) -> None:
    with pytest.raises(ScenarioError):
        parse_grid(bad)


def test_points_use_common_random_numbers() -> None:
    runs = run_sweep("baseline", parse_grid(["signers.threshold=4,5"]),
                     base_overrides=["fleet.nodes=20"], replications=3, seed=9,
                     executor="serial", log=lambda _: None)
    seeds = [r.result.summary[["replication", "seed"]] for r in runs]
    pd.testing.assert_frame_equal(seeds[0], seeds[1])
    # the same dice: the fleet's draws do not depend on the threshold
    hash_speed = [r.result.nodes["hash_speed_mbps"].to_numpy() for r in runs]
    assert (hash_speed[0] == hash_speed[1]).all()


def test_an_invalid_point_is_refused_before_anything_runs() -> None:
    with pytest.raises(ScenarioError, match="signers.threshold=9"):
        run_sweep("baseline", parse_grid(["signers.threshold=5,9"]), replications=1,
                  executor="serial", log=lambda _: None)


def _table(rows: list[tuple[str, float, float, float]]) -> pd.DataFrame:
    return pd.DataFrame([
        {"point": p, "replications": 50, "deadline_s": 3600.0,
         "malicious_approved": f, "malicious_approved_ci_low": 0.0,
         "malicious_approved_ci_high": hi, "time_to_activation_s": t,
         "time_to_activation_s_ci_low": t * 0.9, "time_to_activation_s_ci_high": t * 1.1,
         "activated_on_time": 0.9, "activated_on_time_ci_low": 0.8,
         "activated_on_time_ci_high": 0.95}
        for p, f, hi, t in rows])


def test_slo_rule_prefers_the_fastest_feasible_setting() -> None:
    table = _table([("t=2", 0.9, 0.95, 1000.0), ("t=3", 0.0, 0.04, 1200.0),
                    ("t=4", 0.0, 0.04, 1500.0), ("t=5", 0.0, 0.04, math.inf)])
    rec = recommend(table, 0.05, 3600.0)
    assert rec.label == "t=3" and rec.feasible == (False, True, True, False)
    assert rec.sentence.startswith("Recommended: t=3") and "fastest" in rec.sentence
    none = recommend(table, 0.01, 3600.0)
    assert none.label is None and none.sentence.startswith("No setting meets")
    slow = recommend(table, 0.05, 1100.0)
    assert slow.label is None and "too slowly" in slow.sentence
    fastest = recommend(table, 0.05, 600.0)
    assert "no setting activates fast enough" in fastest.sentence
    fig, axes = frontier_figure(table, max_forgery_prob=0.05, max_activation_s=3600.0,
                                recommended=rec.label)
    assert len(axes) == 2 and all("[" in ax.get_xlabel() for ax in axes)


def test_sweep_recommends_a_threshold_for_compromised_signers(tmp_path: Path, capsys) -> None:
    out = tmp_path / "sweep"
    code = main(["sweep", "compromised_signers", "--grid", "signers.threshold=2..5",
                 "--set", "fleet.nodes=20", "--replications", "4", "--executor", "serial",
                 "--max-forgery-prob", "0.6", "--max-activation-s", "7200",
                 "--target-ci-width", "0.2", "--max-replications", "16", "--out", str(out)])
    assert code == 0
    stdout = capsys.readouterr().out
    table = pd.read_parquet(out / "sweep.parquet")
    assert list(table["signers.threshold"]) == [2, 3, 4, 5]
    assert (table["replications"] > 4).all() and (table["replications"] <= 16).all()
    manifest = json.loads((out / "sweep.json").read_text())
    rec = manifest["recommended"]
    assert rec is not None and rec.startswith("signers.threshold=")
    assert rec != "signers.threshold=2"  # two compromised keys forge at threshold 2
    assert table.loc[table["point"] == "signers.threshold=2", "malicious_approved"].item() > 0.5
    assert "Recommended: " + rec in stdout
    assert (out / "frontier.png").read_bytes()[:4] == b"\x89PNG"
    assert pd.read_csv(out / "sweep.csv").shape[0] == 4
