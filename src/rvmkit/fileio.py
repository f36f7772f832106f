"""Output files: temporary names, publishing without ever replacing what the user did not give up,
all outputs of a run or none, stale temporaries of dead runs, and early writability checks.

Every output is written under a hidden temporary name beside it, `.<name>.<pid>.rvmkit-tmp<suffix>`
(a file, or a folder of PNG frames), and only renamed to its final name once complete. `publish_all`
renames a run's outputs together: without `overwrite` a rename never replaces anything (a file that
appeared at the name during the run stays, and the run fails); if any output cannot be published the
ones already in place are withdrawn, so a run publishes all of its outputs or none.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rvmkit.errors import RvmkitError, describe_path

try:
    import fcntl
except ImportError:  # not POSIX: no advisory locks; the PID check alone guards live runs
    fcntl = None  # type: ignore[assignment]

TEMP_TAG = "rvmkit-tmp"
OLD_TAG = "rvmkit-old"  # an existing output set aside by --overwrite until the new one is in place


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_current_umask()


# ---------------------------------------------------------------------------------------------
# Temporary names


#: the longest file name (bytes) common filesystems take (ext4, XFS, btrfs, APFS, NTFS in UTF-16 units)
NAME_MAX = 255


def hidden_name(name: str, tag: str, reserve: int = 0) -> str:
    """'.{name}{tag}', the name cut (at a character boundary) so the whole, plus `reserve` bytes the
    caller appends, fits in NAME_MAX: a user's name that is itself near the limit must still get its
    temporary or hidden sibling."""
    room = NAME_MAX - 1 - len(tag.encode()) - reserve
    return f".{name.encode()[:max(room, 0)].decode(errors='ignore')}{tag}"


def _hidden_name(target: Path, tag: str, serial: int = 0) -> Path:
    pid = f"{os.getpid()}-{serial}" if serial else str(os.getpid())
    return target.with_name(hidden_name(target.name, f".{pid}.{tag}{target.suffix}"))


def make_temp(target: str | os.PathLike, folder: bool = False) -> Path:
    """Create, exclusively, the empty hidden temporary file (or folder) for `target` beside it (same
    filesystem, so the final rename is atomic), with the permissions an ordinary new file gets."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for serial in range(1000):  # a name of our PID exists: another output of this process, or a dead one's
        temp = _hidden_name(target, TEMP_TAG, serial)
        try:
            if folder:
                os.mkdir(temp)
            else:
                os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE))
            return temp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "too many temporary files", os.fspath(target))


def temp_beside(target: str | os.PathLike) -> Path:
    """An empty temporary file for `target` (see `make_temp`)."""
    return make_temp(target)


def temp_pattern(target: Path) -> re.Pattern[str]:
    """Exactly the names `make_temp` gives `target`'s temporaries; group 1 is the PID."""
    return re.compile(rf"\.{re.escape(target.name)}\.(\d+)(?:-\d+)?\.{TEMP_TAG}{re.escape(target.suffix)}")


def lock_temp(temp: Path) -> int | None:
    """Hold an advisory lock on our temporary file or folder while it lives (close the returned fd to
    release it): PIDs are per machine, so on a folder shared between machines the lock is what tells
    another machine's cleanup that the temporary is still in use. None where locks are unavailable."""
    if fcntl is None:
        return None
    try:
        fd = os.open(temp, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def release_lock(fd: int | None) -> None:
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass


def _pid_running(pid: int) -> bool:
    """True unless the process is certainly gone (unknown counts as running: never touch its files)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError, ValueError):
        return True
    return True


def _locked_by_someone(path: Path) -> bool:
    if fcntl is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return True  # cannot tell: leave it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False  # the filesystem has no locks: the PID check decides
    finally:
        os.close(fd)
    return False


def remove_stale_temps(target: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of `target` that runs killed outright (SIGKILL, power loss) left beside
    it: only names of exactly our pattern, whose PID is no running process on this machine and which
    no process holds locked. A live run's temporaries, and set-aside old outputs, are never touched.
    Returns what was removed."""
    target = Path(target)
    pattern = temp_pattern(target)
    try:
        names = os.listdir(target.parent)
    except OSError:
        return []
    removed, prefix = [], f".{target.name}."
    for name in names:
        match = pattern.fullmatch(name) if name.startswith(prefix) else None
        if match is None or int(match[1]) == os.getpid() or _pid_running(int(match[1])):
            continue
        path = target.parent / name
        try:
            mode = path.lstat().st_mode
        except OSError:
            continue
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)) or _locked_by_someone(path):
            continue
        try:
            shutil.rmtree(path) if stat.S_ISDIR(mode) else path.unlink()
        except OSError:
            continue
        removed.append(path)
    return removed


