"""`--precision`: fp32 is exact and always there; a reduced mode that failed the accuracy gate, that is
asked of a GPU or a backend it does not run on, or that the CPU lacks the instructions for, is refused
in one line before any model is loaded."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import official_alphas, read_frames
from rvmkit.errors import RvmkitError
from rvmkit.runtime import cpu, load_backend
from rvmkit.runtime.precision import check_precision

ZEN1_FLAGS = {"sse4_2", "avx", "avx2", "fma", "f16c"}  # the machine this was measured on


def _one_line_error(call, *args, **kwargs) -> str:
    with pytest.raises(RvmkitError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("backend,device", [("onnxruntime", "cpu"), ("torch", "cuda"), ("tensorrt", "cuda")])
def test_fp32_is_accepted_everywhere(backend, device, monkeypatch):
    monkeypatch.setattr(cpu, "cpu_flags", lambda: None)
    check_precision("fp32", backend, device)


@pytest.mark.parametrize("mode", ["int8", "bf16"])
def test_a_mode_that_failed_the_gate_is_refused_even_with_the_instructions(mode, monkeypatch):
    monkeypatch.setattr(cpu, "cpu_flags",
                        lambda: ZEN1_FLAGS | {"avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16"})
    message = _one_line_error(check_precision, mode, "onnxruntime", "cpu")
    assert f"--precision {mode}: not offered" in message and "accuracy gate" in message


@pytest.mark.parametrize("mode,named", [("int8", "avx512_vnni or avx_vnni or amx_int8"),
                                        ("bf16", "avx512_bf16 or amx_bf16")])
def test_refused_on_a_cpu_without_the_instructions(mode, named, monkeypatch):
    monkeypatch.setattr(cpu, "cpu_flags", lambda: ZEN1_FLAGS)
    message = _one_line_error(check_precision, mode, "openvino", "cpu", offered_only=False)
    assert message.startswith(f"--precision {mode}: this CPU lacks") and named in message


def test_accepted_past_the_gate_on_a_cpu_with_one_of_the_instructions(monkeypatch):
    monkeypatch.setattr(cpu, "cpu_flags", lambda: ZEN1_FLAGS | {"avx_vnni"})
    check_precision("int8", "onnxruntime", "cpu", offered_only=False)
    with pytest.raises(RvmkitError, match="bf16: this CPU lacks"):
        check_precision("bf16", "onnxruntime", "cpu", offered_only=False)


def test_unknown_cpu_flags_refuse_the_mode(monkeypatch):
    monkeypatch.setattr(cpu, "cpu_flags", lambda: None)
    assert "cannot read this CPU's flags" in _one_line_error(check_precision, "int8", "onnxruntime", "cpu",
                                                             offered_only=False)


@pytest.mark.parametrize("backend,device", [("onnxruntime", "cuda"), ("torch", "cpu"), ("tensorrt", "cuda")])
def test_reduced_precision_is_cpu_onnxruntime_or_openvino_only(backend, device, monkeypatch):
    monkeypatch.setattr(cpu, "cpu_flags", lambda: ZEN1_FLAGS | {"amx_int8"})
    message = _one_line_error(check_precision, "int8", backend, device, offered_only=False)
    assert "CPU only" in message and f"--backend {backend} --device {device}" in message


def test_an_unknown_mode_is_refused():
    assert "unknown" in _one_line_error(check_precision, "fp8", "onnxruntime", "cpu")


def test_load_backend_refuses_before_loading(official_onnx, monkeypatch):
    import rvmkit.runtime as runtime

    def never(name):
        raise AssertionError(f"backend {name} loaded despite the refusal")

    monkeypatch.setattr(runtime, "backend_class", never)
    with pytest.raises(RvmkitError, match="--precision int8: not offered"):
        load_backend("onnxruntime", official_onnx, precision="int8")


def test_default_fp32_outputs_are_the_official_models(official_onnx):
    frames = [np.ascontiguousarray(frame[::4, ::4]) for frame in read_frames("milk", 4)]
    reference = official_alphas(official_onnx, frames, 0.5)
    with load_backend("onnxruntime", official_onnx, precision="fp32") as backend:
        state = None
        for frame, expected in zip(frames, reference, strict=True):
            _, alpha, state = backend.step(frame, state, 0.5)
            assert np.abs(alpha - expected).max() <= 1e-4


def test_fp16_is_measured_by_verify_but_not_a_matte_mode(monkeypatch):
    monkeypatch.setattr(cpu, "cpu_flags", lambda: ZEN1_FLAGS | {"avx512_fp16"})
    assert "unknown" in _one_line_error(check_precision, "fp16", "openvino", "cpu")
    check_precision("fp16", "openvino", "cpu", offered_only=False)
    monkeypatch.setattr(cpu, "cpu_flags", lambda: ZEN1_FLAGS | {"amx_bf16"})
    message = _one_line_error(check_precision, "fp16", "openvino", "cpu", offered_only=False)
    assert message.startswith("--precision fp16: this CPU lacks") and "avx512_fp16 or amx_fp16" in message
