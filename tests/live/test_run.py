"""`rvmkit live` until stopped: SIGTERM ends a looping stream through the stop event (its recording
finalized, nothing else left), and the process's own handlers come back afterwards."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest
from live.streaming import write_stream_file

from conftest import read_frames
from rvmkit.live.loop import LiveConfig
from rvmkit.live.run import run_until_stopped


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_stream_file(tmp_path_factory.mktemp("run") / "clip.ts", read_frames("book", 15), fps=30,
                             size=(96, 64))


def test_sigterm_stops_a_looping_run_and_the_handlers_are_restored(clip: Path, tmp_path: Path) -> None:
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    done = threading.Event()

    def terminate_once_recording() -> None:  # the recording's temporary file: frames are flowing
        for _ in range(1200):  # at most a minute: then SIGTERM anyway, so a looping run never hangs
            if done.is_set() or any(tmp_path.iterdir()):
                break
            done.wait(0.05)
        if not done.is_set():
            os.kill(os.getpid(), signal.SIGTERM)

    sender = threading.Thread(target=terminate_once_recording)
    sender.start()
    try:
        report = run_until_stopped(LiveConfig(str(clip), realtime=True, loop=True,
                                              records=[str(tmp_path / "o.mkv")], quiet=True))
    finally:
        done.set()
        sender.join()
    assert report.recordings == [tmp_path / "o.mkv"] and report.totals["frames_out"] > 0
    assert sorted(path.name for path in tmp_path.iterdir()) == ["o.mkv"]
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
