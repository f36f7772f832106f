"""`rvmkit check`: TensorRT readiness of the TRT-ready export vs the official ONNX."""

from __future__ import annotations

import sys
from pathlib import Path

import onnx
import pytest
from onnx import helper

from rvmkit.trt.check import (
    FAIL,
    ORT_TRT,
    PASS,
    check_dim_names,
    check_model,
    check_ops,
    float_inputs_feeding_shapes,
    op_support,
    trt_op_table,
)


def make_trt_ready(official: Path, target: Path) -> Path:
    """The TRT-ready form of the official ONNX (ratio 0.25 baked in), as `rvmkit convert` makes it."""
    from rvmkit.graph.bake import convert_official

    return Path(convert_official(official, target, 0.25))


@pytest.fixture(scope="session")
def exported(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`rvmkit export`'s simplified TRT-ready model (its formulation passes ORT's symbolic inference)."""
    from rvmkit import weights
    from rvmkit.export.onnx_export import export_onnx

    target = tmp_path_factory.mktemp("check-export") / "rvm.onnx"
    return export_onnx(weights.load_model(checkpoint), target, downsample_ratio=0.25)[-1]


@pytest.mark.slow
def test_check_passes_exported_model_for_tensorrt_and_ort_trt_ep(exported):
    report = check_model(exported)
    assert report.ready_for_tensorrt and report.ready_for_ort_trt, report.results
    assert all(r.status == PASS for r in report.results), report.results


def test_check_passes_converted_model_for_tensorrt_and_ort_trt_ep(trt_ready):
    """convert rewrites the official decoder crops into forms ORT's symbolic inference handles."""
    report = check_model(trt_ready)
    assert report.ready_for_tensorrt and report.ready_for_ort_trt, report.results
    assert all(r.status == PASS for r in report.results), report.results


def test_check_reports_symbolic_inference_at_its_own_level(official_onnx, tmp_path, monkeypatch):
    """Without the crop rewrite the official graph's nested-ceil Slice crops are fine for TensorRT,
    not for ORT's symbolic shape inference: ready for TensorRT but not for ORT's TensorRT EP."""
    from rvmkit.graph import bake

    monkeypatch.setattr(bake, "rewrite_crop_sizes", lambda graph: 0)
    monkeypatch.setitem(sys.modules, "onnxsim", None)  # not needed here; saves its time
    report = check_model(make_trt_ready(official_onnx, tmp_path / "kept_crops.onnx"))
    assert report.ready_for_tensorrt, report.failures()
    assert all(r.status == PASS for r in report.results if r.level != ORT_TRT), report.results
    symbolic = [r for r in report.results if r.level == ORT_TRT]
    assert len(symbolic) == 1 and symbolic[0].status == FAIL and not report.ready_for_ort_trt
    assert "TensorRT itself does not use it" in symbolic[0].reason


def test_check_rejects_official_model_naming_the_resize_fed_by_downsample_ratio(official_onnx):
    report = check_model(official_onnx)
    assert not report.ready_for_tensorrt
    float_check = next(r for r in report.results if r.name == "no float input feeds a shape")
    assert float_check.status == FAIL
    assert "downsample_ratio" in float_check.reason and "Resize 'Resize_3'" in float_check.reason
    assert "scales" in float_check.reason
    # src and the states are float inputs too, but their values never reach a shape
    assert list(float_inputs_feeding_shapes(onnx.load(official_onnx))) == ["downsample_ratio"]


def test_check_flags_official_height_shared_by_src_and_r1i(official_onnx):
    result = check_dim_names(onnx.load(official_onnx))
    assert result.status == FAIL
    assert "'height' is shared by src[2], r1i[2]" in result.reason
    assert "'channels' is shared by r1i[1], r2i[1]" in result.reason


def _rename_dim(model, tensor: str, axis: int, name: str | None):
    value = next(v for v in [*model.graph.input, *model.graph.output] if v.name == tensor)
    dim = value.type.tensor_type.shape.dim[axis]
    dim.ClearField("dim_param")
    if name is not None:
        dim.dim_param = name
    return model


def test_dim_name_check_tells_shareable_from_conflicting_names(trt_ready):
    model = onnx.load(trt_ready)
    assert check_dim_names(model).status == PASS
    src_height = model.graph.input[0].type.tensor_type.shape.dim[2].dim_param
    # fgr always has src's height: sharing the name is harmless
    assert check_dim_names(_rename_dim(onnx.load(trt_ready), "fgr", 2, src_height)).status == PASS
    # r1i's height is half the downsampled height (or 1): sharing it with src is the official bug
    conflict = check_dim_names(_rename_dim(onnx.load(trt_ready), "r1i", 2, src_height))
    assert conflict.status == FAIL and f"'{src_height}' is shared by src[2], r1i[2]" in conflict.reason
    unnamed = check_dim_names(_rename_dim(onnx.load(trt_ready), "r2i", 3, None))
    assert unnamed.status == FAIL and "r2i[3]" in unnamed.reason


def test_op_table_lookup_by_opset_and_domain():
    table = trt_op_table()
    assert table["tensorrt_version"].startswith("10.") and table["opset_min"] <= 12 <= table["opset_max"]
    assert op_support("Resize", 12)[0] and "linear" in op_support("Resize", 12)[1]
    assert op_support("HardSigmoid", 12) == (True, "")
    assert not op_support("Unique", 12)[0]
    assert not op_support("HardSwish", 12)[0] and op_support("HardSwish", 14)[0]  # added at opset 14
    assert not op_support("Upsample", 12)[0] and op_support("Upsample", 9)[0]  # deprecated at 10
    assert "outside" in op_support("Conv", table["opset_max"] + 1)[1]
    assert not op_support("FusedConv", 12, "com.microsoft")[0]


def test_ops_check_fails_unsupported_op_and_cubic_resize(trt_ready):
    model = onnx.load(trt_ready)
    assert check_ops(model).status == PASS
    model.graph.node.append(helper.make_node("Unique", ["src"], ["unique_out"], name="u"))
    resize = next(n for n in model.graph.node if n.op_type == "Resize")
    for attr in resize.attribute:
        if attr.name == "mode":
            attr.s = b"cubic"
    result = check_ops(model)
    assert result.status == FAIL
    assert "Unique is not supported" in result.reason and "mode cubic" in result.reason
