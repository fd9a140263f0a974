"""Issue 11: the consensus measures in stake, their intervals and the stall censoring.

Every measure is checked on real runs against a computation written here from the run's
own tables: the stake shares from the nodes table (``stake`` per node; the chain's total
from the scenario's explicit ``governance.stakes``), the stall and down-stake figures from
a sweep over the recorded down intervals (``downtime``), the Kaplan-Meier median of the
recovery time against ``scipy.stats.ecdf``, the stake interval against a hand-written t
and Wilson computation. The ``stake`` interval's coverage is checked by simulation
against a known truth, including the rare-event case where the node-pooled Wilson
interval and the bare t interval are too narrow.

Tolerances: shares and times recomputed from the tables agree to 1e-9 (relative; the
engine sums integer voting power, ``round(stake / max * 2**40)``, so a share differs from
the float one by at most ~1e-12 per validator). Coverage: 2000 seeded data sets, Monte
Carlo standard error 0.005 at 95%; the floor 0.93 is 4 standard errors below 0.95.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import CensoredData, ecdf
from scipy.stats import t as student_t

from releasesim.cli.main import main
from releasesim.reports.blast_radius import blast_radius, format_blast_radius
from releasesim.reports.estimates import (
    conditional_warnings,
    fraction_interval,
    measure_table,
    qualifier,
    stake_interval,
)
from releasesim.reports.formatting import format_estimate
from releasesim.reports.measures import (
    BY_NAME,
    CENSORED_SUFFIX,
    HEADLINE,
    MEASURES,
    RESTRICTED_SUFFIX,
    STAKE_FROM_NODES,
    VALIDATORS_EFFECTIVE,
)
from releasesim.reports.replications import per_replication
from releasesim.sim.api import run

VALIDATORS = 50
IN_FLEET = 40
STAKES = [round(1.0 / (i + 1) ** 0.8, 6) for i in range(VALIDATORS)]
"""Explicit, unequal stakes (the largest ~8% of the power): the chain's total is known."""
TOTAL = sum(STAKES)
NODES = 60
SLA_S = 3600.0
REL = 1e-9
DATASETS = 2000
COVERAGE_FLOOR = 0.95 - 4 * math.sqrt(0.95 * 0.05 / DATASETS)  # 0.930
Z95 = 1.959963984540054


def _run(mode: str, failure: float, seed: int) -> object:
    return run("baseline", replications=10, seed=seed, executor="serial",
               set=[f"fleet.nodes={NODES}", f'consensus.mode="{mode}"',
                    f"release.startup_failure_prob={failure}", f"fleet.validators={IN_FLEET}",
                    f"governance.stakes={STAKES}", f"sla_s={SLA_S}"])


@pytest.fixture(scope="module")
def halt() -> object:
    """Halt at height, 30% failed starts (a failed validator stays stopped): every
    replication stalls, some recover, some are still stalled at the end."""
    return _run("halt_at_height", 0.3, 7)


@pytest.fixture(scope="module")
def rolling() -> object:
    """Rolling upgrade of the same fleet: validators restart when they install."""
    return _run("rolling", 0.1, 7)


@pytest.fixture(params=["halt", "rolling"])
def result(request: pytest.FixtureRequest) -> object:
    return request.getfixturevalue(request.param)


# --------------------------------------------------------------------------- stake shares


def _affected(g: pd.DataFrame) -> dict[str, np.ndarray]:
    return {
        "exposed_stake": g["installed_s"].notna().to_numpy(),
        "failed_startup_stake": g["failed_startup"].to_numpy(dtype=bool),
        "rolled_back_stake": g["rolled_back_s"].notna().to_numpy(),
        "stuck_old_stake": (g["final_build"] == "old").to_numpy(),
        "malicious_installed_stake": g["installed_malicious"].to_numpy(dtype=bool),
        "malicious_running_stake": (g["final_build"] == "malicious").to_numpy(),
    }


