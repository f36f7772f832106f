"""The recurrent matting loop, with decoding, inference and encoding running concurrently.

    decode thread --(EveryFrame)--> inference (calling thread) --(EveryFrame)--> write thread
    backend.prepare                    backend.infer                             backend.finish, consume

Frames stay in order (one inference stage carries the recurrent state), memory stays flat whatever the
video's length (the queues are bounded), and the state never leaves the backend's native form. The loop
never asks what kind of backend it has: each stage is a `Backend` method, and the consumer gets one
`FrameResult` per frame, which it turns into arrays or straight into a composition (the CPU fast path
does that in one fused pass, in the write thread, overlapping the next frame's inference).
The first exception in any stage (including KeyboardInterrupt in the calling thread) stops all three
and is re-raised by `run`; the caller then aborts its sinks, so nothing half-written is published.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

from rvmkit.policy import POLL_S, EveryFrame
from rvmkit.runtime.base import Backend, FrameResult, State, to_input
from rvmkit.video.reader import Frame

#: consume(frame, result), called in frame order from the write thread
Consumer = Callable[[Frame, FrameResult], None]

_END = object()

__all__ = ["Consumer", "run", "to_input"]


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

    def put(self, q: EveryFrame, item: Any) -> None:
        if self.stop.is_set() or not q.put(item, self.stop.is_set):
            raise _Stopped

    def get(self, q: EveryFrame) -> Any:
        got, item = q.get(self.stop.is_set)
        if not got:
            raise _Stopped
        return item

    def thread(self, target: Callable[[], None], name: str) -> threading.Thread:
        def body() -> None:
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
#: critical path, one frame at a time, so on a busy CPU it goes first and video work fills the gaps
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


def run(source: Iterable[Frame], backend: Backend, downsample_ratio: float, consume: Consumer, *,
        seq_chunk: int = 1, start: int = 0, stop: int | None = None, warmup: int = 0,
        queue_size: int = 8, on_frame: Callable[[int], None] | None = None) -> int:
    """Matte frames [start, stop) of `source`, passing each result to `consume`; return how many.

    The `warmup` frames before `start` are inferred (to settle the recurrent state) but not consumed;
    earlier frames are decoded and skipped. `seq_chunk` frames go to `backend.infer` at once.
    `on_frame(n)` is called after each consumed frame with the running count (progress bars).
    """
    if seq_chunk < 1:
        raise ValueError(f"seq_chunk must be >= 1, got {seq_chunk}")
    if start < 0 or warmup < 0 or (stop is not None and stop < start):
        raise ValueError(f"bad frame range: start={start} stop={stop} warmup={warmup}")
    first = max(0, start - warmup)
    stages = _Stages()
    decoded: EveryFrame = EveryFrame(max(queue_size, 2 * seq_chunk))
    matted: EveryFrame = EveryFrame(max(queue_size, 2 * seq_chunk))
    written = 0

    def decode() -> None:
        iterator = iter(source)
        try:
            for frame in iterator:
                if stop is not None and frame.index >= stop:
                    break
                if frame.index >= first:
                    stages.put(decoded, (frame, backend.prepare(frame.rgb, downsample_ratio)))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
        stages.put(decoded, _END)

    def write() -> None:
        nonlocal written
        while (item := stages.get(matted)) is not _END:
            frame, raw = item
            consume(frame, backend.finish(frame.rgb, raw, downsample_ratio, overlapped=True))
            written += 1
            if on_frame is not None:
                on_frame(written)

    threads = [stages.thread(decode, "rvmkit-decode"), stages.thread(write, "rvmkit-write")]
    try:
        _infer(stages, decoded, matted, backend, downsample_ratio, seq_chunk, start)
        while threads[1].is_alive():
            threads[1].join(POLL_S)
    except _Stopped:
        pass
    except BaseException as error:
        stages.fail(error)
    finally:
        stages.stop.set()
        for worker in threads:
            worker.join()
    if stages.error is not None:
        raise stages.error
    return written


def _infer(stages: _Stages, decoded: EveryFrame, matted: EveryFrame, backend: Backend, ratio: float,
           seq_chunk: int, start: int) -> None:
    """The inference stage: chunks of up to `seq_chunk` frames, in order, carrying the state."""
    state: State = None
    done = False
    while not done:
        chunk: list[tuple[Frame, Any]] = []
        while len(chunk) < seq_chunk:
            item = stages.get(decoded)
            if item is _END:
                done = True
                break
            chunk.append(item)
        if not chunk:
            break
        raws, state = backend.infer([prepared for _, prepared in chunk], state, ratio)
        for (frame, _), raw in zip(chunk, raws, strict=True):
            if frame.index >= start:
                stages.put(matted, (frame, raw))
    stages.put(matted, _END)
