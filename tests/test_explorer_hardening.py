"""The explorer under hostile clients (issue 12, items 6 and 4), over real sockets.

One ``releasesim explorer serve`` process (real CLI, 127.0.0.1, port 0, ``--timeout 1``)
serves a store root holding exported (rollback-journal) stores. Checked: 300 idle connections
hold no threads and do not stop a normal client, and are closed after the timeout; a
slowloris client is cut off with 408 while others are served; clients that leave early leave
no traceback in the server's stderr; a malformed request line is 400 and HTTP/3.0 is 505, each
with a status line and a JSON body; every answer carries ``X-Content-Type-Options: nosniff``;
``?store=`` outside the root (absolute, ``..``, symlink) is 403 and a store inside it is read
without changing a byte; damaged store values are 503 naming the store; pages served from
the in-memory snapshot equal ``model.explorer.release_history`` computed on the store.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import sqlite3
import struct
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from releasesim.model.crypto import ReleaseSigner, blake3_hex
from releasesim.model.explorer import release_history
from releasesim.model.governance import approve_release, propose_release
from releasesim.model.quorum import Attestation
from releasesim.model.store import GovernanceStore

SIGNERS = [ReleaseSigner.derived(f"hardening-signer-{i}") for i in range(3)]
KEYS = tuple(s.public_key for s in SIGNERS)
TIMEOUT_S = 1.0  # the server's --timeout; client-side waits allow many times this
RELEASES = 60


def build(i: int) -> str:
    return blake3_hex(f"hardening build {i}".encode())


def export_store(path: Path, releases: int = RELEASES) -> None:
    """A store as ``run --keep-store`` exports it: an in-memory store backed up to a file."""
    with GovernanceStore.memory() as store:
        for i in range(releases):
            h = build(i)
            proposal = propose_release(
                store, build_hash=h,
                attestations=[Attestation(s.public_key, s.attest(h)) for s in SIGNERS[:2]],
                signer_set=KEYS, threshold=2, proposer=f"prop-{i % 3}", epoch=i // 2,
            )
            approve_release(store, proposal.id, voter="v", epoch=i // 2)
            for n in range(i % 3):
                store.record_install(h, f"node-{n}", 100.0 * i + n)
        store.backup_to(path)


@dataclass
class Served:
    """The server process, its store root and its stderr file."""

    proc: subprocess.Popen[str]
    base: str
    root: Path
    stderr: Path

    @property
    def port(self) -> int:
        return int(urllib.parse.urlsplit(self.base).port or 0)

    def get(self, target: str) -> tuple[int, Any, bytes]:
        try:
            with urllib.request.urlopen(self.base + target, timeout=30) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.headers, error.read()

    def threads(self) -> int:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("Threads:")))

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=30)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("explorer-hardening")
    root = base / "root"
    root.mkdir()
    export_store(root / "governance.db")
    stderr = base / "server.stderr"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TB_")}
    with stderr.open("w") as err:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "releasesim"), "explorer", "serve",
             "--state", str(root / "governance.db"), "--port", "0", "--quiet",
             "--timeout", str(TIMEOUT_S), "--workers", "4"],
            stdout=subprocess.PIPE, stderr=err, text=True, env=env,
        )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line, (line, stderr.read_text())
        yield Served(proc, line.split(" on ", 1)[1].split()[0].rstrip("/"), root, stderr)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout:
            proc.stdout.close()


def read_answer(sock: socket.socket) -> tuple[bytes, dict[str, str], bytes]:
    """Status line, headers (lower-case names) and body of the answer on a closing socket."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.split(b"\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return status_line, headers, body


def raw(served: Served, request: bytes) -> tuple[bytes, dict[str, str], bytes]:
    with served.connect() as sock:
        sock.sendall(request)
        return read_answer(sock)


def test_idle_connections_hold_no_threads_and_others_are_served(served: Served) -> None:
    idle = [served.connect() for _ in range(300)]
    try:
        status, _, body = served.get("/releases?page_size=3")
        assert status == 200 and json.loads(body)["total"] == RELEASES
        # every idle connection was accepted before the request above; none holds a thread
        # (a thread per connection would be 300+; the pool has 4 workers)
        assert served.threads() < 40
        # the server closes idle connections once the timeout passes (recv -> EOF)
        for sock in idle:
            sock.settimeout(30 * TIMEOUT_S)
            assert sock.recv(1) == b""
        assert served.get("/releases?page_size=3")[0] == 200
    finally:
        for sock in idle:
            sock.close()


