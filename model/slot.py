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

Crash leftovers: a temp file is named ``.<target>.releasesim-<pid>-<8 hex>.tmp`` after its
writer's process id. Every write to a target (and ``FileSlot.remove_stale_temporaries``, which
the boot check and installs call) first removes that target's temp files whose writer is
gone: the process id is not running (or is a zombie), or the process now holding it started
after the file was written (the id was reused). A live writer's temp file is never touched.
An install in progress is journalled in ``<binary>.install-pending`` (``InstallIntent``: the
build, the node, the time, how many installs of that build by that node were recorded
before, and the installing process id), so the install a crash interrupted between the
binary swap and its record can be recorded exactly once afterwards
(``releasesim.model.update``). ``pending_install`` reports only a journal whose writer is
gone (the same test as for temp files): an install another running process has under way
is not a leftover.

The audit log is written ahead: ``FileAuditLog.recording`` appends and fsyncs the record
(under an exclusive ``flock``) *before* the rollback runs, and truncates it away again if the
rollback then fails, so a log that cannot be written (full disk) stops the rollback before
the binary is touched, and the log never holds a partial line.

The atomic writes and the temp-file rules live in ``releasesim.model.atomic_files``
(``atomic_write`` and ``remove_stale_temporaries`` are re-exported here). This module must
not import simpy, ``sim`` or ``reports``; it imports only ``model.errors`` and
``model.atomic_files``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from releasesim.model.atomic_files import (
    atomic_write,
    fsync_dir,
    os_reason,
    read_optional,
    remove_stale_temporaries,
    replace_into,
    staged_write,
    truncate_to,
    write_all,
    writer_alive,
)
from releasesim.model.errors import RollbackUnavailable, SlotError

__all__ = [
    "AuditLog",
    "BinarySlot",
    "ENV_AUDIT_LOG",
    "ENV_NODE_BINARY",
    "ENV_PREVIOUS_BINARY",
    "FileAuditLog",
    "FileSlot",
    "InstallIntent",
    "MemoryAuditLog",
    "MemorySlot",
    "SlotError",
    "atomic_write",
    "remove_stale_temporaries",
    "resolve_binary",
]

ENV_NODE_BINARY = "TB_NODE_BINARY"
ENV_PREVIOUS_BINARY = "TB_PREVIOUS_BINARY"
ENV_AUDIT_LOG = "TB_ROLLBACK_AUDIT_LOG"
DEFAULT_BINARY = Path("~/.the_block/bin/the-block")
PREVIOUS_SUFFIX = ".previous"
AUDIT_SUFFIX = ".rollback.jsonl"
INTENT_SUFFIX = ".install-pending"
BINARY_MODE = 0o755


@dataclass(frozen=True, slots=True)
class InstallIntent:
    """An install in progress, journalled next to the binary until it is recorded.

    ``recorded_before`` is how many installs of ``build_hash`` by ``node_id`` the store held
    when the install began: more than that afterwards means the install was recorded.
    ``pid`` is the installing process, stamped by ``FileSlot.begin_install`` (0: unknown).
    """

    build_hash: str
    node_id: str
    ts: float
    recorded_before: int
    pid: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "build_hash": self.build_hash,
            "node_id": self.node_id,
            "ts": self.ts,
            "recorded_before": self.recorded_before,
            "pid": self.pid,
        }


class BinarySlot(Protocol):
    """The node's installed binary and its backup.

    A ``journaled`` slot survives crashes (files) and keeps an ``InstallIntent`` while an
    install is under way; a slot that is not journaled (memory) has nothing to recover.
    """

    journaled: bool

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

    def pending_install(self) -> InstallIntent | None:
        """The journalled install a process that is gone did not finish, if any (None too
        while the journal's writer, another process, is still running)."""
        ...

    def begin_install(self, intent: InstallIntent) -> None:
        """Journal ``intent`` durably before the binary is replaced."""
        ...

    def end_install(self) -> None:
        """Drop the journalled intent (the install was recorded or did not happen)."""
        ...

    def remove_stale_temporaries(self) -> list[Path]:
        """Remove temp files that crashed writers left next to the binary and its backup."""
        ...


class AuditLog(Protocol):
    """Where rollback records go."""

    def append(self, record: dict[str, Any]) -> None: ...

    def recording(self, record: dict[str, Any]) -> contextlib.AbstractContextManager[None]:
        """Write ``record`` before the block (failing before it runs if it cannot be
        written) and take it back if the block raises."""
        ...


# -- in memory (the simulator) ---------------------------------------------------------------
class MemorySlot:
    """A ``BinarySlot`` holding references to two ``bytes`` objects (no copies)."""

    __slots__ = ("_current", "_previous")
    journaled = False

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

    def pending_install(self) -> InstallIntent | None:
        return None  # nothing survives the process, so nothing is ever left pending

    def begin_install(self, intent: InstallIntent) -> None:
        pass

    def end_install(self) -> None:
        pass

    def remove_stale_temporaries(self) -> list[Path]:
        return []

    def __repr__(self) -> str:
        return f"MemorySlot(current={_size(self._current)}, previous={_size(self._previous)})"


