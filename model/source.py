"""Where release artifacts come from: the ``ReleaseSource`` interface and its URL implementation.

A release source hands over the raw bytes published for a build hash. It does not verify
them; ``releasesim.model.update`` checks the BLAKE3 digest and the attestation quorum afterwards, so
a source may be as untrusted as any mirror.

``UrlSource`` fetches ``<base>/<hash>.bin`` from an ``http``, ``https`` or ``file`` base
URL with the standard library only (``urllib``; proxies from the usual ``*_proxy``
environment variables and up to 10 redirects are honoured). The body is streamed: the
size limit is enforced while reading (a ``Content-Length`` over the limit fails before
the body is read; without one the read stops at the first byte past the limit). The
timeout bounds connecting and each socket operation, **and** the whole fetch: a watchdog
closes the connection at the deadline, so a server that trickles bytes cannot hold a
fetch past it. (Host-name resolution happens before the connection exists and is bounded
only by the system resolver.)

``UrlSource.from_env()`` reads ``TB_RELEASE_SOURCE_URL``. Every failure, including
malformed configuration, is a ``releasesim.model.errors.SourceError`` whose one-line message names
the URL (or the variable) and what went wrong; stdlib exceptions never leak.

The simulator implements ``ReleaseSource`` with its own mirrors (latency, corruption).
This module must not import simpy, ``sim`` or ``reports``; it imports only
``releasesim.model.errors`` and ``releasesim.model.crypto``.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Protocol
from urllib.parse import urlsplit

from releasesim.model.crypto import parse_hash
from releasesim.model.errors import MalformedInput, SourceError

ENV_SOURCE_URL = "TB_RELEASE_SOURCE_URL"
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_BYTES = 2 * 1024**3
SCHEMES = ("http", "https", "file")
CHUNK_BYTES = 64 * 1024


class ReleaseSource(Protocol):
    """Anything that can hand over the artifact bytes published for a build hash."""

    def fetch(self, build_hash: str, *, timeout: float, max_bytes: int) -> bytes:
        """The bytes published for ``build_hash``; raises only ``SourceError``."""
        ...


def check_source_url(url: str, what: str = "release source URL") -> str:
    """``url`` without trailing slashes if it is a usable base URL, else ``SourceError``."""
    text = url.strip()
    if not text:
        raise SourceError(f"{what} is empty; set it to an http, https or file URL")
    try:
        parts = urlsplit(text)
        port = parts.port if parts.scheme in ("http", "https") else None
    except ValueError as exc:
        raise SourceError(f"{what}: malformed URL {text!r}: {exc}") from None
    del port  # parsed only to reject a non-numeric or out-of-range port early
    if parts.scheme not in SCHEMES:
        shown = parts.scheme or "none"
        raise SourceError(
            f"{what}: unsupported scheme {shown!r} in {text!r} (use http, https or file)"
        )
    if parts.scheme in ("http", "https") and not parts.hostname:
        raise SourceError(f"{what}: no host in {text!r}")
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise SourceError(f"{what}: file URL with a remote host in {text!r}")
        if not parts.path:
            raise SourceError(f"{what}: file URL without a path in {text!r}")
    if parts.query or parts.fragment:
        raise SourceError(f"{what}: a base URL cannot have a query or fragment: {text!r}")
    return text.rstrip("/")


class UrlSource:
    """A ``ReleaseSource`` serving ``<base_url>/<hash>.bin`` over http, https or file."""

    __slots__ = ("base_url",)

    def __init__(self, base_url: str) -> None:
        self.base_url = check_source_url(base_url)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> UrlSource:
        """The source named by ``TB_RELEASE_SOURCE_URL``; ``SourceError`` naming it otherwise."""
        env = os.environ if env is None else env
        value = env.get(ENV_SOURCE_URL, "")
        if not value.strip():
            raise SourceError(
                f"{ENV_SOURCE_URL} is not set; set it to the base URL of the release "
                "artifacts (http, https or file)"
            )
        return cls(check_source_url(value, ENV_SOURCE_URL))

    def __repr__(self) -> str:
        return f"UrlSource({self.base_url!r})"

    def __str__(self) -> str:
        return self.base_url

    def url_for(self, build_hash: str) -> str:
        """The artifact URL of ``build_hash`` (``SourceError`` if it is not a build hash)."""
        try:
            lowered = parse_hash(build_hash)
        except MalformedInput as exc:
            raise SourceError(f"release source {self.base_url}: {exc}") from None
        return f"{self.base_url}/{lowered}.bin"

    def fetch(self, build_hash: str, *, timeout: float, max_bytes: int) -> bytes:
        url = self.url_for(build_hash)
        if not timeout > 0:
            raise SourceError(f"release source {url}: timeout must be > 0 s, got {timeout}")
        if max_bytes < 0:
            raise SourceError(f"release source {url}: max_bytes must be >= 0, got {max_bytes}")
        if url.startswith("file:"):
            return _fetch_file(url, max_bytes)
        return _fetch_http(url, timeout, max_bytes)


# -- file URLs ---------------------------------------------------------------------------
def _fetch_file(url: str, max_bytes: int) -> bytes:
    path = urllib.request.url2pathname(urlsplit(url).path)
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > max_bytes:
                raise SourceError(_too_large(url, max_bytes, f"file is {size} bytes"))
            return _read_limited(handle.read, url, max_bytes, lambda: None)
    except FileNotFoundError:
        raise SourceError(f"release source {url}: file not found") from None
    except IsADirectoryError:
        raise SourceError(f"release source {url}: is a directory") from None
    except OSError as exc:
        raise SourceError(f"release source {url}: cannot read: {_one_line(exc)}") from None


# -- http and https ----------------------------------------------------------------------
class _Watchdog:
    """Closes every connection of one fetch when its deadline passes."""

    def __init__(self, timeout: float) -> None:
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(timeout, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shutdown(sock)

    def connection_class(
        self, base: type[http.client.HTTPConnection]
    ) -> type[http.client.HTTPConnection]:
        watchdog = self

        class WatchedConnection(base):  # type: ignore[valid-type, misc]
            def connect(self) -> None:
                super().connect()
                watchdog.watch(self.sock)

        return WatchedConnection


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _WatchedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, watchdog: _Watchdog) -> None:
        super().__init__()
        self._watchdog = watchdog

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._watchdog.connection_class(http.client.HTTPConnection), req)


class _WatchedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, watchdog: _Watchdog) -> None:
        super().__init__()
        self._watchdog = watchdog

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._watchdog.connection_class(http.client.HTTPSConnection), req)


def _opener(watchdog: _Watchdog) -> urllib.request.OpenerDirector:
    """Only what an artifact fetch needs: proxies, http(s), redirects, status errors."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        urllib.request.UnknownHandler(),
        _WatchedHTTPHandler(watchdog),
        _WatchedHTTPSHandler(watchdog),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPRedirectHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


