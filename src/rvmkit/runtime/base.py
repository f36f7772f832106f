"""The one interface every inference backend implements (Polygraphy-style runners).

A backend is loaded once per video stream, then `step` is called frame after frame in order.
The recurrent state is opaque and stays in the backend's native form (numpy arrays, OrtValues,
torch tensors, device buffers) between frames: the pipeline never looks inside it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

State = Any  # backend-native recurrent state (r1..r4); None means "start of a stream"


class Backend(ABC):
    """Load in __init__, `step` one frame with the state, `close` to release resources."""

    name: str = "backend"
    #: ratio baked into the model graph (TRT-ready ONNX), or None if chosen at run time
    baked_ratio: float | None = None
    #: the model as errors name it (its file); set by `load_backend`
    model_label: str = "model"

    @abstractmethod
    def step(self, src: np.ndarray, state: State,
             downsample_ratio: float) -> tuple[np.ndarray, np.ndarray, State]:
        """Run one frame. src: float32 [1,3,H,W] in 0..1. Returns fgr [1,3,H,W], pha [1,1,H,W]
        (float32, 0..1, host numpy) and the next state."""

    def close(self) -> None:  # noqa: B027 - optional hook, most backends need nothing
        """Release sessions and device memory. Safe to call twice."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
