"""The HTTP explorer: ``GET /releases``, ``GET /releases/timeline`` and ``GET /metrics``.

``ExplorerApp`` maps a request target to a ``Response`` and is testable without sockets;
``make_server`` (``explorer.server``) serves it over HTTP/1.1 on 127.0.0.1 by default with
one event-loop thread for the sockets and a bounded worker pool for the app, with request
deadlines (slowloris-safe). Every request gets a JSON (or Prometheus text) answer:

- ``GET /releases?page=&page_size=&proposer=&start_epoch=&end_epoch=&store=`` -> the page
  of ``model.explorer.release_history`` (schema: ``explorer/api_schema/release_history.json``).
- ``GET /releases/timeline?bucket_s=&store=`` -> ``{"bucket_s": N, "points": [...]}``.
- ``GET /metrics`` (``store=`` allowed) -> Prometheus text, version 0.0.4; never cached.
- ``GET /`` -> a small JSON index; any other path -> 404 JSON.

Status codes: 400 ``{"error", "parameter"}`` for a bad, unknown or repeated parameter;
403 ``{"error", "parameter": "store"}`` for a ``store`` outside the store root; 503
``{"error", "store"}`` when the store is missing, corrupt, foreign, busy or holds damaged
values; 405 for a method other than GET/HEAD; 500 ``{"error"}`` for anything unexpected.

Stores are only read: ``store=`` must resolve (symlinks and ``..`` followed) to a file under
the store root (``--store-root``, default the served store's folder; relative paths are
taken from it), and every store is opened read-only (``explorer.stores``): nothing is ever
written into a store. The release history of each store is held in memory
(``stores.SnapshotCache``), reloaded when a writer commits.

Cache: successful ``/releases`` and ``/releases/timeline`` bodies are cached for
``ttl_s`` (15 s) keyed on the route, the *normalised* query (validated values, proposer
case-folded, page size capped) and the resolved store path. The clock is injected
(``time.monotonic`` by default) so tests move time without sleeping.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qs, urlsplit

from releasesim.explorer.server import (
    JSON_TYPE,
    ExplorerServer,
    Response,
    ServerLimits,
    json_response,
    make_server,
)
from releasesim.explorer.stores import (
    OutsideStoreRoot,
    SnapshotCache,
    StoreRoot,
    reading,
)
from releasesim.model.errors import InputError, ReleasesimError, StoreError
from releasesim.model.explorer import (
    InvalidParameter,
    parse_history_query,
    parse_timeline_query,
    release_timeline,
)
from releasesim.model.metrics import render_prometheus
from releasesim.model.store import GovernanceStore

__all__ = [
    "CACHE_TTL_S", "ExplorerApp", "ExplorerServer", "Response", "ServerLimits", "TtlCache",
    "json_response", "make_server",
]

CACHE_TTL_S = 15.0
MAX_CACHE_ENTRIES = 256
MAX_QUERY_FIELDS = 32
PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
ENDPOINTS = {
    "/releases": "paginated release history (page, page_size, proposer, start_epoch, "
    "end_epoch, store)",
    "/releases/timeline": "install counts per release over time (bucket_s, store)",
    "/metrics": "Prometheus text exposition of the release counters (store)",
}

Clock = Callable[[], float]


class TtlCache:
    """A small thread-safe cache whose entries expire ``ttl_s`` after they were stored."""

    def __init__(self, ttl_s: float, clock: Clock, max_entries: int = MAX_CACHE_ENTRIES) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._max = max_entries
        self._entries: OrderedDict[tuple[Any, ...], tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> bytes | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            stored_at, body = found
            if self._clock() - stored_at >= self.ttl_s:
                del self._entries[key]
                return None
            return body

    def put(self, key: tuple[Any, ...], body: bytes) -> None:
        with self._lock:
            self._entries[key] = (self._clock(), body)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


class ExplorerApp:
    """Routes explorer requests; one instance serves every thread of the server."""

    def __init__(
        self,
        store_path: str | Path,
        *,
        store_root: str | Path | None = None,
        ttl_s: float = CACHE_TTL_S,
        clock: Clock = time.monotonic,
        log: TextIO | None = None,
    ) -> None:
        self.store_path = Path(store_path).expanduser()
        self.root = StoreRoot.of(
            store_root if store_root is not None else self.store_path.absolute().parent
        )
        self.cache = TtlCache(ttl_s, clock)
        self.snapshots = SnapshotCache(lambda path: self._open(path))
        self._log = log if log is not None else sys.stderr
        self._log_lock = threading.Lock()

    def close(self) -> None:
        """Close the connections the snapshot cache keeps to notice writers."""
        self.snapshots.close()

    def log(self, message: str) -> None:
        with self._log_lock:
            print(message, file=self._log, flush=True)

    # -- entry point -------------------------------------------------------------------
    def handle(self, method: str, target: str) -> Response:
        """Answer one request; never raises."""
        try:
            if method not in ("GET", "HEAD"):
                return json_response(
                    405, {"error": f"method {method} not allowed; use GET"}, Allow="GET, HEAD"
                )
            return self._route(target)
        except OutsideStoreRoot as exc:
            return json_response(403, {"error": str(exc), "parameter": exc.parameter})
        except InvalidParameter as exc:
            return json_response(400, {"error": str(exc), "parameter": exc.parameter})
        except StoreError as exc:
            return json_response(503, {"error": str(exc), "store": self._last_store(target)})
        except InputError as exc:
            return json_response(400, {"error": str(exc)})
        except ReleasesimError as exc:
            return json_response(500, {"error": str(exc)})
        except Exception as exc:  # noqa: BLE001 - the connection must get an answer
            self.log(f"explorer: internal error on {target!r}: {type(exc).__name__}: {exc}")
            return json_response(500, {"error": f"internal error: {type(exc).__name__}"})

    def _last_store(self, target: str) -> str:
        try:
            return str(self._split(target)[1])
        except Exception:  # noqa: BLE001 - only used to decorate an error body
            return str(self.store_path)

    # -- parsing -----------------------------------------------------------------------
    def _split(self, target: str) -> tuple[dict[str, list[str]], Path]:
        """The query parameters without ``store``, and the store path to use."""
        query = urlsplit(target).query
        try:
            params = parse_qs(query, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS)
        except ValueError as exc:
            raise InvalidParameter("query", f"unparseable query string ({exc})") from None
        store_values = params.pop("store", None)
        if store_values is None:
            return params, self.store_path
        if len(store_values) != 1:
            raise InvalidParameter("store", f"given {len(store_values)} times; give it once")
        if not store_values[0].strip():
            raise InvalidParameter("store", "must be a non-empty path")
        text = store_values[0].strip()
        if "\0" in text:
            raise InvalidParameter("store", "must not contain a NUL byte")
        return params, self.root.confine(text)

    @staticmethod
    def _resolved(path: Path) -> Path:
        """The cache key of a store path; a path the OS refuses is a bad ``store``."""
        try:
            return path.resolve()
        except (OSError, RuntimeError, ValueError) as exc:
            raise InvalidParameter("store", f"unusable path ({type(exc).__name__})") from None

    def _route(self, target: str) -> Response:
        path = urlsplit(target).path
        if len(path) > 1:
            path = path.rstrip("/")
        if path == "/releases":
            return self._releases(target)
        if path == "/releases/timeline":
            return self._timeline(target)
        if path == "/metrics":
            return self._metrics(target)
        if path == "/":
            return json_response(200, {"endpoints": ENDPOINTS})
        return json_response(
            404, {"error": f"no such endpoint: {path}", "endpoints": sorted(ENDPOINTS)}
        )

    # -- endpoints ---------------------------------------------------------------------
    def _open(self, path: Path) -> GovernanceStore:
        """Open a store read-only (``GovernanceStore.open_readonly``)."""
        try:
            return GovernanceStore.open_readonly(path)
        except OSError as exc:  # e.g. a file name too long for the OS
            reason = exc.strerror or type(exc).__name__
            raise StoreError(f"governance store {path}: cannot open: {reason}") from None

    def _cached(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Response:
        body = self.cache.get(key)
        if body is not None:
            return Response(200, body, JSON_TYPE, {"X-Cache": "hit", **self._cache_header()})
        fresh = json_response(200, compute())
        self.cache.put(key, fresh.body)
        return Response(200, fresh.body, JSON_TYPE, {"X-Cache": "miss", **self._cache_header()})

    def _cache_header(self) -> dict[str, str]:
        return {"Cache-Control": f"max-age={int(self.cache.ttl_s)}"}

    def _releases(self, target: str) -> Response:
        params, store_path = self._split(target)
        query = parse_history_query(params)
        resolved = self._resolved(store_path)
        key = ("releases", query.key(), str(resolved))
        return self._cached(key, lambda: self.snapshots.get(resolved).history_page(query))

    def _timeline(self, target: str) -> Response:
        params, store_path = self._split(target)
        bucket_s = parse_timeline_query(params)
        resolved = self._resolved(store_path)
        key = ("timeline", bucket_s, str(resolved))

        def compute() -> dict[str, Any]:
            snapshot = self.snapshots.get(resolved)
            with reading(resolved):
                points = release_timeline(snapshot, bucket_s)  # type: ignore[arg-type]
            return {"bucket_s": bucket_s, "points": points}

        return self._cached(key, compute)

    def _metrics(self, target: str) -> Response:
        params, store_path = self._split(target)
        for name in params:
            raise InvalidParameter(name, "unknown parameter (allowed: store)")
        resolved = self._resolved(store_path)
        with self._open(resolved) as store, reading(resolved):
            text = render_prometheus(store)
        return Response(200, text.encode(), PROMETHEUS_TYPE)
