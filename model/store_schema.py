"""The governance store's schema, records and values (``GovernanceStore`` in ``model.store``
uses them and re-exports the public names).

- ``SCHEMA``/``MIGRATIONS``: the tables of schema ``SCHEMA_VERSION`` and the statements
  that bring an older store up to it (version 1 -> 2 adds the exact stake columns).
- The frozen records ``Proposal``, ``Vote``, ``ApprovedRelease``, ``InstallRecord``.
- ``to_stake``: a vote weight or vote quorum as an exact ``fractions.Fraction``. Why
  ``Fraction``: sums and comparisons of any decimal or float input are exact, with no
  precision setting (``Decimal`` rounds at its context precision, so 1e308 + 1 would
  round; a float sum overflows to ``inf`` or drops small weights next to 2**53; integers
  alone would refuse the fractional weights the CLI has always accepted).
- ``StoreCorrupt``: a value read from the store is not what the schema promises (a signer
  set that is not JSON, a weight stored as text, ...). ``GovernanceStore`` raises it
  naming the table, column and row; the ``as_*`` checks say what is wrong with a value
  (``ValueError``).

Imports only ``model.errors`` and ``model.quorum`` (for the ``Attestation`` record).
"""

from __future__ import annotations

import json
import math
import numbers
import re
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from releasesim.model.errors import MalformedInput, StoreError
from releasesim.model.quorum import Attestation

SCHEMA_VERSION = 2
APPLICATION_ID = 0x52534D31  # "RSM1"
STATUSES = ("open", "activated", "rejected")
CHOICES = ("yes", "no", "abstain")
MAX_STAKE = Fraction(sys.float_info.max)  # the largest weight or quorum (as before: a float's)

