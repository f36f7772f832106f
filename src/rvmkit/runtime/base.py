"""The one interface every inference backend implements (Polygraphy-style runners).

A backend is loaded once per video stream, then frames go through it in order, in three stages that
the pipeline runs in three threads, so a front-end never asks what kind of backend it has:

    prepare(rgb, ratio)          decode thread: the uint8 frame -> the backend's input
    infer(inputs, state, ratio)  inference thread: T prepared frames of one stream, in order
    finish(rgb, raw, ratio)      write thread: one frame's raw output -> a `FrameResult`

A backend whose inference also cuts into two stages (`two_stage`: `infer_first`, `infer_second`, each
with its part of the state) has them run in two threads, one frame apart, where a stream keeps every
frame; `infer` still runs a frame on its own (live, `FrameMatter`).

The defaults run the plain contract, `step` (float frame in, float fgr/pha out); a backend overrides
the stages it can do better (the CPU fast path infers at low resolution and finishes in fused kernels;
torch batches time). The recurrent state is opaque and stays in the backend's native form (numpy arrays,
OrtValues, torch tensors, device buffers) between frames: nothing outside the backend looks inside it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from rvmkit.cache import official_onnx_path
from rvmkit.errors import RvmkitError, describe_path
from rvmkit.runtime import pixels

if TYPE_CHECKING:
    from rvmkit.runtime import ModelSpec

State = Any  # backend-native recurrent state (r1..r4); None means "start of a stream"


def to_input(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 -> float32 [1,3,H,W] in 0..1 (what every backend's `step` takes)."""
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255)


class FrameResult(ABC):
    """One frame's matte, finished on demand in whichever form the consumer needs."""

    @abstractmethod
    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """fgr [3,H,W] and pha [1,H,W], float32 in 0..1."""

    def composite(self, background: np.ndarray, want_alpha: bool = True
                  ) -> tuple[np.ndarray, np.ndarray | None]:
        """(composition HxWx3 uint8 over the uint8 `background` (HxWx3 or a colour [3]), alpha HxW uint8
        or None). Backends that can fuse this into one pass override it."""
        fgr, pha = self.arrays()
        alpha = pixels.alpha_u8(pha[None], channels=1) if want_alpha else None
        return pixels.composite(fgr[None], pha[None], background), alpha


class ArrayResult(FrameResult):
    """A result that is already fgr/pha arrays (every backend's plain `step`)."""

    def __init__(self, fgr: np.ndarray, pha: np.ndarray) -> None:
        self._fgr, self._pha = fgr, pha

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return self._fgr, self._pha


