"""rvmkit.video.composite: --background (colours, images, looping videos) and the backgrounds it refuses.
The composition arithmetic is tests/runtime/test_pixels.py; the contact sheet tests/video/test_preview.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fuzz_media import Segment, Video, write_video

from conftest import CLIPS
from rvmkit.errors import RvmkitError
from rvmkit.video import (
    DEFAULT_GREEN,
    encode_png,
    parse_background,
)


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
