"""Scenario input never ends in a traceback (issue 12, item 4).

Each row goes through the real CLI (``cli.main.main``, in-process; one through the console
script) and must give exit 2 and exactly one stderr line naming the file or scenario and
the knob, with no traceback and no run directory written:

- a distribution knob given as an array or an arbitrary table, in a TOML file or ``--set``;
- arrays or inline tables nested 10,000 deep (``tomllib`` would raise ``RecursionError``),
  refused by the documented nesting limit (``sim.scenario_limits.MAX_NESTING``);
- scenarios that used to validate but could not run: ``fleet.nodes = 10**12``,
  ``epoch_s = 1e-300``, signer spells or key rotations of a microsecond (endless runs),
  outage rates or durations numpy cannot draw, huge seeds and vote periods (overflow in
  SQLite or pandas), extreme distribution parameters (division by zero, ``math.exp``
  overflow), a liveness threshold that rounds to 0.

Also: every shipped scenario still validates, and values at the new bounds still run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from releasesim.cli import main as cli
from releasesim.sim import mirrors
from releasesim.sim.api import resolve_scenario
from releasesim.sim.errors import ScenarioError
from releasesim.sim.scenario import SCENARIO_DIR, load_scenario, scenario_from_dict
from releasesim.sim.scenario_limits import MAX_NESTING, OUTAGE_WARM_UP_S, check_toml_nesting
from releasesim.sim.world import simulate_replication

DEEP_ARRAY = "[" * 10_000 + "]" * 10_000
DEEP_TABLE = "{a = " * 10_000 + "1" + "}" * 10_000


def _invoke(argv: list[str]) -> int:
    try:
        return cli.main(argv)
    except SystemExit as exc:  # argparse errors
        return int(exc.code or 0)


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    """Run the CLI; assert exit 2, one stderr line holding every needle, no traceback."""
    code = _invoke(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# (id, --set value, what the message must name)
BAD_SETS = [
    ("dist-array", "mirrors.latency=[1,2]", "mirrors.latency"),
    ("dist-table-no-dist", "mirrors.latency={foo=1}", "mirrors.latency.dist"),
    ("dist-name-array", "mirrors.latency={dist=[1]}", "mirrors.latency.dist"),
    ("dist-name-table", "mirrors.latency={dist={a=1}}", "mirrors.latency.dist"),
    ("dist-param-dist-array", "mirrors.latency.dist=[1]", "mirrors.latency.dist"),
    ("dist-unknown-param", 'mirrors.latency={dist="fixed",value=1,x=2}', "mirrors.latency.x"),
    ("dist-param-array", 'mirrors.latency={dist="fixed",value=[1]}', "mirrors.latency.value"),
    ("dist-param-table", 'fleet.restart_delay={dist="exponential",mean={a=1}}',
     "fleet.restart_delay.mean"),
    ("deep-array", f"mirrors.latency={DEEP_ARRAY}", "nested more than 32 deep"),
    ("deep-table", f"mirrors.latency={DEEP_TABLE}", "nested more than 32 deep"),
    ("nodes-float", "fleet.nodes=1e12", "fleet.nodes"),
    ("nodes-int", "fleet.nodes=1000000000000", "fleet.nodes"),
    ("epoch-tiny", "epoch_s=1e-300", "epoch_s: must be a number in [0.001, 1e+09]"),
    ("horizon-huge", "horizon_s=1e300", "horizon_s"),
    ("seed-huge", "seed=1000000000000000000000000000000", "seed"),
    ("offline-tiny", "signers.mean_offline_s=1e-6", "signers.mean_offline_s"),
    ("offline-events", "signers.mean_offline_s=0.001", "10,000,000 events"),
    ("rotation-tiny", "signers.rotation_interval_s=1e-6", "signers.rotation_interval_s"),
    ("vote-period-huge", "governance.vote_period_epochs=1000000000000000000000000000000",
     "governance.vote_period_epochs"),
    ("outage-rate-huge", "mirrors.outage_rate_per_h=1e18", "mirrors.outage_rate_per_h"),
    ("outage-duration-huge", "mirrors.outage_duration=1e300", "mirrors.outage_duration"),
    ("outage-duration-mean", "mirrors.outage_duration={dist=\"exponential\",mean=1e12}",
     "mirrors.outage_duration: mirror outages"),
    ("outage-sigma", 'mirrors.outage_duration={dist="lognormal",median=1,sigma=40}',
     "mirrors.outage_duration.sigma: must be <= 10"),
    ("stake-tiny", 'governance.stake={dist="exponential",mean=1e-300}',
     "governance.stake.mean"),
    ("bandwidth-sigma", 'mirrors.bandwidth_mbps={dist="lognormal",median=1,sigma=1e300}',
     "mirrors.bandwidth_mbps.sigma"),
    ("pareto-shape", 'mirrors.latency={dist="pareto",scale=1,shape=1e-300}',
     "mirrors.latency.shape: must be >= 0.1"),
    ("backoff-factor", "fleet.backoff_factor=1e300", "fleet.backoff_factor"),
    ("liveness-tiny", "consensus.liveness_threshold=1e-300", "consensus.liveness_threshold"),
    ("schedule-at", "signers.threshold_schedule=[{at_s=1e300,threshold=3}]",
     "signers.threshold_schedule[0].at_s"),
]


@pytest.mark.parametrize(("setting", "needle"), [row[1:] for row in BAD_SETS],
                         ids=[row[0] for row in BAD_SETS])
def test_bad_set_is_one_line_exit_2(setting: str, needle: str, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    _refused(["run", "baseline", "-n", "1", "-e", "serial", "-q", "--out", str(out),
              "--set", setting], capsys, "baseline: ", needle)
    assert not out.exists()


# (id, TOML body, what the message must name)
BAD_FILES = [
    ("dist-array", "[mirrors]\nlatency = [1, 2]\n", "mirrors.latency"),
    ("dist-table", "[mirrors]\nlatency = {foo = 1}\n", "mirrors.latency.dist"),
    ("dist-name-array", "[mirrors]\nlatency = {dist = [1]}\n", "mirrors.latency.dist"),
    ("deep-array", f"# [[[[ in a comment\nname = \"[{{\"\n[mirrors]\nlatency = {DEEP_ARRAY}\n",
     "line 4: arrays and tables nested more than 32 deep"),
    ("deep-table", f"[mirrors]\nlatency = {DEEP_TABLE}\n", "line 2: arrays and tables"),
    ("deep-unknown-key", f"a = {DEEP_ARRAY}\n", "line 1"),
    ("nodes", "[fleet]\nnodes = 1000000000000\n", "fleet.nodes"),
    ("epoch", "epoch_s = 1e-300\n", "epoch_s"),
    ("outage-events", "horizon_s = 1e7\n[mirrors]\noutage_rate_per_h = 3600\n",
     "mirrors.outage_rate_per_h: mirror outages"),
]


@pytest.mark.parametrize(("body", "needle"), [row[1:] for row in BAD_FILES],
                         ids=[row[0] for row in BAD_FILES])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_bad_file_is_one_line_exit_2(body: str, needle: str, command: str, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(body, encoding="utf-8")
    out = tmp_path / "run"
    argv = (["scenarios", "validate", str(path)] if command == "validate"
            else ["run", str(path), "-n", "1", "-e", "serial", "-q", "--out", str(out)])
    _refused(argv, capsys, f"{path}: ", needle)
    assert not out.exists()


def test_sweep_and_check_refuse_the_same(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sweep"
    sweep = ["sweep", "baseline", "-n", "1", "-e", "serial", "-q", "--out", str(out)]
    code = _invoke([*sweep, "--set", "mirrors.latency={dist=[1]}", "--grid", "fleet.nodes=5,6"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.splitlines()[-1].startswith("error: baseline: mirrors.latency.dist:")
    code = _invoke([*sweep, "--grid", "epoch_s=1e-300,60"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "epoch_s: must be a number in [0.001, 1e+09]" in err.splitlines()[-1]
    assert not out.exists()
    suite = tmp_path / "ci"
    suite.mkdir()
    (suite / "deep.toml").write_text(f"[mirrors]\nlatency = {DEEP_ARRAY}\n", encoding="utf-8")
    _refused(["check", str(suite), "-q", "--update-baseline"], capsys, "deep.toml: line 2")
    assert sorted(p.name for p in suite.iterdir()) == ["deep.toml"]


def test_console_script_prints_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "deep.toml"
    path.write_text(f"[mirrors]\nlatency = {DEEP_TABLE}\n", encoding="utf-8")
    script = Path(sys.executable).parent / "releasesim"
    for argv in (["scenarios", "validate", str(path)],
                 ["scenarios", "show", "baseline", "--set", "mirrors.latency={dist=[1]}"]):
        proc = subprocess.run([str(script), *argv], capture_output=True, text=True,
                              timeout=60, check=False)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        assert len(proc.stderr.splitlines()) == 1, proc.stderr


def test_nesting_limit_counts_only_real_brackets() -> None:
    """Brackets in strings and comments do not count; the limit itself is accepted."""
    noise = "[{" * 40
    text = (f'name = "{noise}"\ndescription = \'{noise}\'\n# {noise}\n'
            f'[signers]\ncompromise_groups = [{{keys = [0, 1], prob = 0.001}}]\n')
    text += f'[mirrors]\n# """ {noise}\n'
    check_toml_nesting(text)
    check_toml_nesting('a = """x\\""" [[[ """\nb = 1\n' + "c = " + "[" * MAX_NESTING)
    with pytest.raises(ScenarioError, match="nested more than 32 deep"):
        check_toml_nesting("c = " + "[" * (MAX_NESTING + 1))
    deep: list[object] = [1]
    for _ in range(MAX_NESTING):
        deep = [deep]
    with pytest.raises(ScenarioError, match="fleet: arrays and tables nested more than 32 deep"):
        scenario_from_dict({"fleet": {"nodes": deep}})


