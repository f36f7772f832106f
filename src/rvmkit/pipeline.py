"""The recurrent matting loop, with decoding, inference and encoding running concurrently.

    decode thread --(bounded queue)--> inference (calling thread) --(bounded queue)--> write thread

Frames stay in order (one inference stage carries the recurrent state), memory stays flat whatever the
video's length (the queues are bounded), and the state never leaves the backend's native form.
With a fast backend (`rvmkit.runtime.ort_fast`), the decode thread also downsamples the frame, inference
runs at low resolution only, and the write thread makes the full-resolution outputs from a `LowRes`
result (one fused pass to uint8 when the consumer takes it through `consume_low_res`).
The first exception in any stage (including KeyboardInterrupt in the calling thread) stops all three
and is re-raised by `run`; the caller then aborts its sinks, so nothing half-written is published.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rvmkit.errors import RvmkitError, describe_path
from rvmkit.runtime.base import Backend, State
from rvmkit.video.reader import Frame

#: consume(frame, fgr [3,H,W] float32 0..1, pha [1,H,W] float32 0..1), called in frame order
Consumer = Callable[[Frame, np.ndarray, np.ndarray], None]

_END = object()
_POLL_S = 0.1


@dataclass
class LowRes:
    """One frame's result on the fast path: the refiner's low-resolution coefficients, finished to full
    resolution on demand (in the write thread, overlapping the next frame's inference)."""

    backend: Any
    frame: Frame
    coef_a: Any
    coef_b: Any
    ratio: float

    def float(self) -> tuple[np.ndarray, np.ndarray]:
        """fgr [3,H,W], pha [1,H,W] float32, as the plain path gives them."""
        fgr, pha = self.backend.finish_float(self.frame.rgb, self.coef_a, self.coef_b, self.ratio,
                                             self.backend.parallel_finish)
        return fgr[0], pha[0]

    def composite(self, background: np.ndarray, want_alpha: bool = True
                  ) -> tuple[np.ndarray, np.ndarray | None]:
        """(composition HxWx3 uint8, alpha HxW uint8 or None) in one pass over the frame."""
        return self.backend.finish_composite(self.frame.rgb, self.coef_a, self.coef_b, self.ratio, background,
                                             want_alpha, self.backend.parallel_finish)


#: consume_low_res(frame, result): takes fast-path results as they are (see `LowRes`)
LowResConsumer = Callable[[Frame, LowRes], None]


def _is_fast(backend: Backend) -> bool:
    return bool(getattr(backend, "fast", False))


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

    def put(self, q: queue.Queue, item: Any) -> None:
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                q.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def get(self, q: queue.Queue) -> Any:
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                continue

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


def to_input(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 -> float32 [1,3,H,W] in 0..1 (what every backend's `step` takes)."""
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255)


def infer_chunk(backend: Backend, src: np.ndarray, state: State, ratio: float
                ) -> tuple[np.ndarray, np.ndarray, State]:
    """T frames [T,3,H,W] in order: the backend's `step_chunk` if it batches time, else `step` each."""
    step_chunk = getattr(backend, "step_chunk", None)
    if step_chunk is not None and src.shape[0] > 1:
        return step_chunk(src, state, ratio)
    fgrs, phas = [], []
    for t in range(src.shape[0]):
        fgr, pha, state = backend.step(src[t:t + 1], state, ratio)
        fgrs.append(fgr)
        phas.append(pha)
    return np.concatenate(fgrs), np.concatenate(phas), state


def run(source: Iterable[Frame], backend: Backend, downsample_ratio: float, consume: Consumer, *,
        seq_chunk: int = 1, start: int = 0, stop: int | None = None, warmup: int = 0,
        queue_size: int = 8, on_frame: Callable[[int], None] | None = None,
        consume_low_res: LowResConsumer | None = None) -> int:
    """Matte frames [start, stop) of `source`, passing each result to `consume`; return how many.

    The `warmup` frames before `start` are inferred (to settle the recurrent state) but not consumed;
    earlier frames are decoded and skipped. `seq_chunk` frames go to the backend at once.
    `on_frame(n)` is called after each consumed frame with the running count (progress bars).
    With a fast backend, `consume_low_res` (when given) receives `LowRes` results instead of fgr/pha.
    """
    if seq_chunk < 1:
        raise ValueError(f"seq_chunk must be >= 1, got {seq_chunk}")
    if start < 0 or warmup < 0 or (stop is not None and stop < start):
        raise ValueError(f"bad frame range: start={start} stop={stop} warmup={warmup}")
    first = max(0, start - warmup)
    stages = _Stages()
    decoded: queue.Queue = queue.Queue(maxsize=max(queue_size, 2 * seq_chunk))
    matted: queue.Queue = queue.Queue(maxsize=max(queue_size, 2 * seq_chunk))
    written = 0
    fast = _is_fast(backend)

    def decode() -> None:
        iterator = iter(source)
        try:
            for frame in iterator:
                if stop is not None and frame.index >= stop:
                    break
                if frame.index >= first:
                    src = backend.prepare(frame.rgb, downsample_ratio) if fast else to_input(frame.rgb)
                    stages.put(decoded, (frame, src))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
        stages.put(decoded, _END)

    def write() -> None:
        nonlocal written
        while (item := stages.get(matted)) is not _END:
            if isinstance(item, LowRes):
                if consume_low_res is not None:
                    consume_low_res(item.frame, item)
                    item = None
                else:
                    item = (item.frame, *item.float())
            if item is not None:
                consume(*item)
            written += 1
            if on_frame is not None:
                on_frame(written)

    threads = [stages.thread(decode, "rvmkit-decode"), stages.thread(write, "rvmkit-write")]
    try:
        if fast:
            _infer_low_res(stages, decoded, matted, backend, downsample_ratio, start)
        else:
            _infer(stages, decoded, matted, backend, downsample_ratio, seq_chunk, start)
        while threads[1].is_alive():
            threads[1].join(_POLL_S)
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


def check_outputs(backend: Backend, src: np.ndarray, fgr: np.ndarray, pha: np.ndarray) -> None:
    """Once, on the first frames: a model with RVM's tensor names but another graph runs, and would
    otherwise fail deep in compositing; say which model is wrong instead."""
    frames, _, height, width = src.shape
    want_fgr, want_pha = (frames, 3, height, width), (frames, 1, height, width)
    if tuple(fgr.shape) != want_fgr or tuple(pha.shape) != want_pha:
        def dims(shape: tuple[int, ...]) -> str:
            return "x".join(str(size) for size in shape)

        label = getattr(backend, "model_label", "model")
        raise RvmkitError(f"{describe_path(label)}: not an RVM matting model: a {dims(src.shape)} frame gave "
                          f"fgr {dims(fgr.shape)} and pha {dims(pha.shape)}, expected {dims(want_fgr)} and "
                          f"{dims(want_pha)}")


def _infer(stages: _Stages, decoded: queue.Queue, matted: queue.Queue, backend: Backend, ratio: float,
           seq_chunk: int, start: int) -> None:
    state: State = None
    checked = False
    done = False
    while not done:
        chunk: list[tuple[Frame, np.ndarray]] = []
        while len(chunk) < seq_chunk:
            item = stages.get(decoded)
            if item is _END:
                done = True
                break
            chunk.append(item)
        if not chunk:
            break
        batch = np.concatenate([src for _, src in chunk])
        fgr, pha, state = infer_chunk(backend, batch, state, ratio)
        if not checked:
            check_outputs(backend, batch, fgr, pha)
            checked = True
        for i, (frame, _) in enumerate(chunk):
            if frame.index >= start:
                stages.put(matted, (frame, fgr[i], pha[i]))
    stages.put(matted, _END)


def _infer_low_res(stages: _Stages, decoded: queue.Queue, matted: queue.Queue, backend: Any, ratio: float,
                   start: int) -> None:
    """The fast path's inference stage: frame by frame at low resolution (time batching does not apply)."""
    state: State = None
    while (item := stages.get(decoded)) is not _END:
        frame, src_sm = item
        coef_a, coef_b, state = backend.infer(src_sm, state)
        if frame.index >= start:
            stages.put(matted, LowRes(backend, frame, coef_a, coef_b, ratio))
    stages.put(matted, _END)
