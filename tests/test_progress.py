"""The progress line (`rvmkit.progress`): silent off a terminal, frames, fps and ETA on one."""

from __future__ import annotations

import io

from rvmkit.progress import Console, Progress


def test_progress_is_silent_when_not_a_terminal():
    stream = io.StringIO()
    with Progress(10, stream=stream) as bar:
        for done in range(1, 11):
            bar.update(done)
    assert stream.getvalue() == ""


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shows_frames_fps_and_eta_on_a_terminal():
    stream = FakeTTY()
    with Progress(100, stream=stream) as bar:
        bar.update(100)
    text = stream.getvalue()
    assert "100/100 frames" in text and "fps" in text and "ETA" in text and text.endswith("\n")
    quiet = FakeTTY()
    with Progress(100, stream=quiet, enabled=False) as bar:
        bar.update(50)
    assert quiet.getvalue() == ""
    bar = Progress(200, stream=io.StringIO())
    bar.done = 50
    assert "50/200" in bar.line(now=bar._start + 2.0) and "25.0 fps" in bar.line(now=bar._start + 2.0)
    assert "ETA 0:06" in bar.line(now=bar._start + 2.0)


def test_live_console_redraws_its_status_line_and_erases_it_before_a_note():
    stream = FakeTTY()
    console = Console(stream)
    console.status("12.0 fps")
    console.note("size changed")
    console.clear()
    assert stream.getvalue() == "\r12.0 fps\x1b[K\r\x1b[Krvmkit live: size changed\n"
    assert console.notes == ["size changed"]
    piped = io.StringIO()
    quiet = Console(piped)
    quiet.status("12.0 fps")  # not a terminal: no status line, notes still printed
    quiet.note("lost source")
    assert piped.getvalue() == "rvmkit live: lost source\n"
