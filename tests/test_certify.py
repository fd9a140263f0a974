"""The certified forgery bound (issue 10, items 2-4): math, design, simulation, CLI, sweep.

- Clopper-Pearson bounds against ``scipy.stats.beta`` (an independent implementation).
- The combination of exact, simulated and bounded strata, checked against a bound
  recomputed here with scipy.
- The adaptive design: first batches, doubling on the grid, the stopping reasons, and its
  error rate under optional stopping on synthetic Bernoulli strata.
- Simulated configurations with an exact answer: independent keys, no rotation, equal
  stakes, everyone votes at once. With yes_probability = 1, P(approved | J) = 1 for
  J >= threshold, so the point estimate is P(J >= threshold), computed here by brute-force
  enumeration of the 2^n compromised sets. With yes_probability = y, five validators and
  quorum 1/2, P(approved | J) = P(Binomial(5, y) >= 3) for J >= threshold (the tally needs
  yes >= quorum and yes > no), so the truth is P(J >= threshold) * that.
- Near P = 1e-2 the certified estimate agrees with plain Monte Carlo.
- ``releasesim certify`` as a user runs it, and ``sweep --max-forgery-prob`` on the bound.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import math
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import beta

from releasesim.cli.main import main
from releasesim.reports import certify as rc
from releasesim.reports.intervals import wilson
from releasesim.reports.sweep import CERTIFIED, recommend
from releasesim.sim.api import resolve_scenario
from releasesim.sim.certify_runner import (
    ExtendBy,
    certify_setting,
    probabilistic,
    run_stratum,
)
from releasesim.sim.runner import run_scenario

ROOT = Path(__file__).resolve().parents[1]
VOTERS = 5
EXACT_VOTES = ["fleet.nodes=5", f"governance.validators={VOTERS}", "governance.stake=1",
               "governance.participation=1", "governance.vote_delay=0",
               "governance.vote_quorum=0.5", "signers.rotation_interval_s=0"]
"""Equal stakes, everyone votes at once: P(approved | J >= t) = P(Bin(5, y) >= 3)."""


def scipy_upper(k: int, n: int, alpha: float) -> float:
    return 1.0 if k >= n else float(beta.ppf(1 - alpha, k + 1, n - k))


def scipy_lower(k: int, n: int, alpha: float) -> float:
    return 0.0 if k == 0 else float(beta.ppf(alpha, k, n - k + 1))


def enumerate_weights(probs: list[float]) -> np.ndarray:
    """P(J = j) by brute force over the 2^n compromised sets (independent of sim.compromise)."""
    out = np.zeros(len(probs) + 1)
    for fallen in itertools.product((0, 1), repeat=len(probs)):
        out[sum(fallen)] += math.prod(p if f else 1 - p for f, p in zip(fallen, probs,
                                                                          strict=True))
    return out


def vote_pass(y: float) -> float:
    """P(the tally passes) with 5 equal votes, each yes with probability y, quorum 1/2."""
    return sum(math.comb(VOTERS, i) * y**i * (1 - y) ** (VOTERS - i) for i in range(3, 6))


def scenario(n: int, t: int, probs: list[float], y: float, extra: tuple[str, ...] = ()):
    keys = [f"signers.n={n}", f"signers.threshold={t}",
            f"signers.compromise_probs=[{', '.join(repr(p) for p in probs)}]",
            f"governance.yes_probability={y}"]
    return resolve_scenario("baseline", [*EXACT_VOTES, *keys, *extra])


# --------------------------------------------------------------------------- the math

CP_TABLE = [(k, n, a) for n in (1, 2, 7, 30, 100, 1000, 5000)
            for k in sorted({0, 1, 2, n // 3, n // 2, n - 1, n}) if 0 <= k <= n
            for a in (0.5, 0.05, 0.05 / 7, 1e-3, 1e-6)]


@pytest.mark.parametrize(("k", "n", "alpha"), CP_TABLE)
def test_clopper_pearson_matches_scipy_beta(k: int, n: int, alpha: float) -> None:
    # tolerance: 1e-9 relative (bisection to machine precision; scipy's beta.ppf is ~1e-12)
    assert rc.clopper_pearson_upper(k, n, alpha) == pytest.approx(scipy_upper(k, n, alpha),
                                                                   rel=1e-9, abs=1e-300)
    assert rc.clopper_pearson_lower(k, n, alpha) == pytest.approx(scipy_lower(k, n, alpha),
                                                                   rel=1e-9, abs=1e-300)


def test_clopper_pearson_edges_and_bad_input() -> None:
    assert rc.clopper_pearson_upper(0, 3_000_000, 0.05) == pytest.approx(
        -math.expm1(math.log(0.05) / 3_000_000), rel=1e-12)  # the "3 / n" rule: ~1.0e-6
    assert 0.99e-6 < rc.clopper_pearson_upper(0, 3_000_000, 0.05) < 1.0e-6
    assert rc.clopper_pearson_upper(5, 5, 0.05) == 1.0
    assert rc.clopper_pearson_lower(0, 5, 0.05) == 0.0
    for bad in ((3, 2, 0.05), (-1, 2, 0.05), (1, 2, 0.0), (1, 2, 1.0)):
        with pytest.raises(ValueError):
            rc.clopper_pearson_upper(*bad)


def test_the_bound_combines_exact_simulated_and_bounded_strata() -> None:
    w = [0.5, 0.3, 0.15, 0.04, 0.01, 0.0]
    k, n = [0, 0, 0, 3, 0, 0], [0, 0, 0, 10, 0, 0]
    bound = rc.certified_bound(w, k, n, impossible_below=3, confidence=0.9, looks=2)
    alpha = 0.1 / (1 * 2)  # one simulated stratum, two possible sizes
    assert bound.point == pytest.approx(0.04 * 0.3, rel=1e-12)
    assert bound.upper == pytest.approx(0.04 * scipy_upper(3, 10, alpha) + 0.01, rel=1e-9)
    assert bound.lower == pytest.approx(0.04 * scipy_lower(3, 10, alpha), rel=1e-9)
    assert [s.label for s in bound.strata] == [rc.EXACT] * 3 + [rc.SIMULATED, rc.BOUNDED,
                                                                 rc.ZERO_WEIGHT]
    assert bound.exact_weight == pytest.approx(0.95) and bound.bounded_weight == 0.01
    assert rc.method_text(bound) == ("90%, exact 0 below 3 keys (quorum rule), simulated at 3 "
                                     "keys with 10 replications, bounded by 1 at 4 keys "
                                     "(weight 0.01)")
    # a Bonferroni split fixed in advance over 3 strata makes it wider
    wider = rc.certified_bound(w, k, n, 3, 0.9, looks=2, bonferroni=3)
    assert wider.upper == pytest.approx(0.04 * scipy_upper(3, 10, 0.1 / 6) + 0.01, rel=1e-9)


def test_a_forgery_below_the_lowest_threshold_contradicts_the_rule() -> None:
    with pytest.raises(ValueError, match="contradicts the quorum rule"):
        rc.certified_bound([0.5, 0.5], [1, 0], [4, 0], impossible_below=1)
    with pytest.raises(ValueError, match="sum to 1"):
        rc.certified_bound([0.5, 0.4], [0, 0], [0, 0], impossible_below=1)


def test_the_plan_drops_only_a_negligible_tail_and_the_sizes_stay_on_the_grid() -> None:
    w = [0.9, 0.0999, 0.0000999, 1e-7, 0.0]
    assert rc.plan_strata(w, 2, target=None) == [2, 3]
    assert rc.plan_strata(w, 2, target=1e-4) == [2]  # 1e-7 <= 1% of 1e-4
    assert rc.plan_strata(w, 2, target=1e-6) == [2, 3]
    assert rc.grid_looks(32, 4096) == 8 and rc.grid_looks(32, 31) == 1
    common = {"strata": [2, 3], "first": 8, "max_per_stratum": 64, "alpha_per_stratum": 0.01}
    first = rc.allocate(w, [0] * 5, [0] * 5, 100, **common)
    assert list(first) == [0, 0, 8, 8, 0]
    # doubling: the heavy stratum with forgeries gains most; every size is 8 * 2**i
    extra = rc.allocate(w, [0, 0, 4, 0, 0], [0, 0, 8, 8, 0], 1000, **common)
    sizes = np.array([0, 0, 8, 8, 0]) + extra
    assert sizes[2] == 64 and all(s in (0, 8, 16, 32, 64) for s in sizes)
    # only forgeries seen: no upper bound can drop, so the lower bound is narrowed
    assert list(rc.allocate([0.5, 0.5], [0, 8], [0, 8], 100, strata=[1], first=8,
                            max_per_stratum=64, alpha_per_stratum=0.01)) == [0, 56]


def test_the_design_stops_when_met_missed_or_out_of_budget() -> None:
    w = [0.99, 0.009, 0.001]
    design = rc.Design(target=2e-3, confidence=0.95, first=16, max_replications=256)
    extra, why = design.next_batch(w, 1, [0, 0, 0], [0, 0, 0])
    assert why is None and list(extra) == [0, 16, 16]
    assert design.next_batch(w, 1, [0, 0, 0], [0, 128, 128])[1] == "target met"
    assert design.next_batch(w, 1, [0, 128, 128], [0, 128, 128])[1] == "target missed"
    tight = rc.Design(target=1e-9, first=16, max_replications=32)
    assert tight.next_batch(w, 1, [0, 0, 0], [0, 16, 16])[1] == "budget exhausted"
    assert design.next_batch([1.0, 0.0, 0.0], 1, [0] * 3, [0] * 3)[1] == "nothing to simulate"


def _false_certificates(naive: bool, runs: int = 400) -> float:
    """Share of runs that declare "target met" for a truth above the target."""
    w, p = np.array([0.5, 0.5]), 0.2
    truth = 0.5 * p
    design = rc.Design(target=truth * 0.999, confidence=0.95, first=16, max_replications=4096)
    wrong = 0
    for rep in range(runs):
        draws = np.random.default_rng(rep).random(4096) < p
        k, n = np.zeros(2, dtype=int), np.zeros(2, dtype=int)
        while True:
            if naive and n[1] and rc.certified_bound(w, k, n, 1).upper <= design.target:
                why = "target met"  # an uncorrected look after every batch
                break
            extra, why = design.next_batch(w, 1, k, n)
            if why is not None:
                break
            k[1] += int(draws[n[1]:n[1] + extra[1]].sum())
            n[1] += int(extra[1])
        wrong += why == "target met"
    return wrong / runs


def test_optional_stopping_keeps_false_certificates_below_alpha() -> None:
    """The design looks after every batch (9 possible sizes): with the union bound over
    those sizes it declares a target met that is in fact exceeded (truth 0.1% above it) in
    <= 5% of runs (3.5% observed in these 400 seeded runs; the test allows 8%, the 99.9%
    binomial bound of 5%); the same looks without the correction do it in ~22%."""
    assert _false_certificates(naive=False) <= 0.08
    assert _false_certificates(naive=True) > 0.12


# --------------------------------------------------------------------------- simulation


EXACT_CONFIGS = [  # (n, threshold, per-key compromise probabilities)
    (3, 2, [0.2, 0.2, 0.2]), (3, 3, [0.5, 0.3, 0.7]), (4, 3, [0.1, 0.2, 0.3, 0.4]),
    (5, 4, [0.3] * 5), (5, 5, [0.6, 0.5, 0.4, 0.3, 0.9]),
]


@pytest.mark.parametrize(("n", "t", "probs"), EXACT_CONFIGS)
def test_votes_certain_the_point_estimate_is_the_closed_form(
    n: int, t: int, probs: list[float]
) -> None:
    s = scenario(n, t, probs, 1.0)
    design = rc.Design(target=None, first=4, max_replications=4 * (n - t + 1))
    run = certify_setting(s, design.next_batch, executor="serial", seed=3)
    closed = float(enumerate_weights(probs)[t:].sum())
    np.testing.assert_allclose(run.weights, enumerate_weights(probs), rtol=1e-12, atol=1e-15)
    bound = design.bound(run.weights, run.approvals, run.trials, run.impossible_below)
    # P(approved | J) = 1 at and above the threshold: point = P(J >= t) to rounding (1e-12)
    assert bound.point == pytest.approx(closed, rel=1e-12)
    assert bound.upper == pytest.approx(closed, rel=1e-12)  # U_J = 1 when k_J = n_J
    assert run.impossible_below == t and rc.key_range(bound.keys(rc.SIMULATED)) == (
        f"{t}-{n}" if t < n else str(t))


COVERAGE_CONFIGS = [  # (n, threshold, per-key probabilities, yes_probability): 20 settings
    (3, 2, [0.2] * 3, 0.5), (3, 2, [0.1, 0.3, 0.5], 0.6), (3, 3, [0.5, 0.6, 0.7], 0.7),
    (3, 2, [0.4] * 3, 0.8), (3, 3, [0.9, 0.9, 0.9], 0.55), (4, 3, [0.2] * 4, 0.5),
    (4, 3, [0.1, 0.2, 0.3, 0.4], 0.65), (4, 4, [0.5] * 4, 0.75), (4, 2, [0.3] * 4, 0.6),
    (4, 3, [0.6, 0.1, 0.6, 0.1], 0.7), (5, 4, [0.3] * 5, 0.5), (5, 4, [0.5] * 5, 0.6),
    (5, 5, [0.6, 0.5, 0.4, 0.3, 0.9], 0.7), (5, 4, [0.2, 0.4, 0.6, 0.8, 0.5], 0.8),
    (5, 3, [0.5] * 5, 0.65), (3, 2, [0.25] * 3, 0.7), (4, 3, [0.4] * 4, 0.55),
    (5, 5, [0.8] * 5, 0.6), (3, 3, [0.3, 0.5, 0.7], 0.8), (4, 4, [0.7] * 4, 0.5),
]


def test_the_bound_covers_the_truth_in_at_least_93_percent_of_200_runs() -> None:
    """20 settings x 10 repetitions. Each stratum runs 40 replications once; repetition r
    reads replications 4r .. 4r + 3 of every stratum (disjoint random streams, the same
    replication numbers in every stratum: common random numbers, as certify runs them).
    The truth is P(J >= t) * P(Bin(5, y) >= 3); every bound is also recomputed with scipy.
    Observed: 194 of 200 covered, 113 bounds below the trivial P(J >= t)."""
    covered = informative = runs = 0
    for n, t, probs, y in COVERAGE_CONFIGS:
        s = scenario(n, t, probs, y)
        weights = enumerate_weights(probs)
        truth = float(weights[t:].sum()) * vote_pass(y)
        rows = {j: run_stratum(resolve_scenario(s, [f"adversary.keys_held={j}"]), j, first=0,
                               extra=40, seed=77, executor="serial", workers=None,
                               scheduler=None)["malicious_approved"].to_numpy(dtype=bool)
                for j in range(t, n + 1)}
        for rep in range(10):
            k = np.zeros(n + 1, dtype=int)
            trials = np.zeros(n + 1, dtype=int)
            for j, approved in rows.items():
                k[j], trials[j] = int(approved[4 * rep:4 * rep + 4].sum()), 4
            bound = rc.certified_bound(weights, k, trials, t, 0.95)
            alpha = 0.05 / (n - t + 1)
            recomputed = sum(weights[j] * scipy_upper(int(k[j]), 4, alpha)
                             for j in range(t, n + 1))
            assert bound.upper == pytest.approx(recomputed, rel=1e-8)
            covered += truth <= bound.upper
            informative += bound.upper < weights[t:].sum() * (1 - 1e-9)
            runs += 1
    assert runs == 200
    assert covered / runs >= 0.93
    assert informative >= 100  # the statistics did something: not just P(J >= t)


def test_certified_estimate_agrees_with_plain_monte_carlo_near_1e_2() -> None:
    """n = 3, threshold 2, keys stolen with p = 0.1, y = 0.7: P = 0.028 * 0.837 = 0.0234.
    Plain Monte Carlo (keys drawn by the model): 1000 replications, Wilson 95% CI."""
    s = scenario(3, 2, [0.1] * 3, 0.7)
    truth = float(enumerate_weights([0.1] * 3)[2:].sum()) * vote_pass(0.7)
    design = rc.Design(target=None, first=64, max_replications=128)
    run = certify_setting(s, design.next_batch, executor="serial", seed=5)
    bound = design.bound(run.weights, run.approvals, run.trials, run.impossible_below)
    plain = run_scenario(s, replications=1000, seed=5, executor="serial", progress=False,
                         write=False, replication_fn=ExtendBy(0)).summary
    p, low, high = wilson(float(plain["malicious_approved"].sum()), len(plain))
    assert low <= bound.point <= high
    assert bound.lower <= p <= bound.upper
    assert low <= truth <= high and bound.lower <= truth <= bound.upper
    assert 0.005 < truth < 0.05


def test_a_stratum_grows_as_the_plain_run_and_below_the_threshold_nothing_passes() -> None:
    s = scenario(4, 3, [0.3] * 4, 1.0, ("fleet.nodes=8",))
    held = resolve_scenario(s, ["adversary.keys_held=3"])
    grown = pd.concat([run_stratum(held, 3, first=0, extra=3, seed=9, executor="serial",
                                   workers=None, scheduler=None),
                       run_stratum(held, 3, first=3, extra=5, seed=9, executor="serial",
                                   workers=None, scheduler=None)], ignore_index=True)
    plain = run_scenario(held, replications=8, seed=9, executor="serial", progress=False,
                         write=False).summary
    pd.testing.assert_frame_equal(grown, plain[list(grown.columns)], check_dtype=False)
    below = run_stratum(resolve_scenario(s, ["adversary.keys_held=2"]), 2, first=0, extra=16,
                        seed=9, executor="serial", workers=None, scheduler=None)
    assert (below["keys_held"] == 2).all() and not below["malicious_approved"].any()


def test_only_a_model_with_several_possible_counts_is_probabilistic() -> None:
    assert probabilistic(resolve_scenario("certify_threshold"))
    assert not probabilistic(resolve_scenario("compromised_signers"))
    assert not probabilistic(resolve_scenario("baseline"))


# --------------------------------------------------------------------------- CLI and sweep

TINY = ["--set", "fleet.nodes=5", "--set", "signers.compromise_groups=[]",
        "--executor", "serial", "-n", "8", "--liveness-replications", "4"]


def test_certify_as_a_user_runs_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "c"
    code = main(["certify", "certify_threshold", "--target", "1e-6", "--grid",
                 "signers.threshold=3,4", *TINY, "--out", str(out), "--quiet"])
    text = capsys.readouterr().out
    assert code == 0
    assert ("signers.threshold=4, threshold 4 of 7: P(malicious approved) <= 3.4e-07 (95%, "
            "exact 0 below 4 keys (quorum rule), simulated at 4 keys with 8 replications")\
        in text
    assert "target 1e-06: met" in text and "target 1e-06: NOT met" in text
    for name in ("certify.csv", "certify.parquet", "strata.csv", "certify.json", "certify.md",
                 "frontier.png"):
        assert (out / name).stat().st_size > 0, name
    table = pd.read_parquet(out / "certify.parquet")
    assert list(table["target_met"]) == [False, True]
    weights = enumerate_weights([0.01] * 7)
    assert table["approved_upper"].iloc[1] <= weights[4:].sum() * (1 + 1e-12)
    strata = pd.read_csv(out / "strata.csv")
    assert len(strata) == 16 and set(strata["label"]) >= {"exact", "simulated", "bounded by 1"}
    capsys.readouterr()
    assert main(["certify", "certify_threshold", "--target", "1e-6", *TINY, "--json",
                 "--out", str(tmp_path / "j")]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["out_dir"] == str(tmp_path / "j")
    assert document["settings"][0]["strata"][4]["label"] == "simulated"


def test_certify_shows_a_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    argv = [sys.executable, "-m", "releasesim", "certify", "certify_threshold", "--target",
            "1e-6", *TINY, "--out", str(tmp_path / "t")]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=slave, cwd=tmp_path)
    os.close(slave)
    received: list[bytes] = []

    def drain() -> None:  # read while it runs: a full terminal buffer would block it
        with contextlib.suppress(OSError):  # EIO: the other side is closed
            while chunk := os.read(master, 65536):
                received.append(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    stdout, _ = proc.communicate(timeout=120)
    reader.join(timeout=10)
    os.close(master)
    terminal = b"".join(received).decode(errors="replace")
    assert proc.returncode == 0 and b"threshold 4 of 7" in stdout
    assert "certify threshold 4 of 7 (budget 4,096):" in terminal and "rep/s" in terminal
    assert "  4 keys: 8 replications" in terminal


@pytest.mark.parametrize(("argv", "needle"), [
    (["certify", "certify_threshold", "--target", "0"], "strictly between 0 and 1"),
    (["certify", "certify_threshold", "--target", "1e-6", "--set", "fleet.nodez=3"],
     "fleet.nodez"),
    (["certify", "certify_threshold", "--target", "1e-6", "--set", "adversary.keys_held=4"],
     "adversary.keys_held"),
    (["certify", "nope", "--target", "1e-6"], "nope"),
])
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and needle in err and "Traceback" not in err


def test_certify_help_imports_no_pandas_matplotlib_or_simpy() -> None:
    probe = ("import sys\nfrom releasesim.cli.main import main\ntry:\n    main(['certify', "
             "'--help'])\nexcept SystemExit:\n    pass\nprint(sorted(m for m in ('pandas', "
             "'matplotlib', 'simpy') if m in sys.modules), file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert "--target P" in proc.stdout and proc.stderr.strip() == "[]"


def test_recommend_names_the_certified_bound_and_uses_it() -> None:
    table = pd.DataFrame({
        "point": ["t=3", "t=4"], "replications": [10, 10],
        "malicious_approved": [0.0, 0.0], "malicious_approved_ci_low": [0.0, 0.0],
        "malicious_approved_ci_high": [0.28, 0.28], "time_to_activation_s": [1900.0, 2000.0],
    })
    wilson_rec = recommend(table, 1e-6, 7200.0)
    assert wilson_rec.label is None and "95% upper bound <= 0.0001%" in wilson_rec.sentence
    table[CERTIFIED] = [3.4e-5, 3.4e-7]
    table[CERTIFIED + "_point"] = [3.4e-5, 3.4e-7]
    table[CERTIFIED + "_method"] = ["95%, exact 0 below 3 keys", "95%, exact 0 below 4 keys"]
    rec = recommend(table, 1e-6, 7200.0)
    assert rec.label == "t=4" and rec.feasible == (False, True)
    assert "certified 95% upper bound" in rec.sentence and "<= 3.4e-07" in rec.sentence


def test_sweep_with_a_compromise_model_recommends_on_the_certified_bound(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["sweep", "certify_threshold", "--grid", "signers.threshold=3,4", "--set",
                 "fleet.nodes=5", "--set", "signers.compromise_groups=[]", "-n", "4",
                 "--executor", "serial", "--max-forgery-prob", "1e-6", "--max-replications",
                 "64", "--out", str(tmp_path / "s"), "--quiet"])
    text = capsys.readouterr().out
    assert code == 0
    assert "Recommended: signers.threshold=4" in text and "certified 95% upper bound" in text
    manifest = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert manifest["forgery_bound"].startswith("certified")
