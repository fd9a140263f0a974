"""Experiment designs over uncertain knobs: ``--vary`` specs, LHS, Sobol and Morris samples.

A **knob spec** is the text of one ``--vary`` option:

- ``KNOB=LOW..HIGH`` -- a range. When both ends are integers written without ``.`` or an
  exponent (``fleet.nodes=100..1000``) the knob is an **integer** knob: every integer in
  ``[LOW, HIGH]`` is equally likely. Otherwise (``signers.threshold_frac=0.5..0.9``,
  ``mirrors.latency.median=1.0..5``, ``x=1e-3..1``) it is a **float** knob, uniform on
  ``[LOW, HIGH]``. Write ``1.0..5`` to vary a float knob over whole-number ends.
- ``KNOB=a,b,c`` -- a **categorical** knob: each value equally likely. Values are kept as
  the strings written (``rollout.strategy=canary,all_at_once``, ``x=1,2,5``); the
  override that applies one reads it as a TOML value when it parses as one (``--set``).

A malformed spec raises ``ScenarioError`` (``sim.errors``) with a one-line message naming
the ``--vary`` item: no ``=``, an empty name, a number that is not a finite number,
``LOW > HIGH``, ``LOW == HIGH``, an empty, repeated or single categorical value, more than
``MAX_CATEGORIES`` values, the same knob varied twice. Whether the knob exists in the
scenario is *not* checked here (the caller checks it against the scenario schema).

Every design is drawn in the **unit hypercube** ``[0, 1]^D`` and mapped onto the knobs:
a float knob to ``LOW + u (HIGH - LOW)``; an integer knob to
``LOW + floor(u (HIGH - LOW + 1))`` (clipped to ``HIGH`` for ``u = 1``), so every integer
is equally likely for uniform ``u``; a categorical knob to category
``floor(u m)`` of its ``m`` values (clipped likewise). The unit matrix is what SALib's
estimators read, and its ``problem`` dict has bounds ``[0, 1]`` for every knob, so Morris
elementary effects are in outcome units *per whole knob range*.

Designs (``make_design``; ``design_size`` says how many points one has):

- ``lhs`` -- Latin hypercube (McKay, Beckman & Conover 1979), own implementation: each
  knob's ``N`` values fall one in each of ``N`` equal strata of ``[0, 1)``, strata paired
  across knobs by independent random permutations; ``N`` points. Feeds scenario discovery.
- ``sobol`` -- Saltelli's scheme (Saltelli et al. 2010, "Variance based sensitivity
  analysis of model output", Comput. Phys. Commun. 181:259-270) via
  ``SALib.sample.sobol.sample`` (scrambled Sobol' sequence, ``calc_second_order=False``):
  ``N`` base samples give ``N (D + 2)`` points, in the block order
  ``SALib.analyze.sobol`` expects. ``N`` should be a power of 2 (the balance properties of
  Sobol' points need it); another ``N`` is accepted with a note in ``Design.notes``.
- ``morris`` -- Morris (1991) one-at-a-time trajectories on a 4-level grid via
  ``SALib.sample.morris.sample`` (``num_levels=4``, Campolongo, Cariboni & Saltelli 2007
  for μ*): ``N`` trajectories give ``N (D + 1)`` points. On the 4-level grid an integer or
  categorical knob takes at most 4 distinct values.

Every design is a pure function of ``(knobs, kind, N, seed)``. ``sobol`` and ``morris``
need SALib (``pip install 'releasesim[analysis]'``); without it they raise ``RunError``
(one line, exit code 2); ``lhs`` needs numpy only.

Imports ``sim.errors`` and ``sim.executors`` (for ``RunError``); never ``reports``.
"""

from __future__ import annotations

import copy
import math
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from releasesim.sim.errors import ScenarioError
from releasesim.sim.executors import RunError

try:  # optional extra: releasesim[analysis]
    from SALib.sample import morris as salib_morris
    from SALib.sample import sobol as salib_sobol
except ImportError:  # pragma: no cover - exercised only without the extra
    salib_morris = None
    salib_sobol = None

DesignKind = Literal["lhs", "sobol", "morris"]
DESIGNS: tuple[str, ...] = ("lhs", "sobol", "morris")
KnobKind = Literal["int", "float", "categorical"]
MAX_CATEGORIES = 50
MORRIS_LEVELS = 4
ANALYSIS_INSTALL_HINT = "pip install 'releasesim[analysis]'"

_INT_RE = re.compile(r"^[+-]?\d+$")
_NUMBER_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


