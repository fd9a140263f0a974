"""Run the ``$`` lines of a console example in the docs and record what a terminal shows.

``releasesim.docs_examples`` keeps the console examples of README.md and docs/ in step with
the commands: the commands of a ``console`` block run, in order, in one bash (so ``export``,
shell functions and ``cd`` carry over) in an empty temporary folder, with the Python
environment's commands (``releasesim``) first on ``PATH``, ``HOME`` inside that folder
(nothing touches ``~/.the_block``) and no ``TB_*`` variable inherited. Each command's
output is stdout and stderr merged, as a terminal shows them, with its exit code. So that
an example does not change from one run to the next, the folder reads ``SESSION_DIR`` and
the wall-clock ``time`` of a rollback audit record reads ``PINNED_TIME``. A traceback in
an output is an error (``DocsError``): a command a user runs never prints one.

Standard library only; imports nothing from the project.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

SESSION_DIR = "/tmp/rs-example"
"""What the temporary folder of a console session reads as in the docs."""
PINNED_TIME = "1795763752.965068"
"""The wall-clock ``time`` of a rollback audit record, as the docs show it."""
COMMAND_TIMEOUT_S = 300.0


class DocsError(Exception):
    """A snippet could not be rendered: a missing marker, a failed command, a false claim."""


def python_bin() -> Path:
    """The folder of this Python's commands (``.venv/bin`` in a checkout)."""
    return Path(sys.executable).parent


_RC = "@@releasesim-docs-rc="


def session_commands(current: str) -> list[str]:
    """The commands of a console block: ``$`` lines, without the prompt, with the lines
    that a trailing backslash continues them onto."""
    commands: list[str] = []
    continued = False
    for line in current.splitlines():
        if continued:
            commands[-1] += "\n" + line
        elif line.startswith("$ "):
            commands.append(line[2:])
        else:
            continue
        continued = line.endswith("\\")
    return commands


def run_session(commands: list[str]) -> list[tuple[str, list[str], int]]:
    """Run ``commands`` in one bash in an empty folder; ``(command, output lines, exit)``."""
    script = []
    for command in commands:
        # `true` first: a comment-only command still makes a valid group
        script.append(f"{{ true\n{command}\n}} 2>&1\nprintf '\\n{_RC}%d\\n' $?")
    with tempfile.TemporaryDirectory(prefix="releasesim-docs-") as tmp:
        folder = Path(tmp) / "rs-example"
        folder.mkdir()
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("TB_", "RELEASESIM_", "PYTHON"))}
        env.update(PATH=f"{python_bin()}{os.pathsep}{env.get('PATH', '')}", HOME=str(folder),
                   COLUMNS="80", LC_ALL="C.UTF-8", TZ="UTC")
        done = subprocess.run(["bash", "--noprofile", "--norc", "-s"], input="\n".join(script),
                              capture_output=True, text=True, cwd=folder, env=env,
                              timeout=COMMAND_TIMEOUT_S, check=False)
        out = done.stdout
        for path in {str(folder), str(folder.resolve())}:
            out = out.replace(path, SESSION_DIR)
    if done.returncode != 0 or done.stderr:
        raise DocsError(f"the session's shell failed: {done.stderr.strip()}")
    out = re.sub(r'("time": )\d+(?:\.\d+)?', rf"\g<1>{PINNED_TIME}", out)
    parts = out.split(f"\n{_RC}")
    if len(parts) != len(commands) + 1:
        raise DocsError(f"expected {len(commands)} command outputs, got {len(parts) - 1}")
    results = []
    for i, command in enumerate(commands):
        chunk = parts[i] if i == 0 else parts[i].split("\n", 1)[1] if "\n" in parts[i] else ""
        code = int(parts[i + 1].split("\n", 1)[0])
        if "Traceback (most recent call last)" in chunk:
            raise DocsError(f"`{command}` printed a traceback:\n{chunk}")
        lines = [] if chunk == "" else chunk.removesuffix("\n").split("\n")
        results.append((command, lines, code))
    return results


__all__ = ["COMMAND_TIMEOUT_S", "PINNED_TIME", "SESSION_DIR", "DocsError", "python_bin",
           "run_session", "session_commands"]
