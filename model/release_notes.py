"""Release notes: the runtime, transport and storage backend policies governance approved.

Two history formats, told apart by the first non-blank character of the file:

**The original node's dependency-policy history** (``[``; default path
``<state-dir>/governance/history/dependency_policy.json``): a JSON array of policy records::

    [{"epoch": 12, "proposal_id": 7, "kind": "runtime", "allowed": ["inhouse"]}, ...]

``epoch`` and ``proposal_id`` are integers >= 0; ``kind`` is ``runtime`` | ``transport`` |
``storage`` (the original's ``runtime_backend`` | ``transport_provider`` | ``storage_engine``
are accepted as the same kinds); ``allowed`` is the list of backends the policy allows from
then on (a set: order and repeats do not matter; it may be empty). Any other key, a missing
key or a wrong type is an error naming the file and ``index N`` (0-based). Records are
applied in ``(epoch, proposal_id, kind)`` order, as the original does.

**releasesim's earlier backend log** (anything else; ``<state-dir>/governance/
backend_history.jsonl``): JSON lines ``{"epoch", "kind", "backend", "action":
"activate"|"retire"}`` with optional ``proposal_id`` and ``note``; ``#`` comments and blank
lines allowed; errors name ``line N``. Each line becomes a policy record whose ``allowed`` set
is the active set after it (retiring a backend that is not active is an error); lines are
applied in epoch order (file order for equal epochs).

**Summary.** The window is every record with ``epoch >= since_epoch`` and, when
``since_proposal`` is given, ``proposal_id >= since_proposal`` (a record without a proposal
id is then outside). Each record of the window is an *update*: the allowed set before it
(``previous``, ``None`` if the kind had no policy yet), after it (``current``), and what it
``added`` and ``removed``. Per kind, ``previous`` is the allowed set before the window's first
update, ``current`` the set after its last, ``added``/``removed`` their difference; a kind with
no update in the window has ``previous == current`` (its policy at the end of the history).

**Text.** Every string must be valid Unicode: a JSON escape of a lone surrogate
(``"\\ud800"``) in a note or backend is an error naming the line or index, since no
UTF-8 output can hold it. The Markdown never carries a terminal escape sequence or control
character (``strip_terminal_escapes``: ANSI/ECMA-48 sequences, C0 but newline and tab, DEL,
C1) from a note or the file name; the JSON summary keeps notes exactly (JSON escapes them).

Pure parsing and summarising; the only I/O is ``load_history`` reading one file.
Imports only ``releasesim.model.errors`` and ``releasesim.model.strict_json``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from releasesim.model.errors import InputError, MalformedInput
from releasesim.model.strict_json import load_json_strict

KINDS = ("runtime", "transport", "storage")
LABELS = {"runtime": "Runtime backend", "transport": "Transport provider",
          "storage": "Storage engine"}
KIND_ALIASES = {"runtime_backend": "runtime", "transport_provider": "transport",
                "storage_engine": "storage"}
HEADING = "## Governance Dependency Policy Updates"
HISTORY_RELATIVE = Path("governance") / "history" / "dependency_policy.json"
LEGACY_HISTORY_RELATIVE = Path("governance") / "backend_history.jsonl"
POLICY_FORMAT = "dependency_policy"
LOG_FORMAT = "backend_log"
ACTIONS = ("activate", "retire")
_POLICY_KEYS = ("epoch", "proposal_id", "kind", "allowed")
_REQUIRED = ("epoch", "kind", "backend", "action")
_OPTIONAL = ("proposal_id", "note")
_TERMINAL_SEQUENCE = re.compile(  # ECMA-48 (ANSI) escape sequences, 7-bit and 8-bit forms
    r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"  # CSI: colours, cursor, erase
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC,
    # DCS, SOS, PM, APC strings (window title, clipboard, ...) up to BEL or ST
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]?"  # any other escape sequence (or a lone ESC)
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C0 but tab and newline, DEL, C1


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    """One approved dependency policy: from ``epoch`` on, ``kind`` allows ``allowed``."""

    epoch: int
    proposal_id: int | None
    kind: str
    allowed: tuple[str, ...]  # sorted, distinct
    position: str
    note: str | None = None


@dataclass(frozen=True, slots=True)
class History:
    """A parsed history file: which format it was and its records in application order."""

    source: str
    format: str
    records: tuple[PolicyRecord, ...]


@dataclass(frozen=True, slots=True)
class BackendChange:
    """One line of the earlier backend log (activate or retire one backend)."""

    epoch: int
    kind: str
    backend: str
    action: str
    line: int
    proposal_id: int | None = None
    note: str | None = None


def strip_terminal_escapes(text: str) -> str:
    """``text`` without terminal escape sequences and control characters (newline and tab
    stay): what is left is the printable text a terminal would have shown around them."""
    return _CONTROL.sub("", _TERMINAL_SEQUENCE.sub("", text))


def _unicode_problem(value: str) -> str | None:
    """Why ``value`` cannot be written as UTF-8 (a lone surrogate), or ``None``."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"lone surrogate U+{ord(value[exc.start]):04X} at character {exc.start + 1}"
    return None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _backend(value: object, where: str, what: str = "backend") -> str:
    """A backend name: a non-empty plain string that cannot break a Markdown table."""
    if not isinstance(value, str) or not value.strip():
        raise MalformedInput(f"{where}: {what} must be a non-empty string, got {value!r}")
    problem = _unicode_problem(value)
    if problem is not None:
        raise MalformedInput(f"{where}: {what} is not valid Unicode ({problem})")
    if any(not c.isprintable() for c in value) or any(c in value for c in "`|"):
        raise MalformedInput(
            f"{where}: {what} must be a plain name (no control characters, '`' or '|'),"
            f" got {value!r}"
        )
    return value.strip()


