"""Distributions for scenario knobs: small frozen objects that sample from a numpy Generator.

Every delay, size and speed in a scenario is one of these (after Ciw's ``ciw.dists``):
``Fixed``, ``Exponential``, ``LogNormal``, ``Uniform`` and ``Pareto``. Each has
``sample(rng)``, ``sample_many(rng, n)``, closed-form ``mean`` and ``variance`` (``math.inf``
where infinite), ``is_zero`` (only ``Fixed(0)``: the simulator skips such a delay entirely,
no zero-length timeout) and ``to_dict()`` (the TOML/JSON table form, which
``parse_distribution`` reads back). All of them model non-negative quantities, so every
parameter set is checked in ``__post_init__`` to give a support inside ``[0, inf)``.

Scenario input (``parse_distribution``) is held to tighter, documented bounds than the
classes themselves, so that a run cannot overflow, divide by zero or draw infinities: every
location/scale parameter (``value``, ``mean``, ``median``, ``low``, ``high``, ``scale``) is 0
where 0 is allowed or in ``[MIN_PARAMETER, MAX_PARAMETER]`` = ``[1e-9, 1e12]``, the
log-normal ``sigma`` is at most ``MAX_SIGMA`` (10) and the Pareto ``shape`` at least
``MIN_SHAPE`` (0.1). A value that is neither a number nor a ``{dist = ...}`` table (an
array, a table without a string ``dist``) is a ``ScenarioError`` too.

The RNG is always passed in; there is no module state. Imports numpy and ``releasesim.sim.errors``
only; must not import ``simpy``, ``model`` or ``reports``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np

from releasesim.sim.errors import ScenarioError

__all__ = [
    "DISTRIBUTIONS",
    "MAX_PARAMETER",
    "MAX_SIGMA",
    "MIN_PARAMETER",
    "MIN_SHAPE",
    "Distribution",
    "Exponential",
    "Fixed",
    "LogNormal",
    "Pareto",
    "ParameterError",
    "Uniform",
    "distribution_json_schema",
    "parse_distribution",
]


class ParameterError(ValueError):
    """A distribution parameter out of range; ``param`` names it (for the key path)."""

    def __init__(self, param: str, problem: str) -> None:
        self.param = param
        self.problem = problem
        super().__init__(f"{param}: {problem}")


def _finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParameterError(name, f"must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ParameterError(name, f"must be finite, got {value!r}")
    return float(value)


def _at_least(name: str, value: float, low: float) -> None:
    if _finite(name, value) < low:
        raise ParameterError(name, f"must be >= {low:g}, got {value!r}")


def _above(name: str, value: float, low: float) -> None:
    if _finite(name, value) <= low:
        raise ParameterError(name, f"must be > {low:g}, got {value!r}")


class Distribution:
    """Base of the distribution objects; subclasses are frozen slotted dataclasses."""

    __slots__ = ()
    kind: ClassVar[str]

    def _as_floats(self) -> None:
        """Check every parameter is a finite number and store it as a float."""
        for f in fields(self):  # type: ignore[arg-type]
            object.__setattr__(self, f.name, _finite(f.name, getattr(self, f.name)))

    def sample(self, rng: np.random.Generator) -> float:
        """One draw."""
        raise NotImplementedError

    def sample_many(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` independent draws as a float array."""
        raise NotImplementedError

    def sampler(self, rng: np.random.Generator) -> Callable[[], float]:
        """``lambda: self.sample(rng)`` for hot loops; subclasses may prepare constants
        once, but must draw exactly what ``sample`` draws (same numpy call, same
        arithmetic, same generator state afterwards)."""
        return functools.partial(self.sample, rng)

    @property
    def mean(self) -> float:
        raise NotImplementedError

    @property
    def variance(self) -> float:
        raise NotImplementedError

    @property
    def is_zero(self) -> bool:
        """True only for ``Fixed(0)``: a delay the simulator leaves out altogether."""
        return False

    @property
    def positive(self) -> bool:
        """True when every draw is > 0 almost surely (safe to divide by)."""
        return True

    def to_dict(self) -> dict[str, Any]:
        """The table form, e.g. ``{"dist": "exponential", "mean": 5.0}``."""
        out: dict[str, Any] = {"dist": self.kind}
        for f in fields(self):  # type: ignore[arg-type]
            out[f.name] = getattr(self, f.name)
        return out


@dataclass(frozen=True, slots=True)
class Fixed(Distribution):
    """Always ``value`` (>= 0). ``Fixed(0)`` is a delay that disappears."""

    value: float
    kind: ClassVar[str] = "fixed"

    def __post_init__(self) -> None:
        self._as_floats()
        _at_least("value", self.value, 0.0)

    def sample(self, rng: np.random.Generator) -> float:
        return self.value

    def sample_many(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, self.value)

    @property
    def mean(self) -> float:
        return self.value

    @property
    def variance(self) -> float:
        return 0.0

    @property
    def is_zero(self) -> bool:
        return self.value == 0

    @property
    def positive(self) -> bool:
        return self.value > 0