def test_the_fleet_runs_the_first_validators_with_their_stakes(result) -> None:
    for _, g in result.nodes.groupby("replication"):
        stake = g.sort_values("node")["stake"].to_numpy()
        np.testing.assert_allclose(stake[:IN_FLEET], STAKES[:IN_FLEET], rtol=REL)
        assert (stake[IN_FLEET:] == 0).all()
    values = per_replication(result.summary, result.nodes, result.events)
    assert (values["validators_in_fleet"] == IN_FLEET).all()
    np.testing.assert_allclose(values["stake_in_fleet"], sum(STAKES[:IN_FLEET]) / TOTAL,
                               rtol=REL)
    effective = sum(STAKES[:IN_FLEET]) ** 2 / sum(s * s for s in STAKES[:IN_FLEET])
    np.testing.assert_allclose(values[VALIDATORS_EFFECTIVE], effective, rtol=REL)


def test_stake_shares_are_recomputed_from_the_nodes_table(result) -> None:
    values = per_replication(result.summary, result.nodes, result.events)
    assert set(STAKE_FROM_NODES) >= set(_affected(result.nodes.iloc[:1]))
    for rep, g in result.nodes.groupby("replication"):
        stake = g["stake"].to_numpy(dtype=float)
        for name, mask in _affected(g).items():
            expected = stake[mask].sum() / TOTAL  # the chain's total, not the fleet's
            assert values.loc[rep, name] == pytest.approx(expected, rel=REL, abs=1e-12), name
    some = values[["failed_startup_stake", "stuck_old_stake"]].to_numpy()
    assert (some > 0).any()  # the check is not vacuous


def test_halt_stake_shares_are_defined_only_given_a_rollout_halt(result) -> None:
    values = per_replication(result.summary, result.nodes, result.events)
    halted = values["halted"] == 1.0
    for name in ("exposure_at_halt_stake", "failed_after_halt_stake"):
        assert values.loc[~halted, name].isna().all()
        assert BY_NAME[name].given == "halted"


def test_lagging_stake_is_recomputed_from_boot_times(result) -> None:
    s = result.summary.set_index("replication")
    values = per_replication(result.summary, result.nodes, result.events)
    build = result.events[result.events["kind"] == "build"].groupby("replication")["time_s"].min()
    for rep, g in result.nodes.groupby("replication"):
        if math.isnan(s.loc[rep, "lagging_fraction"]):
            assert math.isnan(values.loc[rep, "lagging_stake"])
            continue
        activation = build[rep] + s.loc[rep, "time_to_activation_s"]
        booted = g["booted_new_s"].to_numpy(dtype=float)
        late = ~(booted <= activation + SLA_S)  # never booted: late
        expected = g["stake"].to_numpy()[late].sum() / TOTAL
        assert values.loc[rep, "lagging_stake"] == pytest.approx(expected, rel=REL, abs=1e-12)
    assert values["lagging_stake"].notna().any()


# --------------------------------------------------------------------------- liveness


def _sweep(rows: pd.DataFrame, stake: dict[int, float], horizon: float) -> dict[str, float]:
    """Stall figures of one replication by a sweep over its down intervals (written here).

    Stalled while the share of the chain's power down is >= 1/3 (up <= 2/3 of the total:
    the default liveness threshold). Intervals are half-open; all changes at one instant
    apply together; the window is [0, horizon].
    """
    changes: dict[float, float] = {}
    for row in rows.itertuples(index=False):
        start, end = max(row.start_s, 0.0), min(row.end_s, horizon)
        if end > start and stake[row.node] > 0:
            changes[start] = changes.get(start, 0.0) + stake[row.node] / TOTAL
            changes[end] = changes.get(end, 0.0) - stake[row.node] / TOTAL
    times = sorted(changes) + [horizon]
    down, peak, integral = 0.0, 0.0, 0.0
    stalls: list[list[float]] = []
    for t0, t1 in zip(times[:-1], times[1:], strict=True):
        down += changes[t0]
        if t1 <= t0:
            continue
        peak = max(peak, down)
        integral += down * (t1 - t0)
        if down >= 1 / 3 - 1e-12:
            if stalls and stalls[-1][1] == t0:
                stalls[-1][1] = t1
            else:
                stalls.append([t0, t1])
    lengths = [b - a for a, b in stalls]
    return {
        "consensus_stalled": float(bool(stalls)),
        "stall_total_s": float(sum(lengths)),
        "stall_longest_s": max(lengths, default=0.0),
        "stall_first_s": stalls[0][0] if stalls else math.nan,
        "stall_open_at_end": float(bool(stalls) and stalls[-1][1] >= horizon),
        "stall_recover_s": (stalls[-1][1] - stalls[0][0]
                            if stalls and stalls[-1][1] < horizon else math.nan),
        "peak_down_stake": peak,
        "down_stake_s": integral,
        "down_over_third": float(peak >= 1 / 3 - 1e-12),
    }


