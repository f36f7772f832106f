"""A one-line progress bar (frames, fps, ETA) for terminals; silent when not a TTY or when disabled."""

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


class Progress:
    """`update(done)` from any thread; `close()` ends the line. Does nothing unless `enabled` and the
    stream is a terminal, so logs and pipes never get carriage-return noise."""

    def __init__(self, total: int | None, *, label: str = "matte", enabled: bool = True,
                 stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.total = total
        self.label = label
        isatty = getattr(self.stream, "isatty", None)
        self.enabled = bool(enabled and isatty is not None and isatty())
        self.done = 0
        self._start = time.monotonic()
        self._drawn = 0.0
        self._lock = threading.Lock()

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
        with self._lock:
            if now - self._drawn < _REDRAW_S and done != self.total:
                return
            self._drawn = now
            self.stream.write("\r" + self.line(now) + "\x1b[K")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.done:
            with self._lock:
                self.stream.write("\r" + self.line() + "\x1b[K\n")
                self.stream.flush()
        self.enabled = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
