"""`rvmkit profile`: shapes equal what ONNX Runtime really produces, formats, errors."""

from __future__ import annotations

import json
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


def test_profile_of_official_model_needs_the_ratio(official_onnx, capsys):
    sizes = ["--min", "160x120", "--opt", "320x240", "--max", "645x479"]
    assert main(["profile", "--model", str(official_onnx), *sizes]) == 2
    assert "no baked downsample ratio" in capsys.readouterr().err
    assert main(["profile", "--model", str(official_onnx), *sizes, "--downsample-ratio", "0.5"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["r1i"]["opt"] == [1, 16, 60, 80]
    assert err.startswith("note: ") and "rvmkit convert" in err and "--downsample-ratio 0.5" in err