def _size(data: bytes | None) -> str:
    return "None" if data is None else f"<{len(data)} bytes>"


class MemoryAuditLog(list[dict[str, Any]]):
    """An ``AuditLog`` that is simply the list of records appended to it."""

    @contextlib.contextmanager
    def recording(self, record: dict[str, Any]) -> Iterator[None]:
        self.append(record)
        try:
            yield
        except BaseException:
            for index in range(len(self) - 1, -1, -1):  # this very record, not an equal one
                if self[index] is record:
                    del self[index]
                    break
            raise


# -- files (a real node) ---------------------------------------------------------------------
class FileSlot:
    """A ``BinarySlot`` over two files: ``binary`` and its backup ``backup``."""

    __slots__ = ("backup", "binary")
    journaled = True

    def __init__(self, binary: Path, previous: Path) -> None:
        self.binary = Path(binary)
        self.backup = Path(previous)

    @property
    def intent_path(self) -> Path:
        """Where an install in progress is journalled: ``<binary>.install-pending``."""
        return _with_suffix(self.binary, INTENT_SUFFIX)

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
        return read_optional(self.binary, "binary")

    def previous(self) -> bytes | None:
        return read_optional(self.backup, "previous binary")

    def install(self, data: bytes) -> None:
        with staged_write(self.binary, data, BINARY_MODE, "binary") as staged:
            current = self.current()
            if current is not None:
                atomic_write(self.backup, current, BINARY_MODE, what="previous binary")
            replace_into(staged, self.binary, "binary")

    def restore_previous(self) -> bytes:
        data = self.previous()
        if data is None:
            raise RollbackUnavailable(f"no previous binary to restore at {self.backup}")
        atomic_write(self.binary, data, BINARY_MODE, what="binary")
        return data

    def pending_install(self) -> InstallIntent | None:
        path = self.intent_path
        try:
            text = read_optional(path, "install journal")
        except SlotError:
            if not path.parent.is_dir():  # no folder, so no journal (and no binary)
                return None
            raise
        if text is None:
            return None
        try:
            fields = json.loads(text)
            intent = InstallIntent(
                str(fields["build_hash"]),
                str(fields["node_id"]),
                float(fields["ts"]),
                int(fields["recorded_before"]),
                int(fields.get("pid", 0)),
            )
            written = path.stat().st_mtime
        except FileNotFoundError:
            return None  # its writer finished meanwhile
        except (ValueError, TypeError, KeyError, AttributeError, OSError) as exc:
            raise SlotError(
                f"install journal {path}: damaged ({type(exc).__name__}); check the install"
                " record of the build in place, then remove the file"
            ) from None
        if intent.pid != os.getpid() and writer_alive(intent.pid, written):
            return None  # another process's install is under way, not a leftover
        return intent

    def begin_install(self, intent: InstallIntent) -> None:
        fields = {**intent.to_dict(), "pid": os.getpid()}
        text = json.dumps(fields).encode("utf-8")
        atomic_write(self.intent_path, text, 0o644, what="install journal")

    def end_install(self) -> None:
        path = self.intent_path
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise SlotError(f"install journal {path}: cannot remove: {os_reason(exc)}") from None
        fsync_dir(path.parent)

    def remove_stale_temporaries(self) -> list[Path]:
        removed: list[Path] = []
        for target in (self.binary, self.backup, self.intent_path):
            removed += remove_stale_temporaries(target)
        return removed


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
        with self.recording(record):
            pass

    @contextlib.contextmanager
    def recording(self, record: dict[str, Any]) -> Iterator[None]:
        """Append ``record`` as one fsync'd line, then run the block; if the block raises,
        truncate the line away again. ``SlotError`` (and the block never runs) when the
        line cannot be written whole: a partial line is truncated away too.

        The log is held under an exclusive ``flock`` throughout, so concurrent appenders
        wait and a truncation never cuts into another writer's line.
        """
        line = (json.dumps(record, separators=(", ", ": ")) + "\n").encode("utf-8")
        fd = -1
        start = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            with contextlib.suppress(OSError):  # a filesystem without locks still gets the line
                fcntl.flock(fd, fcntl.LOCK_EX)
            start = os.fstat(fd).st_size
            write_all(fd, line)
            os.fsync(fd)
        except OSError as exc:
            if fd >= 0:
                truncate_to(fd, start)
                os.close(fd)
            raise SlotError(
                f"rollback audit log {self.path}: cannot append: {os_reason(exc)}"
            ) from None
        try:
            yield
        except BaseException:
            truncate_to(fd, start)
            raise
        finally:
            os.close(fd)  # releases the lock
