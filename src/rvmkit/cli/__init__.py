"""`rvmkit` command line: one module per subcommand, each exposing `register(subparsers)`.

A subcommand module adds its parser and sets `func(args) -> int`. Errors meant for users are
`RvmkitError`: printed as one line, no traceback unless `--debug`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn

from rvmkit.errors import RvmkitError
from rvmkit.signals import TERMINATING, Terminated, handling, interrupt

# Subcommand modules, in the order `rvmkit --help` lists them. Each imports its heavy dependencies
# (torch, tensorrt, ray) only when run, so a missing extra is reported by the command that needs it.
COMMANDS = ["weights", "export", "convert", "verify", "check", "profile", "build-engine", "matte",
            "bench", "batch", "serve", "live", "export-web"]


class _Version(argparse.Action):
    """--version, looked up only when asked (importlib.metadata costs ~40 ms of every start-up)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> NoReturn:
        import rvmkit

        print(f"rvmkit {rvmkit.__version__}")
        parser.exit()


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (the usage itself is one `--help` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; given `argv` naming a command, only that command's module is imported (start-up
    time: `rvmkit matte` need not import the export, serve or batch modules just to parse)."""
    parser = Parser(
        prog="rvmkit", description="RobustVideoMatting: export, deploy and run video matting."
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--version", action=_Version)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in _commands_named(argv):
        importlib.import_module(f"rvmkit.cli.{name.replace('-', '_')}").register(subparsers)
    return parser


def _commands_named(argv: list[str] | None) -> list[str]:
    """[the command] when the first word after the global flags is one, else all (help, errors)."""
    first = next((word for word in argv or () if not word.startswith("-")), None)
    return [first] if first in COMMANDS else COMMANDS


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        with handling(TERMINATING, interrupt, once=True):  # SIGTERM/SIGHUP unwind as Ctrl-C does
            args = build_parser(argv).parse_args(argv)
            return int(args.func(args) or 0)
    except RvmkitError as exc:
        if debug:
            raise
        print(f"rvmkit: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Terminated as exc:
        if debug:
            raise
        print(f"rvmkit: terminated by {exc}", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        if debug:
            raise
        print("rvmkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
