"""`rvmkit profile` (`rvmkit.cli.profile`): the optimisation profile as JSON, a trtexec command line or
ORT TensorRT EP options; bad sizes are one line, exit 2."""

from __future__ import annotations

import json
import shlex

import pytest

from rvmkit.cli import main

STATES = ["r1i", "r2i", "r3i", "r4i"]


def test_profile_formats_text(trt_ready, capsys):
    args = ["profile", "--model", str(trt_ready), "--min", "160x120", "--opt", "320x240", "--max", "645x479"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert list(data) == ["src", *STATES] and err == ""  # a TRT-ready model: no note
    assert data["r4i"] == {"min": [1, 1, 1, 1], "opt": [1, 64, 4, 5], "max": [1, 64, 8, 11]}

    assert main([*args, "--format", "trtexec", "--engine", "out dir/rvm.engine"]) == 0
    words = shlex.split(capsys.readouterr().out)
    assert words[0] == "trtexec" and words[1] == f"--onnx={trt_ready}"
    assert words[2] == ("--minShapes=src:1x3x120x160,r1i:1x1x1x1,r2i:1x1x1x1,r3i:1x1x1x1,r4i:1x1x1x1")
    assert words[4] == ("--maxShapes=src:1x3x479x645,r1i:1x16x60x81,r2i:1x20x30x41,r3i:1x40x15x21,"
                        "r4i:1x64x8x11")
    assert words[5] == "--saveEngine=out dir/rvm.engine"

    assert main([*args, "--format", "ort-trt", "--full-states"]) == 0
    options = json.loads(capsys.readouterr().out)
    assert options["trt_profile_min_shapes"].startswith("src:1x3x120x160,r1i:1x16x15x20,")
    assert set(options) == {"trt_profile_min_shapes", "trt_profile_opt_shapes", "trt_profile_max_shapes"}

    assert main([*args, "--format", "fastdeploy"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == ('option.set_trt_input_shape("src", [1, 3, 120, 160], [1, 3, 240, 320], '
                        '[1, 3, 479, 645])')
    assert len(lines) == 5 and lines[4].startswith('option.set_trt_input_shape("r4i", [1, 1, 1, 1],')


@pytest.mark.parametrize("flags, message", [
    (["--min", "640x480", "--opt", "320x240", "--max", "800x600"], "min <= opt <= max"),
    (["--min", "0x120", "--opt", "320x240", "--max", "645x479"], "must be positive"),
    (["--min", "160by120", "--opt", "320x240", "--max", "645x479"], "expected WIDTHxHEIGHT"),
    (["--min", "160x120", "--opt", "320x240", "--max", "645x479", "--batch", "4:2:1"], "min <= opt <= max"),
    (["--min", "160x120", "--opt", "320x240", "--max", "645x479", "--batch", "1:x"], "expected MIN:OPT:MAX"),
    (["--min", "2x2", "--opt", "320x240", "--max", "645x479"], "smaller than one pixel"),
])
def test_profile_errors_are_one_line_exit_2(trt_ready, capsys, flags, message):
    assert main(["profile", "--model", str(trt_ready), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err
