"""One reporter line on a terminal, rendered two ways: `Progress`, a bar (frames, fps, ETA) for files, and
`Console`, live's status line plus notes. Both draw through `TerminalLine`, silent when not a TTY or when
disabled, so logs and pipes never get carriage-return noise."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

_REDRAW_S = 0.2
_BAR = 24


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class TerminalLine:
    """One line redrawn in place ('\\r', the text, erase to the end of the line) when `stream` is a
    terminal and `enabled`; callers hold `lock` around `draw` and `clear`."""

    def __init__(self, stream: TextIO | None, enabled: bool) -> None:
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.enabled = bool(enabled and isatty is not None and isatty())
        self.drawn = False
        self.lock = threading.Lock()

    def draw(self, text: str, end: str = "") -> None:
        self.stream.write("\r" + text + "\x1b[K" + end)
        self.stream.flush()
        self.drawn = not end

    def clear(self) -> None:
        """Erase the line (before other output, and at the end)."""
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.drawn = False


class Progress:
    """`update(done)` from any thread; `close()` ends the line. Does nothing unless `enabled` and the
    stream is a terminal, so logs and pipes never get carriage-return noise."""

    def __init__(self, total: int | None, *, label: str = "matte", enabled: bool = True,
                 stream: TextIO | None = None) -> None:
        self._line = TerminalLine(stream, enabled)
        self.stream, self.enabled = self._line.stream, self._line.enabled
        self.total = total
        self.label = label
        self.done = 0
        self._start = time.monotonic()
        self._drawn = 0.0

    def line(self, now: float | None = None) -> str:
        """The text of the bar for the current count (also used by tests)."""
        elapsed = max((now if now is not None else time.monotonic()) - self._start, 1e-9)
        fps = self.done / elapsed
        if self.total:
            fraction = min(1.0, self.done / self.total)
            filled = int(fraction * _BAR)
            eta = (self.total - self.done) / fps if fps > 0 else None
            return (f"{self.label} [{'#' * filled}{'.' * (_BAR - filled)}] {self.done}/{self.total} frames "
                    f"{100 * fraction:3.0f}%  {fps:5.1f} fps  ETA {_clock(eta) if eta is not None else '?'}")
        return f"{self.label} {self.done} frames  {fps:5.1f} fps  {_clock(elapsed)}"

    def update(self, done: int) -> None:
        self.done = done
        if not self.enabled:
            return
        now = time.monotonic()
        with self._line.lock:
            if now - self._drawn < _REDRAW_S and done != self.total:
                return
            self._drawn = now
            self._line.draw(self.line(now))

    def close(self) -> None:
        if self.enabled and self.done:
            with self._line.lock:
                self._line.draw(self.line(), end="\n")
        self.enabled = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Console:
    """Live's rendering: notes (one line each, kept for the report) and a status line redrawn in place.

    A live run can go on for days, and a source can repeat a note every frame (a size that keeps
    changing), so the first MAX_NOTES are kept and the rest only counted: memory and the stats file stay
    bounded."""

    MAX_NOTES = 100

    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self._line = TerminalLine(stream, not quiet)
        self.stream, self.quiet = self._line.stream, quiet
        self.tty = self._line.enabled
        self._notes: list[str] = []
        self._not_kept = 0

    @property
    def notes(self) -> list[str]:
        """The notes kept, and a last line counting those that were not."""
        with self._line.lock:
            extra = [f"{self._not_kept} more notes not kept"] if self._not_kept else []
            return self._notes + extra

    def note(self, text: str) -> None:
        """A line worth keeping (in the report and the stats file too)."""
        with self._line.lock:
            if len(self._notes) < self.MAX_NOTES:
                self._notes.append(text)
            else:
                self._not_kept += 1
        self.say(f"rvmkit live: {text}")

    def say(self, text: str) -> None:
        if self.quiet:
            return
        with self._line.lock:
            self._line.clear()
            print(text, file=self.stream, flush=True)

    def status(self, text: str) -> None:
        if self.tty:
            with self._line.lock:
                self._line.draw(text)

    def clear(self) -> None:
        """Erase the status line (before other output, and at the end)."""
        self._line.clear()
