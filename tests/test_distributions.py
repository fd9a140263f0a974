"""Distribution objects against their closed forms, and the TOML parser's errors.

Statistical tolerance: each sample statistic must lie within 5 standard errors of its
closed form, with n = 200 000 draws from a fixed seed. The standard error of a sample mean
is sqrt(variance / n); of a sample variance, sqrt((m4 - s2**2) / n) with m4 the sample's
fourth central moment; of a sample median, 1 / (2 f(median) sqrt(n)) with f the density.
Cases whose statistic has no finite standard error (Pareto variance for shape <= 4,
Pareto mean for shape <= 2) are checked on their closed forms only.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from releasesim.sim.distributions import (
    Distribution,
    Exponential,
    Fixed,
    LogNormal,
    Pareto,
    Uniform,
    distribution_json_schema,
    parse_distribution,
)
from releasesim.sim.errors import ScenarioError

N = 200_000
Z = 5.0
SEED = 20261127

CASES: list[Distribution] = [
    Fixed(3.5),
    Exponential(5.0),
    Exponential(0.2),
    LogNormal(2.0, 0.5),
    LogNormal(120.0, 0.8),
    Uniform(1.0, 3.0),
    Uniform(0.0, 10.0),
    Pareto(1.0, 5.0),
    Pareto(2.0, 6.5),
]


def _draws(dist: Distribution) -> np.ndarray:
    return dist.sample_many(np.random.default_rng(SEED), N)


@pytest.mark.parametrize("dist", CASES, ids=repr)
def test_sample_mean_matches_closed_form(dist: Distribution) -> None:
    x = _draws(dist)
    se = math.sqrt(dist.variance / N)
    assert abs(x.mean() - dist.mean) <= Z * se + 1e-12


@pytest.mark.parametrize("dist", CASES, ids=repr)
def test_sample_variance_matches_closed_form(dist: Distribution) -> None:
    x = _draws(dist)
    s2 = x.var(ddof=1)
    m4 = float(np.mean((x - x.mean()) ** 4))
    se = math.sqrt(max(m4 - s2**2, 0.0) / N)
    assert abs(s2 - dist.variance) <= Z * se + 1e-12


@pytest.mark.parametrize("dist", [LogNormal(2.0, 0.5), LogNormal(120.0, 0.8)], ids=repr)
def test_lognormal_median_is_the_median(dist: LogNormal) -> None:
    x = _draws(dist)
    # density of the log-normal at its median m: 1 / (m * sigma * sqrt(2 pi))
    se = dist.median * dist.sigma * math.sqrt(2 * math.pi) / (2 * math.sqrt(N))
    assert abs(float(np.median(x)) - dist.median) <= Z * se


def test_single_draws_follow_the_same_law() -> None:
    rng = np.random.default_rng(SEED)
    dist = Exponential(5.0)
    x = np.array([dist.sample(rng) for _ in range(20_000)])
    assert abs(x.mean() - 5.0) <= Z * 5.0 / math.sqrt(len(x))
    assert all(isinstance(dist.sample(rng), float) for _ in range(3))


def test_pareto_support_and_closed_forms() -> None:
    p = Pareto(2.0, 2.5)
    assert p.mean == pytest.approx(2.5 * 2.0 / 1.5)
    assert p.variance == pytest.approx(4.0 * 2.5 / (1.5**2 * 0.5))
    assert _draws(p).min() >= 2.0
    assert Pareto(1.0, 1.5).variance == math.inf
    assert Pareto(1.0, 1.5).mean == pytest.approx(3.0)
    assert Pareto(1.0, 1.0).mean == math.inf
    assert Pareto(1.0, 0.5).mean == math.inf


def test_pareto_tail_probability() -> None:
    # P(X > x) = (scale / x) ** shape; at x = 2 * scale with shape 1.5: 2 ** -1.5.
    p = 2.0**-1.5
    frac = float(np.mean(_draws(Pareto(3.0, 1.5)) > 6.0))
    assert abs(frac - p) <= Z * math.sqrt(p * (1 - p) / N)


def test_lognormal_closed_forms() -> None:
    d = LogNormal(2.0, 0.5)
    assert d.mean == pytest.approx(2.0 * math.exp(0.125))
    assert d.variance == pytest.approx((math.exp(0.25) - 1) * math.exp(2 * math.log(2.0) + 0.25))
    assert LogNormal(3.0, 0.0).variance == 0.0
    assert LogNormal(3.0, 0.0).sample(np.random.default_rng(1)) == pytest.approx(3.0)


def test_fixed_zero_is_the_only_zero() -> None:
    assert Fixed(0).is_zero
    assert Fixed(0.0).is_zero
    assert not Fixed(1e-9).is_zero
    for dist in CASES:
        assert not dist.is_zero
    assert not Uniform(0.0, 0.0).is_zero
    assert Fixed(0).sample_many(np.random.default_rng(1), 4).tolist() == [0.0] * 4


def test_fixed_consumes_no_randomness() -> None:
    rng = np.random.default_rng(7)
    Fixed(2.0).sample(rng)
    Fixed(2.0).sample_many(rng, 10)
    assert rng.random() == np.random.default_rng(7).random()


def test_positive_flags() -> None:
    assert not Fixed(0).positive and Fixed(1).positive
    assert not Uniform(0, 1).positive and Uniform(0.5, 1).positive
    assert Exponential(1).positive and LogNormal(1, 1).positive and Pareto(1, 1).positive


@pytest.mark.parametrize(
    "make,param",
    [
        (lambda: Fixed(-1), "value"),
        (lambda: Fixed(math.inf), "value"),
        (lambda: Exponential(0), "mean"),
        (lambda: Exponential(-2), "mean"),
        (lambda: LogNormal(0, 1), "median"),
        (lambda: LogNormal(1, -0.1), "sigma"),
        (lambda: Uniform(-1, 1), "low"),
        (lambda: Uniform(3, 1), "high"),
        (lambda: Pareto(0, 2), "scale"),
        (lambda: Pareto(1, 0), "shape"),
        (lambda: Pareto(1, math.nan), "shape"),
    ],
)
def test_bad_parameters_raise_value_error_naming_them(make: object, param: str) -> None:
    with pytest.raises(ValueError, match=f"^{param}: "):
        make()  # type: ignore[operator]


def test_parameters_are_floats_and_frozen() -> None:
    d = Exponential(5)
    assert isinstance(d.mean, float) and d == Exponential(5.0)
    with pytest.raises(AttributeError):
        d.mean = 3.0  # type: ignore[misc]


@pytest.mark.parametrize("dist", [*CASES, Fixed(0)], ids=repr)
def test_to_dict_round_trips(dist: Distribution) -> None:
    table = dist.to_dict()
    assert table["dist"] == dist.kind
    assert parse_distribution(table, "x.y") == dist


def test_parse_forms() -> None:
    assert parse_distribution(5, "a") == Fixed(5.0)
    assert parse_distribution(0, "a").is_zero
    assert parse_distribution({"dist": "fixed", "value": 0}, "a").is_zero
    assert parse_distribution({"dist": "exponential", "mean": 5.0}, "a") == Exponential(5.0)
    assert parse_distribution({"dist": "lognormal", "median": 2, "sigma": 0.5}, "a") == LogNormal(
        2.0, 0.5
    )
    assert parse_distribution({"dist": "uniform", "low": 1, "high": 3}, "a") == Uniform(1.0, 3.0)
    assert parse_distribution({"dist": "pareto", "scale": 1, "shape": 2.5}, "a") == Pareto(1, 2.5)


@pytest.mark.parametrize(
    "value,path,needle",
    [
        ({"dist": "gamma", "k": 2}, "fleet.restart_delay.dist", "unknown distribution 'gamma'"),
        ({"mean": 5}, "fleet.restart_delay.dist", "missing 'dist'"),
        ({"dist": "exponential"}, "fleet.restart_delay.mean", "missing parameter"),
        ({"dist": "exponential", "mean": 5, "sigma": 1}, "fleet.restart_delay.sigma", "unknown"),
        ({"dist": "exponential", "mean": "5"}, "fleet.restart_delay.mean", "must be a number"),
        ({"dist": "exponential", "mean": True}, "fleet.restart_delay.mean", "must be a number"),
        ({"dist": "exponential", "mean": -5}, "fleet.restart_delay.mean", "must be > 0"),
        ({"dist": "uniform", "low": 3, "high": 1}, "fleet.restart_delay.high", "must be >= low"),
        (-1, "fleet.restart_delay", "must be >= 0"),
        ("fast", "fleet.restart_delay", "must be a number or a distribution table"),
        (True, "fleet.restart_delay", "must be a number or a distribution table"),
        ([1, 2], "fleet.restart_delay", "must be a number or a distribution table"),
    ],
)
def test_parse_errors_name_the_key_path(value: object, path: str, needle: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_distribution(value, "fleet.restart_delay")
    message = str(info.value)
    assert message.startswith(f"{path}: ") and needle in message
    assert "\n" not in message
    assert info.value.path == path


def test_json_schema_fragment_accepts_every_form() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
              **distribution_json_schema()}
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for dist in [*CASES, Fixed(0)]:
        assert validator.is_valid(dist.to_dict())
    assert validator.is_valid(30)
    for bad in [-1, "x", {"dist": "gamma"}, {"dist": "exponential", "mean": 0},
                {"dist": "exponential", "mean": 1, "extra": 2}, {"dist": "uniform", "low": 1}]:
        assert not validator.is_valid(bad), bad
