"""ONNX Runtime as the official examples run it: the reference that `verify` and `bench` compare with.

`session.run` on float input with numpy states and default session options, on the CPU: no IO
binding, no graph rewrite, nothing rvmkit does to go faster. A float16 model gets float16 inputs.
"""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort

from rvmkit.contract import INPUT_NAMES, OUTPUT_NAMES, RATIO_INPUT
from rvmkit.runtime.base import Backend, State, to_input
from rvmkit.runtime.ort_session import session_options


class OrtReferenceBackend(Backend):
    """One InferenceSession with default options (`threads` caps intra-op threads)."""

    name = "onnxruntime (reference)"

    def __init__(self, model_path: str | os.PathLike, *, device: str = "cpu",
                 threads: int | None = None) -> None:
        """`device`: the CPU only (the registry refuses another)."""
        # log level 3 (in session_options): float16 models on the CPU log a warning per inserted Cast
        self.session = ort.InferenceSession(str(model_path), session_options(threads),
                                            providers=["CPUExecutionProvider"])
        types = {item.name: item.type for item in self.session.get_inputs()}
        self.dtype = np.float16 if types.get("src") == "tensor(float16)" else np.float32
        self.has_ratio_input = RATIO_INPUT in types

    def prepare(self, rgb: np.ndarray, downsample_ratio: float) -> np.ndarray:
        return to_input(rgb).astype(self.dtype, copy=False)

    def step(self, src: np.ndarray, state: State, downsample_ratio: float
             ) -> tuple[np.ndarray, np.ndarray, State]:
        states = state if state is not None else [np.zeros((1, 1, 1, 1), self.dtype)] * 4
        feed = dict(zip(INPUT_NAMES, [src.astype(self.dtype, copy=False), *states], strict=True))
        if self.has_ratio_input:
            feed[RATIO_INPUT] = np.array([downsample_ratio], np.float32)
        fgr, pha, *next_state = self.session.run(OUTPUT_NAMES, feed)
        return np.asarray(fgr, np.float32), np.asarray(pha, np.float32), next_state

    def states(self, state: State) -> list[np.ndarray]:
        return [np.asarray(value, np.float32) for value in state]

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]
