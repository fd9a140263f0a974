"""``--executor dask --scheduler ADDRESS``: a wrong address fails in one line, never hangs.

Real sockets on 127.0.0.1: a port where nothing listens, a TCP server that accepts and
stays silent, a real HTTP server (another service on the port: its bytes must not be read
as Dask frame lengths), and a real Dask scheduler, whose handshake the probe accepts.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from releasesim.sim.executors import RunError, probe_scheduler


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A listening socket that accepts connections and never says anything."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def http_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return s.getsockname()[1]


def test_nothing_listening_is_refused_in_one_line() -> None:
    with pytest.raises(RunError, match="cannot reach the Dask scheduler"):
        probe_scheduler(f"tcp://127.0.0.1:{_free_port()}", timeout=2.0)


def test_a_silent_server_is_not_a_scheduler(silent_port: int) -> None:
    with pytest.raises(RunError, match="not a Dask scheduler: no handshake within 0.5 s"):
        probe_scheduler(f"tcp://127.0.0.1:{silent_port}", timeout=0.5)


def test_an_http_server_is_not_a_scheduler(http_port: int) -> None:
    # an HTTP server waits for a request: silent too, refused at the timeout
    with pytest.raises(RunError, match="not a Dask scheduler"):
        probe_scheduler(f"tcp://127.0.0.1:{http_port}", timeout=0.5)


def test_a_server_that_speaks_something_else_is_refused() -> None:
    server = socket.create_server(("127.0.0.1", 0))

    def greet() -> None:
        conn, _ = server.accept()
        conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n" * 30)  # a banner, 630 bytes
        conn.close()

    thread = threading.Thread(target=greet, daemon=True)
    thread.start()
    try:
        with pytest.raises(RunError, match="answered with something else"):
            probe_scheduler(f"tcp://127.0.0.1:{server.getsockname()[1]}", timeout=2.0)
    finally:
        thread.join()
        server.close()


def test_a_real_scheduler_passes_the_probe() -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=0, processes=False, protocol="tcp",
                                  host="127.0.0.1", scheduler_port=0,
                                  dashboard_address=None) as cluster:
        probe_scheduler(cluster.scheduler_address, timeout=5.0)  # does not raise


def test_run_with_a_wrong_scheduler_exits_2_in_one_line(http_port: int) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "releasesim", "run", "baseline", "-n", "1", "--executor", "dask",
         "--scheduler", f"tcp://127.0.0.1:{http_port}", "--quiet"],
        capture_output=True, text=True, timeout=60,  # a hang guard, not a timing check
    )
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert "not a Dask scheduler" in err and "\n" not in err and "Traceback" not in err
