"""Prometheus text exposition of the release counters persisted in the governance store.

The three counters of the seed document: ``release_votes_total`` (label ``choice``),
``release_installs_total`` and ``release_quorum_fail_total``. Counters that were never
incremented are still exposed with value 0, so dashboards see them from the start.
``counter_samples`` gives the same series as records (labels as a mapping) for JSON output.
Imports only ``releasesim.model.store``.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from releasesim.model.store import CHOICES, GovernanceStore

HELP = {
    "release_votes_total": "Governance votes cast on ReleaseVote proposals, by choice.",
    "release_installs_total": "Successful installs of governance-approved builds.",
    "release_quorum_fail_total": "ReleaseVote submissions refused for lack of attestation quorum.",
}


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class CounterSample(NamedTuple):
    """One series of a counter: ``release_votes_total{choice="yes"} 2``."""

    name: str
    labels: dict[str, str]
    value: float

    def to_dict(self) -> dict[str, Any]:
        """``{"name", "labels": {...}, "value"}``; a whole value as an integer."""
        value: float | int = int(self.value) if float(self.value).is_integer() else self.value
        return {"name": self.name, "labels": dict(self.labels), "value": value}


def _series(store: GovernanceStore) -> dict[str, dict[str, float]]:
    """Counter name -> rendered labels (``choice="yes"``, or ``""``) -> value, zeros included,
    families in ``HELP`` order (then any other counter the store holds)."""
    values: dict[str, dict[str, float]] = {name: {} for name in HELP}
    for choice in CHOICES:
        values["release_votes_total"][f'choice="{choice}"'] = 0.0
    values["release_installs_total"][""] = 0.0
    values["release_quorum_fail_total"][""] = 0.0
    for name, labels, value in store.counters():
        values.setdefault(name, {})[labels] = value
    return values


def counter_samples(store: GovernanceStore) -> list[CounterSample]:
    """Every counter series, zeros included, in the order of the text exposition."""
    return [
        CounterSample(name, dict(_LABEL.findall(labels)), value)
        for name, series in _series(store).items()
        for labels, value in sorted(series.items())
    ]


def render_prometheus(store: GovernanceStore) -> str:
    """The counters in the Prometheus text format (version 0.0.4)."""
    lines: list[str] = []
    for name, series in _series(store).items():
        lines.append(f"# HELP {name} {HELP.get(name, name)}")
        lines.append(f"# TYPE {name} counter")
        for labels, value in sorted(series.items()):
            label_text = f"{{{labels}}}" if labels else ""
            lines.append(f"{name}{label_text} {_number(value)}")
    return "\n".join(lines) + "\n"
