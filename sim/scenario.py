"""Scenarios: what to simulate, validated in full before anything runs.

A scenario is a TOML file (``scenarios/*.toml``) of knobs in sections (``[signers]``,
``[governance]``, ``[release]``, ``[adversary]``, ``[mirrors]``, ``[fleet]``, ``[rollout]``)
plus a few top-level keys, described by the knob table of ``sim.knobs``. This module
loads and validates one (``load_scenario``, ``scenario_from_dict``, ``default_scenario``)
and lists the shipped ones (``list_scenarios``; they are package data,
``releasesim.scenarios``); ``sim.overrides`` applies ``--set key.path=value``;
``sim.scenario_docs`` generates the JSON Schema and the knob reference.

Any mistake raises ``sim.errors.ScenarioError`` with a one-line message
``"<file>: <key.path>: <what is wrong>"``: an unknown key, a wrong type, a value out of
range, a cross-field rule (``signers.threshold <= signers.n``, waves ending at 1.0, the
fixed and the probabilistic compromise models not both, a possible ``adversary.keys_held``) or a
malformed TOML file (``"<file>: line N: invalid TOML: ..."``). Besides each knob's range
(``sim.knobs``, e.g. time knobs in ``[1e-3, 1e9]`` s) and each distribution parameter's
(``sim.distributions``), ``sim.scenario_limits`` refuses arrays and tables nested more than
32 deep (before the TOML parser sees them) and knob values whose signer, rotation or outage
processes would need more than 10,000,000 events per replication.

Imports the standard library, ``blake3`` and ``sim.knobs``/``sim.distributions``/
``sim.errors``/``sim.compromise``/``sim.scenario_limits`` only; must not import ``simpy``,
``model``, ``reports`` or the rest of ``sim``.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import blake3

from releasesim.sim.compromise import possible_key_counts
from releasesim.sim.distributions import (
    parse_distribution,
)
from releasesim.sim.errors import ScenarioError
from releasesim.sim.knobs import (
    KNOBS,
    MAX_COMPROMISE_GROUPS,
    MAX_SECONDS,
    SECTIONS,
    TOP_KEYS,
    CompromiseGroup,
    Knob,
    Scenario,
    ThresholdChange,
    expected,
    got,
    is_int,
    is_number,
    memory_text,
    plain,
)
from releasesim.sim.scenario_limits import (
    check_data_nesting,
    check_event_budget,
    check_toml_nesting,
)

_DEFAULTS: dict[str, Any] = {k.key: k.default for k in KNOBS}

SCENARIO_DIR = Path(str(resources.files("releasesim.scenarios")))
"""The shipped scenarios: package data, in a checkout and in an installed wheel alike."""

# --------------------------------------------------------------------------------------


def _check_keys(table: Mapping[str, Any], allowed: Iterable[str], prefix: str) -> None:
    allowed = list(allowed)
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            where = f"in [{prefix}]" if prefix else "at top level"
            raise ScenarioError(
                f"unknown key {where}{hint}; allowed: {', '.join(allowed)}",
                path=f"{prefix}.{key}" if prefix else str(key),
            )


def _convert(knob: Knob, raw: Any) -> Any:
    """``raw`` (as TOML gives it) checked against ``knob`` and converted; raises with path."""
    path = knob.key
    if knob.kind == "int":
        if not is_int(raw) or not _in_range(knob, raw):
            too_big = is_int(raw) and knob.maximum is not None and raw > knob.maximum
            memory = memory_text(knob, raw) if too_big else ""
            raise ScenarioError(f"must be {expected(knob)}, got {got(raw)}{memory}", path=path)
        return int(raw)
    if knob.kind == "float":
        if not is_number(raw) or not math.isfinite(raw) or not _in_range(knob, raw):
            raise ScenarioError(f"must be {expected(knob)}, got {got(raw)}", path=path)
        return float(raw)
    if knob.kind == "bool":
        if not isinstance(raw, bool):
            raise ScenarioError(f"must be true or false, got {got(raw)}", path=path)
        return raw
    if knob.kind == "str":
        if not isinstance(raw, str):
            raise ScenarioError(f"must be a string, got {got(raw)}", path=path)
        return raw
    if knob.kind == "enum":
        if raw not in knob.choices:
            options = ", ".join(repr(c) for c in knob.choices)
            raise ScenarioError(f"must be one of {options}, got {got(raw)}", path=path)
        return str(raw)
    if knob.kind == "dist":
        dist = parse_distribution(raw, path)
        if knob.positive and not dist.positive:
            raise ScenarioError(f"every draw must be > 0, got {got(dist)}", path=path)
        return dist
    if knob.kind == "fractions":
        return _convert_fractions(raw, path)
    if knob.kind == "schedule":
        return _convert_schedule(raw, path)
    if knob.kind == "probs":
        return _convert_probs(raw, path)
    if knob.kind == "groups":
        return _convert_groups(raw, path)
    if knob.kind == "weights":
        return _convert_weights(raw, path)
    raise AssertionError(f"unknown knob kind {knob.kind!r}")  # pragma: no cover


def _in_range(knob: Knob, value: float) -> bool:
    if knob.minimum is not None and (
        value <= knob.minimum if knob.exclusive_minimum else value < knob.minimum
    ):
        return False
    return knob.maximum is None or value <= knob.maximum


def _convert_fractions(raw: Any, path: str) -> tuple[float, ...]:
    if not isinstance(raw, list) or not raw:
        raise ScenarioError(
            f"must be a non-empty array of fractions in (0, 1], got {got(raw)}", path=path
        )
    out: list[float] = []
    for i, item in enumerate(raw):
        where = f"{path}[{i}]"
        if not is_number(item) or not 0 < item <= 1:
            raise ScenarioError(f"must be a number in (0, 1], got {got(item)}", path=where)
        if out and item <= out[-1]:
            raise ScenarioError(
                f"must be > {path}[{i - 1}] ({out[-1]:g}): waves are cumulative fractions, "
                f"strictly increasing, got {got(item)}",
                path=where,
            )
        out.append(float(item))
    if out[-1] != 1.0:
        raise ScenarioError(f"must end at 1.0 (the whole fleet), got {got(raw)}", path=path)
    return tuple(out)


def _convert_schedule(raw: Any, path: str) -> tuple[ThresholdChange, ...]:
    if not isinstance(raw, list):
        raise ScenarioError(
            f"must be an array of tables {{at_s = ..., threshold = ...}}, got {got(raw)}",
            path=path,
        )
    out: list[ThresholdChange] = []
    for i, item in enumerate(raw):
        where = f"{path}[{i}]"
        if not isinstance(item, Mapping):
            raise ScenarioError(
                f"must be a table {{at_s = ..., threshold = ...}}, got {got(item)}", path=where
            )
        _check_keys(item, ("at_s", "threshold"), where)
        for key in ("at_s", "threshold"):
            if key not in item:
                raise ScenarioError("missing", path=f"{where}.{key}")
        at_s, threshold = item["at_s"], item["threshold"]
        if not is_number(at_s) or not math.isfinite(at_s) or not 0 <= at_s <= MAX_SECONDS:
            raise ScenarioError(f"must be a number in [0, {MAX_SECONDS:g}], got {got(at_s)}",
                                path=f"{where}.at_s")
        if out and at_s <= out[-1].at_s:
            raise ScenarioError(
                f"must be > the previous entry's at_s ({out[-1].at_s:g}), got {got(at_s)}",
                path=f"{where}.at_s",
            )
        if not is_int(threshold) or threshold < 1:
            raise ScenarioError(
                f"must be an integer >= 1, got {got(threshold)}", path=f"{where}.threshold"
            )
        out.append(ThresholdChange(float(at_s), int(threshold)))
    return tuple(out)


def _probability(item: Any, where: str) -> float:
    if not is_number(item) or not math.isfinite(item) or not 0 <= item <= 1:
        raise ScenarioError(f"must be a probability in [0, 1], got {got(item)}", path=where)
    return float(item)


def _convert_probs(raw: Any, path: str) -> tuple[float, ...]:
    if not isinstance(raw, list):
        raise ScenarioError(f"must be an array of probabilities in [0, 1], got {got(raw)}",
                            path=path)
    return tuple(_probability(item, f"{path}[{i}]") for i, item in enumerate(raw))


def _convert_weights(raw: Any, path: str) -> tuple[float, ...]:
    if not isinstance(raw, list):
        raise ScenarioError(f"must be an array of positive numbers, got {got(raw)}", path=path)
    out: list[float] = []
    for i, item in enumerate(raw):
        if not is_number(item) or not math.isfinite(item) or item <= 0:
            raise ScenarioError(f"must be a number > 0, got {got(item)}", path=f"{path}[{i}]")
        out.append(float(item))
    return tuple(out)


def _check_consensus(values: Mapping[str, Any]) -> None:
    """Cross-field rules of the validators' stakes and the upgrade mode."""
    validators = values["governance.validators"]
    stakes = values["governance.stakes"]
    if stakes and len(stakes) != validators:
        raise ScenarioError(
            f"must hold one stake per validator: governance.validators ({validators}) "
            f"values, or [] to draw them from governance.stake; got {len(stakes)}",
            path="governance.stakes",
        )
    if values["fleet.validators"] > validators:
        raise ScenarioError(
            f"must be <= governance.validators ({validators}), got "
            f"{values['fleet.validators']}",
            path="fleet.validators",
        )
    if values["consensus.mode"] == "halt_at_height" and values["rollout.strategy"] != "all_at_once":
        raise ScenarioError(
            "halt_at_height switches every node at the upgrade height: it needs "
            f"rollout.strategy = \"all_at_once\", got {values['rollout.strategy']!r}",
            path="consensus.mode",
        )


