"""The full-resolution ends of the fast path, each one pass over the frame (numba, numpy fallback).

`downsample`: uint8 frame -> float32 [1,3,h,w] in 0..1, the bilinear (half-pixel) Resize the official
graph starts with, so the low-res graph (`rvmkit.graph.lowres`) never sees a full-size float tensor.

`tail_*`: the refiner's full-resolution tail the graph no longer runs: upsample its coefficients A, b
([4,h,w]) bilinearly to the frame, out = A * [src, mean(src)] + b, fgr = clamp(out[:3] + src),
pha = clamp(out[3]); `tail_float` returns fgr/pha (parity, API), `tail_composite` goes straight to the
uint8 composition and alpha (rounded half up, exactly as `rvmkit.video.composite` does).

Coordinates and weights follow ONNX Runtime's Resize (linear, pytorch_half_pixel; clamped source
coordinate; 0.5/0.5 weights at the border) so outputs match the official graph to float rounding.
With numba (a core dependency) the kernels (`kernels_numba`) are compiled once (cached on disk) and
run over rows in parallel, releasing the GIL. numpy does the same math, operation for operation, so
both give the same bits (tested). numba loads in a background thread (`warm_up`: importing it and loading
its cache cost 0.4-0.9 s of CPU, most of it holding the GIL); meanwhile numpy does the work. How the
fast backend schedules that (`warm_up_later`) depends on the frame size, known at the first frame: up to
NUMPY_TAIL_MAX_PIXELS numpy downsamples and finishes the first frame, and numba starts loading only after
that frame's tail, so it takes neither the GIL nor a core from it (a 640x480 tail costs numpy ~60 ms);
above that size numba starts loading at the first frame's downsample, and the tail and later frames wait
for it (numpy's 720p and 1080p tails, 0.2-0.7 s, cost more than the wait; numpy work beside the load
slows it 2-3x). Where numba is missing, numpy does everything.
"""

from __future__ import annotations

import importlib.util
import threading
from types import ModuleType

import numpy as np

from rvmkit.contract import downsampled

#: False makes every kernel run in numpy (tests set it; platforms without numba wheels)
HAVE_NUMBA = importlib.util.find_spec("numba") is not None
_compiled: ModuleType | None = None  # kernels_numba, once its machine code is loaded
_loader: threading.Thread | None = None
_loader_lock = threading.Lock()
_threads: int | None = None
_deferred = False  # warm_up_later(): numba starts loading when the first frame's size says when
#: the largest frame (pixels) whose tail runs on one thread even where parallel is asked: a 640x480 float
#: tail is ~2 ms of work on one core, less than the parallel kernel's fork and join cost on a busy machine
#: (16 ms median with 2 threads on a loaded 2-vCPU Xeon; benchmarks/LEVERS.md)
SERIAL_TAIL_MAX_PIXELS = 1280 * 720
#: the largest frame (pixels) whose tail numpy runs while numba loads; larger ones wait for numba (at
#: 1280x720 numpy's tail cost the first frame more than it saved: benchmarks/LEVERS.md)
NUMPY_TAIL_MAX_PIXELS = 640 * 480

_F = np.float32
_LUT = np.arange(256, dtype=np.float32) / np.float32(255)  # exactly float32(u8) / 255, as to_input


def axis_table(out_len: int, in_len: int, scale: float) -> tuple[np.ndarray, ...]:
    """(i0, i1, w0, w1) per output index: out = w0 * in[i0] + w1 * in[i1] (ORT's linear Resize)."""
    x = np.arange(out_len, dtype=_F)
    if out_len > 1:
        orig = (x + _F(0.5)) / _F(scale) - _F(0.5)
    else:
        orig = np.zeros(out_len, _F)
    orig = np.clip(orig, _F(0), _F(in_len - 1))
    i0 = np.minimum(orig.astype(np.int64), in_len - 1)
    i1 = np.minimum(i0 + 1, in_len - 1)
    d0, d1 = np.abs(orig - i0).astype(_F), np.abs(orig - i1).astype(_F)
    same = i0 == i1
    d0[same], d1[same] = _F(0.5), _F(0.5)
    # weight of in[i0] is the distance to i1 and vice versa
    return i0.astype(np.int32), i1.astype(np.int32), d1, d0


class Geometry:
    """Index/weight tables for one frame size and ratio (built once per video)."""

    def __init__(self, height: int, width: int, ratio: float) -> None:
        self.height, self.width, self.ratio = height, width, ratio
        self.small = downsampled(height, ratio), downsampled(width, ratio)  # ORT's Resize size
        h, w = self.small
        if h < 1 or w < 1:
            raise ValueError(f"ratio {ratio} shrinks {width}x{height} to nothing")
        self.down_y = axis_table(h, height, ratio)
        self.down_x = axis_table(w, width, ratio)
        self.up_y = axis_table(height, h, _F(height) / _F(h))
        self.up_x = axis_table(width, w, _F(width) / _F(w))


