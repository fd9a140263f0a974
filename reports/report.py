"""Assemble a blast-radius report from a run's tables, and write it into the run directory.

``load_run(run_dir)`` reads ``summary.parquet``, ``nodes.parquet``, ``events.parquet``,
``manifest.json`` and, when the run recorded them, the down intervals
(``downtime.parquet``); ``build_report(tables)`` computes every measure
(``reports.measures``), the time series (``reports.series``), the consensus section in
stake (``reports.consensus``) and the figures (``reports.figures``) into a ``Report``;
``write_report(run_dir)`` saves the PNGs, ``report.html`` (self-contained), ``report.md``
and ``report.json`` (the measure table, headline, warnings, consensus block) atomically
(temp file in the same folder, ``os.replace``) and returns their paths. A report opens
with its headline figures (``reports.measures.HEADLINE``) and a warning for each one
that is conditional or censored. The document model the renderers share is
``reports.document``; the renderers are ``reports.html`` and ``reports.markdown``.

Reads the run directory's files only; must not import ``sim`` or ``model``.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

import releasesim.reports.consensus as consensus
import releasesim.reports.figures as figures
from releasesim.reports.document import (
    FIGURES,
    Report,
    SectionTable,
    display_row,
    display_table,
    headline_rows,
    report_json,
)
from releasesim.reports.estimates import conditional_warnings, measure_table
from releasesim.reports.formatting import format_estimate, format_value
from releasesim.reports.html import render_html
from releasesim.reports.markdown import render_markdown
from releasesim.reports.measures import INVARIANTS, ONE_THIRD
from releasesim.reports.replications import per_replication
from releasesim.reports.series import (
    RECORDED,
    DownOverTime,
    down_intervals_of,
    down_over_time,
    exposure_curves,
)

RUN_TABLES = ("summary.parquet", "nodes.parquet", "events.parquet")
DOWNTIME = "downtime.parquet"
MANIFEST = "manifest.json"
HTML_NAME = "report.html"
MARKDOWN_NAME = "report.md"
JSON_NAME = "report.json"
class ReportError(Exception):
    """The run directory cannot be reported on (missing or unreadable files)."""

    exit_code = 2


@dataclass(slots=True)
class RunTables:
    """The tables and manifest of one run directory."""

    summary: pd.DataFrame
    nodes: pd.DataFrame
    events: pd.DataFrame
    manifest: dict[str, Any] = field(default_factory=dict)
    downtime: pd.DataFrame | None = None
    """Every node's down intervals (``downtime.parquet``); None for a run directory written
    before they were recorded."""


def load_run(run_dir: str | Path) -> RunTables:
    """Read a run directory written by ``releasesim run`` (or ``sim.api.run(out_dir=...)``)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: not a run directory")
    missing = [name for name in RUN_TABLES if not (run_dir / name).is_file()]
    if missing:
        raise ReportError(f"{run_dir}: missing {', '.join(missing)} (is this a run directory?)")
    try:
        tables = [pd.read_parquet(run_dir / name) for name in RUN_TABLES]
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise ReportError(f"{run_dir}: cannot read the tables: {exc}") from None
    manifest: dict[str, Any] = {}
    if (run_dir / MANIFEST).is_file():
        try:
            manifest = json.loads((run_dir / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ReportError(f"{run_dir / MANIFEST}: {exc}") from None
    downtime = None
    if (run_dir / DOWNTIME).is_file():
        try:
            downtime = pd.read_parquet(run_dir / DOWNTIME)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise ReportError(f"{run_dir / DOWNTIME}: cannot read: {exc}") from None
    return RunTables(*tables, manifest=manifest, downtime=downtime)


def build_report(tables: RunTables) -> Report:
    """Compute the measures, series and figures of a run (nothing is written)."""
    summary, nodes, events = tables.summary, tables.nodes, tables.events
    values = per_replication(summary, nodes, events)
    table = measure_table(values)
    bands = exposure_curves(summary, nodes, events)
    down = down_over_time(summary, nodes, events, tables.downtime)
    reps = len(values)
    figs = {
        "exposure": figures.exposure_figure(bands, reps)[0],
        "affected": figures.affected_figure(table)[0],
        "timing": figures.timing_figure(table, values)[0],
        "containment": figures.containment_figure(table)[0],
        "governance": figures.governance_figure(table)[0],
    }
    lead, tables_of, extras = _consensus_section(tables, down, figs)
    notes = _notes(tables, bands["running"].n, down)
    violations = {
        name: int((values[name].fillna(0) != 0).sum())
        for name in INVARIANTS
        if name in values.columns and (values[name].fillna(0) != 0).any()
    }
    name = tables.manifest.get("scenario_name", "run")
    return Report(f"Blast radius: {name}", tables.manifest, values, table, figs, notes,
                  violations, conditional_warnings(table), lead, tables_of, extras)


def _consensus_section(
    tables: RunTables, down: DownOverTime, figs: dict[str, Figure]
) -> tuple[dict[str, list[str]], dict[str, list[SectionTable]], dict[str, Any]]:
    """The consensus section's figures (added to ``figs``), lead, rank table and JSON."""
    summary, nodes = tables.summary, tables.nodes
    facts = consensus.stall_facts(summary, tables.manifest)
    in_stake = down.stake is not None and "peak_down_stake" in summary.columns
    peaks = summary["peak_down_stake" if in_stake else "peak_down_fraction"].to_numpy(float)
    height = (float(np.nanmedian(summary["upgrade_height_s"].to_numpy(dtype=float)))
              if "upgrade_height_s" in summary.columns
              and np.isfinite(summary["upgrade_height_s"].to_numpy(dtype=float)).any()
              else math.nan)
    figs["consensus"] = figures.consensus_figure(
        down, peaks, len(summary),
        stall_line=facts.stall_line if facts is not None else ONE_THIRD,
        stalled=(facts.stalled, facts.replications) if facts is not None else None,
        height_s=height,
    )[0]
    ranks = None
    section_tables: list[SectionTable] = []
    if facts is not None and facts.stalled:
        figs["stalls"] = consensus.stall_duration_figure(facts)[0]
        if "stake_rank" in nodes.columns:
            intervals, _, _ = down_intervals_of(nodes, tables.downtime)
            ranks = consensus.validators_in_longest_stall(summary, nodes, intervals)
            figs["stall_validators"] = consensus.stall_validators_figure(ranks)[0]
            section_tables.append(SectionTable(
                "Which validators were down during the longest stall",
                consensus.RANK_HEADER, consensus.rank_rows(ranks)))
    lead = consensus.lead_sentences(facts, down.source, down.approximate,
                                    down.stake is not None)
    block = consensus.consensus_json(facts, ranks, down.source, down.approximate)
    return {"consensus": lead}, {"consensus": section_tables}, {"consensus": block}


def _notes(tables: RunTables, activated: int, down: DownOverTime) -> dict[str, list[str]]:
    reps = len(tables.summary)
    sla = (tables.manifest.get("scenario") or {}).get("sla_s")
    return {
        "exposure": [
            f"Time 0 is each replication's activation; {activated} of {reps} replications "
            "activated the release (the curves are over those).",
            "Running = booted the new release successfully (nodes table `booted_new_s`); "
            "installed = installed it, including starts that failed and rolled back.",
            "Dark band: bootstrap 95% CI of the median curve; light band: 5-95% of "
            "replications.",
            ("Voting power running it: the stake of the validators whose node booted the "
             "release, as a share of the chain's total (validators outside the fleet "
             "never run it here); full nodes carry no stake."
             if down.stake is not None else
             "Stake: not recorded in this run directory (written before validators ran "
             "fleet nodes): fractions of the fleet only."),
        ],
        "affected": [
            "Mean over replications of the per-replication fleet fraction; 95% CI: Student t "
            "over the replication values, widened to at least the Wilson interval of all "
            "node-trials pooled."
            + (f" Lagging = not running the release {sla:g} s (sla_s) after activation; "
               "defined only given activation (see n of N)."
               if isinstance(sla, int | float) else ""),
        ],
        "timing": [
            "Build -> quorum and build -> activation: Kaplan-Meier median over all "
            "replications, censored at the horizon (a replication whose release was "
            "rejected never activates); '>' means not reached within the horizon. "
            "Adoption times: the same, given activation. 95% CI: log-log Greenwood band "
            "inverted at 1/2. Halt and recovery times: median over the replications where "
            "they happened, percentile bootstrap (2000 resamples, fixed seed).",
        ],
        "containment": [
            "exposure at halt and failed after halt are defined only in replications "
            "that halted (their n).",
        ],
        "consensus": [
            ("Curves: exact step functions of the recorded down intervals (downtime "
             "table); an interval still open at the end of the run stays open after it."
             if down.source == RECORDED else
             "Curves: reconstructed, one interval per node as [installed_s, installed_s + "
             "down_s) (exact for a node that updated once); approximate nodes (also "
             f"installed the malicious build): {down.approximate}."),
            "Each curve's value at a time step is the largest share down within that step "
            "(so a short spike is not lost between grid points); dark band: bootstrap 95% "
            "CI of the median curve, light band: 5-95% of replications; time 0 is each "
            "replication's activation.",
            "Voting power down: each down validator's stake over the chain's total "
            "(fleet stake / `stake_in_fleet`); validators outside the fleet count as "
            "always up. The histogram is the engine's exact per-replication peak.",
        ],
        "governance": [
            "Probabilities: share of replications, Wilson 95% CI over replications; "
            "counts: mean per replication, Student t 95% CI.",
        ],
        "invariants": [
            "Each must be 0 in every replication; a non-zero value means the release "
            "process let something through.",
        ],
    }


# --------------------------------------------------------------------------- writing


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, replace)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=figures.DPI)
    return buffer.getvalue()


