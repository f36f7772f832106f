"""The preview contact sheet (`rvmkit.video.preview`): a PNG grid of input, alpha and composition tiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rvmkit.runtime.pixels import alpha_u8, composite
from rvmkit.video.preview import contact_sheet
from rvmkit.video.reader import open_source


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
