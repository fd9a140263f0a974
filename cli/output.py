"""What the simulator commands print besides their tables: JSON documents and progress.

- ``json_safe`` / ``print_json``: one JSON document on stdout for ``--json`` (``sweep``,
  ``check``); NaN and infinities become ``null`` and numpy scalars plain numbers, and
  ``allow_nan=False`` guarantees the output is strict JSON that any parser reads.
- ``table_records``: a result table's rows as JSON objects, one per row, same columns.
- ``StepProgress``: progress of a command made of several runs (the points of a sweep,
  the scenarios of a CI check). On a terminal (stderr is a TTY and no ``--quiet``) it
  shows a ``releasesim.sim.progress.Progress`` bar counting replications, advanced by a
  run's replications when that run finishes, with each run's line written above the bar;
  elsewhere (CI logs, pipes) just the lines; with ``--quiet`` nothing. It also records
  how long each run took (``durations``), for the JUnit report of ``check``.

Imports only the standard library and ``releasesim.sim.progress`` (which imports tqdm
when a bar is shown), so it costs nothing at start-up.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, TextIO

from releasesim.sim.progress import Progress


def json_safe(value: Any) -> Any:
    """``value`` with NaN/inf as None, numpy scalars as Python numbers, tuples as lists."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if type(value).__name__ in ("NAType", "NaTType"):  # pandas' missing values
        return None
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return json_safe(item())
    return str(value)


def print_json(document: Any) -> None:
    """Print ``document`` as one strict JSON document (indented) on stdout."""
    print(json.dumps(json_safe(document), indent=2, allow_nan=False))


def table_records(table: Any) -> list[dict[str, Any]]:
    """The rows of a pandas DataFrame as JSON-safe objects, columns in table order."""
    return [json_safe(row) for row in table.to_dict(orient="records")]


class StepProgress:
    """Progress of a multi-run command; see the module docstring.

    ``start(total, desc)`` opens a bar of ``total`` replications (closing any earlier
    one); ``step(replications, line)`` marks one run as finished; ``say(line)`` writes a
    line without advancing. Use as a context manager so the bar is always closed.
    """

    def __init__(self, *, quiet: bool, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.durations: list[float] = []
        self._bar: Progress | None = None
        self._since = time.perf_counter()
        self._ticked = 0  # replications ticked since the last step

    @property
    def on_terminal(self) -> bool:
        """Is a progress bar being shown?"""
        return self._bar is not None and self._bar.enabled

    def start(self, total: int, desc: str) -> None:
        self.close()
        self._bar = Progress(total, enabled=not self.quiet, desc=desc, stream=self.stream)
        self._since = time.perf_counter()
        self._ticked = 0

    def say(self, line: str) -> None:
        if self.quiet:
            return
        if self.on_terminal:
            from tqdm import tqdm  # only on a terminal, where tqdm is already imported

            tqdm.write(line, file=self.stream)  # above the bar, which is redrawn below
        else:
            print(line, file=self.stream, flush=True)

    def tick(self, n: int = 1) -> None:
        """``n`` replications finished (the runner's per-replication hook)."""
        self._ticked += n
        if self._bar is not None:
            self._bar.advance(n)

    def step(self, replications: int, line: str) -> None:
        now = time.perf_counter()
        self.durations.append(now - self._since)
        self._since = now
        self.say(line)
        if self._bar is not None:  # what the per-replication ticks have not counted yet
            self._bar.advance(max(0, replications - self._ticked))
        self._ticked = 0

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> StepProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
