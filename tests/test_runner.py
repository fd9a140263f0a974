"""The runner: identical tables for every executor, the run directory, the statistics.

Small fleets (``fleet.nodes=40``) keep the whole module to a few seconds plus one Dask
LocalCluster start. Every run uses the real ``releasesim.sim.world.simulate_replication``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from releasesim.model.store import GovernanceStore
from releasesim.reports.blast_radius import blast_radius, format_blast_radius
from releasesim.reports.intervals import t975, t_interval, wilson
from releasesim.sim.api import resolve_scenario, run
from releasesim.sim.executors import RunError, chunk_size, validate_scheduler
from releasesim.sim.recorder import EVENT_COLUMNS, NODE_COLUMNS
from releasesim.sim.runner import RunResult, run_scenario
from releasesim.sim.tables import INVARIANT_COLUMNS
from releasesim.sim.world import simulate_replication

NODES = 40
REPS = 4
SEED = 11


@pytest.fixture(scope="module")
def scenario() -> Any:
    return resolve_scenario("baseline", [f"fleet.nodes={NODES}"])


def _tables(result: RunResult) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return result.summary, result.nodes, result.events


@pytest.fixture(scope="module")
def serial_run(scenario: Any) -> RunResult:
    return run_scenario(
        scenario, replications=REPS, seed=SEED, executor="serial", progress=False, write=False
    )


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("executor,workers", [("process", 1), ("process", 2), ("dask", 2)])
def test_every_executor_gives_identical_tables(
    scenario: Any, serial_run: RunResult, executor: str, workers: int
) -> None:
    other = run_scenario(
        scenario,
        replications=REPS,
        seed=SEED,
        executor=executor,
        workers=workers,
        progress=False,
        write=False,
    )
    for mine, theirs in zip(_tables(serial_run), _tables(other), strict=True):
        pdt.assert_frame_equal(mine, theirs, check_exact=True)
    assert other.manifest["executor"] == executor


def test_tables_have_ids_sorted_rows_and_stable_dtypes(serial_run: RunResult) -> None:
    summary, nodes, events = _tables(serial_run)
    assert list(summary["replication"]) == list(range(REPS))
    assert list(summary.columns[:2]) == ["replication", "seed"]
    assert (summary["seed"] == SEED).all()
    assert len(nodes) == REPS * NODES
    assert list(nodes.columns) == ["replication", "seed", *NODE_COLUMNS[1:]]
    assert list(events.columns) == ["replication", "seed", *EVENT_COLUMNS[1:]]
    assert (nodes["seed"] == SEED).all() and (events["seed"] == SEED).all()
    keys = nodes[["replication", "node"]].to_records(index=False).tolist()
    assert keys == sorted(keys)
    ev = events[["replication", "time_s"]].to_records(index=False).tolist()
    assert ev == sorted(ev)
    assert summary["replication"].dtype == "int64" and summary["seed"].dtype == "int64"
    assert nodes["replication"].dtype == "int64" and events["time_s"].dtype == "float64"
    for name in INVARIANT_COLUMNS:
        assert (summary[name] == 0).all()


def test_replication_matches_a_direct_call(scenario: Any, serial_run: RunResult) -> None:
    direct = simulate_replication(scenario, SEED, 2)
    row = serial_run.summary.iloc[2]
    for name, value in direct.summary.items():
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(row[name]), name
        else:
            assert row[name] == value, name


def test_a_different_seed_gives_different_tables(scenario: Any, serial_run: RunResult) -> None:
    other = run_scenario(
        scenario, replications=REPS, seed=SEED + 1, executor="serial", progress=False, write=False
    )
    assert not other.nodes.drop(columns="seed").equals(serial_run.nodes.drop(columns="seed"))


def test_fewer_replications_are_a_prefix(scenario: Any, serial_run: RunResult) -> None:
    short = run_scenario(
        scenario, replications=2, seed=SEED, executor="process", workers=2,
        progress=False, write=False,
    )
    pdt.assert_frame_equal(short.summary, serial_run.summary.iloc[:2])


# --------------------------------------------------------------------------- run directory


def test_run_directory_contents_and_manifest(scenario: Any, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run_scenario(
        scenario, replications=3, seed=5, executor="serial", out_dir=out,
        progress=False, keep_store=True,
    )
    assert result.out_dir == out
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["summary.parquet", "summary.csv", "nodes.parquet", "events.parquet",
         "downtime.parquet", "manifest.json", "governance.db"]
    )
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no temporary left over
    pdt.assert_frame_equal(pd.read_parquet(out / "summary.parquet"), result.summary)
    pdt.assert_frame_equal(pd.read_parquet(out / "nodes.parquet"), result.nodes)
    pdt.assert_frame_equal(pd.read_parquet(out / "events.parquet"), result.events)
    csv = pd.read_csv(out / "summary.csv")
    assert list(csv.columns) == list(result.summary.columns) and len(csv) == 3

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest == json.loads(json.dumps(result.manifest, default=str))
    assert manifest["seed"] == 5 and manifest["replications"] == 3
    assert manifest["replication_seeds"] == [[0, 5], [1, 5], [2, 5]]
    assert manifest["executor"] == "serial" and manifest["workers"] == 1
    assert manifest["scenario"] == json.loads(json.dumps(scenario.to_dict()))
    from releasesim.sim.scenario import config_hash

    assert manifest["config_hash"] == config_hash(scenario)
    for package in ("releasesim", "simpy", "numpy", "pandas", "pynacl", "blake3", "pyarrow"):
        assert manifest["packages"][package], package
    assert manifest["python"].count(".") == 2
    assert manifest["started_utc"] <= manifest["finished_utc"]
    assert manifest["wall_s"] >= 0

    with GovernanceStore.open(out / "governance.db", create=False) as store:
        assert store.proposals()  # replication 0 proposed the release


def test_existing_out_dir_is_refused_before_running(scenario: Any, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    calls: list[int] = []

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return simulate_replication(*args, **kwargs)

    with pytest.raises(RunError, match="already exists"):
        run_scenario(scenario, replications=2, executor="serial", out_dir=out,
                     progress=False, replication_fn=counting)
    assert calls == [] and [p.name for p in out.iterdir()] == ["keep.txt"]


def test_an_empty_out_dir_is_used(scenario: Any, tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    run_scenario(scenario, replications=1, executor="serial", out_dir=out, progress=False)
    assert (out / "manifest.json").is_file()


def test_an_interrupted_run_leaves_nothing(scenario: Any, tmp_path: Path) -> None:
    def interrupted(s: Any, seed: int, replication: int, **kw: Any) -> Any:
        if replication == 1:
            raise KeyboardInterrupt
        return simulate_replication(s, seed, replication, **kw)

    with pytest.raises(KeyboardInterrupt):
        run_scenario(scenario, replications=3, executor="serial", out_dir=tmp_path / "run",
                     progress=False, keep_store=True, replication_fn=interrupted)
    assert list(tmp_path.iterdir()) == []


def test_invariant_violation_is_loud(scenario: Any) -> None:
    def violating(s: Any, seed: int, replication: int, **kw: Any) -> Any:
        result = simulate_replication(s, seed, replication, **kw)
        if replication == 1:
            result.summary["unapproved_boots"] = 2
        return result

    result = run_scenario(scenario, replications=2, executor="serial", progress=False,
                          write=False, replication_fn=violating)
    assert not result.ok and result.invariant_violations == {"unapproved_boots": 1}
    table = blast_radius(result.summary, result.nodes, result.events)
    text = format_blast_radius(table, result.manifest, result.invariant_violations, 2)
    assert "INVARIANT VIOLATED" in text and "unapproved_boots: non-zero in 1 of 2" in text


# --------------------------------------------------------------------------- API


def test_api_run_returns_tables_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run("baseline", replications=2, seed=3, executor="serial",
                 set=[f"fleet.nodes={NODES}"])
    assert result.out_dir is None and list(tmp_path.iterdir()) == []
    assert len(result.summary) == 2 and len(result.nodes) == 2 * NODES
    assert result.manifest["overrides"] == [f"fleet.nodes={NODES}"]
    table = blast_radius(result.summary, result.nodes, result.events)
    assert {"measure", "n", "N", "value", "ci_low", "ci_high", "method", "given"} <= set(
        table.columns)
    assert table["measure"].iloc[0] == "activated"  # the headline opens every summary


def test_api_rejects_bad_settings() -> None:
    from releasesim.sim.errors import ScenarioError

    with pytest.raises(ScenarioError):
        run("no_such_scenario", replications=1, executor="serial")
    with pytest.raises(ScenarioError):
        run("baseline", replications=1, executor="serial", set=["fleet.no_such_key=1"])
    with pytest.raises(RunError, match="workers"):
        run("baseline", replications=1, workers=0, set=[f"fleet.nodes={NODES}"])
    with pytest.raises(RunError, match="replications"):
        run("baseline", replications=0, set=[f"fleet.nodes={NODES}"])
    with pytest.raises(RunError, match="executor"):
        run("baseline", replications=1, executor="threads", set=[f"fleet.nodes={NODES}"])


# --------------------------------------------------------------------------- executors


@pytest.mark.parametrize(
    "url", ["http://host:8786", "tcp://host", "tcp://host:0", "tcp://host:99999", "host:8786"]
)
def test_bad_scheduler_urls(url: str) -> None:
    with pytest.raises(RunError, match="tcp://HOST:PORT"):
        validate_scheduler(url)


def test_good_scheduler_urls() -> None:
    assert validate_scheduler("tcp://10.0.0.5:8786") == "tcp://10.0.0.5:8786"
    assert validate_scheduler("tcp://sched-1.example.org:8786")


@pytest.mark.parametrize(
    "replications,workers,expected",
    [(1, 2, 1), (16, 2, 1), (40, 2, 1), (100, 2, 2), (1000, 2, 16), (10_000, 2, 32)],
)
def test_chunk_size(replications: int, workers: int, expected: int) -> None:
    assert chunk_size(replications, workers) == expected


# --------------------------------------------------------------------------- statistics


@pytest.mark.parametrize(
    "df,expected",
    [(1, 12.7062047), (2, 4.3026527), (5, 2.5705818), (10, 2.2281389), (30, 2.0422725),
     (120, 1.9799304)],
)
def test_t975_matches_tables(df: int, expected: float) -> None:
    assert t975(df) == pytest.approx(expected, abs=1e-3)


def test_wilson_interval_known_values() -> None:
    # Wilson (1927) / Newcombe (1998) table: 0/10 -> [0, 0.2775], 5/10 -> [0.2366, 0.7634]
    assert wilson(0, 10) == pytest.approx((0.0, 0.0, 0.27753), abs=1e-5)
    assert wilson(5, 10) == pytest.approx((0.5, 0.23659, 0.76341), abs=1e-5)
    assert wilson(10, 10)[2] == pytest.approx(1.0)


def test_t_interval_excludes_nan() -> None:
    mean, low, high, n = t_interval(np.array([1.0, 2.0, 3.0, math.nan]))
    assert n == 3 and mean == 2.0
    assert (low, high) == pytest.approx((2.0 - 2.4841377, 2.0 + 2.4841377), abs=1e-3)


@pytest.fixture(autouse=True)
def _no_runs_dir_in_repo() -> Iterator[None]:
    before = Path("runs").exists()
    yield
    assert Path("runs").exists() == before, "a test wrote a default run directory"


def test_dask_scheduler_address_gives_identical_tables(
    scenario: Any, serial_run: RunResult
) -> None:
    """The ``--scheduler tcp://...`` path: a real scheduler and worker processes on loopback."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        host="127.0.0.1",
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        other = run_scenario(
            scenario, replications=REPS, seed=SEED, executor="dask", scheduler=address,
            progress=False, write=False,
        )
    for mine, theirs in zip(_tables(serial_run), _tables(other), strict=True):
        pdt.assert_frame_equal(mine, theirs, check_exact=True)
    assert other.manifest["executor"] == "dask"


@pytest.mark.parametrize("executor", ["serial", "process"])
def test_on_replication_is_called_once_per_replication(scenario: Any, executor: str) -> None:
    calls: list[int] = []
    result = run_scenario(scenario, replications=3, executor=executor, workers=2,
                          progress=False, write=False, on_replication=lambda: calls.append(1))
    assert len(calls) == len(result.summary) == 3
