#!/usr/bin/env python3
"""The quickstart's two commands, needing nothing but python3 (3.11+).

    python3 tasks.py demo   # create .venv when missing, run the main job end to end
    python3 tasks.py test   # create .venv when missing, run the linter and the tests
    python3 tasks.py bench  # the performance benchmarks (not part of the tests)
    python3 tasks.py docs   # regenerate the generated docs and docs/img from the code
    python3 tasks.py smoke  # build the wheel, install it in a fresh venv, run it there

``.venv`` is (re)installed when it is missing or ``pyproject.toml`` changed since the
last install. Extra arguments after ``test`` go to pytest; after ``demo``, to
``releasesim run``. Standard library only: this runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed"


def _python() -> Path:
    return BIN / ("python.exe" if os.name == "nt" else "python")


def ensure_venv() -> None:
    """Create .venv and install the project with its dev extras when needed."""
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if _python().exists() and STAMP.exists() and STAMP.read_text().strip() == wanted:
        return
    if not _python().exists():
        print(f"creating {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("installing releasesim and its dependencies into .venv ...", flush=True)
    pip = [str(_python()), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True, cwd=ROOT)
    subprocess.run([*pip, "-e", ".[dev]"], check=True, cwd=ROOT)
    STAMP.write_text(wanted + "\n")


def run(*command: str) -> int:
    return subprocess.run(list(command), cwd=ROOT).returncode


def demo(extra: list[str]) -> int:
    """The main job: the baseline scenario end to end, with its blast-radius report."""
    return run(str(BIN / "releasesim"), "run", "baseline", *extra)


def test(extra: list[str]) -> int:
    """ruff, then pytest on every core (pytest-xdist's ``-n``; pass your own ``-n`` or
    ``-p no:xdist`` to change that)."""
    code = run(str(_python()), "-m", "ruff", "check", ".")
    if code:
        return code
    workers = [] if any(a.startswith("-n") or a == "no:xdist" for a in extra) else [
        "-n", str(min(4, os.cpu_count() or 1))]
    return run(str(_python()), "-m", "pytest", *workers, *extra)


def bench(extra: list[str]) -> int:
    """The performance benchmarks (benchmarks/run_all.py); not part of the tests."""
    return run(str(_python()), "benchmarks/run_all.py", *extra)


def docs(extra: list[str]) -> int:
    """Regenerate every generated doc and figure from the code (never typed by hand)."""
    import shutil
    import tempfile

    python = str(_python())
    steps = [
        [python, "-m", "releasesim.sim.summary"],  # docs/metrics.md
        [python, "-m", "releasesim.sim.scenario_docs", "docs"],  # docs/scenarios.md
        [python, "-m", "releasesim.reports.measures", "docs/reports.md"],  # the measure list
        # figures and example outputs quoted in README.md and docs/ (and their timings)
        [python, "-m", "releasesim.docs_examples", "sync", "--timings", str(ROOT)],
    ]
    for step in steps:
        if run(*step):
            return 1
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "baseline"
        if run(str(BIN / "releasesim"), "run", "baseline", "--quiet", "--out", str(out)):
            return 1
        (ROOT / "docs" / "img").mkdir(exist_ok=True)
        shutil.copyfile(out / "fig_exposure.png", ROOT / "docs" / "img" / "exposure.png")
    print("regenerated docs/metrics.md, docs/scenarios.md, docs/reports.md, docs/img/exposure.png"
          " and the examples of README.md and docs/")
    return 0


def smoke(extra: list[str]) -> int:
    """The wheel's smoke test (.ci/smoke_wheel.sh), as CI runs it after the tests."""
    env = {**os.environ, "PYTHON": str(_python())}
    return subprocess.run(["bash", ".ci/smoke_wheel.sh"], cwd=ROOT, env=env).returncode


def main(argv: list[str]) -> int:
    commands = {"demo": demo, "test": test, "bench": bench, "docs": docs, "smoke": smoke}
    if not argv or argv[0] not in commands:
        print("usage: python3 tasks.py demo|test|bench|docs|smoke [args...]", file=sys.stderr)
        return 2
    if sys.version_info < (3, 11):  # noqa: UP036 - runs before the venv exists
        print("error: releasesim needs Python 3.11 or newer", file=sys.stderr)
        return 2
    try:
        ensure_venv()
    except subprocess.CalledProcessError as exc:
        print(f"error: installing into .venv failed (exit {exc.returncode})", file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
