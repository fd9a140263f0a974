"""The explorer's release history and install timeline, read from the governance store.

``release_history`` lists every approved release (the ``GET /releases`` page of
``../shared/reference/release-flow-semantics.md``): proposer, activation epoch, signer set
and threshold, the recorded attestations **re-verified** with ``model.quorum.evaluate_quorum``
(so a row names the missing and invalid signers), install count, per-node install times
and the latest install. Filters: proposer (case-insensitive), activation epoch range
(inclusive); 0-based pages; ``page_size`` is capped at ``MAX_PAGE_SIZE`` (a larger request
is served with the cap, and the page says so in its ``page_size``).

``release_timeline`` buckets installs over time per release, for charts.

``persist_release_history`` writes the proposer/activation metadata of every approved release
to the ``release_history`` table (``CREATE TABLE IF NOT EXISTS``; the governance schema
tolerates extra tables), as the seed's explorer handler does.

``parse_history_query`` / ``parse_timeline_query`` turn raw query parameters (strings) into
validated arguments; every problem is an ``InvalidParameter`` naming the parameter.

Imports only ``model.errors``, ``model.quorum`` and ``model.store`` (no simpy, no sim).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from releasesim.model.errors import MalformedInput, StoreError
from releasesim.model.quorum import evaluate_quorum
from releasesim.model.store import ApprovedRelease, GovernanceStore, InstallRecord

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100
DEFAULT_BUCKET_S = 3600
MAX_INT = 2**63 - 1
HISTORY_PARAMETERS = ("page", "page_size", "proposer", "start_epoch", "end_epoch")
TIMELINE_PARAMETERS = ("bucket_s",)
_INTEGER = re.compile(r"-?[0-9]+")

_HISTORY_TABLE = """
CREATE TABLE IF NOT EXISTS release_history (
    build_hash       TEXT PRIMARY KEY,
    proposal_id      INTEGER NOT NULL,
    proposer         TEXT NOT NULL,
    proposer_key     TEXT NOT NULL,
    activated_epoch  INTEGER NOT NULL,
    threshold        INTEGER NOT NULL,
    signer_count     INTEGER NOT NULL,
    install_count    INTEGER NOT NULL,
    last_install_ts  INTEGER
)
"""


class InvalidParameter(MalformedInput):
    """A query parameter is unusable; ``parameter`` names it (HTTP 400, CLI exit 2)."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """Validated arguments of ``release_history``."""

    proposer: str | None = None
    start_epoch: int | None = None
    end_epoch: int | None = None
    page: int = 0
    page_size: int = DEFAULT_PAGE_SIZE

    def key(self) -> tuple[Any, ...]:
        """A normalised cache key (proposer case-folded, page size capped)."""
        proposer = None if self.proposer is None else self.proposer.casefold()
        return (proposer, self.start_epoch, self.end_epoch, self.page, self.page_size)


@contextmanager
def _store_errors(store: GovernanceStore) -> Iterator[None]:
    """Turn a SQLite failure while reading or writing the store into a ``StoreError``."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"governance store {store.location}: unreadable ({exc})") from None


