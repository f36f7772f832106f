"""`rvmkit build-engine`: a serialized TensorRT engine from a TRT-ready RVM ONNX and a shape profile.

Written against the TensorRT 10 Python API (Builder, OnnxParser, create_optimization_profile /
set_shape, build_serialized_network). Verified here only up to the point TensorRT is imported:
profile validation, the readiness check refusal and the "not installed" error run on CPU in tests;
the build itself needs TensorRT and an NVIDIA GPU and was not run in this development environment.

Next to `X.engine` a small `X.engine.json` records the baked downsample ratio, state channels and the
profile, because an engine file carries no metadata the runtime could check the ratio against.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from rvmkit.errors import RvmkitError, describe_path
from rvmkit.fileio import require_new_output, require_writable_output, write_all_atomically
from rvmkit.trt.check import check_model
from rvmkit.trt.profile import ShapeProfile

NOT_INSTALLED = "TensorRT is not installed: pip install 'rvmkit[tensorrt]' on a machine with an NVIDIA GPU"
SIDECAR_SUFFIX = ".json"


def import_tensorrt() -> Any:
    """The tensorrt module, or the one-line 'not installed' RvmkitError."""
    try:
        import tensorrt
    except ImportError:
        raise RvmkitError(NOT_INSTALLED) from None
    return tensorrt


def validate_workspace(workspace_gib: float) -> float:
    """A builder workspace limit must be a positive, finite number of GiB (1 byte to 2**63 - 1 bytes,
    TensorRT's size_t)."""
    size = float(workspace_gib) * (1 << 30)
    if not (math.isfinite(size) and 1 <= size < 2**63):
        raise RvmkitError(f"--workspace {workspace_gib:g}: must be a positive number of GiB")
    return workspace_gib


def sidecar_path(engine_path: str | os.PathLike) -> Path:
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + SIDECAR_SUFFIX)


def read_sidecar(engine_path: str | os.PathLike) -> dict[str, Any] | None:
    """The metadata written beside an engine by build_engine, or None when there is none."""
    path = sidecar_path(engine_path)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise RvmkitError(f"{describe_path(path)}: unreadable engine metadata (rebuild the engine)") from None


def require_ready(model_path: str | os.PathLike) -> None:
    """Refuse a model that fails any TensorRT-level `rvmkit check`, naming the failing check."""
    report = check_model(model_path)
    failures = report.failures()
    if failures:
        first = failures[0]
        raise RvmkitError(f"{describe_path(model_path)}: not ready for TensorRT, check '{first.name}' "
                          f"failed: {first.reason} (run `rvmkit check` for the full report)")


def serialize_engine(model_path: str | os.PathLike, profile: ShapeProfile, *, fp16: bool = False,
                     workspace_gib: float | None = None, verbose: bool = False) -> bytes:
    """Parse the ONNX, add the one optimization profile, build; the serialized engine bytes."""
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(os.fspath(model_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise RvmkitError(f"{describe_path(model_path)}: TensorRT's ONNX parser failed: "
                          f"{errors[0] if errors else 'no detail'}")
    config = builder.create_builder_config()
    if workspace_gib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if fp16:
        flag = getattr(trt.BuilderFlag, "FP16", None)
        if flag is None:  # removed in TensorRT 11 (strongly typed networks only)
            raise RvmkitError("--fp16: this TensorRT has no FP16 builder flag; build from a float16 export "
                              "(`rvmkit export --precision float16`) instead")
        config.set_flag(flag)
    trt_profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in profile.shapes.items():
        trt_profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(trt_profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RvmkitError(f"{describe_path(model_path)}: TensorRT could not build an engine for this profile "
                          "(rerun with --debug for TensorRT's log)")
    return bytes(serialized)


def engine_metadata(model_path: str | os.PathLike, profile: ShapeProfile, fp16: bool) -> dict[str, Any]:
    trt = import_tensorrt()
    return {"model": os.fspath(model_path), "downsample_ratio": profile.ratio,
            "state_channels": list(profile.channels), "full_states": profile.full_states, "fp16": fp16,
            "tensorrt_version": getattr(trt, "__version__", "unknown"), "profile": profile.as_json()}


def build_engine(model_path: str | os.PathLike, output: str | os.PathLike, profile: ShapeProfile, *,
                 fp16: bool = False, workspace_gib: float | None = None, verbose: bool = False,
                 overwrite: bool = False) -> Path:
    """Check the model, build the engine, write `output` and its `.json` sidecar atomically, together.

    The readiness check runs before TensorRT is imported, so an unfit model is refused even where
    TensorRT is absent. Neither file may be the model; existing ones are replaced only with `overwrite`.
    """
    if workspace_gib is not None:
        validate_workspace(workspace_gib)
    output = require_writable_output(output)
    for path in (output, sidecar_path(output)):
        require_new_output(path, [model_path], overwrite)
    require_ready(model_path)
    data = serialize_engine(model_path, profile, fp16=fp16, workspace_gib=workspace_gib, verbose=verbose)
    metadata = json.dumps(engine_metadata(model_path, profile, fp16), indent=2) + "\n"
    write_all_atomically([(output, lambda tmp: tmp.write_bytes(data)),
                          (sidecar_path(output), lambda tmp: tmp.write_text(metadata))], overwrite=overwrite)
    return output
