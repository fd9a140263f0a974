"""Blast-radius report: intervals against known answers, measures against the engine's own
summary, the reconstructed series, a self-contained HTML report and the ``report`` command."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from releasesim.cli.main import main
from releasesim.reports.estimates import measure_table
from releasesim.reports.intervals import bootstrap, t975, t_interval, wilson
from releasesim.reports.measures import BEGIN_MARK, END_MARK, MEASURES, METHODS, measures_markdown
from releasesim.reports.replications import activation_times, per_replication
from releasesim.reports.report import FIGURES, build_report, load_run, write_report
from releasesim.reports.series import down_curves, down_intervals, exposure_curves, peak_down
from releasesim.sim.api import run

DOCS = Path(__file__).resolve().parents[1] / "docs" / "reports.md"
NODES = 60
REPS = 6


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small waves rollout of a bad build (halts, rollbacks), written as a run directory."""
    out = tmp_path_factory.mktemp("run") / "bad"
    run("bad_release_rollback", replications=REPS, seed=11, executor="serial",
        set=[f"fleet.nodes={NODES}", "rollout.waves=[0.2, 0.6, 1.0]"], out_dir=out)
    return out


@pytest.fixture(scope="module")
def healthy() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    result = run("baseline", replications=REPS, seed=5, executor="serial",
                 set=[f"fleet.nodes={NODES}"])
    return result.summary, result.nodes, result.events


# --------------------------------------------------------------------------- intervals


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [(0, 10, 0.0, 0.27753), (5, 10, 0.23659, 0.76341), (10, 10, 0.72247, 1.0),
     (1, 100, 0.00177, 0.05449)],
)
def test_wilson_matches_published_values(k: int, n: int, low: float, high: float) -> None:
    p, lo, hi = wilson(k, n)
    assert p == pytest.approx(k / n)
    assert lo == pytest.approx(low, abs=2e-5) and hi == pytest.approx(high, abs=2e-5)


def test_t_quantile_and_interval() -> None:
    assert t975(1) == pytest.approx(12.706) and t975(10) == pytest.approx(2.228)
    assert t975(60) == pytest.approx(2.000, abs=1e-3)
    assert t975(120) == pytest.approx(1.980, abs=1e-3)
    mean, low, high, n = t_interval(np.array([1.0, 2.0, 3.0, np.nan]))
    assert (mean, n) == (2.0, 3)
    assert high - mean == pytest.approx(4.303 * 1.0 / math.sqrt(3), rel=1e-3)
    assert math.isnan(t_interval(np.array([4.0]))[1])


def test_bootstrap_is_reproducible_and_brackets_the_median() -> None:
    x = np.random.default_rng(3).exponential(10.0, 40)
    first, again = bootstrap(x), bootstrap(x)
    assert first == again
    est, low, high, n = first
    assert n == 40 and est == pytest.approx(np.median(x)) and low <= est <= high
    assert bootstrap(np.array([np.nan, np.nan]))[3] == 0


# --------------------------------------------------------------------------- measures


def test_measure_docs_are_in_sync() -> None:
    text = DOCS.read_text(encoding="utf-8")
    generated = text[text.index(BEGIN_MARK) + len(BEGIN_MARK):text.index(END_MARK)]
    assert generated.strip() == measures_markdown().strip(), "run: python3 tasks.py docs"
    assert len({m.name for m in MEASURES}) == len(MEASURES)
    assert all(m.method in METHODS for m in MEASURES)


def test_measures_agree_with_the_engine_summary(healthy) -> None:
    summary, nodes, events = healthy
    values = per_replication(summary, nodes, events)
    assert len(values) == REPS
    for name in ("lagging_fraction", "peak_down_fraction", "time_to_activation_s"):
        np.testing.assert_allclose(values[name], summary[name].astype(float))
    assert values["activated"].tolist() == summary["activated"].astype(float).tolist()
    failed = nodes.groupby("replication")["failed_startup"].mean().to_numpy()
    np.testing.assert_allclose(values["failed_startup_fraction"], failed)
    table = measure_table(values)
    row = table.set_index("measure").loc["activated"]
    p, low, high = wilson(int(summary["activated"].sum()), REPS)
    assert (row["value"], row["ci_low"], row["ci_high"], row["n"], row["N"]) == (
        pytest.approx(p), pytest.approx(low), pytest.approx(high), REPS, REPS)


