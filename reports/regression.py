"""CI regression mode: compare a run's measures with a committed baseline, statistically.

The baseline (``scenarios/ci/baseline.json``) holds, per scenario and per measure of
``reports.measures``, the ``mean``, sample ``std`` and ``n`` (replications where it is
defined) of the per-replication values. A check compares the current run with it:

    d   = mean_now - mean_base                      (signed, in the measure's unit)
    se  = sqrt(std_base^2 / n_base + std_now^2 / n_now)      (Welch standard error)
    tol = max(Z * se, ABS_FLOOR[unit], REL_FLOOR * |mean_base|)

A measure **regresses** when it moved by more than ``tol`` in its bad direction
(``Measure.worse``: ``higher`` or ``lower``); a move beyond ``tol`` the other way is
reported as ``improved`` (passes; refresh the baseline). ``Z = 3.5`` keeps the chance that
an unrelated change (one that only re-draws the random numbers) flags a measure small
across the whole suite; the floors stop zero-variance measures (e.g. a probability that
was 0 in every replication) from failing on one unlucky replication. Every invariant must
be 0 in every replication: any non-zero value fails, whatever the baseline says.

Pure functions on tables and dicts; writing the baseline is atomic (temp file, fsync,
``os.replace``). Must not import ``sim`` or ``model``.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reports.measures import BY_NAME, INVARIANTS, MEASURES
from reports.report import atomic_write

FORMAT = "releasesim-baseline/1"
Z = 3.5
REL_FLOOR = 0.10
ABS_FLOOR: dict[str, float] = {
    "fraction": 0.01,
    "probability": 0.05,
    "s": 5.0,
    "count": 0.5,
    "node*s": 50.0,
}
STATUSES = ("ok", "regressed", "improved", "violated", "missing", "new")
FAILING = ("regressed", "violated", "missing")
COLUMNS = ("scenario", "metric", "kind", "unit", "worse", "base_mean", "base_std", "base_n",
           "mean", "std", "n", "diff", "tolerance", "status")
RULE_TEXT = (
    f"regression when mean moves in its bad direction by more than max({Z} * Welch standard "
    f"error, unit floor {ABS_FLOOR}, {REL_FLOOR:.0%} of the baseline mean); invariants must "
    "be 0 in every replication"
)


class BaselineError(Exception):
    """The baseline file is missing, unreadable or not a releasesim baseline."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class Stats:
    mean: float
    std: float
    n: int


def stats(values: np.ndarray) -> Stats:
    """Mean, sample std (0 for n < 2) and count of the finite values."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return Stats(math.nan, math.nan, 0)
    return Stats(float(np.mean(x)), float(np.std(x, ddof=1)) if n > 1 else 0.0, n)


def scenario_entry(values: pd.DataFrame, info: dict[str, Any] | None = None) -> dict[str, Any]:
    """The baseline entry of one scenario from its per-replication measure values."""
    metrics = {}
    for m in MEASURES:
        if m.name in values.columns:
            s = stats(values[m.name].to_numpy())
            metrics[m.name] = {"mean": _json_float(s.mean), "std": _json_float(s.std),
                               "n": s.n}
    return {**(info or {}), "replications": len(values), "metrics": metrics}


def make_baseline(entries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The whole baseline document (sorted by scenario name)."""
    return {"format": FORMAT, "rule": RULE_TEXT,
            "scenarios": {k: entries[k] for k in sorted(entries)}}


def _json_float(value: float) -> float | None:
    return None if not math.isfinite(value) else float(value)


