"""TensorRT backend: a serialized engine (or a TRT-ready ONNX built on first use), states kept on the GPU.

Per frame only `src` goes host -> device and only `fgr`/`pha` come back. The four recurrent states
live in two sets of device buffers: frame t reads set A and writes set B, frame t+1 reads B and writes
A (pointers swapped, never copied, never touching the host; FastDeploy's RVM copies all four back to
the host every frame). Buffers are allocated once per frame size and reused. The first frame reads
zero-filled full-size states when the engine's profile allows them (identical results to the
[1,1,1,1] zeros), else zeros of the profile's minimum state shape.

Written against the TensorRT 10 Python API (Runtime.deserialize_cuda_engine, set_input_shape,
set_tensor_address, execute_async_v3) and cuda-python's runtime bindings (cudaMalloc,
cudaMemcpyAsync, cudaMemsetAsync on one stream). It was not run in the development environment
(no GPU, no TensorRT); its tests skip there with the reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rvmkit.contract import STATE_INPUTS, STATE_OUTPUTS, same_ratio, state_sizes
from rvmkit.errors import RvmkitError, describe_path, require_readable_file
from rvmkit.graph.io import baked_ratio as read_baked_ratio
from rvmkit.graph.io import require_rvm_onnx
from rvmkit.runtime.base import Backend, State
from rvmkit.trt.engine import import_tensorrt, read_sidecar, require_ready, serialize_engine
from rvmkit.trt.profile import compute_profile

if TYPE_CHECKING:
    from rvmkit.runtime import ModelSpec

CUDA_NOT_INSTALLED = ("cuda-python is not installed: pip install 'rvmkit[tensorrt]' on a machine with an "
                      "NVIDIA GPU")


def _import_cudart() -> Any:
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python layout
        except ImportError:
            raise RvmkitError(CUDA_NOT_INSTALLED) from None
    return cudart


class _Cuda:
    """The few CUDA runtime calls the backend needs, on one stream, with one-line errors."""

    def __init__(self, device_id: int = 0) -> None:
        self.rt = _import_cudart()
        self._call(self.rt.cudaSetDevice(device_id))
        self.stream = self._call(self.rt.cudaStreamCreate())

    def _call(self, result: Any) -> Any:
        err, *rest = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            name = getattr(err, "name", str(int(err)))
            raise RvmkitError(f"CUDA error {name} (is an NVIDIA GPU and driver available?)")
        return rest[0] if len(rest) == 1 else (tuple(rest) or None)

    def alloc(self, nbytes: int) -> int:
        return int(self._call(self.rt.cudaMalloc(max(int(nbytes), 1))))

    def free(self, ptr: int) -> None:
        self._call(self.rt.cudaFree(ptr))

    def zero(self, ptr: int, nbytes: int) -> None:
        self._call(self.rt.cudaMemsetAsync(ptr, 0, nbytes, self.stream))

    def to_device(self, ptr: int, array: np.ndarray) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._call(self.rt.cudaMemcpyAsync(ptr, array.ctypes.data, array.nbytes, kind, self.stream))

    def to_host(self, array: np.ndarray, ptr: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._call(self.rt.cudaMemcpyAsync(array.ctypes.data, ptr, array.nbytes, kind, self.stream))

    def sync(self) -> None:
        self._call(self.rt.cudaStreamSynchronize(self.stream))

    def close(self) -> None:
        self._call(self.rt.cudaStreamDestroy(self.stream))


@dataclass(frozen=True)
class _DeviceState:
    """Opaque handle to the state living in the backend's device buffers (valid for the next step only)."""

    owner: int
    generation: int


class _Buffers:
    """Device buffers for one input shape: src, fgr, pha, two state sets, first-frame zero states."""

    def __init__(self, cuda: _Cuda, sizes: dict[str, int], state_bytes: list[int],
                 zero_bytes: list[int]) -> None:
        self.cuda = cuda
        self.io = {name: cuda.alloc(n) for name, n in sizes.items()}
        self.sets = [[cuda.alloc(n) for n in state_bytes] for _ in range(2)]
        self.zeros = [cuda.alloc(n) for n in zero_bytes]
        for ptr, n in zip(self.zeros, zero_bytes, strict=True):
            cuda.zero(ptr, n)

    def free(self) -> None:
        for ptr in [*self.io.values(), *self.sets[0], *self.sets[1], *self.zeros]:
            self.cuda.free(ptr)
        self.io, self.sets, self.zeros = {}, [[], []], []


