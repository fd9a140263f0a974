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
    explorer,
    gov,
    gov_keys,
    gov_release,
    ops,
    reports,
    run,
)
from releasesim.cli.args import show_usage
from releasesim.model.errors import ReleasesimError

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a program killed by it


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


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
    for module in (demo, run, explorer, ops, reports, check, certify):
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)  # --help and --version print here
        try:
            code = int(args.func(args) or 0)
        except ReleasesimError as exc:
            print(f"error: {exc}", file=sys.stderr)
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
