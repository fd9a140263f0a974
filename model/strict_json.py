"""Strict JSON parsing for operator inputs: every problem is one ``MalformedInput`` line.

Rejects what ``json.loads`` lets through silently (a key repeated in one object, where
the last value would win) and turns what it raises (syntax errors, nesting too deep,
over-long integer literals) into one line naming where. Imports only ``releasesim.model.errors``.
"""

from __future__ import annotations

import json
from typing import Any

from releasesim.model.errors import MalformedInput


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise MalformedInput(f"invalid JSON (key {key!r} appears twice in one object)")
        seen[key] = value
    return seen


def load_json_strict(text: str, where: str = "", *, position: bool = True) -> Any:
    """``json.loads`` that reports every problem as one ``MalformedInput`` line prefixed by
    ``where``: syntax (with line and column when ``position``), a key repeated in one
    object, nesting too deep, an over-long number."""
    prefix = f"{where}: " if where else ""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        at = f"line {exc.lineno}, column {exc.colno}: " if position else ""
        raise MalformedInput(f"{prefix}{at}invalid JSON ({exc.msg})") from None
    except MalformedInput as exc:
        raise MalformedInput(f"{prefix}{exc}") from None
    except RecursionError:
        raise MalformedInput(f"{prefix}invalid JSON (nested too deeply)") from None
    except ValueError as exc:  # e.g. an integer literal longer than 4300 digits
        raise MalformedInput(f"{prefix}invalid JSON ({' '.join(str(exc).split())})") from None
