"""The report as a document: what ``report.md``, ``report.html`` and ``report.json`` show.

``Report`` (tables, figures, notes, warnings of one run) and the helpers every renderer
shares: the figure list, the section order and titles, the table rows (estimate, 95% CI,
``n/N`` or the qualifier, method), the headline rows and the run facts. The renderers
(``reports.html``, ``reports.markdown``) and the assembler (``reports.report``) import
this module; it imports neither, so there is no import circle. Must not import ``sim``
or ``model``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from releasesim.reports.estimates import count_label, table_records
from releasesim.reports.formatting import format_estimate
from releasesim.reports.measures import HEADLINE, SECTIONS

FIGURES: tuple[tuple[str, str, str], ...] = (
    # (figure key, PNG file, section it illustrates)
    ("exposure", "fig_exposure.png", "exposure"),
    ("affected", "fig_affected.png", "affected"),
    ("timing", "fig_timing.png", "timing"),
    ("containment", "fig_containment.png", "containment"),
    ("consensus", "fig_consensus.png", "consensus"),
    ("stalls", "fig_stalls.png", "consensus"),
    ("stall_validators", "fig_stall_validators.png", "consensus"),
    ("governance", "fig_governance.png", "governance"),
)
SECTION_ORDER = ("exposure", "affected", "timing", "containment", "consensus", "governance",
                 "invariants")
SECTION_TITLES = {"exposure": "Exposure over time", **SECTIONS}


@dataclass(frozen=True, slots=True)
class SectionTable:
    """A table of a section besides its measures (e.g. validators down during a stall)."""

    title: str
    header: list[str]
    rows: list[list[str]]


@dataclass(slots=True)
class Report:
    """Everything the HTML and Markdown renderers need."""

    title: str
    manifest: dict[str, Any]
    values: pd.DataFrame
    table: pd.DataFrame
    figures: dict[str, Figure]
    notes: dict[str, list[str]]
    invariant_violations: dict[str, int]
    warnings: list[str] = field(default_factory=list)
    """Headline figures that are conditional or censored (the report opens with them)."""
    lead: dict[str, list[str]] = field(default_factory=dict)
    """Sentences a section opens with (e.g. P(stall), or "no stall in N replications")."""
    section_tables: dict[str, list[SectionTable]] = field(default_factory=dict)
    """Tables a section shows after its figures, besides its measures."""
    extras: dict[str, Any] = field(default_factory=dict)
    """Further blocks of ``report.json`` (e.g. ``consensus``)."""

    @property
    def replications(self) -> int:
        return len(self.values)


def display_row(row: Any) -> list[str]:
    """``[measure, unit, estimate, 95% CI, n/N and condition, method]`` of one table row."""
    follow = float(row.follow_up)
    est = format_estimate(row.value, row.unit, follow)
    if math.isfinite(row.ci_low) or math.isinf(row.ci_low):
        ci = (f"[{format_estimate(row.ci_low, row.unit, follow)}, "
              f"{format_estimate(row.ci_high, row.unit, follow)}]")
    else:
        ci = "-"
    return [row.measure, row.unit, f"{row.estimate} {est}", ci, count_label(row), row.method]


def display_table(report: Report, section: str) -> list[list[str]]:
    """Rows ``[measure, unit, estimate, 95% CI, n/N, method]`` of one section."""
    return [display_row(r) for r in
            report.table[report.table["section"] == section].itertuples(index=False)]


def headline_rows(report: Report) -> list[list[str]]:
    """The headline rows (``releasesim.reports.measures.HEADLINE``), formatted like the tables."""
    from_table = report.table.set_index("measure")
    rows = []
    for name in HEADLINE:
        if name in from_table.index:
            row = from_table.loc[[name]].reset_index().itertuples(index=False)
            rows.append(display_row(next(row)))
    return rows


def report_json(report: Report) -> dict[str, Any]:
    """``report.json``: the run facts, warnings, headline and the whole measure table."""
    return {
        "title": report.title,
        "scenario": report.manifest.get("scenario_name"),
        "seed": report.manifest.get("seed"),
        "replications": report.replications,
        "config_hash": report.manifest.get("config_hash"),
        "warnings": report.warnings,
        "invariant_violations": report.invariant_violations,
        "headline": list(HEADLINE),
        "measures": table_records(report.table),
        **report.extras,
    }


def section_figures(report: Report, section: str) -> list[tuple[str, str]]:
    """``(figure key, PNG file)`` of a section, in ``FIGURES`` order, those the report has
    (a figure with nothing to show, e.g. stall durations without a stall, is left out)."""
    return [(key, name) for key, name, where in FIGURES
            if where == section and key in report.figures]


TABLE_HEADER = ["measure", "unit", "estimate", "95% CI", "n/N", "CI method"]


def run_facts(report: Report) -> list[tuple[str, str]]:
    m = report.manifest
    facts = [
        ("scenario", str(m.get("scenario_name", "?"))),
        ("replications", str(report.replications)),
        ("seed", str(m.get("seed", "?"))),
        ("config hash", str(m.get("config_hash", "?"))[:16]),
        ("executor", f"{m.get('executor', '?')} ({m.get('workers', '?')} workers)"),
        ("finished (UTC)", str(m.get("finished_utc", "?"))),
    ]
    if m.get("overrides"):
        facts.append(("overrides", ", ".join(m["overrides"])))
    description = (m.get("scenario") or {}).get("description")
    if description:
        facts.insert(1, ("description", str(description)))
    return facts


__all__ = [
    "FIGURES",
    "SECTION_ORDER",
    "SECTION_TITLES",
    "TABLE_HEADER",
    "Report",
    "SectionTable",
    "display_row",
    "display_table",
    "headline_rows",
    "report_json",
    "run_facts",
    "section_figures",
]
