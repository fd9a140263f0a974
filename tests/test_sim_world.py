"""One replication end to end: invariants, determinism, store export, NaN for what never happens."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from releasesim.model.store import GovernanceStore
from releasesim.sim.api import resolve_scenario
from releasesim.sim.recorder import EVENT_COLUMNS, NODE_COLUMNS
from releasesim.sim.summary import INVARIANTS, SUMMARY_COLUMNS, metrics_markdown
from releasesim.sim.world import ReplicationResult, simulate_replication

DOCS = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"


def small(name: str = "baseline", *overrides: str, nodes: int = 60) -> Any:
    return resolve_scenario(name, [f"fleet.nodes={nodes}", *overrides])


@pytest.fixture(scope="module")
def baseline() -> ReplicationResult:
    return simulate_replication(small(), 7, 0)


def test_baseline_replication_runs_with_invariants_zero(baseline: ReplicationResult) -> None:
    summary = baseline.summary
    assert set(SUMMARY_COLUMNS) <= set(summary)
    assert summary["replication"] == 0 and summary["seed"] == 7
    for name in INVARIANTS:
        assert summary[name] == 0, name
    assert summary["activated"] is True
    assert summary["release_installs_total"] >= 1
    assert summary["sim_processes"] > 0 and summary["sim_timeouts"] > 0
    assert list(baseline.nodes) == list(NODE_COLUMNS)  # the node table, as columns
    assert all(len(values) == 60 for values in baseline.nodes.values())
    assert all(len(row) == len(EVENT_COLUMNS) for row in baseline.events)
    kinds = {row[2] for row in baseline.events}
    assert {"build", "proposed", "activated"} <= kinds


def test_same_seed_and_replication_is_identical(baseline: ReplicationResult) -> None:
    again = simulate_replication(small(), 7, 0)
    assert _same(again.summary, baseline.summary)
    assert _rows_equal(_rows(again.nodes), _rows(baseline.nodes))
    assert _rows_equal(_rows(again.downtime), _rows(baseline.downtime))
    assert _rows_equal(again.events, baseline.events)


def test_another_replication_differs(baseline: ReplicationResult) -> None:
    other = simulate_replication(small(), 7, 1)
    assert not _rows_equal(other.events, baseline.events)


def test_keep_store_exports_a_readable_store(tmp_path: Path) -> None:
    path = tmp_path / "governance.db"
    result = simulate_replication(small(nodes=10), 3, 0, keep_store=path)
    build = next(row[3] for row in result.events if row[2] == "build")
    with GovernanceStore.open(path, create=False) as store:
        approved = store.get_approved(build)
        assert approved is not None
        assert len(approved.attestations) >= approved.threshold
        installs = store.counter("release_installs_total")
    assert installs == result.summary["release_installs_total"]


def test_a_release_that_is_never_activated_gives_nan_times() -> None:
    result = simulate_replication(small("baseline", "governance.yes_probability=0.0"), 5, 0)
    summary = result.summary
    assert summary["activated"] is False
    for name in ("time_to_activation_s", "adoption_p50_s", "adoption_p90_s", "adoption_p99_s",
                 "lagging_fraction"):
        assert math.isnan(summary[name]), name
    assert summary["release_installs_total"] == 0
    assert summary["exposed_fraction"] == 0.0
    assert all(build == "old" for build in result.nodes["final_build"])
    assert "rejected" in {row[2] for row in result.events}


def test_metrics_doc_is_in_sync() -> None:
    assert DOCS.read_text(encoding="utf-8") == metrics_markdown(), (
        "docs/metrics.md is stale: regenerate it with "
        "python3 tasks.py docs"
    )


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.keys() == b.keys() and all(_eq(a[k], b[k]) for k in a)


def _eq(x: Any, y: Any) -> bool:
    if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
        return True
    return x == y


def _rows(columns: dict[str, np.ndarray]) -> list[tuple]:
    return [tuple(v.item() if hasattr(v, "item") else v for v in row)
            for row in zip(*columns.values(), strict=True)]


def _rows_equal(a: list[tuple], b: list[tuple]) -> bool:
    return len(a) == len(b) and all(
        len(r) == len(s) and all(_eq(x, y) for x, y in zip(r, s, strict=True))
        for r, s in zip(a, b, strict=True)
    )


def _recorded_kinds() -> set[str]:
    """Every event kind written by a ``recorder.event(time, KIND, ...)`` call in sim/."""
    import ast

    kinds: set[str] = set()
    for path in (Path(__file__).resolve().parents[1] / "sim").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "event" and len(node.args) >= 2):
                kind = node.args[1]
                options = [kind.body, kind.orelse] if isinstance(kind, ast.IfExp) else [kind]
                for option in options:
                    assert isinstance(option, ast.Constant), f"{path.name}: kind not a literal"
                    kinds.add(option.value)
    return kinds


def test_every_event_kind_is_documented_and_every_documented_kind_is_recorded() -> None:
    from releasesim.sim.recorder import EVENT_KINDS

    recorded = _recorded_kinds()
    assert len(recorded) > 15
    assert recorded == set(EVENT_KINDS), (recorded ^ set(EVENT_KINDS))
    runs = [simulate_replication(resolve_scenario(name, ["fleet.nodes=40"]), 1, 0)
            for name in ("baseline", "signer_churn", "bad_release_rollback",
                         "compromised_signers")]
    seen = {row[2] for result in runs for row in result.events}
    assert seen <= set(EVENT_KINDS) and {"build", "activated", "halt", "vote"} <= seen
