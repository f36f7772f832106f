"""The full-resolution ends of the fast path, each one pass over the frame (numba, numpy fallback).

`downsample`: uint8 frame -> float32 [1,3,h,w] in 0..1, the bilinear (half-pixel) Resize the official
graph starts with, so the low-res graph (`rvmkit.graph.lowres`) never sees a full-size float tensor.

`tail_*`: the refiner's full-resolution tail the graph no longer runs: upsample its coefficients A, b
([4,h,w]) bilinearly to the frame, out = A * [src, mean(src)] + b, fgr = clamp(out[:3] + src),
pha = clamp(out[3]); `tail_float` returns fgr/pha (parity, API), `tail_composite` goes straight to the
uint8 composition and alpha (rounded half up, exactly as `rvmkit.video.composite` does).

Coordinates and weights follow ONNX Runtime's Resize (linear, pytorch_half_pixel; clamped source
coordinate; 0.5/0.5 weights at the border) so outputs match the official graph to float rounding.
With numba (a core dependency) the kernels are compiled once (cached on disk)
and run over rows in parallel, releasing the GIL; without it, numpy does the same math, slower.
"""

from __future__ import annotations

import numpy as np

from rvmkit.contract import downsampled

try:  # a core dependency; the numpy fallback keeps platforms without numba wheels working
    import numba
    from numba import njit, prange, types
    from numba.extending import overload

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised where numba is missing
    numba = None
    HAVE_NUMBA = False

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


def _px(src, lut, c, y, x):  # pragma: no cover - numba-only helper
    """src[c, y, x] as float32 0..1 (uint8 via the /255 table)."""


