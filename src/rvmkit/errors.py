"""The one exception type users see: its message is a single actionable line."""

from __future__ import annotations

import os


class RvmkitError(Exception):
    """A problem the user can fix. The CLI prints `rvmkit: error: <message>` and exits non-zero."""

    exit_code = 2


def describe_path(path: str | os.PathLike) -> str:
    """Quote a path the same way in every message."""
    return f"'{os.fspath(path)}'"


def require_readable_file(path: str | os.PathLike, what: str = "file") -> str:
    """Return `path` as str, or raise RvmkitError naming what is wrong with it."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise RvmkitError(f"{describe_path(path)}: no such {what}")
    if os.path.isdir(path):
        raise RvmkitError(f"{describe_path(path)}: is a directory, expected a {what}")
    if not os.access(path, os.R_OK):
        raise RvmkitError(f"{describe_path(path)}: {what} is not readable (permission denied)")
    if os.path.getsize(path) == 0:
        raise RvmkitError(f"{describe_path(path)}: {what} is empty")
    return path


def first_line(exc: BaseException | str, default: str | None = None) -> str:
    """The first non-blank line of an exception's (or a recorded error's) text, since libraries raise
    multi-line messages; else `default` (the exception's type name when None)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if lines:
        return lines[0]
    if default is not None:
        return default
    return type(exc).__name__ if isinstance(exc, BaseException) else "failed"
