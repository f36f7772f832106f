"""The TensorRT backend (`rvmkit.runtime.tensorrt`). A real engine needs TensorRT, cuda-python and an
NVIDIA GPU (that test skips elsewhere); the error paths and the state-buffer logic (on a simulated
runtime) run everywhere. Building engines is tested in tests/trt/test_engine.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from rvmkit.cli import main
from rvmkit.errors import RvmkitError
from rvmkit.trt.engine import read_sidecar

SIZES = ["--min", "160x120", "--opt", "320x240", "--max", "645x479"]
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


def _has_gpu() -> bool:
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            return False
    err, count = cudart.cudaGetDeviceCount()
    return int(err) == 0 and count > 0


needs_tensorrt_gpu = pytest.mark.skipif(
    not (HAS_TENSORRT and _has_gpu()),
    reason="needs TensorRT, cuda-python and an NVIDIA GPU (not available on CPU-only CI)")


@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed here")
def test_tensorrt_backend_without_tensorrt_is_a_clear_error(tmp_path):
    from rvmkit.runtime.tensorrt import TensorRTBackend

    engine = tmp_path / "rvm.engine"
    engine.write_bytes(b"\0" * 16)
    with pytest.raises(RvmkitError, match="TensorRT is not installed"):
        TensorRTBackend(engine)


@needs_tensorrt_gpu
def test_engine_build_and_backend_match_onnxruntime(trt_ready, tmp_path, book_frames):
    from rvmkit.runtime.onnxruntime import OnnxRuntimeBackend
    from rvmkit.runtime.tensorrt import TensorRTBackend

    engine = tmp_path / "rvm.engine"
    assert main(["build-engine", str(trt_ready), *SIZES, "--output", str(engine)]) == 0
    assert read_sidecar(engine)["downsample_ratio"] == 0.25
    frames = [f[:240, :320].transpose(2, 0, 1)[None].astype(np.float32) / 255 for f in book_frames[:4]]
    reference = OnnxRuntimeBackend(trt_ready)
    with TensorRTBackend(engine) as backend:
        state = ref_state = None
        for frame in frames:
            fgr, pha, state = backend.step(frame, state, 0.25)
            ref_fgr, ref_pha, ref_state = reference.step(frame, ref_state, 0.25)
            assert np.abs(pha - ref_pha).max() < 2e-3 and np.abs(fgr - ref_fgr).max() < 2e-3
        with pytest.raises(RvmkitError, match="baked"):
            backend.step(frames[0], state, 0.5)
        backend.step(frames[0], state, 0.25)
        with pytest.raises(RvmkitError, match="previous step"):
            backend.step(frames[0], state, 0.25)  # stale: its buffers were overwritten


# ---------------------------------------------------------------------------------------------
# The backend's buffer logic on CPU: a simulated TensorRT + CUDA runtime where "device memory" is
# host memory and "execution" is ONNX Runtime on the same model. This checks the state handling
# (zero-filled first frame, pointer swap, stale-state refusal, only fgr/pha copied back), not TensorRT.


class _FakeCudart:
    class cudaMemcpyKind:  # noqa: N801 (mirrors cuda-python's names)
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2

    def __init__(self) -> None:
        self.memory: dict[int, np.ndarray] = {}
        self.copies: list[int] = []

    def cudaSetDevice(self, device):  # noqa: N802
        return (0,)

    def cudaStreamCreate(self):  # noqa: N802
        return (0, 7)

    def cudaStreamSynchronize(self, stream):  # noqa: N802
        return (0,)

    def cudaStreamDestroy(self, stream):  # noqa: N802
        return (0,)

    def cudaMalloc(self, nbytes):  # noqa: N802
        block = np.full(nbytes, 0xAB, np.uint8)  # garbage, like fresh device memory
        self.memory[block.ctypes.data] = block
        return (0, block.ctypes.data)

    def cudaFree(self, ptr):  # noqa: N802
        del self.memory[ptr]
        return (0,)

    def cudaMemsetAsync(self, ptr, value, nbytes, stream):  # noqa: N802
        self.memory[ptr][:nbytes] = value
        return (0,)

    def cudaMemcpyAsync(self, dst, src, nbytes, kind, stream):  # noqa: N802
        import ctypes

        self.copies.append(kind)
        ctypes.memmove(dst, src, nbytes)
        return (0,)


class _FakeTensorRT:
    """Just the TensorRT 10 calls TensorRTBackend makes, executing with onnxruntime."""

    __version__ = "fake"

    class Logger:
        WARNING, VERBOSE = 1, 2

        def __init__(self, level):
            pass

    def __init__(self, model: Path, profile) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        self.profile = profile
        self.trt = self

    def Runtime(self, logger):  # noqa: N802
        return self

    def deserialize_cuda_engine(self, data):
        return _FakeEngine(self) if data == b"FAKE" else None

    @staticmethod
    def nptype(dtype):
        return np.float32


class _FakeEngine:
    NAMES = ["src", "r1i", "r2i", "r3i", "r4i", "fgr", "pha", "r1o", "r2o", "r3o", "r4o"]

    def __init__(self, trt: _FakeTensorRT) -> None:
        self.trt, self.num_io_tensors = trt, len(self.NAMES)

    def get_tensor_name(self, index):
        return self.NAMES[index]

    def get_tensor_dtype(self, name):
        return "float32"

    def get_tensor_profile_shape(self, name, index):
        return [list(s) for s in self.trt.profile.shapes[name]]

    def create_execution_context(self):
        return _FakeContext(self.trt)


class _FakeContext:
    def __init__(self, trt: _FakeTensorRT) -> None:
        self.trt, self.shapes, self.addresses = trt, {}, {}

    def set_input_shape(self, name, shape):
        lo, _, hi = self.trt.profile.shapes[name]
        assert all(a <= s <= b for a, s, b in zip(lo, shape, hi, strict=True)), (name, shape)
        self.shapes[name] = tuple(shape)

    def _run(self, feeds):
        names = [o.name for o in self.trt.session.get_outputs()]
        return dict(zip(names, self.trt.session.run(None, feeds), strict=True))

    def get_tensor_shape(self, name):
        feeds = {n: np.zeros(s, np.float32) for n, s in self.shapes.items()}
        return self._run(feeds)[name].shape

    def set_tensor_address(self, name, ptr):
        self.addresses[name] = ptr

    def _view(self, name, shape):
        import ctypes

        count = int(np.prod(shape))
        buffer = (ctypes.c_float * count).from_address(self.addresses[name])
        return np.frombuffer(buffer, np.float32).reshape(shape)

    def execute_async_v3(self, stream):
        feeds = {n: self._view(n, s).copy() for n, s in self.shapes.items()}
        for name, value in self._run(feeds).items():
            self._view(name, value.shape)[...] = value
        return True


def test_tensorrt_backend_state_buffers_with_simulated_runtime(trt_ready, tmp_path, book_frames, monkeypatch):
    import json
    import sys
    import types

    from rvmkit.runtime.onnxruntime import OnnxRuntimeBackend
    from rvmkit.runtime.tensorrt import TensorRTBackend
    from rvmkit.trt.profile import compute_profile

    profile = compute_profile(trt_ready, (160, 120), (320, 240), (645, 479))
    fake_trt, cudart = _FakeTensorRT(trt_ready, profile), _FakeCudart()
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime = cudart
    monkeypatch.setitem(sys.modules, "tensorrt", fake_trt)
    monkeypatch.setitem(sys.modules, "cuda", types.ModuleType("cuda"))
    monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", cudart)
    engine = tmp_path / "rvm.engine"
    engine.write_bytes(b"FAKE")
    (tmp_path / "rvm.engine.json").write_text(json.dumps({"downsample_ratio": 0.25}))

    frames = [f[:240, :320].transpose(2, 0, 1)[None].astype(np.float32) / 255 for f in book_frames[:3]]
    reference = OnnxRuntimeBackend(trt_ready)
    backend = TensorRTBackend(engine)
    state = ref_state = None
    for frame in frames:
        cudart.copies.clear()
        fgr, pha, state = backend.step(frame, state, 0.25)
        ref_fgr, ref_pha, ref_state = reference.step(frame, ref_state, 0.25)
        np.testing.assert_allclose(pha, ref_pha, atol=1e-6)
        np.testing.assert_allclose(fgr, ref_fgr, atol=1e-6)
        assert cudart.copies == [1, 2, 2]  # src up; fgr, pha down; states never leave the "device"
    allocated = set(cudart.memory)
    backend.step(frames[0], state, 0.25)
    assert set(cudart.memory) == allocated  # same size: buffers reused
    with pytest.raises(RvmkitError, match="previous step"):
        backend.step(frames[0], state, 0.25)
    with pytest.raises(RvmkitError, match="baked"):
        backend.step(frames[0], None, 0.5)
    backend.close()
    backend.close()
    assert cudart.memory == {}