def read_baseline(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BaselineError(f"{path}: no baseline; create it with --update-baseline") from None
    except (OSError, ValueError) as exc:
        raise BaselineError(f"{path}: cannot read the baseline: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BaselineError(f"{path}: not a {FORMAT} file")
    return data


def write_baseline(path: str | Path, baseline: dict[str, Any]) -> None:
    """Write the baseline atomically (temp file in the same folder, fsync, os.replace)."""
    text = json.dumps(baseline, indent=2, sort_keys=False, allow_nan=False) + "\n"
    atomic_write(Path(path), text.encode("utf-8"))


def tolerance(unit: str, base: Stats, now: Stats) -> float:
    """``max(Z * Welch se, unit floor, REL_FLOOR * |base mean|)``."""
    se = math.sqrt(base.std**2 / max(base.n, 1) + now.std**2 / max(now.n, 1))
    return max(Z * se, ABS_FLOOR.get(unit, 0.0), REL_FLOOR * abs(base.mean))


def compare(scenario: str, entry: dict[str, Any] | None, values: pd.DataFrame) -> pd.DataFrame:
    """One row per invariant and checked measure of ``scenario`` (columns ``COLUMNS``)."""
    rows: list[tuple] = []
    base_metrics = (entry or {}).get("metrics", {})
    for name in INVARIANTS:
        m = BY_NAME[name]
        x = values[name].to_numpy(dtype=float) if name in values.columns else np.array([])
        now = stats(x)
        bad = int(np.count_nonzero(np.nan_to_num(x) != 0))
        status = "violated" if bad else ("ok" if name in values.columns else "missing")
        rows.append((scenario, name, "invariant", m.unit, "nonzero", 0.0, 0.0, now.n,
                     now.mean, now.std, now.n, now.mean, 0.0, status))
    for m in MEASURES:
        if m.section == "invariants" or not m.worse:
            continue
        now = stats(values[m.name].to_numpy()) if m.name in values.columns else None
        raw = base_metrics.get(m.name)
        if now is None:
            rows.append((scenario, m.name, "measure", m.unit, m.worse, math.nan, math.nan, 0,
                         math.nan, math.nan, 0, math.nan, math.nan, "missing"))
            continue
        if raw is None:
            rows.append((scenario, m.name, "measure", m.unit, m.worse, math.nan, math.nan, 0,
                         now.mean, now.std, now.n, math.nan, math.nan, "new"))
            continue
        base = Stats(_nan(raw.get("mean")), _nan(raw.get("std")) or 0.0, int(raw.get("n", 0)))
        status, diff, tol = _judge(m.unit, m.worse, base, now)
        rows.append((scenario, m.name, "measure", m.unit, m.worse, base.mean, base.std,
                     base.n, now.mean, now.std, now.n, diff, tol, status))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)


def _judge(unit: str, worse: str, base: Stats, now: Stats) -> tuple[str, float, float]:
    if base.n == 0 and now.n == 0:
        return "ok", math.nan, math.nan
    if base.n == 0 or now.n == 0:
        # defined in one run only (e.g. a time that now never happens): the measures that
        # count how often it happens (activated, halted) carry the regression.
        return "ok", math.nan, math.nan
    diff = now.mean - base.mean
    tol = tolerance(unit, base, now)
    sign = 1.0 if worse == "higher" else -1.0
    if sign * diff > tol:
        return "regressed", diff, tol
    if -sign * diff > tol:
        return "improved", diff, tol
    return "ok", diff, tol


def failed(rows: pd.DataFrame) -> bool:
    return bool(rows["status"].isin(FAILING).any())


def _f(value: float) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.3g}"
    return f"{value:.4g}"


def format_diff(rows: pd.DataFrame, *, verbose: bool = False) -> str:
    """The readable diff table; only non-ok rows unless ``verbose`` (plus a count line)."""
    header = (f"{'scenario':<18} {'metric':<28} {'baseline':>11} {'now':>11} {'diff':>11} "
              f"{'tolerance':>10}  status")
    lines = [header, "-" * len(header)]
    shown = rows if verbose else rows[rows["status"] != "ok"]
    for r in shown.itertuples(index=False):
        mark = {"regressed": "REGRESSED", "violated": "VIOLATED", "missing": "MISSING",
                "improved": "improved", "new": "new", "ok": "ok"}[r.status]
        worse = f" ({r.worse} is worse)" if r.status in ("regressed", "improved") else ""
        lines.append(f"{r.scenario:<18} {r.metric:<28} {_f(r.base_mean):>11} {_f(r.mean):>11} "
                     f"{_f(r.diff):>11} {_f(r.tolerance):>10}  {mark}{worse}")
    counts = rows["status"].value_counts()
    summary = ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES if counts.get(s, 0))
    if len(shown) == 0:
        lines.append("(every invariant is 0 and every measure is within tolerance)")
    lines.append(f"{len(rows)} checks: {summary}")
    return "\n".join(lines)


def junit_xml(rows: pd.DataFrame, suite: str = "releasesim check") -> str:
    """JUnit XML: one testcase per scenario x invariant/measure."""
    root = ET.Element("testsuites")
    for scenario, group in rows.groupby("scenario", sort=False):
        failures = int(group["status"].isin(FAILING).sum())
        ts = ET.SubElement(root, "testsuite", name=f"{suite}: {scenario}",
                           tests=str(len(group)), failures=str(failures), errors="0",
                           skipped="0")
        for r in group.itertuples(index=False):
            case = ET.SubElement(ts, "testcase", classname=f"releasesim.check.{scenario}",
                                 name=f"{r.kind}:{r.metric}", time="0")
            detail = (f"baseline mean {_f(r.base_mean)} (std {_f(r.base_std)}, n {r.base_n}); "
                      f"now {_f(r.mean)} (std {_f(r.std)}, n {r.n}); diff {_f(r.diff)}, "
                      f"tolerance {_f(r.tolerance)}; {r.worse} is worse")
            if r.status in FAILING:
                message = (f"{r.metric} {r.status}" if r.kind == "measure"
                           else f"invariant {r.metric} non-zero (mean {_f(r.mean)})")
                failure = ET.SubElement(case, "failure", message=message, type=r.status)
                failure.text = detail
            else:
                out = ET.SubElement(case, "system-out")
                out.text = f"{r.status}: {detail}"
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


__all__ = [
    "ABS_FLOOR",
    "BaselineError",
    "COLUMNS",
    "FORMAT",
    "REL_FLOOR",
    "RULE_TEXT",
    "Z",
    "compare",
    "failed",
    "format_diff",
    "junit_xml",
    "make_baseline",
    "read_baseline",
    "scenario_entry",
    "stats",
    "tolerance",
    "write_baseline",
]
