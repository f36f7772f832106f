"""Reading and labelling RVM ONNX files (`rvmkit.graph.io`): is it an RVM graph, its ratio (an input, or
baked in: from the metadata, else from the graph), variant and precision; a file that is no model is
one line naming it. The converted models themselves are tested in test_bake.py."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from conftest import CLIPS
from rvmkit.contract import RATIO_METADATA_KEY
from rvmkit.errors import RvmkitError
from rvmkit.graph.io import (
    baked_ratio,
    has_ratio_input,
    is_rvm_onnx,
    precision_of,
    require_rvm_onnx,
    set_ratio_metadata,
    trt_path_for,
    variant_of,
)


def test_the_official_model_takes_its_ratio_as_an_input(official_onnx):
    model = require_rvm_onnx(official_onnx)
    assert is_rvm_onnx(model) and has_ratio_input(model) and baked_ratio(model) is None
    assert (variant_of(model), precision_of(model)) == ("mobilenetv3", "float32")


def test_a_baked_ratio_is_read_from_the_metadata_else_from_the_graph(trt_ready):
    model = onnx.load(str(trt_ready))
    assert is_rvm_onnx(model) and not has_ratio_input(model)
    assert baked_ratio(trt_ready) == pytest.approx(0.25)  # a path works as well as a model
    set_ratio_metadata(model, 0.4)  # the metadata wins over the graph ...
    assert baked_ratio(model) == pytest.approx(0.4)
    assert [p.key for p in model.metadata_props].count(RATIO_METADATA_KEY) == 1
    del model.metadata_props[:]  # ... and without it the first Resize's scale is the ratio
    assert baked_ratio(model) == pytest.approx(0.25)


def test_a_file_that_is_no_rvm_model_is_one_line_naming_it(official_onnx, tmp_path):
    with pytest.raises(RvmkitError, match=r"milk\.mkv': not a valid ONNX model"):
        require_rvm_onnx(CLIPS["milk"])
    model = onnx.load(str(official_onnx))
    model.graph.output.pop()  # r4o gone: no longer RVM's interface
    onnx.save(model, str(tmp_path / "cut.onnx"))
    with pytest.raises(RvmkitError, match="cut.onnx': not an RVM matting ONNX .inputs: src, r1i"):
        require_rvm_onnx(tmp_path / "cut.onnx")


def test_the_trt_twin_sits_beside_its_model():
    assert trt_path_for(Path("out/rvm.onnx")) == Path("out/rvm_trt.onnx")
    assert trt_path_for(Path("out/rvm")) == Path("out/rvm_trt.onnx")