# -- the original node's dependency-policy history ------------------------------------------
def parse_policy_history(text: str, source: str) -> list[PolicyRecord]:
    """Parse the JSON array of policy records; ``MalformedInput`` names ``source`` and index."""
    document = load_json_strict(text, source)
    if not isinstance(document, list):
        raise MalformedInput(f"{source}: expected a JSON array of policy records")
    records = []
    for index, item in enumerate(document):
        where = f"{source}: index {index}"
        if not isinstance(item, dict):
            raise MalformedInput(f"{where}: expected an object, got {type(item).__name__}")
        unknown = sorted(set(item) - set(_POLICY_KEYS))
        if unknown:
            raise MalformedInput(f"{where}: unknown key {unknown[0]!r}")
        missing = [k for k in _POLICY_KEYS if k not in item]
        if missing:
            raise MalformedInput(f"{where}: missing key {missing[0]!r}")
        for key in ("epoch", "proposal_id"):
            if not _is_int(item[key]) or item[key] < 0:
                raise MalformedInput(f"{where}: {key} must be an integer >= 0, got {item[key]!r}")
        kind = KIND_ALIASES.get(item["kind"], item["kind"])
        if kind not in KINDS:
            raise MalformedInput(
                f"{where}: kind must be one of {', '.join(KINDS)}, got {item['kind']!r}"
            )
        allowed = item["allowed"]
        if not isinstance(allowed, list):
            raise MalformedInput(f"{where}: allowed must be a list of backends, got {allowed!r}")
        names = {_backend(name, where, f"allowed[{i}]") for i, name in enumerate(allowed)}
        records.append(PolicyRecord(
            item["epoch"], item["proposal_id"], kind, tuple(sorted(names)), f"index {index}",
        ))
    records.sort(key=lambda r: (r.epoch, r.proposal_id or 0, r.kind))
    return records


# -- releasesim's earlier backend log (JSON lines) ------------------------------------------
def parse_backend_log(text: str, source: str) -> list[BackendChange]:
    """Parse the JSON-lines backend log; ``MalformedInput`` names ``source`` and line."""
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
        backend = _backend(backend, where)
        if action not in ACTIONS:
            raise MalformedInput(
                f"{where}: action must be one of {', '.join(ACTIONS)}, got {action!r}"
            )
        proposal_id = record.get("proposal_id")
        if proposal_id is not None and (not _is_int(proposal_id) or proposal_id < 0):
            raise MalformedInput(
                f"{where}: proposal_id must be an integer >= 0, got {proposal_id!r}"
            )
        note = record.get("note")
        if note is not None and not isinstance(note, str):
            raise MalformedInput(f"{where}: note must be a string, got {note!r}")
        problem = None if note is None else _unicode_problem(note)
        if problem is not None:
            raise MalformedInput(f"{where}: note is not valid Unicode ({problem})")
        changes.append(BackendChange(epoch, kind, backend, action, lineno, proposal_id, note))
    changes.sort(key=lambda c: c.epoch)
    return changes


def backend_log_records(changes: list[BackendChange], source: str) -> list[PolicyRecord]:
    """Each change as a policy record whose ``allowed`` set is the active set after it."""
    active: dict[str, set[str]] = {kind: set() for kind in KINDS}
    records = []
    for change in changes:
        backends = active[change.kind]
        if change.action == "activate":
            backends.add(change.backend)
        elif change.backend in backends:
            backends.remove(change.backend)
        else:
            raise MalformedInput(
                f"{source}: line {change.line}: retires {change.kind} backend"
                f" {change.backend!r}, which is not active at epoch {change.epoch}"
            )
        records.append(PolicyRecord(
            change.epoch, change.proposal_id, change.kind, tuple(sorted(backends)),
            f"line {change.line}", change.note,
        ))
    return records


# -- reading --------------------------------------------------------------------------------
def parse_history(text: str, source: str) -> History:
    """Either format, told apart by the first non-blank character (``[``: the original's)."""
    if text.lstrip()[:1] == "[":
        return History(source, POLICY_FORMAT, tuple(parse_policy_history(text, source)))
    changes = parse_backend_log(text, source)
    return History(source, LOG_FORMAT, tuple(backend_log_records(changes, source)))


