"""What happens when the engine is slower than its source: the two policies every front-end chooses from.

- `EveryFrame` (files, serve, batch, and every run's output stage): every frame, in order; a full queue
  makes the producer wait (back-pressure), so memory stays flat whatever the stream's length.
- `NewestFrame` (live): one slot; a frame not taken before the next arrives is replaced and handed to
  `on_drop`, so the caller counts it dropped. The producer never waits: latency cannot build up.

Both have one interface (`put`, `get`, `end`, `discard`), so `pipeline.run` takes either between its source
and its inference stage, and both wake within POLL_S of a stop, so no stage outlives the run that started it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

POLL_S = 0.1
Item = TypeVar("Item")
#: what `get` returns after `end()`: the producer is done
END: Any = object()


def _ignore(item: Any) -> None:
    """The default `on_drop`."""


class EveryFrame(Generic[Item]):
    """A bounded FIFO between two stages: `put` waits while it is full, `get` while it is empty."""

    drops = False  # the producer waits instead

    def __init__(self, size: int, on_drop: Callable[[Item], None] = _ignore) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=size)
        self.on_drop = on_drop

    def put(self, item: Item, give_up: Callable[[], bool]) -> bool:
        """Queue `item`, waiting for room; False (nothing queued) once `give_up()` is true while waiting."""
        while True:
            try:
                self._queue.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                if give_up():
                    return False

    def get(self, give_up: Callable[[], bool] | None = None) -> tuple[bool, Item | None]:
        """(True, the oldest item or END), waiting for one; (False, None) once `give_up()` is true (checked
        first, then every POLL_S). Without `give_up` it waits as long as it takes."""
        while True:
            if give_up is not None and give_up():
                return False, None
            try:
                return True, self._queue.get(timeout=POLL_S)
            except queue.Empty:
                continue

    def end(self, give_up: Callable[[], bool]) -> bool:
        """After the last item: `get` returns END once the items before it are taken."""
        return self.put(END, give_up)

    def discard(self) -> None:
        """Hand every waiting item to `on_drop` (a run that stops early)."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not END:
                self.on_drop(item)


class NewestFrame(Generic[Item]):
    """A one-frame slot: `put` replaces an untaken frame (handed to `on_drop`) and never waits, `get` waits
    for a frame; after `end` it returns what is left, then END."""

    drops = True

    def __init__(self, on_drop: Callable[[Item], None] = _ignore) -> None:
        self._frame: Item | None = None
        self._ended = False
        self._ready = threading.Condition()
        self.on_drop = on_drop

    def put(self, frame: Item, give_up: Callable[[], bool] | None = None) -> bool:
        with self._ready:
            replaced, self._frame = self._frame, frame
            self._ready.notify_all()
        if replaced is not None:
            self.on_drop(replaced)
        return True

    def get(self, give_up: Callable[[], bool] | None = None) -> tuple[bool, Item | None]:
        """(True, the newest frame or END), waiting for one; (False, None) once `give_up()` is true."""
        with self._ready:
            while self._frame is None and not self._ended:
                if give_up is not None and give_up():
                    return False, None
                self._ready.wait(POLL_S)
            frame, self._frame = self._frame, None
        return True, (END if frame is None else frame)

    def end(self, give_up: Callable[[], bool] | None = None) -> bool:
        with self._ready:
            self._ended = True
            self._ready.notify_all()
        return True

    def discard(self) -> None:
        """Hand a waiting frame to `on_drop` (at the end of a run)."""
        with self._ready:
            frame, self._frame = self._frame, None
        if frame is not None:
            self.on_drop(frame)
