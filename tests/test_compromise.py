"""The probabilistic compromise model (``sim.compromise``) against independent answers.

- ``key_count_distribution`` against a brute-force enumeration of every group outcome and
  every subset of keys (n <= 8, 0-3 overlapping groups), exact to 1e-12; without groups,
  against ``scipy.stats.poisson_binom`` and ``scipy.stats.binom``;
- ``sample_compromised``: 20,000 seeded draws, unconditioned and conditioned on J, each
  frequency within 4 standard errors of the exact (brute-force) probability, and an
  impossible outcome never drawn;
- the World: ``adversary.keys_held = J`` gives the adversary exactly J keys of the initial
  set (summary ``keys_held``, the attack's attestations), the other streams unchanged;
- validation: one line naming the key path for each mistake.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections import Counter
from collections.abc import Mapping
from itertools import product
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
import scipy.stats

from releasesim.cli import main as cli
from releasesim.sim.compromise import (
    key_count_distribution,
    lowest_threshold,
    possible_key_counts,
    sample_compromised,
)
from releasesim.sim.errors import ScenarioError
from releasesim.sim.knobs import CompromiseGroup, Scenario
from releasesim.sim.overrides import apply_overrides
from releasesim.sim.scenario import (
    SCENARIO_DIR,
    config_hash,
    default_scenario,
    load_scenario,
    scenario_from_dict,
)
from releasesim.sim.scenario_docs import json_schema, knob_table
from releasesim.sim.world import World, simulate_replication

Groups = list[tuple[list[int], float]]
DRAWS = 20_000
SE_LIMIT = 4.0


def _scenario(n: int, probs: list[float], groups: Groups, **adversary: Any) -> Scenario:
    signers: dict[str, Any] = {"n": n, "threshold": 1, "compromise_probs": probs,
                               "compromise_groups": [{"keys": k, "prob": p} for k, p in groups]}
    return scenario_from_dict({"signers": signers, "adversary": adversary})


def brute_force(n: int, probs: list[float], groups: Groups) -> dict[frozenset[int], float]:
    """P(S) for every compromised set S: all 2^G group outcomes times all 2^n key subsets."""
    out: dict[frozenset[int], float] = {}
    for fell in product((False, True), repeat=len(groups)):
        p_groups = math.prod(p if f else 1 - p for (_, p), f in zip(groups, fell, strict=True))
        union = {k for (keys, _), f in zip(groups, fell, strict=True) if f for k in keys}
        for taken in product((False, True), repeat=n):
            p_keys = math.prod(p if t else 1 - p for p, t in zip(probs, taken, strict=True))
            s = frozenset(union | {i for i in range(n) if taken[i]})
            out[s] = out.get(s, 0.0) + p_groups * p_keys
    return out


def count_law(sets: Mapping[frozenset[int], float], n: int) -> np.ndarray:
    law = np.zeros(n + 1)
    for s, p in sets.items():
        law[len(s)] += p
    return law


CASES: list[tuple[str, int, list[float], Groups]] = [
    ("equal, no groups", 6, [0.2] * 6, []),
    ("unequal, no groups", 7, [0.01, 0.3, 0.5, 0.05, 0.9, 0.2, 0.6], []),
    ("one group", 5, [0.1, 0.2, 0.3, 0.4, 0.05], [([0, 1], 0.25)]),
    ("two overlapping groups", 6, [0.1] * 6, [([0, 1, 2], 0.2), ([2, 3], 0.4)]),
    ("three overlapping groups", 8, [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4],
     [([0, 1], 0.1), ([1, 2, 3], 0.3), ([3, 7, 0], 0.5)]),
    ("certain and impossible keys", 5, [0.0, 1.0, 0.3, 0.0, 0.6], [([0, 3], 0.5)]),
    ("group of probability 1 and 0", 6, [0.1, 0.2, 0.0, 0.0, 0.3, 0.4],
     [([2, 3], 1.0), ([0, 5], 0.0), ([1, 4], 0.7)]),
    ("group of every key", 4, [0.01] * 4, [([0, 1, 2, 3], 0.001)]),
    ("no compromise", 3, [0.0, 0.0, 0.0], []),
]


def _random_cases(count: int, seed: int) -> list[tuple[str, int, list[float], Groups]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        n = int(rng.integers(1, 9))
        probs = [float(p) for p in rng.uniform(0, 1, n) ** 2]
        groups: Groups = []
        for _ in range(int(rng.integers(0, 4))):
            size = int(rng.integers(1, n + 1))
            keys = sorted(int(k) for k in rng.choice(n, size, replace=False))
            groups.append((keys, float(rng.uniform(0, 1))))
        out.append((f"random {i}", n, probs, groups))
    return out


# -- exact distribution ----------------------------------------------------------------


@pytest.mark.parametrize(("name", "n", "probs", "groups"), CASES + _random_cases(20, 1010),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_key_count_distribution_matches_brute_force(
    name: str, n: int, probs: list[float], groups: Groups
) -> None:
    exact = count_law(brute_force(n, probs, groups), n)
    got = key_count_distribution(_scenario(n, probs, groups))
    assert got.shape == (n + 1,)
    assert np.max(np.abs(got - exact)) <= 1e-12, (got, exact)
    possible = possible_key_counts(tuple(probs), tuple((tuple(k), p) for k, p in groups))
    assert possible == {j for j in range(n + 1) if exact[j] > 0}


def test_poisson_binomial_matches_scipy() -> None:
    probs = [float(p) for p in np.random.default_rng(3).uniform(0, 0.5, 30)]
    got = key_count_distribution(_scenario(30, probs, []))
    expected = scipy.stats.poisson_binom.pmf(np.arange(31), probs)
    assert np.max(np.abs(got - expected)) <= 1e-12
    equal = scenario_from_dict({"signers": {"n": 50, "threshold": 1, "compromise_prob": 0.07}})
    binomial = scipy.stats.binom.pmf(np.arange(51), 50, 0.07)
    assert np.max(np.abs(key_count_distribution(equal) - binomial)) <= 1e-12


def test_fixed_and_absent_models_are_point_masses() -> None:
    fixed = scenario_from_dict({"signers": {"n": 7, "compromised": 2}})
    assert key_count_distribution(fixed).tolist() == [0, 0, 1, 0, 0, 0, 0, 0]
    assert key_count_distribution(default_scenario()).tolist() == [1, 0, 0, 0, 0, 0, 0, 0]
    rng = np.random.default_rng(0)
    assert sample_compromised(rng, fixed) == (0, 1)
    assert sample_compromised(rng, default_scenario()) == ()
    assert sample_compromised(rng, default_scenario(), 0) == ()


def test_many_keys_do_not_underflow_to_impossible() -> None:
    """n = 1000 at p = 0.01: P(J = 1000) = 1e-2000 is below floats, yet J = 1000 is possible."""
    s = scenario_from_dict({"signers": {"n": 1000, "threshold": 500, "compromise_prob": 0.01},
                            "adversary": {"keys_held": 1000}})
    law = key_count_distribution(s)
    assert abs(law.sum() - 1.0) <= 1e-12
    assert abs(law[10] - scipy.stats.binom.pmf(10, 1000, 0.01)) <= 1e-12
    rng = np.random.default_rng(5)
    assert sample_compromised(rng, s, 1000) == tuple(range(1000))
    assert len(sample_compromised(rng, s, 999)) == 999


def test_lowest_threshold_takes_the_schedule_into_account() -> None:
    schedule = [{"at_s": 60, "threshold": 6}, {"at_s": 120, "threshold": 3},
                {"at_s": 180, "threshold": 7}]
    s = scenario_from_dict({"signers": {"n": 7, "threshold": 5, "threshold_schedule": schedule}})
    assert lowest_threshold(s) == 3
    assert lowest_threshold(default_scenario()) == 5
    assert lowest_threshold(load_scenario("certify_threshold")) == 4


# -- sampling --------------------------------------------------------------------------


def _within(counts: Counter, exact: Mapping[Any, float], draws: int) -> None:
    """Every outcome's frequency within SE_LIMIT standard errors; impossible ones never."""
    for outcome, p in exact.items():
        freq = counts.get(outcome, 0) / draws
        if p == 0:
            assert freq == 0, outcome
            continue
        se = math.sqrt(p * (1 - p) / draws)
        assert abs(freq - p) <= SE_LIMIT * se, (outcome, freq, p, se)
    assert set(counts) <= {o for o, p in exact.items() if p > 0}, set(counts) - set(exact)


