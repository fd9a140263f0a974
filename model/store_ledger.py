"""The governance store's install ledger and metric counters (a mixin of ``GovernanceStore``).

Installs: one row per recorded install (``installs``: build hash, node id, time), each
counted by a trigger in ``release_installs_total``; install times of a release never go
backwards (a time earlier than the latest recorded one of the same release is recorded as
that latest time, in the same statement). ``record_install`` records one install;
``record_installs`` records a batch in one transaction with the very same statement per
row and returns the recorded times, so a caller recording thousands of installs (a
simulated fleet) pays for one transaction instead of one per install.
``backwards_installs`` checks, in SQL, that no recorded time of a release goes back.

Metrics: persisted counters ``(name, labels) -> value``.

The mixin uses the store's connection (``_db``), its ``transaction``, its value checks
(``_field``) and ``_require_writable``. Imports only ``model.errors`` and
``model.store_schema``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from releasesim.model.errors import StoreError
from releasesim.model.store_schema import RECORD_INSTALL, InstallRecord, as_number, as_text

RECORD_INSTALL_ROW = RECORD_INSTALL.removesuffix(" RETURNING ts")
"""``RECORD_INSTALL`` without its ``RETURNING`` clause (``executemany`` takes no rows back)."""

BACKWARDS_INSTALLS = (
    "SELECT COUNT(*) FROM (SELECT ts < LAG(ts) OVER (PARTITION BY build_hash ORDER BY seq)"
    " AS back FROM installs) WHERE back"
)


def labels_key(labels: dict[str, str]) -> str:
    """A counter's labels rendered as one sorted key: ``a="1",b="2"``."""
    return ",".join(f'{k}="{labels[k]}"' for k in sorted(labels))


class InstallLedgerMixin:
    """``record_install(s)``, ``installs``, ``backwards_installs`` and the metric counters."""

    _db: sqlite3.Connection
    location: str
    _field: Callable[..., Any]
    _require_writable: Callable[[], None]
    transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]

    # -- installs ------------------------------------------------------------------
    def record_install(self, build_hash: str, node_id: str, ts: float) -> float:
        """Record an install and count ``release_installs_total``; returns the recorded time.

        Install times per release never go backwards: a ``ts`` earlier than the latest
        recorded install of the same release is recorded as that latest time. One
        statement (the counter moves in a trigger), so it is atomic on its own.
        """
        self._require_writable()
        try:
            row = self._db.execute(RECORD_INSTALL, (build_hash, node_id, float(ts))).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"governance store {self.location}: write failed ({exc})") from None
        return self._field("installs", "just recorded", "ts", as_number, row[0])

    def record_installs(self, rows: Sequence[tuple[str, str, float]]) -> list[float]:
        """Record ``(build_hash, node_id, ts)`` installs in order, in one transaction (all or
        none), each exactly as ``record_install`` would; returns the recorded times."""
        if not rows:
            return []
        with self.transaction() as db:
            (before,) = db.execute("SELECT COALESCE(MAX(seq), 0) FROM installs").fetchone()
            db.executemany(RECORD_INSTALL_ROW, rows)
            recorded = db.execute(
                "SELECT seq, ts FROM installs WHERE seq > ? ORDER BY seq", (before,)
            ).fetchall()
        if len(recorded) != len(rows):
            raise StoreError(f"governance store {self.location}: recorded {len(recorded)} of "
                             f"{len(rows)} installs")
        return [self._field("installs", seq, "ts", as_number, ts) for seq, ts in recorded]

    def installs(self, build_hash: str | None = None) -> list[InstallRecord]:
        columns = "seq, build_hash, node_id, ts"
        if build_hash is None:
            rows = self._db.execute(f"SELECT {columns} FROM installs ORDER BY seq")
        else:
            rows = self._db.execute(
                f"SELECT {columns} FROM installs WHERE build_hash = ? ORDER BY seq",
                (build_hash,),
            )
        return [
            InstallRecord(
                self._field("installs", r[0], "build_hash", as_text, r[1]),
                self._field("installs", r[0], "node_id", as_text, r[2]),
                self._field("installs", r[0], "ts", as_number, r[3]),
            )
            for r in rows
        ]

    def backwards_installs(self) -> int:
        """Recorded installs whose time is earlier than the previous recorded install of the
        same release (in recording order): 0 unless the ledger was written around its rule."""
        (count,) = self._db.execute(BACKWARDS_INSTALLS).fetchone()
        return int(count)

    # -- metrics -------------------------------------------------------------------
    def increment(self, name: str, by: float = 1.0, **labels: str) -> None:
        """Add ``by`` to counter ``name`` with ``labels`` (own or enclosing transaction)."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO metrics (name, labels, value) VALUES (?, ?, ?)"
                " ON CONFLICT (name, labels) DO UPDATE SET value = value + excluded.value",
                (name, labels_key(labels), by),
            )

    def counter(self, name: str, **labels: str) -> float:
        """The counter's value (0 when never incremented)."""
        row = self._db.execute(
            "SELECT value, rowid FROM metrics WHERE name = ? AND labels = ?",
            (name, labels_key(labels)),
        ).fetchone()
        return 0.0 if row is None else self._field("metrics", row[1], "value", as_number, row[0])

    def counters(self) -> list[tuple[str, str, float]]:
        """All counters as ``(name, rendered labels, value)``, sorted."""
        rows = self._db.execute(
            "SELECT name, labels, value, rowid FROM metrics ORDER BY name, labels"
        )
        return [
            (
                self._field("metrics", r[3], "name", as_text, r[0]),
                self._field("metrics", r[3], "labels", as_text, r[1]),
                self._field("metrics", r[3], "value", as_number, r[2]),
            )
            for r in rows
        ]


__all__ = ["InstallLedgerMixin", "labels_key"]
