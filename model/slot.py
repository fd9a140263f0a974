"""The node's binary slot (installed binary plus its backup) and the rollback audit log.

``BinarySlot`` is what ``releasesim.model.update`` installs into and rolls back: the current binary
and the previous one kept as the backup. ``FileSlot`` is the real node's pair of files;
``MemorySlot`` holds two references to ``bytes`` objects, so a simulated fleet of ten
thousand nodes shares one copy of each artifact.

File locations (``FileSlot.resolve``, ``FileAuditLog.resolve``), first match wins:

- binary: ``--binary PATH``, else ``TB_NODE_BINARY``, else ``~/.the_block/bin/the-block``;
- backup: ``TB_PREVIOUS_BINARY``, else ``<binary>.previous``;
- rollback audit log: ``--audit-log PATH``, else ``TB_ROLLBACK_AUDIT_LOG``, else
  ``<binary>.rollback.jsonl`` (one JSON object per line: time, node, rolled_back_hash,
  restored_hash, reason).

Writes are atomic: a temp file in the target's folder, ``fsync``, ``os.replace``, then an
``fsync`` of the folder; binaries keep mode 0o755. ``FileSlot.install`` writes the new
binary to a temp file first, then copies the current binary to the backup, then replaces
the current binary, so a crash or a full disk at any step leaves a runnable binary in place.
A rollback copies the backup over the current binary and keeps the backup (so a second
rollback is harmless). Filesystem failures are ``SlotError`` (one line naming the path),
never a bare ``OSError``.

This module must not import simpy, ``sim`` or ``reports``; it imports only ``model.errors``.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from releasesim.model.errors import RollbackUnavailable, SlotError

ENV_NODE_BINARY = "TB_NODE_BINARY"
ENV_PREVIOUS_BINARY = "TB_PREVIOUS_BINARY"
ENV_AUDIT_LOG = "TB_ROLLBACK_AUDIT_LOG"
DEFAULT_BINARY = Path("~/.the_block/bin/the-block")
PREVIOUS_SUFFIX = ".previous"
AUDIT_SUFFIX = ".rollback.jsonl"
BINARY_MODE = 0o755


class BinarySlot(Protocol):
    """The node's installed binary and its backup."""

    def current(self) -> bytes | None:
        """The installed binary, or None when nothing is installed."""
        ...

    def previous(self) -> bytes | None:
        """The backup kept by the last install, or None."""
        ...

    def install(self, data: bytes) -> None:
        """The current binary becomes the backup and ``data`` becomes current."""
        ...

    def restore_previous(self) -> bytes:
        """The backup becomes current (and stays the backup); ``RollbackUnavailable`` if none."""
        ...


class AuditLog(Protocol):
    """Where rollback records go."""

    def append(self, record: dict[str, Any]) -> None: ...


# -- in memory (the simulator) ---------------------------------------------------------------
class MemorySlot:
    """A ``BinarySlot`` holding references to two ``bytes`` objects (no copies)."""

    __slots__ = ("_current", "_previous")

    def __init__(self, current: bytes | None = None, previous: bytes | None = None) -> None:
        self._current = current
        self._previous = previous

    def current(self) -> bytes | None:
        return self._current

    def previous(self) -> bytes | None:
        return self._previous

    def install(self, data: bytes) -> None:
        self._current, self._previous = data, self._current

    def restore_previous(self) -> bytes:
        if self._previous is None:
            raise RollbackUnavailable("no previous binary to restore (in-memory slot)")
        self._current = self._previous
        return self._previous

    def __repr__(self) -> str:
        return f"MemorySlot(current={_size(self._current)}, previous={_size(self._previous)})"


def _size(data: bytes | None) -> str:
    return "None" if data is None else f"<{len(data)} bytes>"


class MemoryAuditLog(list[dict[str, Any]]):
    """An ``AuditLog`` that is simply the list of records appended to it."""