SAMPLED: tuple[int, list[float], Groups] = (
    5, [0.05, 0.4, 0.2, 0.6, 0.1], [([0, 1], 0.2), ([1, 2, 4], 0.15)]
)


def test_unconditioned_draws_follow_the_model() -> None:
    n, probs, groups = SAMPLED
    s = _scenario(n, probs, groups)
    sets = brute_force(n, probs, groups)
    rng = np.random.default_rng(20261)
    draws = [sample_compromised(rng, s) for _ in range(DRAWS)]
    assert all(list(d) == sorted(set(d)) for d in draws)
    _within(Counter(len(d) for d in draws), dict(enumerate(count_law(sets, n))), DRAWS)
    _within(Counter(frozenset(d) for d in draws), sets, DRAWS)


@pytest.mark.parametrize("held", [1, 2, 3])
def test_conditioned_draws_follow_the_exact_conditional_law(held: int) -> None:
    n, probs, groups = SAMPLED
    s = _scenario(n, probs, groups)
    sets = brute_force(n, probs, groups)
    total = sum(p for k, p in sets.items() if len(k) == held)
    exact = {k: p / total for k, p in sets.items() if len(k) == held}
    assert max(exact.values()) > 3 * min(exact.values())  # far from uniform: the test can fail
    rng = np.random.default_rng(7000 + held)
    draws = [frozenset(sample_compromised(rng, s, held)) for _ in range(DRAWS)]
    assert all(len(d) == held for d in draws)
    _within(Counter(draws), exact, DRAWS)