@dataclass(frozen=True, slots=True)
class Exponential(Distribution):
    """Exponential with the given ``mean`` (> 0); variance ``mean**2``.

    The ``mean`` field is the ``mean`` property of the other distributions.
    """

    mean: float  # type: ignore[assignment]
    kind: ClassVar[str] = "exponential"

    def __post_init__(self) -> None:
        self._as_floats()
        _above("mean", self.mean, 0.0)

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.exponential(self.mean))

    def sample_many(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.exponential(self.mean, n)

    @property
    def variance(self) -> float:
        return self.mean**2


@dataclass(frozen=True, slots=True)
class LogNormal(Distribution):
    """Log-normal given by its ``median`` (> 0, = exp(mu)) and ``sigma`` (>= 0, of the log)."""

    median: float
    sigma: float
    kind: ClassVar[str] = "lognormal"

    def __post_init__(self) -> None:
        self._as_floats()
        _above("median", self.median, 0.0)
        _at_least("sigma", self.sigma, 0.0)

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.lognormal(math.log(self.median), self.sigma))

    def sampler(self, rng: np.random.Generator) -> Callable[[], float]:
        # log(median) once; parameters as 0-d float64 arrays, which numpy takes unconverted.
        lognormal = rng.lognormal
        mu = np.array(math.log(self.median), dtype=float)
        sigma = np.array(self.sigma, dtype=float)
        return lambda: lognormal(mu, sigma)

    def sample_many(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.lognormal(math.log(self.median), self.sigma, n)

    @property
    def mean(self) -> float:
        return self.median * math.exp(self.sigma**2 / 2)

    @property
    def variance(self) -> float:
        s2 = self.sigma**2
        return math.expm1(s2) * self.median**2 * math.exp(s2)


@dataclass(frozen=True, slots=True)
class Uniform(Distribution):
    """Uniform on ``[low, high]`` with ``0 <= low <= high``."""

    low: float
    high: float
    kind: ClassVar[str] = "uniform"

    def __post_init__(self) -> None:
        self._as_floats()
        _at_least("low", self.low, 0.0)
        if self.high < self.low:
            raise ParameterError("high", f"must be >= low ({self.low!r}), got {self.high!r}")

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(self.low, self.high))

    def sample_many(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, n)

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2

    @property
    def variance(self) -> float:
        return (self.high - self.low) ** 2 / 12

    @property
    def positive(self) -> bool:
        return self.low > 0


