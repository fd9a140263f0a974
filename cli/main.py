"""The ``releasesim`` (alias ``contract``) command line: wiring only.

Each command group lives in its own module, which exposes ``register(subparsers)``
adding its sub-commands; each sub-command sets ``func(args) -> int``. This module
parses, dispatches, and turns the project's error roots into one line on stderr with
the documented exit code (0 ok, 1 refused by the rules, 2 unusable input). No
traceback is shown for a user's mistake.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from releasesim.cli import explorer, gov, ops, reports, run
from releasesim.model.errors import ReleasesimError

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="releasesim",
        description="Simulate and operate a governance-secured release flow.",
    )
    sub = parser.add_subparsers(dest="group", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in (gov, run, explorer, ops, reports):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ReleasesimError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
