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

# Subcommand modules, in the order `rvmkit --help` lists them. Each imports its heavy dependencies
# (torch, tensorrt, ray) only when run, so a missing extra is reported by the command that needs it.
COMMANDS = ["weights", "export", "convert", "verify", "check", "profile", "build-engine", "matte",
            "bench", "batch", "serve"]


def _version() -> str:
    import rvmkit

    return rvmkit.__version__


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (the usage itself is one `--help` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="rvmkit", description="RobustVideoMatting: export, deploy and run video matting."
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"rvmkit {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMANDS:
        importlib.import_module(f"rvmkit.cli.{name.replace('-', '_')}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except RvmkitError as exc:
        if debug:
            raise
        print(f"rvmkit: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        if debug:
            raise
        print("rvmkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
