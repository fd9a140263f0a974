"""``releasesim check``: passes on the committed suite and baseline, fails on a riskier
scenario naming the metric, JUnit XML, atomic baseline update, and the tolerance rule."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reports.measures import MEASURES
from reports.regression import FORMAT, Stats, compare, scenario_entry, tolerance
from sim.cli import main

CI_DIR = Path(__file__).resolve().parents[1] / "scenarios" / "ci"
BASELINE = CI_DIR / "baseline.json"
CHECKED = [m for m in MEASURES if m.worse and m.section != "invariants"]


def _cases(junit: Path) -> list[ET.Element]:
    return list(ET.parse(junit).getroot().iter("testcase"))


def test_check_passes_on_main(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    junit = tmp_path / "junit.xml"
    assert main(["check", str(CI_DIR), "--junit", str(junit)]) == 0
    out = capsys.readouterr().out
    assert "check passed" in out
    scenarios = len(list(CI_DIR.glob("*.toml")))
    cases = _cases(junit)
    assert len(cases) == scenarios * (3 + len(CHECKED))
    assert not any(case.find("failure") is not None for case in cases)
    names = {case.get("name") for case in cases}
    assert "invariant:unapproved_boots" in names and "measure:malicious_approved" in names


def test_check_fails_on_a_riskier_suite(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    suite = tmp_path / "ci"
    shutil.copytree(CI_DIR, suite)
    compromised = suite / "ci_compromised.toml"
    compromised.write_text(compromised.read_text().replace("threshold = 5", "threshold = 2"))
    with open(suite / "ci_baseline.toml", "a", encoding="utf-8") as handle:
        handle.write("\n[release]\nstartup_failure_prob = 0.5\n")
    junit = tmp_path / "junit.xml"
    code = main(["check", str(suite), "--baseline", str(BASELINE), "--junit", str(junit)])
    out = capsys.readouterr().out
    assert code == 1
    assert "check FAILED" in out
    lines = out.splitlines()
    assert any("ci_compromised" in ln and "malicious_approved" in ln and "REGRESSED" in ln
               for ln in lines)
    assert any("ci_baseline" in ln and "failed_startup_fraction" in ln and "REGRESSED" in ln
               for ln in lines)
    failed = {(c.get("classname"), c.get("name")) for c in _cases(junit)
              if c.find("failure") is not None}
    assert ("releasesim.check.ci_compromised", "measure:malicious_approved") in failed
    assert ("releasesim.check.ci_baseline", "measure:failed_startup_fraction") in failed


def test_update_baseline_rewrites_atomically(tmp_path: Path, capsys) -> None:
    suite = tmp_path / "ci"
    shutil.copytree(CI_DIR, suite)
    (suite / "baseline.json").unlink()
    assert main(["check", str(suite)]) == 2
    assert "--update-baseline" in capsys.readouterr().err
    assert main(["check", str(suite), "--update-baseline", "--executor", "process",
                 "--workers", "2"]) == 0
    data = json.loads((suite / "baseline.json").read_text())
    assert data["format"] == FORMAT
    committed = json.loads(BASELINE.read_text())
    assert data["scenarios"] == committed["scenarios"], "the committed baseline is stale"
    assert sorted(p.name for p in suite.iterdir() if p.name.startswith(".")) == []
    assert main(["check", str(suite)]) == 0


def _values(**columns: list[float]) -> pd.DataFrame:
    return pd.DataFrame({k: np.array(v, dtype=float) for k, v in columns.items()})


def test_tolerance_rule() -> None:
    assert tolerance("fraction", Stats(0.0, 0.0, 30), Stats(0.0, 0.0, 30)) == 0.01
    assert tolerance("s", Stats(1000.0, 0.0, 30), Stats(1000.0, 0.0, 30)) == 100.0
    se = np.sqrt(0.2**2 / 30 + 0.2**2 / 30)
    assert tolerance("probability", Stats(0.5, 0.2, 30), Stats(0.5, 0.2, 30)) == 3.5 * se


def test_one_unlucky_replication_does_not_flap_but_a_shift_fails() -> None:
    zeros = [0.0] * 30
    base = scenario_entry(_values(malicious_approved=zeros, unapproved_boots=zeros,
                                  install_time_violations=zeros,
                                  rejected_installs_counted=zeros, activated=[1.0] * 30))
    one = [1.0] + [0.0] * 29
    rows = compare("s", base, _values(malicious_approved=one, unapproved_boots=zeros,
                                      install_time_violations=zeros,
                                      rejected_installs_counted=zeros, activated=[1.0] * 30))
    status = rows.set_index("metric")["status"]
    assert status["malicious_approved"] == "ok"
    shifted = [1.0] * 10 + [0.0] * 20
    bad = [0.0] * 29 + [2.0]
    rows = compare("s", base, _values(malicious_approved=shifted, unapproved_boots=bad,
                                      install_time_violations=zeros,
                                      rejected_installs_counted=zeros,
                                      activated=[0.0] * 10 + [1.0] * 20))
    status = rows.set_index("metric")["status"]
    assert status["malicious_approved"] == "regressed"
    assert status["unapproved_boots"] == "violated"
    assert status["activated"] == "regressed"  # lower is worse
    better = compare("s", base, _values(malicious_approved=zeros, unapproved_boots=zeros,
                                        install_time_violations=zeros,
                                        rejected_installs_counted=zeros, activated=[1.0] * 30))
    assert set(better["status"]) <= {"ok", "missing"}
