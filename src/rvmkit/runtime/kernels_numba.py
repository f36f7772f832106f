"""The fast path's kernels compiled by numba (cached on disk); `rvmkit.runtime.kernels` imports this module
in the background (`kernels.warm_up`) because importing numba and loading its cache costs about a second
of CPU at start-up. The math is the numpy code's in `kernels`, operation for operation, so both give the
same bits (tests/runtime/test_kernels_numba.py)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import overload


def _px(src, lut, c, y, x):  # pragma: no cover - numba-only helper
    """src[c, y, x] as float32 0..1 (uint8 via the /255 table)."""


@overload(_px, inline="always")
def _px_impl(src, lut, c, y, x):  # pragma: no cover
    if src.dtype == types.uint8:
        return lambda src, lut, c, y, x: lut[src[c, y, x]]
    return lambda src, lut, c, y, x: np.float32(src[c, y, x])


@njit(cache=True, nogil=True)
def downsample(src, lut, yi0, yi1, wy0, wy1, xi0, xi1, wx0, wx1, out):  # pragma: no cover
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


def tail(*args: object, parallel: bool = True) -> None:
    (_tail_parallel if parallel else _tail_serial)(*args)


def set_threads(count: int) -> None:
    """Threads the parallel tail uses."""
    import numba

    numba.set_num_threads(max(1, min(int(count), numba.config.NUMBA_NUM_THREADS)))
