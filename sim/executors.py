"""Executors: where the replications of one run are computed.

Three executors map one replication function -- normally
``releasesim.sim.world.simulate_replication(scenario, seed, replication, keep_store=None)`` -- over
``replication in range(replications)`` and yield the results *as they complete*, so the
runner can show progress:

- ``serial``: in this process, in order.
- ``process``: a local ``concurrent.futures.ProcessPoolExecutor`` (``fork`` start method
  on Linux, so workers start instantly with the parent's imports; the platform default
  elsewhere). Replications are submitted in small chunks to keep per-task overhead low
  while balancing load.
- ``dask``: a ``dask.distributed`` Client connected to ``scheduler`` (``tcp://HOST:PORT``),
  or to a ``LocalCluster`` started (and closed) here when no scheduler is given. The
  scenario is scattered to the workers once, and replications go in chunks as on the
  process pool (fewer round trips through the scheduler when replications are many and
  small). A cluster's start-up costs seconds: a warm one (``scheduler``) saves it per run.

Every replication is a pure function of ``(scenario, seed, replication)``, so the order
in which results arrive never matters: the runner sorts them by replication. Results
cross process boundaries as plain picklable objects.

Errors a user can cause (bad scheduler URL, unreachable scheduler, Dask missing) raise
``RunError`` with a one-line message. This module imports nothing from ``releasesim.sim.world``; it
receives the replication function from the runner.
"""

from __future__ import annotations

import gc
import math
import multiprocessing
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from releasesim.model.errors import ReleasesimError
from releasesim.sim.recorder import DOWNTIME_COLUMNS, EVENT_COLUMNS, NODE_COLUMNS

EXECUTORS = ("serial", "process", "dask")
DASK_CONNECT_TIMEOUT_S = 10.0
PROBE_TIMEOUT_S = 5.0
"""How long ``probe_scheduler`` waits for a Dask scheduler's handshake (documented)."""
DASK_HANDSHAKE_KEY = b"pickle-protocol"
HANDSHAKE_MAX_BYTES = 512
DASK_INSTALL_HINT = "pip install releasesim[dask]"
_SCHEDULER_RE = re.compile(r"^(tcp|tls)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+):(\d{1,5})$")

ReplicationFn = Callable[..., Any]
"""``fn(scenario, seed, replication, *, keep_store=None) -> ReplicationResult``."""


class RunError(ReleasesimError):
    """A run cannot start or finish: bad executor settings, unreachable scheduler, ...

    Reported by the CLI as one line with exit code 2.
    """

    exit_code = 2


@dataclass(frozen=True, slots=True)
class ExecutorInfo:
    """What actually ran the replications (recorded in the manifest)."""

    name: str
    workers: int
    scheduler: str | None = None


def default_workers() -> int:
    """The default worker count: the number of CPUs (at least 1)."""
    return max(1, os.cpu_count() or 1)


def validate_scheduler(url: str) -> str:
    """Return ``url`` if it has the form ``tcp://HOST:PORT`` (or ``tls://``), else raise."""
    match = _SCHEDULER_RE.match(url.strip())
    if match is None or not 1 <= int(match.group(3)) <= 65535:
        raise RunError(
            f"scheduler URL {url!r} is not of the form tcp://HOST:PORT (port 1-65535)"
        )
    return url.strip()


def validate_executor(
    executor: str, *, workers: int | None, scheduler: str | None
) -> None:
    """Check the executor settings before anything runs; raise ``RunError`` if unusable."""
    if executor not in EXECUTORS:
        raise RunError(f"unknown executor {executor!r} (choose from {', '.join(EXECUTORS)})")
    if workers is not None and (isinstance(workers, bool) or int(workers) < 1):
        raise RunError(f"workers must be at least 1, got {workers}")
    if scheduler is not None:
        if executor != "dask":
            raise RunError(f"--scheduler {scheduler} needs --executor dask (got {executor})")
        validate_scheduler(scheduler)
    if executor == "dask":
        _import_distributed()


