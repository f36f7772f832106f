"""OpenVINO backend on the RVM ONNX (official or TRT-ready), CPU plugin, dynamic shapes.

Two infer requests alternate: frame t's state outputs (ov.Tensors) are set as frame t+1's inputs on
the other request, so states stay in OpenVINO's memory and are never overwritten while in use.
`precision="bf16"` computes in bfloat16 (AMX / AVX512_BF16), "fp16" in float16 (AVX512_FP16 / AMX_FP16): not
offered to users (`rvmkit.runtime.precision`), used by `rvmkit verify --precision` and the benchmarks.
"""

from __future__ import annotations

import os

import numpy as np
import openvino as ov

from rvmkit.contract import STATE_INPUTS, STATE_OUTPUTS
from rvmkit.errors import RvmkitError, describe_path, first_line
from rvmkit.runtime.base import Backend, State

#: rvmkit's precision names -> OpenVINO's inference precision hint
HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
#: a reduced precision the plugin silently replaces with f32 on a CPU without its instructions
NEEDS = {"bf16": (ov.Type.bf16, "avx512_bf16 or amx_bf16"), "fp16": (ov.Type.f16, "avx512_fp16 or amx_fp16")}


def compile_cpu(model_path: str | os.PathLike, precision: str = "fp32",
                threads: int | None = None) -> ov.CompiledModel:
    """The ONNX at `model_path` compiled for the CPU plugin in `precision`; bf16 must really run in bf16
    (the plugin silently falls back to f32 on a CPU without AVX512_BF16 / AMX)."""
    if precision not in HINTS:
        raise RvmkitError(f"backend openvino: precision {precision} is not one of {', '.join(HINTS)}")
    # f32 by default: the CPU plugin would otherwise pick bf16 on CPUs that have it, far from the reference
    config: dict = {"INFERENCE_PRECISION_HINT": HINTS[precision]}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    try:
        core = ov.Core()
        model = core.read_model(os.fspath(model_path))
        pad_ceil_pools(model)
        compiled = core.compile_model(model, "CPU", config)
    except Exception as exc:  # OpenVINO raises RuntimeError with multi-line text
        first = first_line(exc)
        raise RvmkitError(f"{describe_path(model_path)}: OpenVINO cannot load it ({first})") from None
    if precision in NEEDS and compiled.get_property("INFERENCE_PRECISION_HINT") != NEEDS[precision][0]:
        raise RvmkitError(f"backend openvino: this CPU's plugin does not compute in {precision} (it needs "
                          f"{NEEDS[precision][1]})")
    return compiled


class OpenVINOBackend(Backend):
    name = "openvino"

    def __init__(self, model_path: str | os.PathLike, *, device: str = "cpu",
                 threads: int | None = None, precision: str = "fp32") -> None:
        if device != "cpu":
            raise RvmkitError("backend openvino: runs on the CPU here; use --device cpu")
        compiled = compile_cpu(model_path, precision, threads)
        self.precision = precision
        self.compiled = compiled
        names = {name for port in compiled.inputs for name in port.get_names()}
        self.has_ratio_input = "downsample_ratio" in names
        src_type = next(p for p in compiled.inputs if "src" in p.get_names()).get_element_type()
        self.dtype = np.float16 if src_type == ov.Type.f16 else np.float32
        self.requests = [compiled.create_infer_request(), compiled.create_infer_request()]
        self._turn = 0

    def step(self, src: np.ndarray, state: State, downsample_ratio: float
             ) -> tuple[np.ndarray, np.ndarray, State]:
        request = self.requests[self._turn]
        self._turn ^= 1
        request.set_tensor("src", ov.Tensor(np.ascontiguousarray(src, dtype=self.dtype)))
        if state is None:
            zeros = np.zeros((1, 1, 1, 1), dtype=self.dtype)
            state = [ov.Tensor(zeros) for _ in STATE_INPUTS]
        for name, tensor in zip(STATE_INPUTS, state, strict=True):
            request.set_tensor(name, tensor)
        if self.has_ratio_input:
            request.set_tensor("downsample_ratio", ov.Tensor(np.array([downsample_ratio], dtype=np.float32)))
        request.infer()
        fgr = request.get_tensor("fgr").data.astype(np.float32, copy=True)
        pha = request.get_tensor("pha").data.astype(np.float32, copy=True)
        return fgr, pha, [request.get_tensor(name) for name in STATE_OUTPUTS]

    def states(self, state: State) -> list[np.ndarray]:
        return [np.array(tensor.data, np.float32) for tensor in state]

    def close(self) -> None:
        self.requests = []
        self.compiled = None


def pad_ceil_pools(model: ov.Model) -> int:
    """Rewrite RVM's ceil-mode 2x2 average pools as floor mode with one padded row and column (padding
    excluded from the average): the same output, and OpenVINO's CPU plugin then accepts a side of 1
    (it refuses a kernel larger than its input, which ceil mode allows, on frames that a small
    --downsample-ratio or --input-resize shrinks under 5 pixels). Returns the number rewritten."""
    rewritten = 0
    for op in model.get_ops():
        if op.get_type_name() != "AvgPool":
            continue
        attrs = op.get_attributes()
        non_overlapping = attrs["kernel"] == attrs["strides"] and not any(attrs["pads_begin"])
        if (non_overlapping and not any(attrs["pads_end"]) and attrs["exclude-pad"]
                and str(attrs["rounding_type"]).startswith("ceil")):
            op.set_attribute("pads_end", [size - 1 for size in attrs["kernel"]])
            op.set_attribute("rounding_type", "floor")
            rewritten += 1
    if rewritten:
        model.validate_nodes_and_infer_types()
    return rewritten
