"""The run's tables: replication results (summary dicts, node and event records) to DataFrames.

``summary_frame`` (one row per replication, ``replication`` and ``seed`` first, stable
dtypes), ``nodes_frame``, ``events_frame`` and ``downtime_frame`` (sorted by replication,
then node or time), and ``invariant_violations`` (the invariant columns that are non-zero). Column
names come from ``sim.summary`` and ``sim.recorder``. Used by the runner after the
replications ran; imports pandas, numpy and those two modules only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from releasesim.sim.recorder import DOWNTIME_COLUMNS, EVENT_COLUMNS, NODE_COLUMNS
from releasesim.sim.summary import SUMMARY_COLUMNS

INVARIANT_COLUMNS = ("unapproved_boots", "install_time_violations", "rejected_installs_counted")
ID_COLUMNS = ("replication", "seed")


def _column_dtype(values: Sequence[Any]) -> str:
    """A stable dtype for one summary column, from its values across replications."""
    present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if present and len(present) == len(values):
        if all(isinstance(v, bool | np.bool_) for v in present):
            return "bool"
        if all(
            isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)
            for v in present
        ):
            return "int64"
    return "float64"


def _summary_columns(results: Sequence[Any]) -> list[str]:
    columns = list(ID_COLUMNS)
    for name in SUMMARY_COLUMNS:
        if name not in columns:
            columns.append(name)
    for result in results:
        for name in result.summary:
            if name not in columns:
                columns.append(name)
    return columns


def summary_frame(results: Sequence[Any]) -> pd.DataFrame:
    """One row per replication; ``replication`` and ``seed`` first, stable dtypes."""
    columns = _summary_columns(results)
    data: dict[str, Any] = {}
    for name in columns:
        if name == "replication":
            values: list[Any] = [r.replication for r in results]
        elif name == "seed":
            values = [r.seed for r in results]
        else:
            values = [r.summary.get(name, math.nan) for r in results]
        data[name] = pd.Series(values, dtype=_column_dtype(values) if values else "float64")
    return pd.DataFrame(data, columns=columns)


def _record_frame(
    results: Sequence[Any], attr: str, columns: Sequence[str], sort_by: Sequence[str]
) -> pd.DataFrame:
    """Concatenate flat record tuples of every replication into one DataFrame.

    ``replication`` and ``seed`` columns are added in front when the records do not
    carry them. Rows are sorted stably by ``sort_by``: within equal keys the order the
    replication recorded them in is kept, which is deterministic.
    """
    columns = list(columns)
    blocks: list[pd.DataFrame] = []
    lengths: list[int] = []
    for result in results:
        records = getattr(result, attr)
        if isinstance(records, dict):  # columns, when not built by an executor
            records = pd.DataFrame(records, columns=columns, copy=False)
        elif not isinstance(records, pd.DataFrame):  # row tuples
            records = pd.DataFrame.from_records(records, columns=columns, nrows=len(records))
        lengths.append(len(records))
        if len(records):
            blocks.append(records)
    if len(blocks) > 1:
        frame = pd.concat(blocks, ignore_index=True)
    elif blocks:
        frame = blocks[0].reset_index(drop=True)
    else:
        frame = pd.DataFrame.from_records([], columns=columns, nrows=0)
    reps = np.repeat(np.array([r.replication for r in results], dtype=np.int64), lengths)
    seeds = np.repeat(np.array([r.seed for r in results], dtype=np.int64), lengths)
    if "replication" not in frame.columns:
        frame.insert(0, "replication", reps)
    else:
        frame["replication"] = frame["replication"].astype("int64")
    if "seed" not in frame.columns:
        frame.insert(frame.columns.get_loc("replication") + 1, "seed", seeds)
    keys = [k for k in sort_by if k in frame.columns]
    if keys and len(frame) and not _already_sorted(frame, keys):
        frame = frame.sort_values(keys, kind="stable", ignore_index=True)
    return frame.reset_index(drop=True)


def _already_sorted(frame: pd.DataFrame, keys: Sequence[str]) -> bool:
    """True when the rows are already in ``keys`` order (lexicographic, non-decreasing):
    a stable sort would then leave every row where it is, so it is skipped. Columns with
    a NaN, or that are not numeric, are left to the sort (which puts NaN last)."""
    undecided = np.ones(len(frame) - 1, dtype=bool)  # pairs equal on the keys so far
    for key in keys:
        values = frame[key].to_numpy()
        if values.dtype.kind not in "iuf" or (values.dtype.kind == "f" and np.isnan(values).any()):
            return False
        before, after = values[:-1], values[1:]
        if np.any(undecided & (before > after)):
            return False
        undecided &= before == after
        if not undecided.any():
            break
    return True


def nodes_frame(results: Sequence[Any]) -> pd.DataFrame:
    """Per-node outcomes, sorted by replication then node."""
    sort_by = ["replication"] + [c for c in ("node", "node_id", "node_index") if c in NODE_COLUMNS]
    return _record_frame(results, "nodes", NODE_COLUMNS, sort_by[:2])


def events_frame(results: Sequence[Any]) -> pd.DataFrame:
    """Governance events, sorted by replication then time (recording order breaks ties)."""
    return _record_frame(results, "events", EVENT_COLUMNS, ["replication", "time_s"])


def downtime_frame(results: Sequence[Any]) -> pd.DataFrame:
    """Every node's down intervals, sorted by replication, then node, then start."""
    return _record_frame(results, "downtime", DOWNTIME_COLUMNS,
                         ["replication", "node", "start_s"])


def invariant_violations(summary: pd.DataFrame) -> dict[str, int]:
    """``{column: replications where it is non-zero}`` for the invariant columns."""
    found = {}
    for name in INVARIANT_COLUMNS:
        if name in summary.columns:
            bad = int((summary[name].fillna(0) != 0).sum())
            if bad:
                found[name] = bad
    return found



__all__ = [
    "ID_COLUMNS",
    "downtime_frame",
    "INVARIANT_COLUMNS",
    "events_frame",
    "invariant_violations",
    "nodes_frame",
    "summary_frame",
]
