"""``releasesim demo``: the end-to-end governance demo passes, and notices when it should not.

The demo is the README's main job until the simulator takes over, so it is run exactly
as ``make demo`` runs it (the installed console script in a subprocess).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import releasesim.cli.demo
from releasesim.model.crypto import ReleaseSigner

_LOCAL = Path(sys.executable).with_name("releasesim")
RELEASESIM = str(_LOCAL) if _LOCAL.exists() else (shutil.which("releasesim") or "releasesim")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TB_")}


def test_demo_passes_end_to_end(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    proc = subprocess.run(
        [RELEASESIM, "demo", "--workdir", str(workdir)],
        capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "Traceback" not in out + proc.stderr
    assert "UNEXPECTED" not in out
    for line in (
        "$ releasesim gov propose-release --hash $H --signature $S1 --signer $K1",
        "$ releasesim gov approve-release --id 1",
        "status: activated",
        "$ releasesim gov fetch-release --hash $H --install",
        "boot allowed",
        "rolled back to",
        '"reason": "unapproved build"',
        "release_installs_total 1",
        "release_quorum_fail_total 1",
        "demo passed: all 12 steps behaved as expected",
    ):
        assert line in out, line
    assert (workdir / "governance.db").exists()
    assert (workdir / "config" / "release_signers.txt").exists()
    assert len((workdir / "node" / "rollback-audit.jsonl").read_text().splitlines()) == 1


def test_demo_workdir_must_be_empty(tmp_path: Path) -> None:
    (tmp_path / "something").write_text("x")
    proc = subprocess.run(
        [RELEASESIM, "demo", "--workdir", str(tmp_path)],
        capture_output=True, text=True, env=_env(), timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "--workdir" in proc.stderr


def test_demo_fails_when_a_step_misbehaves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An inline signer list overriding the demo's config file must make the demo fail."""
    real_prepare = releasesim.cli.demo._prepare_env

    def foreign_signers(workdir: Path) -> dict[str, str]:
        env = real_prepare(workdir)
        env["TB_RELEASE_SIGNERS"] = ReleaseSigner.derived("someone else").public_key
        return env

    monkeypatch.setattr(releasesim.cli.demo, "_prepare_env", foreign_signers)
    assert releasesim.cli.demo.run_demo(tmp_path) == 1
    out = capsys.readouterr().out
    assert "demo FAILED" in out
    assert "UNEXPECTED" in out
