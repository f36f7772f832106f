"""rvmkit.video.composite and preview: the composition formula, rounding, layouts and --background."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fuzz_media import Segment, Video, write_video

from conftest import CLIPS
from rvmkit.errors import RvmkitError
from rvmkit.video import (
    DEFAULT_GREEN,
    alpha_u8,
    composite,
    contact_sheet,
    encode_png,
    foreground_u8,
    open_source,
    parse_background,
    rgba,
)


@pytest.fixture(scope="module")
def matte(book_frames: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Network-like outputs from real frames: fgr [1,3,H,W], pha [1,1,H,W] in 0..1, and a real background."""
    fgr = (book_frames[0].transpose(2, 0, 1)[None] / np.float32(255)).astype(np.float32)
    pha = (book_frames[5][:, :, 1][None, None] / np.float32(255)).astype(np.float32)
    return fgr, pha, book_frames[10]


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


@pytest.mark.parametrize("spec,colour", [
    (None, DEFAULT_GREEN), ("green", DEFAULT_GREEN), ("White", (255, 255, 255)), ("#1020ff", (16, 32, 255)),
    ("0,128,255", (0, 128, 255)),
])
def test_colour_backgrounds(spec: str | None, colour: tuple[int, int, int]) -> None:
    background = parse_background(spec, 64, 48)
    frame = background.frame(7)
    assert not background.transparent and frame.shape == (48, 64, 3)
    assert (frame == np.array(colour, np.uint8)).all()


def test_transparent_background() -> None:
    background = parse_background("transparent", 64, 48)
    assert background.transparent and background.frame(0) is None


def test_image_background_is_resized(tmp_path: Path, book_frames: list[np.ndarray]) -> None:
    image = tmp_path / "beach.png"
    image.write_bytes(encode_png(book_frames[3]))
    background = parse_background(str(image), 320, 240)
    frame = background.frame(0)
    assert frame.shape == (240, 320, 3)
    assert np.abs(frame.astype(int) - book_frames[3][::2, ::2]).mean() < 8


def test_video_background_loops(book_frames: list[np.ndarray]) -> None:
    with parse_background(str(CLIPS["milk"]), 160, 120) as background:  # 51 frames
        first, second = background.frame(0).copy(), background.frame(1).copy()
        assert first.shape == (120, 160, 3) and not np.array_equal(first, second)
        np.testing.assert_array_equal(background.frame(51), first)  # wrapped around
        np.testing.assert_array_equal(background.frame(52), second)
        np.testing.assert_array_equal(background.frame(1), second)  # going back re-reads


def test_animated_png_background_loops_like_a_video(tmp_path: Path) -> None:
    path = write_video(tmp_path / "waves.png", Video(".png", "apng", "apng", (Segment(64, 48, "rgb24", 3),)))
    with parse_background(str(path), 64, 48) as background:
        first = background.frame(0).copy()
        assert not np.array_equal(background.frame(1), first)
        np.testing.assert_array_equal(background.frame(3), first)  # wrapped around


def test_bad_background_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RvmkitError, match="background 'sparkly'.*colour"):
        parse_background("sparkly", 10, 10)
    with pytest.raises(RvmkitError, match="folder"):
        parse_background(str(tmp_path), 10, 10)
    (tmp_path / "bad.png").write_text("no image here\n" * 10)
    with pytest.raises(RvmkitError, match="bad.png"):
        parse_background(str(tmp_path / "bad.png"), 10, 10)


def test_contact_sheet_is_a_png_grid(tmp_path: Path, matte, book_frames: list[np.ndarray]) -> None:
    fgr, pha, bg = matte
    row = (book_frames[0], alpha_u8(pha, 1), composite(fgr, pha, bg))
    path = contact_sheet([row, row], tmp_path / "preview.png")
    with open_source(path) as source:
        (sheet,) = list(source)
    # 3 tiles of 320x240 per row, 2 rows, 4 px gaps
    assert sheet.rgb.shape == (4 + 2 * 244, 4 + 3 * 324, 3)
    tile = sheet.rgb[4:244, 4 + 324:4 + 324 + 320]
    assert np.abs(tile[:, :, 0].astype(int) - alpha_u8(pha, 1)[::2, ::2]).mean() < 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preview.png"]