if HAVE_NUMBA:
    @overload(_px, inline="always")
    def _px_impl(src, lut, c, y, x):  # pragma: no cover
        if src.dtype == types.uint8:
            return lambda src, lut, c, y, x: lut[src[c, y, x]]
        return lambda src, lut, c, y, x: np.float32(src[c, y, x])

    @njit(cache=True, nogil=True)
    def _downsample_nb(src, lut, yi0, yi1, wy0, wy1, xi0, xi1, wx0, wx1, out):  # pragma: no cover
        h, w = out.shape[1], out.shape[2]
        for y in range(h):
            a0, a1, v0, v1 = yi0[y], yi1[y], wy0[y], wy1[y]
            for c in range(3):
                for x in range(w):
                    b0, b1, u0, u1 = xi0[x], xi1[x], wx0[x], wx1[x]
                    p00, p01 = _px(src, lut, c, a0, b0), _px(src, lut, c, a0, b1)
                    p10, p11 = _px(src, lut, c, a1, b0), _px(src, lut, c, a1, b1)
                    out[c, y, x] = u0 * v0 * p00 + u1 * v0 * p01 + u0 * v1 * p10 + u1 * v1 * p11

    @njit(cache=True, nogil=True, inline="always")
    def _rows(coef, a0, a1, v0, v1, row):  # pragma: no cover
        for c in range(4):
            for i in range(coef.shape[2]):
                row[c, i] = v0 * coef[c, a0, i] + v1 * coef[c, a1, i]

    @njit(cache=True, nogil=True, inline="always")
    def _tail_rows(src, lut, coef_a, coef_b, yi0, yi1, wy0, wy1, xi0, xi1, wx0, wx1, bg,
                   comp, alpha, fgr, pha, mode, start, stop, ra, rb):  # pragma: no cover
        """Rows [start, stop). mode 0: fgr/pha float; mode 1: comp (+ alpha when alpha.size) uint8."""
        width = xi0.shape[0]
        for y in range(start, stop):
            _rows(coef_a, yi0[y], yi1[y], wy0[y], wy1[y], ra)
            _rows(coef_b, yi0[y], yi1[y], wy0[y], wy1[y], rb)
            for x in range(width):
                b0, b1, u0, u1 = xi0[x], xi1[x], wx0[x], wx1[x]
                r, g, b = _px(src, lut, 0, y, x), _px(src, lut, 1, y, x), _px(src, lut, 2, y, x)
                grey = (r + g + b) / np.float32(3)
                p = (u0 * ra[3, b0] + u1 * ra[3, b1]) * grey + (u0 * rb[3, b0] + u1 * rb[3, b1])
                p = min(max(p, np.float32(0)), np.float32(1))
                if mode == 1 and p == np.float32(0):  # pure background: the foreground does not matter
                    comp[y, x, 0], comp[y, x, 1], comp[y, x, 2] = bg[y, x, 0], bg[y, x, 1], bg[y, x, 2]
                    if alpha.shape[0]:
                        alpha[y, x] = 0
                    continue
                f0 = (u0 * ra[0, b0] + u1 * ra[0, b1]) * r + (u0 * rb[0, b0] + u1 * rb[0, b1]) + r
                f1 = (u0 * ra[1, b0] + u1 * ra[1, b1]) * g + (u0 * rb[1, b0] + u1 * rb[1, b1]) + g
                f2 = (u0 * ra[2, b0] + u1 * ra[2, b1]) * b + (u0 * rb[2, b0] + u1 * rb[2, b1]) + b
                f0 = min(max(f0, np.float32(0)), np.float32(1))
                f1 = min(max(f1, np.float32(0)), np.float32(1))
                f2 = min(max(f2, np.float32(0)), np.float32(1))
                if mode == 0:
                    fgr[0, y, x], fgr[1, y, x], fgr[2, y, x], pha[0, y, x] = f0, f1, f2, p
                else:
                    k0, k1, k2 = np.float32(bg[y, x, 0]), np.float32(bg[y, x, 1]), np.float32(bg[y, x, 2])
                    comp[y, x, 0] = np.uint8((f0 * np.float32(255) - k0) * p + k0 + np.float32(0.5))
                    comp[y, x, 1] = np.uint8((f1 * np.float32(255) - k1) * p + k1 + np.float32(0.5))
                    comp[y, x, 2] = np.uint8((f2 * np.float32(255) - k2) * p + k2 + np.float32(0.5))
                    if alpha.shape[0]:
                        alpha[y, x] = np.uint8(p * np.float32(255) + np.float32(0.5))

    @njit(cache=True, parallel=True, nogil=True)
    def _tail_parallel(src, lut, coef_a, coef_b, yi0, yi1, wy0, wy1, xi0, xi1, wx0, wx1, bg,
                       comp, alpha, fgr, pha, mode):  # pragma: no cover
        height, w = yi0.shape[0], coef_a.shape[2]
        blocks = min(height, 64)
        for block in prange(blocks):
            ra = np.empty((4, w), np.float32)
            rb = np.empty((4, w), np.float32)
            _tail_rows(src, lut, coef_a, coef_b, yi0, yi1, wy0, wy1, xi0, xi1, wx0, wx1, bg, comp, alpha,
                       fgr, pha, mode, block * height // blocks, (block + 1) * height // blocks, ra, rb)

    @njit(cache=True, nogil=True)
    def _tail_serial(src, lut, coef_a, coef_b, yi0, yi1, wy0, wy1, xi0, xi1, wx0, wx1, bg,
                     comp, alpha, fgr, pha, mode):  # pragma: no cover
        w = coef_a.shape[2]
        ra = np.empty((4, w), np.float32)
        rb = np.empty((4, w), np.float32)
        _tail_rows(src, lut, coef_a, coef_b, yi0, yi1, wy0, wy1, xi0, xi1, wx0, wx1, bg, comp, alpha,
                   fgr, pha, mode, 0, yi0.shape[0], ra, rb)

    def _tail_nb(*args: object, parallel: bool = True) -> None:
        (_tail_parallel if parallel else _tail_serial)(*args)


def downsample(frame: np.ndarray, geometry: Geometry, out: np.ndarray | None = None) -> np.ndarray:
    """float32 [1,3,h,w] 0..1: `frame` (HxWx3 uint8, or [1,]3xHxW float32 0..1) resized by the ratio."""
    src, is_u8 = _chw(frame)
    h, w = geometry.small
    if out is None:
        out = np.empty((1, 3, h, w), np.float32)
    yi0, yi1, wy0, wy1 = geometry.down_y
    xi0, xi1, wx0, wx1 = geometry.down_x
    if HAVE_NUMBA:
        _downsample_nb(src, _LUT, yi0, yi1, wy0, wy1, xi0, xi1, wx0, wx1, out[0])
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
    parallel=False runs on the calling thread only (a pipeline stage that overlaps inference)."""
    if not HAVE_NUMBA:
        src, is_u8 = _chw(frame)
        fgr, pha = _tail_np(src, is_u8, coef_a.reshape(coef_a.shape[-3:]), coef_b.reshape(coef_b.shape[-3:]),
                            geometry)
        return fgr[None], pha[None]
    fgr = np.empty((1, 3, geometry.height, geometry.width), np.float32)
    pha = np.empty((1, 1, geometry.height, geometry.width), np.float32)
    _tail_nb(*_tail_args(frame, coef_a, coef_b, geometry), _NO_U8, _NO_U8, _NO_ALPHA, fgr[0], pha[0], 0,
             parallel=parallel)
    return fgr, pha


def tail_composite(frame: np.ndarray, coef_a: np.ndarray, coef_b: np.ndarray, geometry: Geometry,
                   background: np.ndarray, want_alpha: bool = True, parallel: bool = True
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """(composition HxWx3 uint8 over `background` (HxWx3 uint8), alpha HxW uint8 or None), one pass."""
    height, width = geometry.height, geometry.width
    if not HAVE_NUMBA:
        from rvmkit.runtime.pixels import alpha_u8, composite

        src, is_u8 = _chw(frame)
        fgr, pha = _tail_np(src, is_u8, coef_a.reshape(coef_a.shape[-3:]), coef_b.reshape(coef_b.shape[-3:]),
                            geometry)
        fgr, pha = fgr[None], pha[None]  # NCHW: composite() reads a 3-D array as HWC
        return composite(fgr, pha, background), alpha_u8(pha, channels=1) if want_alpha else None
    comp = np.empty((height, width, 3), np.uint8)
    alpha = np.empty((height, width), np.uint8) if want_alpha else _NO_ALPHA
    bg = np.broadcast_to(np.asarray(background, np.uint8), (height, width, 3))
    _tail_nb(*_tail_args(frame, coef_a, coef_b, geometry), bg, comp, alpha, _NO_F32, _NO_F32, 1,
             parallel=parallel)
    return comp, alpha if want_alpha else None


def set_threads(count: int) -> None:
    """Threads the numba kernels use (no-op without numba)."""
    if HAVE_NUMBA:
        numba.set_num_threads(max(1, min(int(count), numba.config.NUMBA_NUM_THREADS)))
