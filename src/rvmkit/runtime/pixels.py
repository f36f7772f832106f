"""Pixel arithmetic shared by every result: the network's fgr/pha -> uint8 output frames.

All arithmetic is float32 (no float64 temporaries) and every float -> uint8 conversion rounds half up:
clip(x * 255 + 0.5, 0, 255) then truncate. (The official RVM writer truncates instead, which darkens by
up to 1/255; rounding is unbiased.) The number of dimensions alone fixes the layout, so no image (not even a
3-pixel-wide one) is ambiguous: 4-D is the network's NCHW with N = 1 (fgr 1x3xHxW, pha 1x1xHxW), 3-D is HWC
(fgr HxWx3, pha HxWx1), and pha may also be a plain HxW. NCHW is computed in CHW order, and only the final
uint8 image is transposed, which is the cheapest copy.
"""

from __future__ import annotations

import numpy as np


def _float_image(fgr: np.ndarray) -> tuple[np.ndarray, bool]:
    """(float32 HxWx3 or 3xHxW view, is_chw) of an HxWx3 (HWC) or 1x3xHxW (NCHW) image."""
    fgr = np.asarray(fgr, dtype=np.float32)
    if fgr.ndim == 4 and fgr.shape[:2] == (1, 3):
        return fgr[0], True
    if fgr.ndim == 3 and fgr.shape[2] == 3:
        return fgr, False
    raise ValueError(f"expected an HxWx3 (HWC) or 1x3xHxW (NCHW) image, got shape {fgr.shape}")


def _float_alpha(pha: np.ndarray, chw: bool) -> np.ndarray:
    """float32 alpha of an HxW, HxWx1 (HWC) or 1x1xHxW (NCHW) array, shaped to broadcast against an HWC
    (HxWx1) or CHW (1xHxW) image."""
    pha = np.asarray(pha, dtype=np.float32)
    if pha.ndim == 4 and pha.shape[:2] == (1, 1):
        pha = pha[0, 0]
    elif pha.ndim == 3 and pha.shape[2] == 1:
        pha = pha[:, :, 0]
    elif pha.ndim != 2:
        raise ValueError(f"expected an HxW, HxWx1 (HWC) or 1x1xHxW (NCHW) alpha, got shape {pha.shape}")
    return pha[None] if chw else pha[:, :, None]


def _to_u8(values: np.ndarray, chw: bool) -> np.ndarray:
    """Round half up (values already scaled to 0..255, modified in place) to contiguous HWC uint8."""
    values += 0.5
    np.clip(values, 0, 255, out=values)
    out = values.astype(np.uint8)
    return np.ascontiguousarray(out.transpose(1, 2, 0) if chw else out)


def composite(fgr: np.ndarray, pha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 round(255 * (fgr * pha + bg * (1 - pha))), bg being the uint8 `background` / 255."""
    image, chw = _float_image(fgr)
    alpha = _float_alpha(pha, chw)
    bg = np.asarray(background)
    if bg.ndim == 1:  # a plain colour
        bg = bg.reshape((3, 1, 1) if chw else (1, 1, 3))
    elif chw:
        bg = bg.transpose(2, 0, 1)
    bg = bg.astype(np.float32)
    out = image * np.float32(255)
    out -= bg
    out *= alpha
    out += bg
    return _to_u8(out, chw)


def rgba(fgr: np.ndarray, pha: np.ndarray) -> np.ndarray:
    """HxWx4 uint8 straight (not premultiplied) RGBA, for transparent outputs."""
    image, chw = _float_image(fgr)
    alpha = _float_alpha(pha, chw)
    stacked = np.concatenate([image, alpha], axis=0 if chw else 2)
    stacked *= np.float32(255)
    return _to_u8(stacked, chw)


def alpha_u8(pha: np.ndarray, channels: int = 3) -> np.ndarray:
    """Alpha as uint8 grey: HxWx3 (channels=3, for video encoders) or HxW (channels=1, for PNG)."""
    alpha = _float_alpha(pha, chw=False)[:, :, 0] * np.float32(255)
    grey = _to_u8(alpha, chw=False)
    if channels == 1:
        return grey
    return np.repeat(grey[:, :, None], channels, axis=2)


def foreground_u8(fgr: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 foreground colours."""
    image, chw = _float_image(fgr)
    return _to_u8(image * np.float32(255), chw)
