"""The governance store: SQLite tables for proposals, votes, approved releases,
per-node installs and persisted metric counters.

Two ways to open a file store:

- ``GovernanceStore.open(path)`` (a **writer**): WAL journal, ``BEGIN IMMEDIATE``
  transactions with a busy timeout, so two CLI processes at once neither corrupt nor lose
  anything. It creates the schema in a new or empty file (with ``create``) and migrates an
  older schema, both under the write lock; opening an up-to-date store takes no lock.
- ``GovernanceStore.open_readonly(path)`` (a **reader**): SQLite ``mode=ro`` and
  ``query_only``; it creates, migrates and rewrites nothing (an exported rollback-journal
  file stays byte-identical) and never waits for a writer in WAL mode. A store that needs
  migrating is reported (``StoreError``), never rewritten; every write method refuses.

An in-memory store serves each simulated replication. The schema is versioned
(``PRAGMA user_version``) and stamped with an application id, so a corrupt, foreign
(including a SQLite file holding only a view), older (for readers) or newer file gives a
one-line ``StoreError`` before anything is written into it. A damaged value met while
reading (a signer set that is not JSON, a weight stored as text, ...) is a
``StoreCorrupt`` naming the table, column and row.

Stake is exact: vote weights and vote quorums are ``fractions.Fraction`` (see ``to_stake``),
stored as text (``weight_exact``, ``vote_quorum_exact``) next to a float copy for plain SQL
readers, so a tally never rounds or overflows.

Rows are mapped to frozen records here, never inside domain logic; the schema, the
records and the value checks live in ``model.store_schema`` (re-exported here); the
install ledger and the metric counters in ``model.store_ledger``. Imports only
``model.errors``, ``model.quorum`` (for the ``Attestation`` record), ``model.store_ledger``
and ``model.store_schema``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from releasesim.model.errors import DuplicateRelease, StoreError
from releasesim.model.quorum import Attestation
from releasesim.model.store_ledger import InstallLedgerMixin
from releasesim.model.store_schema import (
    APPLICATION_ID,
    CHOICES,
    MAX_STAKE,
    MIGRATIONS,
    SCHEMA_VERSION,
    STATUSES,
    TABLES,
    ApprovedRelease,
    InstallRecord,
    Proposal,
    StoreCorrupt,
    Vote,
    as_integer,
    as_keys,
    as_optional_integer,
    as_stake,
    as_text,
    dump_attestations,
    load_attestations,
    one_of,
    schema_statements,
    stake_text,
    to_stake,
)

__all__ = [
    "APPLICATION_ID", "BUSY_TIMEOUT_S", "CHOICES", "MAX_STAKE", "READ_BUSY_TIMEOUT_S",
    "SCHEMA_VERSION", "STATUSES", "ApprovedRelease", "GovernanceStore", "InstallRecord",
    "connect",
    "Proposal", "StoreCorrupt", "Vote", "stake_text", "to_stake",
]

BUSY_TIMEOUT_S = 30.0
READ_BUSY_TIMEOUT_S = 5.0  # a reader waits only for a rollback-journal commit, never in WAL


def connect(
    path: Path, *, readonly: bool, create: bool = False, timeout: float | None = None
) -> sqlite3.Connection:
    """A SQLite connection to the store file at ``path``: ``mode=ro`` for a reader (SQLite
    itself then refuses every write, journal switches too), else a writer's connection
    (a missing file only with ``create``, in an existing folder). Raises a one-line
    ``StoreError`` for a folder, a missing file or a path the OS refuses."""
    where = f"governance store {path}"
    try:
        if path.is_dir():
            raise StoreError(f"{where}: is a directory, not a store file")
        if not path.exists():
            if readonly or not create:
                raise StoreError(f"{where}: does not exist")
            if not path.parent.is_dir():
                raise StoreError(f"{where}: folder {path.parent} does not exist")
    except OSError as exc:  # a name too long, a folder that cannot be searched, ...
        raise StoreError(f"{where}: cannot open: {exc.strerror}") from None
    try:
        if readonly:
            return sqlite3.connect(
                f"{path.absolute().as_uri()}?mode=ro", uri=True, isolation_level=None,
                timeout=READ_BUSY_TIMEOUT_S if timeout is None else timeout,
                check_same_thread=False,
            )
        return sqlite3.connect(
            str(path), isolation_level=None,
            timeout=BUSY_TIMEOUT_S if timeout is None else timeout, check_same_thread=False,
        )
    except (sqlite3.Error, ValueError) as exc:
        raise StoreError(f"{where}: cannot open: {exc}") from None


class GovernanceStore(InstallLedgerMixin):
    """SQLite-backed governance state: ``open(path)`` (writer), ``open_readonly(path)``
    (reader) or ``memory()``."""

    def __init__(
        self, connection: sqlite3.Connection, location: str, *, readonly: bool = False
    ) -> None:
        self._db = connection
        self.location = location
        self.readonly = readonly
        self.migrated_from: int | None = None  # the schema version a writer migrated from
        self._in_transaction = False

    # -- opening ---------------------------------------------------------------
    @classmethod
    def memory(cls) -> GovernanceStore:
        """A fresh in-memory store (one per simulated replication)."""
        db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        store = cls(db, ":memory:")
        store._initialise()
        return store

    @classmethod
    def open(
        cls, path: str | Path, *, create: bool = True, readonly: bool = False
    ) -> GovernanceStore:
        """Open the SQLite file at ``path``: a writer, or with ``readonly`` a reader.

        A writer creates the schema in a missing or empty file only with ``create`` and
        migrates an older schema; a reader (``readonly``; ``create`` is ignored) does
        neither and refuses such files. Foreign, newer and damaged files are refused
        before anything is written into them. Every problem is a one-line ``StoreError``.
        """
        path = Path(path).expanduser()
        where = f"governance store {path}"
        db = connect(path, readonly=readonly, create=create)
        store = cls(db, str(path), readonly=readonly)
        try:
            store._initialise(create=create and not readonly)
            if not readonly:
                db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as exc:
            db.close()
            raise StoreError(f"{where}: not a usable SQLite governance store ({exc})") from None
        except StoreError:
            db.close()
            raise
        return store

    @classmethod
    def open_readonly(cls, path: str | Path) -> GovernanceStore:
        """Open the store at ``path`` to read only (``open(path, readonly=True)``)."""
        return cls.open(path, readonly=True)

    def _initialise(self, *, create: bool = True) -> None:
        db = self._db
        db.execute("PRAGMA foreign_keys=ON")
        if self.readonly:
            db.execute("PRAGMA query_only=ON")
            with self.snapshot():
                self._plan(create=False, migrate=False)
            return
        if self._plan(create=create, migrate=True) == "ready":
            return  # an up-to-date store: no write lock taken
        with self.transaction():  # create or migrate under the write lock, checking again:
            plan = self._plan(create=create, migrate=True)  # another process may have won
            if plan == "create":
                for statement in schema_statements():
                    db.execute(statement)
                db.execute(f"PRAGMA application_id={APPLICATION_ID}")
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            elif plan == "migrate":
                version = int(db.execute("PRAGMA user_version").fetchone()[0])
                for step in range(version, SCHEMA_VERSION):
                    for statement in MIGRATIONS[step]:
                        db.execute(statement)
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                self.migrated_from = version

    def _plan(self, *, create: bool, migrate: bool) -> str:
        """``ready``, ``create`` or ``migrate``; ``StoreError`` for a file not to be used."""
        db = self._db
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        objects = [
            (kind, name) for kind, name in db.execute("SELECT type, name FROM sqlite_master")
            if not name.startswith("sqlite_")
        ]
        tables = {name for kind, name in objects if kind == "table"}
        where = f"governance store {self.location}"
        if not objects and app_id == 0 and version == 0:
            if not create:  # a reader, or a command that must not create, writes no schema
                raise StoreError(f"{where}: an empty file or database, not a releasesim store")
            return "create"
        if app_id != APPLICATION_ID:
            held = ", ".join(f"{kind} {name}" for kind, name in objects[:3])
            detail = f"it holds {held}" if held else f"application id {app_id:#x}"
            raise StoreError(f"{where}: a foreign SQLite database, not a releasesim store"
                             f" ({detail}{', ...' if len(objects) > 3 else ''})")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{where}: schema version {version} is newer than this releasesim "
                f"supports ({SCHEMA_VERSION}); upgrade releasesim"
            )
        if version < 1:
            raise StoreError(f"{where}: damaged store, unknown schema version {version}")
        if not tables >= TABLES:
            missing = ", ".join(sorted(TABLES - tables))
            raise StoreError(f"{where}: damaged store, missing tables: {missing}")
        if version < SCHEMA_VERSION:
            if not migrate:
                raise StoreError(
                    f"{where}: schema version {version} needs migrating to version "
                    f"{SCHEMA_VERSION}, which a read-only command never does; run "
                    f"'releasesim gov migrate-store --state {self.location}' first"
                )
            return "migrate"
        return "ready"

    def _damaged(self, table: str, column: str, row: object, problem: str) -> StoreCorrupt:
        return StoreCorrupt(
            f"governance store {self.location}: damaged value in {table}.{column}"
            f" (row {row}): {problem}"
        )

    def _field(
        self, table: str, row: object, column: str, check: Callable[..., Any], *values: object
    ) -> Any:
        """``check(*values)``, or a ``StoreCorrupt`` naming ``table.column`` and the row."""
        try:
            return check(*values)
        except (ValueError, TypeError, OverflowError) as exc:
            raise self._damaged(table, column, row, str(exc)) from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> GovernanceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require_writable(self) -> None:
        if self.readonly:
            raise StoreError(f"governance store {self.location}: opened read-only; not written")

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """One read transaction (a consistent view of several queries; in WAL mode it never
        waits for a writer); joins an enclosing transaction or snapshot."""
        if self._in_transaction or self._db.in_transaction:
            yield self._db
            return
        self._db.execute("BEGIN")
        try:
            yield self._db
        finally:
            if self._db.in_transaction:
                self._db.execute("COMMIT")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``); nested calls join the outer one.

        ``StoreError`` on a read-only store."""
        if self._in_transaction:
            yield self._db
            return
        self._require_writable()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"governance store {self.location}: busy or locked ({exc})") from None
        self._in_transaction = True
        try:
            yield self._db
        except sqlite3.Error as exc:
            self._db.execute("ROLLBACK")
            raise StoreError(f"governance store {self.location}: write failed ({exc})") from None
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")
        finally:
            self._in_transaction = False

    # -- proposals ---------------------------------------------------------------
    def insert_proposal(
        self,
        *,
        build_hash: str,
        proposer: str,
        threshold: int,
        signer_set: tuple[str, ...],
        attestations: tuple[Attestation, ...],
        created_epoch: int,
        deadline_epoch: int,
        vote_quorum: object,
    ) -> int:
        """Insert an ``open`` proposal; ``DuplicateRelease`` when the build hash is already
        proposed (also when another process proposed it after the caller checked)."""
        quorum = to_stake(vote_quorum, "vote quorum")
        with self.transaction() as db:
            try:
                cursor = db.execute(
                    "INSERT INTO proposals (build_hash, proposer, threshold, signer_set,"
                    " attestations, created_epoch, deadline_epoch, vote_quorum, status,"
                    " vote_quorum_exact) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'open', ?)",
                    (
                        build_hash,
                        proposer,
                        threshold,
                        json.dumps(list(signer_set)),
                        dump_attestations(attestations),
                        created_epoch,
                        deadline_epoch,
                        float(quorum),
                        stake_text(quorum),
                    ),
                )
            except sqlite3.IntegrityError as exc:
                if "proposals.build_hash" not in str(exc):
                    raise
                raise DuplicateRelease(f"build {build_hash} has already been proposed") from None
            return int(cursor.lastrowid or 0)

    _PROPOSAL_COLUMNS = (
        "id, build_hash, proposer, threshold, signer_set, attestations, created_epoch,"
        " deadline_epoch, vote_quorum, status, activated_epoch, vote_quorum_exact"
    )

    def _proposal(self, row: tuple) -> Proposal:
        def field(column: str, check: Callable[..., Any], *values: object) -> Any:
            return self._field("proposals", row[0], column, check, *values)

        return Proposal(
            id=field("id", as_integer, row[0]),
            build_hash=field("build_hash", as_text, row[1]),
            proposer=field("proposer", as_text, row[2]),
            threshold=field("threshold", as_integer, row[3]),
            signer_set=field("signer_set", as_keys, row[4]),
            attestations=field("attestations", load_attestations, row[5]),
            created_epoch=field("created_epoch", as_integer, row[6]),
            deadline_epoch=field("deadline_epoch", as_integer, row[7]),
            vote_quorum=field("vote_quorum", as_stake, row[8], row[11]),
            status=field("status", one_of(STATUSES), row[9]),
            activated_epoch=field("activated_epoch", as_optional_integer, row[10]),
        )

    def get_proposal(self, proposal_id: int) -> Proposal | None:
        row = self._db.execute(
            f"SELECT {self._PROPOSAL_COLUMNS} FROM proposals WHERE id = ?", (proposal_id,)
        ).fetchone()
        return None if row is None else self._proposal(row)

    def find_proposal(self, build_hash: str) -> Proposal | None:
        row = self._db.execute(
            f"SELECT {self._PROPOSAL_COLUMNS} FROM proposals WHERE build_hash = ?", (build_hash,)
        ).fetchone()
        return None if row is None else self._proposal(row)

    def proposals(self) -> list[Proposal]:
        rows = self._db.execute(f"SELECT {self._PROPOSAL_COLUMNS} FROM proposals ORDER BY id")
        return [self._proposal(r) for r in rows]

    def set_status(self, proposal_id: int, status: str, activated_epoch: int | None) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE proposals SET status = ?, activated_epoch = ? WHERE id = ?",
                (status, activated_epoch, proposal_id),
            )

    # -- votes -------------------------------------------------------------------
    def put_vote(self, vote: Vote) -> None:
        weight = to_stake(vote.weight, "--weight")
        with self.transaction() as db:
            db.execute(
                "INSERT INTO votes (proposal_id, voter, weight, choice, epoch, weight_exact)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (proposal_id, voter) DO UPDATE SET"
                " weight = excluded.weight, choice = excluded.choice, epoch = excluded.epoch,"
                " weight_exact = excluded.weight_exact",
                (vote.proposal_id, vote.voter, float(weight), vote.choice, vote.epoch,
                 stake_text(weight)),
            )

    def votes(self, proposal_id: int) -> list[Vote]:
        rows = self._db.execute(
            "SELECT rowid, proposal_id, voter, weight, choice, epoch, weight_exact FROM votes"
            " WHERE proposal_id = ? ORDER BY voter",
            (proposal_id,),
        )
        return [self._vote(r) for r in rows]

    def _vote(self, row: tuple) -> Vote:
        def field(column: str, check: Callable[..., Any], *values: object) -> Any:
            return self._field("votes", row[0], column, check, *values)

        return Vote(
            proposal_id=field("proposal_id", as_integer, row[1]),
            voter=field("voter", as_text, row[2]),
            weight=field("weight", as_stake, row[3], row[6]),
            choice=field("choice", one_of(CHOICES), row[4]),
            epoch=field("epoch", as_integer, row[5]),
        )

    # -- approved releases ---------------------------------------------------------
    def put_approved(self, release: ApprovedRelease) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO approved_releases (build_hash, proposal_id, proposer,"
                " activated_epoch, threshold, signer_set, attestations)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    release.build_hash,
                    release.proposal_id,
                    release.proposer,
                    release.activated_epoch,
                    release.threshold,
                    json.dumps(list(release.signer_set)),
                    dump_attestations(release.attestations),
                ),
            )

    _APPROVED_COLUMNS = (
        "build_hash, proposal_id, proposer, activated_epoch, signer_set, threshold,"
        " attestations, rowid"
    )

    def _approved(self, row: tuple) -> ApprovedRelease:
        def field(column: str, check: Callable[..., Any], value: object) -> Any:
            return self._field("approved_releases", row[7], column, check, value)

        return ApprovedRelease(
            build_hash=field("build_hash", as_text, row[0]),
            proposal_id=field("proposal_id", as_integer, row[1]),
            proposer=field("proposer", as_text, row[2]),
            activated_epoch=field("activated_epoch", as_integer, row[3]),
            signer_set=field("signer_set", as_keys, row[4]),
            threshold=field("threshold", as_integer, row[5]),
            attestations=field("attestations", load_attestations, row[6]),
        )

    def get_approved(self, build_hash: str) -> ApprovedRelease | None:
        row = self._db.execute(
            f"SELECT {self._APPROVED_COLUMNS} FROM approved_releases WHERE build_hash = ?",
            (build_hash.lower(),),
        ).fetchone()
        return None if row is None else self._approved(row)

    def approved_releases(self) -> list[ApprovedRelease]:
        rows = self._db.execute(
            f"SELECT {self._APPROVED_COLUMNS} FROM approved_releases"
            " ORDER BY activated_epoch DESC, proposal_id DESC"
        )
        return [self._approved(r) for r in rows]

    def latest_epoch(self) -> int:
        """The latest epoch at which anything was recorded (proposal, vote, activation); 0."""
        row = self._db.execute(
            "SELECT MAX(e) FROM (SELECT MAX(created_epoch) AS e FROM proposals"
            " UNION ALL SELECT MAX(activated_epoch) FROM proposals"
            " UNION ALL SELECT MAX(epoch) FROM votes)"
        ).fetchone()
        if row is None or row[0] is None:
            return 0
        return self._field("proposals", "holding the latest", "created_epoch, activated_epoch"
                           " or votes.epoch", as_integer, row[0])

    def latest_threshold(self) -> int | None:
        """The threshold of the most recently activated release, if any."""
        row = self._db.execute(
            "SELECT threshold, rowid FROM approved_releases"
            " ORDER BY activated_epoch DESC, proposal_id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return self._field("approved_releases", row[1], "threshold", as_integer, row[0])

    # -- export ----------------------------------------------------------------------
    def backup_to(self, path: str | Path) -> None:
        """Copy the whole store to a new SQLite file (export a simulated replication)."""
        target = sqlite3.connect(str(path))
        try:
            self._db.backup(target)
        finally:
            target.close()
