"""Scenario loading: shipped files, defaults, one-line errors, overrides, schema, hash, docs."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from fractions import Fraction
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from releasesim.sim.distributions import Exponential, Fixed, LogNormal
from releasesim.sim.errors import ScenarioError
from releasesim.sim.knobs import KNOBS, SECTIONS, Scenario, ThresholdChange, plain
from releasesim.sim.overrides import apply_overrides
from releasesim.sim.scenario import (
    SCENARIO_DIR,
    _convert,
    config_hash,
    default_scenario,
    list_scenarios,
    load_scenario,
    scenario_from_dict,
)
from releasesim.sim.scenario_docs import DOCS_PATH, json_schema, knob_table, render_knob_docs

SHIPPED = ["bad_release_rollback", "baseline", "certify_threshold", "compromised_signers",
           "halt_at_height", "lagging_release", "signer_churn"]


def _write(tmp_path: Path, text: str, name: str = "x.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _error(tmp_path: Path, text: str) -> str:
    path = _write(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: "), message
    return message


# -- shipped scenarios and defaults ----------------------------------------------------


def test_every_shipped_scenario_loads_and_is_listed() -> None:
    listed = dict(list_scenarios())
    assert sorted(listed) == SHIPPED
    for name in SHIPPED:
        scenario = load_scenario(name)
        assert scenario.name == name
        assert scenario.description and listed[name] == scenario.description
        assert load_scenario(SCENARIO_DIR / f"{name}.toml") == scenario


def test_baseline_file_spells_out_the_embedded_defaults() -> None:
    assert load_scenario("baseline") == default_scenario()
    raw = tomllib.loads((SCENARIO_DIR / "baseline.toml").read_text())
    every_key = {k.key for k in KNOBS}
    in_file = {k for k, v in raw.items() if k not in SECTIONS} | {
        f"{s}.{k}" for s in SECTIONS for k in raw.get(s, {})
    }
    assert in_file == every_key


def test_shipped_scenarios_say_what_they_are_for() -> None:
    churn = load_scenario("signer_churn").signers
    assert churn.availability == 0.6 and churn.rotation_interval_s == 7200
    assert churn.threshold_schedule and churn.threshold_schedule[0] == ThresholdChange(3600, 4)
    lagging = load_scenario("lagging_release")
    assert lagging.fleet.nodes == 10_000
    assert lagging.mirrors.latency.variance == float("inf")  # heavy-tailed
    assert lagging.fleet.hash_speed_mbps.mean < default_scenario().fleet.hash_speed_mbps.mean
    bad = load_scenario("bad_release_rollback")
    assert bad.release.bad_release and bad.release.startup_failure_prob == 0.3
    assert bad.rollout.strategy == "waves"
    comp = load_scenario("compromised_signers").signers
    assert (comp.compromised, comp.threshold, comp.n) == (2, 3, 7)
    for t in range(2, 8):  # the sweep the file's comment suggests is valid
        data = apply_overrides({}, [f"signers.threshold={t}"])
        scenario_from_dict({**data, "signers": {**data["signers"], "n": 7, "compromised": 2}})


def _validators_to_exceed(stakes: tuple[float, ...], share: Fraction) -> int:
    """How many of the largest stakes hold MORE than ``share`` of the total (exact)."""
    ordered = sorted((Fraction(x) for x in stakes), reverse=True)
    total, held = sum(ordered), Fraction(0)
    for count, stake in enumerate(ordered, start=1):
        held += stake
        if held > share * total:
            return count
    raise AssertionError("the stakes never exceed the share")


def test_halt_at_height_scenario_says_what_it_is_for() -> None:
    halt = load_scenario("halt_at_height")
    assert halt.consensus.mode == "halt_at_height"
    assert halt.rollout.strategy == "all_at_once"  # required by halt_at_height
    stakes = halt.governance.stakes
    assert halt.governance.validators == len(stakes) == 150
    assert halt.fleet.validators == 150 and halt.fleet.nodes == 400  # 250 full nodes
    # The comment's formula: stake i proportional to (i + 5)^-1.2, scaled to 100,000 and
    # rounded to integers that still sum to 100,000 (each within 1 of the exact value).
    weights = [(i + 5) ** -1.2 for i in range(150)]
    exact = [100_000 * w / sum(weights) for w in weights]
    assert sum(stakes) == 100_000
    assert max(abs(a - b) for a, b in zip(stakes, exact, strict=True)) < 1.0
    # Concentrated like real chains: 7 validators hold more than a third (the description's
    # claim), 31 more than two thirds; 6 do not hold a third.
    assert _validators_to_exceed(stakes, Fraction(1, 3)) == 7
    assert _validators_to_exceed(stakes, Fraction(2, 3)) == 31
    assert "7 hold a third" in halt.description
    # Heavy-tailed operator response: standard deviation above the mean (lognormal sigma 1.5:
    # CV = sqrt(e^(sigma^2) - 1) = 2.9), median 30 min.
    response = halt.consensus.operator_response
    assert response.variance > response.mean**2
    assert response == LogNormal(1800.0, 1.5)
    assert 0.0 < halt.consensus.prefetch_fraction < 1.0
    assert 0.0 < halt.release.startup_failure_prob <= 0.05  # small: failed starts are rare
    # The lagging deadline falls after the upgrade height (no node can run the release
    # before it), and the horizon leaves a day for halts to end.
    height_s = halt.consensus.upgrade_after_epochs * halt.epoch_s
    assert height_s < halt.sla_s and halt.horizon_s >= 24 * 3600
    # The sweeps in the file's header are valid at every grid point.
    raw = tomllib.loads((SCENARIO_DIR / "halt_at_height.toml").read_text())
    for override in ('consensus.mode="rolling"', 'consensus.mode="halt_at_height"',
                     "release.startup_failure_prob=0.2"):
        scenario_from_dict(apply_overrides(raw, [override]))
    text = (SCENARIO_DIR / "halt_at_height.toml").read_text()
    assert "releasesim sweep halt_at_height --grid consensus.mode=rolling,halt_at_height" in text


def test_ci_consensus_scenario_measures_stalls() -> None:
    ci = load_scenario(SCENARIO_DIR / "ci" / "ci_consensus.toml")
    assert ci.consensus.mode == "halt_at_height" and ci.rollout.strategy == "all_at_once"
    stakes = ci.governance.stakes
    assert ci.governance.validators == len(stakes) <= ci.fleet.nodes <= 100  # small fleet
    assert ci.fleet.validators in (-1, len(stakes))  # every validator in the fleet
    # A few validators hold most of the stake: 4 hold half, 2 more than a third.
    assert _validators_to_exceed(stakes, Fraction(1, 3)) == 2
    assert sum(sorted(stakes, reverse=True)[:4]) >= sum(stakes) / 2
    assert ci.governance.participation == 1.0  # activation, hence a height, every time
    assert ci.replications >= 30 and ci.release.startup_failure_prob > 0


def test_defaults() -> None:
    s = default_scenario()
    assert (s.name, s.replications, s.seed, s.horizon_s, s.sla_s, s.epoch_s) == (
        "baseline", 20, 20261127, 21600.0, 3600.0, 60.0
    )
    assert (s.signers.n, s.signers.threshold, s.signers.compromised) == (7, 5, 0)
    assert s.signers.signing_delay == LogNormal(120.0, 0.8)
    assert s.signers.threshold_schedule == ()
    assert s.governance.vote_delay == Exponential(600.0)
    assert s.governance.submit_delay == Fixed(30.0)
    assert s.mirrors.bandwidth_mbps == Fixed(200.0)
    assert s.fleet.nodes == 1000 and s.rollout.strategy == "all_at_once"
    assert s.rollout.waves == (0.01, 0.1, 0.5, 1.0)
    assert scenario_from_dict({}) == s


def test_mean_online_spell_is_derived_from_availability() -> None:
    s = default_scenario().signers
    a = s.availability
    assert s.mean_online_s == pytest.approx(s.mean_offline_s * a / (1 - a))
    # long-run fraction online of an alternating renewal process = on / (on + off)
    assert s.mean_online_s / (s.mean_online_s + s.mean_offline_s) == pytest.approx(a)
    always = scenario_from_dict({"signers": {"availability": 1.0}}).signers
    assert always.mean_online_s == float("inf")


def test_every_default_passes_its_own_validation() -> None:
    for knob in KNOBS:
        assert _convert(knob, plain(knob.default)) == knob.default, knob.key


def test_dataclass_fields_are_exactly_the_knob_table() -> None:
    top = [f.name for f in dataclasses.fields(Scenario)]
    assert top == [k.key for k in KNOBS if k.section is None] + list(SECTIONS)
    for section, (cls, _doc) in SECTIONS.items():
        assert [f.name for f in dataclasses.fields(cls)] == [
            k.name for k in KNOBS if k.section == section
        ]
    assert len({k.key for k in KNOBS}) == len(KNOBS)
    assert all(k.description and k.kind for k in KNOBS)


def test_scenario_is_frozen() -> None:
    s = default_scenario()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.fleet.nodes = 3  # type: ignore[misc]


def test_a_file_without_name_takes_the_file_stem(tmp_path: Path) -> None:
    path = _write(tmp_path, "[fleet]\nnodes = 12\n", "my_case.toml")
    s = load_scenario(path)
    assert s.name == "my_case" and s.fleet.nodes == 12
    assert load_scenario(str(path)) == s


def test_integers_are_accepted_for_numbers(tmp_path: Path) -> None:
    s = load_scenario(_write(tmp_path, "horizon_s = 100\n[fleet]\nbackoff_factor = 3\n"))
    assert s.horizon_s == 100.0 and isinstance(s.horizon_s, float)
    assert s.fleet.backoff_factor == 3.0


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,expected",
    [
        # unknown keys, at every depth
        ("nodes = 3\n", "nodes: unknown key at top level"),
        ("[fleet]\nnodez = 3\n", "fleet.nodez: unknown key in [fleet] (did you mean 'nodes'?)"),
        ("[fleet.extra]\na = 1\n", "fleet.extra: unknown key in [fleet]"),
        ("[flet]\nnodes = 3\n", "flet: unknown key at top level (did you mean 'fleet'?)"),
        ("[signers]\nthreshold_schedule = [{at_s = 1.0, threshold = 2, by = 'x'}]\n",
         "signers.threshold_schedule[0].by: unknown key"),
        # wrong types
        ("[fleet]\nnodes = 'ten'\n",
         "fleet.nodes: must be an integer in [1, 2,000,000], got 'ten'"),
        ("[fleet]\nnodes = 10.0\n", "fleet.nodes: must be an integer in [1, 2,000,000], got 10.0"),
        ("[fleet]\nnodes = true\n", "fleet.nodes: must be an integer in [1, 2,000,000], got true"),
        ("[release]\nbad_release = 1\n", "release.bad_release: must be true or false, got 1"),
        ("name = 3\n", "name: must be a string, got 3"),
        ("fleet = 3\n", "fleet: must be a table [fleet], got 3"),
        ("[rollout]\nwaves = 0.5\n", "rollout.waves: must be a non-empty array"),
        ("[signers]\nthreshold_schedule = 3\n", "signers.threshold_schedule: must be an array"),
        # out of range
        ("[fleet]\nnodes = 0\n", "fleet.nodes: must be an integer in [1, 2,000,000], got 0"),
        ("[signers]\navailability = 1.5\n",
         "signers.availability: must be a number in [0, 1], got 1.5"),
        ("horizon_s = 0\n", "horizon_s: must be a number in [0.001, 1e+09], got 0"),
        ("horizon_s = inf\n", "horizon_s: must be a number in [0.001, 1e+09], got inf"),
        ("[fleet]\nbackoff_factor = 0.5\n", "fleet.backoff_factor: must be a number in [1, 100]"),
        ("[rollout]\nstrategy = 'wave'\n",
         "rollout.strategy: must be one of 'all_at_once', 'waves', got 'wave'"),
        ("[mirrors]\nbandwidth_mbps = 0\n", "mirrors.bandwidth_mbps: every draw must be > 0"),
        # cross-field rules
        ("[signers]\nthreshold = 8\n", "signers.threshold: must be <= signers.n (7), got 8"),
        ("[signers]\nn = 3\nthreshold = 4\n",
         "signers.threshold: must be <= signers.n (3), got 4"),
        ("[signers]\ncompromised = 9\n", "signers.compromised: must be <= signers.n (7), got 9"),
        ("[signers]\nthreshold_schedule = [{at_s = 10.0, threshold = 8}]\n",
         "signers.threshold_schedule[0].threshold: must be <= signers.n (7), got 8"),
        ("[signers]\nthreshold_schedule = [{at_s = 10.0, threshold = 2}, "
         "{at_s = 5.0, threshold = 3}]\n",
         "signers.threshold_schedule[1].at_s: must be > the previous entry's at_s"),
        ("[signers]\nthreshold_schedule = [{at_s = 10.0}]\n",
         "signers.threshold_schedule[0].threshold: missing"),
        # distributions
        ("[fleet]\nrestart_delay = {dist = 'gamma', k = 2.0}\n",
         "fleet.restart_delay.dist: unknown distribution 'gamma'"),
        ("[fleet]\nrestart_delay = {dist = 'lognormal', median = 20.0}\n",
         "fleet.restart_delay.sigma: missing parameter of lognormal"),
        ("[fleet]\nrestart_delay = {dist = 'lognormal', median = -1.0, sigma = 1.0}\n",
         "fleet.restart_delay.median: must be > 0"),
        ("[governance]\nstake = 'heavy'\n", "governance.stake: must be a number or a distribution"),
        # waves
        ("[rollout]\nwaves = [0.1, 0.5]\n",
         "rollout.waves: must end at 1.0 (the whole fleet), got [0.1, 0.5]"),
        ("[rollout]\nwaves = [0.1, 0.05, 1.0]\n",
         "rollout.waves[1]: must be > rollout.waves[0] (0.1)"),
        ("[rollout]\nwaves = [0.0, 1.0]\n", "rollout.waves[0]: must be a number in (0, 1]"),
        ("[rollout]\nwaves = []\n", "rollout.waves: must be a non-empty array"),
    ],
)
def test_mistakes_are_one_line_naming_file_and_key_path(
    tmp_path: Path, text: str, expected: str
) -> None:
    message = _error(tmp_path, text)
    assert message.startswith(f"{tmp_path / 'x.toml'}: {expected}"), message


@pytest.mark.parametrize(
    "text,line",
    [
        ("[fleet]\nnodes = \n", 2),
        ("a = 1\n[fleet]\nnodes 3\n", 3),
        ("[fleet]\nnodes = 1\nnodes = 2\n", 3),
        ("[fleet\n", 1),
    ],
)
def test_malformed_toml_names_file_and_line(tmp_path: Path, text: str, line: int) -> None:
    message = _error(tmp_path, text)
    assert message.startswith(f"{tmp_path / 'x.toml'}: line {line}: invalid TOML: "), message


def test_missing_file_and_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"^no_such_scenario: no such scenario; shipped: "):
        load_scenario("no_such_scenario")
    missing = tmp_path / "missing.toml"
    with pytest.raises(ScenarioError, match="no such file") as info:
        load_scenario(missing)
    assert str(info.value).startswith(str(missing))


def test_shipped_files_are_named_relative_to_the_repo(tmp_path: Path) -> None:
    bad = {"fleet": {"nodes": "ten"}}
    with pytest.raises(ScenarioError) as info:
        scenario_from_dict(bad, source="scenarios/x.toml")
    assert str(info.value) == (
        "scenarios/x.toml: fleet.nodes: must be an integer in [1, 2,000,000], got 'ten'")
    with pytest.raises(ScenarioError, match=r"^<dict>: fleet\.nodes: "):
        scenario_from_dict(bad)


def test_the_error_is_a_value_error_and_pickles() -> None:
    import pickle

    err = ScenarioError("bad", path="a.b", source="f.toml")
    assert isinstance(err, ValueError)
    assert str(pickle.loads(pickle.dumps(err))) == "f.toml: a.b: bad"


# -- overrides -------------------------------------------------------------------------


def test_overrides_set_values_of_every_kind() -> None:
    data = apply_overrides(
        {"fleet": {"nodes": 10}},
        [
            "fleet.nodes=500",
            "signers.threshold=4",
            "seed=7",
            "release.bad_release=true",
            "rollout.strategy=waves",  # not TOML: taken as a string
            "rollout.waves=[0.5, 1.0]",
            'mirrors.latency={dist = "exponential", mean = 0.5}',
            "fleet.hash_speed_mbps.sigma=0.1",
            "governance.submit_delay=0",
            "signers.threshold_schedule=[{at_s = 60, threshold = 3}]",
        ],
        "baseline",
    )
    s = scenario_from_dict(data, "baseline")
    assert s.fleet.nodes == 500 and s.signers.threshold == 4 and s.seed == 7
    assert s.release.bad_release and s.rollout.strategy == "waves"
    assert s.rollout.waves == (0.5, 1.0)
    assert s.mirrors.latency == Exponential(0.5)
    assert s.fleet.hash_speed_mbps == LogNormal(400.0, 0.1)
    assert s.governance.submit_delay.is_zero
    assert s.signers.threshold_schedule == (ThresholdChange(60.0, 3),)


def test_overrides_do_not_touch_their_input() -> None:
    base = default_scenario().to_dict()
    before = json.dumps(base, sort_keys=True)
    out = apply_overrides(base, ["fleet.nodes=5", "signers.signing_delay.median=1"])
    assert json.dumps(base, sort_keys=True) == before
    assert scenario_from_dict(out).signers.signing_delay == LogNormal(1.0, 0.8)


def test_override_switching_a_distribution() -> None:
    out = apply_overrides({}, ['governance.stake.dist="exponential"', "governance.stake.mean=3"])
    assert scenario_from_dict(out).governance.stake == Exponential(3.0)


@pytest.mark.parametrize(
    "override,expected",
    [
        ("fleet.no_such_key=1", "src: fleet.no_such_key: unknown key"),
        ("fleet.nodez=1", "src: fleet.nodez: unknown key (did you mean 'fleet.nodes'?)"),
        ("no_such=1", "src: no_such: unknown key"),
        ("fleet.nodes.x=1", "src: fleet.nodes.x: unknown key"),
        ("fleet.restart_delay.a.b=1", "src: fleet.restart_delay.a.b: unknown key"),
        ("fleet=1", "src: fleet: is a section; set one of its keys, e.g. fleet.nodes=..."),
        ("novalue", "src: --set novalue: expected key.path=value"),
        ("=3", "src: --set =3: expected key.path=value"),
    ],
)
def test_bad_override_paths(override: str, expected: str) -> None:
    with pytest.raises(ScenarioError) as info:
        apply_overrides({}, [override], "src")
    assert str(info.value).startswith(expected), str(info.value)


@pytest.mark.parametrize(
    "override,expected",
    [
        ("fleet.nodes=ten", "src: fleet.nodes: must be an integer in [1, 2,000,000], got 'ten'"),
        ("fleet.nodes=-5", "src: fleet.nodes: must be an integer in [1, 2,000,000], got -5"),
        ("signers.threshold=9", "src: signers.threshold: must be <= signers.n (7), got 9"),
        ("fleet.restart_delay.mean=3",
         "src: fleet.restart_delay.mean: unknown parameter for lognormal"),
    ],
)
def test_bad_override_values_fail_validation(override: str, expected: str) -> None:
    data = apply_overrides({}, [override], "src")
    with pytest.raises(ScenarioError) as info:
        scenario_from_dict(data, "src")
    assert str(info.value).startswith(expected), str(info.value)


# -- to_dict, hash ---------------------------------------------------------------------


@pytest.mark.parametrize("name", SHIPPED)
def test_to_dict_is_json_and_round_trips(name: str) -> None:
    s = load_scenario(name)
    data = json.loads(json.dumps(s.to_dict(), allow_nan=False))
    assert scenario_from_dict(data) == s
    assert data["fleet"]["nodes"] == s.fleet.nodes
    assert data["signers"]["signing_delay"] == s.signers.signing_delay.to_dict()


def test_config_hash_is_stable_and_tracks_knobs() -> None:
    s = default_scenario()
    h = config_hash(s)
    assert len(h) == 64 and int(h, 16) >= 0
    assert config_hash(load_scenario("baseline")) == h
    assert config_hash(scenario_from_dict(s.to_dict())) == h
    # an explicit knob equal to its default is the same configuration
    assert h == config_hash(scenario_from_dict({"fleet": {"nodes": 1000}}))
    changed = scenario_from_dict(apply_overrides(s.to_dict(), ["fleet.nodes=1001"]))
    assert config_hash(changed) != h
    dist_changed = scenario_from_dict(
        apply_overrides(s.to_dict(), ["signers.signing_delay.sigma=0.81"])
    )
    assert config_hash(dist_changed) != h
    renamed = scenario_from_dict({**s.to_dict(), "name": "other", "description": "x"})
    assert config_hash(renamed) == h
    hashes = {config_hash(load_scenario(n)) for n in SHIPPED}
    assert len(hashes) == len(SHIPPED)


# -- JSON Schema -----------------------------------------------------------------------


def _validator() -> Any:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("name", SHIPPED)
def test_json_schema_accepts_every_shipped_file_and_resolved_form(name: str) -> None:
    validator = _validator()
    raw = tomllib.loads((SCENARIO_DIR / f"{name}.toml").read_text())
    assert not list(validator.iter_errors(raw))
    assert not list(validator.iter_errors(load_scenario(name).to_dict()))


@pytest.mark.parametrize(
    "bad",
    [
        {"fleet": {"nodez": 3}},
        {"extra": 1},
        {"fleet": {"nodes": "ten"}},
        {"fleet": {"nodes": 0}},
        {"signers": {"availability": 2}},
        {"signers": {"signing_delay": {"dist": "gamma"}}},
        {"signers": {"threshold_schedule": [{"at_s": 1, "threshold": 2, "x": 1}]}},
        {"rollout": {"strategy": "wave"}},
        {"rollout": {"waves": [0.0, 1.0]}},
    ],
)
def test_json_schema_rejects_mistakes(bad: dict[str, Any]) -> None:
    assert list(_validator().iter_errors(bad))


def test_json_schema_closes_every_object() -> None:
    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object":
                assert node.get("additionalProperties") is False, node
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    schema = json_schema()
    walk(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["properties"]) == {k.key for k in KNOBS if k.section is None} | set(SECTIONS)


# -- docs ------------------------------------------------------------------------------


def test_knob_table_covers_every_knob_with_a_unit_column() -> None:
    rows = knob_table()
    assert [r.key for r in rows] == [k.key for k in KNOBS]
    row = {r.key: r for r in rows}
    assert row["fleet.nodes"].default == "1000" and row["fleet.nodes"].range == "[1, 2,000,000]"
    assert row["horizon_s"].unit == "s"
    assert row["governance.submit_delay"].default == "30.0"
    assert row["signers.threshold"].range == "1 .. signers.n"


def test_docs_contain_the_generated_knob_reference() -> None:
    docs = DOCS_PATH.read_text()
    assert render_knob_docs() in docs, (
        "docs/scenarios.md is out of date: run `python3 tasks.py docs`"
    )
    for knob in KNOBS:
        assert f"`{knob.key}`" in docs


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("fleet.nodes=9223372036854775807",
         "fleet.nodes: must be an integer in [1, 2,000,000], got 9223372036854775807 (that many "
         "would need about 16,384 EiB of memory per replication)"),
        ("fleet.nodes=2000001", "would need about 4 GiB of memory per replication"),
        ("signers.n=1001", "signers.n: must be an integer in [1, 1,000], got 1001"),
        ("governance.validators=100001", "governance.validators: must be an integer in"),
        ("mirrors.count=1001", "mirrors.count: must be an integer in [1, 1,000]"),
        ("replications=1000001", "replications: must be an integer in [1, 1,000,000]"),
    ],
)
def test_size_knobs_have_an_upper_bound_checked_at_validation(override: str, message: str) -> None:
    from releasesim.sim.api import resolve_scenario

    with pytest.raises(ScenarioError) as raised:
        resolve_scenario("baseline", [override])
    assert message in str(raised.value)


def test_the_largest_fleet_still_validates() -> None:
    from releasesim.sim.api import resolve_scenario
    from releasesim.sim.knobs import MAX_NODES, NODE_BYTES

    assert resolve_scenario("baseline", [f"fleet.nodes={MAX_NODES}"]).fleet.nodes == MAX_NODES
    assert MAX_NODES * NODE_BYTES < 8 * 2**30  # one replication fits a worker of this machine
