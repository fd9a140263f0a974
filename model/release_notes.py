"""Release notes: the runtime, transport and storage backend switches approved in a cycle.

History format (JSON lines, one governance parameter change per line, ``#`` comments and
blank lines allowed)::

    {"epoch": 12, "kind": "runtime", "backend": "tokio", "action": "activate"}
    {"epoch": 40, "kind": "storage", "backend": "sled", "action": "retire"}

Fields: ``epoch`` (integer >= 0, the epoch governance applied the change), ``kind``
(``runtime`` | ``transport`` | ``storage``), ``backend`` (non-empty name), ``action``
(``activate`` | ``retire``); optional ``proposal_id`` (integer) and ``note`` (string). Any
other key, a wrong type, or retiring a backend that is not active is an error naming the
file and line. Lines are applied in epoch order (stable for equal epochs).

Per kind, the *active set* holds the activated, not yet retired backends; the *current*
backend is the most recently activated one still active (``None`` if none). Activating an
active backend makes it current again. The cycle is every change with
``epoch >= since_epoch`` (default 0: the whole history). For each kind the summary gives
``previous`` / ``current`` (current backend before / after the cycle) and ``added`` /
``removed`` (active set after minus before, and before minus after), plus the cycle's
changes in order.

State-dir layout: ``<state-dir>/governance/backend_history.jsonl``.

Pure parsing and summarising; the only I/O is ``load_history`` reading one file.
Imports only ``releasesim.model.errors``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from releasesim.model.errors import InputError, MalformedInput
from releasesim.model.strict_json import load_json_strict

KINDS = ("runtime", "transport", "storage")
ACTIONS = ("activate", "retire")
HISTORY_RELATIVE = Path("governance") / "backend_history.jsonl"
_REQUIRED = ("epoch", "kind", "backend", "action")
_OPTIONAL = ("proposal_id", "note")


@dataclass(frozen=True, slots=True)
class BackendChange:
    """One governance parameter change of a backend."""

    epoch: int
    kind: str
    backend: str
    action: str
    line: int
    proposal_id: int | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "epoch": self.epoch, "kind": self.kind, "backend": self.backend, "action": self.action,
        }
        if self.proposal_id is not None:
            data["proposal_id"] = self.proposal_id
        if self.note is not None:
            data["note"] = self.note
        return data


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_history(text: str, source: str) -> list[BackendChange]:
    """Parse the JSON-lines history; raises ``MalformedInput`` naming ``source`` and line."""
    changes = []
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        where = f"{source}: line {lineno}"
        record = load_json_strict(stripped, where, position=False)
        if not isinstance(record, dict):
            raise MalformedInput(f"{where}: expected a JSON object")
        unknown = sorted(set(record) - set(_REQUIRED) - set(_OPTIONAL))
        if unknown:
            raise MalformedInput(f"{where}: unknown key {unknown[0]!r}")
        missing = [k for k in _REQUIRED if k not in record]
        if missing:
            raise MalformedInput(f"{where}: missing key {missing[0]!r}")
        epoch, kind, backend, action = (record[k] for k in _REQUIRED)
        if not _is_int(epoch) or epoch < 0:
            raise MalformedInput(f"{where}: epoch must be an integer >= 0, got {epoch!r}")
        if kind not in KINDS:
            raise MalformedInput(f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if not isinstance(backend, str) or not backend.strip():
            raise MalformedInput(f"{where}: backend must be a non-empty string, got {backend!r}")
        if any(not c.isprintable() for c in backend) or any(c in backend for c in "`|"):
            raise MalformedInput(
                f"{where}: backend must be a plain name (no control characters, '`' or '|'),"
                f" got {backend!r}"
            )
        if action not in ACTIONS:
            raise MalformedInput(
                f"{where}: action must be one of {', '.join(ACTIONS)}, got {action!r}"
            )
        proposal_id = record.get("proposal_id")
        if proposal_id is not None and not _is_int(proposal_id):
            raise MalformedInput(f"{where}: proposal_id must be an integer, got {proposal_id!r}")
        note = record.get("note")
        if note is not None and not isinstance(note, str):
            raise MalformedInput(f"{where}: note must be a string, got {note!r}")
        changes.append(
            BackendChange(epoch, kind, backend.strip(), action, lineno, proposal_id, note)
        )
    changes.sort(key=lambda c: c.epoch)
    return changes


def load_history(path: str | Path) -> list[BackendChange]:
    """Read and parse a history file; ``InputError`` if it cannot be read."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"backend history {path}: does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"backend history {path}: cannot read: {exc}") from None
    return parse_history(text, str(path))


