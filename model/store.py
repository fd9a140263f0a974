"""The governance store: SQLite tables for proposals, votes, approved releases,
per-node installs and persisted metric counters.

A file store serves the CLI (WAL journal, ``BEGIN IMMEDIATE`` transactions with a busy
timeout, so two CLI processes at once neither corrupt nor lose anything); an in-memory
store serves each simulated replication. Every write runs in one transaction. The
schema is versioned (``PRAGMA user_version``) and stamped with an application id, so a
corrupt, foreign or newer file gives a clear ``StoreError`` instead of a traceback.

Rows are mapped to frozen records here, never inside domain logic. Imports only
``releasesim.model.errors`` and ``releasesim.model.quorum`` (for the ``Attestation`` record).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from releasesim.model.errors import StoreError
from releasesim.model.quorum import Attestation

SCHEMA_VERSION = 1
APPLICATION_ID = 0x52534D31  # "RSM1"
BUSY_TIMEOUT_S = 30.0
STATUSES = ("open", "activated", "rejected")
CHOICES = ("yes", "no", "abstain")

_SCHEMA = """
CREATE TABLE proposals (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    build_hash      TEXT NOT NULL UNIQUE,
    proposer        TEXT NOT NULL,
    threshold       INTEGER NOT NULL,
    signer_set      TEXT NOT NULL,
    attestations    TEXT NOT NULL,
    created_epoch   INTEGER NOT NULL,
    deadline_epoch  INTEGER NOT NULL,
    vote_quorum     REAL NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('open', 'activated', 'rejected')),
    activated_epoch INTEGER
);
CREATE TABLE votes (
    proposal_id INTEGER NOT NULL REFERENCES proposals(id),
    voter       TEXT NOT NULL,
    weight      REAL NOT NULL,
    choice      TEXT NOT NULL CHECK (choice IN ('yes', 'no', 'abstain')),
    epoch       INTEGER NOT NULL,
    PRIMARY KEY (proposal_id, voter)
);
CREATE TABLE approved_releases (
    build_hash      TEXT PRIMARY KEY,
    proposal_id     INTEGER NOT NULL REFERENCES proposals(id),
    proposer        TEXT NOT NULL,
    activated_epoch INTEGER NOT NULL,
    threshold       INTEGER NOT NULL,
    signer_set      TEXT NOT NULL,
    attestations    TEXT NOT NULL
);
CREATE TABLE installs (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    build_hash TEXT NOT NULL,
    node_id    TEXT NOT NULL,
    ts         REAL NOT NULL
);
CREATE INDEX installs_by_release ON installs (build_hash, ts);
CREATE TABLE metrics (
    name   TEXT NOT NULL,
    labels TEXT NOT NULL DEFAULT '',
    value  REAL NOT NULL,
    PRIMARY KEY (name, labels)
);
CREATE TRIGGER count_install AFTER INSERT ON installs BEGIN
    INSERT INTO metrics (name, labels, value) VALUES ('release_installs_total', '', 1)
    ON CONFLICT (name, labels) DO UPDATE SET value = value + 1;
END;
"""
_RECORD_INSTALL = (
    "INSERT INTO installs (build_hash, node_id, ts) VALUES (?1, ?2, MAX(?3, COALESCE("
    "(SELECT MAX(ts) FROM installs WHERE build_hash = ?1), ?3))) RETURNING ts"
)
_TABLES = frozenset({"proposals", "votes", "approved_releases", "installs", "metrics"})


def _schema_statements() -> list[str]:
    """The schema split into complete statements (trigger bodies hold semicolons)."""
    statements, buffer = [], ""
    for line in _SCHEMA.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    return statements


@dataclass(frozen=True, slots=True)
class Proposal:
    """A ``ReleaseVote`` proposal as persisted."""

    id: int
    build_hash: str
    proposer: str
    threshold: int
    signer_set: tuple[str, ...]
    attestations: tuple[Attestation, ...]
    created_epoch: int
    deadline_epoch: int
    vote_quorum: float
    status: str
    activated_epoch: int | None


@dataclass(frozen=True, slots=True)
class Vote:
    """One voter's current vote on a proposal (a later vote replaces an earlier one)."""

    proposal_id: int
    voter: str
    weight: float
    choice: str
    epoch: int


