"""Inference backends behind one interface (`rvmkit.runtime.base.Backend`), picked by name from the
registry (`rvmkit.runtime.registry`: what each backend runs, where, in what precision).

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

from rvmkit.contract import auto_downsample_ratio, is_torch_model, parse_ratio, resolve_ratio
from rvmkit.errors import RvmkitError, describe_path, require_readable_file
from rvmkit.graph.io import baked_ratio, has_ratio_input, require_rvm_onnx
from rvmkit.runtime import registry
from rvmkit.runtime.base import Backend
from rvmkit.runtime.precision import check_precision
from rvmkit.runtime.registry import BACKENDS

DEVICES = ("cpu", "cuda")

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


_KIND_WORDS = {"onnx": "an RVM ONNX model", "onnx_baked": "a TRT-ready ONNX model",
               "checkpoint": "a PyTorch checkpoint", "engine": "a TensorRT engine"}


def default_backend(spec: ModelSpec) -> str:
    """The backend a model file runs on when none is named."""
    return {"checkpoint": "torch", "engine": "tensorrt"}.get(spec.kind, "onnxruntime")


def check_backend(name: str, spec: ModelSpec, device: str = "cpu", *, internal: bool = False) -> None:
    """Refuse a backend/model/device combination up front, in one line.
    `internal`: also the backends users cannot name (the ONNX Runtime reference)."""
    info = registry.info(name)
    if info is None or not (info.public or internal):
        raise RvmkitError(f"backend {name!r}: unknown; choose one of {', '.join(BACKENDS)}")
    if device not in DEVICES:
        raise RvmkitError(f"device {device!r}: unknown; choose one of {', '.join(DEVICES)}")
    if info.needs_model and spec.path is None:
        raise RvmkitError(info.needs_model)
    if spec.kind not in info.accepts:
        hint = info.kind_hints.get(spec.kind, default_backend(spec))
        raise RvmkitError(f"{describe_path(spec.label)}: {_KIND_WORDS[spec.kind]} cannot run on the {name} "
                          f"backend; use --backend {hint}")
    if device not in info.devices:
        raise RvmkitError(info.device_refusal)


def backend_class(name: str) -> type[Backend]:
    """Import the backend's module on demand; a missing optional runtime is a one-line error."""
    info = registry.info(name)
    assert info is not None, name
    try:
        module = importlib.import_module(info.module)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        hint = f" (pip install 'rvmkit[{info.extra}]')" if info.extra else ""
        raise RvmkitError(f"backend {name}: cannot be loaded, {missing} is not installed{hint}") from None
    return getattr(module, info.cls)


def load_backend(name: str | None, model: Any = None, *, device: str = "cpu",
                 variant: str | None = None, precision: str = "fp32", threads: int | None = None,
                 offered_only: bool = True, **options: Any) -> Backend:
    """A ready backend for `model` (a path, an in-memory torch model, a resolved ModelSpec, or None for
    the pretrained default): the one way every front-end, bench and verify open an engine.

    name None picks `default_backend`. `threads` caps the backend's threads (process-wide for torch).
    `options` go to the backend (e.g. fp16=True for torch, fast=False for the plain ONNX Runtime path).
    `precision` other than fp32 is refused unless offered (`rvmkit.runtime.precision`; none is yet);
    offered_only=False lets `verify` measure a mode that is not offered.
    """
    spec = model if isinstance(model, ModelSpec) else resolve_model(model, name)
    name = name or default_backend(spec)
    if spec.path is None and spec.module is None:
        spec = resolve_model(None, name)
    check_backend(name, spec, device, internal=True)
    check_precision(precision, name, device, offered_only=offered_only)
    if threads:
        options["threads"] = threads
    if options.get("fast", False) is None:  # fast=None: the default, for any backend
        del options["fast"]
    if precision != "fp32":
        options["precision"] = precision
    return backend_class(name).open(spec, device=device, variant=variant, **options)


def preload(name: str | None = None, device: str = "cpu") -> None:
    """Import backend `name`'s runtime (None: onnxruntime, the default for ONNX models) and load what its
    first frame would wait for (the CPU fast path's compiled kernels): a server, before its first job.
    A backend that cannot be loaded is left for the job to report."""
    try:
        cls = backend_class(name or "onnxruntime")
    except RvmkitError:
        return
    cls.preload(device)


def preload_fast_path() -> None:
    """Load the CPU fast path's compiled kernels now (the earlier name of `preload()`)."""
    preload("onnxruntime", "cpu")


__all__ = ["BACKENDS", "DEVICES", "Backend", "ModelSpec", "auto_downsample_ratio", "backend_class",
           "check_backend", "default_backend", "is_torch_model", "load_backend", "parse_ratio",
           "preload", "preload_fast_path", "registry",
           "resolve_model", "resolve_ratio"]
