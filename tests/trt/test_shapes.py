"""ONNX Runtime's symbolic shape inference as a check (`rvmkit.trt.shapes`): the official graph's
nested-ceil crops fail it with the reason in one line, a converted (TRT-ready) model passes with every
output's named shape."""

from __future__ import annotations

import pytest

from rvmkit.errors import RvmkitError
from rvmkit.trt.shapes import symbolic_shape_check


def test_the_official_graph_fails_with_the_reason_in_one_line(official_onnx):
    ok, detail = symbolic_shape_check(official_onnx)
    assert not ok and detail.startswith("symbolic shape inference failed: AssertionError")
    assert "ceiling" in detail and "\n" not in detail and len(detail) <= 300


def test_a_file_that_is_no_model_is_one_line_naming_it(tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(RvmkitError, match=r"junk\.onnx': not a valid ONNX model"):
        symbolic_shape_check(tmp_path / "junk.onnx")


@pytest.mark.slow
def test_a_converted_model_passes_with_every_outputs_shape(trt_ready):
    ok, detail = symbolic_shape_check(trt_ready)
    assert ok, detail
    for name, channels in (("fgr", 3), ("pha", 1), ("r1o", 16), ("r4o", 64)):
        assert f" {name}[batch_size" in detail and f",{channels},height" in detail
