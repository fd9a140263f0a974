"""``UrlSource`` and ``fetch_release`` against a real HTTP server on 127.0.0.1 and file URLs.

The server runs ``http.server.ThreadingHTTPServer`` in a fixture thread; each path
prefix is one behaviour (good bytes, wrong bytes, trickling, oversized, redirect...).
No sleeps and no timing assertions in the tests: the slow handler paces itself with an
``Event.wait`` that the fixture cuts short on teardown.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from releasesim.model.crypto import build_hash_of
from releasesim.model.errors import DigestMismatch, SourceError
from releasesim.model.source import DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT_S, ENV_SOURCE_URL, UrlSource
from releasesim.model.update import fetch_release

GOOD = b"the-block node binary v1.2.3\n" * 100
GOOD_HASH = build_hash_of(GOOD)
OTHER = b"something else entirely"
OTHER_HASH = build_hash_of(OTHER)


@dataclass
class Server:
    base: str
    stop: threading.Event


class _Handler(BaseHTTPRequestHandler):
    stop: threading.Event

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        prefix, _, name = self.path.strip("/").partition("/")
        if prefix == "good" and name == f"{GOOD_HASH}.bin":
            self._send(GOOD)
        elif prefix == "wrong":  # any hash: serves bytes that are not the artifact
            self._send(OTHER)
        elif prefix == "big":  # honest Content-Length over the limit
            self._send(b"x" * 5000)
        elif prefix == "unsized":  # no Content-Length, body ends when the connection closes
            self.send_response(200)
            self.end_headers()
            for _ in range(50):
                self.wfile.write(b"y" * 1000)
        elif prefix == "slow":  # trickles one byte every 0.2 s for 40 s
            self.send_response(200)
            self.send_header("Content-Length", "200")
            self.end_headers()
            self.wfile.flush()
            for _ in range(200):
                if self.stop.wait(0.2):
                    return
                try:
                    self.wfile.write(b"z")
                    self.wfile.flush()
                except OSError:
                    return
        elif prefix == "redirect":
            self.send_response(302)
            self.send_header("Location", f"/good/{name}")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif prefix == "short":  # promises more than it sends
            self.send_response(200)
            self.send_header("Content-Length", str(len(GOOD) + 10))
            self.end_headers()
            self.wfile.write(GOOD)
        else:
            self.send_error(404, "Not Found")

    def _send(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[Server]:
    stop = threading.Event()
    handler = type("Handler", (_Handler,), {"stop": stop})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}", stop)
    finally:
        stop.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_defaults() -> None:
    assert DEFAULT_TIMEOUT_S == 60.0
    assert DEFAULT_MAX_BYTES == 2 * 1024**3


def test_good_bytes_are_fetched_and_staged(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "downloads" / f"{GOOD_HASH}.bin"
    release = fetch_release(
        GOOD_HASH.upper(), source=UrlSource(f"{server.base}/good/"), dest=dest, timeout=5
    )
    assert release.hash == GOOD_HASH
    assert release.path == dest
    assert release.bytes == GOOD
    assert dest.read_bytes() == GOOD
    assert build_hash_of(dest.read_bytes()) == GOOD_HASH
    assert _listing(dest.parent) == [dest.name]


def test_in_memory_fetch_has_no_path(server: Server) -> None:
    release = fetch_release(GOOD_HASH, source=UrlSource(f"{server.base}/good"), timeout=5)
    assert release.path is None
    assert release.bytes == GOOD
    assert GOOD_HASH in repr(release) and "the-block" not in repr(release)


def test_wrong_bytes_are_refused_and_nothing_is_staged(server: Server, tmp_path: Path) -> None:
    folder = tmp_path / "downloads"
    dest = folder / f"{GOOD_HASH}.bin"
    with pytest.raises(DigestMismatch) as caught:
        fetch_release(GOOD_HASH, source=UrlSource(f"{server.base}/wrong"), dest=dest, timeout=5)
    assert GOOD_HASH in str(caught.value) and OTHER_HASH in str(caught.value)
    assert not dest.exists()
    assert _listing(folder) == []


def test_not_found_names_the_status_and_url(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "x.bin"
    with pytest.raises(SourceError) as caught:
        fetch_release(OTHER_HASH, source=UrlSource(f"{server.base}/good"), dest=dest, timeout=5)
    message = str(caught.value)
    assert "404" in message and f"/good/{OTHER_HASH}.bin" in message
    assert "\n" not in message
    assert not dest.exists() and _listing(tmp_path) == []


def test_slow_server_past_the_timeout_fails(server: Server, tmp_path: Path) -> None:
    # Each byte arrives well within the socket timeout; only the total deadline stops it.
    dest = tmp_path / "slow.bin"
    with pytest.raises(SourceError) as caught:
        fetch_release(GOOD_HASH, source=UrlSource(f"{server.base}/slow"), dest=dest, timeout=0.5)
    assert "timeout" in str(caught.value)
    assert not dest.exists() and _listing(tmp_path) == []


def test_content_length_over_the_limit_fails_before_reading(server: Server) -> None:
    source = UrlSource(f"{server.base}/big")
    with pytest.raises(SourceError) as caught:
        source.fetch(GOOD_HASH, timeout=5, max_bytes=1000)
    assert "too large" in str(caught.value) and "5000" in str(caught.value)


def test_unsized_body_over_the_limit_stops_while_reading(server: Server) -> None:
    source = UrlSource(f"{server.base}/unsized")
    with pytest.raises(SourceError) as caught:
        source.fetch(GOOD_HASH, timeout=5, max_bytes=1000)
    assert "too large" in str(caught.value) and "1000" in str(caught.value)
    assert len(source.fetch(GOOD_HASH, timeout=5, max_bytes=50_000)) == 50_000


def test_body_at_exactly_the_limit_is_accepted(server: Server) -> None:
    data = UrlSource(f"{server.base}/good").fetch(GOOD_HASH, timeout=5, max_bytes=len(GOOD))
    assert data == GOOD


def test_redirect_is_followed(server: Server) -> None:
    release = fetch_release(GOOD_HASH, source=UrlSource(f"{server.base}/redirect"), timeout=5)
    assert release.bytes == GOOD


def test_truncated_body_is_a_source_error(server: Server) -> None:
    with pytest.raises(SourceError) as caught:
        UrlSource(f"{server.base}/short").fetch(GOOD_HASH, timeout=5, max_bytes=10**6)
    assert "closed after" in str(caught.value)


def test_connection_refused(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dest = tmp_path / "x.bin"
    with pytest.raises(SourceError) as caught:
        fetch_release(GOOD_HASH, source=UrlSource(f"http://127.0.0.1:{port}"), dest=dest)
    assert "connection refused" in str(caught.value)
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert not dest.exists()


def test_file_url(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror dir"
    mirror.mkdir()
    (mirror / f"{GOOD_HASH}.bin").write_bytes(GOOD)
    source = UrlSource(mirror.as_uri())
    dest = tmp_path / "out" / "release.bin"
    release = fetch_release(GOOD_HASH, source=source, dest=dest)
    assert dest.read_bytes() == GOOD and release.path == dest
    with pytest.raises(SourceError, match="file not found"):
        source.fetch(OTHER_HASH, timeout=1, max_bytes=100)
    with pytest.raises(SourceError, match="too large"):
        source.fetch(GOOD_HASH, timeout=1, max_bytes=10)


def test_from_env_reads_the_variable(tmp_path: Path) -> None:
    source = UrlSource.from_env({ENV_SOURCE_URL: "https://releases.example.org/builds/"})
    assert source.base_url == "https://releases.example.org/builds"
    assert source.url_for(GOOD_HASH.upper()) == (
        f"https://releases.example.org/builds/{GOOD_HASH}.bin"
    )
    assert UrlSource.from_env({ENV_SOURCE_URL: tmp_path.as_uri()}).base_url == tmp_path.as_uri()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "not set"),
        ("", "not set"),
        ("   ", "not set"),
        ("ftp://mirror.example.org/builds", "unsupported scheme 'ftp'"),
        ("mirror.example.org/builds", "unsupported scheme"),
        ("http://", "no host"),
        ("https:///builds", "no host"),
        ("http://host:notaport/builds", "malformed URL"),
        ("file://otherhost/srv/builds", "remote host"),
        ("http://host/builds?x=1", "query"),
    ],
)
def test_from_env_refuses_missing_or_malformed(value: str | None, expected: str) -> None:
    env = {} if value is None else {ENV_SOURCE_URL: value}
    with pytest.raises(SourceError) as caught:
        UrlSource.from_env(env)
    assert ENV_SOURCE_URL in str(caught.value)
    assert expected in str(caught.value)


def test_a_non_hash_never_reaches_the_network() -> None:
    with pytest.raises(SourceError, match="hash"):
        UrlSource("http://127.0.0.1:9").fetch("../../etc/passwd", timeout=1, max_bytes=10)
