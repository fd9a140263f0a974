"""``releasesim explore``: designs run through the real simulator, indices and boxes checked
against what the model's own rules say.

Validation (issue 13, item 5), by construction of the model:

- Activation time is decided by governance alone (signers, proposal, vote period): the fleet,
  mirror and release knobs act only after activation. With common random numbers a point
  that differs only in those knobs has *exactly* the same activation time, so of ten varied
  knobs exactly two (the vote period and the signers' signing delay) move it: Sobol must rank
  them on top and give the other eight total indices within noise of 0
  (|ST| <= 4 x interval + 0.02).
- With a near-instant, always-online signer set the release is proposed in epoch 0, so it
  activates at ``(vote_period_epochs + 1) * epoch_s`` (docs/explorer.md): "activation at or
  after 1,860 s" is exactly the box ``vote_period_epochs >= 30``. PRIM must find it, density
  >= 0.8, restricting only that knob, its lower limit within one epoch of 30.

Also: resume, executor independence, errors and the report of an exploration directory.
All seeded; each test runs a few hundred replications of a 10-20 node fleet.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from releasesim.cli.main import main
from releasesim.reports.discovery import Interval
from releasesim.reports.exploration import discover, load_exploration, parse_interest

ACTIVATION = ["governance.vote_period_epochs=10..40", "signers.signing_delay.median=30.0..600"]
INERT = [
    "fleet.poll_interval_s=30.0..900", "mirrors.latency.median=0.05..2",
    "mirrors.corruption_prob=0.0..0.05", "mirrors.outage_rate_per_h=0.0..2",
    "release.artifact_size_mb=10.0..500", "release.startup_failure_prob=0.0..0.3",
    "mirrors.capacity=5..100", "mirrors.bandwidth_mbps.value=10.0..1000",
]


def _explore(out: Path, vary: list[str], *extra: str) -> int:
    argv = ["explore", "baseline", "--out", str(out), "--quiet"]
    for item in vary:
        argv += ["--vary", item]
    return main([*argv, *extra])


def test_sobol_ranks_the_two_knobs_that_move_activation_and_zeroes_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "screen"
    code = _explore(out, [*ACTIVATION, *INERT], "--design", "sobol", "--samples", "16",
                    "-n", "1", "-s", "11", "--set", "fleet.nodes=10",
                    "--outcome", "time_to_activation_s", "--interest", "activated==1", "--json")
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    (result,) = doc["sensitivity"]
    ranked = [row["knob"] for row in result["indices"]]
    assert set(ranked[:2]) == {"governance.vote_period_epochs", "signers.signing_delay.median"}
    for row in result["indices"][2:]:
        assert abs(row["ST"]) <= 4 * row["ST_conf"] + 0.02, row
    top = result["indices"][0]
    assert top["ST"] - top["ST_conf"] > 0.2  # its 95% interval: clearly a driver
    tables = load_exploration(out)
    assert len(tables.experiments) == 16 * (10 + 2)  # N (D + 2) points x 1 replication


def test_prim_recovers_the_vote_period_box_the_model_plants(tmp_path: Path) -> None:
    out = tmp_path / "box"
    code = _explore(out, ["governance.vote_period_epochs=10..40", *INERT[:3]],
                    "--design", "lhs", "--samples", "120", "-n", "1", "-s", "5",
                    "--set", "fleet.nodes=10",
                    "--set", 'signers.signing_delay={dist="fixed", value=1.0}',
                    "--set", "signers.availability=1.0",
                    "--outcome", "time_to_activation_s",
                    "--interest", "time_to_activation_s>=1860")
    assert code == 0
    tables = load_exploration(out)
    frame = tables.experiments
    # the rule the box comes from, checked on the table itself
    expected = (frame["governance.vote_period_epochs"] + 1) * 60.0
    assert (frame["time_to_activation_s"] == expected).all()
    found = discover(tables, parse_interest("time_to_activation_s>=1860"))
    assert found.prim is not None and found.prim.boxes
    box = found.prim.boxes[0]
    assert box.density >= 0.8
    assert set(box.restrictions) == {"governance.vote_period_epochs"}
    limit = box.restrictions["governance.vote_period_epochs"]
    assert isinstance(limit, Interval) and limit.low is not None
    assert 29 <= limit.low <= 31 and limit.high is None
    assert "governance.vote_period_epochs" in found.rules[0]


def test_resume_and_the_executor_do_not_change_the_experiments(tmp_path: Path) -> None:
    vary = ["fleet.poll_interval_s=60.0..600", "signers.threshold=2..5",
            "rollout.strategy=all_at_once,waves"]
    common = ("--design", "lhs", "--samples", "6", "-n", "2", "-s", "9",
              "--set", "fleet.nodes=20", "--interest", "lagging_fraction>0")
    first = tmp_path / "serial"
    assert _explore(first, vary, *common, "-e", "serial") == 0
    table = load_exploration(first).experiments
    assert list(table["point"].unique()) == list(range(6))
    assert set(table["rollout.strategy"]) <= {"all_at_once", "waves"}
    assert table.groupby("point")["seed"].nunique().eq(1).all()
    # an interrupted run: some points never finished, no experiments table yet
    broken = tmp_path / "broken"
    shutil.copytree(first, broken)
    for name in ("experiments.parquet", "experiments.csv", "report.html"):
        (broken / name).unlink()
    for point in (1, 4, 5):
        (broken / "points" / f"point-{point:05d}.parquet").unlink()
    assert _explore(broken, vary, *common, "-e", "process", "--resume") == 0
    pd.testing.assert_frame_equal(load_exploration(broken).experiments, table)
    other = tmp_path / "process"
    assert _explore(other, vary, *common, "-e", "process", "-w", "2") == 0
    pd.testing.assert_frame_equal(load_exploration(other).experiments, table)
    # a different plan cannot resume it
    assert _explore(broken, vary, *common[:-2], "--resume", "-s", "10") == 2


@pytest.mark.parametrize(("vary", "extra", "fragment"), [
    (["fleet.nodes=5..1"], (), "--vary fleet.nodes=5..1"),
    (["fleet.no_such_knob=1..5"], (), "unknown key"),
    (["fleet.poll_interval_s=60.0..600"], ("--design", "grid"), "--design"),
    ([], (), "--vary: give at least one knob"),
    (["fleet.poll_interval_s=60.0..600"], ("--interest", "lagging_fraction>>1"), "--interest"),
    (["fleet.poll_interval_s=60.0..600"], ("--resume",), "--resume"),
])
def test_bad_input_is_one_line_exit_2_and_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], vary: list[str],
    extra: tuple[str, ...], fragment: str,
) -> None:
    argv = ["explore", "baseline", "--quiet", *extra]
    for item in vary:
        argv += ["--vary", item]
    if "--resume" not in extra:
        argv += ["--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_an_existing_out_is_refused_and_report_rebuilds_the_exploration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x"
    vary = ["fleet.poll_interval_s=60.0..600", "release.startup_failure_prob=0.0..0.4"]
    args = ("--design", "morris", "--samples", "4", "-n", "2", "-s", "3",
            "--set", "fleet.nodes=15")
    assert _explore(out, vary, *args) == 0
    before = json.loads((out / "manifest.json").read_text())
    assert before["complete"] and before["points"] == 4 * 3 and before["seed"] == 3
    assert _explore(out, vary, *args) == 2
    assert "already exists" in capsys.readouterr().err
    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert "Sensitivity of lagging_fraction" in page and "Morris" in page
    assert "<script" not in page and 'src="http' not in page
    assert 'src="data:image/png;base64,' in page


def test_a_dask_cluster_gives_the_same_experiments(tmp_path: Path) -> None:
    """The same plan on a Dask LocalCluster (2 workers) and in this process: equal tables."""
    pytest.importorskip("distributed")
    from releasesim.sim.explore import plan_exploration, run_exploration

    plan = plan_exploration(
        "baseline", ["fleet.poll_interval_s=60.0..600", "signers.threshold=2..5"],
        design="lhs", samples=5, replications=2, seed=4,
        base_overrides=["fleet.nodes=15"], executor="serial",
    )
    serial = run_exploration(plan, executor="serial").experiments
    dask = run_exploration(plan, executor="dask").experiments
    pd.testing.assert_frame_equal(dask, serial)


def test_discovery_over_a_figure_defined_only_in_some_replications_says_so() -> None:
    """Rows where the outcome is undefined (NaN) are left out, and the note says how many."""
    import numpy as np

    from releasesim.reports.exploration import ExplorationTables

    rng = np.random.default_rng(3)
    knob = rng.uniform(0, 1, 400)
    outcome = np.where(knob > 0.7, 0.2, 0.01)
    outcome[rng.uniform(0, 1, 400) < 0.25] = np.nan  # e.g. never activated
    frame = pd.DataFrame({"point": range(400), "replication": 0, "seed": 1, "x": knob,
                          "lagging_fraction": outcome})
    tables = ExplorationTables(frame, {"knobs": [{"name": "x"}]}, np.zeros((400, 1)),
                               Path("."))
    found = discover(tables, parse_interest("lagging_fraction>0.05"))
    defined = int(np.isfinite(outcome).sum())
    assert found.problem is None and found.note is not None
    assert f"defined in {defined} of 400" in found.note
    assert found.prim is not None and found.prim.n == defined
    box = found.prim.boxes[0]
    assert box.density == 1.0 and abs(box.restrictions["x"].low - 0.7) < 0.05