def write_report(run_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Write the PNGs, ``report.html``, ``report.md`` and ``report.json``; return the paths.

    ``out_dir`` defaults to ``run_dir`` itself. Raises ``ReportError`` when the run
    directory is missing or unreadable.
    """
    run_dir = Path(run_dir)
    report = build_report(load_run(run_dir))  # a bad run directory creates nothing
    return save_report(report, Path(out_dir) if out_dir is not None else run_dir)


def save_report(report: Report, out: Path) -> list[Path]:
    """Write a built ``Report``'s files into ``out`` atomically; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    pngs = {key: figure_png(fig) for key, fig in report.figures.items()}
    written: list[Path] = []
    for key, filename, _ in FIGURES:
        if key in pngs:  # a figure with nothing to show is left out (e.g. no stall)
            atomic_write(out / filename, pngs[key])
            written.append(out / filename)
    atomic_write(out / HTML_NAME, render_html(report, pngs).encode("utf-8"))
    atomic_write(out / MARKDOWN_NAME, render_markdown(report).encode("utf-8"))
    text = json.dumps(report_json(report), indent=2, allow_nan=False) + "\n"
    atomic_write(out / JSON_NAME, text.encode("utf-8"))
    written += [out / HTML_NAME, out / MARKDOWN_NAME, out / JSON_NAME]
    return written


__all__ = [
    "FIGURES",
    "Report",
    "ReportError",
    "RunTables",
    "atomic_write",
    "build_report",
    "display_row",
    "display_table",
    "format_estimate",
    "format_value",
    "headline_rows",
    "report_json",
    "load_run",
    "save_report",
    "write_report",
]
