"""Counters of a live run: frames in and out, dropped frames, latency from capture to output.

Thread-safe (the capture thread counts frames in and drops, the output thread counts frames out). Memory
stays flat however long the run: totals keep a 1 ms latency histogram, and each second keeps only its
counts and percentiles once it is over. Invariant at the end of a run: frames in = out + dropped.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rvmkit.fileio import write_atomically

_BIN_S = 0.001  # histogram resolution
_MAX_S = 60.0  # latencies above this land in the last bin


def _percentiles(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    p50, p95 = np.percentile(np.asarray(values, dtype=np.float64), [50, 95])
    return float(p50), float(p95)


@dataclass
class _Second:
    """One second of the run (seconds since the start, as an integer)."""

    index: int
    frames_in: int = 0
    frames_out: int = 0
    dropped: int = 0
    latencies: list[float] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        p50, p95 = _percentiles(self.latencies)
        return {"second": self.index, "fps_in": self.frames_in, "fps_out": self.frames_out,
                "dropped": self.dropped, "latency_p50_ms": _ms(p50), "latency_p95_ms": _ms(p95)}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


class LiveStats:
    """Counts a live run; `status_line`, `summary` and `as_dict` report it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.start = clock()
        self.frames_in = self.frames_out = self.dropped = 0
        self.resets = self.reconnects = 0
        self._histogram = np.zeros(int(_MAX_S / _BIN_S) + 1, dtype=np.int64)
        self._max_latency = 0.0
        self._current: _Second | None = None
        self._series: list[dict[str, Any]] = []
        self._last_row: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def _second(self, now: float) -> _Second:
        """The bucket of `now`, closing the previous ones (seconds without frames get empty rows)."""
        index = int(max(0.0, now - self.start))
        current = self._current
        if current is None or index != current.index:
            if current is not None:
                self._close(current, index)
            current = self._current = _Second(index)
        return current

    def _close(self, second: _Second, next_index: int) -> None:
        self._last_row = second.row()
        self._series.append(self._last_row)
        for empty in range(second.index + 1, next_index):
            self._series.append(_Second(empty).row())

    def frame_in(self) -> None:
        with self._lock:
            self.frames_in += 1
            self._second(self.clock()).frames_in += 1

    def drop(self, count: int = 1) -> None:
        with self._lock:
            self.dropped += count
            self._second(self.clock()).dropped += count

    def frame_out(self, captured_at: float) -> float:
        """Count an output frame captured at `captured_at` (clock time); return its latency in s."""
        with self._lock:
            now = self.clock()
            latency = max(0.0, now - captured_at)
            self.frames_out += 1
            second = self._second(now)
            second.frames_out += 1
            second.latencies.append(latency)
            self._histogram[min(int(latency / _BIN_S), len(self._histogram) - 1)] += 1
            self._max_latency = max(self._max_latency, latency)
            return latency

    def latency(self, quantile: float) -> float | None:
        """The latency (s) below which `quantile` of all output frames fall, to 1 ms; None before any."""
        with self._lock:
            total = int(self._histogram.sum())
            if total == 0:
                return None
            rank = int(np.searchsorted(np.cumsum(self._histogram), quantile * total))
            return min((rank + 1) * _BIN_S, self._max_latency)

    def elapsed(self) -> float:
        return max(self.clock() - self.start, 1e-9)

    def status_line(self) -> str:
        """fps in and out over the last full second, dropped so far, latency p50/p95 of that second."""
        with self._lock:
            self._second(self.clock())
            row = self._last_row
            seconds = int(self.clock() - self.start)
            dropped = self.dropped
        clock = f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        if row is None:
            return f"live  starting  dropped {dropped}  {clock}"
        p50, p95 = row["latency_p50_ms"], row["latency_p95_ms"]
        latency = f"p50 {p50:.0f} ms  p95 {p95:.0f} ms" if p50 is not None else "-"
        return (f"live  in {row['fps_in']:2d} fps  out {row['fps_out']:2d} fps  dropped {dropped}  "
                f"latency {latency}  {clock}")

    def totals(self) -> dict[str, Any]:
        elapsed = self.elapsed()
        p50, p95 = self.latency(0.5), self.latency(0.95)
        return {"seconds": round(elapsed, 3), "frames_in": self.frames_in, "frames_out": self.frames_out,
                "dropped": self.dropped, "fps_in": round(self.frames_in / elapsed, 2),
                "fps_out": round(self.frames_out / elapsed, 2), "latency_p50_ms": _ms(p50),
                "latency_p95_ms": _ms(p95), "latency_max_ms": _ms(self._max_latency if self.frames_out
                                                                  else None),
                "state_resets": self.resets, "reconnects": self.reconnects}

    def summary(self) -> str:
        t = self.totals()
        share = f" ({100 * t['dropped'] / t['frames_in']:.0f}%)" if t["frames_in"] else ""
        line = (f"live: {t['frames_in']} frames in, {t['frames_out']} out, {t['dropped']} dropped{share} in "
                f"{t['seconds']:.1f} s; out {t['fps_out']:.1f} fps")
        if t["latency_p50_ms"] is not None:
            line += (f"; latency capture->output p50 {t['latency_p50_ms']:.0f} ms, p95 "
                     f"{t['latency_p95_ms']:.0f} ms, max {t['latency_max_ms']:.0f} ms")
        return line

    def as_dict(self, **about: Any) -> dict[str, Any]:
        """Totals and the per-second series (the second in progress included), plus `about`."""
        with self._lock:
            self._second(self.clock())  # the series runs to now, empty seconds included
            series = list(self._series)
            if self._current is not None:
                series.append(self._current.row())
        return {**about, "totals": self.totals(), "series": series}

    def write(self, path: str | Path, overwrite: bool = True, **about: Any) -> None:
        """The `--stats` file: JSON, written atomically; without `overwrite` a file that appeared at
        `path` during the run is never replaced (one line instead)."""
        text = json.dumps(self.as_dict(**about), indent=1)
        write_atomically(Path(path).expanduser(), lambda temp: temp.write_text(text + "\n"), overwrite)