def _convert_groups(raw: Any, path: str) -> tuple[CompromiseGroup, ...]:
    shape = "{keys = [i, ...], prob = p}"
    if not isinstance(raw, list):
        raise ScenarioError(f"must be an array of tables {shape}, got {got(raw)}", path=path)
    if len(raw) > MAX_COMPROMISE_GROUPS:
        raise ScenarioError(
            f"at most {MAX_COMPROMISE_GROUPS} groups (the exact weights enumerate 2^G "
            f"outcomes), got {len(raw)}",
            path=path,
        )
    out: list[CompromiseGroup] = []
    for i, item in enumerate(raw):
        where = f"{path}[{i}]"
        if not isinstance(item, Mapping):
            raise ScenarioError(f"must be a table {shape}, got {got(item)}", path=where)
        _check_keys(item, ("keys", "prob"), where)
        for key in ("keys", "prob"):
            if key not in item:
                raise ScenarioError("missing", path=f"{where}.{key}")
        keys = item["keys"]
        if not isinstance(keys, list) or not keys:
            raise ScenarioError(f"must be a non-empty array of key indices, got {got(keys)}",
                                path=f"{where}.keys")
        seen: list[int] = []
        for j, key in enumerate(keys):
            if not is_int(key) or key < 0:
                raise ScenarioError(f"must be a key index >= 0, got {got(key)}",
                                    path=f"{where}.keys[{j}]")
            if key in seen:
                raise ScenarioError(f"key {key} is already in this group (keys are distinct)",
                                    path=f"{where}.keys[{j}]")
            seen.append(int(key))
        out.append(CompromiseGroup(tuple(seen), _probability(item["prob"], f"{where}.prob")))
    return tuple(out)


