"""Issue 8, items 2 and 3: no replication dropped silently, one interval method per measure.

- the Kaplan-Meier estimate and its band against ``scipy.stats.ecdf`` (an independent
  implementation), its quantile against numpy without censoring, and the coverage of the
  median's interval by simulation against a known truth;
- censoring from the run tables: "censored at the horizon" vs "never", exactly;
- the fraction interval: never zero width because all replications agree, never inflated
  to one trial per replication, coverage by simulation;
- on real runs: P(activated) heads every summary, conditional figures say so, adoption
  quantiles are monotone, and the terminal, report.json and the sweep show the same numbers.

Coverage tolerances: 2000 seeded data sets, so the Monte Carlo standard error of a 95%
coverage is 0.005; the lower limit 0.93 is 4 standard errors below the nominal 0.95.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import CensoredData, ecdf

from releasesim.reports.blast_radius import blast_radius, format_blast_radius
from releasesim.reports.estimates import fraction_interval, measure_table, qualifier
from releasesim.reports.intervals import wilson
from releasesim.reports.measures import CENSORED_SUFFIX, HEADLINE
from releasesim.reports.replications import per_replication
from releasesim.reports.report import write_report
from releasesim.reports.survival import censored_quantile, kaplan_meier, km_quantile
from releasesim.reports.sweep import sweep_table
from releasesim.sim.api import run

DATASETS = 2000
COVERAGE_FLOOR = 0.95 - 4 * math.sqrt(0.95 * 0.05 / DATASETS)  # 0.930


# --------------------------------------------------------------------------- Kaplan-Meier


def test_kaplan_meier_matches_scipy_ecdf() -> None:
    rng = np.random.default_rng(11)
    t = np.round(rng.exponential(10.0, 60))  # ties on purpose
    c = np.round(rng.uniform(0.0, 25.0, 60))
    observed = t <= c
    durations = np.where(observed, t, c)
    curve = kaplan_meier(durations, observed)
    reference = ecdf(CensoredData.right_censored(durations, ~observed)).sf
    np.testing.assert_allclose(curve.survival, reference.evaluate(curve.times), atol=1e-12)
    band = reference.confidence_interval(method="log-log")
    finite = curve.survival > 0
    np.testing.assert_allclose(curve.low[finite], band.low.evaluate(curve.times)[finite],
                               atol=1e-12)
    np.testing.assert_allclose(curve.high[finite], band.high.evaluate(curve.times)[finite],
                               atol=1e-12)
    assert curve.events == int(observed.sum()) and curve.n == 60


def test_uncensored_quantiles_are_the_empirical_ones() -> None:
    x = np.random.default_rng(2).exponential(5.0, 41)
    curve = kaplan_meier(x, np.ones(41, bool))
    for q in (0.5, 0.9, 0.99):
        assert km_quantile(curve, q)[0] == np.quantile(x, q, method="inverted_cdf")


def test_a_median_never_reached_is_infinite_not_a_mean_of_the_finished() -> None:
    # 7 of 20 saw the event (times 10..70), 13 were cut by the horizon at 100
    durations = np.array([10.0 * (i + 1) for i in range(7)] + [100.0] * 13)
    observed = np.array([True] * 7 + [False] * 13)
    est, low, high, n = censored_quantile(durations, observed)
    assert est == math.inf and high == math.inf and n == 20
    assert kaplan_meier(durations, observed).follow_up == 100.0


@pytest.mark.parametrize(("n", "horizon"), [(20, 150.0), (50, 120.0)])
def test_km_median_interval_covers_the_true_median(n: int, horizon: float) -> None:
    rng = np.random.default_rng(20261201 + n)
    true_median = 100.0 * math.log(2.0)  # exponential, mean 100
    covered = 0
    for _ in range(DATASETS):
        t = rng.exponential(100.0, n)
        observed = t <= horizon
        _, low, high, _ = censored_quantile(np.where(observed, t, horizon), observed)
        covered += low <= true_median <= high
    coverage = covered / DATASETS
    assert COVERAGE_FLOOR <= coverage <= 0.99, coverage  # not below, not absurdly wide


# --------------------------------------------------------------------------- fractions


def test_fraction_interval_cannot_collapse_and_is_not_inflated() -> None:
    nodes = np.full(20, 1000.0)
    mean, low, high, n = fraction_interval(np.full(20, 0.1), nodes)
    _, pooled_low, pooled_high = wilson(2000, 20000)
    assert (mean, n) == (pytest.approx(0.1), 20)
    assert (low, high) == (pytest.approx(pooled_low), pytest.approx(pooled_high))
    assert high - low > 0.005  # not [0.1, 0.1]
    _, one_trial_low, one_trial_high = wilson(2.0, 20)
    assert high - low < (one_trial_high - one_trial_low) / 10  # not [0.028, 0.301]
    _, low0, high0, _ = fraction_interval(np.zeros(20), nodes)
    assert low0 == 0.0 and high0 == pytest.approx(wilson(0, 20000)[2]) and high0 > 0


def test_fraction_interval_covers_the_mean_fraction() -> None:
    rng = np.random.default_rng(8)
    true = 0.1
    covered = 0
    for _ in range(DATASETS):
        p = rng.beta(20.0, 180.0, 20)  # replication-to-replication variation around 0.1
        x = rng.binomial(1000, p) / 1000
        _, low, high, _ = fraction_interval(x, np.full(20, 1000.0))
        covered += low <= true <= high
    assert covered / DATASETS >= COVERAGE_FLOOR


# --------------------------------------------------------------------------- censoring


def _tables(cut: list[bool], activation: list[float], adoption: list[float]) -> tuple:
    reps = len(cut)
    summary = pd.DataFrame({
        "replication": range(reps),
        "activated": [math.isfinite(a) for a in activation],
        "time_to_activation_s": activation,
        "time_to_quorum_s": [50.0] * reps,
        "adoption_p50_s": adoption, "adoption_p90_s": adoption, "adoption_p99_s": adoption,
        "halt_time_s": [math.nan] * reps,
        "sim_end_s": [1000.0] * reps,
        "horizon_cut": cut,
    })
    events = pd.DataFrame({"replication": range(reps), "time_s": [100.0] * reps,
                           "kind": ["build"] * reps})
    nodes = pd.DataFrame({"replication": np.repeat(range(reps), 2),
                          "failed_startup": False, "final_build": "new",
                          "installed_s": 1.0, "rolled_back_s": math.nan, "down_s": 1.0})
    return summary, nodes, events


def test_censoring_tells_the_horizon_from_never() -> None:
    nan = math.nan
    summary, nodes, events = _tables(
        cut=[True, False, False, True],
        activation=[nan, nan, 200.0, 300.0],  # build at 100: activation at 300 and 400
        adoption=[nan, nan, nan, 60.0],
    )
    values = per_replication(summary, nodes, events)
    act = values["time_to_activation_s" + CENSORED_SUFFIX].tolist()
    assert act[0] == 900.0  # cut by the horizon at 1000, built at 100
    assert act[1] == math.inf  # ended with no activation possible (rejected): never
    assert math.isnan(act[2]) and math.isnan(act[3])  # observed
    p99 = values["adoption_p99_s" + CENSORED_SUFFIX].tolist()
    assert math.isnan(p99[0]) and math.isnan(p99[1])  # not activated: not defined
    assert p99[2] == math.inf  # activated, finished, p99 never reached
    assert math.isnan(p99[3])  # observed
    table = measure_table(values).set_index("measure")
    assert table.loc["time_to_activation_s", "n"] == 4
    assert table.loc["time_to_activation_s", "censored"] == 2
    assert table.loc["adoption_p99_s", "n"] == 2  # given activated
    assert qualifier(table.loc["adoption_p99_s"]) == (
        "given activated, n = 2 of 4; 1 of 2 censored (horizon or never)")


def test_order_restricted_adoption_quantiles_are_monotone() -> None:
    # p90 and p99 medians estimated separately would be below p50's (censoring differs):
    # p50 = 50 everywhere, p90/p99 seen early in two replications, cut in the other three
    nan = math.nan
    summary, nodes, events = _tables(
        cut=[True] * 5, activation=[100.0] * 5, adoption=[50.0] * 5)
    summary["adoption_p90_s"] = [60.0, 61.0, nan, nan, nan]
    summary["adoption_p99_s"] = [62.0, 63.0, nan, nan, nan]
    summary["adoption_p50_s"] = [50.0, 51.0, 900.0, 900.0, 900.0]
    values = per_replication(summary, nodes, events)
    raw50 = censored_quantile(values["adoption_p50_s"].to_numpy(), np.ones(5, bool))[0]
    table = measure_table(values).set_index("measure")
    p50, p90, p99 = (table.loc[f"adoption_p{q}_s", "value"] for q in (50, 90, 99))
    assert p50 == raw50 == 900.0
    assert p50 <= p90 <= p99
    for bound in ("ci_low", "ci_high"):
        lo50, lo90, lo99 = (table.loc[f"adoption_p{q}_s", bound] for q in (50, 90, 99))
        assert lo50 <= lo90 <= lo99


# --------------------------------------------------------------------------- real runs


@pytest.fixture(scope="module")
def churn(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """Threshold 7 of 7 under churn with a 2 h horizon: most replications never activate."""
    out = tmp_path_factory.mktemp("runs") / "churn7"
    result = run("signer_churn", replications=20, seed=20261127, executor="serial",
                 set=["signers.threshold=7", "signers.threshold_schedule=[]",
                      "horizon_s=7200", "fleet.nodes=200"], out_dir=out)
    write_report(out)
    return result, out


def test_p_activated_heads_every_summary_and_conditional_figures_say_so(churn) -> None:
    result, out = churn
    summary = result.summary
    activated = int(summary["activated"].sum())
    assert 0 < activated < 20  # the run shows the problem
    table = blast_radius(result.summary, result.nodes, result.events)
    assert list(table["measure"][: len(HEADLINE)]) == list(HEADLINE)
    row = table.set_index("measure").loc["activated"]
    p, low, high = wilson(activated, 20)
    assert (row["value"], row["ci_low"], row["ci_high"]) == pytest.approx((p, low, high))
    text = format_blast_radius(table, result.manifest, {}, 20)
    lagging_n = int(summary["lagging_fraction"].notna().sum())
    assert f"given activated, sla_s observed, n = {lagging_n} of 20" in text
    assert any("lagging_fraction is conditional" in line for line in text.splitlines()
               if line.startswith("!"))
    report = json.loads((out / "report.json").read_text())
    assert report["headline"][0] == "activated" and report["warnings"]
    md = (out / "report.md").read_text()
    assert md.index("Read with care") < md.index("## Headline") < md.index("## Timing")


def test_time_to_activation_is_the_kaplan_meier_median_of_the_run(churn) -> None:
    result, _ = churn
    s = result.summary
    build = result.events[result.events["kind"] == "build"].set_index("replication")["time_s"]
    seen = s["time_to_activation_s"].notna().to_numpy()
    cut = s["horizon_cut"].to_numpy(dtype=bool)
    ends = s["sim_end_s"].to_numpy() - build.reindex(s["replication"]).to_numpy()
    durations = np.where(seen, s["time_to_activation_s"], np.where(cut, ends, np.inf))
    # independent: scipy's Kaplan-Meier, median = first time S <= 1/2
    sf = ecdf(CensoredData.right_censored(np.minimum(durations, 1e12), ~seen)).sf
    reached = sf.quantiles[sf.probabilities <= 0.5]
    expected = float(reached[0]) if len(reached) else math.inf
    table = blast_radius(result.summary, result.nodes, result.events).set_index("measure")
    assert table.loc["time_to_activation_s", "value"] == expected
    mean_of_finished = float(s["time_to_activation_s"].mean())
    assert table.loc["time_to_activation_s", "value"] != pytest.approx(mean_of_finished)


def test_terminal_report_json_and_sweep_show_the_same_intervals(churn) -> None:
    result, out = churn
    table = blast_radius(result.summary, result.nodes, result.events).set_index("measure")
    report = {m["measure"]: m for m in json.loads((out / "report.json").read_text())["measures"]}
    values = per_replication(result.summary, result.nodes, result.events)
    sweep = sweep_table([({"signers.threshold": "7"}, values, 7200.0)]).iloc[0]
    for name in ("activated", "lagging_fraction", "peak_down_fraction", "malicious_approved",
                 "time_to_quorum_s", "consensus_stalled", "stall_longest_s", "peak_down_stake",
                 "lagging_stake"):
        row = table.loc[name]
        for column, key in (("value", name), ("ci_low", f"{name}_ci_low"),
                            ("ci_high", f"{name}_ci_high")):
            expected = float(row[column])
            got_json = report[name][column]
            got_json = math.inf if got_json == "inf" else (
                math.nan if got_json is None else got_json)
            assert got_json == pytest.approx(expected, nan_ok=True), (name, column)
            assert float(sweep[key]) == pytest.approx(expected, nan_ok=True), (name, column)


def test_adoption_quantiles_are_monotone_on_a_lagging_fleet(tmp_path: Path) -> None:
    result = run("lagging_release", replications=8, seed=4, executor="serial",
                 set=["fleet.nodes=400", "horizon_s=10800"])
    table = blast_radius(result.summary, result.nodes, result.events).set_index("measure")
    for column in ("value", "ci_low", "ci_high"):
        p50, p90, p99 = (table.loc[f"adoption_p{q}_s", column] for q in (50, 90, 99))
        assert p50 <= p90 <= p99, column
    assert table.loc["adoption_p99_s", "given"] == "activated"
