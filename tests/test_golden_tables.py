"""Golden tables: every shipped scenario's summary, node, event and downtime tables, fingerprinted.

Refactoring must not change a single simulated number: each shipped scenario runs 3
replications of 200 nodes at a fixed seed (serial), and the SHA-256 of each table's CSV
(floats written exactly by ``repr``) must equal ``tests/data/golden_tables.json``. A
second, larger set (2 replications of 3,000 nodes at the scenario's own seed) also
fingerprints every column's dtype (``tests/data/golden_tables_large.json``): it pins the
hot paths that only many nodes exercise (queued downloads, deadline withdrawals), and
the tables' types, through performance work. A
deliberate change of the simulator's semantics regenerates the file
(``RELEASESIM_UPDATE_GOLDEN=1 python3 tasks.py test -k golden``) and says why in its commit.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from releasesim.sim.api import run
from releasesim.sim.scenario import list_scenarios

GOLDEN = Path(__file__).parent / "data" / "golden_tables.json"
TABLES = ("summary", "nodes", "events", "downtime")
SETTINGS = {"replications": 3, "seed": 7, "executor": "serial", "set": ["fleet.nodes=200"]}
GOLDEN_LARGE = Path(__file__).parent / "data" / "golden_tables_large.json"
SETTINGS_LARGE = {"replications": 2, "executor": "serial", "set": ["fleet.nodes=3000"]}


def fingerprint(table: pd.DataFrame) -> str:
    """SHA-256 of the table as CSV with its columns, floats written exactly."""
    text = table.to_csv(index=False, float_format=lambda x: repr(float(x)))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def typed_fingerprint(table: pd.DataFrame) -> str:
    """``fingerprint`` of the values, and of every column's name and dtype."""
    types = "\n".join(f"{column}: {dtype}" for column, dtype in table.dtypes.items())
    return hashlib.sha256((types + "\n" + fingerprint(table)).encode("utf-8")).hexdigest()


def current(settings: dict | None = None, typed: bool = False) -> dict[str, str]:
    out: dict[str, str] = {}
    mark = typed_fingerprint if typed else fingerprint
    for name, _ in list_scenarios():
        result = run(name, **(settings or SETTINGS))
        for table in TABLES:
            out[f"{name}/{table}"] = mark(getattr(result, table))
    return out


def _compare(now: dict[str, str], path: Path) -> None:
    assert len(now) == len(TABLES) * len(list_scenarios())  # every shipped scenario x table
    if os.environ.get("RELEASESIM_UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        pytest.skip("golden tables rewritten")
    golden = json.loads(path.read_text(encoding="utf-8"))
    changed = sorted(key for key in now if golden.get(key) != now[key])
    assert not changed, f"tables changed: {changed} (deliberate? see the module docstring)"


def test_shipped_scenarios_give_the_golden_tables() -> None:
    _compare(current(), GOLDEN)


def test_shipped_scenarios_at_3000_nodes_give_the_golden_tables_and_types() -> None:
    _compare(current(SETTINGS_LARGE, typed=True), GOLDEN_LARGE)
