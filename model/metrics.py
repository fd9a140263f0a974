"""Prometheus text exposition of the release counters persisted in the governance store.

The three counters of the seed document: ``release_votes_total`` (label ``choice``),
``release_installs_total`` and ``release_quorum_fail_total``. Counters that were never
incremented are still exposed with value 0, so dashboards see them from the start.
Imports only ``releasesim.model.store``.
"""

from __future__ import annotations

from releasesim.model.store import CHOICES, GovernanceStore

HELP = {
    "release_votes_total": "Governance votes cast on ReleaseVote proposals, by choice.",
    "release_installs_total": "Successful installs of governance-approved builds.",
    "release_quorum_fail_total": "ReleaseVote submissions refused for lack of attestation quorum.",
}


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render_prometheus(store: GovernanceStore) -> str:
    """The counters in the Prometheus text format (version 0.0.4)."""
    values: dict[str, dict[str, float]] = {name: {} for name in HELP}
    for choice in CHOICES:
        values["release_votes_total"][f'choice="{choice}"'] = 0.0
    values["release_installs_total"][""] = 0.0
    values["release_quorum_fail_total"][""] = 0.0
    for name, labels, value in store.counters():
        values.setdefault(name, {})[labels] = value
    lines: list[str] = []
    for name, series in values.items():
        lines.append(f"# HELP {name} {HELP.get(name, name)}")
        lines.append(f"# TYPE {name} counter")
        for labels, value in sorted(series.items()):
            label_text = f"{{{labels}}}" if labels else ""
            lines.append(f"{name}{label_text} {_number(value)}")
    return "\n".join(lines) + "\n"
