"""The one streaming core: a source's frames through the engine to a consumer, the three stages concurrent.

    source thread --(policy)--> inference (calling thread) --(EveryFrame(n))--> write thread
    backend.prepare               backend.infer                                  backend.finish, consume

A backend with two inference stages (`Backend.two_stage`) has the second run in a thread of its own,
fed one frame at a time, where every frame is kept (files): inference (calling thread: `infer_first`)
--(EveryFrame(1))--> second stage (`infer_second`) --> write thread; each stage carries its own part of
the state, restarted together. A source at its own pace (live) keeps `infer`: one frame in flight, the
shortest time per frame.

Every front-end drives it: files, serve and batch with the `EveryFrame` policy (every frame in order; a
slow engine holds the decoder back), `rvmkit live` with `NewestFrame` (the source runs at its own pace;
a frame the engine had no time for is replaced and reported dropped) and a one-frame output queue, so
its latency stays bounded. One inference stage carries the recurrent state, which restarts when a
frame's `segment` or size changes (a live source reopened or resized), with the ratio derived again
for the new size. Memory stays flat (every queue is bounded), and the state never leaves the backend's
native form. The core never asks what kind of backend it has: each stage is a `Backend` method, and the
consumer gets one `FrameResult` per frame, which it turns into arrays or straight into a composition
(the CPU fast path fuses that, in the write thread, overlapping the next frame's inference).

Ending: the source ends, or `halt` is set (live's Ctrl-C): the source stops, frames already matted are
still consumed. The first exception in any stage (KeyboardInterrupt in the calling thread too) stops all
three and is re-raised by `run`; the caller then aborts its sinks, so nothing half-written is published.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from rvmkit.policy import END, POLL_S, EveryFrame, NewestFrame
from rvmkit.runtime.base import Backend, FrameResult, State, to_input
from rvmkit.video.reader import Frame

#: consume(frame, result), called in frame order from the write thread
Consumer = Callable[[Frame, FrameResult], None]
#: a downsample ratio, or the rule that gives one for a (width, height) (live's auto ratio)
Ratio = float | Callable[[int, int], float]
Policy = EveryFrame | NewestFrame

#: how long a halted run waits for its source thread: a read blocked in FFmpeg ends by itself later,
#: within the source's own timeout
SOURCE_WAIT_S = 1.0

__all__ = ["Consumer", "Policy", "Ratio", "run", "to_input"]


class _Stopped(Exception):
    """Raised inside a stage when another stage failed; never escapes `run`."""


class _Stages:
    """Shared stop flag and first error of the three stages."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self._lock = threading.Lock()

    def fail(self, error: BaseException) -> None:
        with self._lock:
            if self.error is None:
                self.error = error
        self.stop.set()

    def put(self, q: Policy, item: Any) -> None:
        if self.stop.is_set() or not q.put(item, self.stop.is_set):
            raise _Stopped

    def get(self, q: Policy) -> Any:
        got, item = q.get(self.stop.is_set)
        if not got:
            raise _Stopped
        return item

    def thread(self, target: Callable[[], None], name: str, nice: bool) -> threading.Thread:
        def body() -> None:
            if nice:
                _lower_priority()
            try:
                target()
            except _Stopped:
                pass
            except BaseException as error:  # noqa: BLE001 - handed to the calling thread
                self.fail(error)

        worker = threading.Thread(target=body, name=name, daemon=True)
        worker.start()
        return worker


#: niceness added to the decode and write threads (and the codec threads they start): inference is the
#: critical path, one frame at a time, so on a busy CPU it goes first and video work fills the gaps.
#: Not for a source at its own pace (a policy that drops): there the frames are the clock
STAGE_NICE = int(os.environ.get("RVMKIT_STAGE_NICE", "5"))


def _lower_priority() -> None:
    """Lower this thread's scheduling priority by STAGE_NICE (Linux: per-thread nice; elsewhere no-op)."""
    if STAGE_NICE <= 0 or not hasattr(os, "setpriority") or not hasattr(threading, "get_native_id"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + STAGE_NICE))
    except OSError:
        pass


