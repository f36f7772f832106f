"""The two policies (`rvmkit.policy`): every frame in order with back-pressure; the newest frame, drops
reported."""

from __future__ import annotations

import threading

from rvmkit.policy import EveryFrame, NewestFrame


def test_newest_frame_replaces_an_untaken_frame() -> None:
    slot: NewestFrame[int] = NewestFrame()
    assert slot.put(0) is False
    assert slot.put(1) is True  # frame 0 was never taken: dropped
    assert slot.take(0) == 1 and slot.take(0) is None
    slot.put(2)
    slot.close()
    assert slot.take(1) == 2 and slot.take(1) is None  # closed: what is left, then nothing, no wait


def test_take_waits_for_the_next_frame() -> None:
    slot: NewestFrame[int] = NewestFrame()
    threading.Timer(0.05, slot.put, args=(7,)).start()
    assert slot.take(5) == 7


def test_every_frame_keeps_order_and_makes_the_producer_wait() -> None:
    queue: EveryFrame[int] = EveryFrame(2)
    stop = threading.Event()
    assert queue.put(0, stop.is_set) and queue.put(1, stop.is_set)
    stop.set()
    assert queue.put(2, stop.is_set) is False  # full: the producer waited, then gave up on stop
    assert queue.get() == (True, 0) and queue.get() == (True, 1)
    assert queue.get(stop.is_set) == (False, None)  # a consumer told to stop returns at once


def test_every_frame_put_raises_the_consumers_error() -> None:
    queue: EveryFrame[int] = EveryFrame(1)

    def failed() -> None:
        raise RuntimeError("sink gone")

    try:
        queue.put(0, lambda: False, check=failed)
    except RuntimeError as error:
        assert str(error) == "sink gone"
    else:
        raise AssertionError("the consumer's error was not raised")
    assert queue.get(lambda: True) == (False, None)  # nothing was queued
