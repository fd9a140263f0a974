"""The report's consensus section in stake: exact down-over-time curves from the recorded
intervals (checked by brute force), their peaks against the engine's ``peak_down_stake``,
the validators down during the longest stall (checked by hand and by brute force), the
fallback for run directories without ``downtime.parquet``, and the rendered section."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from releasesim.reports.consensus import validators_in_longest_stall
from releasesim.reports.formatting import format_value
from releasesim.reports.intervals import wilson
from releasesim.reports.replications import activation_times
from releasesim.reports.report import RunTables, build_report, load_run, write_report
from releasesim.reports.series import (
    RECONSTRUCTED,
    RECORDED,
    down_intervals_of,
    down_over_time,
    peak_down_stake,
    step_at,
    step_function,
)
from releasesim.sim.api import run
from releasesim.sim.consensus import MAX_VOTING_POWER

NODES = 60
CHAIN_VALIDATORS = 50  # governance.validators of the baseline scenario
HALT = ["consensus.mode=\"halt_at_height\"", "fleet.validators=30",
        "consensus.operator_response={dist=\"lognormal\", median=1800.0, sigma=2.5}"]


@pytest.fixture(scope="module")
def halt_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Halt at the upgrade height, 30 of the 50 validators in a 60-node fleet, a heavy-tailed
    operator response (some stalls outlast the run: censored)."""
    out = tmp_path_factory.mktemp("halt") / "run"
    run("baseline", replications=10, seed=6, executor="serial",
        set=[f"fleet.nodes={NODES}", *HALT], out_dir=out)
    return out


@pytest.fixture(scope="module")
def halt(halt_dir: Path) -> RunTables:
    return load_run(halt_dir)


@pytest.fixture(scope="module")
def rolling() -> RunTables:
    """Rolling restarts, every validator in the fleet, Pareto stakes: partial peaks, and a
    whale validator can stall consensus on its own."""
    r = run("baseline", replications=8, seed=5, executor="serial", set=[f"fleet.nodes={NODES}"])
    return RunTables(r.summary, r.nodes, r.events, r.manifest, r.downtime)


# --------------------------------------------------------------------------- helpers


def _total_stake(tables: RunTables, rep: int) -> float:
    """The chain's total stake: the fleet's validators hold ``stake_in_fleet`` of it."""
    stake = tables.nodes.loc[tables.nodes["replication"] == rep, "stake"].sum()
    fraction = float(tables.summary.set_index("replication").loc[rep, "stake_in_fleet"])
    return float(stake) / fraction


def _brute_rows(tables: RunTables, rep: int, t_act: float, stake: bool) -> tuple[list, float]:
    """``(start, end, weight)`` of each downtime row since activation (a still-down row
    never ends; weight: the node's stake, or 1) and the total: the chain's stake, or the
    fleet size."""
    nodes = tables.nodes[tables.nodes["replication"] == rep].set_index("node")
    rows = []
    for row in tables.downtime[tables.downtime["replication"] == rep].itertuples():
        end = math.inf if row.still_down else row.end_s - t_act
        weight = float(nodes.loc[row.node, "stake"]) if stake else 1.0
        rows.append((row.start_s - t_act, end, weight))
    return rows, (_total_stake(tables, rep) if stake else float(len(nodes)))


def _brute_down(rows: tuple[list, float], x: float) -> float:
    """Share down at ``x`` seconds since activation: the rows open at ``x``."""
    return sum(w for start, end, w in rows[0] if start <= x < end) / rows[1]


# --------------------------------------------------------------------------- curves