_MODEL_KEYS = ("signers.compromise_prob", "signers.compromise_probs",
               "signers.compromise_groups", "adversary.keys_held")
"""The probabilistic compromise model's knobs (all at their defaults = not in use)."""


def _check_compromise(values: Mapping[str, Any]) -> None:
    """Cross-field rules of the compromise model (``sim.compromise``)."""
    n = values["signers.n"]
    in_use = [key for key in _MODEL_KEYS if values[key] != _DEFAULTS[key]]
    if values["signers.compromised"] > 0 and in_use:
        raise ScenarioError(
            f"a fixed count of compromised keys cannot be combined with the probabilistic "
            f"compromise model ({in_use[0]} is set): set signers.compromised or "
            f"{in_use[0]}, not both",
            path="signers.compromised",
        )
    probs = values["signers.compromise_probs"]
    if probs and len(probs) != n:
        raise ScenarioError(
            f"must hold one probability per key: signers.n ({n}) values, or [] to use "
            f"signers.compromise_prob for every key; got {len(probs)}",
            path="signers.compromise_probs",
        )
    if probs and values["signers.compromise_prob"] != _DEFAULTS["signers.compromise_prob"]:
        raise ScenarioError(
            "set signers.compromise_prob (one value for every key) or "
            "signers.compromise_probs (one per key), not both",
            path="signers.compromise_probs",
        )
    for i, group in enumerate(values["signers.compromise_groups"]):
        for j, key in enumerate(group.keys):
            if key >= n:
                raise ScenarioError(
                    f"must be a key index 0 .. {n - 1} (signers.n - 1), got {key}",
                    path=f"signers.compromise_groups[{i}].keys[{j}]",
                )
    held = values["adversary.keys_held"]
    if held >= 0:
        per_key = probs or (values["signers.compromise_prob"],) * n
        groups = tuple((g.keys, g.prob) for g in values["signers.compromise_groups"])
        possible = possible_key_counts(tuple(per_key), groups)
        if held not in possible:
            raise ScenarioError(
                f"the compromise model never compromises exactly {held} keys (P = 0); "
                f"possible counts: {_ranges(possible)}",
                path="adversary.keys_held",
            )


