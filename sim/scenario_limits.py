"""Limits that keep scenario input from crashing the reader or the run.

``sim.knobs`` bounds each knob on its own (and ``sim.distributions`` each distribution
parameter); this module holds the limits that look at more than one value:

- **Nesting.** Arrays and inline tables may be nested at most ``MAX_NESTING`` (32) deep,
  in a scenario file, a ``--set`` value or a dict given to ``scenario_from_dict``. A
  shipped scenario nests 3 deep at most (``compromise_groups = [{keys = [0, 1], ...}]``).
  ``check_toml_nesting`` scans the TOML text *before* ``tomllib`` (whose parser recurses
  once per level and would raise ``RecursionError`` near 500); ``check_data_nesting``
  walks parsed data without recursion.
- **Events per replication.** The processes that run until the horizon must not need more
  than ``MAX_EVENTS`` (10,000,000) expected events per replication, about minutes of
  computing: signer online/offline changes (``2 * n * horizon_s * (1 - availability) /
  mean_offline_s``), key rotations (``horizon_s / rotation_interval_s``) and mirror
  outages (``outage_rate_per_h / 3600 * count * (horizon_s + W)``, ``W`` the mean outage
  duration, or the 7-day warm-up window of ``sim.mirrors`` when that mean is infinite).
  ``check_event_budget`` refuses more, naming the knob and how many events it would take
  (for outages ``outage_duration`` when its term is the larger, else ``outage_rate_per_h``).

Every refusal is a one-line ``sim.errors.ScenarioError``. Imports the standard library and
``sim.errors`` only; must not import ``simpy``, ``numpy``, ``model`` or ``reports``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from releasesim.sim.errors import ScenarioError

MAX_NESTING = 32
"""Deepest nesting of arrays and inline tables accepted in scenario input."""
MAX_EVENTS = 10_000_000
"""Most expected signer, rotation and outage events per replication a scenario may need."""
OUTAGE_WARM_UP_S = 7 * 86400.0
"""= ``sim.mirrors.WARM_UP_WINDOW_S`` (a test keeps them equal; this module may not import
``sim.mirrors``)."""

__all__ = [
    "MAX_EVENTS",
    "MAX_NESTING",
    "OUTAGE_WARM_UP_S",
    "check_data_nesting",
    "check_event_budget",
    "check_toml_nesting",
]


def _nesting_error(path: str | None = None) -> ScenarioError:
    return ScenarioError(
        f"arrays and tables nested more than {MAX_NESTING} deep (the limit)", path=path
    )


def _string_end(text: str, start: int) -> int:
    """Index just past the TOML string opening at ``start`` (or ``len(text)``)."""
    quote = text[start]
    n = len(text)
    if text.startswith(quote * 3, start):  # multi-line: up to 2 extra quotes in the close
        i = start + 3
        while i < n:
            if quote == '"' and text[i] == "\\":
                i += 2
                continue
            if text.startswith(quote * 3, i):
                run = 3
                while run < 5 and i + run < n and text[i + run] == quote:
                    run += 1
                return i + run
            i += 1
        return n
    i = start + 1
    while i < n and text[i] != "\n":
        if quote == '"' and text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            return i + 1
        i += 1
    return i


def check_toml_nesting(text: str, path_prefix: str | None = None) -> None:
    """Raise ``ScenarioError`` (path ``line N``) when TOML ``text`` nests too deep.

    Counts ``[`` and ``{`` outside strings and comments; it never reads past what a
    ``tomllib`` parse would. ``path_prefix`` replaces the ``line N`` path (for a ``--set``
    value, which is one line).
    """
    if text.count("[") + text.count("{") <= MAX_NESTING:
        return
    depth, i, n = 0, 0, len(text)
    while i < n:
        char = text[i]
        if char == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        if char in "\"'":
            i = _string_end(text, i)
            continue
        if char in "[{":
            depth += 1
            if depth > MAX_NESTING:
                line = text.count("\n", 0, i) + 1
                raise _nesting_error(path_prefix or f"line {line}")
        elif char in "]}":
            depth = max(0, depth - 1)
        i += 1


def check_data_nesting(data: Any) -> None:
    """Raise ``ScenarioError`` (path: the top-level key) when parsed data nests too deep."""
    if not isinstance(data, Mapping):
        return
    for key, value in data.items():
        stack: list[tuple[Any, int]] = [(value, 0)]
        while stack:
            item, depth = stack.pop()
            children = (
                item.values() if isinstance(item, Mapping)
                else item if isinstance(item, list | tuple) else None
            )
            if children is None:
                continue
            if depth >= MAX_NESTING:
                raise _nesting_error(str(key))
            stack.extend((child, depth + 1) for child in children)


def _refuse(path: str, what: str, count: float, fix: str) -> None:
    if count > MAX_EVENTS:
        raise ScenarioError(
            f"{what} about {count:.3g} times per replication, more than the "
            f"{MAX_EVENTS:,} events a replication may take; {fix}",
            path=path,
        )


def check_event_budget(values: Mapping[str, Any]) -> None:
    """Refuse knob values whose horizon-long processes would need more than ``MAX_EVENTS``.

    ``values`` maps every knob key to its converted value (``sim.scenario._build``).
    """
    horizon = float(values["horizon_s"])
    n, a = int(values["signers.n"]), float(values["signers.availability"])
    churn = 2.0 * n * horizon * (1.0 - a) / float(values["signers.mean_offline_s"])
    _refuse("signers.mean_offline_s", f"the {n} signers would go offline or online", churn,
            "raise signers.mean_offline_s or signers.availability, or shorten horizon_s")
    interval = float(values["signers.rotation_interval_s"])
    if interval > 0 and int(values["signers.rotation_count"]) > 0:
        _refuse("signers.rotation_interval_s", "keys would rotate", horizon / interval,
                "raise signers.rotation_interval_s (0 = never) or shorten horizon_s")
    rate_per_s = float(values["mirrors.outage_rate_per_h"]) / 3600.0 * int(values["mirrors.count"])
    duration = values["mirrors.outage_duration"]
    if rate_per_s > 0 and not duration.is_zero:
        mean = float(duration.mean)
        window = mean if math.isfinite(mean) else OUTAGE_WARM_UP_S
        knob = "mirrors.outage_duration" if window > horizon else "mirrors.outage_rate_per_h"
        _refuse(knob, "mirror outages (over horizon_s, plus those in progress at time 0) "
                "would begin", rate_per_s * (horizon + window),
                "lower mirrors.outage_rate_per_h, mirrors.count or mirrors.outage_duration, "
                "or shorten horizon_s")
