"""The runner: many replications of one scenario, their tables, the run directory.

``run_scenario`` maps ``releasesim.sim.world.simulate_replication(scenario, seed, i)`` over
``i in range(replications)`` on an executor (``releasesim.sim.executors``: serial, local process
pool, Dask), sorts the results by replication, builds the four result tables once at
the end -- ``summary`` (one row per replication), ``nodes`` (one row per node and
replication), ``events`` (governance events), ``downtime`` (every node's down intervals)
-- and, when asked, writes the run directory atomically::

    <out_dir>/summary.parquet  summary.csv  nodes.parquet  events.parquet
             downtime.parquet  manifest.json
             [governance.db]   (replication 0's store, with keep_store)

Seeds: replication ``i`` of a run with seed ``S`` is computed from ``(S, i)`` only, so the
tables are identical whatever the executor, worker count or completion order.

The printed blast-radius summary (mean and 95% CI of the main metrics) lives in
``releasesim.reports.blast_radius``, with the other statistics; the CLI prints it.

Imports ``sim.world`` (lazily, at run time), ``sim.scenario``, ``sim.executors``; never
``reports``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import platform
import secrets
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from releasesim.sim.executors import (
    ExecutorInfo,
    ReplicationFn,
    RunError,
    default_workers,
    execute,
    validate_executor,
)
from releasesim.sim.knobs import MAX_REPLICATIONS
from releasesim.sim.progress import Progress
from releasesim.sim.scenario import config_hash
from releasesim.sim.tables import (
    INVARIANT_COLUMNS,
    downtime_frame,
    events_frame,
    invariant_violations,
    nodes_frame,
    summary_frame,
)
from releasesim.sim.world import simulate_replication

DEFAULT_REPLICATIONS = 20
DEFAULT_SEED = 0
RUNS_DIR = Path("runs")
RUN_FILES = (
    "summary.parquet", "summary.csv", "nodes.parquet", "events.parquet", "downtime.parquet",
)
MANIFEST = "manifest.json"
GOVERNANCE_DB = "governance.db"
MANIFEST_PACKAGES = ("releasesim", "simpy", "numpy", "pandas", "pynacl", "blake3", "pyarrow")



@dataclass(slots=True)
class RunResult:
    """The tables of one run, its manifest and where it was written (if anywhere)."""

    summary: pd.DataFrame
    nodes: pd.DataFrame
    events: pd.DataFrame
    manifest: dict[str, Any]
    out_dir: Path | None = None
    invariant_violations: dict[str, int] = field(default_factory=dict)
    downtime: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Every node's recorded down intervals (``DOWNTIME_TABLE``)."""

    @property
    def ok(self) -> bool:
        """True when every invariant column is zero in every replication."""
        return not self.invariant_violations


# --------------------------------------------------------------------------- run directory


def utc_now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def _iso(moment: _dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def default_out_dir(scenario_name: str, moment: _dt.datetime | None = None) -> Path:
    """``runs/<scenario-name>-<UTC timestamp>``, with a suffix if that already exists."""
    stamp = (moment or utc_now()).strftime("%Y%m%dT%H%M%SZ")
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in scenario_name) or "run"
    base = RUNS_DIR / f"{safe}-{stamp}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def check_out_dir(out_dir: Path) -> None:
    """Refuse an existing destination unless it is an empty directory."""
    if out_dir.exists():
        if not out_dir.is_dir():
            raise RunError(f"--out {out_dir} exists and is not a directory")
        if any(out_dir.iterdir()):
            raise RunError(f"--out {out_dir} already exists and is not empty; choose another")


def package_versions(extra: Sequence[str] = ()) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in (*MANIFEST_PACKAGES, *extra):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _fsync_tree(directory: Path) -> None:
    for path in directory.iterdir():
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def write_tables(directory: Path, result: RunResult) -> None:
    """Write the tables and manifest into ``directory`` (the temporary run directory)."""
    result.summary.to_parquet(directory / "summary.parquet", index=False)
    result.summary.to_csv(directory / "summary.csv", index=False)
    result.nodes.to_parquet(directory / "nodes.parquet", index=False)
    result.events.to_parquet(directory / "events.parquet", index=False)
    result.downtime.to_parquet(directory / "downtime.parquet", index=False)
    text = json.dumps(result.manifest, indent=2, sort_keys=False, allow_nan=False, default=str)
    (directory / MANIFEST).write_text(text + "\n", encoding="utf-8")


def _publish(tmp: Path, out_dir: Path) -> None:
    """Move the finished temporary directory into place (atomic rename)."""
    _fsync_tree(tmp)
    try:
        if out_dir.exists():
            check_out_dir(out_dir)
            out_dir.rmdir()
        os.replace(tmp, out_dir)
    except OSError as exc:
        raise RunError(f"cannot move the run into {out_dir}: {exc.strerror or exc}") from None
    _fsync_dir(out_dir.parent)


# --------------------------------------------------------------------------- the run


def _scenario_name(scenario: Any) -> str:
    return str(getattr(scenario, "name", None) or "scenario")


