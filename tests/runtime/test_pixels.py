"""The network's outputs as uint8 frames (`rvmkit.runtime.pixels`): the composition formula, rounding half
up, and the layout fixed by the number of dimensions (NCHW or HWC), on real frames."""

from __future__ import annotations

import numpy as np
import pytest

from rvmkit.runtime.pixels import alpha_u8, composite, foreground_u8, rgba


def test_composite_matches_the_formula_in_both_layouts(matte) -> None:
    fgr, pha, bg = matte
    nchw = composite(fgr, pha, bg)
    hwc = composite(fgr[0].transpose(1, 2, 0), pha[0, 0], bg)
    f, a = fgr[0].transpose(1, 2, 0).astype(np.float64), pha[0, 0, :, :, None].astype(np.float64)
    expected = np.floor(255 * (f * a + bg / 255 * (1 - a)) + 0.5)
    assert nchw.shape == (480, 640, 3) and nchw.dtype == np.uint8 and nchw.flags.c_contiguous
    np.testing.assert_array_equal(nchw, hwc)
    assert np.abs(nchw.astype(int) - expected).max() <= 1  # float32 vs float64 at exact .5 ties


def test_composite_extremes_give_foreground_or_background_exactly(matte) -> None:
    fgr, _, bg = matte
    ones, zeros = np.ones((1, 1, 480, 640), np.float32), np.zeros((480, 640), np.float32)
    np.testing.assert_array_equal(composite(fgr, ones, bg), foreground_u8(fgr))
    np.testing.assert_array_equal(composite(fgr, zeros, bg), bg)


def test_conversions_round_half_up_and_have_the_right_shapes(matte) -> None:
    fgr, pha, _ = matte
    half = np.full((2, 3), 0.5, np.float32)  # 127.5 -> 128
    assert (alpha_u8(half, channels=1) == 128).all() and alpha_u8(half).shape == (2, 3, 3)
    assert alpha_u8(pha).shape == (480, 640, 3) and alpha_u8(pha[0, 0, :, :, None], 1).shape == (480, 640)
    four = rgba(fgr, pha)
    assert four.shape == (480, 640, 4)
    np.testing.assert_array_equal(four[:, :, :3], foreground_u8(fgr))
    np.testing.assert_array_equal(four[:, :, 3], alpha_u8(pha, 1))
    clipped = foreground_u8(np.array([[[-0.2, 1.3, 0.999]]], np.float32))
    assert clipped.tolist() == [[[0, 255, 255]]]


@pytest.mark.parametrize("width", [3, 1])
def test_layout_follows_dimensions_even_for_3_pixel_wide_frames(matte, width: int) -> None:
    """3-D is always HWC and 4-D always NCHW: an HxWx3 crop 3 (or 1) pixels wide is not taken for 3xHxW."""
    fgr, pha, bg = matte
    rows, cols = slice(100, 105), slice(200, 200 + width)
    fgr, pha, bg = fgr[:, :, rows, cols], pha[:, :, rows, cols], bg[rows, cols]
    hwc, alpha_hwc = fgr[0].transpose(1, 2, 0), pha[0].transpose(1, 2, 0)
    f, a = hwc.astype(np.float64), alpha_hwc.astype(np.float64)
    expected = np.floor(255 * (f * a + bg / 255 * (1 - a)) + 0.5)
    for fg, al in ((fgr, pha), (hwc, alpha_hwc), (hwc, pha[0, 0]), (fgr, pha[0, 0])):
        out = composite(fg, al, bg)
        assert out.shape == (5, width, 3)
        assert np.abs(out.astype(int) - expected).max() <= 1
        np.testing.assert_array_equal(rgba(fg, al)[:, :, :3], foreground_u8(fgr))
    np.testing.assert_array_equal(alpha_u8(alpha_hwc, 1), alpha_u8(pha, 1))
    assert foreground_u8(hwc).shape == (5, width, 3)


def test_ambiguous_or_wrong_layouts_are_refused(matte) -> None:
    fgr, pha, bg = matte
    with pytest.raises(ValueError, match=r"HxWx3 \(HWC\) or 1x3xHxW \(NCHW\)"):
        composite(fgr[0], pha, bg)  # 3-D CHW: pass fgr[None] instead
    with pytest.raises(ValueError, match="1x3xHxW"):
        foreground_u8(np.concatenate([fgr, fgr]))  # a batch
    with pytest.raises(ValueError, match=r"1x1xHxW \(NCHW\) alpha"):
        composite(fgr, pha[0], bg)  # 3-D 1xHxW alpha