def test_outage_warm_up_window_matches_the_simulator() -> None:
    assert OUTAGE_WARM_UP_S == mirrors.WARM_UP_WINDOW_S


def test_every_shipped_scenario_still_validates() -> None:
    paths = sorted(SCENARIO_DIR.glob("*.toml")) + sorted(SCENARIO_DIR.glob("ci/*.toml"))
    assert len(paths) >= 10
    for path in paths:
        load_scenario(path)


@pytest.mark.parametrize("setting", [
    "epoch_s=0.001", "horizon_s=1000000000", "signers.mean_offline_s=1",
    'mirrors.latency={dist="pareto",scale=1e-9,shape=0.1}',
    'governance.stake={dist="lognormal",median=1e-9,sigma=10}',
    'mirrors.bandwidth_mbps={dist="lognormal",median=1e12,sigma=10}',
    "fleet.backoff_factor=100", "fleet.max_retries=100",
    "governance.vote_period_epochs=1000000000", "consensus.liveness_threshold=0.000001",
])
def test_values_at_the_bounds_run(setting: str) -> None:
    scenario = resolve_scenario("baseline", ["fleet.nodes=20", setting])
    result = simulate_replication(scenario, 7, 0)
    assert result.summary["replication"] == 0


def test_largest_seed_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code = _invoke(["run", "baseline", "-n", "1", "-e", "serial", "-q", "--out", str(out),
                    "--set", "fleet.nodes=20", "--set", "seed=9223372036854775807"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert (out / "report.html").exists()