SCHEMA = """
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
    activated_epoch INTEGER,
    vote_quorum_exact TEXT
);
CREATE TABLE votes (
    proposal_id INTEGER NOT NULL REFERENCES proposals(id),
    voter       TEXT NOT NULL,
    weight      REAL NOT NULL,
    choice      TEXT NOT NULL CHECK (choice IN ('yes', 'no', 'abstain')),
    epoch       INTEGER NOT NULL,
    weight_exact TEXT,
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
RECORD_INSTALL = (
    "INSERT INTO installs (build_hash, node_id, ts) VALUES (?1, ?2, MAX(?3, COALESCE("
    "(SELECT MAX(ts) FROM installs WHERE build_hash = ?1), ?3))) RETURNING ts"
)
TABLES = frozenset({"proposals", "votes", "approved_releases", "installs", "metrics"})
# Statements that bring a store of version N to N + 1 (run under the write lock).
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (  # exact stake: version 1 kept weights and quorums only as floats
        "ALTER TABLE proposals ADD COLUMN vote_quorum_exact TEXT",
        "ALTER TABLE votes ADD COLUMN weight_exact TEXT",
    ),
}


def schema_statements() -> list[str]:
    """The schema split into complete statements (trigger bodies hold semicolons)."""
    statements, buffer = [], ""
    for line in SCHEMA.splitlines(keepends=True):
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
    vote_quorum: Fraction
    status: str
    activated_epoch: int | None


@dataclass(frozen=True, slots=True)
class Vote:
    """One voter's current vote on a proposal (a later vote replaces an earlier one).

    ``weight`` is exact (``to_stake``); any int, float, ``Decimal`` or text given is
    converted when the vote is stored."""

    proposal_id: int
    voter: str
    weight: Fraction
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


def dump_attestations(attestations: tuple[Attestation, ...]) -> str:
    return json.dumps([a.to_dict() for a in attestations])



_STAKE_TEXT = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_STORED_STAKE = re.compile(r"[0-9]{1,2600}(?:/[1-9][0-9]{0,1300})?")
_MAX_STAKE_TEXT = "1.7976931348623157e308"


class StoreCorrupt(StoreError):
    """A value in the store is not what the schema promises (exit code 2, HTTP 503)."""


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def to_stake(value: object, what: str = "weight") -> Fraction:
    """``value`` as an exact stake (a ``Fraction``): a weight or a vote quorum.

    Takes ints, floats (their exact binary value), ``Fraction``, ``Decimal`` and ASCII
    decimal text (``"2"``, ``"0.5"``, ``"1e18"``; no sign, no ``_``, no ``inf``/``nan``).
    Why ``Fraction``: sums and comparisons of any decimal or float input are exact with no
    precision setting (``Decimal`` rounds at its context precision; integers alone would
    refuse the fractional weights the CLI has always accepted). Finite, >= 0 and at most
    ``MAX_STAKE``; otherwise ``MalformedInput`` naming ``what``.
    """
    shown = _shown(value)
    bad = MalformedInput(f"{what}: must be a finite number >= 0, got {shown}")
    if isinstance(value, str):
        if len(value) > 1200 or not _STAKE_TEXT.fullmatch(value):
            raise MalformedInput(
                f"{what}: not a plain decimal number (digits, '.', exponent): {shown}"
            )
        number = Decimal(value)
        if number > Decimal(_MAX_STAKE_TEXT):
            raise MalformedInput(f"{what}: must be at most {_MAX_STAKE_TEXT}, got {value}")
        if int(number.as_tuple().exponent) < -1200:
            raise MalformedInput(f"{what}: too many decimal places: {shown}")
        return Fraction(number)
    if isinstance(value, bool):
        raise bad
    if isinstance(value, Fraction):
        exact = value
    elif isinstance(value, numbers.Integral):
        exact = Fraction(int(value))
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise bad
        exact = Fraction(value)
    elif isinstance(value, numbers.Real):
        if not math.isfinite(float(value)):
            raise bad
        exact = Fraction(float(value))
    else:
        raise MalformedInput(f"{what}: not a number: {shown}")
    if exact < 0:
        raise bad
    if exact > MAX_STAKE:
        raise MalformedInput(f"{what}: must be at most {_MAX_STAKE_TEXT}, got {shown}")
    return exact


def stake_text(stake: Fraction) -> str:
    """How a stake is stored: ``"7"`` or ``"15/2"`` (exact)."""
    return str(stake)


# -- checks of stored values (each raises ValueError/TypeError naming what is wrong) ----------
def as_integer(value: object) -> int:
    if type(value) is not int:
        raise ValueError(f"expected an integer, got {_shown(value)}")
    return value


def as_optional_integer(value: object) -> int | None:
    return None if value is None else as_integer(value)


def as_text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {_shown(value)}")
    return value


def as_number(value: object) -> float:
    if type(value) not in (int, float) or not math.isfinite(value):  # type: ignore[arg-type]
        raise ValueError(f"expected a finite number, got {_shown(value)}")
    return float(value)  # type: ignore[arg-type]


def one_of(options: tuple[str, ...]) -> Callable[[object], str]:
    def check(value: object) -> str:
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {_shown(value)}")
        return str(value)

    return check


def _json(value: object) -> Any:
    try:
        return json.loads(as_text(value))
    except RecursionError:
        raise ValueError(f"JSON nested too deeply: {_shown(value)}") from None
    except ValueError:
        raise ValueError(f"not JSON: {_shown(value)}") from None


def as_keys(value: object) -> tuple[str, ...]:
    keys = _json(value)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ValueError(f"expected a JSON list of key strings, got {_shown(value)}")
    return tuple(keys)


def load_attestations(value: object) -> tuple[Attestation, ...]:
    items = _json(value)
    if not isinstance(items, list) or not all(
        isinstance(a, dict) and isinstance(a.get("signer"), str)
        and isinstance(a.get("signature"), str) for a in items
    ):
        raise ValueError(
            f"expected a JSON list of {{signer, signature}} strings, got {_shown(value)}"
        )
    return tuple(Attestation(a["signer"], a["signature"]) for a in items)


def as_stake(approximate: object, exact: object) -> Fraction:
    """A stored weight/quorum: the exact text when present (version 2), else the float."""
    approx = as_number(approximate)
    if approx < 0:
        raise ValueError(f"expected a number >= 0, got {_shown(approximate)}")
    if exact is None:  # a row from a version 1 store: the float is all there is
        return Fraction(approx)
    if not isinstance(exact, str) or not _STORED_STAKE.fullmatch(exact):
        raise ValueError(f"exact value {_shown(exact)} is not an integer or a ratio")
    stake = Fraction(exact)
    if stake > MAX_STAKE or float(stake) != approx:
        raise ValueError(f"{_shown(approximate)} disagrees with its exact value {_shown(exact)}")
    return stake
