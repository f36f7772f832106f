"""`rvmkit check` (`rvmkit.cli.check`): the readiness report as text or JSON, and its exit status
(0 ready, 1 not ready, 2 not a model)."""

from __future__ import annotations

import json

import pytest

from rvmkit.cli import main
from rvmkit.trt.check import FAIL


@pytest.mark.slow
def test_cli_check_exit_status_and_json(trt_ready, official_onnx, tmp_path, capsys):
    assert main(["check", str(trt_ready)]) == 0
    out = capsys.readouterr().out
    assert "TensorRT: READY" in out and "ONNX Runtime TensorRT EP: READY" in out
    assert main(["check", str(official_onnx), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ready_for_tensorrt"] is False
    assert any(c["status"] == FAIL and "Resize_3" in c["reason"] for c in data["checks"])
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    assert main(["check", str(broken)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a valid ONNX model" in err
