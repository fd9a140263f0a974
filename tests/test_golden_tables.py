"""Golden tables: every shipped scenario's summary, node, event and downtime tables, fingerprinted.

Refactoring must not change a single simulated number: each shipped scenario runs 3
replications of 200 nodes at a fixed seed (serial), and the SHA-256 of each table's CSV
(floats written exactly by ``repr``) must equal ``tests/data/golden_tables.json``. A
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


def fingerprint(table: pd.DataFrame) -> str:
    """SHA-256 of the table as CSV with its columns, floats written exactly."""
    text = table.to_csv(index=False, float_format=lambda x: repr(float(x)))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def current() -> dict[str, str]:
    out: dict[str, str] = {}
    for name, _ in list_scenarios():
        result = run(name, **SETTINGS)
        for table in TABLES:
            out[f"{name}/{table}"] = fingerprint(getattr(result, table))
    return out


def test_shipped_scenarios_give_the_golden_tables() -> None:
    now = current()
    assert len(now) == len(TABLES) * len(list_scenarios())  # every shipped scenario x table
    if os.environ.get("RELEASESIM_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        pytest.skip("golden tables rewritten")
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    changed = sorted(key for key in now if golden.get(key) != now[key])
    assert not changed, f"tables changed: {changed} (deliberate? see the module docstring)"
