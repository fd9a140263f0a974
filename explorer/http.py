"""The HTTP explorer: ``GET /releases``, ``GET /releases/timeline`` and ``GET /metrics``.

Standard library only (``http.server.ThreadingHTTPServer``), bound to 127.0.0.1 by default.
``ExplorerApp`` maps a request target to a ``Response`` and is testable without sockets;
``make_server`` wraps it in a threading server. Every request gets a JSON (or Prometheus
text) answer, never a dropped connection:

- ``GET /releases?page=&page_size=&proposer=&start_epoch=&end_epoch=&store=`` -> the page
  of ``model.explorer.release_history`` (schema: ``explorer/api_schema/release_history.json``).
- ``GET /releases/timeline?bucket_s=&store=`` -> ``{"bucket_s": N, "points": [...]}``.
- ``GET /metrics`` (``store=`` allowed) -> Prometheus text, version 0.0.4; never cached.
- ``GET /`` -> a small JSON index; any other path -> 404 JSON.

Status codes: 400 ``{"error", "parameter"}`` for a bad, unknown or repeated parameter;
503 ``{"error", "store"}`` when the store is missing, corrupt, foreign or busy; 405 for a
method other than GET/HEAD; 500 ``{"error"}`` for anything unexpected (also logged).

Cache: successful ``/releases`` and ``/releases/timeline`` bodies are cached for
``ttl_s`` (15 s) keyed on the route, the *normalised* query (validated values, proposer
case-folded, page size capped) and the resolved store path. The clock is injected
(``time.monotonic`` by default) so tests move time without sleeping. On each cache miss
of ``/releases`` the proposer/activation metadata is persisted to the ``release_history``
table (``releasesim.model.explorer.persist_release_history``); if the store cannot be written
(read-only file, busy) the page is still served and the failure is logged.

Every request opens its own connection to the store (SQLite handles concurrent readers),
so concurrent clients never share a connection.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qs, urlsplit

from releasesim.model.errors import InputError, ReleasesimError, StoreError
from releasesim.model.explorer import (
    InvalidParameter,
    history_page,
    parse_history_query,
    parse_timeline_query,
    persist_release_history,
    release_timeline,
)
from releasesim.model.metrics import render_prometheus
from releasesim.model.store import GovernanceStore

CACHE_TTL_S = 15.0
MAX_CACHE_ENTRIES = 256
MAX_QUERY_FIELDS = 32
JSON_TYPE = "application/json; charset=utf-8"
PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
ENDPOINTS = {
    "/releases": "paginated release history (page, page_size, proposer, start_epoch, "
    "end_epoch, store)",
    "/releases/timeline": "install counts per release over time (bucket_s, store)",
    "/metrics": "Prometheus text exposition of the release counters (store)",
}

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Response:
    """An HTTP answer: status, body bytes, content type and extra headers."""

    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)


def json_response(status: int, payload: Any, **headers: str) -> Response:
    body = (json.dumps(payload, indent=None, separators=(",", ":")) + "\n").encode()
    return Response(status, body, JSON_TYPE, dict(headers))


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
        ttl_s: float = CACHE_TTL_S,
        clock: Clock = time.monotonic,
        persist: bool = True,
        log: TextIO | None = None,
    ) -> None:
        self.store_path = Path(store_path).expanduser()
        self.cache = TtlCache(ttl_s, clock)
        self.persist = persist
        self._log = log if log is not None else sys.stderr
        self._log_lock = threading.Lock()

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
        try:
            return params, Path(text).expanduser()
        except RuntimeError as exc:  # an unknown ~user
            raise InvalidParameter("store", f"unusable path ({exc})") from None

    @staticmethod
    def _resolved(path: Path) -> str:
        """The cache key of a store path; a path the OS refuses is a bad ``store``."""
        try:
            return str(path.resolve())
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
        try:
            return GovernanceStore.open(path, create=False)
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
        key = ("releases", query.key(), self._resolved(store_path))

        def compute() -> dict[str, Any]:
            with self._open(store_path) as store:
                page = history_page(store, query)
                if self.persist:
                    self._persist(store)
            return page

        return self._cached(key, compute)

    def _persist(self, store: GovernanceStore) -> None:
        try:
            persist_release_history(store)
        except StoreError as exc:
            self.log(f"explorer: release_history not persisted: {exc}")

    def _timeline(self, target: str) -> Response:
        params, store_path = self._split(target)
        bucket_s = parse_timeline_query(params)
        key = ("timeline", bucket_s, self._resolved(store_path))

        def compute() -> dict[str, Any]:
            with self._open(store_path) as store:
                points = release_timeline(store, bucket_s)
            return {"bucket_s": bucket_s, "points": points}

        return self._cached(key, compute)

    def _metrics(self, target: str) -> Response:
        params, store_path = self._split(target)
        for name in params:
            raise InvalidParameter(name, "unknown parameter (allowed: store)")
        self._resolved(store_path)
        with self._open(store_path) as store:
            try:
                text = render_prometheus(store)
            except sqlite3.Error as exc:
                raise StoreError(
                    f"governance store {store.location}: unreadable ({exc})"
                ) from None
        return Response(200, text.encode(), PROMETHEUS_TYPE)


def _handler_class(app: ExplorerApp, quiet: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "releasesim-explorer"

        def _answer(self, method: str) -> None:
            response = app.handle(method, self.path)
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(response.body)

        def send_error(
            self, code: int, message: str | None = None, explain: str | None = None
        ) -> None:
            """http.server's own errors (bad request line, 414, 431, ...) as JSON too."""
            short = self.responses.get(code, ("error", ""))[0]
            text = message or short
            self.log_error("code %d, message %s", code, text)
            self.send_response(code, text)
            self.send_header("Connection", "close")
            self.close_connection = True
            body = json_response(code, {"error": f"{code} {text}"}).body
            if code >= 200 and code not in (204, 205, 304):
                self.send_header("Content-Type", JSON_TYPE)
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD" and code >= 200 and code not in (204, 205, 304):
                self.wfile.write(body)

        def __getattr__(self, name: str) -> Any:
            # any other method (OPTIONS, TRACE, BREW, ...) gets the documented 405
            if name.startswith("do_"):
                return lambda: self._answer(name[3:])
            raise AttributeError(name)

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            self._answer("GET")

        def do_HEAD(self) -> None:  # noqa: N802
            self._answer("HEAD")

        def do_POST(self) -> None:  # noqa: N802
            self._answer("POST")

        def do_PUT(self) -> None:  # noqa: N802
            self._answer("PUT")

        def do_DELETE(self) -> None:  # noqa: N802
            self._answer("DELETE")

        def do_PATCH(self) -> None:  # noqa: N802
            self._answer("PATCH")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            if not quiet:
                app.log(f"{self.address_string()} - {format % args}")

    return Handler


class ExplorerServer(ThreadingHTTPServer):
    """A threading HTTP server with daemon threads and a roomy accept backlog."""

    daemon_threads = True
    request_queue_size = 64

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else host
        return f"http://{shown}:{port}/"


class ExplorerServer6(ExplorerServer):
    """``ExplorerServer`` on an IPv6 address."""

    address_family = socket.AF_INET6


def make_server(
    app: ExplorerApp, host: str = "127.0.0.1", port: int = 0, *, quiet: bool = False
) -> ExplorerServer:
    """Bind the explorer on ``host:port`` (0 picks a free port); call ``serve_forever``."""
    try:
        server_class = ExplorerServer6 if ":" in host else ExplorerServer
        return server_class((host, port), _handler_class(app, quiet))
    except (OSError, OverflowError) as exc:
        reason = " ".join(str(exc).split())
        raise InputError(f"explorer: cannot listen on {host}:{port}: {reason}") from None