# ---------------------------------------------------------------------------------------------
# Renames that never replace


def _load_renameat2() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # glibc < 2.28, musl builds without it
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_RENAMEAT2 = _load_renameat2()
_AT_FDCWD, _RENAME_NOREPLACE = -100, 1
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP}
_OCCUPIED = {errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR}


def rename_no_replace(source: Path, target: Path) -> None:
    """Rename `source` to `target`, raising FileExistsError rather than replacing anything there.

    Linux: renameat2(RENAME_NOREPLACE), atomic. Elsewhere, or on a filesystem without it: a file is
    hard-linked then its old name removed (the link fails if the name is taken); a folder is renamed,
    which the kernel refuses onto a file or a non-empty folder (an empty folder, holding nothing, may
    be taken)."""
    if _RENAMEAT2 is not None:
        if _RENAMEAT2(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), _RENAME_NOREPLACE) == 0:
            return
        code = ctypes.get_errno()
        if code not in _UNSUPPORTED:
            raise _os_error(code, target)
    if os.path.isdir(source) and not os.path.islink(source):
        if os.path.lexists(target) and not _is_empty_folder(target):
            raise _os_error(errno.EEXIST, target)
        _rename_into_empty(source, target)
        return
    try:
        os.link(source, target, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError:  # no hard links here (FAT, some network filesystems): reserve the name, then rename
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE))
        os.replace(source, target)
        return
    os.unlink(source)


def _rename_into_empty(source: Path, target: Path) -> None:
    """os.rename of a folder onto an absent name or an empty folder; anything else there is refused."""
    try:
        os.rename(source, target)
    except OSError as error:
        if error.errno in _OCCUPIED:
            raise _os_error(errno.EEXIST, target) from None
        raise


def _os_error(code: int, path: Path) -> OSError:
    return OSError(code, os.strerror(code), os.fspath(path))


def _is_empty_folder(path: Path) -> bool:
    try:
        return path.is_dir() and not path.is_symlink() and not any(path.iterdir())
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# Publishing a run's outputs: all or none


@dataclass
class Staged:
    """A finished output under its temporary name, waiting to be published at `target`.

    `into_empty_folder`: an existing empty folder at `target` may be taken without overwrite (PNG
    frames). `recheck(target)` runs just before an existing target is replaced (with overwrite), to
    refuse what changed during the run. `lock` is the fd from `lock_temp`, released once published."""

    temp: Path
    target: Path
    into_empty_folder: bool = False
    recheck: Callable[[Path], None] | None = None
    lock: int | None = None


@dataclass
class _Published:
    staged: Staged
    identity: tuple[int, int]
    backup: Path | None  # the replaced output, kept until all are in (overwrite)
    backup_is_link: bool = False


def _occupied(item: Staged) -> bool:
    if not os.path.lexists(item.target):
        return False
    return not (item.into_empty_folder and _is_empty_folder(item.target))


def _identity(path: Path) -> tuple[int, int]:
    info = path.lstat()
    return info.st_dev, info.st_ino


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def publish_all(staged: list[Staged], overwrite: bool = False) -> None:
    """Rename every staged temporary onto its target: all, or (on any failure) none.

    Without `overwrite` nothing at a target is ever replaced: a name taken during the run is a
    one-line error. With `overwrite` the old outputs are set aside until every new one is in, then
    deleted; on failure they are put back. Errors are one line naming the output. Targets go in path
    order, so of two runs publishing the same outputs at once exactly one gets them all."""
    staged = sorted(staged, key=lambda item: os.fspath(item.target.absolute()))
    done: list[_Published] = []
    current: Staged | None = None
    try:
        if not overwrite:
            for current in staged:  # refuse before publishing anything, in the usual case
                if _occupied(current):
                    raise _os_error(errno.EEXIST, current.target)
        for current in staged:
            done.append(_publish_one(current, overwrite))
    except BaseException as error:
        _roll_back(done)
        if isinstance(error, OSError) and current is not None:
            raise _publish_error(error, current.target, overwrite) from None
        raise
    finally:
        for item in staged:
            release_lock(item.lock)
            item.lock = None
    for published in done:
        if published.backup is not None:
            _remove(published.backup)