def _chw(frame: np.ndarray) -> tuple[np.ndarray, bool]:
    """A CHW view of an HxWx3 uint8 frame or a [1,]3xHxW float32 one, and whether it is uint8."""
    if frame.dtype == np.uint8:
        return frame.transpose(2, 0, 1), True
    return (frame[0] if frame.ndim == 4 else frame), False


def downsample(frame: np.ndarray, geometry: Geometry, out: np.ndarray | None = None) -> np.ndarray:
    """float32 [1,3,h,w] 0..1: `frame` (HxWx3 uint8, or [1,]3xHxW float32 0..1) resized by the ratio."""
    src, is_u8 = _chw(frame)
    h, w = geometry.small
    if out is None:
        out = np.empty((1, 3, h, w), np.float32)
    yi0, yi1, wy0, wy1 = geometry.down_y
    xi0, xi1, wx0, wx1 = geometry.down_x
    compiled = _kernels_for(geometry, tail=False)
    if compiled is not None:
        compiled.downsample(src, _LUT, yi0, yi1, wy0, wy1, xi0, xi1, wx0, wx1, out[0])
        return out
    values = _LUT[src] if is_u8 else src.astype(np.float32, copy=False)
    rows0, rows1 = values[:, yi0], values[:, yi1]
    v0, v1 = wy0[:, None], wy1[:, None]
    u0, u1 = wx0, wx1
    out[0] = (u0 * v0 * rows0[:, :, xi0] + u1 * v0 * rows0[:, :, xi1]
              + u0 * v1 * rows1[:, :, xi0] + u1 * v1 * rows1[:, :, xi1])
    return out


def _upsample_np(coef: np.ndarray, geometry: Geometry) -> np.ndarray:
    yi0, yi1, wy0, wy1 = geometry.up_y
    xi0, xi1, wx0, wx1 = geometry.up_x
    rows = wy0[:, None] * coef[:, yi0] + wy1[:, None] * coef[:, yi1]
    return wx0 * rows[:, :, xi0] + wx1 * rows[:, :, xi1]


