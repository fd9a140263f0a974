"""Render a ``Report`` as Markdown (``report.md``), the PNGs linked by relative path.

Must not import ``sim`` or ``model``.
"""

from __future__ import annotations

from releasesim.reports.document import (
    SECTION_ORDER,
    SECTION_TITLES,
    TABLE_HEADER,
    Report,
    display_table,
    headline_rows,
    run_facts,
    section_figures,
)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return lines


def render_markdown(report: Report) -> str:
    """The Markdown report (GitHub-flavoured tables)."""
    lines = [f"# {report.title}", ""]
    lines += _table(["run", ""], [[k, v] for k, v in run_facts(report)])
    lines.append("")
    if report.invariant_violations:
        items = ", ".join(f"`{k}` non-zero in {v} replications"
                          for k, v in report.invariant_violations.items())
        lines += [f"**INVARIANT VIOLATED** - {items}", ""]
    else:
        lines += [f"All invariants are 0 in all {report.replications} replications.", ""]
    if report.warnings:
        lines += ["> **Read with care: conditional figures**", ">"]
        lines += [f"> - {w}" for w in report.warnings] + [""]
    lines += ["## Headline", ""] + _table(TABLE_HEADER, headline_rows(report)) + [""]
    for section in SECTION_ORDER:
        lines += [f"## {SECTION_TITLES[section]}", ""]
        for line in report.lead.get(section, []):
            lines += [line, ""]
        for _, name in section_figures(report, section):
            lines += [f"![{SECTION_TITLES[section]}]({name})", ""]
        for extra in report.section_tables.get(section, []):
            lines += [f"### {extra.title}", ""] + _table(extra.header, extra.rows) + [""]
        rows = display_table(report, section)
        if rows:
            lines += _table(TABLE_HEADER, rows) + [""]
        lines += [f"- {note}" for note in report.notes.get(section, [])]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


__all__ = ["render_markdown"]
