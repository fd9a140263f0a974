"""The report of an exploration: which knobs drive each outcome, and where things go wrong.

Reads an exploration directory (``releasesim explore``: ``manifest.json``,
``experiments.parquet``, ``unit.parquet``) -- ``load_exploration`` is the one call a
notebook needs -- and builds an ``ExplorationReport``:

- **Sensitivity** (``reports.sensitivity``; Morris or Sobol designs): for every outcome
  asked for (default ``DEFAULT_OUTCOMES`` present in the table), the ranked indices with
  their intervals, the method in words and the warnings (noise share, small samples,
  outcomes defined only in some replications, negative or wide indices). A yes/no outcome
  is analysed as its probability (the mean over replications of a point).
- **Scenario discovery** (``reports.discovery`` PRIM and ``reports.decision_tree``; any
  design): for every outcome of interest (``KNOB OP THRESHOLD``, default
  ``DEFAULT_INTERESTS``), the boxes of knob ranges where it concentrates, with coverage,
  density and mass, and the rules in words; the tree's leaves as a second view.

``write_exploration_report`` renders it into the directory as ``report.html`` (self-contained:
CSS inline, PNGs as data URIs), ``report.md`` (PNGs beside it) and ``report.json``.

Must not import ``sim`` or ``model``.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from releasesim.reports.decision_tree import decision_tree, tree_rules
from releasesim.reports.discovery import (
    DiscoveryError,
    PrimResult,
    boxes_table,
    outcome_of_interest,
    prim,
)
from releasesim.reports.exploration_figures import (
    indices_figure,
    morris_figure,
    trajectory_figure,
)
from releasesim.reports.html import CSS
from releasesim.reports.report import ReportError, atomic_write, figure_png
from releasesim.reports.sensitivity import (
    SENSITIVITY_DESIGNS,
    SensitivityResult,
    analyze_sensitivity,
)

EXPLORATION_FORMAT = "releasesim-exploration/1"
DEFAULT_OUTCOMES = ("time_to_activation_s", "lagging_fraction", "peak_down_stake",
                    "consensus_stalled", "malicious_approved", "rolled_back_fraction")
DEFAULT_INTERESTS = ("peak_down_stake>=1/3", "lagging_fraction>0.05", "consensus_stalled==1")
_INTEREST = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|==|!=|>|<)\s*(\S+)\s*$")


@dataclass(slots=True)
class ExplorationTables:
    """One exploration directory: the experiments table, its manifest and unit design."""

    experiments: pd.DataFrame
    manifest: dict[str, Any]
    unit: np.ndarray
    directory: Path

    @property
    def knobs(self) -> list[str]:
        return [k["name"] for k in self.manifest.get("knobs", [])]

    @property
    def outcomes(self) -> list[str]:
        skip = {"point", "replication", "seed", *self.knobs}
        return [c for c in self.experiments.columns if c not in skip]


@dataclass(frozen=True, slots=True)
class Interest:
    """A yes/no outcome of interest: ``column op threshold`` (``peak_down_stake>=1/3``)."""

    column: str
    op: str
    threshold: float
    text: str


@dataclass(slots=True)
class Discovery:
    """PRIM boxes and tree leaves of one outcome of interest (or why there are none)."""

    interest: Interest
    prim: PrimResult | None
    rules: list[str]
    boxes: pd.DataFrame | None
    tree_rules: list[str]
    problem: str | None = None
    note: str | None = None


@dataclass(slots=True)
class ExplorationReport:
    """Everything the renderers show."""

    title: str
    facts: list[tuple[str, str]]
    sensitivity: list[SensitivityResult]
    skipped: list[str]
    discovery: list[Discovery]
    figures: dict[str, Figure] = field(default_factory=dict)


def is_exploration(directory: str | Path) -> bool:
    """Whether ``directory`` holds an exploration (its manifest says so)."""
    path = Path(directory) / "manifest.json"
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("format") == EXPLORATION_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def load_exploration(directory: str | Path) -> ExplorationTables:
    """The experiments table, manifest and unit design of an exploration directory."""
    folder = Path(directory)
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        experiments = pd.read_parquet(folder / "experiments.parquet")
        unit = pd.read_parquet(folder / "unit.parquet").to_numpy(dtype=float)
    except FileNotFoundError as exc:
        raise ReportError(f"{folder}: not a finished exploration ({Path(exc.filename).name}"
                          " missing; rerun with --resume)") from None
    except (OSError, ValueError) as exc:
        raise ReportError(f"{folder}: unreadable exploration ({type(exc).__name__})") from None
    if manifest.get("format") != EXPLORATION_FORMAT:
        raise ReportError(f"{folder}: manifest.json is not an exploration's")
    return ExplorationTables(experiments, manifest, unit, folder)


def parse_interest(text: str) -> Interest:
    """``COLUMN OP THRESHOLD`` (``>= > <= < == !=``; the threshold may be a fraction)."""
    match = _INTEREST.match(text)
    if match is None:
        raise DiscoveryError(f"--interest {text!r}: expected COLUMN OP VALUE, e.g."
                             " 'peak_down_stake>=1/3'")
    column, op, value = match.groups()
    try:
        threshold = float(Fraction(value))
    except (ValueError, ZeroDivisionError):
        raise DiscoveryError(f"--interest {text!r}: {value!r} is not a number") from None
    return Interest(column, op, threshold, f"{column} {op} {value}")


def _numeric(series: pd.Series) -> pd.Series:
    return series.astype(float) if series.dtype == bool else series


def sensitivity_of(tables: ExplorationTables, outcome: str, seed: int = 0
                   ) -> SensitivityResult:
    """The indices of one outcome (``reports.sensitivity.analyze_sensitivity``)."""
    experiments = tables.experiments.copy()
    experiments[outcome] = _numeric(experiments[outcome])
    return analyze_sensitivity(
        experiments, outcome, design=tables.manifest["design"],
        problem=tables.manifest["problem"], unit=tables.unit, seed=seed,
    )


def discover(tables: ExplorationTables, interest: Interest) -> Discovery:
    """PRIM boxes and tree leaves of one outcome of interest; ``problem`` says why none."""
    note = None
    try:
        if interest.column not in tables.experiments.columns:
            raise DiscoveryError(f"no column {interest.column!r} in the experiments table")
        frame = tables.experiments
        undefined = frame[interest.column].isna()
        if undefined.any():  # a figure defined only for some replications: say so
            note = (f"{interest.column} is defined in {int((~undefined).sum())} of"
                    f" {len(frame)} replications (undefined, e.g. when the release never"
                    " activated, in the others): boxes are over the defined ones only")
            frame = frame[~undefined].reset_index(drop=True)
        y = outcome_of_interest(frame, interest.column, interest.op, interest.threshold)
        result = prim(frame, y, tables.knobs)
        tree = decision_tree(frame, y, tables.knobs)
    except DiscoveryError as exc:
        return Discovery(interest, None, [], None, [], problem=str(exc), note=note)
    boxes = boxes_table(result.boxes, result.base_rate, interest.text)
    return Discovery(interest, result, list(boxes["rule"]), boxes,
                     tree_rules(tree, interest.text), note=note)


def build_exploration_report(
    tables: ExplorationTables, *, outcomes: list[str] | None = None,
    interests: list[str] | None = None, seed: int = 0,
) -> ExplorationReport:
    """Sensitivity for ``outcomes`` (Morris/Sobol designs) and discovery for ``interests``."""
    manifest = tables.manifest
    design = str(manifest.get("design"))
    wanted = outcomes or [o for o in DEFAULT_OUTCOMES if o in tables.experiments.columns]
    for name in wanted:
        if name not in tables.experiments.columns:
            raise ReportError(f"--outcome {name}: no such column in the experiments table")
    parsed = [parse_interest(t) for t in (interests or DEFAULT_INTERESTS)]
    report = ExplorationReport(
        title=f"What drives the blast radius: {manifest.get('scenario_name', 'scenario')}",
        facts=_facts(tables), sensitivity=[], skipped=[], discovery=[],
    )
    if design in SENSITIVITY_DESIGNS:
        for name in wanted:
            result = sensitivity_of(tables, name, seed)
            report.sensitivity.append(result)
            if result.indices.empty:
                continue
            report.figures[f"indices_{name}"] = indices_figure(result.indices, design, name)
            if design == "morris":
                report.figures[f"morris_{name}"] = morris_figure(result.indices, name)
    else:
        report.skipped.append(f"The {design} design has no index estimator: it feeds scenario"
                              " discovery. Use --design morris or sobol for indices.")
    for interest in parsed:
        found = discover(tables, interest)
        report.discovery.append(found)
        if found.prim is not None and found.prim.trajectories:
            trajectory = found.prim.trajectories[0]
            chosen = int(np.flatnonzero(trajectory["chosen"].to_numpy())[0]) \
                if trajectory["chosen"].any() else len(trajectory) - 1
            key = f"prim_{len(report.discovery)}"
            report.figures[key] = trajectory_figure(trajectory, chosen, interest.text)
    return report


def _facts(tables: ExplorationTables) -> list[tuple[str, str]]:
    m = tables.manifest
    knobs = ", ".join(k.get("spec", k["name"]) for k in m.get("knobs", []))
    return [
        ("scenario", f"{m.get('scenario_name')} (config {str(m.get('config_hash', ''))[:12]})"),
        ("design", f"{m.get('design')}, {m.get('samples')} samples -> {m.get('points')} design"
                   f" points x {m.get('replications')} replications"),
        ("knobs varied", knobs),
        ("overrides", ", ".join(m.get("overrides") or []) or "none"),
        ("seed", f"{m.get('seed')} ({m.get('seed_rule', '')})"),
        ("executor", f"{m.get('executor')} (results do not depend on it)"),
    ]


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _index_rows(result: SensitivityResult) -> tuple[list[str], list[list[str]]]:
    header = [c for c in result.indices.columns if c != "rank"]
    rows = [[_fmt(row[c]) for c in header] for _, row in result.indices.iterrows()]
    return ["rank", *header], [[str(i + 1), *r] for i, r in enumerate(rows)]


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return out


def _sections(report: ExplorationReport) -> list[tuple[str, list[Any]]]:
    """The report as (heading, blocks); a block is a str paragraph, a list (bullets), a
    ``("table", header, rows)`` or a ``("figure", key)``."""
    out: list[tuple[str, list[Any]]] = []
    for result in report.sensitivity:
        blocks: list[Any] = [result.method]
        if result.noise_share is not None:
            blocks.append(f"Noise share {result.noise_share:.2f}: the part of the variance"
                          " of the point means that replication noise alone would give.")
        if not result.indices.empty:
            header, rows = _index_rows(result)
            blocks.append(("table", header, rows))
            blocks += [("figure", f"indices_{result.outcome}"),
                       ("figure", f"morris_{result.outcome}")]
        if result.warnings:
            blocks.append(["Read with care: " + w for w in result.warnings])
        out.append((f"Sensitivity of {result.outcome}", blocks))
    if report.skipped:
        out.append(("Sensitivity", list(report.skipped)))
    for n, found in enumerate(report.discovery, 1):
        blocks = [] if found.note is None else [f"Read with care: {found.note}."]
        if found.problem is not None:
            blocks.append(f"No boxes: {found.problem}.")
        else:
            assert found.prim is not None and found.boxes is not None
            blocks.append(
                f"{found.interest.text} in {found.prim.n_interest} of {found.prim.n}"
                f" replications ({found.prim.base_rate:.1%}). PRIM (Friedman & Fisher 1999:"
                " peel 5% at a time, keep the densest box covering at least half of the"
                " cases, paste, drop restrictions whose quasi-p-value exceeds 0.05);"
                " numeric ranges read low <= knob < high.")
            if found.rules:
                blocks.append(list(found.rules))
                header = ["box", "coverage", "density", "mass", "n", "cases"]
                rows = [[str(r.box), f"{r.coverage:.0%}", f"{r.density:.0%}",
                         f"{r.mass:.1%}", str(r.n), str(r.n_interest)]
                        for r in found.boxes.itertuples()]
                blocks.append(("table", header, rows))
            else:
                blocks.append("PRIM found no box denser than the whole table.")
            blocks.append(("figure", f"prim_{n}"))
            if found.tree_rules:
                blocks.append("Second view, a depth-3 decision tree (CART, Gini): its leaves,"
                              " densest first:")
                blocks.append(list(found.tree_rules[:4]))
        out.append((f"Where {found.interest.text}", blocks))
    return out


def render_markdown(report: ExplorationReport) -> str:
    lines = [f"# {report.title}", ""]
    lines += _md_table(["", ""], [[k, v] for k, v in report.facts])[2:]
    for heading, blocks in _sections(report):
        lines += ["", f"## {heading}", ""]
        for block in blocks:
            if isinstance(block, str):
                lines += [block, ""]
            elif isinstance(block, list):
                lines += [f"- {item}" for item in block] + [""]
            elif block[0] == "table":
                lines += _md_table(block[1], block[2]) + [""]
            elif block[1] in report.figures:
                lines += [f"![{block[1]}]({block[1]}.png)", ""]
    return "\n".join(lines).rstrip() + "\n"


def render_html(report: ExplorationReport, pngs: dict[str, bytes]) -> str:
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{e(report.title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{e(report.title)}</h1>", "<table><tbody>"]
    parts += [f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in report.facts]
    parts.append("</tbody></table>")
    for heading, blocks in _sections(report):
        parts.append(f"<h2>{e(heading)}</h2>")
        for block in blocks:
            if isinstance(block, str):
                parts.append(f"<p>{e(block)}</p>")
            elif isinstance(block, list):
                parts.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in block) + "</ul>")
            elif block[0] == "table":
                head = "".join(f"<th>{e(h)}</th>" for h in block[1])
                body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>"
                               for row in block[2])
                parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
                             "</table>")
            elif block[1] in pngs:
                data = base64.b64encode(pngs[block[1]]).decode("ascii")
                parts.append(f'<img alt="{e(block[1])}" src="data:image/png;base64,{data}">')
    parts.append("<p><small>Generated by <code>releasesim report</code> from the exploration's"
                 " experiments table. Methods: docs/explore.md.</small></p></body></html>\n")
    return "\n".join(parts)


def report_json(report: ExplorationReport) -> dict[str, Any]:
    def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
        return json.loads(frame.to_json(orient="records"))

    return {
        "title": report.title,
        "facts": dict(report.facts),
        "sensitivity": [{
            "outcome": r.outcome, "design": r.design, "method": r.method,
            "indices": records(r.indices), "noise_share": r.noise_share,
            "points_used": r.points_used, "replications": r.replications,
            "warnings": list(r.warnings)} for r in report.sensitivity],
        "discovery": [{
            "interest": d.interest.text, "problem": d.problem, "note": d.note,
            "rules": d.rules,
            "boxes": [] if d.boxes is None else records(d.boxes),
            "tree_rules": d.tree_rules} for d in report.discovery],
    }


def write_exploration_report(
    directory: str | Path, out: str | Path | None = None, *,
    outcomes: list[str] | None = None, interests: list[str] | None = None,
) -> list[Path]:
    """Build the report of an exploration directory and write it (default: into it)."""
    tables = load_exploration(directory)
    report = build_exploration_report(tables, outcomes=outcomes, interests=interests)
    return save_exploration_report(report, Path(out) if out is not None else tables.directory)


def save_exploration_report(report: ExplorationReport, folder: Path) -> list[Path]:
    """Write ``report.md``, ``report.html``, ``report.json`` and the PNGs into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    pngs = {key: figure_png(fig) for key, fig in report.figures.items()}
    written = []
    for key, data in pngs.items():
        atomic_write(folder / f"{key}.png", data)
        written.append(folder / f"{key}.png")
    for name, text in (("report.md", render_markdown(report)),
                       ("report.html", render_html(report, pngs)),
                       ("report.json", json.dumps(report_json(report), indent=2,
                                                  allow_nan=False, default=str) + "\n")):
        atomic_write(folder / name, text.encode("utf-8"))
        written.append(folder / name)
    return written


__all__ = [
    "DEFAULT_INTERESTS", "DEFAULT_OUTCOMES", "Discovery", "ExplorationReport",
    "ExplorationTables", "Interest", "build_exploration_report", "discover",
    "is_exploration", "load_exploration", "parse_interest", "render_html",
    "render_markdown", "report_json", "save_exploration_report", "sensitivity_of",
    "write_exploration_report",
]
