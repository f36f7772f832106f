"""`rvmkit build-engine` (`rvmkit.trt.engine`): the checks made before TensorRT is imported run everywhere;
a real build needs TensorRT and a GPU (tests/runtime/test_tensorrt.py builds one where there is one)."""

from __future__ import annotations

import importlib.util

import pytest

from rvmkit.cli import main
from rvmkit.trt.engine import NOT_INSTALLED

SIZES = ["--min", "160x120", "--opt", "320x240", "--max", "645x479"]
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


@pytest.mark.slow
@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed here")
def test_build_engine_without_tensorrt_is_one_clear_line(trt_ready, tmp_path, capsys):
    output = tmp_path / "rvm.engine"
    assert main(["build-engine", str(trt_ready), *SIZES, "--output", str(output)]) == 2
    assert capsys.readouterr().err.strip() == f"rvmkit: error: {NOT_INSTALLED}"
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_build_engine_refuses_official_model_naming_the_failed_check(official_onnx, tmp_path, capsys):
    output = tmp_path / "rvm.engine"
    args = ["build-engine", str(official_onnx), *SIZES, "--downsample-ratio", "0.25", "--output", str(output)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "not ready for TensorRT" in err and "no float input feeds a shape" in err and "Resize_3" in err
    assert not output.exists()


@pytest.mark.parametrize("clash", ["model", "existing"])
def test_build_engine_never_writes_over_its_model_or_an_existing_file(clash, trt_ready, tmp_path, capsys):
    """Checked before the model is read or TensorRT imported: the same rules as every output."""
    model = tmp_path / "rvm.onnx"
    model.write_bytes(trt_ready.read_bytes())
    output = model if clash == "model" else tmp_path / "rvm.engine.json"
    if clash == "existing":
        output.write_text("notes")
        output = tmp_path / "rvm.engine"  # its sidecar would be rvm.engine.json
    assert main(["build-engine", str(model), *SIZES, "--output", str(output)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert ("output is the input" if clash == "model" else "already exists; use --overwrite") in err
    assert model.read_bytes() == trt_ready.read_bytes()
    assert clash == "model" or (tmp_path / "rvm.engine.json").read_text() == "notes"