def _ranges(values: Iterable[int]) -> str:
    """``0..3, 5`` for {0, 1, 2, 3, 5}."""
    runs: list[list[int]] = []
    for value in sorted(values):
        if runs and runs[-1][1] == value - 1:
            runs[-1][1] = value
        else:
            runs.append([value, value])
    return ", ".join(f"{a}..{b}" if b > a else f"{a}" for a, b in runs)


def _build(data: Mapping[str, Any]) -> Scenario:
    if not isinstance(data, Mapping):
        raise ScenarioError(f"a scenario must be a table, got {got(data)}")
    _check_keys(data, (*TOP_KEYS, *SECTIONS), "")
    for section in SECTIONS:
        if section in data and not isinstance(data[section], Mapping):
            raise ScenarioError(f"must be a table [{section}], got {got(data[section])}",
                                path=section)
        names = [k.name for k in KNOBS if k.section == section]
        _check_keys(data.get(section, {}), names, section)

    values: dict[str, Any] = {}
    for knob in KNOBS:
        table = data if knob.section is None else data.get(knob.section, {})
        values[knob.key] = _convert(knob, table[knob.name]) if knob.name in table else knob.default

    for knob in KNOBS:
        if knob.max_key is not None and values[knob.key] > values[knob.max_key]:
            raise ScenarioError(
                f"must be <= {knob.max_key} ({values[knob.max_key]}), got {values[knob.key]}",
                path=knob.key,
            )
    n = values["signers.n"]
    for i, change in enumerate(values["signers.threshold_schedule"]):
        if change.threshold > n:
            raise ScenarioError(
                f"must be <= signers.n ({n}), got {change.threshold}",
                path=f"signers.threshold_schedule[{i}].threshold",
            )
    _check_compromise(values)
    _check_consensus(values)
    check_event_budget(values)

    sections = {
        name: cls(**{k.name: values[k.key] for k in KNOBS if k.section == name})
        for name, (cls, _doc) in SECTIONS.items()
    }
    return Scenario(**{key: values[key] for key in TOP_KEYS}, **sections)


def scenario_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> Scenario:
    """A validated ``Scenario`` from TOML-shaped data; missing knobs take their defaults.

    ``source`` names the origin in error messages (``"<source>: <key.path>: ..."``).
    """
    try:
        check_data_nesting(data)
        return _build(data)
    except ScenarioError as exc:
        raise exc.with_source(source) from None


@functools.cache
def default_scenario() -> Scenario:
    """The embedded defaults (= ``scenarios/baseline.toml``); needs no file."""
    return scenario_from_dict({}, source="<defaults>")


