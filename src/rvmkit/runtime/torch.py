"""PyTorch backend: a `.pth` checkpoint (or an official ONNX's imported weights, or the cached default).

States stay torch tensors on the device between frames. `step_chunk` batches time (the model's
`forward_frame(..., time_chunk=True)`): the encoder, LR-ASPP, projection and refiner run on T frames at
once; only the recurrent decoder goes frame by frame. The refiner also runs at ratio 1, as every
ONNX/TensorRT graph does, so all backends agree.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from rvmkit.errors import RvmkitError
from rvmkit.runtime.base import Backend, State

if TYPE_CHECKING:
    from rvmkit.runtime import ModelSpec


class TorchBackend(Backend):
    """MattingNetwork in eval/inference mode; fp16 optional (CUDA only: CPU half convs are slow/partial)."""

    name = "torch"

    def __init__(self, checkpoint: str | os.PathLike | torch.nn.Module | None = None, *, device: str = "cpu",
                 variant: str | None = None, fp16: bool = False, refiner: str | None = None,
                 threads: int | None = None) -> None:
        """`refiner` None: a model object's own refiner kind, else the deep guided filter. `threads` caps
        torch's intra-op threads, process-wide (batch workers sharing a machine)."""
        from rvmkit.weights import load_model

        if threads:
            torch.set_num_threads(threads)

        if device == "cuda" and not torch.cuda.is_available():
            raise RvmkitError("--device cuda: torch sees no CUDA GPU (or this torch build has no CUDA)")
        if fp16 and device != "cuda":
            raise RvmkitError("fp16: the torch backend runs half precision on --device cuda only")
        self.device = torch.device(device)
        self.dtype = torch.float16 if fp16 else torch.float32
        refiner = refiner or _refiner_of(checkpoint)
        self.model = load_model(checkpoint, variant, refiner).to(self.device, self.dtype)

    @classmethod
    def open(cls, spec: ModelSpec, *, device: str = "cpu", variant: str | None = None,
             **options: Any) -> TorchBackend:
        """A checkpoint, an in-memory model, or (path None) the cached pretrained weights."""
        backend = cls(spec.module if spec.module is not None else spec.path, device=device, variant=variant,
                      **options)
        backend.model_label = spec.label
        return backend

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.device, self.dtype, non_blocking=True)

    @staticmethod
    def _host(tensor: torch.Tensor) -> np.ndarray:
        return tensor.float().cpu().numpy()

    def step(self, src: np.ndarray, state: State, downsample_ratio: float
             ) -> tuple[np.ndarray, np.ndarray, State]:
        states = state if state is not None else [None] * 4
        with torch.inference_mode():
            fgr, pha, *rec = self.model.forward_frame(self._tensor(src), *states, float(downsample_ratio),
                                                      always_refine=True)
        return self._host(fgr), self._host(pha), rec

    def infer(self, inputs: Sequence[np.ndarray], state: State, downsample_ratio: float
              ) -> tuple[list[tuple[np.ndarray, np.ndarray]], State]:
        """Several frames go through `step_chunk` at once (time batching), one through `step`."""
        if len(inputs) == 1:
            return super().infer(inputs, state, downsample_ratio)
        fgr, pha, state = self.step_chunk(np.concatenate(list(inputs)), state, downsample_ratio)
        return [(fgr[t:t + 1], pha[t:t + 1]) for t in range(fgr.shape[0])], state

    def step_chunk(self, src: np.ndarray, state: State, downsample_ratio: float
                   ) -> tuple[np.ndarray, np.ndarray, State]:
        """T frames of one stream at once: src [T,3,H,W] -> fgr [T,3,H,W], pha [T,1,H,W], state."""
        states = state if state is not None else [None] * 4
        with torch.inference_mode():
            fgr, pha, *rec = self.model.forward_frame(self._tensor(src), *states, float(downsample_ratio),
                                                      always_refine=True, time_chunk=True)
        return self._host(fgr), self._host(pha), rec

    def states(self, state: State) -> list[np.ndarray]:
        return [self._host(value) for value in state]

    def close(self) -> None:
        self.model = None  # type: ignore[assignment]


def _refiner_of(model: object) -> str:
    """The refiner a model object runs (rvmkit's and the official classes share the names)."""
    kind = type(getattr(model, "refiner", None)).__name__
    return "fast_guided_filter" if kind == "FastGuidedFilterRefiner" else "deep_guided_filter"
