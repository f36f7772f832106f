"""A contact sheet PNG: one row per sampled time, showing input | alpha | composition side by side."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from rvmkit.fileio import write_atomically
from rvmkit.video.writer import encode_png

TILE_WIDTH = 320  # tiles are scaled down to this width so a 4K input still gives a small sheet
GAP = 4
GAP_COLOUR = 32


def _tile(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """HxWx3 uint8 resized to width x height (grey HxW or HxWx1 is expanded to RGB)."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    image = np.ascontiguousarray(image[:, :, :3], dtype=np.uint8)
    if image.shape[:2] == (height, width):
        return image
    frame = av.VideoFrame.from_ndarray(image, format="rgb24")
    return frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA").to_ndarray()


def sample_indices(frame_count: int, rows: int = 4) -> list[int]:
    """`rows` frame indices spread evenly over the clip (first and last included)."""
    if frame_count <= rows:
        return list(range(frame_count))
    return sorted({round(i * (frame_count - 1) / (rows - 1)) for i in range(rows)})


def contact_sheet(rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]], path: Path) -> Path:
    """Write rows of (input RGB, alpha grey, composition) as a PNG grid, atomically; returns `path`."""
    data = contact_sheet_png(rows)
    path = Path(path)
    write_atomically(path, lambda tmp: tmp.write_bytes(data))
    return path


def contact_sheet_png(rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> bytes:
    """The PNG bytes of `contact_sheet`'s grid."""
    if not rows:
        raise ValueError("contact_sheet needs at least one row")
    source_h, source_w = rows[0][0].shape[:2]
    width = min(TILE_WIDTH, source_w)
    height = max(1, round(source_h * width / source_w))
    columns = max(len(row) for row in rows)
    shape = (GAP + len(rows) * (height + GAP), GAP + columns * (width + GAP), 3)
    sheet = np.full(shape, GAP_COLOUR, np.uint8)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            top, left = GAP + r * (height + GAP), GAP + c * (width + GAP)
            sheet[top:top + height, left:left + width] = _tile(image, width, height)
    return encode_png(sheet)
