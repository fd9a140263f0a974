"""Where release artifacts come from: the ``ReleaseSource`` interface and its URL implementation.

A release source hands over the raw bytes published for a build hash. It does not verify
them; ``releasesim.model.update`` checks the BLAKE3 digest and the attestation quorum afterwards, so
a source may be as untrusted as any mirror.

``UrlSource`` fetches ``<base>/<hash>.bin`` from an ``http``, ``https`` or ``file`` base
URL with the standard library only (``urllib``; proxies from the usual ``*_proxy``
environment variables and up to 10 redirects are honoured). The scheme is
case-insensitive (RFC 3986: ``FILE:///srv/releases`` and ``HTTP://host/`` work; it is
shown lowercase). The body is streamed: the
size limit is enforced while reading (a ``Content-Length`` over the limit fails before
the body is read; without one the read stops at the first byte past the limit). The
timeout bounds connecting and each socket operation, **and** the whole fetch: a watchdog
closes the connection at the deadline, so a server that trickles bytes cannot hold a
fetch past it. (Host-name resolution happens before the connection exists and is bounded
only by the system resolver.)

User-info in an http(s) URL (``https://user:password@host/builds``) is sent as HTTP Basic
authentication to that host only (not to a redirect's target) and is never shown: every
message, ``str()``, ``repr()`` and ``url_for`` read ``user:***@`` (``***@`` for a user
name alone, which may be a token). A URL holding a control character (a raw newline or
tab; a file name needs ``%0A``) or text that is not valid UTF-8 is refused.

A ``file`` URL must name a regular file: a named pipe (FIFO), device or socket is refused
before it is opened (and the file is opened non-blocking, so a FIFO swapped in meanwhile
cannot hold the fetch either); the timeout bounds the read, checked after every chunk.

``UrlSource.from_env()`` reads ``TB_RELEASE_SOURCE_URL``. Every failure, including
malformed configuration, is a ``releasesim.model.errors.SourceError`` whose one-line message names
the URL (or the variable) and what went wrong; stdlib exceptions never leak.

The simulator implements ``ReleaseSource`` with its own mirrors (latency, corruption).
This module must not import simpy, ``sim`` or ``reports``; it imports only
``releasesim.model.errors`` and ``releasesim.model.crypto``.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import os
import socket
import ssl
import stat
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Protocol
from urllib.parse import unquote, urlsplit

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


def _userinfo_span(url: str) -> tuple[int, int] | None:
    """Where the user-info of ``url`` (``scheme://USERINFO@host...``) is, or ``None``.

    Found as ``urlsplit`` finds the authority (up to the first ``/``, ``?`` or ``#``), with
    the user-info up to its last ``@``; string work only, so it also serves a malformed URL.
    """
    marker = url.find("://")
    if marker < 0:
        return None
    start = marker + 3
    end = len(url)
    for delimiter in "/?#":
        found = url.find(delimiter, start)
        if found >= 0:
            end = min(end, found)
    at = url.rfind("@", start, end)
    return None if at < 0 else (start, at)


def redact_url(url: str) -> str:
    """``url`` with its password shown as ``***`` (``user:***@host``), a user name alone as
    ``***@`` (it may be a token); other URLs unchanged."""
    span = _userinfo_span(url)
    if span is None:
        return url
    start, at = span
    user, colon, _ = url[start:at].partition(":")
    return f"{url[:start]}{user + ':***' if colon else '***'}{url[at:]}"


def _redact_text(text: str, url: str) -> str:
    """``text`` (a message about ``url``) with ``url``'s user-info replaced as ``redact_url``."""
    span = _userinfo_span(url)
    if span is None or span[0] == span[1]:
        return text
    redacted = redact_url(url)
    start = span[0]
    return text.replace(url[start:span[1]], redacted[start:redacted.rfind("@", start)])


def _text_problem(text: str) -> str | None:
    """Why ``text`` cannot be a URL at all (a control character, not valid UTF-8), or ``None``."""
    for position, char in enumerate(text, 1):
        if ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F:
            return f"control character {char!r} at character {position}"
        if 0xD800 <= ord(char) <= 0xDFFF:
            what = (f"byte 0x{ord(char) - 0xDC00:02x}" if ord(char) >= 0xDC80
                    else f"lone surrogate U+{ord(char):04X}")
            return f"not valid UTF-8 ({what} at character {position})"
    return None


def check_source_url(url: str, what: str = "release source URL") -> str:
    """``url`` without trailing slashes and with a lowercase scheme if it is a usable base
    URL, else ``SourceError`` (whose message never shows a password: ``redact_url``)."""
    text = url.strip()
    if not text:
        raise SourceError(f"{what} is empty; set it to an http, https or file URL")
    shown = redact_url(text)
    problem = _text_problem(text)
    if problem is not None:
        raise SourceError(f"{what}: {problem} in {shown!r}")
    try:
        parts = urlsplit(text)
        port = parts.port if parts.scheme in ("http", "https") else None
    except ValueError as exc:
        reason = _redact_text(str(exc), text)
        raise SourceError(f"{what}: malformed URL {shown!r}: {reason}") from None
    del port  # parsed only to reject a non-numeric or out-of-range port early
    if parts.scheme not in SCHEMES:
        scheme = parts.scheme or "none"
        raise SourceError(
            f"{what}: unsupported scheme {scheme!r} in {shown!r} (use http, https or file)"
        )
    if parts.scheme in ("http", "https") and not parts.hostname:
        raise SourceError(f"{what}: no host in {shown!r}")
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise SourceError(f"{what}: file URL with a remote host in {shown!r}")
        if not parts.path:
            raise SourceError(f"{what}: file URL without a path in {shown!r}")
    if parts.query or parts.fragment:
        raise SourceError(f"{what}: a base URL cannot have a query or fragment: {shown!r}")
    # urlsplit lowercased the scheme (RFC 3986: case-insensitive); the rest is kept as given
    return parts.scheme + text[text.index(":"):].rstrip("/")


def _credentials(url: str) -> tuple[str, str | None]:
    """``url`` without its user-info, and the HTTP Basic ``Authorization`` value it held."""
    span = _userinfo_span(url)
    if span is None:
        return url, None
    start, at = span
    user, _, password = url[start:at].partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode("ascii")
    return url[:start] + url[at + 1:], f"Basic {token}"


class UrlSource:
    """A ``ReleaseSource`` serving ``<base_url>/<hash>.bin`` over http, https or file.

    ``base_url`` is the URL as shown (user-info redacted); the credentials are kept apart
    and only ever sent as an ``Authorization`` header.
    """

    __slots__ = ("_authorization", "_fetch_base", "base_url")

    def __init__(self, base_url: str) -> None:
        checked = check_source_url(base_url)
        self.base_url = redact_url(checked)
        self._fetch_base, self._authorization = _credentials(checked)

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
        """The artifact URL of ``build_hash`` as shown (user-info redacted; ``SourceError``
        if it is not a build hash)."""
        return f"{self.base_url}/{self._artifact(build_hash)}"

    def _artifact(self, build_hash: str) -> str:
        try:
            lowered = parse_hash(build_hash)
        except MalformedInput as exc:
            raise SourceError(f"release source {self.base_url}: {exc}") from None
        return f"{lowered}.bin"

    def fetch(self, build_hash: str, *, timeout: float, max_bytes: int) -> bytes:
        shown = self.url_for(build_hash)
        url = f"{self._fetch_base}/{self._artifact(build_hash)}"
        if not timeout > 0:
            raise SourceError(f"release source {shown}: timeout must be > 0 s, got {timeout}")
        if max_bytes < 0:
            raise SourceError(
                f"release source {shown}: max_bytes must be >= 0, got {max_bytes}"
            )
        if url.startswith("file:"):
            return _fetch_file(url, timeout, max_bytes)
        return _fetch_http(url, shown, timeout, max_bytes, self._authorization)


# -- file URLs ---------------------------------------------------------------------------
_NOT_REGULAR = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _not_regular(mode: int) -> str | None:
    """What a file of ``mode`` is when it is not a regular file (``None`` when it is)."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory"
    kind = next((name for test, name in _NOT_REGULAR if test(mode)), "not a file")
    return f"not a regular file: {kind}"


def _fetch_file(url: str, timeout: float, max_bytes: int) -> bytes:
    """Read the regular file ``url`` names; never opens a FIFO or device (which could block
    forever or never end), and stops at ``timeout`` seconds (checked after every chunk)."""
    deadline = time.monotonic() + timeout
    path = urllib.request.url2pathname(urlsplit(url).path)

    def check_deadline() -> None:
        if time.monotonic() > deadline:
            raise SourceError(
                f"release source {url}: timeout: not read within {timeout:g} s"
            )

    try:
        kind = _not_regular(os.stat(path).st_mode)
        if kind is not None:  # refused before open(): opening a FIFO blocks for a writer
            raise SourceError(f"release source {url}: {kind}")
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)
        fd = os.open(path, flags)  # non-blocking: a FIFO swapped in since stat() cannot hang
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(fd)
            kind = _not_regular(info.st_mode)
            if kind is not None:
                raise SourceError(f"release source {url}: {kind}")
            os.set_blocking(fd, True)
            if info.st_size > max_bytes:
                raise SourceError(_too_large(url, max_bytes, f"file is {info.st_size} bytes"))
            return _read_limited(handle.read, url, max_bytes, check_deadline)
    except FileNotFoundError:
        raise SourceError(f"release source {url}: file not found") from None
    except IsADirectoryError:
        raise SourceError(f"release source {url}: is a directory") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte (%00) in the path
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


def _fetch_http(
    url: str, shown: str, timeout: float, max_bytes: int, authorization: str | None
) -> bytes:
    """GET ``url`` (no user-info); messages name ``shown``; ``authorization`` goes to the
    first host only (an unredirected header: a redirect elsewhere does not get it)."""
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(
        url, headers={"User-Agent": "releasesim", "Accept-Encoding": "identity"}
    )
    if authorization is not None:
        request.add_unredirected_header("Authorization", authorization)
    with _Watchdog(timeout) as watchdog:
        try:
            with _opener(watchdog).open(request, timeout=timeout) as response:
                status = response.status
                if status != 200:
                    raise SourceError(f"release source {shown}: unexpected HTTP status {status}")
                length = response.headers.get("Content-Length")
                if length is not None and length.strip().isdigit() and int(length) > max_bytes:
                    raise SourceError(
                        _too_large(shown, max_bytes, f"Content-Length is {int(length)} bytes")
                    )

                def check_deadline() -> None:
                    if watchdog.expired or time.monotonic() > deadline:
                        raise TimeoutError

                data = _read_limited(response.read1, shown, max_bytes, check_deadline)
                if length is not None and length.strip().isdigit() and len(data) < int(length):
                    check_deadline()
                    raise SourceError(
                        f"release source {shown}: connection closed after {len(data)} of "
                        f"{int(length)} bytes"
                    )
                return data
        except urllib.error.HTTPError as exc:
            exc.close()
            reason = f" {_one_line(exc.reason)}" if exc.reason else ""
            raise SourceError(f"release source {shown}: HTTP {exc.code}{reason}") from None
        except urllib.error.URLError as exc:
            raise SourceError(_describe(shown, exc.reason, watchdog, timeout)) from None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise SourceError(_describe(shown, exc, watchdog, timeout)) from None


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
