"""`rvmkit profile`: shapes equal what ONNX Runtime really produces, formats, errors."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from rvmkit.cli import main
from rvmkit.trt.profile import compute_profile, state_channels

# (W, H); 645 -> 161 after downsampling: odd sizes exercise the ceil rounding
SIZES = {"min": (160, 120), "opt": (320, 240), "max": (645, 479)}
STATES = ["r1i", "r2i", "r3i", "r4i"]


@pytest.fixture(scope="session")
def produced(trt_ready: Path) -> dict[str, list[tuple[int, ...]]]:
    """State output shapes ORT produces for one frame at each profile size, from [1,1,1,1] zeros."""
    session = ort.InferenceSession(str(trt_ready), providers=["CPUExecutionProvider"])
    zeros = np.zeros((1, 1, 1, 1), np.float32)
    shapes = {}
    for key, (w, h) in SIZES.items():
        src = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
        outputs = session.run(None, {"src": src, **dict.fromkeys(STATES, zeros)})
        shapes[key] = [o.shape for o in outputs[2:]]
    return shapes


def test_profile_states_equal_ort_outputs_at_opt_and_max_and_contain_min(trt_ready, produced):
    profile = compute_profile(trt_ready, SIZES["min"], SIZES["opt"], SIZES["max"])
    for k, name in enumerate(STATES):
        low, opt, high = profile.shapes[name]
        assert low == (1, 1, 1, 1)
        assert opt == produced["opt"][k] and high == produced["max"][k]
        assert all(a <= s <= b for a, s, b in zip(low, produced["min"][k], high, strict=True))
    assert profile.shapes["src"] == ((1, 3, 120, 160), (1, 3, 240, 320), (1, 3, 479, 645))


def test_full_states_profile_min_is_the_state_produced_at_min(trt_ready, produced):
    profile = compute_profile(trt_ready, SIZES["min"], SIZES["opt"], SIZES["max"], batch=(1, 2, 4),
                              full_states=True)
    for k, name in enumerate(STATES):
        low, opt, high = profile.shapes[name]
        assert low == produced["min"][k]
        assert opt[0] == 2 and high[0] == 4 and low[1] == opt[1] == high[1]  # channels fixed


def test_state_channels_come_from_outputs_or_the_variant(trt_ready):
    model = onnx.load(trt_ready)
    assert state_channels(model) == (16, 20, 40, 64)
    for output in model.graph.output[2:]:
        output.type.tensor_type.shape.dim[1].dim_param = "c"  # no fixed channel dims left
    assert state_channels(model) == (16, 20, 40, 64)  # MobileNetV3 recognized by its stem conv


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


def test_profile_of_official_model_needs_the_ratio(official_onnx, capsys):
    sizes = ["--min", "160x120", "--opt", "320x240", "--max", "645x479"]
    assert main(["profile", "--model", str(official_onnx), *sizes]) == 2
    assert "no baked downsample ratio" in capsys.readouterr().err
    assert main(["profile", "--model", str(official_onnx), *sizes, "--downsample-ratio", "0.5"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["r1i"]["opt"] == [1, 16, 60, 80]
    assert err.startswith("note: ") and "rvmkit convert" in err and "--downsample-ratio 0.5" in err