def _publish_one(item: Staged, overwrite: bool) -> _Published:
    identity = _identity(item.temp)
    backup, is_link = None, False
    if overwrite and _occupied(item):
        _require_same_kind(item)
        if item.recheck is not None:
            item.recheck(item.target)
        backup, is_link = _set_aside(item.target)
    try:
        if is_link:
            os.replace(item.temp, item.target)  # a hard-linked backup: the name never goes missing
        elif item.into_empty_folder and _is_empty_folder(item.target):
            _rename_into_empty(item.temp, item.target)
        else:
            rename_no_replace(item.temp, item.target)
    except BaseException:
        if backup is not None:
            _restore(backup, item.target, is_link)
        raise
    return _Published(item, identity, backup, is_link)


def _require_same_kind(item: Staged) -> None:
    """--overwrite replaces a file with a file, and a folder only with a folder its `recheck` vouches
    for: a folder that took an output file's name during the run is never deleted."""
    folder = item.target.is_dir() and not item.target.is_symlink()
    if folder != item.temp.is_dir() or (folder and item.recheck is None):
        what = "a folder" if folder else "a file"
        raise RvmkitError(f"{describe_path(item.target)}: is now {what}; refusing to replace it with the "
                          "output; nothing was published")


def _set_aside(target: Path) -> tuple[Path, bool]:
    """Keep the output about to be replaced: a hard link to a file (the name stays in place), else
    the file or folder renamed to `.<name>.<pid>.rvmkit-old<suffix>`. Returns (backup, is_link)."""
    for serial in range(1000):
        backup = _hidden_name(target, OLD_TAG, serial)
        if os.path.lexists(backup):
            continue
        if not target.is_dir() or target.is_symlink():
            try:
                os.link(target, backup, follow_symlinks=False)
                return backup, True
            except FileExistsError:
                continue
            except OSError:
                pass
        rename_no_replace(target, backup)
        return backup, False
    raise _os_error(errno.EEXIST, target)


def _restore(backup: Path, target: Path, is_link: bool) -> None:
    try:
        if is_link and os.path.lexists(target) and os.path.samefile(backup, target):
            backup.unlink()  # the old file never left its name (rename between two links does nothing)
        elif is_link:
            os.replace(backup, target)
        else:
            rename_no_replace(backup, target)
    except OSError:
        pass  # the name was taken meanwhile: the old output stays at its hidden name


def _roll_back(done: list[_Published]) -> None:
    """Withdraw what this publish put in place (only our own files: checked by inode) and put back
    what it set aside."""
    for published in reversed(done):
        target = published.staged.target
        try:
            ours = _identity(target) == published.identity
        except OSError:
            ours = False
        if published.backup is not None:
            if ours or not os.path.lexists(target):
                if ours and not published.backup_is_link:
                    _remove(target)
                _restore(published.backup, target, published.backup_is_link)
        elif ours:
            _remove(target)


def _publish_error(error: OSError, target: Path, overwrite: bool) -> RvmkitError:
    if error.errno == errno.EEXIST and not overwrite:
        return RvmkitError(f"{describe_path(target)}: already exists (created during the run?); nothing "
                           "was published; use --overwrite to replace it")
    reason = error.strerror or type(error).__name__
    return RvmkitError(f"{describe_path(target)}: cannot publish the output ({reason}); nothing was "
                       "published")


# ---------------------------------------------------------------------------------------------
# Single files and early checks


def write_atomically(target: Path, write: Callable[[Path], Any], overwrite: bool = True) -> None:
    """Call write(tmp_path) then rename onto target, so readers never see a partial file; a failure to
    create, write or rename (disk full, a folder that vanished) is one line. `overwrite=False` never
    replaces an existing target (one line instead)."""
    write_all_atomically([(Path(target), write)], overwrite)


def write_all_atomically(writes: list[tuple[Path, Callable[[Path], Any]]], overwrite: bool = True) -> None:
    """`write_atomically` for several files published together: all of them, or none."""
    staged: list[Staged] = []
    target = Path(writes[0][0]) if writes else Path()
    try:
        for target, write in writes:
            target = Path(target)
            remove_stale_temps(target)
            temp = make_temp(target)
            staged.append(Staged(temp, target, lock=lock_temp(temp)))
            write(temp)
        publish_all(staged, overwrite=overwrite)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise RvmkitError(f"{describe_path(target)}: cannot write the output ({reason})") from None
    finally:
        for item in staged:
            release_lock(item.lock)
            if os.path.lexists(item.temp):
                os.unlink(item.temp)


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


def require_new_output(path: str | os.PathLike, inputs: list[str | os.PathLike | None],
                       overwrite: bool) -> Path:
    """The rules of every output file: never one of `inputs`, and an existing file only with
    `overwrite` and only when it can really be replaced; one line, before any work."""
    path = Path(path)
    for source in inputs:
        if source is not None and is_same_path(path, Path(source)):
            raise RvmkitError(f"{describe_path(path)}: output is the input {describe_path(source)}; "
                              "refusing to overwrite it")
    if os.path.lexists(path):
        if not overwrite:
            raise RvmkitError(f"{describe_path(path)}: already exists; use --overwrite to replace it")
        require_replaceable(path)
    return path


