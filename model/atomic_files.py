"""Atomic file writes, and the temp files a crash leaves behind.

``atomic_write(path, data)``: a temp file in ``path``'s folder, ``fsync``, ``os.replace``,
then an ``fsync`` of the folder; on any failure the temp file is removed, ``path`` is
unchanged, and a one-line ``SlotError`` names the path (never a bare ``OSError``).

A temp file is named ``.<target>.releasesim-<pid>-<8 hex>.tmp`` after its writer's process
id. Every write to a target first removes that target's temp files whose writer is gone
(``remove_stale_temporaries``): the process id is not running (or is a zombie), or the
process now holding it started after the file was written (the id was reused). A live
writer's temp file is never touched. ``writer_alive`` is the same test, for any file that
records its writer's process id (``model.slot``'s install journal).

Split out of ``releasesim.model.slot``, which uses it for the node binary, its backup, the
install journal and the audit log. Imports only ``model.errors``; must not import simpy,
``sim`` or ``reports``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from releasesim.model.errors import SlotError

__all__ = [
    "atomic_write",
    "fsync_dir",
    "os_reason",
    "read_optional",
    "remove_stale_temporaries",
    "replace_into",
    "staged_write",
    "truncate_to",
    "write_all",
    "writer_alive",
]

TEMP_TAG = "releasesim"
PID_REUSE_SLACK_S = 2.0  # process start times from /proc are rounded to the second


# -- atomic file writes ----------------------------------------------------------------------
def atomic_write(path: Path, data: bytes, mode: int = 0o644, *, what: str = "file") -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, replace).

    Creates missing parent folders. On any failure the temp file is removed and ``path``
    is unchanged; raises ``SlotError`` naming ``what`` and the path.
    """
    with staged_write(path, data, mode, what) as staged:
        replace_into(staged, path, what)


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` (a short write, e.g. at a file size limit, is retried, so the
    error that stopped it is raised)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


def truncate_to(fd: int, size: int) -> None:
    """Cut the file back to ``size`` bytes (best effort: a device such as /dev/full has no
    size to restore)."""
    with contextlib.suppress(OSError):
        os.ftruncate(fd, size)
        os.fsync(fd)


# -- temp files and their leftovers -------------------------------------------------------------
_TEMP_TAIL = re.compile(r"(?P<pid>[0-9]{1,10})-[0-9a-f]{8}\.tmp")


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{TEMP_TAG}-"


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new, empty temp file for ``path`` in its folder, named after this process."""
    prefix = _temp_prefix(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    while True:
        temp = path.parent / f"{prefix}{os.getpid()}-{secrets.token_hex(4)}.tmp"
        try:
            return os.open(temp, flags, 0o600), temp
        except FileExistsError:
            continue


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove the temp files of ``path`` (next to it) whose writer is gone; returns them.

    Only files named as ``_create_temp`` names them for this very target are considered,
    and only regular files. A writer is gone when its process id is not running, is a
    zombie, or now belongs to a process that started after the file was last written (the
    id was reused). Without ``/proc`` only the first two tests apply. Never raises: what
    cannot be inspected or removed is left alone.
    """
    path = Path(path)
    prefix = _temp_prefix(path)
    removed: list[Path] = []
    try:
        entries = [e for e in os.scandir(path.parent) if e.name.startswith(prefix)]
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_TAIL.fullmatch(entry.name[len(prefix):])
        if match is None:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode) or writer_alive(int(match["pid"]), info.st_mtime):
            continue
        with contextlib.suppress(OSError):
            os.unlink(entry.path)
            removed.append(Path(entry.path))
    if removed:
        fsync_dir(path.parent)
    return removed


def writer_alive(pid: int, written: float) -> bool:
    """Could process ``pid`` still be the writer of a temp file last written at ``written``?"""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # running, as another user
    except OSError:
        return True  # cannot tell: keep the file
    started = _process_start(pid)
    if started is None:
        return True
    state, start_time = started
    if state in ("Z", "X"):  # exited, not yet reaped
        return False
    return written >= start_time - PID_REUSE_SLACK_S


def _process_start(pid: int) -> tuple[str, float] | None:
    """(state, start time as a Unix time) of ``pid`` from ``/proc``; None when unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read().decode("ascii", "replace")
        with open("/proc/stat", "rb") as handle:
            boot = next(
                float(line.split()[1]) for line in handle if line.startswith(b"btime ")
            )
        fields = text[text.rindex(")") + 2 :].split()
        return fields[0], boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


@contextlib.contextmanager
def staged_write(path: Path, data: bytes, mode: int, what: str) -> Iterator[Path]:
    """A fsync'd temp file holding ``data`` next to ``path``; removed unless replaced.

    Stale temp files of ``path`` left by crashed writers are removed first.
    """
    path = Path(path)
    temp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        fd, temp = _create_temp(path)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
    except OSError as exc:
        _discard(temp)
        raise SlotError(f"{what} {path}: cannot write: {os_reason(exc)}") from None
    try:
        yield temp
    finally:
        _discard(temp)


def replace_into(staged: Path, path: Path, what: str) -> None:
    try:
        os.replace(staged, path)
    except OSError as exc:
        raise SlotError(f"{what} {path}: cannot replace: {os_reason(exc)}") from None
    fsync_dir(path.parent)


def _discard(temp: Path | None) -> None:
    if temp is not None:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)


def fsync_dir(folder: Path) -> None:
    """Make a rename durable; not every platform can open a folder, which is fine."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_optional(path: Path, what: str) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SlotError(f"{what} {path}: cannot read: {os_reason(exc)}") from None


def os_reason(exc: OSError) -> str:
    return exc.strerror or " ".join(str(exc).split())
