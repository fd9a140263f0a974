"""Benchmark: the HTTP explorer under load (issue 12, item 6).

Targets, on a 10,000-release store with 50 concurrent clients: p99 <= 100 ms for cached
pages and <= 500 ms for cache misses, no errors; 300 idle connections do not stop other
clients being served.

The server is ``releasesim explorer serve`` in its own process (``--quiet``); the load
generator is this process: 50 asyncio clients, each on its own keep-alive connection
(reconnecting when the server closes it), each sending its next request as soon as the
previous answer arrived. Phases, all measured in this run:

1. baseline: one client alone, cached pages and cache misses (the unloaded latency the
   loaded figures are compared with);
2. cached: 50 clients over 20 hot pages, warmed first;
3. misses: 50 clients, every request a page no one asked for before (``X-Cache: miss``);
4. idle: 300 connections opened and left silent, then phase 2 again alongside them; the
   server's thread count is read from ``/proc``;
5. reload: a writer records an install, and the next miss reloads the store's snapshot.

An error is a connection failure, a timeout (10 s) or a status other than 200. Latency is
from sending the request to the last byte of the answer. Nothing is asserted: it prints.

    .venv/bin/python benchmarks/bench_explorer_load.py [--releases 10000] [--clients 50]
        [--seconds 5] [--idle 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

CACHED_P99_TARGET_S = 0.100
MISS_P99_TARGET_S = 0.500
CLIENT_TIMEOUT_S = 10.0
HOT_PAGES = 20


def make_store(path: Path, releases: int, seed: int = 0) -> None:
    """``releases`` approved releases (2 of 3 signers, 20 proposers), 0-3 installs each."""
    from releasesim.model.crypto import ReleaseSigner, blake3_hex
    from releasesim.model.governance import approve_release, propose_release
    from releasesim.model.quorum import Attestation
    from releasesim.model.store import GovernanceStore

    rng = random.Random(seed)
    signers = [ReleaseSigner.derived(f"bench-explorer-{i}") for i in range(3)]
    keys = tuple(s.public_key for s in signers)
    with GovernanceStore.open(path) as store, store.transaction():
        for i in range(releases):
            build = blake3_hex(f"bench explorer build {i}".encode())
            attesters = rng.sample(signers, 2)
            proposal = propose_release(
                store, build_hash=build,
                attestations=[Attestation(s.public_key, s.attest(build)) for s in attesters],
                signer_set=keys, threshold=2, proposer=f"proposer-{i % 20}", epoch=i,
            )
            approve_release(store, proposal.id, voter="voter", epoch=i)
            for node in range(rng.randrange(4)):
                store.record_install(build, f"node-{node}", 1_000.0 + 10.0 * i + node)


def hot_targets(releases: int) -> list[str]:
    return [f"/releases?page={i}" for i in range(HOT_PAGES // 2)] + [
        f"/releases?proposer=proposer-{i}" for i in range(HOT_PAGES // 2)
    ]


def miss_targets(releases: int, seed: int) -> Iterator[str]:
    """Distinct pages, filters and sizes in a seeded random order (never repeated)."""
    rng = random.Random(seed)
    seen: set[str] = set()
    while True:
        kind = rng.randrange(3)
        size = rng.randint(10, 100)
        if kind == 0:
            target = f"/releases?page={rng.randrange(releases // size)}&page_size={size}"
        elif kind == 1:
            start = rng.randrange(releases)
            target = f"/releases?start_epoch={start}&end_epoch={start + rng.randrange(500)}"
            target += f"&page_size={size}"
        else:
            target = f"/releases?proposer=PROPOSER-{rng.randrange(20)}&page={rng.randrange(5)}"
            target += f"&page_size={size}"
        if target not in seen:
            seen.add(target)
            yield target


class Client:
    """One keep-alive HTTP/1.1 connection; reconnects when the server closes it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, target: str) -> tuple[int, dict[str, str]]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(f"GET {target} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("closed by the server")
        headers: dict[str, str] = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close" or status_line.startswith(
            b"HTTP/1.0"
        ):
            self.close()
        return int(status_line.split()[1]), headers

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _load(port: int, clients: int, seconds: float, next_target: Callable[[], str],
                count: int | None) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[str] = []
    misses = 0
    deadline = time.perf_counter() + seconds

    async def one_client() -> None:
        nonlocal misses
        client = Client(port)
        while time.perf_counter() < deadline and (count is None or len(latencies) < count):
            start = time.perf_counter()
            try:
                status, headers = await asyncio.wait_for(
                    client.get(next_target()), CLIENT_TIMEOUT_S
                )
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                errors.append(type(exc).__name__)
                client.close()
                continue
            latencies.append(time.perf_counter() - start)
            if status != 200:
                errors.append(f"HTTP {status}")
            misses += headers.get("x-cache") == "miss"
        client.close()

    started = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(clients)))
    return summary(latencies, errors, misses, time.perf_counter() - started)


def summary(latencies: list[float], errors: list[str], misses: int, wall: float
            ) -> dict[str, Any]:
    ordered = sorted(latencies) or [float("nan")]

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "requests": len(latencies), "errors": len(errors), "error_kinds": sorted(set(errors)),
        "misses": misses, "p50_s": pct(0.50), "p99_s": pct(0.99), "max_s": ordered[-1],
        "per_s": len(latencies) / wall if wall > 0 else 0.0,
    }