def test_stall_and_down_stake_match_a_sweep_over_the_down_intervals(result) -> None:
    values = per_replication(result.summary, result.nodes, result.events)
    horizon = result.summary.set_index("replication")["horizon_s"]
    peaks = []
    for rep, g in result.nodes.groupby("replication"):
        stake = dict(zip(g["node"], g["stake"], strict=True))
        rows = result.downtime[result.downtime["replication"] == rep]
        expected = _sweep(rows, stake, float(horizon[rep]))
        peaks.append(expected["peak_down_stake"])
        for name, value in expected.items():
            got = (values.loc[rep, name] if name in values.columns
                   else result.summary.set_index("replication").loc[rep, name])
            assert got == pytest.approx(value, rel=REL, abs=1e-6, nan_ok=True), (rep, name)
    assert max(peaks) > 0.05  # validators were down: the comparison is not vacuous


def test_halt_at_height_stalls_recovers_and_stays_stalled(halt) -> None:
    values = per_replication(halt.summary, halt.nodes, halt.events)
    assert (values["consensus_stalled"] == 1.0).all()
    open_ = values["stall_open_at_end"] == 1.0
    assert 0 < open_.sum() < len(values)  # both kinds of replication: the tests below bite


# --------------------------------------------------------------------------- censoring


def test_stall_recovery_is_censored_at_the_horizon_when_still_stalled(halt) -> None:
    values = per_replication(halt.summary, halt.nodes, halt.events)
    s = halt.summary.set_index("replication")
    open_ = (values["stall_open_at_end"] == 1.0).to_numpy()
    censored = values["stall_recover_s" + CENSORED_SUFFIX].to_numpy()
    expected = (s["horizon_s"] - s["stall_first_s"]).to_numpy()
    np.testing.assert_allclose(censored[open_], expected[open_], rtol=REL)
    assert np.isnan(censored[~open_]).all()
    restricted = values["stall_recover_s" + RESTRICTED_SUFFIX].to_numpy()
    np.testing.assert_allclose(restricted, np.where(open_, expected, values["stall_recover_s"]),
                               rtol=REL)
    # independent: scipy's Kaplan-Meier, median = first time S <= 1/2
    durations = np.where(open_, expected, values["stall_recover_s"].to_numpy())
    sf = ecdf(CensoredData.right_censored(durations, open_)).sf
    reached = sf.quantiles[sf.probabilities <= 0.5]
    row = measure_table(values).set_index("measure").loc["stall_recover_s"]
    assert row["value"] == (float(reached[0]) if len(reached) else math.inf)
    assert (row["n"], row["censored"]) == (len(values), int(open_.sum()))
    assert row["follow_up"] == pytest.approx(expected[open_].max(), rel=REL)
    assert f"{int(open_.sum())} of {len(values)} censored (still stalled at the end)" in (
        qualifier(row))