class Backend(ABC):
    """Load in __init__, run frames through prepare -> infer -> finish (or `step`), `close` at the end."""

    name: str = "backend"
    #: ratio baked into the model graph (TRT-ready ONNX), or None if chosen at run time
    baked_ratio: float | None = None
    #: the model as errors name it (its file); set by `load_backend`
    model_label: str = "model"

    @classmethod
    def open(cls, spec: ModelSpec, *, device: str = "cpu", variant: str | None = None,
             **options: Any) -> Backend:
        """The backend for a resolved, already accepted model (`rvmkit.runtime.load_backend` calls it).

        The default suits the ONNX backends: the pretrained ONNX when no file is named, the model's
        baked ratio, the file as errors name it. A backend that loads something else overrides it."""
        path = spec.path if spec.path is not None else official_onnx_path()
        return cls(path, device=device, **options).labelled(spec, path)

    @classmethod  # noqa: B027 - optional hook, most backends need nothing
    def preload(cls, device: str = "cpu") -> None:
        """Load ahead what the first frame on `device` would wait for (a server's spare worker); the
        module's own imports are already done."""

    def labelled(self, spec: ModelSpec, path: Any) -> Backend:
        """This backend with the model's baked ratio and its name in errors (`path`: the file it opened)."""
        if spec.baked_ratio is not None:
            self.baked_ratio = spec.baked_ratio
        self.model_label = spec.label if spec.path is not None or spec.module is not None else str(path)
        return self

    @abstractmethod
    def step(self, src: np.ndarray, state: State,
             downsample_ratio: float) -> tuple[np.ndarray, np.ndarray, State]:
        """Run one frame. src: float32 [1,3,H,W] in 0..1. Returns fgr [1,3,H,W], pha [1,1,H,W]
        (float32, 0..1, host numpy) and the next state."""

    def prepare(self, rgb: np.ndarray, downsample_ratio: float) -> Any:
        """The HxWx3 uint8 frame as `infer` takes it. Thread-safe (runs in the decode thread)."""
        return to_input(rgb)

    def infer(self, inputs: Sequence[Any], state: State, downsample_ratio: float
              ) -> tuple[list[Any], State]:
        """Prepared frames of one stream, in order -> (one raw output per frame, the next state)."""
        raws = []
        for src in inputs:
            fgr, pha, state = self.step(src, state, downsample_ratio)
            self.check_outputs(src, fgr, pha)
            raws.append((fgr, pha))
        return raws, state

    #: True where inference can also run as two stages, `infer_first` then `infer_second`, each carrying its
    #: own part of the state: the pipeline runs them in two threads, frame N+1's first stage beside frame
    #: N's second, for a stream that keeps every frame
    two_stage: bool = False

    def infer_first(self, inputs: Sequence[Any], state: State, downsample_ratio: float
                    ) -> tuple[list[Any], State]:
        """A two-stage backend's first stage: prepared frames -> what `infer_second` takes, and the first
        stage's next state. (Default, one stage: the frames as they are.)"""
        return list(inputs), state

    def infer_second(self, middles: Sequence[Any], state: State, downsample_ratio: float
                     ) -> tuple[list[Any], State]:
        """A two-stage backend's second stage: `infer_first`'s outputs -> one raw output per frame, and the
        second stage's next state. (Default, one stage: `infer`.)"""
        return self.infer(middles, state, downsample_ratio)

    def check_outputs(self, src: np.ndarray, fgr: np.ndarray, pha: np.ndarray) -> None:
        """A model with RVM's tensor names but another graph runs, and would otherwise fail deep in
        compositing; name the model at its first frame instead."""
        frames, _, height, width = src.shape
        want_fgr, want_pha = (frames, 3, height, width), (frames, 1, height, width)
        if tuple(fgr.shape) != want_fgr or tuple(pha.shape) != want_pha:
            def dims(shape: tuple[int, ...]) -> str:
                return "x".join(str(size) for size in shape)

            raise RvmkitError(f"{describe_path(self.model_label)}: not an RVM matting model: a "
                              f"{dims(src.shape)} frame gave fgr {dims(fgr.shape)} and pha "
                              f"{dims(pha.shape)}, expected {dims(want_fgr)} and {dims(want_pha)}")

    def finish(self, rgb: np.ndarray, raw: Any, downsample_ratio: float, overlapped: bool = False
               ) -> FrameResult:
        """One frame's raw output (from `infer`) as a result; `rgb` is the frame it was made from.
        `overlapped`: the result is made while the next frame is inferred (the pipeline's write thread),
        so a backend that finishes on the CPU leaves the cores to inference."""
        fgr, pha = raw
        return ArrayResult(fgr[0], pha[0])

    def states(self, state: State) -> list[np.ndarray]:
        """Host float32 copies of the recurrent state r1..r4 that `step`/`infer` returned, for
        comparators (`rvmkit verify`). A backend whose state cannot be read back need not offer it."""
        raise NotImplementedError(f"the {self.name} backend does not expose its recurrent state")

    def warm_up(self) -> None:  # noqa: B027 - optional hook, most backends need nothing
        """Load now what the first frames would otherwise wait for or run slower without (a live stream
        wants it before its first frame; a file does not need to wait)."""

    def close(self) -> None:  # noqa: B027 - optional hook, most backends need nothing
        """Release sessions and device memory. Safe to call twice."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FrameMatter:
    """Frame-at-a-time matting for front-ends that choose their own frames (live: the newest only).

    Holds the recurrent state between calls; `reset` starts a new stream (e.g. the size changed)."""

    def __init__(self, backend: Backend, downsample_ratio: float, overlapped: bool = False) -> None:
        self.backend = backend
        self.downsample_ratio = downsample_ratio
        self.overlapped = overlapped  # results finished in another thread while the next frame infers
        self.state: State = None

    def __call__(self, rgb: np.ndarray) -> FrameResult:
        ratio = self.downsample_ratio
        raws, self.state = self.backend.infer([self.backend.prepare(rgb, ratio)], self.state, ratio)
        return self.backend.finish(rgb, raws[0], ratio, self.overlapped)

    def reset(self) -> None:
        self.state = None