def run(source: Iterable[Frame], backend: Backend, downsample_ratio: Ratio, consume: Consumer, *,
        seq_chunk: int = 1, start: int = 0, stop: int | None = None, warmup: int = 0,
        queue_size: int = 8, on_frame: Callable[[int], None] | None = None, policy: Policy | None = None,
        halt: threading.Event | None = None, max_fps: float | None = None,
        on_restart: Callable[[Frame, Frame], None] | None = None) -> int:
    """Matte frames [start, stop) of `source`, passing each result to `consume`; return how many.

    The `warmup` frames before `start` are inferred (to settle the recurrent state) but not consumed;
    earlier frames are decoded and skipped. `seq_chunk` frames go to `backend.infer` at once.
    `on_frame(n)` is called after each consumed frame with the running count (progress, status lines).
    `policy` sits between the source and inference (default: `EveryFrame(queue_size)`); a policy that
    drops gets its frames prepared in the inference stage (no work on frames it drops), and its
    `on_drop` also gets the frames a halted run leaves. `queue_size` bounds the output queue.
    `halt` ends the run early; `max_fps` spaces inference starts; `on_restart(last, frame)` is called when
    the state restarts (see the module docstring).
    """
    if seq_chunk < 1:
        raise ValueError(f"seq_chunk must be >= 1, got {seq_chunk}")
    if start < 0 or warmup < 0 or (stop is not None and stop < start):
        raise ValueError(f"bad frame range: start={start} stop={stop} warmup={warmup}")
    first = max(0, start - warmup)
    stages = _Stages()
    decoded: Policy = policy if policy is not None else EveryFrame(max(queue_size, 2 * seq_chunk))
    matted: EveryFrame = EveryFrame(queue_size if seq_chunk == 1 else max(queue_size, 2 * seq_chunk))
    on_drop = decoded.on_drop
    decoded.on_drop = lambda item: on_drop(item[0])  # the policy holds (frame, prepared): report the frame
    ratio_of = _ratios(downsample_ratio)
    halted = halt.is_set if halt is not None else (lambda: False)
    written = 0

    def decode() -> None:
        iterator = iter(source)
        try:
            for frame in iterator:
                if stop is not None and frame.index >= stop:
                    break
                if halted():
                    on_drop(frame)
                    break
                if frame.index >= first:
                    prepared = None if decoded.drops else backend.prepare(frame.rgb, ratio_of(frame))
                    stages.put(decoded, (frame, prepared))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
        if not decoded.end(stages.stop.is_set):
            raise _Stopped

    def write() -> None:
        nonlocal written
        while (item := stages.get(matted)) is not END:
            frame, raw, ratio = item
            consume(frame, backend.finish(frame.rgb, raw, ratio, overlapped=True))
            written += 1
            if on_frame is not None:
                on_frame(written)

    own_pace = decoded.drops
    threads = [stages.thread(decode, "rvmkit-decode", nice=not own_pace),
               stages.thread(write, "rvmkit-write", nice=not own_pace)]
    inference = _Inference(stages, backend, ratio_of, halted, on_restart, on_drop)
    try:
        inference.run(decoded, matted, seq_chunk, start, 1 / max_fps if max_fps else 0.0)
        while threads[1].is_alive():
            threads[1].join(POLL_S)
    except _Stopped:
        pass
    except BaseException as error:
        stages.fail(error)
    finally:
        stages.stop.set()
        threads[1].join()
        if inference.second is not None:
            inference.second.join()
        threads[0].join(SOURCE_WAIT_S if halt is not None else None)
        decoded.discard()
    if stages.error is not None:
        raise stages.error
    return written


#: sizes whose ratio a rule's result is remembered for (a live source whose size keeps changing must not
#: grow memory without bound)
RATIO_SIZES = 16


def _ratios(ratio: Ratio) -> Callable[[Frame], float]:
    """frame -> its ratio: the one given, or the rule's for the frame's size (the last sizes remembered)."""
    if not callable(ratio):
        return lambda frame: ratio
    rule = functools.lru_cache(maxsize=RATIO_SIZES)(ratio)

    def of(frame: Frame) -> float:
        height, width = frame.rgb.shape[:2]
        return rule(width, height)

    return of


