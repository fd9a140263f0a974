"""The explorer's HTTP/1.1 front end: one event-loop thread for sockets, a bounded worker pool.

Why not ``http.server.ThreadingHTTPServer``: it spends a thread on every connection for the
connection's whole life and has no deadline for a request to arrive, so idle or slow
(slowloris) clients pin threads without bound. Here one asyncio event loop owns every
socket: it reads and parses request heads, so an idle or slow client costs a coroutine and
a file descriptor, never a thread; only a complete request goes to a
``ThreadPoolExecutor`` of ``workers`` threads running the app (SQLite reads block). Each
connection has at most one request in flight, so the pool's queue is bounded by
``max_connections``. Standard library only.

Limits (``ServerLimits``):

- ``request_timeout_s`` (10 s): the whole request head (and a small body) must arrive within
  this time of the connection being ready for a request; this is also the keep-alive idle
  limit. A client that sent part of a request gets ``408`` and is closed; an idle one is closed.
- the same time to take a response: a client that does not read is dropped.
- ``max_connections`` (1000): a connection beyond it is answered ``503`` at once and closed.
- request line 8 KiB (``414``), header section 64 KiB and 100 fields (``431``), a body of at
  most 64 KiB (read and discarded; larger is ``413``); a chunked body is answered, then closed.

Every answer has a status line, ``Content-Length``, ``X-Content-Type-Options: nosniff`` and,
for errors found here, a JSON body ``{"error": "..."}``: ``400`` for a malformed request line
or header, ``505`` for an HTTP version other than 1.x. A client that disconnects early
ends its connection quietly (no traceback); anything unexpected is logged as one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, Protocol

from releasesim.model.errors import InputError

JSON_TYPE = "application/json; charset=utf-8"
SERVER_NAME = "releasesim-explorer"
MAX_REQUEST_LINE = 8192
MAX_HEADER_BYTES = 65536
MAX_HEADER_FIELDS = 100
MAX_BODY = 65536
LISTEN_BACKLOG = 1024
DEFAULT_WORKERS = 8
DEFAULT_REQUEST_TIMEOUT_S = 10.0
DEFAULT_MAX_CONNECTIONS = 1000
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_VERSION = re.compile(r"HTTP/([0-9]{1,3})\.([0-9]{1,3})")


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


def error_response(status: int, message: str) -> Response:
    return json_response(status, {"error": f"{status} {HTTPStatus(status).phrase}: {message}"})


class App(Protocol):
    """What the server needs of the application (``ExplorerApp``)."""

    def handle(self, method: str, target: str) -> Response: ...

    def log(self, message: str) -> None: ...


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Worker threads, the request deadline and the connection cap."""

    workers: int = DEFAULT_WORKERS
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S
    max_connections: int = DEFAULT_MAX_CONNECTIONS


@dataclass(slots=True)
class _Request:
    method: str
    target: str
    line: str
    keep_alive: bool