def test_stall_origin_by_hand() -> None:
    nan = math.nan
    summary = pd.DataFrame({
        "replication": range(4), "sim_end_s": [5000.0, 3000.0, 5000.0, 900.0],
        "horizon_s": [5000.0] * 4, "horizon_cut": [True, False, True, False],
        "consensus_stalled": [True, True, False, True],
        "stall_first_s": [1000.0, 1200.0, nan, 400.0],
        "stall_recover_s": [300.0, nan, nan, nan],
        "stall_open_at_end": [False, True, False, True],
        "time_to_activation_s": [nan] * 4, "halt_time_s": [nan] * 4,
    })
    nodes = pd.DataFrame({"replication": range(4), "failed_startup": False,
                          "final_build": "new", "installed_s": 1.0, "rolled_back_s": nan,
                          "down_s": 0.0})
    values = per_replication(summary, nodes, pd.DataFrame(columns=["replication", "time_s",
                                                                   "kind"]))
    at = values["stall_recover_s" + CENSORED_SUFFIX].tolist()
    assert math.isnan(at[0])  # recovered: observed
    assert at[1] == 5000.0 - 1200.0  # judged up to the horizon, not the run's end (3000)
    assert math.isnan(at[2])  # never stalled: not defined
    assert at[3] == 5000.0 - 400.0
    by = values["stall_recover_s" + RESTRICTED_SUFFIX].tolist()
    assert by[0] == 300.0 and by[1] == 3800.0 and math.isnan(by[2]) and by[3] == 4600.0
    row = measure_table(values).set_index("measure").loc["stall_recover_s"]
    assert (row["n"], row["N"], row["censored"]) == (3, 4, 2)
    assert row["value"] == math.inf  # 1 of 3 seen: the median is not reached
    assert format_estimate(row["value"], "s", row["follow_up"]) == "> 76.7 min"


def test_stall_durations_have_no_upper_bound_when_still_stalled(halt, rolling) -> None:
    values = per_replication(halt.summary, halt.nodes, halt.events)
    open_ = values["stall_open_at_end"] == 1.0
    for name in ("stall_longest_s", "stall_total_s"):
        row = measure_table(values).set_index("measure").loc[name]
        x = values[name].to_numpy()
        assert row["value"] == pytest.approx(x.mean(), rel=REL)
        assert row["ci_high"] == math.inf and row["censored"] == int(open_.sum())
        assert row["follow_up"] == pytest.approx(values.loc[open_, name].max(), rel=REL)
        assert "still stalled at the end (lower bounds)" in qualifier(row)
        half = student_t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
        assert row["ci_low"] == pytest.approx(max(0.0, x.mean() - half), rel=1e-3)
    # without an open stall: the plain t interval (t975 table, 1e-3), low clipped at 0
    values = per_replication(rolling.summary, rolling.nodes, rolling.events)
    assert (values["stall_open_at_end"] == 0.0).all()
    row = measure_table(values).set_index("measure").loc["stall_longest_s"]
    x = values["stall_longest_s"].to_numpy()
    half = student_t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    assert row["censored"] == 0
    assert row["ci_high"] == pytest.approx(x.mean() + half, rel=1e-3, abs=1e-9)
    assert row["ci_low"] == pytest.approx(max(0.0, x.mean() - half), rel=1e-3, abs=1e-9)


# --------------------------------------------------------------------------- intervals


def _wilson(p: float, n: float) -> tuple[float, float]:
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return (0.0 if p <= 0 else centre - half), (1.0 if p >= 1 else centre + half)


def _expected_stake_interval(x: np.ndarray, n_eff: np.ndarray, f: np.ndarray) -> tuple:
    mean = x.mean()
    half = student_t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    trials = n_eff.sum()
    low, high = _wilson(float(np.sum(n_eff * x / f) / trials), trials)
    scale = np.sum(n_eff * f) / trials
    return mean, max(0.0, min(mean - half, low * scale)), min(1.0, max(mean + half,
                                                                        high * scale))