def test_slowloris_is_cut_off_without_blocking_others(served: Served) -> None:
    trickle = b"X-Slow: " + b"a" * 80  # at 50 ms a byte this takes 4 s, the timeout is 1 s
    sock = served.connect()
    sent, answer = 0, b""
    try:
        sock.sendall(b"GET /releases HTTP/1.1\r\nHost: test\r\n")
        while sent < len(trickle):
            readable, _, _ = select.select([sock], [], [], 0.05)
            if readable:
                answer = sock.recv(65536)
                break
            try:
                sock.sendall(trickle[sent : sent + 1])
            except OSError:  # reset by the server
                break
            sent += 1
            if sent == 5:  # while the slow client trickles, a normal client is served
                assert served.get("/releases?page_size=2")[0] == 200
        assert sent < len(trickle), "the slow client was never cut off"
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408 "), answer[:80]
    finally:
        sock.close()


def test_clients_leaving_early_log_no_traceback(served: Served) -> None:
    for i in range(40):
        with served.connect() as sock:
            sock.sendall(f"GET /releases?page_size=100&page=0&end_epoch={i} HTTP/1.1\r\n"
                         "Host: test\r\n\r\n".encode())
            # close with a reset (SO_LINGER 0) before the answer is read
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    for i in range(40):  # the server still answers, and every early leaver was handled
        assert served.get(f"/releases?page_size=100&page=0&end_epoch={i}")[0] == 200
    log = served.stderr.read_text()
    assert "Traceback" not in log and "BrokenPipe" not in log and "Reset" not in log, log


@pytest.mark.parametrize(
    "request_bytes",
    [b"GARBAGE\r\n\r\n", b"GET /releases\r\n\r\n", b"GET / HTTP/1.1 extra\r\n\r\n",
     b"GET / HTTQ/1.1\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"],
)
def test_malformed_request_line_is_400_with_status_line_and_json(
    served: Served, request_bytes: bytes
) -> None:
    status_line, headers, body = raw(served, request_bytes)
    assert status_line.startswith(b"HTTP/1.1 400 "), status_line
    assert headers["content-type"].startswith("application/json")
    assert headers["x-content-type-options"] == "nosniff"
    assert int(headers["content-length"]) == len(body)
    assert json.loads(body)["error"].startswith("400 ")


@pytest.mark.parametrize("version", ["HTTP/3.0", "HTTP/2.0"])
def test_unsupported_http_version_is_505(served: Served, version: str) -> None:
    status_line, headers, body = raw(served, f"GET /releases {version}\r\n\r\n".encode())
    assert status_line.startswith(b"HTTP/1.1 505 "), status_line
    assert headers["x-content-type-options"] == "nosniff"
    assert json.loads(body)["error"].startswith("505 ")


