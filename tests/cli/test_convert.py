"""`rvmkit convert` (`rvmkit.cli.convert`): an output it cannot write or that is its input is one line,
exit 2, with the input as it was. The conversion itself is tested in tests/graph/test_bake.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from rvmkit.cli import main


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_convert_to_proc_fails_in_one_line(official_onnx, capsys):
    """Root may 'write' /proc by its permissions but can create no file there: still one line."""
    rc = main(["convert", str(official_onnx), "--output", "/proc/rvmkit_x.onnx"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "/proc/rvmkit_x.onnx" in err and "Traceback" not in err


def test_convert_never_writes_over_its_input(tmp_path, official_onnx, capsys):
    """The issue's repro: `convert my.onnx --output my.onnx` used to print 'wrote' and destroy it."""
    mine = tmp_path / "my.onnx"
    mine.write_bytes(official_onnx.read_bytes())
    for flags in ([], ["--overwrite"]):
        assert main(["convert", str(mine), "--output", str(mine), *flags]) == 2
        err = capsys.readouterr().err
        assert "output is the input" in err and len(err.strip().splitlines()) == 1
    assert mine.read_bytes() == official_onnx.read_bytes() and sorted(tmp_path.iterdir()) == [mine]