# -- files (a real node) ---------------------------------------------------------------------
class FileSlot:
    """A ``BinarySlot`` over two files: ``binary`` and its backup ``backup``."""

    __slots__ = ("backup", "binary")

    def __init__(self, binary: Path, previous: Path) -> None:
        self.binary = Path(binary)
        self.backup = Path(previous)

    @classmethod
    def resolve(cls, binary_arg: str | None, env: Mapping[str, str] | None = None) -> FileSlot:
        """Binary from ``--binary``, ``TB_NODE_BINARY`` or the default; backup from
        ``TB_PREVIOUS_BINARY`` or ``<binary>.previous``."""
        binary = resolve_binary(binary_arg, env)
        env = os.environ if env is None else env
        backup = env.get(ENV_PREVIOUS_BINARY, "").strip()
        previous = (
            _expand(backup, ENV_PREVIOUS_BINARY)
            if backup
            else _with_suffix(binary, PREVIOUS_SUFFIX)
        )
        return cls(binary, previous)

    def __repr__(self) -> str:
        return f"FileSlot(binary={str(self.binary)!r}, previous={str(self.backup)!r})"

    def current(self) -> bytes | None:
        return _read_optional(self.binary, "binary")

    def previous(self) -> bytes | None:
        return _read_optional(self.backup, "previous binary")

    def install(self, data: bytes) -> None:
        with _staged(self.binary, data, BINARY_MODE, "binary") as staged:
            current = self.current()
            if current is not None:
                atomic_write(self.backup, current, BINARY_MODE, what="previous binary")
            _replace(staged, self.binary, "binary")

    def restore_previous(self) -> bytes:
        data = self.previous()
        if data is None:
            raise RollbackUnavailable(f"no previous binary to restore at {self.backup}")
        atomic_write(self.binary, data, BINARY_MODE, what="binary")
        return data


def resolve_binary(binary_arg: str | None, env: Mapping[str, str] | None = None) -> Path:
    """The node binary: ``--binary``, else ``TB_NODE_BINARY``, else the default path."""
    env = os.environ if env is None else env
    for value, what in ((binary_arg, "--binary"), (env.get(ENV_NODE_BINARY), ENV_NODE_BINARY)):
        if value is not None and value.strip():
            return _expand(value.strip(), what)
    return _expand(str(DEFAULT_BINARY), "default binary")


def _expand(text: str, what: str) -> Path:
    """``Path(text).expanduser()``; an unknown ``~user`` or a NUL byte is a ``SlotError``."""
    try:
        path = Path(text).expanduser()
    except RuntimeError as exc:
        raise SlotError(f"{what} {text!r}: unusable path ({exc})") from None
    if "\0" in str(path):
        raise SlotError(f"{what} {text!r}: unusable path (embedded NUL byte)")
    return path


def _with_suffix(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


class FileAuditLog:
    """An ``AuditLog`` appending one JSON object per line to ``path`` (fsync'd)."""

    __slots__ = ("path",)

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def resolve(
        cls,
        path_arg: str | None = None,
        *,
        binary: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> FileAuditLog:
        """``--audit-log``, else ``TB_ROLLBACK_AUDIT_LOG``, else ``<binary>.rollback.jsonl``
        (``binary`` defaults to ``resolve_binary(None, env)``)."""
        env = os.environ if env is None else env
        for value, what in ((path_arg, "--audit-log"), (env.get(ENV_AUDIT_LOG), ENV_AUDIT_LOG)):
            if value is not None and value.strip():
                return cls(_expand(value.strip(), what))
        return cls(_with_suffix(binary or resolve_binary(None, env), AUDIT_SUFFIX))

    def __repr__(self) -> str:
        return f"FileAuditLog({str(self.path)!r})"

    def append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, separators=(", ", ": ")) + "\n").encode("utf-8")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)  # one write: concurrent appenders never interleave a line
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise SlotError(
                f"rollback audit log {self.path}: cannot append: {_reason(exc)}"
            ) from None


# -- atomic file writes ----------------------------------------------------------------------
def atomic_write(path: Path, data: bytes, mode: int = 0o644, *, what: str = "file") -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, replace).

    Creates missing parent folders. On any failure the temp file is removed and ``path``
    is unchanged; raises ``SlotError`` naming ``what`` and the path.
    """
    with _staged(path, data, mode, what) as staged:
        _replace(staged, path, what)


@contextlib.contextmanager
def _staged(path: Path, data: bytes, mode: int, what: str) -> Iterator[Path]:
    """A fsync'd temp file holding ``data`` next to ``path``; removed unless replaced."""
    path = Path(path)
    temp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        temp = Path(name)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
    except OSError as exc:
        _discard(temp)
        raise SlotError(f"{what} {path}: cannot write: {_reason(exc)}") from None
    try:
        yield temp
    finally:
        _discard(temp)


def _replace(staged: Path, path: Path, what: str) -> None:
    try:
        os.replace(staged, path)
    except OSError as exc:
        raise SlotError(f"{what} {path}: cannot replace: {_reason(exc)}") from None
    _fsync_dir(path.parent)


def _discard(temp: Path | None) -> None:
    if temp is not None:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable; not every platform can open a folder, which is fine."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _read_optional(path: Path, what: str) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SlotError(f"{what} {path}: cannot read: {_reason(exc)}") from None


def _reason(exc: OSError) -> str:
    return exc.strerror or " ".join(str(exc).split())
