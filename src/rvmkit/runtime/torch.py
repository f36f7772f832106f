"""PyTorch backend: a `.pth` checkpoint (or an official ONNX's imported weights, or the cached default).

States stay torch tensors on the device between frames. `step_chunk` batches time: the encoder,
LR-ASPP, projection and refiner run on T frames at once; only the recurrent decoder goes frame by
frame. The refiner also runs at ratio 1, as every ONNX/TensorRT graph does, so all backends agree.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from rvmkit.errors import RvmkitError
from rvmkit.model.common import resize_by_factor
from rvmkit.runtime.base import Backend, State


class TorchBackend(Backend):
    """MattingNetwork in eval/inference mode; fp16 optional (CUDA only: CPU half convs are slow/partial)."""

    name = "torch"

    def __init__(self, checkpoint: str | os.PathLike | torch.nn.Module | None = None, *, device: str = "cpu",
                 variant: str | None = None, fp16: bool = False, refiner: str = "deep_guided_filter") -> None:
        from rvmkit.weights import load_model

        if device == "cuda" and not torch.cuda.is_available():
            raise RvmkitError("--device cuda: torch sees no CUDA GPU (or this torch build has no CUDA)")
        if fp16 and device != "cuda":
            raise RvmkitError("fp16: the torch backend runs half precision on --device cuda only")
        self.device = torch.device(device)
        self.dtype = torch.float16 if fp16 else torch.float32
        self.model = load_model(checkpoint, variant, refiner).to(self.device, self.dtype)

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
        model = self.model
        states: list[Any] = list(state) if state is not None else [None] * 4
        with torch.inference_mode():
            x = self._tensor(src)
            x_sm = resize_by_factor(x, float(downsample_ratio))
            f1, f2, f3, f4 = model.backbone(x_sm)
            f4 = model.aspp(f4)
            hids = []
            for t in range(x.size(0)):
                frame = slice(t, t + 1)
                hid, *states = model.decoder(x_sm[frame], f1[frame], f2[frame], f3[frame], f4[frame], *states)
                hids.append(hid)
            hid = torch.cat(hids)
            fgr_residual, pha = model.project_mat(hid).split([3, 1], dim=1)
            fgr_residual, pha = model.refiner(x, x_sm, fgr_residual, pha, hid)
            fgr = (fgr_residual + x).clamp(0.0, 1.0)
        return self._host(fgr), self._host(pha.clamp(0.0, 1.0)), states

    def close(self) -> None:
        self.model = None  # type: ignore[assignment]