def test_conditioning_with_equal_probabilities_is_uniform() -> None:
    s = _scenario(5, [0.3] * 5, [])
    rng = np.random.default_rng(11)
    draws = Counter(frozenset(sample_compromised(rng, s, 2)) for _ in range(DRAWS))
    _within(draws, {k: 0.1 for k in brute_force(5, [0.3] * 5, []) if len(k) == 2}, DRAWS)


def test_an_impossible_count_cannot_be_sampled() -> None:
    s = _scenario(3, [0.5, 0.0, 0.0], [])
    with pytest.raises(ValueError, match="exactly 2 keys"):
        sample_compromised(np.random.default_rng(0), s, 2)


# -- the World -------------------------------------------------------------------------


def _world_scenario(**adversary: Any) -> Scenario:
    data = apply_overrides(tomllib.loads((SCENARIO_DIR / "certify_threshold.toml").read_text()),
                           ["fleet.nodes=20", "horizon_s=7200"])
    data["adversary"] = {**data.get("adversary", {}), **adversary}
    return scenario_from_dict(data)


@pytest.mark.parametrize("held", [0, 2, 5])
def test_the_adversary_holds_exactly_the_conditioned_keys(held: int) -> None:
    s = _world_scenario(keys_held=held)
    world = World(s, 99, 3)
    assert len(world.signers.compromised) == held
    assert set(world.signers.compromised) <= set(range(7))
    assert world.adversary.active == (held > 0)
    result = simulate_replication(s, 99, 3)
    assert result.summary["keys_held"] == held
    attacks = [e for e in result.events if e[2] == "malicious_build"]
    assert [e[4] for e in attacks] == ([held] if held else [])  # value: keys signed
    # the compromise draw has a stream of its own: the signer keys are the same for every J
    assert world.signers.signer_set() == World(_world_scenario(), 99, 3).signers.signer_set()