class _Refused(Exception):
    """The request cannot be served: answer ``response`` and close the connection."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def _response_bytes(response: Response, *, head_only: bool, keep_alive: bool) -> bytes:
    lines = [
        f"HTTP/1.1 {response.status} {HTTPStatus(response.status).phrase}",
        f"Server: {SERVER_NAME}",
        f"Date: {formatdate(usegmt=True)}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "X-Content-Type-Options: nosniff",
        *(f"{name}: {value}" for name, value in response.headers.items()),
        "Connection: keep-alive" if keep_alive else "Connection: close",
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
    return head if head_only else head + response.body


async def _read_line(reader: asyncio.StreamReader, limit: int, status: int) -> bytes:
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError:
        raise _Refused(error_response(status, f"longer than {limit} bytes")) from None
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ConnectionResetError("client closed mid-request") from None
        raise
    if len(line) > limit:
        raise _Refused(error_response(status, f"longer than {limit} bytes"))
    return line


def _parse_request_line(line: bytes) -> tuple[str, str, str, bool]:
    """(method, target, line text, HTTP/1.1 or later) or ``_Refused`` with 400/505."""
    text = line.decode("latin-1").rstrip("\r\n")
    words = text.split()
    if len(words) != 3:
        raise _Refused(error_response(400, f"malformed request line {text[:80]!r}"))
    method, target, version = words
    if not _TOKEN.fullmatch(method):
        raise _Refused(error_response(400, f"bad method {method[:40]!r}"))
    matched = _VERSION.fullmatch(version)
    if matched is None:
        raise _Refused(error_response(400, f"bad HTTP version {version[:40]!r}"))
    if int(matched[1]) != 1:
        raise _Refused(error_response(505, f"{version} is not supported; use HTTP/1.1"))
    if not (target.startswith("/") or target == "*" or "://" in target):
        raise _Refused(error_response(400, f"bad request target {target[:80]!r}"))
    return method, target, text, int(matched[2]) >= 1


async def _read_headers(reader: asyncio.StreamReader) -> dict[str, str]:
    headers: dict[str, str] = {}
    total = 0
    for _ in range(MAX_HEADER_FIELDS + 1):
        line = await _read_line(reader, MAX_HEADER_BYTES, 431)
        total += len(line)
        if total > MAX_HEADER_BYTES:
            raise _Refused(error_response(431, f"header section over {MAX_HEADER_BYTES} bytes"))
        if line in (b"\r\n", b"\n"):
            return headers
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon or not _TOKEN.fullmatch(name):
            raise _Refused(error_response(400, f"malformed header line {line[:60]!r}"))
        key = name.lower()
        value = value.strip()
        if key in headers and key in ("content-length", "transfer-encoding", "host"):
            raise _Refused(error_response(400, f"{name} given twice"))
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    raise _Refused(error_response(431, f"more than {MAX_HEADER_FIELDS} header fields"))


@dataclass(slots=True)
class _Progress:
    """Whether any byte of the awaited request has arrived (idle vs. slow client)."""

    started: bool = False


async def _read_request(reader: asyncio.StreamReader, progress: _Progress) -> _Request | None:
    """The next request on the connection; ``None`` when the client closed it idle."""
    line = b""
    while line in (b"", b"\r\n", b"\n"):  # tolerate empty lines before a request
        first = await reader.read(1)
        if not first:
            return None
        progress.started = True
        line = first if first == b"\n" else first + await _read_line(
            reader, MAX_REQUEST_LINE, 414
        )
    method, target, text, http11 = _parse_request_line(line)
    headers = await _read_headers(reader)
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    keep_alive = "close" not in tokens if http11 else "keep-alive" in tokens
    if "transfer-encoding" in headers:
        if "content-length" in headers:
            raise _Refused(error_response(400, "both Content-Length and Transfer-Encoding"))
        keep_alive = False  # the body is not read; the connection ends with the answer
    elif "content-length" in headers:
        length_text = headers["content-length"]
        if not (length_text.isascii() and length_text.isdigit() and len(length_text) < 19):
            raise _Refused(error_response(400, f"bad Content-Length {length_text[:40]!r}"))
        if int(length_text) > MAX_BODY:
            raise _Refused(error_response(413, f"request bodies over {MAX_BODY} bytes"))
        await reader.readexactly(int(length_text))  # not used; read to keep the stream aligned
    return _Request(method, target, text, keep_alive)


class ExplorerServer:
    """Serves an app over HTTP/1.1 on a bound socket; ``serve_forever`` runs the event loop.

    The interface of ``socketserver``'s servers: ``server_address``, ``url``,
    ``serve_forever()`` (blocks), ``shutdown()`` (from another thread; waits until
    ``serve_forever`` returns), ``server_close()``.
    """

    def __init__(
        self, app: App, host: str, port: int, *, quiet: bool = False,
        limits: ServerLimits = ServerLimits(),  # noqa: B008 - a frozen value
    ) -> None:
        self.app = app
        self.quiet = quiet
        self.limits = limits
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.bind((host, port))
            self.socket.listen(LISTEN_BACKLOG)
            self.socket.setblocking(False)
        except BaseException:
            self.socket.close()
            raise
        self.server_address: tuple[Any, ...] = self.socket.getsockname()
        self._pool = ThreadPoolExecutor(limits.workers, thread_name_prefix="explorer-worker")
        self._guard = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stop_requested = False
        self._stopped = threading.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else host
        return f"http://{shown}:{port}/"

    @property
    def open_connections(self) -> int:
        return len(self._tasks)

    # -- lifecycle ---------------------------------------------------------------------
    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve until ``shutdown()`` (``poll_interval`` is accepted for compatibility)."""
        self._stopped.clear()
        try:
            with asyncio.Runner() as runner:
                runner.run(self._serve())
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop ``serve_forever`` and wait for it to return (call from another thread)."""
        with self._guard:
            self._stop_requested = True
            loop, stop = self._loop, self._stop
        if loop is None or stop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop already ended
            loop.call_soon_threadsafe(stop.set)
        self._stopped.wait()

    def server_close(self) -> None:
        self.socket.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self._loop_error)
        stop = asyncio.Event()
        with self._guard:
            if self._stop_requested:
                return
            self._loop, self._stop = loop, stop
        server = await asyncio.start_server(
            self._connection, sock=self.socket, limit=MAX_HEADER_BYTES
        )
        try:
            await stop.wait()
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            with self._guard:
                self._loop = self._stop = None

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, ConnectionError):
            return
        detail = f": {type(exc).__name__}: {exc}" if exc is not None else ""
        self.app.log(f"explorer: {context.get('message', 'event loop error')}{detail}")

    # -- one connection ----------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peer = writer.get_extra_info("peername")
        client = str(peer[0]) if peer else "-"
        try:
            if len(self._tasks) > self.limits.max_connections:
                busy = error_response(503, "too many connections; retry later")
                await self._send(writer, busy, head_only=False, keep_alive=False)
            else:
                await self._requests(reader, writer, client)
        except asyncio.CancelledError:  # the server is stopping
            writer.transport.abort()
            raise
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass  # the client left (reset, broken pipe, closed mid-request): nothing to answer
        except Exception as exc:  # noqa: BLE001 - one line, never a traceback
            self.app.log(f"explorer: connection from {client} failed: {type(exc).__name__}: {exc}")
        finally:
            self._tasks.discard(task)
        await self._close(writer)

    async def _requests(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: str
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            progress = _Progress()
            try:
                async with asyncio.timeout(self.limits.request_timeout_s):
                    request = await _read_request(reader, progress)
            except TimeoutError:
                if not progress.started:
                    return  # idle: close quietly
                late = error_response(408, "the request did not arrive in time")
                await self._send(writer, late, head_only=False, keep_alive=False)
                return
            except _Refused as refused:
                self._access(client, "-", refused.response)
                await self._send(writer, refused.response, head_only=False, keep_alive=False)
                return
            if request is None:
                return
            response = await loop.run_in_executor(
                self._pool, self.app.handle, request.method, request.target
            )
            self._access(client, request.line, response)
            await self._send(
                writer, response, head_only=request.method == "HEAD",
                keep_alive=request.keep_alive,
            )
            if not request.keep_alive:
                return

    async def _send(
        self, writer: asyncio.StreamWriter, response: Response, *, head_only: bool,
        keep_alive: bool,
    ) -> None:
        if writer.is_closing():
            return
        writer.write(_response_bytes(response, head_only=head_only, keep_alive=keep_alive))
        try:
            async with asyncio.timeout(self.limits.request_timeout_s):
                await writer.drain()
        except TimeoutError:
            writer.transport.abort()  # the client does not read: drop it
            raise

    async def _close(self, writer: asyncio.StreamWriter) -> None:
        """Close after the pending answer is flushed; abort a client that does not read."""
        writer.close()
        try:
            async with asyncio.timeout(self.limits.request_timeout_s):
                await writer.wait_closed()
        except Exception:  # noqa: BLE001 - closing regardless (timeout, reset)
            writer.transport.abort()

    def _access(self, client: str, line: str, response: Response) -> None:
        if not self.quiet:
            self.app.log(f'{client} - "{line}" {response.status} {len(response.body)}')


def make_server(
    app: App, host: str = "127.0.0.1", port: int = 0, *, quiet: bool = False,
    limits: ServerLimits | None = None,
) -> ExplorerServer:
    """Bind the explorer on ``host:port`` (0 picks a free port); call ``serve_forever``."""
    try:
        return ExplorerServer(app, host, port, quiet=quiet, limits=limits or ServerLimits())
    except (OSError, OverflowError, ValueError) as exc:
        reason = " ".join(str(exc).split())
        raise InputError(f"explorer: cannot listen on {host}:{port}: {reason}") from None

