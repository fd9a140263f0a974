"""Blast-radius reports, threshold sweeps and the CI regression check, from result tables.

Pure pandas + matplotlib on the run tables (``summary``, ``nodes``, ``events``): measures
with 95% CIs (``releasesim.reports.measures``), figures that return ``(fig, axes)``
(``reports.figures``), the HTML/Markdown report (``reports.report``), sweep tables and
the safety-vs-liveness frontier (``releasesim.reports.sweep``) and the baseline comparison
(``releasesim.reports.regression``). Must not import ``sim`` internals or ``model``.

    >>> from releasesim.reports import write_report
    >>> write_report("runs/baseline-20250101T120000Z")  # doctest: +SKIP
"""

from __future__ import annotations

from releasesim.reports.report import ReportError, build_report, load_run, write_report

__all__ = ["ReportError", "build_report", "load_run", "write_report"]
