"""The ``releasesim`` (alias ``contract``) command line: wiring only.

Each command group lives in its own module, which exposes ``register(subparsers)``
adding its sub-commands; each sub-command sets ``func(args) -> int``. The ``gov`` group
is spread over three modules (``gov``: store, proposals and votes; ``gov_release``: fetch
and boot check; ``gov_keys``: key tooling), joined here. This module parses, dispatches,
and turns the project's error roots into one line on stderr with the documented exit code:
0 ok, 1 refused by the rules, 2 unusable input (a bare ``releasesim`` prints its help and
exits 2), 130 interrupted, 141 (128 + SIGPIPE) when the reader of stdout went away
(``releasesim ... | head``: the output ends quietly, as the Python docs' SIGPIPE recipe
says). No traceback is shown for a user's mistake.

Every error is one line (``releasesim.cli.args.print_error``: a newline, ESC or other
unprintable character of a path or URL in the message is shown escaped, ``\\n``). An
argument that is not valid UTF-8 (on Linux ``$'\\xff'`` arrives as a surrogate-escaped
``str``) is refused before the command runs, exit 2, naming its position and the byte
(``argument #2 '\\xff' is not valid UTF-8 (byte 0xff at character 1)``), unless the option's
own type refused it first with the option's name (``--state``, ``--node-id``, ...).

Start-up stays fast: the command modules import the simulator, pandas and matplotlib only
inside the commands that need them, so ``--help``, ``--version`` and the operator
commands (``gov``, ``explorer``, ``ops``) never load them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence

from releasesim import __version__
from releasesim.cli import (
    certify,
    check,
    demo,
    explore,
    explorer,
    gov,
    gov_keys,
    gov_release,
    ops,
    reports,
    run,
)
from releasesim.cli.args import print_error, show_usage, utf8_problem
from releasesim.model.errors import ReleasesimError

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a program killed by it


MAX_SHOWN_CHARS = 60  # of an argument quoted in an error


class UsageError(SystemExit):
    """A bad command line: ``main`` prints ``line`` (exit code 2)."""

    def __init__(self, line: str) -> None:
        super().__init__(EXIT_USAGE)
        self.line = line


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line with exit code 2 (through ``main``)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: error: {message}")


def argument_problem(argv: Sequence[str]) -> str | None:
    """Why an argument of ``argv`` is unusable before any parsing, or ``None``: the first
    one that is not valid UTF-8, by position (1-based, after the program name) and byte."""
    for position, argument in enumerate(argv, 1):
        problem = utf8_problem(argument)
        if problem is None:
            continue
        try:  # the bytes as the shell passed them: '\xff', not '\udcff'
            shown = repr(os.fsencode(argument))[1:]
        except UnicodeEncodeError:  # a lone surrogate no shell can pass (in-process callers)
            shown = repr(argument)
        if len(shown) > MAX_SHOWN_CHARS:
            shown = shown[: MAX_SHOWN_CHARS - 4] + "...'"
        return f"argument #{position} {shown} is {problem}"
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="releasesim",
        description="Simulate and operate a governance-secured release flow.",
    )
    parser.add_argument(
        "--version", action="version", version=f"releasesim {__version__}",
        help="print the version and exit",
    )
    sub = parser.add_subparsers(dest="group", metavar="COMMAND", parser_class=_Parser)
    parser.set_defaults(func=show_usage(parser))
    gov_commands = gov.register(sub)
    gov_release.register(gov_commands)
    gov_keys.register(gov_commands)
    for module in (demo, run, explore, explorer, ops, reports, check, certify):
        module.register(sub)
    return parser


def _stdout_gone() -> int:
    """The reader of stdout closed the pipe: point stdout at /dev/null so the interpreter's
    final flush cannot fail again (the Python docs' SIGPIPE recipe) and say nothing."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return EXIT_BROKEN_PIPE


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace | int:
    """The parsed arguments, or exit code 2 after printing why the command line is unusable.

    An option whose type checks UTF-8 (``non_empty``, ``actor_name``) names itself; any
    other argument that is not valid UTF-8 is refused here, by position, whether argparse
    took it (a scenario name) or stumbled on it (an unknown command or option).
    """
    problem = argument_problem(argv)
    try:
        args = parser.parse_args(argv)  # --help and --version print here
    except UsageError as exc:
        dedicated = "not valid UTF-8" in exc.line
        print_error(exc.line if problem is None or dedicated else f"error: {problem}")
        return EXIT_USAGE
    if problem is not None:
        print_error(f"error: {problem}")
        return EXIT_USAGE
    return args


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = _parse(parser, list(sys.argv[1:] if argv is None else argv))
        if isinstance(args, int):
            return args
        try:
            code = int(args.func(args) or 0)
        except ReleasesimError as exc:
            print_error(f"error: {exc}")
            code = exc.exit_code
        sys.stdout.flush()  # a closed pipe shows up here, not at interpreter exit
        return code
    except BrokenPipeError:
        return _stdout_gone()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