def _fetch_http(url: str, timeout: float, max_bytes: int) -> bytes:
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(
        url, headers={"User-Agent": "releasesim", "Accept-Encoding": "identity"}
    )
    with _Watchdog(timeout) as watchdog:
        try:
            with _opener(watchdog).open(request, timeout=timeout) as response:
                status = response.status
                if status != 200:
                    raise SourceError(f"release source {url}: unexpected HTTP status {status}")
                length = response.headers.get("Content-Length")
                if length is not None and length.strip().isdigit() and int(length) > max_bytes:
                    raise SourceError(
                        _too_large(url, max_bytes, f"Content-Length is {int(length)} bytes")
                    )

                def check_deadline() -> None:
                    if watchdog.expired or time.monotonic() > deadline:
                        raise TimeoutError

                data = _read_limited(response.read1, url, max_bytes, check_deadline)
                if length is not None and length.strip().isdigit() and len(data) < int(length):
                    check_deadline()
                    raise SourceError(
                        f"release source {url}: connection closed after {len(data)} of "
                        f"{int(length)} bytes"
                    )
                return data
        except urllib.error.HTTPError as exc:
            exc.close()
            reason = f" {_one_line(exc.reason)}" if exc.reason else ""
            raise SourceError(f"release source {url}: HTTP {exc.code}{reason}") from None
        except urllib.error.URLError as exc:
            raise SourceError(_describe(url, exc.reason, watchdog, timeout)) from None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise SourceError(_describe(url, exc, watchdog, timeout)) from None


def _read_limited(
    read: Callable[[int], bytes], url: str, max_bytes: int, check: Callable[[], None]
) -> bytes:
    """Read chunks until EOF, never more than ``max_bytes + 1``; ``check`` runs after each."""
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = read(min(CHUNK_BYTES, max_bytes + 1 - total))
        check()
        if not chunk:
            break
        total += len(chunk)
        if total > max_bytes:
            raise SourceError(_too_large(url, max_bytes, f"more than {max_bytes} bytes received"))
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(url: str, max_bytes: int, detail: str) -> str:
    return f"release source {url}: too large: {detail} (limit {max_bytes} bytes)"


def _describe(url: str, reason: object, watchdog: _Watchdog, timeout: float) -> str:
    prefix = f"release source {url}:"
    if watchdog.expired or isinstance(reason, (TimeoutError, socket.timeout)):
        return f"{prefix} timeout: no complete response within {timeout:g} s"
    if isinstance(reason, ConnectionRefusedError):
        return f"{prefix} connection refused"
    if isinstance(reason, socket.gaierror):
        return f"{prefix} cannot resolve host: {_one_line(reason)}"
    if isinstance(reason, ssl.SSLError | ssl.CertificateError):
        return f"{prefix} TLS error: {_one_line(reason)}"
    if isinstance(reason, ConnectionError | http.client.HTTPException):
        return f"{prefix} connection failed: {type(reason).__name__}: {_one_line(reason)}"
    return f"{prefix} {_one_line(reason)}"


def _one_line(value: object) -> str:
    text = " ".join(str(value).split())
    return text or type(value).__name__
