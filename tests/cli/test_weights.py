"""`rvmkit weights fetch` (`rvmkit.cli.weights`): prints the cached files' paths, the checkpoint last."""

from __future__ import annotations

from rvmkit.cli import main


def test_weights_fetch_prints_cached_paths_pth_last(capsys, checkpoint):
    assert main(["weights", "fetch"]) == 0
    lines = capsys.readouterr().out.split()
    assert lines[-1] == str(checkpoint)
    assert lines[0].endswith("rvm_mobilenetv3_fp32.onnx")