def test_stake_interval_is_t_widened_to_wilson_with_the_kish_number(result) -> None:
    values = per_replication(result.summary, result.nodes, result.events)
    table = measure_table(values).set_index("measure")
    stakes = np.array(STAKES[:IN_FLEET])
    n_eff = np.full(len(values), stakes.sum() ** 2 / np.sum(stakes**2))
    f = np.full(len(values), stakes.sum() / TOTAL)
    for name in ("peak_down_stake", "failed_startup_stake", "stuck_old_stake",
                 "malicious_installed_stake"):
        assert BY_NAME[name].method == "stake"
        mean, low, high = _expected_stake_interval(values[name].to_numpy(), n_eff, f)
        row = table.loc[name]
        # t975 from a table (1e-3 relative), the rest exact
        assert row["value"] == pytest.approx(mean, rel=REL, abs=1e-12)
        assert row["ci_low"] == pytest.approx(low, rel=1e-3, abs=1e-9), name
        assert row["ci_high"] == pytest.approx(high, rel=1e-3, abs=1e-9), name
    # all-zero shares: the Wilson bound keeps the interval open, far wider than node trials
    zero = table.loc["malicious_installed_stake"]
    assert zero["value"] == 0.0 and zero["ci_high"] > 0.0
    node_high = fraction_interval(np.zeros(len(values)), np.full(len(values), NODES))[2]
    assert zero["ci_high"] > 1.2 * node_high


def _datasets(reps: int, validators: int, draw_p, in_fleet: float, seed: int):
    """Per data set: each replication draws Pareto stakes (heavy-tailed, like the engine's
    default) and flags each validator with probability p; the share is of the chain's
    total, the fleet holding ``in_fleet`` of it."""
    rng = np.random.default_rng(seed)
    for _ in range(DATASETS):
        x, n_eff = np.empty(reps), np.empty(reps)
        for r in range(reps):
            s = rng.pareto(1.5, validators) + 1.0
            hit = rng.random(validators) < draw_p(rng)
            x[r] = in_fleet * s[hit].sum() / s.sum()
            n_eff[r] = s.sum() ** 2 / np.sum(s * s)
        yield x, n_eff


@pytest.mark.parametrize(
    ("reps", "draw_p", "truth", "in_fleet"),
    [(20, lambda g: g.beta(2.0, 18.0), 0.1, 1.0),  # replication-to-replication variation
     (20, lambda g: g.beta(2.0, 18.0), 0.06, 0.6),  # 40% of the power outside the fleet
     (10, lambda g: 0.01, 0.01, 1.0)],  # rare: most data sets are all zeros
)
def test_stake_interval_covers_the_mean_share(reps, draw_p, truth, in_fleet) -> None:
    covered = covered_t = covered_nodes = 0
    for x, n_eff in _datasets(reps, 50, draw_p, in_fleet, seed=reps + int(100 * truth)):
        _, low, high, _ = stake_interval(x, n_eff, np.full(reps, in_fleet))
        covered += low <= truth <= high
        _, low, high, _ = stake_interval(x)  # the bare t interval
        covered_t += low <= truth <= high
        _, low, high, _ = fraction_interval(x, np.full(reps, 1000.0))  # 1000 nodes pooled
        covered_nodes += low <= truth <= high
    assert covered / DATASETS >= COVERAGE_FLOOR, covered / DATASETS
    if truth == 0.01:
        # why the Kish widening: t alone, or node-trials pooled, miss the rare share
        assert covered_t / DATASETS < COVERAGE_FLOOR
        assert covered_nodes / DATASETS < COVERAGE_FLOOR
    else:
        assert covered / DATASETS <= 0.99  # not absurdly wide when the t interval works


# --------------------------------------------------------------------------- old tables


