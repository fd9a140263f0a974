"""The HTTP explorer over real sockets on 127.0.0.1 (port 0).

Checks the page schema, 400 JSON naming each bad parameter, 503 JSON for unusable
stores, Prometheus text on /metrics, concurrent clients, the 15 s cache driven by an
injected clock (no sleeps), the persisted ``release_history`` table, and the
``releasesim explorer serve`` console script.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from releasesim.explorer.http import ExplorerApp, ExplorerServer, make_server
from releasesim.model.crypto import ReleaseSigner, blake3_hex
from releasesim.model.explorer import persisted_release_history
from releasesim.model.governance import approve_release, propose_release
from releasesim.model.quorum import Attestation
from releasesim.model.store import GovernanceStore

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "explorer" / "api_schema" / "release_history.json").read_text())
SIGNERS = [ReleaseSigner.derived(f"http-signer-{i}") for i in range(2)]
KEYS = tuple(s.public_key for s in SIGNERS)


def build(i: int) -> str:
    return blake3_hex(f"http build {i}".encode())


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_store(path: Path, releases: int = 4) -> None:
    with GovernanceStore.open(path) as store:
        for i in range(releases):
            h = build(i)
            proposal = propose_release(
                store, build_hash=h,
                attestations=[Attestation(s.public_key, s.attest(h)) for s in SIGNERS],
                signer_set=KEYS, proposer="Alice" if i % 2 else "bob", epoch=10 * i,
            )
            approve_release(store, proposal.id, voter="v", epoch=10 * i)
        store.record_install(build(0), "node-1", 50.0)
        store.record_install(build(0), "node-2", 4000.0)


class Explorer:
    """A running server plus a tiny client returning (status, headers, body)."""

    def __init__(self, server: ExplorerServer, app: ExplorerApp, clock: FakeClock) -> None:
        self.server, self.app, self.clock = server, app, clock
        self.base = server.url.rstrip("/")

    def get(self, target: str, method: str = "GET") -> tuple[int, Any, bytes]:
        request = urllib.request.Request(self.base + target, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.headers, error.read()

    def json(self, target: str) -> tuple[int, Any]:
        status, headers, body = self.get(target)
        assert headers["Content-Type"].startswith("application/json")
        return status, json.loads(body)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "governance.db"
    make_store(path)
    return path


@pytest.fixture
def explorer(db: Path) -> Iterator[Explorer]:
    clock = FakeClock()
    app = ExplorerApp(db, clock=clock)
    server = make_server(app, "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Explorer(server, app, clock)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def validate(page: Any) -> None:
    jsonschema.validate(page, SCHEMA, cls=jsonschema.Draft202012Validator)


def test_binds_loopback_on_a_free_port(explorer: Explorer) -> None:
    host, port = explorer.server.server_address[:2]
    assert host == "127.0.0.1" and port > 0
    assert explorer.server.url == f"http://127.0.0.1:{port}/"


def test_releases_page_matches_the_schema(explorer: Explorer) -> None:
    status, page = explorer.json("/releases")
    assert status == 200
    validate(page)
    assert page["total"] == 4
    assert [e["activated_epoch"] for e in page["entries"]] == [30, 20, 10, 0]
    installed = page["entries"][-1]
    assert installed["install_times"] == [50, 4000] and installed["last_install_ts"] == 4000

    status, page = explorer.json("/releases?proposer=ALICE&page_size=1&page=1")
    validate(page)
    assert (page["total"], page["page"], page["page_size"]) == (2, 1, 1)
    assert page["entries"][0]["build_hash"] == build(1)

    status, page = explorer.json("/releases/?start_epoch=10&end_epoch=20")
    assert status == 200 and [e["activated_epoch"] for e in page["entries"]] == [20, 10]


def test_huge_page_size_is_capped(explorer: Explorer) -> None:
    status, page = explorer.json("/releases?page_size=1000000")
    assert status == 200 and page["page_size"] == 100
    validate(page)


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("page=-1", "page"),
        ("page=abc", "page"),
        ("page=", "page"),
        ("page=1&page=2", "page"),
        ("page_size=0", "page_size"),
        ("page_size=-5", "page_size"),
        ("page_size=ten", "page_size"),
        ("start_epoch=x", "start_epoch"),
        ("end_epoch=-1", "end_epoch"),
        ("start_epoch=9&end_epoch=1", "start_epoch"),
        ("proposer=", "proposer"),
        ("store=", "store"),
        ("bogus=1", "bogus"),
    ],
)
def test_bad_parameter_is_400_naming_it(explorer: Explorer, query: str, parameter: str) -> None:
    status, body = explorer.json(f"/releases?{query}")
    assert status == 400
    assert body["parameter"] == parameter
    assert body["error"].startswith(f"{parameter}: ")


def test_unusable_store_is_503_with_a_json_message(explorer: Explorer, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"\x00garbage, not SQLite\n" * 500)
    for target in (
        f"/releases?store={corrupt}",
        f"/releases/timeline?store={corrupt}",
        f"/metrics?store={corrupt}",
        f"/releases?store={tmp_path / 'missing.db'}",
    ):
        status, headers, body = explorer.get(target)
        assert status == 503, target
        payload = json.loads(body)
        assert "governance store" in payload["error"]
        assert payload["store"].endswith((".db",))


def test_store_override_serves_another_store(explorer: Explorer, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    make_store(other, releases=1)
    status, page = explorer.json(f"/releases?store={other}")
    assert status == 200 and page["total"] == 1


def test_metrics_is_prometheus_text(explorer: Explorer) -> None:
    status, headers, body = explorer.get("/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    assert "# TYPE release_installs_total counter" in text
    assert "\nrelease_installs_total 2\n" in text
    assert 'release_votes_total{choice="yes"} 4' in text
    status, body = explorer.json("/metrics?page=1")
    assert status == 400 and body["parameter"] == "page"


def test_timeline_and_other_paths(explorer: Explorer) -> None:
    status, body = explorer.json("/releases/timeline?bucket_s=1000")
    assert status == 200 and body["bucket_s"] == 1000
    assert [(p["ts"], p["count"], p["cumulative"]) for p in body["points"]] == [
        (0, 1, 1), (4000, 1, 2)
    ]
    status, body = explorer.json("/releases/timeline?bucket_s=0")
    assert status == 400 and body["parameter"] == "bucket_s"
    status, body = explorer.json("/nope")
    assert status == 404 and "/releases" in body["endpoints"]
    status, headers, raw = explorer.get("/releases", method="POST")
    assert status == 405 and json.loads(raw)["error"]
    status, body = explorer.json("/")
    assert status == 200 and "/metrics" in body["endpoints"]


def test_concurrent_clients(explorer: Explorer) -> None:
    targets = [
        "/releases", "/releases?page_size=1&page=2", "/releases?proposer=bob",
        "/releases/timeline", "/metrics", "/releases?page=abc",
    ] * 6

    def fetch(target: str) -> tuple[str, int, bytes]:
        status, _, body = explorer.get(target)
        return target, status, body

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(fetch, targets))
    assert len(results) == len(targets)
    for target, status, body in results:
        if "abc" in target:
            assert status == 400 and json.loads(body)["parameter"] == "page"
        else:
            assert status == 200, (target, body)
            if target.startswith("/releases?"):
                validate(json.loads(body))


def test_cache_for_15_seconds_with_an_injected_clock(explorer: Explorer, db: Path) -> None:
    status, headers, first = explorer.get("/releases")
    assert headers["X-Cache"] == "miss"
    with GovernanceStore.open(db, create=False) as store:
        store.record_install(build(3), "node-9", 9000.0)
    explorer.clock.now += 14.9
    status, headers, cached = explorer.get("/releases")
    assert headers["X-Cache"] == "hit" and cached == first
    # the same normalised query (proposer case, capped page size) shares the entry
    explorer.get("/releases?proposer=alice&page_size=100")
    status, headers, _ = explorer.get("/releases?proposer=ALICE&page_size=500")
    assert headers["X-Cache"] == "hit"
    explorer.clock.now += 0.1
    status, headers, fresh = explorer.get("/releases")
    assert headers["X-Cache"] == "miss" and fresh != first
    assert json.loads(fresh)["entries"][0]["install_count"] == 1
    # errors are never cached
    assert explorer.get("/releases?page=x")[0] == 400
    assert explorer.get("/releases?page=x")[1].get("X-Cache") is None


def test_serving_never_writes_the_store_and_persist_history_does(
    explorer: Explorer, db: Path
) -> None:
    """The seed's server upserted ``release_history`` on every cache miss; ours only reads
    (the store's bytes do not change), and ``explorer persist-history`` writes the table."""
    before = db.read_bytes()
    assert explorer.json("/releases?page_size=1")[0] == 200
    assert explorer.json("/releases?page_size=2")[0] == 200
    assert db.read_bytes() == before
    with GovernanceStore.open_readonly(db) as store:
        assert persisted_release_history(store) == []
    done = subprocess.run(
        [sys.executable, "-m", "releasesim.cli.main", "explorer", "persist-history",
         "--state", str(db), "--json"], capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"store": str(db), "rows": 4}
    with GovernanceStore.open_readonly(db) as store:
        rows = persisted_release_history(store)
    assert [r["activated_epoch"] for r in rows] == [30, 20, 10, 0]
    assert rows[-1]["proposer"] == "bob" and rows[-1]["install_count"] == 2


def test_app_answers_even_on_an_unexpected_error(db: Path) -> None:
    app = ExplorerApp(db, log=open(os.devnull, "w"))  # noqa: SIM115
    app._open = lambda path: (_ for _ in ()).throw(RuntimeError("boom"))  # type: ignore[method-assign]
    response = app.handle("GET", "/releases")
    assert response.status == 500 and "internal error" in response.json()["error"]


def test_serve_console_script(db: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TB_")}
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "releasesim"), "explorer", "serve",
         "--state", str(db), "--port", "0", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line, (line, proc.stderr.read() if proc.poll() else "")
        url = line.split(" on ", 1)[1].split()[0]
        with urllib.request.urlopen(url + "releases?page_size=2", timeout=30) as response:
            page = json.loads(response.read())
        validate(page)
        assert page["total"] == 4 and len(page["entries"]) == 2
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