@pytest.mark.parametrize("stake", [False, True], ids=["nodes", "stake"])
def test_curves_match_a_brute_force_evaluation(halt: RunTables, stake: bool) -> None:
    down = down_over_time(halt.summary, halt.nodes, halt.events, halt.downtime)
    assert down.source == RECORDED and down.approximate == 0
    band = down.stake if stake else down.nodes
    assert band is not None and band.n == int(halt.summary["activated"].sum()) > 0
    act = activation_times(halt.summary, halt.events)
    weights = halt.nodes.set_index(["replication", "node"])["stake"]
    t, rng = band.t_s, np.random.default_rng(2)
    for row, rep in enumerate(down.replications):
        t_act = float(act[rep])
        # node counts are integers divided once: exact; stake shares are float sums in
        # another order: equal to 1e-12
        tol = 1e-12 if stake else 0.0
        # (1) the exact step function at random instants and at every breakpoint
        iv = halt.downtime[halt.downtime["replication"] == rep]
        ends = np.where(iv["still_down"], np.inf, iv["end_s"] - t_act)
        w = (weights.loc[rep].reindex(iv["node"]).to_numpy() / _total_stake(halt, rep)
             if stake else np.ones(len(iv)))
        times, values = step_function(iv["start_s"].to_numpy() - t_act, ends, w)
        probes = np.concatenate([rng.uniform(-100.0, t[-1], 40), times])
        got = step_at(times, values, probes) / (1.0 if stake else NODES)
        rows = _brute_rows(halt, rep, t_act, stake)
        want = [_brute_down(rows, x) for x in probes]
        np.testing.assert_allclose(got, want, rtol=0, atol=tol + 1e-15)
        # (2) the band's curve: the largest value within each time step [t_k, t_k+1),
        # i.e. the brute force at the step's start and at every breakpoint inside it
        edges = np.append(t, 2 * t[-1] - t[-2])
        for k in rng.choice(len(t), 25, replace=False):
            inside = times[(times > edges[k]) & (times < edges[k + 1])]
            want_k = max(_brute_down(rows, x) for x in [edges[k], *inside])
            assert band.curves[row, k] == pytest.approx(want_k, abs=tol + 1e-15)


@pytest.mark.parametrize("which", ["halt", "rolling"])
def test_stake_peak_equals_the_engine_summary(which: str, request: pytest.FixtureRequest) -> None:
    """The report's peak share of voting power down equals the engine's ``peak_down_stake``.

    Not bit for bit: the engine turns each stake into integer voting power,
    ``rint(stake / max * 2**40)``, so each validator's power is off by at most half a unit
    in the numerator and in the total (at least 2**40 units): the shares differ by at most
    ``validators / 2**40`` (about 5e-11 for 50 validators), plus float summation (1e-15).
    """
    tables: RunTables = request.getfixturevalue(which)
    summary = tables.summary
    tol = CHAIN_VALIDATORS / MAX_VOTING_POWER + 1e-14
    peaks = peak_down_stake(summary, tables.nodes, tables.downtime)
    np.testing.assert_allclose(peaks.to_numpy(), summary["peak_down_stake"], rtol=0, atol=tol)
    partial = (summary["peak_down_stake"] > 0) & (summary["peak_down_stake"] < 0.999)
    assert partial.any()  # not only the trivial 0 or everything down
    # every down interval starts after activation, so each curve's maximum is the peak
    down = down_over_time(summary, tables.nodes, tables.events, tables.downtime)
    engine = summary.set_index("replication")["peak_down_stake"]
    for row, rep in enumerate(down.replications):
        assert down.stake.curves[row].max() == pytest.approx(engine[rep], abs=tol)
        fleet = summary.set_index("replication").loc[rep, "peak_down_fraction"]
        assert down.nodes.curves[row].max() == pytest.approx(fleet, abs=1e-12)


def test_fallback_reconstructs_from_the_nodes_table(rolling: RunTables) -> None:
    """Without a downtime table the curves come from ``[installed_s, installed_s + down_s)``;
    in a rolling update each node went down once, so they equal the recorded ones."""
    s, n, e = rolling.summary, rolling.nodes, rolling.events
    recorded = down_over_time(s, n, e, rolling.downtime)
    fallback = down_over_time(s, n, e, None)
    assert (recorded.source, fallback.source) == (RECORDED, RECONSTRUCTED)
    assert fallback.approximate == 0
    assert rolling.downtime.groupby(["replication", "node"]).size().max() == 1
    np.testing.assert_allclose(fallback.nodes.curves, recorded.nodes.curves, atol=1e-12)
    report = build_report(RunTables(s, n, e, rolling.manifest, None))
    lead = " ".join(report.lead["consensus"])
    assert "reconstructed" in lead and "no downtime.parquet" in lead
    assert report.extras["consensus"]["down_intervals"] == RECONSTRUCTED


