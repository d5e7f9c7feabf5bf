"""`simsearch` command line: embed a dataset, curate, train, process, evaluate.

A command's module is imported only when that command runs (`COMMANDS` in
simsearch/cli/commands.py), so `simsearch --help` is quick and loads no library.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from simsearch import __version__
from simsearch.cli.commands import COMMANDS

log = logging.getLogger("simsearch")


def _command_in(argv: list[str]) -> str | None:
    """The command named on the command line (the first word that is not an option), if any."""
    first = next((word for word in argv if not word.startswith("-")), None)
    return first if first in COMMANDS else None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser for `argv`: the full parser of the command it names (its module imported), and
    a one-line entry for every other command (enough for the command list and its errors)."""
    parser = argparse.ArgumentParser(prog="simsearch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"simsearch {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or info logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    command = _command_in(sys.argv[1:] if argv is None else argv)
    module = COMMANDS[command][0] if command else None
    for name, (where, help_text) in COMMANDS.items():
        if where == module:
            if name == command:
                importlib.import_module(f"simsearch.cli.{module}").add_commands(sub)
        else:
            sub.add_parser(name, help=help_text)  # listed; its module defines it when it runs
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    from simsearch.util.errors import SimSearchError
    from simsearch.util.memory import keep_freed_memory

    keep_freed_memory()
    quiet = getattr(args, "quiet", False)
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(levelname)s: %(message)s")
    try:
        return args.handler(args, quiet)
    except SimSearchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished work is saved", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
