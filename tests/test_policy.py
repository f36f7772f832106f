"""The two policies (`rvmkit.policy`): every frame in order with back-pressure; the newest frame, drops
reported."""

from __future__ import annotations

import threading

from rvmkit.policy import END, EveryFrame, NewestFrame


def test_newest_frame_replaces_an_untaken_frame_and_reports_it() -> None:
    dropped: list[int] = []
    slot: NewestFrame[int] = NewestFrame(on_drop=dropped.append)
    assert slot.put(0) and slot.put(1) and dropped == [0]  # frame 0 was never taken: dropped
    assert slot.get() == (True, 1) and slot.get(lambda: True) == (False, None)
    slot.put(2)
    slot.end()
    assert slot.get() == (True, 2) and slot.get() == (True, END)  # ended: what is left, then END, no wait
    slot.put(3)
    slot.discard()
    assert dropped == [0, 3]


def test_get_waits_for_the_next_frame() -> None:
    slot: NewestFrame[int] = NewestFrame()
    threading.Timer(0.05, slot.put, args=(7,)).start()
    assert slot.get() == (True, 7)


def test_every_frame_keeps_order_and_makes_the_producer_wait() -> None:
    queue: EveryFrame[int] = EveryFrame(2)
    stop = threading.Event()
    assert queue.put(0, stop.is_set) and queue.put(1, stop.is_set)
    stop.set()
    assert queue.put(2, stop.is_set) is False  # full: the producer waited, then gave up on stop
    assert queue.get() == (True, 0) and queue.get() == (True, 1)
    assert queue.get(stop.is_set) == (False, None)  # a consumer told to stop returns at once


def test_every_frame_ends_after_its_items_and_discards_what_is_left() -> None:
    dropped: list[int] = []
    queue: EveryFrame[int] = EveryFrame(3, on_drop=dropped.append)
    assert queue.put(0, lambda: False) and queue.end(lambda: False)
    assert queue.get() == (True, 0) and queue.get() == (True, END)
    queue.put(1, lambda: False)
    queue.put(2, lambda: False)
    queue.discard()
    assert dropped == [1, 2] and queue.get(lambda: True) == (False, None)