# --------------------------------------------------------------------------------------
# Knob specs
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Knob:
    """One varied knob: ``name`` (a scenario key path), its kind and its range or values.

    ``low``/``high`` are set for ``int`` and ``float`` knobs (ints for ``int``), ``values``
    for ``categorical`` knobs (strings, in the order written).
    """

    name: str
    kind: KnobKind
    low: float | int | None = None
    high: float | int | None = None
    values: tuple[str, ...] = ()

    @property
    def spec(self) -> str:
        """The canonical ``--vary`` text of this knob."""
        if self.kind == "categorical":
            return f"{self.name}={','.join(self.values)}"
        return f"{self.name}={self.low!r}..{self.high!r}"

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        """Map unit-interval values ``u`` onto this knob (see the module docstring)."""
        u = np.asarray(u, dtype=float)
        if self.kind == "float":
            assert self.low is not None and self.high is not None
            return self.low + u * (self.high - self.low)
        if self.kind == "int":
            assert self.low is not None and self.high is not None
            count = int(self.high) - int(self.low) + 1
            step = np.minimum(np.floor(u * count), count - 1).astype(np.int64)
            return int(self.low) + step
        index = np.minimum(np.floor(u * len(self.values)), len(self.values) - 1)
        return np.asarray(self.values, dtype=object)[index.astype(np.int64)]

    def override(self, value: Any) -> str:
        """The ``--set`` item (``key.path=value``) that applies ``value`` of this knob."""
        if self.kind == "float":
            return f"{self.name}={float(value)!r}"
        if self.kind == "int":
            return f"{self.name}={int(value)}"
        return f"{self.name}={value}"


def _number(text: str, which: str, item: str) -> tuple[float, bool]:
    """``text`` as a finite float, and whether it is written as an integer."""
    where = f"--vary {item}"
    if not _NUMBER_RE.match(text):
        try:
            value = float(text)
        except ValueError:
            raise ScenarioError(f"{which} {text!r} is not a number", path=where) from None
        if not math.isfinite(value):
            raise ScenarioError(f"{which} {text!r} must be a finite number", path=where)
        raise ScenarioError(f"{which} {text!r} is not a plain number", path=where)
    value = float(text)
    if not math.isfinite(value):
        raise ScenarioError(f"{which} {text!r} must be a finite number", path=where)
    return value, bool(_INT_RE.match(text))


def parse_knob(item: str) -> Knob:
    """One ``--vary`` item (``KNOB=LOW..HIGH`` or ``KNOB=a,b,c``) as a ``Knob``."""
    where = f"--vary {item}"
    name, sep, raw = item.partition("=")
    name, raw = name.strip(), raw.strip()
    if not sep:
        raise ScenarioError("expected KNOB=LOW..HIGH or KNOB=a,b,c", path=where)
    if not name or any(ch.isspace() for ch in name):
        raise ScenarioError("the knob name is empty or has spaces", path=where)
    if ".." in raw:
        low_text, _, high_text = raw.partition("..")
        low, low_int = _number(low_text.strip(), "LOW", item)
        high, high_int = _number(high_text.strip(), "HIGH", item)
        if low > high:
            raise ScenarioError(f"LOW {low_text.strip()} is above HIGH {high_text.strip()}",
                                path=where)
        if low == high:
            raise ScenarioError("LOW equals HIGH; a fixed value belongs in --set", path=where)
        if low_int and high_int:
            return Knob(name, "int", int(low_text), int(high_text))
        return Knob(name, "float", low, high)
    values = tuple(v.strip() for v in raw.split(","))
    if not raw:
        raise ScenarioError("no values; expected LOW..HIGH or a,b,c", path=where)
    if any(not v for v in values):
        raise ScenarioError("an empty value in the list", path=where)
    if len(values) == 1:
        raise ScenarioError(
            f"one value {values[0]!r}; vary needs LOW..HIGH or at least two values a,b "
            "(a fixed value belongs in --set)", path=where)
    if len(values) > MAX_CATEGORIES:
        raise ScenarioError(f"{len(values)} values; at most {MAX_CATEGORIES}", path=where)
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ScenarioError(f"value {value!r} is listed twice", path=where)
        seen.add(value)
    return Knob(name, "categorical", values=values)


def parse_knobs(items: Iterable[str]) -> tuple[Knob, ...]:
    """Every ``--vary`` item as a ``Knob``; at least one, no knob twice."""
    knobs: list[Knob] = []
    seen: set[str] = set()
    for item in items:
        knob = parse_knob(item)
        if knob.name in seen:
            raise ScenarioError(f"knob {knob.name} is varied twice", path=f"--vary {item}")
        seen.add(knob.name)
        knobs.append(knob)
    if not knobs:
        raise ScenarioError("give at least one knob to vary (KNOB=LOW..HIGH)", path="--vary")
    return tuple(knobs)