def probe_scheduler(url: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Fail fast (one line, within ``timeout`` seconds) unless a Dask scheduler answers.

    A Dask peer speaks first: on a new TCP connection it sends its handshake, a msgpack
    map with the keys ``compression``, ``python`` and ``pickle-protocol``. The probe
    connects and reads until it has seen that handshake; a refused or unreachable
    address, a server that stays silent (another service on the port) or one that says
    something else is refused here, before ``distributed`` could hang on it or misread
    its bytes as frame lengths.
    """
    match = _SCHEDULER_RE.match(validate_scheduler(url))
    assert match is not None
    host, port = match.group(2).strip("[]"), int(match.group(3))
    deadline = time.monotonic() + timeout
    received = b""
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            while DASK_HANDSHAKE_KEY not in received and len(received) < HANDSHAKE_MAX_BYTES:
                conn.settimeout(max(deadline - time.monotonic(), 0.001))
                chunk = conn.recv(HANDSHAKE_MAX_BYTES - len(received))
                if not chunk:
                    break
                received += chunk
    except TimeoutError:
        if not received:
            raise RunError(f"{url} is not a Dask scheduler: no handshake within "
                           f"{timeout:g} s") from None
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise RunError(f"cannot reach the Dask scheduler at {url}: {reason}") from None
    if DASK_HANDSHAKE_KEY not in received:
        raise RunError(f"{url} is not a Dask scheduler: it answered with something else "
                       f"({len(received)} bytes that are not a Dask handshake)")


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise RunError(f"the dask executor needs dask.distributed: {DASK_INSTALL_HINT}") from exc
    return distributed


def _store_for(replication: int, keep_store: Path | None) -> Path | None:
    return keep_store if replication == 0 else None


def _run_one(
    fn: ReplicationFn, scenario: Any, seed: int, replication: int, keep_store: Path | None
) -> Any:
    store = _store_for(replication, keep_store)
    if store is None:
        result = fn(scenario, seed, replication)
    else:
        result = fn(scenario, seed, replication, keep_store=store)
    return _columnar(result)


def _columnar(result: Any) -> Any:
    """Turn a result's node, event and downtime records into DataFrames where the
    replication ran (columns as they are, row tuples through ``from_records``).

    A DataFrame pickles as a few arrays, so the parent process, which shares the CPUs
    with the workers, unpickles each result about 20x faster than a list of tuples. Every
    executor goes through here, so the tables are built the same way whatever runs them.
    """
    for attr, columns in (("nodes", NODE_COLUMNS), ("events", EVENT_COLUMNS),
                          ("downtime", DOWNTIME_COLUMNS)):
        records = getattr(result, attr, None)
        if isinstance(records, dict):
            setattr(result, attr, pd.DataFrame(records, columns=list(columns), copy=False))
        elif isinstance(records, list):
            setattr(result, attr, pd.DataFrame.from_records(
                records, columns=list(columns), nrows=len(records)
            ))
    return result


def _run_chunk(
    fn: ReplicationFn,
    scenario: Any,
    seed: int,
    replications: list[int],
    keep_store: Path | None,
) -> list[Any]:
    """Worker-side: compute a chunk of replications (module level, so it pickles)."""
    return [_run_one(fn, scenario, seed, i, keep_store) for i in replications]


def chunk_size(replications: int, workers: int) -> int:
    """Replications per task: about 32 tasks per worker, at most 32 replications each.

    Small enough that the last task to finish leaves the other workers idle for at most
    about 1/32 of the run (with 8 tasks per worker, 40 replications went 3 to a task and
    one worker idled for two of them), and shows progress; large enough that task
    overhead stays negligible for thousands of tiny replications.
    """
    return max(1, min(32, math.ceil(replications / (workers * 32))))


def run_serial(
    fn: ReplicationFn,
    scenario: Any,
    seed: int,
    replications: int,
    *,
    keep_store: Path | None = None,
) -> Iterator[Any]:
    """Compute the replications one after another in this process."""
    for i in range(replications):
        yield _run_one(fn, scenario, seed, i, keep_store)


def _mp_context() -> multiprocessing.context.BaseContext:
    # fork starts workers instantly with the parent's modules already imported (the
    # replication function, numpy, simpy). Workers only compute and return results, so
    # the parent's threads (a progress monitor) do not matter to them.
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


def _worker_init() -> None:
    """In a pool worker: SIGTERM ends the process (its default action), and what the
    worker inherited from the parent is frozen out of the cyclic collector's scans.

    A forked worker inherits the runner's SIGTERM handler (``runner.sigterm_as_exit``),
    which raises ``SystemExit``; the pool's task wrapper catches that and returns it as the
    task's result, so a terminated worker went on computing its queued chunks and an
    interrupted run waited for them (minutes on a loaded machine). ``gc.freeze``: the
    collector would otherwise walk the parent's whole heap (imports, earlier results)
    between replications, touching, and so copying, pages the fork shares.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    gc.freeze()


def run_process(
    fn: ReplicationFn,
    scenario: Any,
    seed: int,
    replications: int,
    *,
    workers: int | None = None,
    keep_store: Path | None = None,
) -> Iterator[Any]:
    """Compute the replications on a local process pool, yielding them as they complete."""
    workers = min(workers or default_workers(), replications)
    size = chunk_size(replications, workers)
    chunks = [list(range(i, min(i + size, replications))) for i in range(0, replications, size)]
    with ProcessPoolExecutor(max_workers=workers, mp_context=_mp_context(),
                             initializer=_worker_init) as pool:
        pending: set[Future[list[Any]]] = {
            pool.submit(_run_chunk, fn, scenario, seed, chunk, keep_store) for chunk in chunks
        }
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield from future.result()
        except BaseException:
            # interrupted (Ctrl-C, SIGTERM, a failed replication): do not wait for the
            # chunks still running, stop their workers (SIGTERM, which ends them at once:
            # see ``_worker_init``). The pool then finds itself broken and fails every
            # pending future; they are not cancelled here, because the pool's manager
            # thread would crash setting an exception on a cancelled future (CPython 3.11)
            workers_alive = list(getattr(pool, "_processes", {}).values())
            for process in workers_alive:
                process.terminate()
            for process in workers_alive:  # one that started before its SIGTERM reset
                process.join(timeout=2)
                if process.is_alive():
                    process.kill()
            call_queue = getattr(pool, "_call_queue", None)
            if call_queue is not None:  # its feeder may be blocked on a pipe no one reads
                call_queue.cancel_join_thread()
            raise


def run_dask(
    fn: ReplicationFn,
    scenario: Any,
    seed: int,
    replications: int,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    keep_store: Path | None = None,
    info: dict[str, Any] | None = None,
) -> Iterator[Any]:
    """Compute the replications on a Dask cluster, yielding them as they complete.

    With ``scheduler`` the client connects to that cluster; otherwise a ``LocalCluster``
    of ``workers`` single-threaded worker processes is started and closed here. When
    ``keep_store`` is given, replication 0 runs in this process (a remote worker could not
    write the file here) while the cluster computes the others. ``info``, if given, is
    filled with ``workers`` (the cluster's worker count) once connected.
    """
    distributed = _import_distributed()
    cluster = None
    client = None
    try:
        if scheduler is None:
            import logging

            cluster = distributed.LocalCluster(
                n_workers=min(workers or default_workers(), replications),
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            client = distributed.Client(cluster)
        else:
            probe_scheduler(scheduler)
            try:
                client = distributed.Client(scheduler, timeout=DASK_CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError, ValueError) as exc:
                raise RunError(
                    f"cannot connect to the Dask scheduler at {scheduler}: "
                    f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                ) from None
        connected = len(client.scheduler_info().get("workers", {}))
        if info is not None:
            info["workers"] = connected
        remote = [i for i in range(replications) if not (keep_store is not None and i == 0)]
        size = chunk_size(len(remote), connected or workers or 1)
        # the scenario travels once to every worker, not with each task
        shared = client.scatter(scenario, broadcast=True, hash=False) if remote else None
        futures = [
            client.submit(_run_chunk, fn, shared, seed, remote[i : i + size], None, pure=False)
            for i in range(0, len(remote), size)
        ]
        if len(remote) < replications:
            yield _run_one(fn, scenario, seed, 0, keep_store)
        try:
            for future in distributed.as_completed(futures):
                yield from future.result()
        finally:
            client.cancel(futures)
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


def execute(
    executor: str,
    fn: ReplicationFn,
    scenario: Any,
    seed: int,
    replications: int,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    keep_store: Path | None = None,
    info: dict[str, Any] | None = None,
) -> Iterator[Any]:
    """Dispatch to the named executor; yields replication results in completion order."""
    validate_executor(executor, workers=workers, scheduler=scheduler)
    if executor == "serial":
        return run_serial(fn, scenario, seed, replications, keep_store=keep_store)
    if executor == "process":
        return run_process(
            fn, scenario, seed, replications, workers=workers, keep_store=keep_store
        )
    return run_dask(
        fn,
        scenario,
        seed,
        replications,
        workers=workers,
        scheduler=scheduler,
        keep_store=keep_store,
        info=info,
    )
