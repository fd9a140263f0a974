"""Shared argparse value types and the one-line error printer for the CLI.

Two families of number types, kept apart on purpose:

* **operator flags** (``gov``, ``explorer``, ``ops``): ASCII digits only (no ``_``, no
  non-ASCII digits), integers up to ``MAX_INT`` (2**63 - 1, what the SQLite store holds).
  Messages read ``not an integer: '...'``, ``must be >= 0, got -1``.
* **simulator flags** (``run``, ``sweep``, ``check``): what Python's ``int``/``float``
  accept (``--seed`` also takes ``0x...``), no upper cap. Messages read
  ``expected an integer, got '...'``, ``must be at least 1, got 0``.

argparse prefixes a type's message with the flag (``argument --id: ...``) and exits 2.
Imports only the standard library.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import TypeVar

EXIT_USAGE = 2
MAX_INT = 2**63 - 1  # the largest integer the SQLite store can hold
EXECUTORS = ("serial", "process", "dask")
"""``releasesim.sim.executors.EXECUTORS``, repeated here (a test keeps them equal) so that
building the parser does not import the executors, which import pandas."""

T = TypeVar("T")


def _parse(text: str, convert: Callable[[str], T], message: str, *, ascii_only: bool) -> T:
    """``convert(text)``, or ``ArgumentTypeError(message.format(repr(text)))``.

    ``ascii_only``: refuse what Python's int()/float() accept beyond plain ASCII input
    (non-ASCII digits such as '١', and '_' separators).
    """
    try:
        if ascii_only and not (text.isascii() and "_" not in text):
            raise ValueError
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(message.format(repr(text))) from None


# -- operator flags (gov, explorer, ops) ---------------------------------------------------
def strict_int(text: str) -> int:
    """An ASCII decimal integer that fits the store (|value| <= 2**63 - 1)."""
    value = _parse(text, int, "not an integer: {}", ascii_only=True)
    if abs(value) > MAX_INT:
        raise argparse.ArgumentTypeError(f"must be <= {MAX_INT}, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """``strict_int`` >= 0."""
    value = strict_int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def strict_positive_int(text: str) -> int:
    """``strict_int`` >= 1 (a negative value is reported as ``must be >= 0``)."""
    value = non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be >= 1, got 0")
    return value


def port(text: str) -> int:
    """A TCP port, 0..65535 (0: the system picks a free one)."""
    value = strict_int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0..65535, got {value}")
    return value


def finite_non_negative(text: str) -> float:
    """An ASCII decimal number, finite and >= 0 (weights, quorums, seconds)."""
    value = _parse(text, float, "not a number: {}", ascii_only=True)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def positive_seconds(text: str) -> float:
    """``finite_non_negative`` > 0."""
    value = finite_non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be > 0 seconds")
    return value


def non_empty(text: str) -> str:
    """A path or name given explicitly must not be empty (``--state "$UNSET"``)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


# -- simulator flags (run, sweep, check) ---------------------------------------------------
def positive_int(text: str) -> int:
    """An integer >= 1 (replications, workers)."""
    value = _parse(text, int, "expected an integer, got {}", ascii_only=False)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def seed(text: str) -> int:
    """A non-negative integer, decimal or with a ``0x``/``0o``/``0b`` prefix."""
    value = _parse(
        text, lambda t: int(t, 0), "expected a non-negative integer, got {}", ascii_only=False
    )
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be non-negative, got {value}")
    return value


def probability(text: str) -> float:
    """A number in [0, 1]."""
    value = _parse(text, float, "expected a number, got {}", ascii_only=False)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {value}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (an SLO that may be 0: ``--max-stall-s 0``, no stall at all)."""
    value = _parse(text, float, "expected a number, got {}", ascii_only=False)
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = _parse(text, float, "expected a number, got {}", ascii_only=False)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


# -- usage and errors ------------------------------------------------------------------------
def show_usage(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """The handler of a bare command group (``releasesim``, ``releasesim gov``): print the
    group's help, listing its commands, on stderr and return exit code 2."""

    def usage(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return EXIT_USAGE

    return usage


def fail(exc: BaseException, exit_code: int | None = None) -> int:
    """Print ``exc`` as one ``error: ...`` line on stderr; return the exit code.

    The code is ``exit_code`` when given, else the error's own ``exit_code`` (2 without one).
    """
    message = " ".join(str(exc).split()) or type(exc).__name__
    print(f"error: {message}", file=sys.stderr)
    return int(getattr(exc, "exit_code", EXIT_USAGE) if exit_code is None else exit_code)


__all__ = [
    "EXECUTORS",
    "EXIT_USAGE",
    "MAX_INT",
    "fail",
    "finite_non_negative",
    "non_empty",
    "non_negative_float",
    "non_negative_int",
    "port",
    "positive_float",
    "positive_int",
    "positive_seconds",
    "probability",
    "seed",
    "show_usage",
    "strict_int",
    "strict_positive_int",
]