# --------------------------------------------------------------------------------------
# Designs
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Design:
    """A drawn design: the knob values per point, the unit matrix and SALib's problem.

    ``points`` has one row per design point (index ``point``, ``0..n-1``) and one column
    per knob: ``int64`` for integer knobs, ``float64`` for float knobs, ``object`` (str)
    for categorical knobs. ``unit`` is the ``(n, D)`` unit-hypercube matrix the points
    were mapped from (what ``SALib.analyze.morris`` reads as ``X``); ``problem`` is the
    SALib problem dict (names, ``[0, 1]`` bounds), JSON-serialisable for a manifest.
    ``notes`` holds advice about the design (e.g. a Sobol ``N`` that is not a power of 2).
    """

    kind: DesignKind
    knobs: tuple[Knob, ...]
    samples: int
    seed: int
    points: pd.DataFrame
    unit: np.ndarray
    problem: dict[str, Any]
    notes: tuple[str, ...] = field(default=())

    @property
    def size(self) -> int:
        """The number of design points."""
        return len(self.points)

    def overrides(self, point: int) -> list[str]:
        """The ``--set`` items (``key.path=value``) that apply design point ``point``."""
        row = self.points.iloc[point]
        return [knob.override(row[knob.name]) for knob in self.knobs]


def salib_problem(knobs: Sequence[Knob]) -> dict[str, Any]:
    """SALib's problem dict for ``knobs``: their names with unit bounds."""
    return {"num_vars": len(knobs), "names": [k.name for k in knobs],
            "bounds": [[0.0, 1.0] for _ in knobs]}


def design_size(kind: str, samples: int, n_knobs: int) -> int:
    """How many points a design has: ``N``, ``N (D + 2)`` (sobol), ``N (D + 1)`` (morris)."""
    if kind == "sobol":
        return samples * (n_knobs + 2)
    if kind == "morris":
        return samples * (n_knobs + 1)
    return samples


def latin_hypercube(samples: int, dims: int, rng: np.random.Generator) -> np.ndarray:
    """An ``(samples, dims)`` Latin hypercube in ``[0, 1)``: one value per stratum per column.

    Column ``j`` is ``(perm_j + v_j) / samples`` with ``perm_j`` a random permutation of
    ``0..samples-1`` and ``v_j`` uniform on ``[0, 1)``.
    """
    out = np.empty((samples, dims))
    for j in range(dims):
        out[:, j] = (rng.permutation(samples) + rng.random(samples)) / samples
    return out


def _validate(kind: str, samples: int, seed: int) -> None:
    if kind not in DESIGNS:
        raise ScenarioError(f"unknown design {kind!r} (choose from {', '.join(DESIGNS)})",
                            path="--design")
    if isinstance(samples, bool) or not isinstance(samples, int | np.integer) or samples < 2:
        raise ScenarioError(f"must be an integer of at least 2, got {samples!r}",
                            path="--samples")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ScenarioError(f"must be a non-negative integer, got {seed!r}", path="seed")
    if kind in ("sobol", "morris") and (salib_sobol is None or salib_morris is None):
        raise RunError(f"--design {kind} needs SALib: {ANALYSIS_INSTALL_HINT}")


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def make_design(knobs: Sequence[Knob], kind: str, samples: int, seed: int) -> Design:
    """Draw a ``kind`` design with ``samples`` = ``N`` over ``knobs``, seeded by ``seed``.

    ``lhs``: ``N`` points. ``sobol``: ``N (D + 2)`` points; ``N`` should be a power of 2
    (a note says so otherwise). ``morris``: ``N`` trajectories, ``N (D + 1)`` points.
    The same arguments always give the same design.
    """
    _validate(kind, samples, seed)
    knobs = tuple(knobs)
    if not knobs:
        raise ScenarioError("give at least one knob to vary (KNOB=LOW..HIGH)", path="--vary")
    problem = salib_problem(knobs)
    notes: list[str] = []  # SALib adds keys to the problem it gets: it gets copies
    if kind == "lhs":
        unit = latin_hypercube(samples, len(knobs), np.random.default_rng(seed))
    elif kind == "sobol":
        if not _is_power_of_two(samples):
            lower = 1 << (samples.bit_length() - 1)
            notes.append(f"sobol: N={samples} is not a power of 2; the Sobol' sequence is "
                         f"balanced only for powers of 2 (e.g. {lower} or {2 * lower})")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # reported in notes instead
            unit = salib_sobol.sample(copy.deepcopy(problem), int(samples),
                                      calc_second_order=False, scramble=True, seed=int(seed))
    else:
        unit = salib_morris.sample(copy.deepcopy(problem), int(samples),
                                   num_levels=MORRIS_LEVELS, seed=int(seed))
    unit = np.asarray(unit, dtype=float)
    columns = {knob.name: knob.from_unit(unit[:, j]) for j, knob in enumerate(knobs)}
    points = pd.DataFrame(columns, index=pd.RangeIndex(len(unit), name="point"))
    for knob in knobs:
        dtype = {"int": "int64", "float": "float64", "categorical": object}[knob.kind]
        points[knob.name] = points[knob.name].astype(dtype)
    return Design(kind=kind, knobs=knobs, samples=int(samples), seed=int(seed),
                  points=points, unit=unit, problem=problem, notes=tuple(notes))
