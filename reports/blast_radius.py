"""The printed blast-radius summary of a run: the headline, then the main measures.

The numbers are the report's (``releasesim.reports.estimates.measure_table`` over
``releasesim.reports.measures.per_replication``): each measure has one interval method, so the
terminal, ``report.md``, ``report.html``, ``report.json`` and the sweep show the same
estimate and 95% interval. A figure that is not over every replication carries its
qualifier ("given activated, n = 6 of 20"), and the summary opens with a warning for each
headline figure that is conditional or censored, and when validators outside the fleet
hold part of the voting power (``estimates.stake_warning``). The headline carries the
consensus impact in stake: P(consensus stalled), the longest stall and the peak share of
voting power down. Must not import ``sim`` or ``model``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from releasesim.reports.estimates import (
    conditional_warnings,
    count_label,
    measure_table,
    table_records,
)
from releasesim.reports.formatting import format_estimate
from releasesim.reports.measures import HEADLINE
from releasesim.reports.replications import per_replication

MAIN_METRICS: tuple[str, ...] = (
    *HEADLINE,
    "time_to_quorum_s",
    "adoption_p50_s",
    "adoption_p90_s",
    "exposed_fraction",
    "failed_startup_fraction",
    "rolled_back_fraction",
    "stuck_old_fraction",
    "halted",
    "malicious_installed_fraction",
    "stall_recover_s",
    "stall_total_s",
    "stall_open_at_end",
    "down_stake_s",
    "peak_down_fraction",
    "lagging_stake",
    "failed_startup_stake",
    "validators_in_fleet",
    "stake_in_fleet",
)
"""The measures the terminal prints: the headline first, then the rest of the main ones
(the consensus figures in stake last; ``validators_in_fleet`` and ``stake_in_fleet`` also
feed the warning when validators outside the fleet hold part of the voting power)."""


def blast_radius(
    summary: pd.DataFrame,
    nodes: pd.DataFrame,
    events: pd.DataFrame,
    metrics: Sequence[str] = MAIN_METRICS,
) -> pd.DataFrame:
    """The measure table (``reports.estimates.TABLE_COLUMNS``) of ``metrics``, in order.

    ``summary``, ``nodes`` and ``events`` are a run's tables (``RunResult`` or
    ``reports.report.load_run``).
    """
    return main_rows(measure_table(per_replication(summary, nodes, events), metrics), metrics)


def main_rows(table: pd.DataFrame, metrics: Sequence[str] = MAIN_METRICS) -> pd.DataFrame:
    """The rows of a measure table (a run's report's, say) for ``metrics``, in that order."""
    rows = table.set_index("measure")
    return rows.loc[[m for m in metrics if m in rows.index]].reset_index()


def format_blast_radius(
    table: pd.DataFrame, manifest: Mapping[str, Any], violations: Mapping[str, int],
    replications: int,
) -> str:
    """The table as text: warnings, the headline, the main measures, invariant block."""
    lines = [
        f"blast radius: {manifest.get('scenario_name', '?')} - {replications} replications, "
        f"seed {manifest.get('seed')}, config {str(manifest.get('config_hash', ''))[:12]}",
    ]
    for warning in conditional_warnings(table):
        lines.append(f"! {warning.replace('`', '')}")
    header = f"{'measure':<30} {'estimate':>16}  {'95% CI':<30} {'method':<9} n/N"
    lines.append(header)
    for i, row in enumerate(table.itertuples(index=False)):
        if i == len([m for m in HEADLINE if m in set(table["measure"])]):
            lines.append("-" * len(header))
        follow = float(row.follow_up)
        est = f"{row.estimate} {format_estimate(row.value, row.unit, follow)}"
        low, high = (format_estimate(v, row.unit, follow) for v in (row.ci_low, row.ci_high))
        ci = f"[{low}, {high}]"
        lines.append(f"{row.measure:<30} {est:>16}  {ci:<30} {row.method:<9} "
                     f"{count_label(row)}")
    if violations:
        bar = "!" * 78
        lines += ["", bar, "!!! INVARIANT VIOLATED - the release process let something through"]
        for name, count in violations.items():
            lines.append(f"!!!   {name}: non-zero in {count} of {replications} replications")
        lines += ["!!! these must be 0 in every replication; inspect the run's tables", bar]
    return "\n".join(lines)


def blast_radius_json(
    table: pd.DataFrame, manifest: Mapping[str, Any], violations: Mapping[str, int],
    replications: int,
) -> dict[str, Any]:
    """What ``releasesim run --json`` prints: run facts, warnings and the table."""
    return {
        "scenario": manifest.get("scenario_name"),
        "seed": manifest.get("seed"),
        "replications": replications,
        "config_hash": manifest.get("config_hash"),
        "run_dir": manifest.get("run_dir"),
        "warnings": conditional_warnings(table),
        "invariant_violations": dict(violations),
        "headline": [m for m in HEADLINE if m in set(table["measure"])],
        "measures": table_records(table),
    }


__all__ = ["MAIN_METRICS", "blast_radius", "blast_radius_json", "format_blast_radius",
           "main_rows"]
