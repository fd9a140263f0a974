"""The printed blast-radius summary of a run: mean and 95% CI of the main metrics.

Pure pandas over the run's summary table (one row per replication); the intervals come
from ``reports.intervals``, the one place the project computes them: a Wilson interval for
boolean columns (the share of replications where it happened), a t-interval on the mean
otherwise, clipped to the metric's range (no main metric is negative; fractions are at
most 1). ``n`` counts the replications where the metric is defined (NaN excluded).
Must not import ``sim`` or ``model``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from reports.intervals import t_interval, wilson

MAIN_METRICS = (
    "time_to_quorum_s",
    "time_to_activation_s",
    "adoption_p50_s",
    "adoption_p90_s",
    "adoption_p99_s",
    "lagging_fraction",
    "failed_startups",
    "rolled_back_fraction",
    "exposed_fraction",
    "peak_down_fraction",
    "halted",
    "malicious_approved",
    "malicious_installed_fraction",
)


def blast_radius(summary: pd.DataFrame, metrics: Sequence[str] = MAIN_METRICS) -> pd.DataFrame:
    """``metric, n, mean, ci_low, ci_high, method`` for each main metric in ``summary``."""
    rows = []
    for name in metrics:
        if name not in summary.columns:
            continue
        column = summary[name]
        if column.dtype == bool:
            n = int(column.notna().sum())
            p, low, high = wilson(int(column.sum()), n)
            rows.append((name, n, p, low, high, "wilson"))
            continue
        mean, low, high, n = t_interval(column.to_numpy(dtype=float))
        if n > 1:
            low = max(0.0, low)
            high = min(1.0, high) if name.endswith("_fraction") else high
        rows.append((name, n, mean, low, high, "t"))
    return pd.DataFrame(rows, columns=["metric", "n", "mean", "ci_low", "ci_high", "method"])


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
        return f"{value:.3g}"
    return f"{value:.4g}" if abs(value) < 1 else f"{value:,.2f}"


def format_blast_radius(
    summary: pd.DataFrame, manifest: Mapping[str, Any], violations: Mapping[str, int]
) -> str:
    """The table as text, with a loud block when an invariant was violated."""
    table = blast_radius(summary)
    reps = len(summary)
    lines = [
        f"blast radius: {manifest.get('scenario_name', '?')} - {reps} replications, "
        f"seed {manifest.get('seed')}, config {str(manifest.get('config_hash', ''))[:12]}",
        f"{'metric':<30} {'n':>5} {'mean':>12}  {'95% CI':<27} method",
    ]
    for row in table.itertuples(index=False):
        ci = f"[{_fmt(row.ci_low)}, {_fmt(row.ci_high)}]"
        lines.append(f"{row.metric:<30} {row.n:>5} {_fmt(row.mean):>12}  {ci:<27} {row.method}")
    if violations:
        bar = "!" * 78
        lines += ["", bar, "!!! INVARIANT VIOLATED - the release process let something through"]
        for name, count in violations.items():
            total = int(summary[name].fillna(0).sum())
            lines.append(
                f"!!!   {name}: non-zero in {count} of {reps} replications (total {total})"
            )
        lines += ["!!! these must be 0 in every replication; inspect the run's tables", bar]
    return "\n".join(lines)
