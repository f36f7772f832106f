"""`rvmkit.fileio`: publishing never replaces without overwrite, publishes all outputs or none, puts
back what --overwrite set aside when it fails, cleans only dead runs' temporaries, and refuses an
output that cannot be replaced before any work."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rvmkit import fileio
from rvmkit.errors import RvmkitError
from rvmkit.fileio import (
    Staged,
    lock_temp,
    make_temp,
    publish_all,
    release_lock,
    remove_stale_temps,
    rename_no_replace,
    require_new_output,
    require_replaceable,
    write_atomically,
)


def staged_file(target: Path, text: str) -> Staged:
    temp = make_temp(target)
    temp.write_text(text)
    return Staged(temp, target)


def staged_folder(target: Path, frames: int) -> Staged:
    temp = make_temp(target, folder=True)
    for index in range(frames):
        (temp / f"{index:06d}.png").write_text(f"frame {index}")
    return Staged(temp, target, into_empty_folder=True, recheck=lambda path: None)  # the writer's vouches


def names(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_temp_names_follow_the_documented_pattern(tmp_path):
    target = tmp_path / "com.mp4"
    first, second = make_temp(target), make_temp(target)
    folder = make_temp(tmp_path / "pha", folder=True)
    pid = os.getpid()
    assert first.name == f".com.mp4.{pid}.rvmkit-tmp.mp4"
    assert second.name == f".com.mp4.{pid}-1.rvmkit-tmp.mp4"
    assert folder.name == f".pha.{pid}.rvmkit-tmp" and folder.is_dir()
    assert fileio.temp_pattern(target).fullmatch(second.name)


@pytest.mark.parametrize("use_renameat2", [True, False], ids=["renameat2", "link-fallback"])
def test_rename_never_replaces_a_file_or_a_folder_with_content(tmp_path, monkeypatch, use_renameat2):
    if not use_renameat2:
        monkeypatch.setattr(fileio, "_RENAMEAT2", None)
    elif fileio._RENAMEAT2 is None:
        pytest.skip("no renameat2 in this C library")
    (tmp_path / "taken.mp4").write_text("mine")
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "keep.txt").write_text("mine")
    source = tmp_path / "new"
    source.write_text("new")
    for target in (tmp_path / "taken.mp4", tmp_path / "frames"):
        with pytest.raises(FileExistsError):
            rename_no_replace(source, target)
    folder = tmp_path / "new_frames"
    folder.mkdir()
    with pytest.raises(FileExistsError):
        rename_no_replace(folder, tmp_path / "frames")
    with pytest.raises(FileExistsError):
        rename_no_replace(folder, tmp_path / "taken.mp4")
    assert (tmp_path / "taken.mp4").read_text() == "mine" == (tmp_path / "frames" / "keep.txt").read_text()
    rename_no_replace(source, tmp_path / "free.mp4")
    rename_no_replace(folder, tmp_path / "free_frames")
    assert (tmp_path / "free.mp4").read_text() == "new" and (tmp_path / "free_frames").is_dir()
    assert not source.exists() and not folder.exists()


def test_a_name_taken_during_the_run_withdraws_every_output(tmp_path, monkeypatch):
    """Two outputs; the second's name is taken just after the first went in: the first is withdrawn."""
    first, second = staged_file(tmp_path / "a.mp4", "new a"), staged_folder(tmp_path / "b", 3)
    real = fileio.rename_no_replace

    def racing(source, target):
        real(source, target)
        if target.name == "a.mp4":
            (tmp_path / "b").mkdir()
            (tmp_path / "b" / "notes.txt").write_text("appeared during the run")

    monkeypatch.setattr(fileio, "rename_no_replace", racing)
    with pytest.raises(RvmkitError, match="'.*b': already exists.*nothing was published"):
        publish_all([second, first])
    assert names(tmp_path) == [second.temp.name, "b"]  # the caller's abort removes its temporary
    assert names(tmp_path / "b") == ["notes.txt"]


