"""Read-only store access for the HTTP explorer: the store root, read-only opens, snapshots.

The explorer never writes a governance store. ``StoreRoot`` confines ``?store=`` to files
under one folder (symlinks and ``..`` resolved first); stores are opened with
``GovernanceStore.open_readonly`` (SQLite ``mode=ro``: no write lock, nothing created or
migrated, an exported file stays byte-identical); ``SnapshotCache`` keeps, per store, an
in-memory ``Snapshot`` of its approved releases and installs, with indexes by proposer and
activation epoch and memoised page entries, so a page that is not in the response cache
costs a slice of memory instead of a full read of the store.

A snapshot is reloaded when the store changed: SQLite's ``PRAGMA data_version`` on a
read-only connection kept for that purpose changes with every commit of any writer, and
the file's device/inode pair changes when the file is replaced. Concurrent requests for a
stale store wait for one reload.

Damaged values (a signer set that is not JSON, a text epoch, a text install time, ...) are
the store's ``StoreCorrupt`` naming the table, column and row, and SQLite failures while
reading become a ``StoreError``: the server answers 503, never 500.

Imports only ``releasesim.model`` (store, explorer queries, errors).
"""

from __future__ import annotations

import bisect
import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from releasesim.model.errors import StoreError
from releasesim.model.explorer import HistoryQuery, InvalidParameter, history_entry
from releasesim.model.store import ApprovedRelease, GovernanceStore, InstallRecord, connect

READ_BUSY_TIMEOUT_S = 2.0
MAX_SNAPSHOTS = 8


class OutsideStoreRoot(InvalidParameter):
    """``?store=`` names a file outside the store root (HTTP 403)."""


@dataclass(frozen=True, slots=True)
class StoreRoot:
    """The folder ``?store=`` must stay inside; relative paths are taken from it."""

    folder: Path

    @classmethod
    def of(cls, folder: str | Path) -> StoreRoot:
        return cls(Path(folder).expanduser().resolve())

    def confine(self, text: str) -> Path:
        """The resolved path of ``text`` (symlinks and ``..`` followed), or an error."""
        try:
            given = Path(text).expanduser()
            resolved = (self.folder / given).resolve()
        except RuntimeError as exc:  # an unknown ~user, a symlink loop
            raise InvalidParameter("store", f"unusable path ({exc})") from None
        except (OSError, ValueError) as exc:
            raise InvalidParameter("store", f"unusable path ({type(exc).__name__})") from None
        if not resolved.is_relative_to(self.folder):
            raise OutsideStoreRoot("store", "outside the explorer's store root; refused")
        return resolved


