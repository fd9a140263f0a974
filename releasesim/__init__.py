"""releasesim: run a chain's real release-governance and update code against randomised futures.

One import package, mapped from the repository's rooms (``pyproject.toml``):

- ``releasesim.model``: the real governance and update modules (crypto, signers, quorum,
  store, governance, update, metrics, explorer queries, operator procedures); no simpy;
- ``releasesim.sim``: the simulated world (SimPy), the scenario layer and the runner;
- ``releasesim.reports``: blast-radius tables, intervals, figures, sweeps, the CI check;
- ``releasesim.explorer``: the HTTP explorer and its JSON Schema;
- ``releasesim.cli``: the ``releasesim`` (and ``contract``) command;
- ``releasesim.scenarios``: the shipped scenario files (package data).

Imports point down: cli -> explorer, reports -> sim -> model. Importing this package
imports nothing else (the command starts fast).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("releasesim")
except PackageNotFoundError:  # pragma: no cover - running from a checkout without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