def test_the_world_draws_from_the_model_and_keeps_the_fixed_count() -> None:
    everything = _world_scenario()
    everything = scenario_from_dict(apply_overrides(everything.to_dict(),
                                                    ["signers.compromise_prob=1.0"]))
    assert simulate_replication(everything, 1, 0).summary["keys_held"] == 7
    fixed = load_scenario("compromised_signers")
    world = World(fixed, 1, 0)
    assert world.signers.compromised == (0, 1)
    assert simulate_replication(default_scenario(), 1, 0).summary["keys_held"] == 0


# -- validation ------------------------------------------------------------------------


def _message(signers: dict[str, Any], adversary: dict[str, Any] | None = None) -> str:
    with pytest.raises(ScenarioError) as info:
        scenario_from_dict({"signers": {"n": 7, **signers}, "adversary": adversary or {}}, "t")
    message = str(info.value)
    assert "\n" not in message and message.startswith("t: ")
    return message


@pytest.mark.parametrize(
    ("signers", "adversary", "expected"),
    [
        ({"compromised": 2, "compromise_prob": 0.01}, None,
         "t: signers.compromised: a fixed count of compromised keys cannot be combined with "
         "the probabilistic compromise model (signers.compromise_prob is set): set "
         "signers.compromised or signers.compromise_prob, not both"),
        ({"compromised": 2}, {"keys_held": 2}, "(adversary.keys_held is set)"),
        ({"compromised": 1, "compromise_groups": [{"keys": [0], "prob": 0.1}]}, None,
         "signers.compromise_groups, not both"),
        ({"compromise_prob": 0.01}, {"keys_held": 8},
         "t: adversary.keys_held: must be <= signers.n (7), got 8"),
        ({}, {"keys_held": -2}, "t: adversary.keys_held: must be an integer -1 .. signers.n"),
        ({}, {"keys_held": 1}, "t: adversary.keys_held: the compromise model never compromises "
         "exactly 1 keys (P = 0); possible counts: 0"),
        ({"compromise_probs": [0.5, 0, 0, 1, 0, 0, 0],
          "compromise_groups": [{"keys": [5, 6], "prob": 0.1}]}, {"keys_held": 5},
         "never compromises exactly 5 keys (P = 0); possible counts: 1..4"),
        ({"compromise_probs": [0, 0, 0, 1, 0, 0, 0],
          "compromise_groups": [{"keys": [0, 1, 2], "prob": 0.5}]}, {"keys_held": 2},
         "never compromises exactly 2 keys (P = 0); possible counts: 1, 4"),
        ({"compromise_probs": [0.5, 0, 0, 1, 0, 0, 0]}, {"keys_held": 0},
         "never compromises exactly 0 keys (P = 0); possible counts: 1..2"),
        ({"compromise_groups": [{"keys": [0, 7], "prob": 0.1}]}, None,
         "t: signers.compromise_groups[0].keys[1]: must be a key index 0 .. 6 (signers.n - 1), "
         "got 7"),
        ({"compromise_groups": [{"keys": [1, 1], "prob": 0.1}]}, None,
         "t: signers.compromise_groups[0].keys[1]: key 1 is already in this group"),
        ({"compromise_groups": [{"keys": [], "prob": 0.1}]}, None,
         "t: signers.compromise_groups[0].keys: must be a non-empty array"),
        ({"compromise_groups": [{"keys": [0], "prob": 1.5}]}, None,
         "t: signers.compromise_groups[0].prob: must be a probability in [0, 1], got 1.5"),
        ({"compromise_groups": [{"keys": [0]}]}, None,
         "t: signers.compromise_groups[0].prob: missing"),
        ({"compromise_groups": [{"keys": [0], "prob": 0.1, "p": 1}]}, None,
         "t: signers.compromise_groups[0].p: unknown key"),
        ({"compromise_groups": [{"keys": [0], "prob": 0.1}] * 17}, None,
         "t: signers.compromise_groups: at most 16 groups"),
        ({"compromise_probs": [0.1] * 6}, None,
         "t: signers.compromise_probs: must hold one probability per key: signers.n (7) "
         "values, or [] to use signers.compromise_prob for every key; got 6"),
        ({"compromise_probs": [0.1] * 6 + [-0.1]}, None,
         "t: signers.compromise_probs[6]: must be a probability in [0, 1], got -0.1"),
        ({"compromise_probs": [0.1] * 7, "compromise_prob": 0.2}, None,
         "t: signers.compromise_probs: set signers.compromise_prob (one value for every key) "
         "or signers.compromise_probs (one per key), not both"),
        ({"compromise_prob": 2}, None,
         "t: signers.compromise_prob: must be a number in [0, 1], got 2"),
    ],
)
def test_mistakes_name_the_key(
    signers: dict[str, Any], adversary: dict[str, Any] | None, expected: str
) -> None:
    assert expected in _message(signers, adversary)