@contextmanager
def reading(path: Path | str) -> Iterator[None]:
    """Turn a SQLite failure while a store is read (busy, damaged pages) into a ``StoreError``."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise StoreError(f"governance store {path}: busy or unreadable ({exc})") from None
    except sqlite3.Error as exc:
        raise StoreError(f"governance store {path}: not a usable store ({exc})") from None


@dataclass(slots=True)
class Snapshot:
    """One version of a store: approved releases newest first, installs in install order."""

    location: str
    releases: list[ApprovedRelease]
    all_installs: list[InstallRecord]
    _installs_of: dict[str, list[InstallRecord]] = field(default_factory=dict)
    _by_proposer: dict[str, list[ApprovedRelease]] = field(default_factory=dict)
    _entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(cls, store: GovernanceStore) -> Snapshot:
        with reading(store.location), store.snapshot():  # one consistent read
            releases = store.approved_releases()
            installs = store.installs()
        snapshot = cls(store.location, releases, installs)
        for install in installs:
            snapshot._installs_of.setdefault(install.build_hash, []).append(install)
        for release in releases:
            snapshot._by_proposer.setdefault(release.proposer.casefold(), []).append(release)
        return snapshot

    # the two reads ``model.explorer.release_timeline`` makes of a store
    def approved_releases(self) -> list[ApprovedRelease]:
        return self.releases

    def installs(self, build_hash: str | None = None) -> list[InstallRecord]:
        if build_hash is None:
            return self.all_installs
        return self._installs_of.get(build_hash, [])

    def _matching(self, query: HistoryQuery) -> Sequence[ApprovedRelease]:
        """Releases matching the filters, newest first (the order of the store's query)."""
        chosen: Sequence[ApprovedRelease] = self.releases
        if query.proposer is not None:
            chosen = self._by_proposer.get(query.proposer.casefold(), [])
        if query.start_epoch is None and query.end_epoch is None:
            return chosen
        # newest first: activated_epoch never increases along the list
        lowest = query.start_epoch if query.start_epoch is not None else -(2**63)
        highest = query.end_epoch if query.end_epoch is not None else 2**63
        first = bisect.bisect_left(chosen, -highest, key=lambda r: -r.activated_epoch)
        end = bisect.bisect_right(chosen, -lowest, key=lambda r: -r.activated_epoch)
        return chosen[first:end]

    def _entry(self, release: ApprovedRelease) -> dict[str, Any]:
        with self._lock:
            entry = self._entries.get(release.build_hash)
        if entry is None:
            with reading(self.location):
                entry = history_entry(release, self.installs(release.build_hash))
            with self._lock:
                self._entries[release.build_hash] = entry
        return entry

    def history_page(self, query: HistoryQuery) -> dict[str, Any]:
        """``model.explorer.history_page`` of this version of the store."""
        matching = self._matching(query)
        start = query.page * query.page_size
        chosen = matching[start : start + query.page_size]
        return {
            "total": len(matching),
            "page": query.page,
            "page_size": query.page_size,
            "entries": [self._entry(r) for r in chosen],
        }


@dataclass(slots=True)
class _Tracked:
    """A store the cache follows: its change-detecting connection and current snapshot."""

    watch: sqlite3.Connection
    identity: tuple[int, int]
    version: int | None = None
    snapshot: Snapshot | None = None
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.watch.close()


def _identity(path: Path) -> tuple[int, int]:
    try:
        info = os.stat(path)
    except OSError:
        return (-1, -1)
    return (info.st_dev, info.st_ino)


class SnapshotCache:
    """An up-to-date ``Snapshot`` per store path, for at most ``max_stores`` stores (LRU)."""

    def __init__(
        self,
        open_store: Callable[[Path], GovernanceStore] = GovernanceStore.open_readonly,
        max_stores: int = MAX_SNAPSHOTS,
    ) -> None:
        self._open = open_store
        self._max = max_stores
        self._tracked: OrderedDict[Path, _Tracked] = OrderedDict()
        self._lock = threading.Lock()

    def _track(self, path: Path) -> _Tracked:
        identity = _identity(path)
        with self._lock:
            tracked = self._tracked.get(path)
            if tracked is not None and tracked.identity == identity:
                self._tracked.move_to_end(path)
                return tracked
        watch = connect(path, readonly=True, timeout=READ_BUSY_TIMEOUT_S)  # StoreError if missing
        fresh = _Tracked(watch, identity)
        with self._lock:
            replaced = self._tracked.pop(path, None)
            self._tracked[path] = fresh
            evicted = [replaced] if replaced is not None else []
            while len(self._tracked) > self._max:
                evicted.append(self._tracked.popitem(last=False)[1])
        for old in evicted:
            old.close()
        return fresh

    def get(self, path: Path) -> Snapshot:
        """The snapshot of the store at ``path`` as of now (reloaded if it changed)."""
        while True:
            tracked = self._track(path)
            with tracked.lock:
                if tracked.closed:  # evicted by another thread meanwhile: track it again
                    continue
                with reading(path):
                    version = tracked.watch.execute("PRAGMA data_version").fetchone()[0]
                if tracked.snapshot is None or version != tracked.version:
                    with self._open(path) as store:
                        tracked.snapshot = Snapshot.load(store)
                    tracked.version = version
                return tracked.snapshot

    def close(self) -> None:
        with self._lock:
            tracked, self._tracked = list(self._tracked.values()), OrderedDict()
        for item in tracked:
            item.close()
