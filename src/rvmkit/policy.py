"""What happens when the engine is slower than its source: the two policies every front-end chooses from.

- `EveryFrame` (files, serve, batch, and live's output stage): every frame, in order; a full queue makes
  the producer wait (back-pressure), so memory stays flat whatever the stream's length.
- `NewestFrame` (live capture): one slot; a frame not taken before the next arrives is replaced, and the
  replacement is reported so the caller counts it dropped. Latency cannot build up.

Both wake within POLL_S of a stop, so no stage outlives the run that started it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

POLL_S = 0.1
Item = TypeVar("Item")


class EveryFrame(Generic[Item]):
    """A bounded FIFO between two stages: `put` waits while it is full, `get` while it is empty."""

    def __init__(self, size: int) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=size)

    def put(self, item: Item, give_up: Callable[[], bool], check: Callable[[], None] | None = None) -> bool:
        """Queue `item`, waiting for room; False (nothing queued) once `give_up()` is true while waiting.
        `check()` runs before each try (it raises the consumer's error, say)."""
        while True:
            if check is not None:
                check()
            try:
                self._queue.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                if give_up():
                    return False

    def get(self, give_up: Callable[[], bool] | None = None) -> tuple[bool, Item | None]:
        """(True, the oldest item), waiting for one; (False, None) once `give_up()` is true (checked first,
        then every POLL_S). Without `give_up` it waits as long as it takes."""
        while True:
            if give_up is not None and give_up():
                return False, None
            try:
                return True, self._queue.get(timeout=POLL_S)
            except queue.Empty:
                continue


class NewestFrame(Generic[Item]):
    """A one-frame slot: `put` replaces an untaken frame (returns True: it was dropped), `take` waits
    for a frame; `close` wakes every waiter (then `take` returns what is left, then None)."""

    def __init__(self) -> None:
        self._frame: Item | None = None
        self._closed = False
        self._ready = threading.Condition()

    def put(self, frame: Item) -> bool:
        with self._ready:
            replaced = self._frame is not None
            self._frame = frame
            self._ready.notify_all()
            return replaced

    def take(self, timeout: float) -> Item | None:
        with self._ready:
            if self._frame is None and not self._closed:
                self._ready.wait(timeout)
            frame, self._frame = self._frame, None
            return frame

    def discard(self) -> bool:
        """Drop a waiting frame (at the end of a run); True if there was one."""
        with self._ready:
            had, self._frame = self._frame is not None, None
            return had

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()