def test_a_mistake_on_the_command_line_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["run", "certify_threshold", "--set", "adversary.keys_held=8", "--quiet",
                     "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "Traceback" not in err
    assert "adversary.keys_held: must be <= signers.n (7), got 8" in err


def test_the_shipped_scenario_round_trips_and_fits_the_schema() -> None:
    s = load_scenario("certify_threshold")
    assert (s.signers.n, s.signers.threshold, s.fleet.nodes) == (7, 4, 1000)
    assert s.signers.compromise_prob == 0.01
    assert s.signers.compromise_groups == (CompromiseGroup((0, 1), 0.001),)
    assert scenario_from_dict(json.loads(json.dumps(s.to_dict()))) == s
    validator = jsonschema.Draft202012Validator(json_schema())
    raw = tomllib.loads((SCENARIO_DIR / "certify_threshold.toml").read_text())
    assert not list(validator.iter_errors(raw))
    assert not list(validator.iter_errors(s.to_dict()))
    bad = {"signers": {"compromise_groups": [{"keys": [0, 0], "prob": 0.1}]}}
    assert list(validator.iter_errors(bad))
    rows = {r.key: r for r in knob_table()}
    assert rows["signers.compromise_groups"].type == "array of tables"
    assert rows["adversary.keys_held"].range == "-1 .. signers.n"
    # the figures the scenario's comment quotes
    law = key_count_distribution(s)
    assert [f"{law[t:].sum():.1e}" for t in (3, 4, 5)] == ["8.3e-05", "1.3e-06", "1.2e-08"]


def test_overrides_set_the_new_knobs() -> None:
    data = apply_overrides({}, ["signers.compromise_groups=[{keys = [0, 1], prob = 0.5}]",
                                "signers.compromise_probs=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]",
                                "adversary.keys_held=3"])
    s = scenario_from_dict(data)
    assert s.signers.compromise_groups == (CompromiseGroup((0, 1), 0.5),)
    assert s.signers.compromise_probs[-1] == 0.7 and s.adversary.keys_held == 3


def test_config_hashes_of_configurations_without_the_model_are_unchanged() -> None:
    """The CI baseline recorded these hashes before the compromise knobs existed."""
    baseline = json.loads((SCENARIO_DIR / "ci" / "baseline.json").read_text())
    for name, entry in baseline["scenarios"].items():
        assert config_hash(load_scenario(SCENARIO_DIR / "ci" / entry["file"])) == \
            entry["config_hash"], name
    base = default_scenario()
    for override in ("signers.compromise_prob=0.01", "adversary.keys_held=0",
                     "signers.compromise_groups=[{keys = [0], prob = 0.1}]"):
        changed = scenario_from_dict(apply_overrides(base.to_dict(), [override]))
        assert config_hash(changed) != config_hash(base), override