def load(port: int, clients: int, seconds: float, next_target: Callable[[], str],
         count: int | None = None) -> dict[str, Any]:
    """``clients`` clients for ``seconds`` (or until ``count`` answers) -> latency summary."""
    return asyncio.run(_load(port, clients, seconds, next_target, count))


def threads_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("Threads:")))


def start_server(store: Path) -> tuple[subprocess.Popen[str], int]:
    command = [str(Path(sys.executable).parent / "releasesim"), "explorer", "serve",
               "--state", str(store), "--port", "0", "--quiet"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "http://" not in line:
        proc.kill()
        stderr = proc.stderr.read() if proc.stderr else ""
        raise RuntimeError(f"server did not start: {line!r} {stderr}")
    return proc, int(line.split("http://127.0.0.1:", 1)[1].split("/", 1)[0])


def measure(releases: int = 10_000, clients: int = 50, seconds: float = 5.0, idle: int = 300,
            seed: int = 1) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="bench-explorer-"))
    try:
        store = folder / "governance.db"
        started = time.perf_counter()
        make_store(store, releases, seed)
        build_s = time.perf_counter() - started
        proc, port = start_server(store)
        try:
            return _phases(proc, port, store, releases, clients, seconds, idle, seed, build_s)
        finally:
            proc.terminate()
            _, stderr = proc.communicate(timeout=30)
            if stderr.strip():
                print(f"explorer-load: server stderr:\n{stderr.strip()}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _phases(proc: subprocess.Popen[str], port: int, store: Path, releases: int, clients: int,
            seconds: float, idle: int, seed: int, build_s: float) -> dict[str, Any]:
    hot = hot_targets(releases)
    rng = random.Random(seed)
    misses = miss_targets(releases, seed)
    out: dict[str, Any] = {"benchmark": "explorer_load", "releases": releases,
                           "clients": clients, "seconds": seconds, "idle": idle,
                           "build_s": build_s, "cpus": os.cpu_count(),
                           "load_before": os.getloadavg()[0]}
    out["first_s"] = load(port, 1, 60.0, lambda: hot[0], count=1)  # loads the store's snapshot
    load(port, 1, 0.5, lambda: rng.choice(hot))  # warm every hot page
    out["single_cached"] = load(port, 1, 2.0, lambda: rng.choice(hot))
    out["single_miss"] = load(port, 1, 2.0, lambda: next(misses))
    out["cached"] = load(port, clients, seconds, lambda: rng.choice(hot))
    out["miss"] = load(port, clients, seconds, lambda: next(misses))
    out["threads_busy"] = threads_of(proc.pid)
    sockets = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(idle)]
    try:
        out["threads_idle"] = threads_of(proc.pid)
        load(port, 1, 0.3, lambda: rng.choice(hot))  # re-warm pages a TTL may have expired
        out["cached_with_idle"] = load(port, clients, min(seconds, 5.0), lambda: rng.choice(hot))
        out["threads_idle_after"] = threads_of(proc.pid)
    finally:
        for sock in sockets:
            sock.close()
    from releasesim.model.store import GovernanceStore

    with GovernanceStore.open(store, create=False) as writer:
        writer.record_install(writer.approved_releases()[0].build_hash, "node-late", 9e9)
    out["reload"] = load(port, 1, 60.0, lambda: next(misses), count=1)
    out["ok"] = (
        out["cached"]["p99_s"] <= CACHED_P99_TARGET_S and out["cached"]["errors"] == 0
        and out["miss"]["p99_s"] <= MISS_P99_TARGET_S and out["miss"]["errors"] == 0
        and out["cached_with_idle"]["errors"] == 0
        and out["cached_with_idle"]["p99_s"] <= CACHED_P99_TARGET_S
    )
    return out


def _ms(s: float) -> str:
    return f"{s * 1e3:.1f} ms"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--idle", type=int, default=300)
    args = parser.parse_args(argv)
    r = measure(args.releases, args.clients, args.seconds, args.idle)
    print(f"explorer-load: {r['releases']:,} releases (store built in {r['build_s']:.1f} s), "
          f"{r['cpus']} CPUs, load average {r['load_before']:.1f}")
    print(f"  first request (loads the store): {_ms(r['first_s']['max_s'])}")
    rows = [
        ("1 client, cached", r["single_cached"], None),
        ("1 client, miss", r["single_miss"], None),
        (f"{r['clients']} clients, cached", r["cached"], CACHED_P99_TARGET_S),
        (f"{r['clients']} clients, miss", r["miss"], MISS_P99_TARGET_S),
        (f"{r['clients']} clients + {r['idle']} idle", r["cached_with_idle"], CACHED_P99_TARGET_S),
    ]
    for label, row, target in rows:
        goal = f" (target p99 <= {_ms(target)})" if target else ""
        kinds = f" {row['error_kinds']}" if row["errors"] else ""
        print(f"  {label:<24} p50 {_ms(row['p50_s']):>9}  p99 {_ms(row['p99_s']):>9}  "
              f"max {_ms(row['max_s']):>9}  {row['per_s']:7.0f} req/s  {row['requests']:6d} "
              f"requests, {row['misses']} misses, {row['errors']} errors{kinds}{goal}")
    print(f"  server threads: {r['threads_busy']} after load, {r['threads_idle']} with "
          f"{r['idle']} idle connections open, {r['threads_idle_after']} after the idle phase")
    print(f"  after a writer's commit, the next miss (snapshot reload): "
          f"{_ms(r['reload']['max_s'])}")
    print(f"  targets met: {'yes' if r['ok'] else 'NO'}")
    return r


if __name__ == "__main__":
    main()
