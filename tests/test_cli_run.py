"""``releasesim run`` and ``releasesim scenarios`` as a user runs them.

One end-to-end run through the installed console script (a subprocess), the rest
in-process through ``releasesim.cli.main.main`` (same parser and error handling, without paying an
interpreter start per case). Bad input must give exit code 2, exactly one line on
stderr, no traceback and no run directory.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from releasesim.cli.main import main

RELEASESIM = Path(sys.executable).with_name("releasesim")
SMALL = ["--set", "fleet.nodes=30"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_run_end_to_end_as_a_user(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(RELEASESIM), "run", "baseline", *SMALL, "--replications", "3",
         "--workers", "2", "--out", "tmp/run"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "tmp" / "run"
    names = {p.name for p in out.iterdir()}
    assert {
        "summary.parquet", "summary.csv", "nodes.parquet", "events.parquet", "manifest.json",
        "report.html", "report.md",
    } <= names
    assert {n for n in names if n.endswith(".png")}, names
    assert [p.name for p in (tmp_path / "tmp").iterdir()] == ["run"]
    assert "blast radius: baseline - 3 replications" in proc.stdout
    assert "time_to_activation_s" in proc.stdout and "INVARIANT" not in proc.stdout
    # not a terminal: no progress bar, just the final line
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("ran 3 replications of baseline") and "tmp/run" in proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["overrides"] == ["fleet.nodes=30"]
    assert manifest["executor"] == "process" and manifest["workers"] == 2
    assert manifest["scenario"]["fleet"]["nodes"] == 30
    assert len(pd.read_parquet(out / "nodes.parquet")) == 90


def test_run_default_out_dir_and_keep_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code = main(["run", *SMALL, "-n", "1", "--executor", "serial", "--quiet", "--keep-store"])
    assert code == 0, capsys.readouterr().err
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("baseline-") and run_dir.name.endswith("Z")
    assert (run_dir / "governance.db").is_file()
    assert capsys.readouterr().err.startswith("ran 1 replications of baseline")


def test_a_bad_input_through_the_console_script(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(RELEASESIM), "run", "no_such_scenario", "--out", "run"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert "no_such_scenario" in proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["run", "no_such_scenario"], "no_such_scenario"),
        (["run", "baseline", "--set", "fleet.no_such_key=1"], "fleet.no_such_key"),
        (["run", "baseline", "--set", "fleet.nodes=-5"], "fleet.nodes"),
        (["run", "baseline", "--set", "novalue"], "novalue"),
        (["run", "baseline", "--workers", "0"], "--workers"),
        (["run", "baseline", "--replications", "0"], "--replications"),
        (["run", "baseline", "--seed", "-1"], "--seed"),
        (["run", "baseline", "--executor", "threads"], "--executor"),
        (["run", "baseline", "--executor", "dask", "--scheduler", "http://h:1"],
         "tcp://HOST:PORT"),
        (["run", "baseline", "--scheduler", "tcp://127.0.0.1:8786"], "--executor dask"),
        (["run", "baseline", "--out", "existing"], "existing"),
        (["scenarios", "show", "no_such_scenario"], "no_such_scenario"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_run_dir(
    argv: list[str],
    needle: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "existing").mkdir()
    (tmp_path / "existing" / "mine.txt").write_text("keep")
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert needle in lines[0] and "Traceback" not in captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing"]
    assert [p.name for p in (tmp_path / "existing").iterdir()] == ["mine.txt"]


def test_unreachable_scheduler_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"tcp://127.0.0.1:{_free_port()}"
    code = main(["run", *SMALL, "--executor", "dask", "--scheduler", url, "--out", "run"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert f"cannot reach the Dask scheduler at {url}" in err
    assert list(tmp_path.iterdir()) == []


def test_scenarios_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenarios", "list"]) == 0
    names = {line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert {"baseline", "signer_churn", "lagging_release", "bad_release_rollback",
            "compromised_signers"} <= names


def test_scenarios_schema_is_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    import jsonschema

    assert main(["scenarios", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert "properties" in schema


def test_scenarios_show_json_and_toml_agree(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenarios", "show", "lagging_release", "--format", "json"]) == 0
    as_json = json.loads(capsys.readouterr().out)
    assert main(["scenarios", "show", "lagging_release"]) == 0
    as_toml = tomllib.loads(capsys.readouterr().out)
    assert as_toml == _drop_none(as_json)


def test_shown_scenario_round_trips_through_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scenarios", "show", "signer_churn", "--set", "fleet.nodes=20"]) == 0
    path = tmp_path / "mine.toml"
    path.write_text(capsys.readouterr().out)
    from releasesim.sim.api import resolve_scenario
    from releasesim.sim.scenario import config_hash

    shown = resolve_scenario(path)
    assert config_hash(shown) == config_hash(resolve_scenario("signer_churn", ["fleet.nodes=20"]))


def _drop_none(value: object) -> object:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value



def test_scenarios_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenarios", "validate", "baseline", "lagging_release"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in out] == ["baseline", "lagging_release"]
    bad = tmp_path / "bad.toml"
    bad.write_text("[fleet]\nnodes = 'ten'\n")
    assert main(["scenarios", "validate", "baseline", str(bad)]) == 2
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert "bad.toml" in line and "fleet.nodes" in line and "Traceback" not in captured.err
