"""Shared argparse value types and the one-line error printer for the CLI.

Two families of number types, kept apart on purpose:

* **operator flags** (``gov``, ``explorer``, ``ops``): ASCII digits only (no ``_``, no
  non-ASCII digits; an integer also takes no ``+`` sign and no surrounding whitespace, which
  ``int()`` would accept), integers up to ``MAX_INT`` (2**63 - 1, what the SQLite store holds).
  Messages read ``not an integer: '...'``, ``must be >= 0, got -1``.
* **simulator flags** (``run``, ``sweep``, ``check``): what Python's ``int``/``float``
  accept (``--seed`` also takes ``0x...``), no upper cap. Messages read
  ``expected an integer, got '...'``, ``must be at least 1, got 0``.

argparse prefixes a type's message with the flag (``argument --id: ...``) and exits 2.

Errors are printed by ``print_error`` (``fail`` and ``releasesim.cli.main`` use it): one line
whatever the message holds, every character that is not printable (newline, ESC, U+2028,
a surrogate from an argument that is not UTF-8, ...) shown as its Python escape
(``escape_unprintable``), so a path or URL in a message can neither break the line nor
drive the terminal, and printing cannot fail on any stderr encoding.
Imports only the standard library.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable
from typing import TypeVar

EXIT_USAGE = 2
MAX_INT = 2**63 - 1  # the largest integer the SQLite store can hold
MAX_NAME_CHARS = 255  # node ids, proposers, voters (a DNS host name has at most 253)
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
_PLAIN_INT = re.compile(r"-?[0-9]+")


def _plain_int(text: str) -> int:
    """``int(text)`` for an optional ``-`` and ASCII digits only: no sign ``+``, no
    surrounding whitespace, no ``_`` and no non-ASCII digit, all of which ``int()`` takes."""
    if _PLAIN_INT.fullmatch(text) is None:
        raise ValueError(text)
    return int(text)


def strict_int(text: str) -> int:
    """An integer of ASCII digits (an optional leading ``-``, nothing else: not ``+1``,
    `` 2``, ``2 ``, ``1_0`` or ``١``) that fits the store (|value| <= 2**63 - 1)."""
    value = _parse(text, _plain_int, "not an integer: {}", ascii_only=True)
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


def _plain_float(text: str) -> float:
    """``float(text)`` without the ``+`` sign and surrounding whitespace it would accept."""
    if text != text.strip() or text.startswith("+"):
        raise ValueError(text)
    return float(text)


def finite_non_negative(text: str) -> float:
    """An ASCII decimal number, finite and >= 0 (weights, quorums, seconds); no ``+`` sign,
    no surrounding whitespace."""
    value = _parse(text, _plain_float, "not a number: {}", ascii_only=True)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def positive_seconds(text: str) -> float:
    """``finite_non_negative`` > 0."""
    value = finite_non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be > 0 seconds")
    return value


def utf8_problem(text: str) -> str | None:
    """Why ``text`` is not valid UTF-8, or ``None``.

    On Linux an argument that is not valid UTF-8 (``$'\\xff'``) reaches Python as a
    surrogate-escaped ``str`` (byte 0xff becomes U+DCFF); such a string cannot be stored in
    the SQLite store, written as UTF-8 or printed on a UTF-8 terminal, so it is refused
    before anything is touched.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        what = (f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF
                else f"lone surrogate U+{code:04X}")
        return f"not valid UTF-8 ({what} at character {exc.start + 1})"
    return None


def escape_unprintable(text: str) -> str:
    """``text`` with every character that ``str.isprintable`` refuses (control characters
    such as newline, tab, ESC and C1, format characters such as U+202E, line and paragraph
    separators, surrogates, unassigned code points) written as its Python escape (``\\n``,
    ``\\x1b``, ``\\u202e``, ``\\udcff``), as ``repr`` does: one line, valid UTF-8."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def print_error(line: str) -> None:
    """Print ``line`` (``error: ...``) on stderr as one line (``escape_unprintable``); a
    stderr that cannot encode it (``PYTHONIOENCODING=ascii``) gets backslash escapes."""
    text = escape_unprintable(line)
    try:
        print(text, file=sys.stderr)
    except UnicodeEncodeError:
        print(text.encode("ascii", "backslashreplace").decode("ascii"), file=sys.stderr)


def non_empty(text: str) -> str:
    """A path or name given explicitly must not be empty (``--state "$UNSET"``) and must be
    valid UTF-8 (``utf8_problem``)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    problem = utf8_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


def name_problem(text: str) -> str | None:
    """Why ``text`` is not a valid name (node id, proposer, voter), or ``None``.

    A name is 1 to ``MAX_NAME_CHARS`` characters of valid UTF-8, each printable as
    ``str.isprintable`` defines it (no control character such as newline, tab, ESC or C1,
    no format character such as U+202E, no separator but the ASCII space, no unassigned or
    private-use code point), with no leading or trailing whitespace.
    """
    if not text.strip():
        return "must not be empty"
    problem = utf8_problem(text)
    if problem is not None:
        return problem
    if len(text) > MAX_NAME_CHARS:
        return f"must be at most {MAX_NAME_CHARS} characters, got {len(text)}"
    for position, char in enumerate(text, 1):
        if not char.isprintable():
            return (
                "must be printable: no control, format or separator character"
                f" (U+{ord(char):04X} at character {position})"
            )
    if text != text.strip():
        return "must not start or end with whitespace"
    return None


def actor_name(text: str) -> str:
    """A node id, proposer or voter given on the command line (``name_problem``)."""
    problem = name_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
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
    print_error(f"error: {message}")
    return int(getattr(exc, "exit_code", EXIT_USAGE) if exit_code is None else exit_code)


__all__ = [
    "EXECUTORS",
    "EXIT_USAGE",
    "MAX_INT",
    "MAX_NAME_CHARS",
    "actor_name",
    "escape_unprintable",
    "fail",
    "finite_non_negative",
    "name_problem",
    "non_empty",
    "non_negative_float",
    "non_negative_int",
    "port",
    "positive_float",
    "positive_int",
    "positive_seconds",
    "print_error",
    "probability",
    "seed",
    "show_usage",
    "strict_int",
    "strict_positive_int",
    "utf8_problem",
]