class TensorRTBackend(Backend):
    """Run a TensorRT engine frame by frame. `engine_path`: a `.engine` from `rvmkit build-engine`
    (its `.engine.json` gives the baked ratio), or a TRT-ready ONNX, built for the first frame's size.
    `baked_ratio` overrides the ratio for engines without metadata (e.g. built by trtexec)."""

    name = "tensorrt"

    @classmethod
    def open(cls, spec: ModelSpec, *, device: str = "cpu", variant: str | None = None,
             **options: Any) -> TensorRTBackend:
        """The engine or TRT-ready ONNX named (the registry refuses it without one); its ratio is its own."""
        return cls(spec.path, **options)

    def __init__(self, engine_path: str | os.PathLike, *, baked_ratio: float | None = None,
                 device_id: int = 0, fp16: bool = False, verbose: bool = False, **_ignored: Any) -> None:
        self.path = Path(require_readable_file(engine_path, "engine"))
        self._trt = import_tensorrt()
        self._logger = self._trt.Logger(self._trt.Logger.VERBOSE if verbose else self._trt.Logger.WARNING)
        self._fp16 = fp16
        self._cuda = _Cuda(device_id)
        self._runtime = self._engine = self._context = None
        self._buffers: _Buffers | None = None
        self._shape: tuple[int, ...] | None = None
        self._current: int | None = None  # index of the state set holding the latest output
        self._generation = 0
        self._closed = False
        if self.path.suffix.lower() == ".onnx":
            self.baked_ratio = self._onnx_ratio(baked_ratio)
        else:
            meta = read_sidecar(self.path) or {}
            self.baked_ratio = meta.get("downsample_ratio", baked_ratio)
            self._load(self.path.read_bytes())

    # -- engine ---------------------------------------------------------------------------------

    def _onnx_ratio(self, override: float | None) -> float:
        ratio = read_baked_ratio(require_rvm_onnx(self.path))
        if ratio is None:
            raise RvmkitError(f"{describe_path(self.path)}: TensorRT needs a TRT-ready ONNX with the ratio "
                              "baked in; convert it with `rvmkit convert` (or `rvmkit export`)")
        if override is not None and not same_ratio(override, ratio):
            raise RvmkitError(f"{describe_path(self.path)}: ratio {ratio:g} is baked in, not {override:g}")
        return ratio

    def _build_for(self, shape: tuple[int, ...]) -> None:
        """TRT-ready ONNX given: build an in-memory engine whose profile is exactly this frame size."""
        require_ready(self.path)
        size, batch = (shape[3], shape[2]), (shape[0],) * 3
        profile = compute_profile(self.path, size, size, size, batch=batch)  # type: ignore[arg-type]
        self._load(serialize_engine(self.path, profile, fp16=self._fp16))

    def _load(self, data: bytes) -> None:
        self._runtime = self._trt.Runtime(self._logger)  # must outlive the engine
        self._engine = self._runtime.deserialize_cuda_engine(data)
        if self._engine is None:
            raise RvmkitError(f"{describe_path(self.path)}: not a TensorRT engine for TensorRT "
                              f"{self._trt.__version__} on this GPU (rebuild it with `rvmkit build-engine`)")
        names = {self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)}
        missing = [n for n in ("src", "fgr", "pha", *STATE_INPUTS, *STATE_OUTPUTS) if n not in names]
        if missing:
            raise RvmkitError(f"{describe_path(self.path)}: engine lacks tensor {missing[0]}; "
                              "not an RVM engine")
        self._context = self._engine.create_execution_context()
        self._dtypes = {n: np.dtype(self._trt.nptype(self._engine.get_tensor_dtype(n))) for n in names}
        self._profiles = {n: [tuple(s) for s in self._engine.get_tensor_profile_shape(n, 0)]
                          for n in ("src", *STATE_INPUTS)}

    # -- shapes and buffers ---------------------------------------------------------------------

    def _nbytes(self, name: str, shape: tuple[int, ...]) -> int:
        return int(np.prod(shape)) * self._dtypes[name].itemsize

    def _within(self, name: str, shape: tuple[int, ...]) -> bool:
        lo, _, hi = self._profiles[name]
        return all(a <= s <= b for a, s, b in zip(lo, shape, hi, strict=True))

    def _state_shapes(self, shape: tuple[int, ...], ratio: float) -> list[tuple[int, ...]]:
        channels = [self._profiles[n][2][1] for n in STATE_INPUTS]  # max channels = the real count
        return [(shape[0], c, h, w) for c, (h, w) in zip(channels, state_sizes(shape[2], shape[3], ratio),
                                                          strict=True)]

    def _configure(self, shape: tuple[int, ...], ratio: float) -> None:
        """(Re)allocate every buffer for frames of `shape`; states start over."""
        from_onnx = self.path.suffix.lower() == ".onnx"
        if self._engine is None or (from_onnx and not self._within("src", shape)):
            self._build_for(shape)  # a TRT-ready ONNX: (re)build for exactly this frame size
        if not self._within("src", shape):
            lo, _, hi = self._profiles["src"]
            raise RvmkitError(f"{describe_path(self.path)}: frame shape {list(shape)} is outside the "
                              f"engine's profile {list(lo)}..{list(hi)}; rebuild with "
                              "`rvmkit build-engine --min/--max`")
        full = self._state_shapes(shape, ratio)
        self._full_first = all(self._within(n, s) for n, s in zip(STATE_INPUTS, full, strict=True))
        self._first = full if self._full_first else [self._profiles[n][0] for n in STATE_INPUTS]
        self._set_shapes(shape, self._first)
        produced = [tuple(self._context.get_tensor_shape(n)) for n in STATE_OUTPUTS]
        if produced != full:
            raise RvmkitError(f"{describe_path(self.path)}: engine produces states {produced} for "
                              f"{list(shape)}, expected {full} at downsample ratio {ratio:g}; "
                              "was it built for another ratio?")
        if self._buffers is not None:
            self._buffers.free()
        sizes = {"src": self._nbytes("src", shape), "fgr": self._nbytes("fgr", (shape[0], 3, *shape[2:])),
                 "pha": self._nbytes("pha", (shape[0], 1, *shape[2:]))}
        state_bytes = [self._nbytes(n, s) for n, s in zip(STATE_OUTPUTS, full, strict=True)]
        zero_bytes = [0 if self._full_first else self._nbytes(n, s)
                      for n, s in zip(STATE_INPUTS, self._first, strict=True)]
        self._buffers = _Buffers(self._cuda, sizes, state_bytes, zero_bytes)
        self._full = full
        self._shape = shape
        self._current = None

    def _set_shapes(self, shape: tuple[int, ...], states: list[tuple[int, ...]]) -> None:
        self._context.set_input_shape("src", shape)
        for name, state_shape in zip(STATE_INPUTS, states, strict=True):
            self._context.set_input_shape(name, state_shape)

    # -- stepping -------------------------------------------------------------------------------

    def _check_ratio(self, ratio: float) -> float:
        if self.baked_ratio is not None and not same_ratio(ratio, self.baked_ratio):
            raise RvmkitError(f"{describe_path(self.path)}: engine has downsample ratio "
                              f"{self.baked_ratio:g} baked in; cannot run it at {float(ratio):g}")
        return float(self.baked_ratio if self.baked_ratio is not None else ratio)

    def _state_inputs(self, state: State) -> tuple[list[int], list[tuple[int, ...]], int]:
        """(input pointers, input shapes, output set index) for this frame."""
        buffers = self._buffers
        if state is None or self._current is None:
            if self._full_first:  # zero the set we read from; outputs go to the other one
                for ptr, shape, name in zip(buffers.sets[0], self._full, STATE_OUTPUTS, strict=True):
                    self._cuda.zero(ptr, self._nbytes(name, shape))
                return buffers.sets[0], self._full, 1
            return buffers.zeros, self._first, 0
        current = isinstance(state, _DeviceState) and state.owner == id(self) \
            and state.generation == self._generation
        if not current:
            raise RvmkitError("tensorrt backend: pass the state returned by the previous step of this "
                              "backend (states live in its device buffers and are overwritten each frame)")
        return buffers.sets[self._current], self._full, 1 - self._current

    def step(self, src: np.ndarray, state: State,
             downsample_ratio: float) -> tuple[np.ndarray, np.ndarray, State]:
        if self._closed:
            raise RvmkitError("tensorrt backend: used after close()")
        ratio = self._check_ratio(downsample_ratio)
        shape = tuple(int(d) for d in src.shape)
        if shape != self._shape:
            self._configure(shape, ratio)
            state = None
        host_src = np.ascontiguousarray(src, dtype=self._dtypes["src"])
        inputs, input_shapes, out_set = self._state_inputs(state)
        buffers, context = self._buffers, self._context
        self._set_shapes(shape, input_shapes)
        for name, ptr in [("src", buffers.io["src"]), ("fgr", buffers.io["fgr"]), ("pha", buffers.io["pha"]),
                          *zip(STATE_INPUTS, inputs, strict=True),
                          *zip(STATE_OUTPUTS, buffers.sets[out_set], strict=True)]:
            context.set_tensor_address(name, ptr)
        self._cuda.to_device(buffers.io["src"], host_src)
        if not context.execute_async_v3(int(self._cuda.stream)):
            raise RvmkitError(f"{describe_path(self.path)}: TensorRT execution failed")
        fgr = np.empty((shape[0], 3, *shape[2:]), self._dtypes["fgr"])
        pha = np.empty((shape[0], 1, *shape[2:]), self._dtypes["pha"])
        self._cuda.to_host(fgr, buffers.io["fgr"])
        self._cuda.to_host(pha, buffers.io["pha"])
        self._cuda.sync()
        self._current = out_set
        self._generation += 1
        return (fgr.astype(np.float32, copy=False), pha.astype(np.float32, copy=False),
                _DeviceState(id(self), self._generation))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._cuda.sync()
        if self._buffers is not None:
            self._buffers.free()
        self._context = self._engine = self._runtime = None
        self._cuda.close()
