"""Error root for invalid scenario input (files, dicts and ``--set`` overrides).

``ScenarioError`` is the only error ``sim.scenario`` and ``sim.distributions`` raise for a
user's mistake. Its message is one line, ``"<file>: <key.path>: <what is wrong>"`` (or
``"<file>: line N: ..."`` for a malformed TOML file), so the CLI can print it as is.

Imports nothing from the project; must not import ``simpy``, ``model`` or ``reports``.
"""

from __future__ import annotations


class ScenarioError(ValueError):
    """An invalid scenario: unknown key, wrong type, out-of-range value, bad TOML.

    ``source`` is the file (or ``"<dict>"``, or the scenario name), ``path`` the dotted key
    path (``"fleet.nodes"``), ``problem`` what is wrong. Any of ``source`` and ``path`` may
    be missing; ``str()`` joins what is there with ``": "`` on one line.
    """

    def __init__(self, problem: str, *, path: str | None = None, source: str | None = None):
        self.problem = " ".join(problem.split())
        self.path = path
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        return ": ".join(part for part in (self.source, self.path, self.problem) if part)

    def with_source(self, source: str) -> ScenarioError:
        """The same error, attributed to ``source`` (kept when one is already set)."""
        return ScenarioError(self.problem, path=self.path, source=self.source or source)