def _scenario_default(scenario: Any, key: str) -> Any:
    """A run default (``replications``, ``seed``) the scenario may carry, else None."""
    run = getattr(scenario, "run", None)
    if run is not None and getattr(run, key, None) is not None:
        return getattr(run, key)
    return getattr(scenario, key, None)


def _json_safe(value: Any) -> Any:
    """NaN/inf are not JSON; the manifest records them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def resolve_run_settings(
    scenario: Any,
    *,
    replications: int | None,
    seed: int | None,
    workers: int | None,
    executor: str,
    scheduler: str | None,
) -> tuple[int, int, int | None]:
    """Fill in defaults and validate; ``(replications, seed, workers)`` or ``RunError``."""
    if replications is None:
        replications = _scenario_default(scenario, "replications") or DEFAULT_REPLICATIONS
    if seed is None:
        seed = _scenario_default(scenario, "seed")
        seed = DEFAULT_SEED if seed is None else seed
    if isinstance(replications, bool) or int(replications) < 1:
        raise RunError(f"replications must be at least 1, got {replications}")
    if int(replications) > MAX_REPLICATIONS:
        raise RunError(f"replications must be at most {MAX_REPLICATIONS:,}, got {replications}")
    if isinstance(seed, bool) or int(seed) < 0:
        raise RunError(f"seed must be a non-negative integer, got {seed}")
    validate_executor(executor, workers=workers, scheduler=scheduler)
    return int(replications), int(seed), (None if workers is None else int(workers))


def run_scenario(
    scenario: Any,
    *,
    replications: int | None = None,
    seed: int | None = None,
    workers: int | None = None,
    executor: str = "process",
    scheduler: str | None = None,
    out_dir: Path | str | None = None,
    progress: bool = True,
    keep_store: bool | Path | None = None,
    write: bool = True,
    replication_fn: ReplicationFn | None = None,
    extra_manifest: dict[str, Any] | None = None,
    on_replication: Callable[[], None] | None = None,
) -> RunResult:
    """Run ``replications`` replications of ``scenario`` and return their tables.

    ``replications``/``seed`` default to the scenario's own run settings, else 20 and 0.
    ``workers`` defaults to the CPU count (``process``, Dask ``LocalCluster``).
    With ``write`` (the default) the run directory is written atomically to ``out_dir``
    (default ``runs/<scenario-name>-<UTC timestamp>``); an existing non-empty ``out_dir``
    is refused before anything runs. ``on_replication`` is called after each finished
    replication (a caller's progress bar). ``keep_store`` (True, or a path) exports replication
    0's governance store as ``governance.db`` in the run directory (or at that path).
    ``replication_fn`` replaces ``releasesim.sim.world.simulate_replication`` (tests, benchmarks).
    """
    replications, seed, workers = resolve_run_settings(
        scenario,
        replications=replications,
        seed=seed,
        workers=workers,
        executor=executor,
        scheduler=scheduler,
    )
    if replication_fn is None:
        replication_fn = simulate_replication
    name = _scenario_name(scenario)
    started = utc_now()
    destination: Path | None = None
    if write:
        destination = Path(out_dir) if out_dir is not None else default_out_dir(name, started)
        check_out_dir(destination)
    elif keep_store is True:
        raise RunError("keep_store=True needs a run directory (write=True) or an explicit path")

    tmp: Path | None = None
    if destination is not None:
        destination.parent.mkdir(parents=True, exist_ok=True)
        tmp = destination.parent / f".{destination.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
        tmp.mkdir()
    with contextlib.ExitStack() as stack:
        terminated = stack.enter_context(sigterm_as_exit()) if tmp is not None else None
        return _run_into(terminated, tmp, destination, scenario, replication_fn, name,
                         started, seed,
                         replications, executor, workers, scheduler, keep_store, progress,
                         extra_manifest, on_replication)


@dataclass(slots=True)
class Termination:
    """Set when SIGTERM arrived during a run (``sigterm_as_exit``)."""

    signum: int = 0


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[Termination]:
    """While a run directory is being written, SIGTERM raises ``SystemExit(143)``.

    The default action of SIGTERM ends the process on the spot, leaving the hidden
    temporary folder behind; raised as an exception in the main thread, it unwinds
    through the ``finally`` that removes it (as Ctrl-C does). An exception raised while
    the interpreter runs a hook that ignores exceptions (a fork handler, a finalizer) is
    lost, so the signal is also recorded in the yielded ``Termination`` and the runner
    raises again after the next replication (the interpreter's "Exception ignored"
    report of the lost one is suppressed: it is not the user's error). The previous
    handler is restored afterwards; outside the main thread nothing is changed.
    """
    state = Termination()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def terminate(signum: int, frame: object) -> None:
        state.signum = signum
        raise SystemExit(128 + signum)

    unraisable = sys.unraisablehook

    def quiet_lost_exit(info: Any) -> None:
        # the SystemExit raised in a hook that ignores exceptions: recorded in ``state``,
        # acted on after the next replication; not a traceback for the user
        if state.signum and info.exc_type is SystemExit:
            return
        unraisable(info)

    previous = signal.signal(signal.SIGTERM, terminate)
    sys.unraisablehook = quiet_lost_exit
    try:
        yield state
    finally:
        signal.signal(signal.SIGTERM, previous)
        sys.unraisablehook = unraisable


def _run_into(
    terminated: Termination | None,
    tmp: Path | None, destination: Path | None, scenario: Any, replication_fn: Any,
    name: str, started: _dt.datetime, seed: int, replications: int, executor: str,
    workers: int | None, scheduler: str | None, keep_store: bool | Path | None,
    progress: bool, extra_manifest: dict[str, Any] | None,
    on_replication: Callable[[], None] | None,
) -> RunResult:
    """Run the replications and write the run directory through ``tmp`` (then removed)."""
    try:
        store_path: Path | None = None
        if keep_store is True:
            assert tmp is not None
            store_path = tmp / GOVERNANCE_DB
        elif keep_store:
            store_path = Path(keep_store)
        info: dict[str, Any] = {}
        t0 = time.perf_counter()
        results: list[Any] = []
        with Progress(replications, enabled=progress, desc=name) as bar:
            for item in execute(
                executor,
                replication_fn,
                scenario,
                seed,
                replications,
                workers=workers,
                scheduler=scheduler,
                keep_store=store_path,
                info=info,
            ):
                results.append(item)
                bar.advance()
                if on_replication is not None:
                    on_replication()
                if terminated is not None and terminated.signum:
                    raise SystemExit(128 + terminated.signum)
        wall = time.perf_counter() - t0
        results.sort(key=lambda r: r.replication)
        if [r.replication for r in results] != list(range(replications)):
            raise RunError("the executor did not return every replication exactly once")
        finished = utc_now()
        effective = _executor_info(executor, workers, scheduler, replications, info)
        summary = summary_frame(results)
        result = RunResult(
            summary=summary,
            nodes=nodes_frame(results),
            events=events_frame(results),
            downtime=downtime_frame(results),
            manifest=build_manifest(
                scenario,
                seed=seed,
                replications=replications,
                executor=effective,
                started=started,
                finished=finished,
                wall_s=wall,
                keep_store=store_path is not None,
                extra=extra_manifest,
            ),
            out_dir=destination,
            invariant_violations=invariant_violations(summary),
        )
        if terminated is not None and terminated.signum:
            raise SystemExit(128 + terminated.signum)
        if tmp is not None and destination is not None:
            write_tables(tmp, result)
            _publish(tmp, destination)
            tmp = None
        return result
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _executor_info(
    executor: str,
    workers: int | None,
    scheduler: str | None,
    replications: int,
    info: dict[str, Any],
) -> ExecutorInfo:
    if executor == "serial":
        return ExecutorInfo("serial", 1)
    if executor == "process":
        return ExecutorInfo("process", min(workers or default_workers(), replications))
    count = info.get("workers") or workers or default_workers()
    return ExecutorInfo("dask", int(count), scheduler)


def build_manifest(
    scenario: Any,
    *,
    seed: int,
    replications: int,
    executor: ExecutorInfo,
    started: _dt.datetime,
    finished: _dt.datetime,
    wall_s: float,
    keep_store: bool = False,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything needed to reproduce and identify the run (written as manifest.json)."""
    extra_packages = ("dask", "distributed") if executor.name == "dask" else ()
    manifest: dict[str, Any] = {
        "format": "releasesim-run/1",
        "scenario_name": _scenario_name(scenario),
        "config_hash": config_hash(scenario),
        "seed": seed,
        "replications": replications,
        "replication_seeds": [[i, seed] for i in range(replications)],
        "seed_rule": "replication i draws from numpy SeedSequence(seed, spawn_key=(i,))",
        "executor": executor.name,
        "workers": executor.workers,
        "scheduler": executor.scheduler,
        "files": [*RUN_FILES, MANIFEST] + ([GOVERNANCE_DB] if keep_store else []),
        "started_utc": _iso(started),
        "finished_utc": _iso(finished),
        "wall_s": round(wall_s, 6),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(extra_packages),
        "argv": list(sys.argv),
    }
    if extra:
        manifest.update(extra)
    manifest["scenario"] = _json_safe(scenario.to_dict())
    return manifest


def run_label(result: RunResult) -> str:
    """The final one-line report of a run (printed on stderr by the CLI)."""
    m = result.manifest
    where = f" -> {result.out_dir}" if result.out_dir is not None else ""
    workers = f", {m['workers']} worker{'s' if m['workers'] != 1 else ''}"
    return (
        f"ran {m['replications']} replications of {m['scenario_name']} in {m['wall_s']:.1f} s "
        f"({m['executor']}{workers}){where}"
    )


__all__ = [
    "INVARIANT_COLUMNS",
    "RunError",
    "RunResult",
    "invariant_violations",
    "run_label",
    "run_scenario",
]
