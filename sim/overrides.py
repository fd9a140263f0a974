"""Overrides: ``--set key.path=value`` applied to a scenario's TOML data.

``apply_overrides(data, ["fleet.nodes=500", "mirrors.latency.median=0.5"])`` returns a
copy of the data with each value set (read as a TOML value when it parses as one); the
caller validates the result (``sim.scenario.scenario_from_dict``). An unknown key path
(with a close match suggested), an item without ``=`` or a value whose arrays and tables
nest more than ``sim.scenario_limits.MAX_NESTING`` (32) deep raises ``ScenarioError``.

Imports the standard library and ``sim.knobs``/``sim.distributions``/``sim.errors``/
``sim.scenario_limits`` only.
"""

from __future__ import annotations

import copy
import difflib
import tomllib
from collections.abc import Iterable, Mapping
from typing import Any

from releasesim.sim.distributions import (
    Distribution,
)
from releasesim.sim.errors import ScenarioError
from releasesim.sim.knobs import (
    BY_KEY,
    KNOBS,
    SECTIONS,
    Knob,
    is_number,
)
from releasesim.sim.scenario_limits import check_toml_nesting

# --------------------------------------------------------------------------------------


def _parse_value(raw: str) -> Any:
    """``raw`` as a TOML value when it is one (``500``, ``true``, ``{dist = ...}``), else str."""
    try:
        parsed = tomllib.loads(f"v = {raw}")
    except (tomllib.TOMLDecodeError, RecursionError):
        return raw
    return parsed["v"] if list(parsed) == ["v"] else raw


def _override_knob(key: str) -> tuple[Knob, str | None]:
    """The knob an override key path sets, and the distribution parameter if any."""
    parts = key.split(".")
    if len(parts) == 1 and key in SECTIONS:
        example = next(k.key for k in KNOBS if k.section == key)
        raise ScenarioError(f"is a section; set one of its keys, e.g. {example}=...", path=key)
    knob_key = ".".join(parts[:2]) if parts[0] in SECTIONS else parts[0]
    knob = BY_KEY.get(knob_key)
    rest = parts[len(knob_key.split(".")):]
    if knob is not None and not rest:
        return knob, None
    if knob is not None and knob.kind == "dist" and len(rest) == 1:
        return knob, rest[0]
    candidates = [k.key for k in KNOBS]
    close = difflib.get_close_matches(key, candidates, n=1)
    raise ScenarioError(f"unknown key{f' (did you mean {close[0]!r}?)' if close else ''}",
                        path=key)


def apply_overrides(
    data: Mapping[str, Any], overrides: Iterable[str], source: str = "<overrides>"
) -> dict[str, Any]:
    """A copy of TOML-shaped ``data`` with each ``key.path=value`` applied.

    The value is read as a TOML value when it parses as one, else taken as a string.
    ``section.dist_knob.param=value`` sets one parameter of a distribution table. The
    result is validated by ``scenario_from_dict``; an unknown key path or an item without
    ``=`` raises ``ScenarioError`` here.
    """
    out = copy.deepcopy(dict(data))
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ScenarioError("expected key.path=value", path=f"--set {item}", source=source)
        try:
            knob, param = _override_knob(key)
            check_toml_nesting(raw, path_prefix=key)
        except ScenarioError as exc:
            raise exc.with_source(source) from None
        value = _parse_value(raw.strip())
        table = out
        if knob.section is not None:
            section = table.get(knob.section)
            if not isinstance(section, dict):
                section = table[knob.section] = {}
            table = section
        if param is None:
            table[knob.name] = value
            continue
        current = table.get(knob.name, knob.default)
        if isinstance(current, Distribution):
            current = current.to_dict()
        elif is_number(current):
            current = {"dist": "fixed", "value": current}
        elif not isinstance(current, dict):
            current = {}
        current = dict(current)
        if param == "dist" and current.get("dist") != value:
            current = {}  # another distribution: its parameters come with further --set
        current[param] = value
        table[knob.name] = current
    return out


# --------------------------------------------------------------------------------------
# Identity, schema and docs


__all__ = [
    "apply_overrides",
]
