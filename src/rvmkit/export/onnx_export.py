"""TensorRT-ready ONNX export (the seed recipe): ratio baked in, distinct dynamic axes, simplified.

The graph always runs the refiner, like the official ONNX models (a graph cannot branch on the
ratio), so the export equals the official model at every ratio. One formulation differs from
the plain model, with identical numbers: the decoder crops its 2x upsampled maps to sizes
computed explicitly as floor((n + 1) / 2) chains from the downsampled frame, instead of to the
skip tensors' shapes (nested ceil()), which ONNX Runtime's symbolic shape inference cannot
handle (see rvmkit.trt.shapes).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rvmkit.contract import DYNAMIC_AXES, INPUT_NAMES, OUTPUT_NAMES, STATE_CHANNELS, validate_ratio
from rvmkit.errors import RvmkitError
from rvmkit.fileio import require_new_output, require_writable_output, write_all_atomically
from rvmkit.graph.fp16 import KEEP_FLOAT32, convert_to_float16
from rvmkit.graph.io import apply_dynamic_axes, set_ratio_metadata, trt_path_for
from rvmkit.model import MattingNetwork
from rvmkit.model.common import resize_by_factor

OPSETS = range(11, 18)  # 11..17; 12 is the seed's (and the official models') opset
PRECISIONS = ("float32", "float16")
DEVICES = ("cpu", "cuda")
# The seed exports with a portrait 1080x1920 frame; any size traces the same graph.
EXAMPLE_SIZE = (1920, 1080)


def _half_up(n: Any) -> Any:
    """ceil(n / 2) written as (n + 1) // 2, the form symbolic shape inference can reason about."""
    if isinstance(n, Tensor):
        return torch.div(n + 1, 2, rounding_mode="trunc")
    return (n + 1) // 2


def _upsample_crop(x: Tensor, size: tuple[Any, Any]) -> Tensor:
    """Upsample by 2 (scale, not size, maps coordinates) and crop: as `upsample2x_cropped`."""
    x = F.interpolate(x, scale_factor=(2.0, 2.0), mode="bilinear", align_corners=False)
    return x[:, :, : size[0], : size[1]]


def _upsampling_block(block: nn.Module, x: Tensor, f: Tensor, s: Tensor, r: Tensor,
                      size: tuple[Any, Any]) -> tuple[Tensor, Tensor]:
    x = block.conv(torch.cat([_upsample_crop(x, size), f, s], dim=1))
    a, b = x.split(block.out_channels // 2, dim=1)
    r = block.gru(b, r)
    return torch.cat([a, r], dim=1), r


class ExportWrapper(nn.Module):
    """forward(src, r1i..r4i) -> (fgr, pha, r1o..r4o) with the ratio baked in.

    Same computation as `MattingNetwork.forward_frame(..., ratio, always_refine=True)`.
    """

    def __init__(self, model: MattingNetwork, downsample_ratio: float) -> None:
        super().__init__()
        self.model = model
        self.ratio = float(downsample_ratio)

    def forward(self, src: Tensor, r1: Tensor, r2: Tensor, r3: Tensor, r4: Tensor) -> tuple[Tensor, ...]:
        m, dec = self.model, self.model.decoder
        src_sm = resize_by_factor(src, self.ratio)
        f1, f2, f3, f4 = m.backbone(src_sm)
        f4 = m.aspp(f4)
        sizes = [(src_sm.shape[2], src_sm.shape[3])]
        for _ in range(3):
            sizes.append((_half_up(sizes[-1][0]), _half_up(sizes[-1][1])))
        s1 = dec.avgpool(src_sm)
        s2 = dec.avgpool(s1)
        s3 = dec.avgpool(s2)
        x4, r4 = dec.decode4(f4, r4)
        x3, r3 = _upsampling_block(dec.decode3, x4, f3, s3, r3, sizes[3])
        x2, r2 = _upsampling_block(dec.decode2, x3, f2, s2, r2, sizes[2])
        x1, r1 = _upsampling_block(dec.decode1, x2, f1, s1, r1, sizes[1])
        hid = dec.decode0.conv(torch.cat([_upsample_crop(x1, sizes[0]), src_sm], dim=1))
        fgr_residual, pha = m.project_mat(hid).split([3, 1], dim=1)
        fgr_residual, pha = m.refiner(src, src_sm, fgr_residual, pha, hid)
        fgr = (fgr_residual + src).clamp(0.0, 1.0)
        return fgr, pha.clamp(0.0, 1.0), r1, r2, r3, r4


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
