"""ONNX Runtime backend for official RVM ONNX (ratio input) and TRT-ready ONNX (ratio baked in).

Uses IO binding: the recurrent outputs r1o..r4o stay as OrtValues on the execution device and are
bound as the next frame's r1i..r4i, so states are never copied to numpy and back.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort

from rvmkit.cache import official_onnx_path
from rvmkit.contract import STATE_INPUTS, STATE_OUTPUTS
from rvmkit.errors import RvmkitError, describe_path, first_line
from rvmkit.runtime.base import Backend, State
from rvmkit.runtime.ort_session import session_options

if TYPE_CHECKING:
    from rvmkit.runtime import ModelSpec

#: on the CPU: 0 runs the plain ONNX Runtime path (the whole official graph), 1 the fast path at every size;
#: unset, each frame size runs on the faster of the two (measured once per CPU, model and size)
FAST_ENV = "RVMKIT_FAST"
_OFF, _ON = ("0", "false", "no", "off"), ("1", "true", "yes", "on")


def providers_for(device: str) -> list[Any]:
    """Execution providers for --device: CPU, or CUDA (with CPU fallback for unsupported nodes)."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise RvmkitError("--device cuda: this onnxruntime has no CUDA execution provider "
                          "(install onnxruntime-gpu, or use --device cpu)")
    try:
        from rvmkit.runtime.ort_providers import cuda_provider_options

        return [("CUDAExecutionProvider", cuda_provider_options()), "CPUExecutionProvider"]
    except ImportError:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]


class OnnxRuntimeBackend(Backend):
    """One InferenceSession; `step` binds src + states, runs, returns host fgr/pha and device states."""

    name = "onnxruntime"

    @classmethod
    def open(cls, spec: ModelSpec, *, device: str = "cpu", variant: str | None = None,
             fast: bool | None = None, **options: Any) -> Backend:
        """On the CPU the fast path (`rvmkit.runtime.ort_fast`) unless it is turned off or cannot take the
        model; otherwise one plain session."""
        if device == "cpu":
            path = spec.path if spec.path is not None else official_onnx_path()
            backend = _fast_onnxruntime(path, fast, options)
            if backend is not None:
                return backend.labelled(spec, path)
        return super().open(spec, device=device, **options)

    @classmethod
    def preload(cls, device: str = "cpu") -> None:
        """On the CPU: the fast path's imports and its compiled kernels (numba's disk cache)."""
        if device == "cpu":
            from rvmkit.runtime import kernels, ort_fast  # noqa: F401 - ort_fast: its imports, once

            kernels.warm_up(wait=True)

    def __init__(self, model_path: str | os.PathLike, *, device: str = "cpu",
                 providers: list[Any] | None = None, threads: int | None = None,
                 spinning: bool = True) -> None:
        try:
            self.session = ort.InferenceSession(str(model_path), session_options(threads, spinning),
                                                providers=providers or providers_for(device))
        except RvmkitError:
            raise
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            first = first_line(exc)
            raise RvmkitError(f"{describe_path(model_path)}: onnxruntime cannot load it ({first})") from None
        self.path = Path(model_path)
        inputs = {i.name: i for i in self.session.get_inputs()}
        self.has_ratio_input = "downsample_ratio" in inputs
        self.dtype = np.float16 if inputs["src"].type == "tensor(float16)" else np.float32
        self.device_type = "cuda" if self.session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
        self._ratio_value: tuple[float, ort.OrtValue] | None = None

    def initial_state(self) -> list[ort.OrtValue]:
        zeros = np.zeros((1, 1, 1, 1), dtype=self.dtype)
        return [ort.OrtValue.ortvalue_from_numpy(zeros, self.device_type, 0) for _ in STATE_INPUTS]

    def _ratio(self, ratio: float) -> ort.OrtValue:
        if self._ratio_value is None or self._ratio_value[0] != ratio:
            value = ort.OrtValue.ortvalue_from_numpy(np.array([ratio], dtype=np.float32))
            self._ratio_value = (ratio, value)
        return self._ratio_value[1]

    def step(self, src: np.ndarray, state: State, downsample_ratio: float
             ) -> tuple[np.ndarray, np.ndarray, State]:
        states = self.initial_state() if state is None else state
        binding = self.session.io_binding()
        binding.bind_cpu_input("src", np.ascontiguousarray(src, dtype=self.dtype))
        for name, value in zip(STATE_INPUTS, states, strict=True):
            binding.bind_ortvalue_input(name, value)
        if self.has_ratio_input:
            binding.bind_ortvalue_input("downsample_ratio", self._ratio(float(downsample_ratio)))
        binding.bind_output("fgr", "cpu")
        binding.bind_output("pha", "cpu")
        for name in STATE_OUTPUTS:
            binding.bind_output(name, self.device_type)
        self.session.run_with_iobinding(binding)
        fgr, pha, *next_state = binding.get_outputs()
        return (fgr.numpy().astype(np.float32, copy=False), pha.numpy().astype(np.float32, copy=False),
                next_state)

    def states(self, state: State) -> list[np.ndarray]:
        return [np.asarray(value.numpy(), np.float32) for value in state]

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]


def _fast_onnxruntime(path: Path, fast: bool | None, options: dict[str, Any]) -> Backend | None:
    """The CPU fast path unless disabled (fast=False or RVMKIT_FAST=0).

    fast=None falls back to the plain path (None returned) for a float16 model or a graph the rewrite
    does not recognise; fast=True makes that an error. fast=None with RVMKIT_FAST unset also lets each
    frame size run on the faster of the fast path and a plain session (`rvmkit.runtime.path_choice`): the
    plain one with the fast path's session settings (threads, no spinning), so only the graphs differ.
    """
    setting = os.environ.get(FAST_ENV, "").strip().lower() if fast is None else ""
    if fast is False or setting in _OFF:
        return None
    from rvmkit.graph.lowres import UnsupportedGraph
    from rvmkit.runtime.ort_fast import FastOnnxRuntimeBackend

    plain = None
    if fast is None and setting not in _ON:
        plain = partial(OnnxRuntimeBackend, path, threads=options.get("threads"),
                        spinning=bool(options.get("spinning", False)))
    try:
        return FastOnnxRuntimeBackend(path, plain=plain, **options)
    except UnsupportedGraph:
        if fast:
            raise
        return None