def test_tables_without_stake_give_nan_not_a_crash(rolling) -> None:
    node_count = {"peak_down_fraction", "down_node_seconds"}  # recorded before stake
    consensus = [m.name for m in MEASURES if m.section == "consensus"]
    summary = rolling.summary.drop(columns=[
        c for c in rolling.summary.columns
        if (c in consensus and c not in node_count) or c.startswith("stall_")
        or c in ("adopted_stake", "upgrade_height_s")])
    nodes = rolling.nodes.drop(columns=["stake", "stake_rank"])
    values = per_replication(summary, nodes, rolling.events)
    for name in consensus:
        if name not in node_count:
            assert values[name].isna().all(), name
    assert values["peak_down_fraction"].notna().all()
    table = measure_table(values)
    assert (table.set_index("measure").loc["consensus_stalled", "n"]) == 0
    text = format_blast_radius(blast_radius(summary, nodes, rolling.events),
                               rolling.manifest, {}, len(summary))
    assert "consensus_stalled" in text and "Only" not in text
    # the summary knows the fleet's share but the nodes table has no stake: NaN too
    values = per_replication(rolling.summary, nodes, rolling.events)
    assert values[list(STAKE_FROM_NODES)].isna().all().all()
    assert values["peak_down_stake"].notna().all()


def test_a_fleet_without_validators_holds_no_stake() -> None:
    result = run("baseline", replications=2, seed=3, executor="serial",
                 set=["fleet.nodes=20", "fleet.validators=0"])
    values = per_replication(result.summary, result.nodes, result.events)
    assert (values["stake_in_fleet"] == 0).all()
    assert (values[list(STAKE_FROM_NODES[:4])] == 0).all().all()
    assert (values["consensus_stalled"] == 0).all()
    row = measure_table(values).set_index("measure").loc["failed_startup_stake"]
    assert (row["value"], row["ci_low"], row["ci_high"]) == (0.0, 0.0, 0.0)  # exactly 0


# --------------------------------------------------------------------------- outputs


def test_the_headline_is_in_stake_and_warns_about_validators_outside(halt) -> None:
    assert {"consensus_stalled", "stall_longest_s", "peak_down_stake"} <= set(HEADLINE)
    assert "peak_down_fraction" not in HEADLINE
    for name in ("consensus_stalled", "stall_longest_s", "stall_total_s", "stall_recover_s",
                 "peak_down_stake"):  # a longer or likelier stall fails CI
        assert BY_NAME[name].worse == "higher" and BY_NAME[name].section == "consensus"
    # the same event as a stall at the default threshold: shown, not checked twice
    assert BY_NAME["down_over_third"].worse == "" and BY_NAME["down_over_third"].section == \
        "consensus"
    table = blast_radius(halt.summary, halt.nodes, halt.events)
    text = format_blast_radius(table, halt.manifest, {}, len(halt.summary))
    head = text.split("-" * 20)[0]
    for name in ("consensus_stalled", "stall_longest_s", "peak_down_stake"):
        assert f"\n{name} " in head
    share = 100 * sum(STAKES[:IN_FLEET]) / TOTAL
    warning = (f"Only {IN_FLEET} validators holding {share:.1f}% of the voting power run in "
               f"the fleet; the others ({100 - share:.1f}%) count as always up")
    assert warning in text
    assert any(w.startswith(warning) for w in conditional_warnings(table))
    assert "stall_longest_s is a lower bound" in text


def test_releasesim_run_prints_the_stall_in_stake(tmp_path: Path, capsys) -> None:
    code = main(["run", "baseline", "-n", "3", "-s", "5", "-e", "serial", "-q",
                 "--set", "fleet.nodes=30", "--set", 'consensus.mode="halt_at_height"',
                 "--out", str(tmp_path / "run"), "--json"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    rows = {m["measure"]: m for m in doc["measures"]}
    assert {"consensus_stalled", "stall_longest_s", "peak_down_stake"} <= set(doc["headline"])
    summary = pd.read_parquet(tmp_path / "run" / "summary.parquet")
    assert rows["consensus_stalled"]["value"] == pytest.approx(
        summary["consensus_stalled"].mean())
    assert rows["peak_down_stake"]["value"] == pytest.approx(summary["peak_down_stake"].mean())