def _tail_np(src: np.ndarray, is_u8: bool, coef_a: np.ndarray, coef_b: np.ndarray,
             geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
    x = _LUT[src] if is_u8 else src.astype(np.float32, copy=False)
    grey = (x[0] + x[1] + x[2]) / _F(3)
    a, b = _upsample_np(coef_a, geometry), _upsample_np(coef_b, geometry)
    fgr = np.clip(a[:3] * x + b[:3] + x, 0, 1)
    pha = np.clip(a[3:] * grey + b[3:], 0, 1)
    return fgr, pha


def _tail_args(frame: np.ndarray, coef_a: np.ndarray, coef_b: np.ndarray, geometry: Geometry) -> tuple:
    src, _ = _chw(frame)
    return (src, _LUT, coef_a.reshape(coef_a.shape[-3:]), coef_b.reshape(coef_b.shape[-3:]),
            *geometry.up_y, *geometry.up_x)


_NO_U8 = np.zeros((0, 0, 3), np.uint8)
_NO_ALPHA = np.zeros((0, 0), np.uint8)
_NO_F32 = np.zeros((0, 0, 0), np.float32)


def tail_float(frame: np.ndarray, coef_a: np.ndarray, coef_b: np.ndarray, geometry: Geometry,
               parallel: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """fgr [1,3,H,W], pha [1,1,H,W] float32: exactly what the official graph outputs.
    parallel=False runs on the calling thread only (a pipeline stage that overlaps inference); frames up
    to SERIAL_TAIL_MAX_PIXELS always do (`_parallel`)."""
    compiled = _kernels_for(geometry, tail=True)
    if compiled is None:
        src, is_u8 = _chw(frame)
        fgr, pha = _tail_np(src, is_u8, coef_a.reshape(coef_a.shape[-3:]), coef_b.reshape(coef_b.shape[-3:]),
                            geometry)
        _after_numpy_tail()
        return fgr[None], pha[None]
    fgr = np.empty((1, 3, geometry.height, geometry.width), np.float32)
    pha = np.empty((1, 1, geometry.height, geometry.width), np.float32)
    compiled.tail(*_tail_args(frame, coef_a, coef_b, geometry), _NO_U8, _NO_U8, _NO_ALPHA, fgr[0], pha[0], 0,
                  parallel=_parallel(parallel, geometry))
    return fgr, pha


def tail_composite(frame: np.ndarray, coef_a: np.ndarray, coef_b: np.ndarray, geometry: Geometry,
                   background: np.ndarray, want_alpha: bool = True, parallel: bool = True
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """(composition HxWx3 uint8 over `background` (HxWx3 uint8), alpha HxW uint8 or None), one pass."""
    height, width = geometry.height, geometry.width
    compiled = _kernels_for(geometry, tail=True)
    if compiled is None:
        from rvmkit.runtime.pixels import alpha_u8, composite

        src, is_u8 = _chw(frame)
        fgr, pha = _tail_np(src, is_u8, coef_a.reshape(coef_a.shape[-3:]), coef_b.reshape(coef_b.shape[-3:]),
                            geometry)
        fgr, pha = fgr[None], pha[None]  # NCHW: composite() reads a 3-D array as HWC
        out = composite(fgr, pha, background), alpha_u8(pha, channels=1) if want_alpha else None
        _after_numpy_tail()
        return out
    comp = np.empty((height, width, 3), np.uint8)
    alpha = np.empty((height, width), np.uint8) if want_alpha else _NO_ALPHA
    bg = np.broadcast_to(np.asarray(background, np.uint8), (height, width, 3))
    compiled.tail(*_tail_args(frame, coef_a, coef_b, geometry), bg, comp, alpha, _NO_F32, _NO_F32, 1,
                  parallel=_parallel(parallel, geometry))
    return comp, alpha if want_alpha else None


def _parallel(asked: bool, geometry: Geometry) -> bool:
    return asked and geometry.height * geometry.width > SERIAL_TAIL_MAX_PIXELS


def set_threads(count: int) -> None:
    """Threads the numba kernels use (applied once they are loaded; no-op without numba)."""
    global _threads
    _threads = int(count)
    if _compiled is not None:
        _compiled.set_threads(_threads)


def warm_up_later() -> None:
    """Load the numba kernels when the first frame's size says when (the fast backend calls this): above
    NUMPY_TAIL_MAX_PIXELS at its downsample (its tail will wait for them), otherwise after its tail
    (numpy finishes it sooner than numba would load, and a loading numba holds the GIL)."""
    global _deferred
    _deferred = True


def warm_up(wait: bool = False) -> None:
    """Load the numba kernels in a background thread, once per process (the fast backend starts it
    while ONNX Runtime builds its session); until they are ready, the numpy versions run. wait=True
    blocks until they are loaded (a server preloading before its first job)."""
    global _loader
    if not HAVE_NUMBA:
        return
    with _loader_lock:
        if _loader is None:
            _loader = threading.Thread(target=_load, name="rvmkit-kernels", daemon=True)
            _loader.start()
        loader = _loader
    if wait:
        loader.join()


def _kernels_for(geometry: Geometry, tail: bool) -> ModuleType | None:
    """The numba kernels for a frame of this size, or None for numpy. Above NUMPY_TAIL_MAX_PIXELS numba
    loads now, and the tail and any later frame wait for it; smaller frames take numpy until it is loaded."""
    if not HAVE_NUMBA:
        return None
    if _loader is None and not _deferred:
        warm_up(wait=True)  # direct use (tests, a script): load here and now
    elif geometry.height * geometry.width > NUMPY_TAIL_MAX_PIXELS:
        # the first frame's downsample starts the load; later ones wait with the tail, so that neither
        # numpy nor frames inferred ahead hold the GIL from numba's load (it took 2-3x longer beside them)
        warm_up(wait=tail or _loader is not None)
    return _compiled


def _after_numpy_tail() -> None:
    """A frame has been finished in numpy: numba may start loading now (warm_up_later)."""
    if HAVE_NUMBA and _loader is None:
        warm_up()


def _load() -> None:
    """Import numba and load the cached machine code of what the pipeline runs on every frame (a tiny
    frame through it, with a real frame's argument types); other variants load at their first use."""
    global _compiled
    try:
        from rvmkit.runtime import kernels_numba

        geometry = Geometry(4, 4, 0.5)
        frame = np.zeros((4, 4, 3), np.uint8)
        coef = np.zeros((4, *geometry.small), np.float32)
        small = np.empty((3, *geometry.small), np.float32)
        kernels_numba.downsample(_chw(frame)[0], _LUT, *geometry.down_y, *geometry.down_x, small)
        comp, alpha = np.empty((4, 4, 3), np.uint8), np.empty((4, 4), np.uint8)
        background = np.broadcast_to(frame, (4, 4, 3))  # a background frame, as the pipeline passes it
        kernels_numba.tail(*_tail_args(frame, coef, coef, geometry), background, comp, alpha, _NO_F32,
                           _NO_F32, 1, parallel=False)
        if _threads is not None:
            kernels_numba.set_threads(_threads)
    except Exception:  # noqa: BLE001 - numba unusable here: numpy gives the same results, slower
        return
    _compiled = kernels_numba
