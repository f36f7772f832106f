"""OpenVINO backend precision: fp32 by default (exact), bf16 only where the CPU plugin really computes
in bf16 (refused in one line elsewhere), and the recurrent state readable for `rvmkit verify`."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import backend_alphas, official_alphas, read_frames
from rvmkit.errors import RvmkitError
from rvmkit.runtime.base import to_input
from rvmkit.runtime.cpu import cpu_flags

ov = pytest.importorskip("openvino", reason="openvino not installed (pip install 'rvmkit[openvino]')")
from rvmkit.runtime import load_backend  # noqa: E402
from rvmkit.runtime.openvino import OpenVINOBackend, compile_cpu  # noqa: E402

TOLERANCE = 2 / 255


def _run(backend: OpenVINOBackend, frames: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    state, alphas = None, []
    for frame in frames:
        _, pha, state = backend.step(to_input(frame), state, 0.5)
        alphas.append(pha)
    return alphas, backend.states(state)


def test_unknown_precision_is_refused_in_one_line(official_onnx):
    with pytest.raises(RvmkitError, match=r"^backend openvino: precision fp8 is not one of fp32, bf16, fp16$"
                       ):
        compile_cpu(official_onnx, "fp8")


def test_fp32_compiles_in_f32_even_on_a_bf16_cpu(official_onnx):
    # the CPU plugin's own default is bf16 where the CPU has it; rvmkit asks for f32
    assert compile_cpu(official_onnx).get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32


@pytest.mark.slow
def test_bf16_runs_in_bf16_where_the_cpu_has_it_and_is_refused_elsewhere(official_onnx):
    frames = [f[::2, ::2] for f in read_frames("milk", 3)]  # 320x240
    if not (cpu_flags() or set()) & {"avx512_bf16", "amx_bf16"}:
        with pytest.raises(RvmkitError, match="does not compute in bf16"):
            OpenVINOBackend(official_onnx, precision="bf16")
        return
    bf16 = OpenVINOBackend(official_onnx, precision="bf16")
    assert bf16.compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.bf16
    fp32 = OpenVINOBackend(official_onnx)
    (low, low_state), (exact, exact_state) = _run(bf16, frames), _run(fp32, frames)
    assert [s.shape for s in low_state] == [s.shape for s in exact_state] and low_state[0].dtype == np.float32
    worst = max(float(np.abs(a - b).max()) for a, b in zip(low, exact, strict=True))
    assert 1e-4 < worst < 0.5  # a different precision, still a matte of the same person


@pytest.mark.slow
def test_fp16_runs_in_f16_where_the_cpu_has_avx512_fp16_and_is_refused_elsewhere(official_onnx):
    if not (cpu_flags() or set()) & {"avx512_fp16", "amx_fp16"}:
        with pytest.raises(RvmkitError, match="does not compute in fp16"):
            compile_cpu(official_onnx, "fp16")
        return
    assert compile_cpu(official_onnx, "fp16").get_property("INFERENCE_PRECISION_HINT") == ov.Type.f16


def test_openvino_backend_agrees_with_onnxruntime(official_onnx, milk_frames, milk_reference):
    pytest.importorskip("openvino", reason="openvino not installed (pip install 'rvmkit[openvino]')")
    backend = load_backend("openvino", official_onnx)
    for ours, ref in zip(backend_alphas(backend, milk_frames, 0.25), milk_reference, strict=True):
        assert np.abs(ours - ref).max() <= TOLERANCE


@pytest.mark.parametrize("size, ratio", [pytest.param((320, 240), 0.01, marks=pytest.mark.slow),
                                         pytest.param((2, 2), 1.0, marks=pytest.mark.slow), ((1, 1), 1.0)],
                         ids=["ratio-0.01", "2x2", "1x1"])
def test_openvino_runs_frames_downsampled_under_five_pixels(official_onnx, milk_frames, size, ratio):
    """OpenVINO's CPU plugin refused RVM's ceil-mode pools on a side under 5 pixels (ORT and torch take
    it); its rewritten pools give ONNX Runtime's alpha."""
    pytest.importorskip("openvino", reason="openvino not installed (pip install 'rvmkit[openvino]')")
    from PIL import Image

    frames = [np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR)) for rgb in milk_frames[:2]]
    backend = load_backend("openvino", official_onnx)
    reference = official_alphas(official_onnx, frames, ratio)
    for ours, ref in zip(backend_alphas(backend, frames, ratio), reference, strict=True):
        assert ours.shape == ref.shape == (1, 1, size[1], size[0])
        assert np.abs(ours - ref).max() <= TOLERANCE
