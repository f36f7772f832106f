"""`rvmkit build-engine` (`rvmkit.cli.build_engine`): options checked before the model is read and
before TensorRT is imported, in one line. Building engines is tested in tests/trt/test_engine.py."""

from __future__ import annotations

import pytest

from rvmkit.cli import main

SIZES = ["--min", "160x120", "--opt", "320x240", "--max", "645x479"]


def test_build_engine_rejects_bad_profile_before_anything_else(trt_ready, tmp_path, capsys):
    args = ["build-engine", str(trt_ready), "--min", "640x480", "--opt", "320x240", "--max", "645x479",
            "--output", str(tmp_path / "x.engine")]
    assert main(args) == 2
    assert "min <= opt <= max" in capsys.readouterr().err


@pytest.mark.parametrize("workspace", ["nan", "inf", "-1", "0"])
def test_build_engine_rejects_a_non_positive_or_non_finite_workspace_first(workspace, tmp_path, capsys):
    """Checked before the model is read (it does not exist here) and before TensorRT is imported."""
    output = tmp_path / "rvm.engine"
    args = ["build-engine", str(tmp_path / "missing.onnx"), *SIZES, "--workspace", workspace,
            "--output", str(output)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"rvmkit: error: --workspace {workspace}: must be a positive number of GiB"
    assert list(tmp_path.iterdir()) == []
