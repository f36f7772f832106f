"""Output files: atomic writes (no half-written files) and early writability checks."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rvmkit.errors import RvmkitError, describe_path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_current_umask()


#: the longest file name (bytes) common filesystems take (ext4, XFS, btrfs, APFS, NTFS in UTF-16 units)
NAME_MAX = 255


def hidden_name(name: str, tag: str, reserve: int = 0) -> str:
    """'.{name}{tag}', the name cut (at a character boundary) so the whole, plus `reserve` bytes the
    caller appends, fits in NAME_MAX: a user's name that is itself near the limit must still get its
    temporary or hidden sibling."""
    room = NAME_MAX - 1 - len(tag.encode()) - reserve
    return f".{name.encode()[:max(room, 0)].decode(errors='ignore')}{tag}"


def temp_beside(target: Path, suffix: str = ".part") -> Path:
    """An empty temporary file next to `target` (same filesystem, so os.replace is atomic) with the
    permissions an ordinary new file gets, not mkstemp's private 0600."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = hidden_name(target.name, ".", reserve=8 + len(suffix.encode()))  # mkstemp adds 8 characters
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=prefix, suffix=suffix)
    os.close(fd)
    os.chmod(tmp, _FILE_MODE)
    return Path(tmp)


def write_atomically(target: Path, write: Callable[[Path], Any]) -> None:
    """Call write(tmp_path) then rename onto target, so readers never see a partial file; a failure to
    create, write or rename (disk full, a folder that vanished) is one line."""
    try:
        tmp = temp_beside(Path(target))
        try:
            write(Path(tmp))
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise RvmkitError(f"{describe_path(target)}: cannot write the output ({reason})") from None


def require_writable_output(path: str | os.PathLike, suffix: str | None = None) -> Path:
    """Fail early, in one line, when the file `path` cannot be written (before any long computation)
    or lacks `suffix` (e.g. ".onnx")."""
    path = Path(path)
    if suffix is not None and path.suffix.lower() != suffix:
        raise RvmkitError(f"{describe_path(path)}: output must be a {suffix} file")
    if path.is_dir():
        raise RvmkitError(f"{describe_path(path)}: is a directory, expected an output file")
    require_creatable(path)
    if path.exists() and not os.access(path, os.W_OK):
        raise RvmkitError(f"{describe_path(path)}: output is not writable (permission denied)")
    return path


def require_creatable(path: str | os.PathLike) -> None:
    """Fail in one line unless `path` (file or folder) can be created: its nearest existing ancestor
    must be a writable folder. Permissions pass for root where nothing can be created (/proc), so a
    probe file is made there and removed. Leaves nothing behind."""
    parent = Path(path).absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise RvmkitError(f"{describe_path(path)}: {describe_path(parent)} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RvmkitError(f"{describe_path(path)}: cannot be created: {describe_path(parent)} is not "
                          "writable (permission denied)")
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=".rvmkit-probe-")
    except OSError as error:
        raise RvmkitError(f"{describe_path(path)}: cannot create files in {describe_path(parent)} "
                          f"({error.strerror or type(error).__name__})") from None
    os.close(fd)
    os.unlink(probe)