# -- validation ------------------------------------------------------------------------------
def _int_arg(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameter(name, f"expected an integer, got {value!r}")
    if value < minimum:
        raise InvalidParameter(name, f"must be >= {minimum}, got {value}")
    if value > MAX_INT:
        raise InvalidParameter(name, f"must be <= {MAX_INT}, got {value}")
    return value


def _parse_int_text(name: str, text: str, minimum: int) -> int:
    stripped = text.strip()
    if not _INTEGER.fullmatch(stripped) or len(stripped) > 20:
        shown = text if len(text) <= 24 else text[:24] + "..."
        raise InvalidParameter(name, f"not an integer: {shown!r}")
    return _int_arg(name, int(stripped), minimum)


def validate_history_query(
    proposer: str | None = None,
    start_epoch: int | None = None,
    end_epoch: int | None = None,
    page: int = 0,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> HistoryQuery:
    """Check the arguments of ``release_history``; caps ``page_size`` at ``MAX_PAGE_SIZE``."""
    if proposer is not None:
        if not isinstance(proposer, str) or not proposer.strip():
            raise InvalidParameter("proposer", "must be a non-empty string")
        proposer = proposer.strip()
    if start_epoch is not None:
        start_epoch = _int_arg("start_epoch", start_epoch, 0)
    if end_epoch is not None:
        end_epoch = _int_arg("end_epoch", end_epoch, 0)
    if start_epoch is not None and end_epoch is not None and start_epoch > end_epoch:
        raise InvalidParameter(
            "start_epoch", f"start_epoch {start_epoch} is after end_epoch {end_epoch}"
        )
    page = _int_arg("page", page, 0)
    page_size = min(_int_arg("page_size", page_size, 1), MAX_PAGE_SIZE)
    return HistoryQuery(proposer, start_epoch, end_epoch, page, page_size)


def _single_values(
    params: Mapping[str, Sequence[str]], allowed: Sequence[str]
) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, given in params.items():
        if name not in allowed:
            raise InvalidParameter(
                name, f"unknown parameter (allowed: {', '.join(allowed)})"
            )
        if len(given) != 1:
            raise InvalidParameter(name, f"given {len(given)} times; give it once")
        values[name] = given[0]
    return values


def parse_history_query(params: Mapping[str, Sequence[str]]) -> HistoryQuery:
    """Validate raw query parameters (as from ``urllib.parse.parse_qs``) of ``GET /releases``.

    Unknown and repeated parameters are errors, so a typo never silently returns everything.
    """
    values = _single_values(params, HISTORY_PARAMETERS)
    ints: dict[str, int] = {}
    for name in ("page", "page_size", "start_epoch", "end_epoch"):
        if name in values:
            ints[name] = _parse_int_text(name, values[name], 1 if name == "page_size" else 0)
    return validate_history_query(
        proposer=values.get("proposer"),
        start_epoch=ints.get("start_epoch"),
        end_epoch=ints.get("end_epoch"),
        page=ints.get("page", 0),
        page_size=ints.get("page_size", DEFAULT_PAGE_SIZE),
    )


def parse_timeline_query(params: Mapping[str, Sequence[str]]) -> int:
    """Validate the parameters of ``GET /releases/timeline``; returns ``bucket_s``."""
    values = _single_values(params, TIMELINE_PARAMETERS)
    if "bucket_s" not in values:
        return DEFAULT_BUCKET_S
    return _parse_int_text("bucket_s", values["bucket_s"], 1)


# -- history ---------------------------------------------------------------------------------
def _matches(release: ApprovedRelease, query: HistoryQuery) -> bool:
    if query.proposer is not None and release.proposer.casefold() != query.proposer.casefold():
        return False
    if query.start_epoch is not None and release.activated_epoch < query.start_epoch:
        return False
    return query.end_epoch is None or release.activated_epoch <= query.end_epoch


def _ts(value: float) -> int:
    return int(value)


def history_entry(release: ApprovedRelease, installs: Sequence[InstallRecord]) -> dict[str, Any]:
    """One page entry: the reference fields plus the re-verified quorum evaluation."""
    result = evaluate_quorum(
        release.build_hash, release.attestations, release.signer_set, release.threshold
    )
    install_times = [_ts(i.ts) for i in installs]
    return {
        "build_hash": release.build_hash,
        "proposer": release.proposer,
        "activated_epoch": release.activated_epoch,
        "last_install_ts": max(install_times) if install_times else None,
        "install_count": len(installs),
        "signature_threshold": release.threshold,
        "signer_set": list(release.signer_set),
        "attested_signers": [a.signer for a in release.attestations],
        "quorum_met": result.met,
        "install_times": install_times,
        "installs": [{"node_id": i.node_id, "ts": _ts(i.ts)} for i in installs],
        "proposal_id": release.proposal_id,
        "quorum": {
            "threshold": result.threshold,
            "valid_signers": list(result.valid),
            "missing_signers": list(result.missing),
            "invalid_signers": [{"signer": a.signer, "reason": a.reason} for a in result.invalid],
            "problem": result.problem,
            "summary": result.describe(),
        },
    }


def release_history(
    store: GovernanceStore,
    proposer: str | None = None,
    start_epoch: int | None = None,
    end_epoch: int | None = None,
    page: int = 0,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> dict[str, Any]:
    """The page ``{total, page, page_size, entries[]}`` of approved releases, newest first.

    ``total`` counts every release matching the filters; a page past the end has no
    entries. Raises ``InvalidParameter`` (a ``MalformedInput``) naming a bad argument.
    """
    query = validate_history_query(proposer, start_epoch, end_epoch, page, page_size)
    return history_page(store, query)


def history_page(store: GovernanceStore, query: HistoryQuery) -> dict[str, Any]:
    """``release_history`` for an already validated query (one consistent read snapshot)."""
    with _store_errors(store), store.snapshot():
        matching = [r for r in store.approved_releases() if _matches(r, query)]
        start = query.page * query.page_size
        chosen = matching[start : start + query.page_size]
        entries = [history_entry(r, store.installs(r.build_hash)) for r in chosen]
    return {
        "total": len(matching),
        "page": query.page,
        "page_size": query.page_size,
        "entries": entries,
    }


# -- timeline --------------------------------------------------------------------------------
def release_timeline(
    store: GovernanceStore, bucket_s: int = DEFAULT_BUCKET_S
) -> list[dict[str, Any]]:
    """Install counts per release per time bucket: ``[{build_hash, ts, count, cumulative}]``.

    ``ts`` is the bucket start (``floor(install ts / bucket_s) * bucket_s``); only buckets
    with installs appear; sorted by ``ts``, then ``build_hash``; ``cumulative`` counts the
    release's installs up to and including the bucket.
    """
    bucket_s = _int_arg("bucket_s", bucket_s, 1)
    counts: dict[str, dict[int, int]] = {}
    with _store_errors(store):
        installs = store.installs()
    for install in installs:
        bucket = int(install.ts // bucket_s) * bucket_s
        per_release = counts.setdefault(install.build_hash, {})
        per_release[bucket] = per_release.get(bucket, 0) + 1
    points: list[dict[str, Any]] = []
    for build_hash, buckets in counts.items():
        cumulative = 0
        for ts in sorted(buckets):
            cumulative += buckets[ts]
            points.append(
                {"build_hash": build_hash, "ts": ts, "count": buckets[ts], "cumulative": cumulative}
            )
    points.sort(key=lambda p: (p["ts"], p["build_hash"]))
    return points


# -- persisted metadata ----------------------------------------------------------------------
def persist_release_history(store: GovernanceStore) -> int:
    """Upsert proposer/activation metadata of every approved release into ``release_history``.

    One write transaction; returns the number of rows written. Raises ``StoreError`` when
    the store cannot be written (busy, read-only file, or opened with ``open_readonly``).
    """
    if store.readonly:
        raise StoreError(
            f"governance store {store.location}: opened read-only; release_history not written"
        )
    rows = []
    with _store_errors(store):
        releases = store.approved_releases()
        installs_of = {r.build_hash: store.installs(r.build_hash) for r in releases}
    for release in releases:
        installs = installs_of[release.build_hash]
        rows.append(
            (
                release.build_hash,
                release.proposal_id,
                release.proposer,
                release.proposer.casefold(),
                release.activated_epoch,
                release.threshold,
                len(release.signer_set),
                len(installs),
                max((_ts(i.ts) for i in installs), default=None),
            )
        )
    with _store_errors(store), store.transaction() as db:
        db.execute(_HISTORY_TABLE)
        db.executemany(
            "INSERT INTO release_history (build_hash, proposal_id, proposer, proposer_key,"
            " activated_epoch, threshold, signer_count, install_count, last_install_ts)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (build_hash) DO UPDATE SET"
            " proposal_id = excluded.proposal_id, proposer = excluded.proposer,"
            " proposer_key = excluded.proposer_key, activated_epoch = excluded.activated_epoch,"
            " threshold = excluded.threshold, signer_count = excluded.signer_count,"
            " install_count = excluded.install_count,"
            " last_install_ts = excluded.last_install_ts",
            rows,
        )
    return len(rows)


def persisted_release_history(store: GovernanceStore) -> list[dict[str, Any]]:
    """The ``release_history`` rows, newest activation first (empty if never persisted)."""
    with _store_errors(store), store.snapshot() as db:
        exists = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'release_history'"
        ).fetchone()
        if exists is None:
            return []
        rows = db.execute(
            "SELECT build_hash, proposal_id, proposer, activated_epoch, threshold, signer_count,"
            " install_count, last_install_ts FROM release_history"
            " ORDER BY activated_epoch DESC, proposal_id DESC"
        ).fetchall()
    names = (
        "build_hash", "proposal_id", "proposer", "activated_epoch", "threshold",
        "signer_count", "install_count", "last_install_ts",
    )
    return [dict(zip(names, row, strict=True)) for row in rows]