def test_rollback_removes_only_what_this_run_put_in_place(tmp_path, monkeypatch):
    first, second = staged_file(tmp_path / "a.mp4", "new a"), staged_file(tmp_path / "b.mp4", "new b")
    real = fileio.rename_no_replace

    def replaced_meanwhile(source, target):
        if target.name == "b.mp4":  # someone replaces our a.mp4 before b.mp4 fails
            (tmp_path / "other").write_text("someone else's")
            os.replace(tmp_path / "other", tmp_path / "a.mp4")
            raise OSError(28, "No space left on device")
        return real(source, target)

    monkeypatch.setattr(fileio, "rename_no_replace", replaced_meanwhile)
    with pytest.raises(RvmkitError, match="'.*b.mp4': cannot publish the output \\(No space left"):
        publish_all([first, second])
    assert (tmp_path / "a.mp4").read_text() == "someone else's"


@pytest.mark.parametrize("fail_with", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_overwrite_puts_the_old_outputs_back_when_a_later_one_fails(tmp_path, monkeypatch, fail_with):
    (tmp_path / "a.mp4").write_text("old a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "000000.png").write_text("old frame")
    (tmp_path / "c.mp4").write_text("old c")
    items = [staged_file(tmp_path / "a.mp4", "new a"), staged_folder(tmp_path / "b", 2),
             staged_file(tmp_path / "c.mp4", "new c")]
    real_replace = os.replace

    def failing_on_c(source, target, *args, **kwargs):
        if Path(target).name == "c.mp4" and "rvmkit-tmp" in Path(source).name:
            raise fail_with
        return real_replace(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "replace", failing_on_c)
    with pytest.raises(RvmkitError if isinstance(fail_with, OSError) else KeyboardInterrupt):
        publish_all(items, overwrite=True)
    monkeypatch.setattr(os, "replace", real_replace)
    assert (tmp_path / "a.mp4").read_text() == "old a" and (tmp_path / "c.mp4").read_text() == "old c"
    assert names(tmp_path / "b") == ["000000.png"]
    assert [n for n in names(tmp_path) if "rvmkit-old" in n] == []


def test_overwrite_replaces_and_leaves_no_old_copies(tmp_path):
    (tmp_path / "a.mp4").write_text("old a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "000000.png").write_text("old frame")
    publish_all([staged_file(tmp_path / "a.mp4", "new a"), staged_folder(tmp_path / "b", 2)], overwrite=True)
    assert (tmp_path / "a.mp4").read_text() == "new a"
    assert names(tmp_path / "b") == ["000000.png", "000001.png"]
    assert names(tmp_path) == ["a.mp4", "b"]


def test_an_empty_folder_takes_frames_without_overwrite(tmp_path):
    (tmp_path / "frames").mkdir()
    publish_all([staged_folder(tmp_path / "frames", 2)])
    assert names(tmp_path / "frames") == ["000000.png", "000001.png"]


def test_write_atomically_without_overwrite_keeps_a_file_that_appeared(tmp_path):
    target = tmp_path / "model.onnx"

    def write(path: Path) -> None:
        path.write_text("new")
        target.write_text("appeared while writing")

    with pytest.raises(RvmkitError, match="already exists"):
        write_atomically(target, write, overwrite=False)
    assert target.read_text() == "appeared while writing" and names(tmp_path) == ["model.onnx"]
    write_atomically(target, lambda path: path.write_text("replaced"))  # the default (caches) replaces
    assert target.read_text() == "replaced" and names(tmp_path) == ["model.onnx"]


def test_stale_temporaries_of_dead_runs_are_removed_and_nothing_else(tmp_path):
    target = tmp_path / "com.mp4"
    dead = dead_pid()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = [tmp_path / f".com.mp4.{dead}.rvmkit-tmp.mp4", tmp_path / f".com.mp4.{dead}-2.rvmkit-tmp.mp4"]
        kept = [tmp_path / f".com.mp4.{sleeper.pid}.rvmkit-tmp.mp4",  # a live run's
                tmp_path / f".com.mp4.{os.getpid()}.rvmkit-tmp.mp4",  # this process's
                tmp_path / f".com.mp4.{dead}.rvmkit-old.mp4",  # an old output set aside: user data
                tmp_path / f".com.mp4.{dead}.rvmkit-tmp.mkv",  # not our pattern for this target
                tmp_path / f".other.mp4.{dead}.rvmkit-tmp.mp4", tmp_path / f"com.mp4.{dead}.rvmkit-tmp.mp4",
                tmp_path / f".com.mp4.x{dead}.rvmkit-tmp.mp4"]
        for path in stale + kept:
            path.write_text("x")
        stale_folder = tmp_path / f".pha.{dead}.rvmkit-tmp"
        (stale_folder / "sub").mkdir(parents=True)
        live_folder = tmp_path / f".pha.{sleeper.pid}.rvmkit-tmp"
        live_folder.mkdir()
        assert sorted(remove_stale_temps(target)) == sorted(stale)
        assert remove_stale_temps(tmp_path / "pha") == [stale_folder]
        assert all(path.exists() for path in [*kept, live_folder])
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.skipif(fileio.fcntl is None, reason="no advisory locks on this platform")
def test_a_locked_temporary_is_in_use_even_when_its_pid_is_not_running_here(tmp_path):
    """On a folder shared between machines the PID may be another machine's: its lock tells."""
    temp = tmp_path / f".com.mp4.{dead_pid()}.rvmkit-tmp.mp4"
    temp.write_text("being written on another machine")
    code = (f"import fcntl, os, time; fd = os.open({str(temp)!r}, os.O_RDONLY); "
            "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert remove_stale_temps(tmp_path / "com.mp4") == [] and temp.exists()
    finally:
        holder.kill()
        holder.wait()
    assert remove_stale_temps(tmp_path / "com.mp4") == [temp] and not temp.exists()


def test_lock_temp_holds_a_lock_until_released(tmp_path):
    temp = make_temp(tmp_path / "x.mp4")
    lock = lock_temp(temp)
    if lock is None:
        pytest.skip("this filesystem takes no locks")
    probe = subprocess.run([sys.executable, "-c", "import fcntl, os; "
                            f"fd = os.open({str(temp)!r}, os.O_RDONLY); "
                            "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)"], capture_output=True, text=True)
    assert probe.returncode != 0 and "BlockingIOError" in probe.stderr
    release_lock(lock)


def test_output_rules_never_the_input_existing_only_with_overwrite(tmp_path):
    model = tmp_path / "my.onnx"
    model.write_text("the user's model")
    os.link(model, tmp_path / "alias.onnx")
    for path in (model, tmp_path / "." / "my.onnx", tmp_path / "alias.onnx"):
        with pytest.raises(RvmkitError, match="output is the input"):
            require_new_output(path, [model], overwrite=True)
    (tmp_path / "notes_trt.onnx").write_text("unrelated")
    with pytest.raises(RvmkitError, match="already exists; use --overwrite"):
        require_new_output(tmp_path / "notes_trt.onnx", [model], overwrite=False)
    assert require_new_output(tmp_path / "notes_trt.onnx", [model, None], overwrite=True)


def test_an_immutable_file_is_reported_as_not_replaceable(immutable_file):
    with pytest.raises(OSError):  # what the run would hit at the end
        os.rename(immutable_file, immutable_file.with_name("moved"))
    with pytest.raises(RvmkitError, match="locked.mp4': cannot be replaced: it is immutable"):
        require_replaceable(immutable_file)


def test_another_users_file_in_a_sticky_folder_is_not_replaceable(tmp_path, monkeypatch):
    """Only root may replace another user's file in /tmp-like folders; answer as the system would."""
    sticky = tmp_path / "shared"
    sticky.mkdir(mode=0o1777)
    os.chmod(sticky, 0o1777)
    theirs = sticky / "out.mp4"
    theirs.write_text("theirs")
    if os.geteuid() == 0:
        os.chown(theirs, 12345, 12345)
    monkeypatch.setattr(os, "geteuid", lambda: 23456)
    with pytest.raises(RvmkitError, match="belongs to another user in the sticky folder"):
        require_replaceable(theirs)


def test_overwrite_never_replaces_a_folder_that_took_a_files_name(tmp_path):
    (tmp_path / "out.mp4").mkdir()
    (tmp_path / "out.mp4" / "keep.txt").write_text("mine")
    (tmp_path / "frames").write_text("a file where frames go")
    unvouched = staged_folder(tmp_path / "new", 1)
    unvouched.target, unvouched.recheck = tmp_path / "out.mp4", None
    items = (staged_file(tmp_path / "out.mp4", "video"), staged_folder(tmp_path / "frames", 1), unvouched)
    for item in items:
        with pytest.raises(RvmkitError, match="is now a (folder|file); refusing to replace it"):
            publish_all([item], overwrite=True)
    assert (tmp_path / "out.mp4" / "keep.txt").read_text() == "mine"
    assert (tmp_path / "frames").read_text() == "a file where frames go"


# --- every path a run writes, against every other and against what it reads (issue 20) -------------

def _apart_cases(tmp: Path) -> dict[str, tuple[list, list, str]]:
    (tmp / "in.mp4").write_bytes(b"video")
    (tmp / "bg.png").write_bytes(b"image")
    (tmp / "frames").mkdir()
    (tmp / "out.mp4").write_bytes(b"old")
    os.link(tmp / "out.mp4", tmp / "hard.mp4")
    (tmp / "link.mp4").symlink_to(tmp / "in.mp4")
    return {
        "same spelling": ([("a", tmp / "x.mp4"), ("b", tmp / "x.mp4")], [], "written by both a and b"),
        "via ..": ([("a", tmp / "x.mp4"), ("b", tmp / "frames/../x.mp4")], [], "written by both a and b"),
        "hard link": ([("a", tmp / "out.mp4"), ("b", tmp / "hard.mp4")], [], "written by both a and b"),
        "inside a folder output": ([("a", tmp / "seq"), ("b", tmp / "seq/c.mp4")], [],
                                   "(b): is inside"),
        "folder holds another": ([("a", tmp / "seq/deep/c.png"), ("b", tmp / "seq")], [], "(a): is inside"),
        "is the input (symlink)": ([("a", tmp / "link.mp4")], [tmp / "in.mp4"], "(a): is the input"),
        "holds the input": ([("a", tmp)], [tmp / "in.mp4"], "(a): holds the input"),
        "is the background": ([("a", tmp / "frames/../bg.png")],
                              [tmp / "in.mp4", ("background", tmp / "bg.png")], "(a): is the background"),
    }


@pytest.mark.parametrize("case", ["same spelling", "via ..", "hard link", "inside a folder output",
                                  "folder holds another", "is the input (symlink)", "holds the input",
                                  "is the background"])
def test_paths_a_run_writes_are_kept_apart(tmp_path, case):
    outputs, inputs, message = _apart_cases(tmp_path)[case]
    with pytest.raises(RvmkitError, match=re.escape(message)):
        fileio.require_distinct_outputs(outputs, inputs)


def test_paths_apart_pass_siblings_and_similar_names(tmp_path):
    (tmp_path / "in.mp4").write_bytes(b"video")
    outputs = [("a", tmp_path / "seq"), ("b", tmp_path / "seq2/c.mp4"), ("c", tmp_path / "seq.mp4")]
    fileio.require_distinct_outputs(outputs, [tmp_path / "in.mp4", ("background", None)])