@dataclass(frozen=True, slots=True)
class Pareto(Distribution):
    """Classic (type I) Pareto: support ``[scale, inf)``, tail index ``shape`` (alpha > 0).

    Mean ``alpha*scale/(alpha-1)`` for alpha > 1 (else inf); variance
    ``scale**2*alpha/((alpha-1)**2*(alpha-2))`` for alpha > 2 (else inf).
    """

    scale: float
    shape: float
    kind: ClassVar[str] = "pareto"

    def __post_init__(self) -> None:
        self._as_floats()
        _above("scale", self.scale, 0.0)
        _above("shape", self.shape, 0.0)

    def sample(self, rng: np.random.Generator) -> float:
        # numpy's pareto is the Lomax (type II) on [0, inf); shift and scale to type I.
        return float(self.scale * (1.0 + rng.pareto(self.shape)))

    def sampler(self, rng: np.random.Generator) -> Callable[[], float]:
        pareto = rng.pareto
        scale = self.scale
        shape = np.array(self.shape, dtype=float)
        return lambda: scale * (1.0 + pareto(shape))

    def sample_many(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.scale * (1.0 + rng.pareto(self.shape, n))

    @property
    def mean(self) -> float:
        a = self.shape
        return math.inf if a <= 1 else a * self.scale / (a - 1)

    @property
    def variance(self) -> float:
        a = self.shape
        return math.inf if a <= 2 else self.scale**2 * a / ((a - 1) ** 2 * (a - 2))


# name -> (class, TOML parameter names in constructor order)
DISTRIBUTIONS: dict[str, tuple[type[Distribution], tuple[str, ...]]] = {
    "fixed": (Fixed, ("value",)),
    "exponential": (Exponential, ("mean",)),
    "lognormal": (LogNormal, ("median", "sigma")),
    "uniform": (Uniform, ("low", "high")),
    "pareto": (Pareto, ("scale", "shape")),
}


MIN_PARAMETER = 1e-9
"""Smallest non-zero location/scale parameter a scenario may give (smaller ones underflow:
a total stake or a bandwidth of 0)."""
MAX_PARAMETER = 1e12
"""Largest location/scale parameter a scenario may give (seconds, MB, Mbit/s, stake)."""
MAX_SIGMA = 10.0
"""Largest log-normal ``sigma`` a scenario may give (e^(sigma^2/2) must stay finite)."""
MIN_SHAPE = 0.1
"""Smallest Pareto ``shape`` a scenario may give (smaller ones draw infinity)."""

_SCALE_PARAMS = ("value", "mean", "median", "low", "high", "scale")


def _bound_problem(param: str, value: float) -> str | None:
    """What is wrong with a parsed parameter against the scenario bounds, or None."""
    if param in _SCALE_PARAMS:
        if value == 0 or MIN_PARAMETER <= value <= MAX_PARAMETER:
            return None
        zero = "0 or " if param in ("value", "low", "high") else ""
        return f"must be {zero}in [{MIN_PARAMETER:g}, {MAX_PARAMETER:g}], got {value!r}"
    if param == "sigma" and value > MAX_SIGMA:
        return f"must be <= {MAX_SIGMA:g}, got {value!r}"
    if param == "shape" and value < MIN_SHAPE:
        return f"must be >= {MIN_SHAPE:g}, got {value!r}"
    return None


def _short(value: object) -> str:
    """``repr(value)`` cut to 60 characters, for a one-line message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_distribution(value: object, path: str) -> Distribution:
    """A distribution from its TOML form: a bare number (``Fixed``) or a ``{dist=...}`` table.

    Raises ``ScenarioError`` whose key path is ``path`` (or ``path.param`` for a bad
    parameter); the caller adds the file name with ``ScenarioError.with_source``.
    """
    if _is_number(value):
        try:
            fixed = Fixed(value)  # type: ignore[arg-type]
        except ParameterError as exc:
            raise ScenarioError(exc.problem, path=path) from None
        problem = _bound_problem("value", fixed.value)
        if problem:
            raise ScenarioError(problem, path=path)
        return fixed
    if not isinstance(value, Mapping):
        raise ScenarioError(
            f"must be a number or a distribution table like {{dist=\"exponential\", mean=5.0}}, "
            f"got {_short(value)}",
            path=path,
        )
    name = value.get("dist")
    if not isinstance(name, str) or name not in DISTRIBUTIONS:
        raise ScenarioError(
            f"unknown distribution {_short(name)}; expected one of {', '.join(DISTRIBUTIONS)}"
            if "dist" in value
            else f"missing 'dist' (one of {', '.join(DISTRIBUTIONS)})",
            path=f"{path}.dist",
        )
    cls, params = DISTRIBUTIONS[name]  # type: ignore[index]
    for key in value:
        if key != "dist" and key not in params:
            raise ScenarioError(
                f"unknown parameter for {name}; expected {', '.join(params)}",
                path=f"{path}.{key}",
            )
    args: list[float] = []
    for param in params:
        if param not in value:
            raise ScenarioError(f"missing parameter of {name}", path=f"{path}.{param}")
        raw = value[param]
        if not _is_number(raw):
            raise ScenarioError(f"must be a number, got {_short(raw)}", path=f"{path}.{param}")
        args.append(float(raw))
    try:
        dist = cls(*args)  # type: ignore[call-arg]
    except ParameterError as exc:
        raise ScenarioError(exc.problem, path=f"{path}.{exc.param}") from None
    for param, arg in zip(params, args, strict=True):
        problem = _bound_problem(param, arg)
        if problem:
            raise ScenarioError(problem, path=f"{path}.{param}")
    return dist


def distribution_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) fragment for a distribution value, as ``$defs`` entry."""
    num = {"type": "number", "maximum": MAX_PARAMETER}

    def table(name: str, props: dict[str, dict[str, Any]], doc: str) -> dict[str, Any]:
        return {
            "type": "object",
            "description": doc,
            "properties": {"dist": {"const": name}, **props},
            "required": ["dist", *props],
            "additionalProperties": False,
        }

    return {
        "description": "A bare number (fixed value) or a distribution table; a location or "
        f"scale parameter other than 0 is at least {MIN_PARAMETER:g} (checked on loading).",
        "oneOf": [
            {**num, "minimum": 0, "description": "fixed value"},
            table("fixed", {"value": {**num, "minimum": 0}}, "always value"),
            table("exponential", {"mean": {**num, "exclusiveMinimum": 0}}, "exponential"),
            table(
                "lognormal",
                {"median": {**num, "exclusiveMinimum": 0},
                 "sigma": {"type": "number", "minimum": 0, "maximum": MAX_SIGMA}},
                "log-normal by median (= exp(mu)) and sigma of the log",
            ),
            table(
                "uniform",
                {"low": {**num, "minimum": 0}, "high": {**num, "minimum": 0}},
                "uniform on [low, high]",
            ),
            table(
                "pareto",
                {"scale": {**num, "exclusiveMinimum": 0},
                 "shape": {"type": "number", "minimum": MIN_SHAPE}},
                "classic Pareto, support [scale, inf), tail index shape",
            ),
        ],
    }
