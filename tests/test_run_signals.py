"""SIGTERM during ``releasesim run`` leaves no hidden temporary folder behind.

A real ``releasesim run`` process (serial and process pool) is sent SIGTERM once its
hidden ``.<out>.tmp-*`` folder exists; it must exit with 143 (128 + SIGTERM), leave
neither the folder nor a run directory, and print no traceback.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


@pytest.mark.parametrize("executor", ["serial", "process"])
def test_sigterm_during_run_leaves_no_temporary_folder(tmp_path: Path, executor: str) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "releasesim", "run", "lagging_release", "-n", "40", "--quiet",
         "--executor", executor, "--workers", "2", "--set", "fleet.nodes=3000",
         "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60  # a hang guard while the run starts, not a timing check
    while not list(tmp_path.glob(".run.tmp-*")) and proc.poll() is None:
        assert time.monotonic() < deadline, "the run never created its temporary folder"
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=180)  # a hang guard (a loaded machine is slow)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # no hidden folder, no half-written run


def test_a_sigterm_lost_in_a_hook_is_recorded_and_not_reported() -> None:
    """SIGTERM handled inside a finalizer (where exceptions are ignored): the exit is
    recorded for the runner, and no "Exception ignored ... Traceback" reaches stderr."""
    code = (
        "import os, signal, sys\n"
        "from releasesim.sim.runner import sigterm_as_exit\n"
        "class Finalized:\n"
        "    def __del__(self):\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "with sigterm_as_exit() as state:\n"
        "    Finalized()\n"
        "    total = sum(range(10000))\n"
        "    print(state.signum)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == str(int(signal.SIGTERM))
    assert proc.stderr == ""