def test_old_run_directory_without_stake(halt_dir: Path, tmp_path: Path) -> None:
    """A run directory from before stake: no downtime, no stake columns, no consensus
    columns. The report still builds, on node counts, and says so."""
    old = tmp_path / "old"
    shutil.copytree(halt_dir, old)
    (old / "downtime.parquet").unlink()
    nodes = pd.read_parquet(old / "nodes.parquet").drop(columns=["stake", "stake_rank"])
    nodes.to_parquet(old / "nodes.parquet")
    summary = pd.read_parquet(old / "summary.parquet")
    keep = [c for c in summary.columns if not c.startswith(("stall", "consensus_"))
            and "stake" not in c]
    summary[keep].to_parquet(old / "summary.parquet")
    tables = load_run(old)
    assert tables.downtime is None
    down = down_over_time(tables.summary, tables.nodes, tables.events, tables.downtime)
    assert down.stake is None and down.source == RECONSTRUCTED
    report = build_report(tables)
    assert "stalls" not in report.figures and "consensus" in report.figures
    assert "not recorded" in " ".join(report.lead["consensus"])


# --------------------------------------------------------------------------- stall ranks


def test_rank_table_by_hand() -> None:
    """Two stalled replications and one calm one, top 2 ranks (hand-computed answers)."""
    summary = pd.DataFrame({
        "replication": [0, 1, 2], "consensus_stalled": [True, True, False],
        "stall_longest_start_s": [100.0, 50.0, math.nan],
        "stall_longest_s": [50.0, 10.0, 0.0], "stake_in_fleet": [1.0, 0.5, 1.0],
    })
    nodes = pd.DataFrame({
        "replication": [0, 0, 0, 1, 1, 2], "node": [0, 1, 2, 0, 1, 0],
        "stake": [3.0, 1.0, 0.0, 2.0, 0.0, 1.0], "stake_rank": [0, 1, -1, 1, -1, 0],
    })
    downtime = pd.DataFrame({
        "replication": [0, 0, 0, 0, 1, 2], "node": [0, 0, 1, 2, 0, 0],
        "start_s": [90.0, 150.0, 120.0, 100.0, 55.0, 0.0],
        "end_s": [100.0, 160.0, 900.0, 150.0, 60.0, 10.0],
        "still_down": [False, False, True, False, False, False],
    })
    intervals, _, _ = down_intervals_of(nodes, downtime)
    table = validators_in_longest_stall(summary, nodes, intervals, top=2).set_index("label")
    # rank 0: in the fleet in replication 0 only (in replication 1 it runs outside the
    # fleet: always up); its [90, 100) ends as the stall [100, 150) starts and its
    # [150, 160) starts as it ends: never down during it (half-open intervals).
    # rank 1: replication 0 (1/4 of the power, still down), replication 1 (2 of a total
    # of 2 / 0.5 = 4: 1/2, back exactly at the stall's end 60: down until it ended).
    # The full node (rank -1) down during the stall counts nowhere.
    expected = {
        "0": (1, 0.75, 0, 0, 0.0),
        "1": (2, (0.25 + 0.5) / 2, 2, 2, (0.25 + 0.5) / 2),
        "others (2+)": (0, math.nan, 0, 0, 0.0),
    }
    for label, (in_fleet, share, during, at_end, stake_down) in expected.items():
        row = table.loc[label]
        assert (row["stalled"], row["in_fleet"], row["down_during"], row["down_at_end"]) == (
            2, in_fleet, during, at_end), label
        assert row["stake_share"] == pytest.approx(share, nan_ok=True)
        assert row["stake_down"] == pytest.approx(stake_down)
        p, low, high = wilson(during, 2)
        assert (row["p_during"], row["low"], row["high"]) == (p, low, high)