def history_path(state_dir: str | Path) -> Path:
    """``<state-dir>/governance/backend_history.jsonl``."""
    return Path(state_dir).expanduser() / HISTORY_RELATIVE


class _Backends:
    """The active set (in activation order, most recent last) of one kind."""

    def __init__(self) -> None:
        self.active: list[str] = []

    @property
    def current(self) -> str | None:
        return self.active[-1] if self.active else None

    def apply(self, change: BackendChange, source: str) -> None:
        if change.action == "activate":
            if change.backend in self.active:
                self.active.remove(change.backend)
            self.active.append(change.backend)
        elif change.backend in self.active:
            self.active.remove(change.backend)
        else:
            raise MalformedInput(
                f"{source}: line {change.line}: retires {change.kind} backend"
                f" {change.backend!r}, which is not active at epoch {change.epoch}"
            )


def summarise(
    changes: list[BackendChange], *, since_epoch: int = 0, source: str = "history"
) -> dict[str, Any]:
    """Per kind: ``previous``, ``current``, ``added``, ``removed``, ``changes`` of the cycle."""
    if not _is_int(since_epoch) or since_epoch < 0:
        raise MalformedInput(f"--since-epoch: must be an integer >= 0, got {since_epoch!r}")
    state = {kind: _Backends() for kind in KINDS}
    before: dict[str, tuple[str | None, list[str]]] = {}
    cycle: dict[str, list[BackendChange]] = {kind: [] for kind in KINDS}
    for change in changes:
        if change.epoch >= since_epoch:
            for kind in KINDS:
                before.setdefault(kind, (state[kind].current, list(state[kind].active)))
            cycle[change.kind].append(change)
        state[change.kind].apply(change, source)
    kinds: dict[str, Any] = {}
    for kind in KINDS:
        previous, previous_set = before.get(kind, (state[kind].current, list(state[kind].active)))
        after = state[kind].active
        kinds[kind] = {
            "previous": previous,
            "current": state[kind].current,
            "added": [b for b in after if b not in previous_set],
            "removed": [b for b in previous_set if b not in after],
            "active": list(after),
            "changes": [c.to_dict() for c in cycle[kind]],
        }
    return {
        "since_epoch": since_epoch,
        "changes_in_cycle": sum(len(v) for v in cycle.values()),
        "kinds": kinds,
    }


def _cell(value: str | None | list[str]) -> str:
    if value is None:
        return "none"
    if isinstance(value, list):
        return ", ".join(f"`{v}`" for v in value) if value else "-"
    return f"`{value}`"


def render_markdown(summary: dict[str, Any]) -> str:
    """The summary as a Markdown section ready to paste into the release notes."""
    lines = [
        f"### Backend switches approved this cycle (epoch >= {summary['since_epoch']})",
        "",
        "| kind | previous | current | added | removed |",
        "|---|---|---|---|---|",
    ]
    for kind, row in summary["kinds"].items():
        lines.append(
            f"| {kind} | {_cell(row['previous'])} | {_cell(row['current'])} |"
            f" {_cell(row['added'])} | {_cell(row['removed'])} |"
        )
    lines.append("")
    if not summary["changes_in_cycle"]:
        lines.append("No backend changes were approved during this cycle.")
        return "\n".join(lines)
    lines.append("Changes, in order:")
    lines.append("")
    ordered = sorted(
        (c for row in summary["kinds"].values() for c in row["changes"]),
        key=lambda c: c["epoch"],
    )
    for c in ordered:
        extra = f" (proposal {c['proposal_id']})" if "proposal_id" in c else ""
        note = f": {' '.join(c['note'].split())}" if "note" in c else ""  # one bullet line
        what = f"{c['action']} {c['kind']} `{c['backend']}`"
        lines.append(f"- epoch {c['epoch']}: {what}{extra}{note}")
    return "\n".join(lines)
