"""Inference backends behind one interface (`rvmkit.runtime.base.Backend`), picked by name.

`resolve_model` classifies what `--model` points at (official RVM ONNX, TRT-ready ONNX with a baked
ratio, PyTorch checkpoint, TensorRT engine) before anything heavy is loaded; `load_backend` then
imports only the backend module asked for, so torch/openvino/tensorrt stay optional.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rvmkit.cache import official_onnx_path
from rvmkit.contract import auto_downsample_ratio, is_torch_model, parse_ratio, resolve_ratio
from rvmkit.errors import RvmkitError, describe_path, require_readable_file
from rvmkit.graph.io import baked_ratio, has_ratio_input, require_rvm_onnx
from rvmkit.graph.lowres import UnsupportedGraph
from rvmkit.runtime.base import Backend
from rvmkit.runtime.precision import check_precision

BACKENDS = ("onnxruntime", "openvino", "torch", "tensorrt")
DEVICES = ("cpu", "cuda")

# backend name -> (module, class)
_MODULES = {
    "onnxruntime": ("rvmkit.runtime.onnxruntime", "OnnxRuntimeBackend"),
    "openvino": ("rvmkit.runtime.openvino", "OpenVINOBackend"),
    "torch": ("rvmkit.runtime.torch", "TorchBackend"),
    "tensorrt": ("rvmkit.runtime.tensorrt", "TensorRTBackend"),
}
# pip extra that provides each backend's runtime, for the "not installed" message
_EXTRAS = {"openvino": "openvino", "torch": "export", "tensorrt": "tensorrt"}

ONNX_SUFFIXES = (".onnx",)
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt")
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


@dataclass(frozen=True)
class ModelSpec:
    """What a model file is. kind: 'onnx' (ratio is an input), 'onnx_baked' (TRT-ready, ratio in the
    graph), 'checkpoint' (.pth) or 'engine'. path None means the cached pretrained default."""

    kind: str
    path: Path | None
    baked_ratio: float | None = None
    module: Any = None  # an in-memory torch model (kind 'checkpoint', path None)

    @property
    def label(self) -> str:
        if self.module is not None:
            return "in-memory model"
        return str(self.path) if self.path is not None else "pretrained mobilenetv3"


def _suffix(path: Path) -> str:
    return path.suffix.lower()


def resolve_model(model: str | os.PathLike | None, backend: str | None = None) -> ModelSpec:
    """Classify `model` (None: the pretrained default for `backend`) without loading any runtime.

    ONNX files are opened and checked to be RVM matting graphs; a baked ratio is read from them.
    """
    if model is None:
        return ModelSpec("checkpoint" if backend == "torch" else "onnx", None)
    if is_torch_model(model):
        return ModelSpec("checkpoint", None, module=model)
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model {model!r}: expected a model file path or a torch model object")
    path = Path(require_readable_file(model, "model file"))
    suffix = _suffix(path)
    if suffix in CHECKPOINT_SUFFIXES:
        return ModelSpec("checkpoint", path)
    if suffix in ENGINE_SUFFIXES:
        return ModelSpec("engine", path)
    if suffix not in ONNX_SUFFIXES and _looks_like_zip_or_pickle(path):
        return ModelSpec("checkpoint", path)
    if suffix not in ONNX_SUFFIXES and backend == "tensorrt":
        return ModelSpec("engine", path)
    onnx_model = require_rvm_onnx(path)
    if has_ratio_input(onnx_model):
        return ModelSpec("onnx", path)
    ratio = baked_ratio(onnx_model)
    if ratio is None:
        raise RvmkitError(f"{describe_path(path)}: RVM ONNX without a downsample_ratio input and no "
                          "baked ratio found; re-export it with `rvmkit export`")
    return ModelSpec("onnx_baked", path, float(ratio))


def _looks_like_zip_or_pickle(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(4)
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


# which model kinds each backend runs
_ACCEPTS = {
    "onnxruntime": ("onnx", "onnx_baked"),
    "openvino": ("onnx", "onnx_baked"),
    "torch": ("checkpoint", "onnx"),
    "tensorrt": ("engine", "onnx_baked"),
}
_KIND_WORDS = {"onnx": "an RVM ONNX model", "onnx_baked": "a TRT-ready ONNX model",
               "checkpoint": "a PyTorch checkpoint", "engine": "a TensorRT engine"}


def default_backend(spec: ModelSpec) -> str:
    """The backend a model file runs on when none is named."""
    return {"checkpoint": "torch", "engine": "tensorrt"}.get(spec.kind, "onnxruntime")


def check_backend(name: str, spec: ModelSpec, device: str = "cpu") -> None:
    """Refuse a backend/model/device combination up front, in one line."""
    if name not in BACKENDS:
        raise RvmkitError(f"backend {name!r}: unknown; choose one of {', '.join(BACKENDS)}")
    if device not in DEVICES:
        raise RvmkitError(f"device {device!r}: unknown; choose one of {', '.join(DEVICES)}")
    if name == "tensorrt" and spec.path is None:
        raise RvmkitError("backend tensorrt: needs --model, a TensorRT engine or a TRT-ready ONNX "
                          "(see `rvmkit export` and `rvmkit build-engine`)")
    if spec.kind not in _ACCEPTS[name]:
        hint = default_backend(spec)
        if name == "tensorrt" and spec.kind == "onnx":
            hint = "onnxruntime, or make it TRT-ready with `rvmkit convert`"
        raise RvmkitError(f"{describe_path(spec.label)}: {_KIND_WORDS[spec.kind]} cannot run on the {name} "
                          f"backend; use --backend {hint}")
    if name == "tensorrt" and device != "cuda":
        raise RvmkitError("backend tensorrt: runs on an NVIDIA GPU only; add --device cuda")
    if name == "openvino" and device != "cpu":
        raise RvmkitError("backend openvino: runs on the CPU here; use --device cpu")


def backend_class(name: str) -> type[Backend]:
    """Import the backend's module on demand; a missing optional runtime is a one-line error."""
    module_name, class_name = _MODULES[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        extra = _EXTRAS.get(name)
        hint = f" (pip install 'rvmkit[{extra}]')" if extra else ""
        raise RvmkitError(f"backend {name}: cannot be loaded, {missing} is not installed{hint}") from None
    return getattr(module, class_name)


def load_backend(name: str | None, model: Any = None, *, device: str = "cpu",
                 variant: str | None = None, precision: str = "fp32", **options: Any) -> Backend:
    """A ready backend for `model` (a path, an in-memory torch model, a resolved ModelSpec, or None for
    the pretrained default).

    name None picks `default_backend`. `options` go to the backend (e.g. fp16=True for torch).
    `precision` other than fp32 is refused unless offered (`rvmkit.runtime.precision`; none is yet).
    """
    spec = model if isinstance(model, ModelSpec) else resolve_model(model, name)
    name = name or default_backend(spec)
    if spec.path is None and spec.module is None:
        spec = resolve_model(None, name)
    check_backend(name, spec, device)
    check_precision(precision, name, device)
    cls = backend_class(name)
    if name == "torch":
        backend = cls(spec.module if spec.module is not None else spec.path, device=device, variant=variant,
                      **options)
        backend.model_label = spec.label
        return backend
    if name == "tensorrt":
        return cls(spec.path, **options)
    path = spec.path if spec.path is not None else official_onnx_path()
    fast = options.pop("fast", None)
    backend = _fast_onnxruntime(path, fast, options) if name == "onnxruntime" and device == "cpu" else None
    if backend is None:
        backend = cls(path, device=device, **options)
    if spec.baked_ratio is not None:
        backend.baked_ratio = spec.baked_ratio
    backend.model_label = spec.label if spec.path is not None or spec.module is not None else str(path)
    return backend


#: set to 0 to run the plain ONNX Runtime path (the whole official graph) instead of the fast one
FAST_ENV = "RVMKIT_FAST"


def _fast_onnxruntime(path: Path, fast: bool | None, options: dict[str, Any]) -> Backend | None:
    """The CPU fast path (`rvmkit.runtime.ort_fast`) unless disabled (fast=False or RVMKIT_FAST=0).

    fast=None falls back to the plain path (None returned) for a float16 model or a graph the rewrite
    does not recognise; fast=True makes that an error.
    """
    if fast is None and os.environ.get(FAST_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    if fast is False:
        return None
    from rvmkit.runtime.ort_fast import FastOnnxRuntimeBackend  # imports onnxruntime: only when used

    try:
        return FastOnnxRuntimeBackend(path, **options)
    except UnsupportedGraph:
        if fast:
            raise
        return None


def preload_fast_path() -> None:
    """Load the CPU fast path's compiled kernels now (a server, before its first job)."""
    from rvmkit.runtime import kernels, ort_fast  # noqa: F401 - ort_fast: its imports, once

    kernels.warm_up(wait=True)


__all__ = ["BACKENDS", "DEVICES", "Backend", "ModelSpec", "auto_downsample_ratio", "backend_class",
           "check_backend", "default_backend", "is_torch_model", "load_backend", "parse_ratio",
           "preload_fast_path",
           "resolve_model", "resolve_ratio"]
