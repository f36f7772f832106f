"""ONNX Runtime TensorRT / CUDA execution-provider options built from the same profile as build-engine.

ORT's TensorRT EP builds its own engine; without explicit profile shapes it rebuilds whenever an input
shape leaves the range it has seen (each new video size, and the [1,1,1,1] -> full-size state change
after frame one). `trt_profile_min_shapes/opt/max` give it the profile `rvmkit profile` computes, and
the engine cache keeps the build across runs. Only option strings are produced here (verified in
tests on CPU); running them needs onnxruntime-gpu with TensorRT, not available where this was written.
"""

from __future__ import annotations

import os
from typing import Any

from rvmkit.trt.profile import ShapeProfile

TRT_EP = "TensorrtExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"


def tensorrt_provider_options(profile: ShapeProfile, *, fp16: bool = False,
                              cache_dir: str | os.PathLike | None = None, device_id: int = 0,
                              workspace_bytes: int | None = None) -> dict[str, str]:
    """TensorRT EP options: the explicit profile, fp16, and an engine + timing cache in `cache_dir`."""
    options = {
        "device_id": str(device_id),
        "trt_profile_min_shapes": profile.shape_string("min"),
        "trt_profile_opt_shapes": profile.shape_string("opt"),
        "trt_profile_max_shapes": profile.shape_string("max"),
        "trt_fp16_enable": "True" if fp16 else "False",
    }
    if cache_dir is not None:
        path = os.fspath(cache_dir)
        options.update({"trt_engine_cache_enable": "True", "trt_engine_cache_path": path,
                        "trt_timing_cache_enable": "True", "trt_timing_cache_path": path})
    if workspace_bytes:
        options["trt_max_workspace_size"] = str(int(workspace_bytes))
    return options


def cuda_provider_options(device_id: int = 0) -> dict[str, str]:
    """CUDA EP options for the nodes TensorRT does not take. HEURISTIC conv-algo search avoids an
    exhaustive cuDNN benchmark per new input shape (the states change shape after the first frame)."""
    return {"device_id": str(device_id), "cudnn_conv_algo_search": "HEURISTIC",
            "do_copy_in_default_stream": "True"}


def providers(profile: ShapeProfile, *, fp16: bool = False, cache_dir: str | os.PathLike | None = None,
              device_id: int = 0, with_tensorrt: bool = True) -> list[Any]:
    """The `providers=` list for onnxruntime.InferenceSession: TensorRT (optional), CUDA, CPU."""
    result: list[Any] = []
    if with_tensorrt:
        result.append((TRT_EP, tensorrt_provider_options(profile, fp16=fp16, cache_dir=cache_dir,
                                                         device_id=device_id)))
    result += [(CUDA_EP, cuda_provider_options(device_id)), CPU_EP]
    return result