class _Inference:
    """The inference stage: chunks of up to `seq_chunk` frames of one segment, in order, carrying the state
    within a segment (a frame's `segment` and size); a new segment restarts it."""

    def __init__(self, stages: _Stages, backend: Backend, ratio_of: Callable[[Frame], float],
                 halted: Callable[[], bool], on_restart: Callable[[Frame, Frame], None] | None,
                 on_drop: Callable[[Frame], None]) -> None:
        self.stages, self.backend, self.ratio_of = stages, backend, ratio_of
        self.halted, self.on_restart, self.on_drop = halted, on_restart, on_drop
        self.state: State = None
        self.last: Frame | None = None
        self.key: Any = None
        self.fresh = True  # the second stage's state restarts with the next handed-over chunk
        self.second: threading.Thread | None = None

    def give_up(self) -> bool:
        return self.stages.stop.is_set() or self.halted()

    def run(self, decoded: Policy, matted: EveryFrame, seq_chunk: int, start: int, period: float) -> None:
        out = matted
        if self.backend.two_stage and not decoded.drops:  # live keeps the shortest time per frame
            out = EveryFrame(1)
            self.second = self.stages.thread(lambda: self._second_stage(out, matted, start), "rvmkit-infer2",
                                             nice=False)
        pending = None
        while not self.halted():
            started = time.monotonic()
            chunk, pending = self._chunk(decoded, seq_chunk, pending)
            if chunk:
                self._infer(chunk, out, start)
            if pending is END:
                break
            if period:
                self._wait(started + period)
        if not out.end(self.stages.stop.is_set):
            raise _Stopped
        while self.second is not None and self.second.is_alive():
            self.second.join(POLL_S)

    def _second_stage(self, handed: EveryFrame, matted: EveryFrame, start: int) -> None:
        state: State = None
        while (item := self.stages.get(handed)) is not END:
            chunk, middles, ratio, fresh = item
            raws, state = self.backend.infer_second(middles, None if fresh else state, ratio)
            self._emit(chunk, raws, ratio, matted, start)
        if not matted.end(self.stages.stop.is_set):
            raise _Stopped

    def _chunk(self, decoded: Policy, seq_chunk: int, pending: Any) -> tuple[list[tuple[Frame, Any]], Any]:
        """Up to `seq_chunk` items of one segment, and the item that ended the chunk early (END, or the
        first of the next segment); an empty chunk when halted."""
        chunk: list[tuple[Frame, Any]] = []
        while len(chunk) < seq_chunk:
            if pending is None:
                got, pending = decoded.get(self.give_up)
                if not got:
                    if self.stages.stop.is_set():
                        raise _Stopped
                    return chunk, None
            if pending is END:
                return chunk, END
            frame = pending[0]
            key = (frame.segment, frame.rgb.shape[:2])
            if key != self.key:
                if chunk:
                    return chunk, pending
                self._restart(frame, key)
            chunk.append(pending)
            self.last, pending = frame, None
        return chunk, None

    def _restart(self, frame: Frame, key: Any) -> None:
        if self.last is not None:
            self.state = None
            self.fresh = True
            if self.on_restart is not None:
                self.on_restart(self.last, frame)
        self.key = key

    def _infer(self, chunk: list[tuple[Frame, Any]], out: EveryFrame, start: int) -> None:
        ratio = self.ratio_of(chunk[0][0])
        inputs = [self.backend.prepare(frame.rgb, ratio) if prepared is None else prepared
                  for frame, prepared in chunk]
        if self.second is None:
            raws, self.state = self.backend.infer(inputs, self.state, ratio)
            self._emit(chunk, raws, ratio, out, start)
            return
        middles, self.state = self.backend.infer_first(inputs, self.state, ratio)
        handed = out.put((chunk, middles, ratio, self.fresh), self.give_up)
        self.fresh = False
        if not handed:
            if self.stages.stop.is_set():
                raise _Stopped
            for frame, _ in chunk:  # halted while the second stage was busy
                if frame.index >= start:
                    self.on_drop(frame)

    def _emit(self, chunk: list[tuple[Frame, Any]], raws: list[Any], ratio: float, out: EveryFrame,
              start: int) -> None:
        """Each frame's raw output on to `out` (frames before `start` only settled the state)."""
        for (frame, _), raw in zip(chunk, raws, strict=True):
            if frame.index >= start and not out.put((frame, raw, ratio), self.give_up):
                if self.stages.stop.is_set():
                    raise _Stopped
                self.on_drop(frame)  # halted while the output stage was busy

    def _wait(self, until: float) -> None:
        """--max-fps: the next frame starts no earlier than `until` (a halt or a failure cuts it short)."""
        while not self.give_up() and (left := until - time.monotonic()) > 0:
            self.stages.stop.wait(min(left, POLL_S))