def test_rank_table_matches_a_brute_force_count(halt: RunTables) -> None:
    summary, nodes, downtime = halt.summary, halt.nodes, halt.downtime
    intervals, _, _ = down_intervals_of(nodes, downtime)
    table = validators_in_longest_stall(summary, nodes, intervals).set_index("rank")
    stalled = summary[summary["consensus_stalled"].astype(bool)]
    assert len(stalled) >= 3 and stalled["stall_open_at_end"].astype(bool).any()
    during, at_end, in_fleet = np.zeros(10), np.zeros(10), np.zeros(10)
    for rep in stalled.itertuples():
        a = rep.stall_longest_start_s
        b = a + rep.stall_longest_s
        for r in range(10):
            who = nodes[(nodes["replication"] == rep.replication) & (nodes["stake_rank"] == r)]
            if who.empty:
                continue  # outside the fleet: always up
            in_fleet[r] += 1
            rows = downtime[(downtime["replication"] == rep.replication)
                            & (downtime["node"] == int(who["node"].iloc[0]))]
            ends = [math.inf if x.still_down else x.end_s for x in rows.itertuples()]
            starts = rows["start_s"].tolist()
            during[r] += any(s < b and e > a for s, e in zip(starts, ends, strict=True))
            at_end[r] += any(s < b <= e for s, e in zip(starts, ends, strict=True))
    for r in range(10):
        row = table.loc[r]
        assert (row["in_fleet"], row["down_during"], row["down_at_end"]) == (
            in_fleet[r], during[r], at_end[r]), r
    assert table.loc[:9, "in_fleet"].sum() < 10 * len(stalled)  # some ranks outside the fleet
    assert 0 < table.loc[:9, "down_at_end"].sum() < table.loc[:9, "down_during"].sum()


# --------------------------------------------------------------------------- the section


def test_report_has_the_consensus_section_in_stake(halt_dir: Path) -> None:
    paths = {p.name for p in write_report(halt_dir)}
    for name in ("fig_consensus.png", "fig_stalls.png", "fig_stall_validators.png"):
        assert name in paths
        assert (halt_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (halt_dir / "report.md").read_text(encoding="utf-8")
    section = md[md.index("## Consensus impact"):md.index("## Governance")]
    for name in ("fig_consensus.png", "fig_stalls.png", "fig_stall_validators.png"):
        assert f"]({name})" in section
    assert "Down intervals: recorded" in section
    assert re.search(r"Consensus stalled in \d+ of 10 replications: P\(stall\)", section)
    assert "30 of 50 validators run in the fleet" in section
    assert "### Which validators were down during the longest stall" in section
    assert "| others (10+) |" in section
    html = (halt_dir / "report.html").read_text(encoding="utf-8")
    body = html[html.index('id="consensus"'):html.index('id="governance"')]
    assert body.count("data:image/png;base64,") == 3
    assert "Which validators were down during the longest stall" in body
    for text in (md, html):
        assert "stake: n/a" not in text and "nodes carry no stake in the engine" not in text
    doc = json.loads((halt_dir / "report.json").read_text(encoding="utf-8"))
    block = doc["consensus"]
    stalled = int(pd.read_parquet(halt_dir / "summary.parquet")["consensus_stalled"].sum())
    assert block["stalled"] == stalled and block["down_intervals"] == RECORDED
    assert len(block["validators_in_longest_stall"]) == 11


def test_no_stall_says_so_with_the_upper_bound(tmp_path: Path) -> None:
    """Equal stakes, rolling restarts of at most a few nodes at once: a stall would need
    17 of the 50 validators down together, so no replication stalls."""
    out = tmp_path / "calm"
    result = run("baseline", replications=6, seed=5, executor="serial", out_dir=out,
                 set=[f"fleet.nodes={NODES}", "governance.stake={dist=\"fixed\", value=1.0}"])
    assert not result.summary["consensus_stalled"].any()
    assert result.summary["peak_down_fraction"].max() * NODES < 17
    paths = {p.name for p in write_report(out)}
    assert "fig_consensus.png" in paths
    assert "fig_stalls.png" not in paths and "fig_stall_validators.png" not in paths
    md = (out / "report.md").read_text(encoding="utf-8")
    bound = format_value(wilson(0, 6)[2], "fraction")
    assert f"No stall in 6 replications: P(consensus stalled) <= {bound}" in md
    assert "Which validators were down" not in md
    assert "Every validator of the chain runs in the fleet" in md