def is_same_path(a: Path, b: Path) -> bool:
    """The same file: the same resolved path, or the same inode (hard links, other spellings)."""
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


_FS_IOC_GETFLAGS = (2 << 30) | (ctypes.sizeof(ctypes.c_long) << 16) | (ord("f") << 8) | 1
_FS_IMMUTABLE_FL, _FS_APPEND_FL = 0x10, 0x20


def _inode_flags(path: Path) -> int:
    """The Linux inode flags of `path` (chattr's), or those of BSD/macOS st_flags; 0 when unknown."""
    flags = getattr(path.lstat(), "st_flags", 0)
    if flags:
        immutable = stat.UF_IMMUTABLE | stat.SF_IMMUTABLE | stat.UF_APPEND | stat.SF_APPEND
        return _FS_IMMUTABLE_FL if flags & immutable else 0
    if fcntl is None or not sys.platform.startswith("linux") or path.is_symlink():
        return 0
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return 0
    try:
        buffer = bytearray(ctypes.sizeof(ctypes.c_long))
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, buffer)
        return int.from_bytes(buffer[:4], sys.byteorder)
    except OSError:  # the filesystem keeps no such flags
        return 0
    finally:
        os.close(fd)


def require_replaceable(path: str | os.PathLike) -> None:
    """Fail in one line, before any work, when the existing `path` could not be replaced at the end:
    immutable or append-only (chattr +i / +a), a folder that is not writable, or another user's file
    in a sticky folder such as /tmp."""
    path = Path(path)
    parent = path.absolute().parent
    if _inode_flags(path) & (_FS_IMMUTABLE_FL | _FS_APPEND_FL):
        raise RvmkitError(f"{describe_path(path)}: cannot be replaced: it is immutable or append-only "
                          "(see lsattr; chattr -i / -a)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RvmkitError(f"{describe_path(path)}: cannot be replaced: {describe_path(parent)} is not "
                          "writable (permission denied)")
    folder, mine = parent.stat(), os.geteuid() if hasattr(os, "geteuid") else None
    if mine not in (None, 0) and folder.st_mode & stat.S_ISVTX and mine not in (folder.st_uid,
                                                                                 path.lstat().st_uid):
        raise RvmkitError(f"{describe_path(path)}: cannot be replaced: it belongs to another user in the "
                          f"sticky folder {describe_path(parent)}")


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


def require_distinct_outputs(outputs: list[tuple[str, str | os.PathLike]],
                             inputs: list[str | os.PathLike | tuple[str, str | os.PathLike]] | None = None
                             ) -> None:
    """Every path a run writes, `(what, path)` pairs (e.g. ('--stats', 'y.json')), against every other
    and against `inputs` (paths, or `(what, path)` pairs such as ('background', 'bg.png'); None entries
    are skipped), before anything starts: two outputs at one path (any spelling, hard links), one
    inside another (a file inside an output folder), or an output at or around an input would
    overwrite or publish over each other at the end. One line naming both."""
    resolved = [(what, Path(path), Path(path).expanduser().resolve()) for what, path in outputs]
    named = [entry if isinstance(entry, tuple) else ("input", entry) for entry in inputs or []]
    for index, (what, path, real) in enumerate(resolved):
        for kind, source in named:
            if source is None:
                continue
            if is_same_path(path.expanduser(), Path(source).expanduser()):
                raise RvmkitError(f"{describe_path(path)} ({what}): is the {kind}; refusing to overwrite it")
            if real in Path(source).expanduser().resolve().parents:
                raise RvmkitError(f"{describe_path(path)} ({what}): holds the {kind} "
                                  f"{describe_path(source)}; choose another path")
        for other_what, other, other_real in resolved[:index]:
            if real == other_real or is_same_path(path.expanduser(), other.expanduser()):
                raise RvmkitError(f"{describe_path(path)}: written by both {other_what} and {what}; give "
                                  "each output its own path")
            for inner, inner_what, outer, outer_what in ((path, what, other, other_what),
                                                         (other, other_what, path, what)):
                if outer.expanduser().resolve() in inner.expanduser().resolve().parents:
                    raise RvmkitError(f"{describe_path(inner)} ({inner_what}): is inside "
                                      f"{describe_path(outer)} ({outer_what}); give each output its own "
                                      "path")