def test_activation_time_lines_up_with_adoption(healthy) -> None:
    summary, nodes, events = healthy
    act = activation_times(summary, events)
    for rep, t_act in act.items():
        p50 = float(summary.set_index("replication").loc[rep, "adoption_p50_s"])
        if not math.isfinite(t_act):
            continue
        booted = nodes.loc[nodes["replication"] == rep, "booted_new_s"].to_numpy() - t_act
        assert np.mean(booted <= p50 + 1e-9) >= 0.5
        assert np.mean(booted < p50 - 1e-6) < 0.5


def test_reconstructed_down_intervals_reproduce_the_engine_peak(healthy) -> None:
    summary, nodes, _ = healthy
    intervals, approximate = down_intervals(nodes)
    assert approximate == 0
    for rep, row in summary.set_index("replication").iterrows():
        iv = intervals[intervals["replication"] == rep]
        peak = peak_down(iv["start_s"].to_numpy(), iv["end_s"].to_numpy()) / NODES
        assert peak == pytest.approx(row["peak_down_fraction"])


def test_exposure_curve_ends_at_the_booted_fraction(healthy) -> None:
    summary, nodes, events = healthy
    bands = exposure_curves(summary, nodes, events)
    running = bands["running"]
    activated = int(summary["activated"].sum())
    assert running.n == activated
    booted = nodes.groupby("replication")["booted_new_s"].apply(lambda s: s.notna().mean())
    expected = booted[summary.loc[summary["activated"], "replication"]].to_numpy()
    np.testing.assert_allclose(running.curves[:, -1], expected)
    assert np.all(np.diff(running.median) >= -1e-12)
    down, _ = down_curves(summary, nodes, events)
    assert down.curves.max() <= summary["peak_down_fraction"].max() + 1e-12


# --------------------------------------------------------------------------- the report


def test_write_report_is_self_contained(run_dir: Path) -> None:
    paths = write_report(run_dir)
    names = {p.name for p in paths}
    pngs = {p.name for p in paths if p.suffix == ".png"}
    # the stall figures only when consensus stalled in some replication
    stalled = bool(pd.read_parquet(run_dir / "summary.parquet")["consensus_stalled"].any())
    optional = {"fig_stalls.png", "fig_stall_validators.png"}
    expected = {name for _, name, _ in FIGURES} - (set() if stalled else optional)
    assert names == expected | {"report.html", "report.md", "report.json"}
    for name in pngs:
        assert (run_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == len(pngs)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
    assert "<script" not in html.lower() and "<link" not in html.lower()
    assert "All invariants are 0" in html and "Down intervals: recorded" in html
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (run_dir / link).is_file()
    for m in MEASURES:
        assert f"| {m.name} |" in md, m.name
    assert md.index("## Headline") < md.index("## Exposure over time")
    assert "| activated | probability | share" in md
    assert not list(run_dir.glob(".*tmp*"))


def test_report_shows_n_for_undefined_measures(run_dir: Path) -> None:
    report = build_report(load_run(run_dir))
    table = report.table.set_index("measure")
    halted = int(report.values["halted"].sum())
    assert table.loc["exposure_at_halt_fraction", "n"] == halted
    assert (table["N"] == REPS).all()
    for fig in report.figures.values():
        assert isinstance(fig.canvas, FigureCanvasAgg)
        for ax in fig.axes:
            if ax.get_visible() and ax.get_xlabel():
                assert "[" in ax.get_xlabel(), ax.get_xlabel()


def test_report_command(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["report", str(run_dir), "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "report.html").is_file()
    assert "report.html" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err


@pytest.mark.parametrize("n", [1, 7, 30, 100, 1000, 20000])
def test_wilson_bounds_are_exact_at_zero_and_all(n: int) -> None:
    assert wilson(0, n)[1] == 0.0 and wilson(n, n)[2] == 1.0
    # the other bound: z^2 / (n + z^2), the closed form of Wilson's interval at p = 0
    z2 = 1.959963984540054 ** 2
    assert wilson(0, n)[2] == pytest.approx(z2 / (n + z2), rel=1e-12)
    assert 1.0 - wilson(n, n)[1] == pytest.approx(z2 / (n + z2), rel=1e-12)
