"""TensorRT-ready ONNX export (the seed recipe): ratio baked in, distinct dynamic axes, simplified.

The graph always runs the refiner, like the official ONNX models (a graph cannot branch on the
ratio), so the export equals the official model at every ratio. The traced forward is the model's
own: its decoder crops its 2x upsampled maps to sizes computed as floor((n + 1) / 2) chains from
the downsampled frame (`model.common.half_up`), not to the skip tensors' shapes (nested ceil()),
which ONNX Runtime's symbolic shape inference cannot handle (see rvmkit.trt.shapes).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rvmkit.contract import DYNAMIC_AXES, INPUT_NAMES, OUTPUT_NAMES, STATE_CHANNELS, validate_ratio
from rvmkit.errors import RvmkitError
from rvmkit.export import OPSETS, PRECISIONS
from rvmkit.fileio import require_new_output, require_writable_output, write_all_atomically
from rvmkit.graph.fp16 import KEEP_FLOAT32, convert_to_float16
from rvmkit.graph.io import apply_dynamic_axes, set_ratio_metadata, trt_path_for
from rvmkit.model import MattingNetwork
from rvmkit.runtime import DEVICES

# The seed exports with a portrait 1080x1920 frame; any size traces the same graph.
EXAMPLE_SIZE = (1920, 1080)


class ExportWrapper(nn.Module):
    """forward(src, r1i..r4i) -> (fgr, pha, r1o..r4o) with the ratio baked in: the model's own
    `forward_frame(..., ratio, always_refine=True)`, traced."""

    def __init__(self, model: MattingNetwork, downsample_ratio: float) -> None:
        super().__init__()
        self.model = model
        self.ratio = float(downsample_ratio)

    def forward(self, src: Tensor, r1: Tensor, r2: Tensor, r3: Tensor, r4: Tensor) -> tuple[Tensor, ...]:
        return tuple(self.model.forward_frame(src, r1, r2, r3, r4, self.ratio, always_refine=True))


def validate_options(*, downsample_ratio: float, precision: str, opset: int, device: str) -> None:
    """One-line RvmkitErrors for options the export cannot honour, before any work."""
    validate_ratio(downsample_ratio)
    if precision not in PRECISIONS:
        raise RvmkitError(f"--precision {precision}: unsupported; choose one of {', '.join(PRECISIONS)}")
    if opset not in OPSETS:
        raise RvmkitError(f"--opset {opset}: unsupported opset; choose {OPSETS.start} to {OPSETS.stop - 1}")
    if device not in DEVICES:
        raise RvmkitError(f"--device {device}: unsupported; choose one of {', '.join(DEVICES)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise RvmkitError("--device cuda: CUDA is not available to PyTorch here; use --device cpu")


def _torch_export(model: MattingNetwork, path: Path, ratio: float, opset: int, device: str) -> None:
    wrapper = ExportWrapper(model, ratio).to(device).eval()
    src = torch.rand(1, 3, *EXAMPLE_SIZE, device=device)
    rec = (torch.zeros(1, 1, 1, 1, device=device),) * 4
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape arithmetic are expected
        torch.onnx.export(wrapper, (src, *rec), str(path), dynamo=False, opset_version=opset,
                          do_constant_folding=True, input_names=INPUT_NAMES, output_names=OUTPUT_NAMES,
                          dynamic_axes=DYNAMIC_AXES)


def simplify_model(model: Any, source: str) -> Any:
    """onnxsim (the seed's step 4), then the seed's axis names again (onnxsim may drop them)."""
    try:
        import onnxsim
    except ImportError:
        raise RvmkitError(f"{source}: onnxsim is not installed (pip install 'rvmkit[export]'); "
                          "or pass --no-simplify") from None
    simplified, ok = onnxsim.simplify(model)
    if not ok:
        raise RvmkitError(f"{source}: onnxsim could not validate the simplified model")
    apply_dynamic_axes(simplified)
    return simplified


def _finish(model: Any, ratio: float, precision: str, variant: str) -> Any:
    if precision == "float16":
        model = convert_to_float16(model, KEEP_FLOAT32[variant])
    apply_dynamic_axes(model, STATE_CHANNELS[variant])
    set_ratio_metadata(model, ratio)
    return model


def save_models(models: list[tuple[Path, Any]], overwrite: bool = False) -> None:
    """onnx.save each model to a temporary name beside its target, then publish them together (all or
    none; an existing file is replaced only with `overwrite`)."""
    import onnx

    def saver(model: Any) -> Any:
        return lambda path: onnx.save(model, str(path))

    write_all_atomically([(Path(target), saver(model)) for target, model in models], overwrite=overwrite)


def check_outputs(output: str | Path, simplify: bool = True, overwrite: bool = False,
                  inputs: tuple[str | os.PathLike | None, ...] = ()) -> Path:
    """Refuse, in one line and before exporting, an output without the .onnx suffix (the simplified
    twin is named from it), one that cannot be written, one of `inputs` (the checkpoint, the clip), or
    an existing file without `overwrite`; returns the `<stem>_trt.onnx` path."""
    output = require_writable_output(output, ".onnx")
    trt = trt_path_for(output)
    for path in (output, trt) if simplify else (output,):
        require_writable_output(path, ".onnx")
        require_new_output(path, list(inputs), overwrite)
    return trt


def export_onnx(model: MattingNetwork, output: Path, *, downsample_ratio: float = 0.25,
                precision: str = "float32", opset: int = 12, device: str = "cpu",
                simplify: bool = True, overwrite: bool = False) -> list[Path]:
    """Export `model` to `output` (and `<stem>_trt.onnx` unless simplify=False), both published
    together; returns the written paths, the simplified one last. Existing files are replaced only
    with `overwrite`."""
    import onnx

    output = Path(output)
    validate_options(downsample_ratio=downsample_ratio, precision=precision, opset=opset, device=device)
    trt = check_outputs(output, simplify, overwrite)
    with tempfile.TemporaryDirectory(prefix="rvmkit-export-") as tmp:
        raw_path = Path(tmp) / "raw.onnx"
        _torch_export(model.eval(), raw_path, downsample_ratio, opset, device)
        raw = onnx.load(str(raw_path))
    models = [(output, _finish(raw, downsample_ratio, precision, model.variant))]
    if simplify:
        simplified = simplify_model(raw, str(output))
        models.append((trt, _finish(simplified, downsample_ratio, precision, model.variant)))
    save_models(models, overwrite)
    return [path for path, _ in models]