def test_every_answer_says_nosniff(served: Served, tmp_path: Path) -> None:
    outside = tmp_path / "outside.db"
    for target, expected in [
        ("/releases", 200), ("/releases/timeline", 200), ("/metrics", 200), ("/", 200),
        ("/nope", 404), ("/releases?page=x", 400), ("/releases?store=missing.db", 503),
        (f"/releases?store={outside}", 403),
    ]:
        status, headers, _ = served.get(target)
        assert status == expected, target
        assert headers["X-Content-Type-Options"] == "nosniff", target
    request = urllib.request.Request(served.base + "/releases", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    with refused.value as error:
        assert error.code == 405 and error.headers["X-Content-Type-Options"] == "nosniff"


def test_store_outside_the_root_is_refused(served: Served, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere" / "other.db"
    other.parent.mkdir()
    export_store(other, releases=2)
    before = other.read_bytes()
    link = served.root / "link-to-other.db"
    link.symlink_to(other)
    try:
        relative = os.path.relpath(other, served.root)
        for given in (str(other), relative, "link-to-other.db", f"sub/../{relative}"):
            for route in ("/releases", "/releases/timeline", "/metrics"):
                status, headers, body = served.get(f"{route}?store={urllib.parse.quote(given)}")
                assert status == 403, (route, given)
                payload = json.loads(body)
                assert payload["parameter"] == "store" and "root" in payload["error"]
    finally:
        link.unlink()
    assert other.read_bytes() == before


def test_store_inside_the_root_is_read_without_writing(served: Served) -> None:
    inside = served.root / "sub" / "exported.db"
    inside.parent.mkdir(exist_ok=True)
    export_store(inside, releases=5)
    before = inside.read_bytes()
    served_before = (served.root / "governance.db").read_bytes()
    for given in (str(inside), "sub/exported.db", "sub/../sub/exported.db"):
        quoted = urllib.parse.quote(given)
        status, _, body = served.get(f"/releases?store={quoted}&page_size=4")
        assert status == 200 and json.loads(body)["total"] == 5
        assert served.get(f"/releases/timeline?store={quoted}")[0] == 200
        assert served.get(f"/metrics?store={quoted}")[0] == 200
    assert served.get("/releases?page_size=5&page=1")[0] == 200  # the default store too
    assert inside.read_bytes() == before  # not one byte changed: no WAL switch, no table
    assert (served.root / "governance.db").read_bytes() == served_before
    assert sorted(p.name for p in inside.parent.iterdir()) == ["exported.db"]


@pytest.mark.parametrize(
    ("table", "column", "value", "route"),
    [
        ("approved_releases", "signer_set", "not json", "/releases"),
        ("approved_releases", "attestations", "[1, 2]", "/releases"),
        ("approved_releases", "activated_epoch", "soon", "/releases"),
        ("approved_releases", "threshold", "two", "/releases?page_size=1"),
        ("installs", "ts", "yesterday", "/releases/timeline"),
        ("metrics", "value", "lots", "/metrics"),
    ],
)
def test_damaged_store_values_are_503(
    served: Served, table: str, column: str, value: str, route: str
) -> None:
    damaged = served.root / f"damaged-{table}-{column}.db"
    shutil.copyfile(served.root / "governance.db", damaged)
    with sqlite3.connect(damaged) as db:
        changed = db.execute(f"UPDATE {table} SET {column} = ?", (value,)).rowcount
    db.close()
    assert changed > 0
    joiner = "&" if "?" in route else "?"
    status, headers, body = served.get(f"{route}{joiner}store={damaged.name}")
    assert status == 503, body
    assert headers["Content-Type"].startswith("application/json")
    payload = json.loads(body)
    assert str(damaged) in payload["error"] and payload["store"].endswith(damaged.name)


def test_pages_equal_the_model_computed_on_the_store(served: Served) -> None:
    store_path = served.root / "pages.db"
    export_store(store_path, releases=23)
    queries = [
        {}, {"page_size": 5, "page": 1}, {"proposer": "PROP-1"}, {"start_epoch": 3},
        {"end_epoch": 4, "page_size": 2}, {"start_epoch": 2, "end_epoch": 6, "proposer": "prop-2"},
        {"start_epoch": 4, "end_epoch": 4}, {"page": 9}, {"proposer": "nobody"},
    ]

    # a query without end_epoch gets a large one that differs per round, so the second
    # round misses the response cache; the queries that give one exclude build 0 (epoch 0),
    # the release the writer below changes
    def compare(tag: str) -> None:
        with GovernanceStore.open(store_path, create=False) as store:
            for query in queries:
                target = "/releases?" + urllib.parse.urlencode(
                    {**query, "store": store_path.name, "page_size": query.get("page_size", 25),
                     "end_epoch": query.get("end_epoch", 10**6 + len(tag))}
                )
                status, _, body = served.get(target)
                expected = release_history(
                    store, **{**query, "end_epoch": query.get("end_epoch", 10**6 + len(tag))}
                )
                assert status == 200 and json.loads(body) == expected, query

    compare("a")
    with GovernanceStore.open(store_path, create=False) as store:  # a writer changes it
        store.record_install(build(0), "node-late", 9999.0)
    compare("bb")  # new cache keys: the snapshot must have been reloaded


def test_no_traceback_in_the_server_log(served: Served) -> None:
    """Runs last in the module: the server's log of everything above."""
    log = served.stderr.read_text()
    assert "Traceback" not in log, log