def load_history(path: str | Path) -> History:
    """Read and parse a history file; ``InputError`` if it cannot be read."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"dependency policy history {path}: does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"dependency policy history {path}: cannot read: {exc}") from None
    return parse_history(text, str(path))


def history_path(state_dir: str | Path) -> Path:
    """The history file of a node state folder.

    ``<state-dir>/governance/history/dependency_policy.json`` (the original node's), or
    ``<state-dir>/governance/backend_history.jsonl`` when only that one exists.
    """
    state = Path(state_dir).expanduser()
    original, legacy = state / HISTORY_RELATIVE, state / LEGACY_HISTORY_RELATIVE
    if not original.exists() and legacy.is_file():
        return legacy
    return original


# -- summary --------------------------------------------------------------------------------
def _delta(previous: tuple[str, ...] | None, current: tuple[str, ...] | None) -> dict[str, Any]:
    before, after = set(previous or ()), set(current or ())
    return {
        "previous": None if previous is None else list(previous),
        "current": None if current is None else list(current),
        "added": sorted(after - before),
        "removed": sorted(before - after),
    }


def summarise(
    history: History, *, since_epoch: int = 0, since_proposal: int | None = None
) -> dict[str, Any]:
    """Per kind and per update: ``previous``, ``current``, ``added``, ``removed`` (see above)."""
    if not _is_int(since_epoch) or since_epoch < 0:
        raise MalformedInput(f"--since-epoch: must be an integer >= 0, got {since_epoch!r}")
    if since_proposal is not None and (not _is_int(since_proposal) or since_proposal < 0):
        raise MalformedInput(f"--since-proposal: must be an integer >= 0, got {since_proposal!r}")
    prior: dict[str, tuple[str, ...] | None] = dict.fromkeys(KINDS)
    start: dict[str, tuple[str, ...] | None] = {}
    end: dict[str, tuple[str, ...]] = {}
    updates = []
    for record in history.records:
        in_window = record.epoch >= since_epoch and (
            since_proposal is None
            or (record.proposal_id is not None and record.proposal_id >= since_proposal)
        )
        if in_window:
            start.setdefault(record.kind, prior[record.kind])
            end[record.kind] = record.allowed
            update = {
                "kind": record.kind, "label": LABELS[record.kind], "epoch": record.epoch,
                "proposal_id": record.proposal_id, **_delta(prior[record.kind], record.allowed),
            }
            if record.note is not None:
                update["note"] = record.note
            updates.append(update)
        prior[record.kind] = record.allowed
    kinds = {}
    for kind in KINDS:
        previous, current = (start[kind], end[kind]) if kind in end else (prior[kind],) * 2
        kinds[kind] = {
            "label": LABELS[kind], **_delta(previous, current),
            "updates": sum(1 for u in updates if u["kind"] == kind),
        }
    return {
        "history": history.source, "format": history.format,
        "since_epoch": since_epoch, "since_proposal": since_proposal,
        "kinds": kinds, "updates": updates,
    }


# -- Markdown -------------------------------------------------------------------------------
def _backends(values: list[str] | None, empty: str = "(none)") -> str:
    if values is None:
        return "(unset)"
    return ", ".join(f"`{v}`" for v in values) if values else empty


def _update_line(update: dict[str, Any]) -> str:
    proposal = "" if update["proposal_id"] is None else f" (proposal #{update['proposal_id']})"
    where = f"in epoch {update['epoch']}{proposal}"
    changes = [f"{what} {_backends(update[what])}" for what in ("added", "removed")
               if update[what]]
    delta = f" ({'; '.join(changes)})" if changes else ""
    if update["previous"] is None:
        text = (f"{update['label']} policy initialised {where}:"
                f" allowed backends {_backends(update['current'])}{delta}")
    else:
        text = (f"{update['label']} policy updated {where}:"
                f" {_backends(update['previous'])} -> {_backends(update['current'])}{delta}")
    note = " ".join(strip_terminal_escapes(update.get("note") or "").split())
    note = f" Note: {note}" if note else ""
    return f"- {text}.{note}"


def render_markdown(summary: dict[str, Any]) -> str:
    """The summary as a Markdown section ready to paste into the release notes."""
    window = [f"epoch >= {summary['since_epoch']}"] if summary["since_epoch"] else []
    if summary["since_proposal"] is not None:
        window.append(f"proposal >= {summary['since_proposal']}")
    lines = [
        HEADING,
        "",
        f"Window: {' and '.join(window) or 'the whole history'}."
        f" Source: {' '.join(strip_terminal_escapes(summary['history']).splitlines())}",
        "",
        "| policy | previous | current | added | removed |",
        "|---|---|---|---|---|",
    ]
    for row in summary["kinds"].values():
        lines.append(
            f"| {row['label']} | {_backends(row['previous'])} | {_backends(row['current'])} |"
            f" {_backends(row['added'], '-')} | {_backends(row['removed'], '-')} |"
        )
    lines.append("")
    if not summary["updates"]:
        lines.append("No governance-approved dependency backend changes during this window.")
    else:
        lines.append("Governance approved these dependency backend updates, in order:")
        lines.append("")
        lines.extend(_update_line(u) for u in summary["updates"])
    # the free text (notes, file name) is stripped above, the rest is checked on parsing;
    # one more pass keeps any other field from ever reaching the terminal as an escape
    return strip_terminal_escapes("\n".join(lines))