@dataclass(frozen=True, slots=True)
class ApprovedRelease:
    """A build hash published by governance with its quorum data and activation epoch."""

    build_hash: str
    proposal_id: int
    proposer: str
    activated_epoch: int
    signer_set: tuple[str, ...]
    threshold: int
    attestations: tuple[Attestation, ...]


@dataclass(frozen=True, slots=True)
class InstallRecord:
    """A node's recorded install of an approved build."""

    build_hash: str
    node_id: str
    ts: float


def _labels_key(labels: dict[str, str]) -> str:
    return ",".join(f'{k}="{labels[k]}"' for k in sorted(labels))


def _dump_attestations(attestations: tuple[Attestation, ...]) -> str:
    return json.dumps([a.to_dict() for a in attestations])


def _load_attestations(text: str) -> tuple[Attestation, ...]:
    return tuple(Attestation(a["signer"], a["signature"]) for a in json.loads(text))


class GovernanceStore:
    """SQLite-backed governance state. Use ``open(path)`` or ``memory()``."""

    def __init__(self, connection: sqlite3.Connection, location: str) -> None:
        self._db = connection
        self.location = location
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
    def open(cls, path: str | Path, *, create: bool = True) -> GovernanceStore:
        """Open (and with ``create``, initialise) the SQLite file at ``path``."""
        path = Path(path).expanduser()
        where = f"governance store {path}"
        if path.is_dir():
            raise StoreError(f"{where}: is a directory, not a store file")
        if not path.exists():
            if not create:
                raise StoreError(f"{where}: does not exist")
            if not path.parent.is_dir():
                raise StoreError(f"{where}: folder {path.parent} does not exist")
        try:
            db = sqlite3.connect(
                str(path), isolation_level=None, timeout=BUSY_TIMEOUT_S, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(f"{where}: cannot open: {exc}") from None
        store = cls(db, str(path))
        try:
            store._initialise(create=create)
            db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as exc:
            db.close()
            raise StoreError(f"{where}: not a usable SQLite governance store ({exc})") from None
        except StoreError:
            db.close()
            raise
        return store

    def _initialise(self, *, create: bool = True) -> None:
        db = self._db
        db.execute("PRAGMA foreign_keys=ON")
        with self.transaction():
            app_id = db.execute("PRAGMA application_id").fetchone()[0]
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = {
                r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
            } - {"sqlite_sequence"}
            where = f"governance store {self.location}"
            if not tables and app_id == 0 and version == 0:
                if not create:  # opening to read must never write a schema into a file
                    raise StoreError(f"{where}: an empty file or database, not a releasesim store")
                for statement in _schema_statements():
                    db.execute(statement)
                db.execute(f"PRAGMA application_id={APPLICATION_ID}")
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                return
            if app_id != APPLICATION_ID:
                raise StoreError(f"{where}: a foreign SQLite database, not a releasesim store")
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{where}: schema version {version} is newer than this releasesim "
                    f"supports ({SCHEMA_VERSION}); upgrade releasesim"
                )
            if not tables >= _TABLES:
                missing = ", ".join(sorted(_TABLES - tables))
                raise StoreError(f"{where}: damaged store, missing tables: {missing}")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> GovernanceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``); nested calls join the outer one."""
        if self._in_transaction:
            yield self._db
            return
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
        vote_quorum: float,
    ) -> int:
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO proposals (build_hash, proposer, threshold, signer_set, attestations,"
                " created_epoch, deadline_epoch, vote_quorum, status)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'open')",
                (
                    build_hash,
                    proposer,
                    threshold,
                    json.dumps(list(signer_set)),
                    _dump_attestations(attestations),
                    created_epoch,
                    deadline_epoch,
                    vote_quorum,
                ),
            )
            return int(cursor.lastrowid or 0)

    _PROPOSAL_COLUMNS = (
        "id, build_hash, proposer, threshold, signer_set, attestations, created_epoch,"
        " deadline_epoch, vote_quorum, status, activated_epoch"
    )

    @staticmethod
    def _proposal(row: tuple) -> Proposal:
        return Proposal(
            id=row[0],
            build_hash=row[1],
            proposer=row[2],
            threshold=row[3],
            signer_set=tuple(json.loads(row[4])),
            attestations=_load_attestations(row[5]),
            created_epoch=row[6],
            deadline_epoch=row[7],
            vote_quorum=row[8],
            status=row[9],
            activated_epoch=row[10],
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
        with self.transaction() as db:
            db.execute(
                "INSERT INTO votes (proposal_id, voter, weight, choice, epoch)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (proposal_id, voter) DO UPDATE SET"
                " weight = excluded.weight, choice = excluded.choice, epoch = excluded.epoch",
                (vote.proposal_id, vote.voter, vote.weight, vote.choice, vote.epoch),
            )

    def votes(self, proposal_id: int) -> list[Vote]:
        rows = self._db.execute(
            "SELECT proposal_id, voter, weight, choice, epoch FROM votes"
            " WHERE proposal_id = ? ORDER BY voter",
            (proposal_id,),
        )
        return [Vote(*r) for r in rows]

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
                    _dump_attestations(release.attestations),
                ),
            )

    _APPROVED_COLUMNS = (
        "build_hash, proposal_id, proposer, activated_epoch, signer_set, threshold, attestations"
    )

    @staticmethod
    def _approved(row: tuple) -> ApprovedRelease:
        return ApprovedRelease(
            build_hash=row[0],
            proposal_id=row[1],
            proposer=row[2],
            activated_epoch=row[3],
            signer_set=tuple(json.loads(row[4])),
            threshold=row[5],
            attestations=_load_attestations(row[6]),
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
        return 0 if row is None or row[0] is None else int(row[0])

    def latest_threshold(self) -> int | None:
        """The threshold of the most recently activated release, if any."""
        row = self._db.execute(
            "SELECT threshold FROM approved_releases"
            " ORDER BY activated_epoch DESC, proposal_id DESC LIMIT 1"
        ).fetchone()
        return None if row is None else int(row[0])

    # -- installs ------------------------------------------------------------------
    def record_install(self, build_hash: str, node_id: str, ts: float) -> float:
        """Record an install and count ``release_installs_total``; returns the recorded time.

        Install times per release never go backwards: a ``ts`` earlier than the latest
        recorded install of the same release is recorded as that latest time. One
        statement (the counter moves in a trigger), so it is atomic on its own.
        """
        try:
            row = self._db.execute(_RECORD_INSTALL, (build_hash, node_id, float(ts))).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"governance store {self.location}: write failed ({exc})") from None
        return float(row[0])

    def installs(self, build_hash: str | None = None) -> list[InstallRecord]:
        if build_hash is None:
            rows = self._db.execute("SELECT build_hash, node_id, ts FROM installs ORDER BY seq")
        else:
            rows = self._db.execute(
                "SELECT build_hash, node_id, ts FROM installs WHERE build_hash = ? ORDER BY seq",
                (build_hash,),
            )
        return [InstallRecord(*r) for r in rows]

    # -- metrics -------------------------------------------------------------------
    def increment(self, name: str, by: float = 1.0, **labels: str) -> None:
        """Add ``by`` to counter ``name`` with ``labels`` (own or enclosing transaction)."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO metrics (name, labels, value) VALUES (?, ?, ?)"
                " ON CONFLICT (name, labels) DO UPDATE SET value = value + excluded.value",
                (name, _labels_key(labels), by),
            )

    def counter(self, name: str, **labels: str) -> float:
        """The counter's value (0 when never incremented)."""
        row = self._db.execute(
            "SELECT value FROM metrics WHERE name = ? AND labels = ?", (name, _labels_key(labels))
        ).fetchone()
        return 0.0 if row is None else float(row[0])

    def counters(self) -> list[tuple[str, str, float]]:
        """All counters as ``(name, rendered labels, value)``, sorted."""
        rows = self._db.execute("SELECT name, labels, value FROM metrics ORDER BY name, labels")
        return [(r[0], r[1], float(r[2])) for r in rows]

    # -- export ----------------------------------------------------------------------
    def backup_to(self, path: str | Path) -> None:
        """Copy the whole store to a new SQLite file (export a simulated replication)."""
        target = sqlite3.connect(str(path))
        try:
            self._db.backup(target)
        finally:
            target.close()