def _label(path: Path) -> str:
    """How a scenario file is named in messages: ``scenarios/x.toml`` for a shipped one."""
    try:
        return str(Path("scenarios") / path.resolve().relative_to(SCENARIO_DIR.resolve()))
    except ValueError:
        return str(path)


def _read_toml(path: Path, label: str) -> dict[str, Any]:
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ScenarioError("no such file", source=label) from None
    except UnicodeDecodeError:
        raise ScenarioError("not a UTF-8 text file", source=label) from None
    except OSError as exc:
        raise ScenarioError(f"cannot read: {exc.strerror or exc}", source=label) from None
    try:
        check_toml_nesting(text)
        return tomllib.loads(text)
    except ScenarioError as exc:
        raise exc.with_source(label) from None
    except RecursionError:  # the nesting check should make this unreachable
        raise ScenarioError("invalid TOML: nested too deep", source=label) from None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        where = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
        if where:
            message = message[: where.start()]
            raise ScenarioError(
                f"invalid TOML: {message} (column {where.group(2)})",
                path=f"line {where.group(1)}",
                source=label,
            ) from None
        at_end = re.search(r"\s*\(at end of document\)$", message)
        if at_end:
            message = message[: at_end.start()]
        raise ScenarioError(
            f"invalid TOML: {message}", path="end of file" if at_end else None, source=label
        ) from None


def _resolve_path(path_or_name: str | Path) -> tuple[Path, str]:
    """The file for a shipped name (``"baseline"``) or a path, and its label for messages."""
    text = str(path_or_name)
    is_name = (
        not isinstance(path_or_name, Path)
        and "/" not in text
        and "\\" not in text
        and not text.endswith(".toml")
    )
    if is_name:
        path = SCENARIO_DIR / f"{text}.toml"
        if not path.is_file():
            shipped = ", ".join(name for name, _ in list_scenarios())
            raise ScenarioError(f"no such scenario; shipped: {shipped}", source=text)
        return path, _label(path)
    return Path(path_or_name), _label(Path(path_or_name))


def load_scenario(path_or_name: str | Path) -> Scenario:
    """Load and validate a scenario: a shipped name (``"baseline"``) or a TOML file path.

    A file without a ``name`` key is named after the file (its stem).
    """
    path, label = _resolve_path(path_or_name)
    data = _read_toml(path, label)
    data.setdefault("name", path.stem)
    return scenario_from_dict(data, source=label)


def list_scenarios() -> list[tuple[str, str]]:
    """``(name, description)`` of each shipped scenario, sorted by name."""
    out: list[tuple[str, str]] = []
    for path in sorted(SCENARIO_DIR.glob("*.toml")):
        description = _read_toml(path, _label(path)).get("description", "")
        out.append((path.stem, description if isinstance(description, str) else ""))
    return out


# --------------------------------------------------------------------------------------
# Overrides (--set key.path=value)
# --------------------------------------------------------------------------------------


HASH_OMITS_AT_DEFAULT: tuple[str, ...] = (
    *_MODEL_KEYS, "governance.stakes", "fleet.validators",
    *(knob.key for knob in KNOBS if knob.section == "consensus"),
)
"""Knobs added after configuration hashes were first recorded (CI baselines, run
manifests): left out of the hash while at their default, so a configuration that does
not use them keeps the hash it had."""


def config_hash(scenario: Scenario) -> str:
    """BLAKE3 hex digest of the canonical JSON of every knob except name and description.

    Two scenarios with the same knob values have the same hash, whatever they are called.
    The knobs of ``HASH_OMITS_AT_DEFAULT`` count only when they differ from their default.
    """
    data = scenario.to_dict()
    data.pop("name", None)
    data.pop("description", None)
    for key in HASH_OMITS_AT_DEFAULT:
        section, name = key.split(".")
        if data[section][name] == plain(_DEFAULTS[key]):
            del data[section][name]
    if not data["consensus"]:
        del data["consensus"]
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return blake3.blake3(canonical.encode("ascii")).hexdigest()


__all__ = [
    "SCENARIO_DIR",
    "ScenarioError",
    "config_hash",
    "default_scenario",
    "list_scenarios",
    "load_scenario",
    "scenario_from_dict",
]
