"""`rvmkit.batch.converter`: matte's engine picked by the segment count, with the same arguments."""

from __future__ import annotations

import pytest

from rvmkit.api import convert_video
from rvmkit.batch import converter
from rvmkit.errors import RvmkitError


def test_one_segment_is_convert_video_itself():
    assert converter(1) is convert_video
    assert converter(1, 8) is convert_video


def test_several_segments_take_convert_videos_arguments_and_refuse_a_preview(tmp_path):
    convert = converter(2, 4)
    assert convert is not convert_video
    with pytest.raises(RvmkitError, match="--preview cannot be used with --segments"):
        convert(tmp_path / "in.mp4", tmp_path / "out.mp4", preview=tmp_path / "sheet.png")
