"""`rvmkit.api`'s public functions: convert_video end to end on a real clip, and the checks every
front-end (matte, batch, serve, live) runs through before any work starts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import official_alphas, png_frames, real_clip
from rvmkit import api
from rvmkit.errors import RvmkitError
from rvmkit.runtime import load_backend
from rvmkit.video.reader import open_source


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return real_clip(tmp_path_factory.mktemp("api") / "milk.mp4", "milk", 3, size=(64, 48))


def test_convert_video_writes_every_output_and_reports_them(clip, tmp_path):
    outputs = {role: tmp_path / f"{role}.mp4" for role in api.ROLES}
    result = api.convert_video(clip, *outputs.values(), downsample_ratio=0.5, progress=False)
    assert result.frames == 3 and result.backend == "onnxruntime" and result.downsample_ratio == 0.5
    assert result.outputs == outputs
    for path in outputs.values():
        with open_source(path) as source:
            assert source.info.frame_count == 3 and (source.info.width, source.info.height) == (64, 48)


def test_convert_video_png_alpha_is_the_official_models_alpha(clip, tmp_path, official_onnx):
    api.convert_video(clip, output_alpha=tmp_path / "alpha", output_type="png_sequence",
                      downsample_ratio=0.5, progress=False)
    with open_source(clip) as source:
        frames = [frame.rgb for frame in source]
    expected = official_alphas(official_onnx, frames, 0.5)
    written = png_frames(tmp_path / "alpha")
    assert len(written) == 3
    for got, want in zip(written, expected, strict=True):
        alpha = got if got.ndim == 2 else got[..., 0]
        want_u8 = np.clip(want[0, 0] * 255 + 0.5, 0, 255).astype(int)
        assert np.abs(alpha.astype(int) - want_u8).max() <= 2


def test_convert_video_refuses_an_existing_output_without_overwrite(clip, tmp_path):
    existing = tmp_path / "taken.mp4"
    existing.write_bytes(b"the user's file")
    with pytest.raises(RvmkitError, match="taken.mp4"):
        api.convert_video(clip, existing, progress=False)
    assert existing.read_bytes() == b"the user's file"


def test_convert_video_names_misplaced_arguments_in_type_errors(clip, tmp_path):
    with pytest.raises(TypeError, match="progress must be True or False"):
        api.convert_video(clip, tmp_path / "a.mp4", progress="yes")
    with pytest.raises(TypeError, match="missing the input"):
        api.convert_video()
    with pytest.raises(TypeError, match="at most 4 positional arguments"):
        api.convert_video(clip, "a.mp4", "b.mp4", "c.mp4", "d.mp4")


def test_plan_targets_checks_every_path_before_any_is_opened(clip, tmp_path):
    with open_source(clip) as source:
        info = source.info
    requested = {"composition": tmp_path / "c.mp4", "alpha": tmp_path / "a", "foreground": None}
    targets = api.plan_targets(requested, info, None, False, False)
    assert [(t.role, t.path, t.kind) for t in targets] == [("composition", tmp_path / "c.mp4", "video"),
                                                          ("alpha", tmp_path / "a", "png_sequence")]
    assert not (tmp_path / "c.mp4").exists() and not (tmp_path / "a").exists()
    with pytest.raises(RvmkitError, match="used for both the composition and the alpha output"):
        api.plan_targets({"composition": tmp_path / "x.mp4", "alpha": tmp_path / "x.mp4", "foreground": None},
                         info, None, False, False)
    with pytest.raises(RvmkitError):  # the input itself is never an output
        api.plan_targets({"composition": clip, "alpha": None, "foreground": None}, info, None, False, True)


def test_read_paths_lists_existing_files_only(official_onnx, tmp_path):
    assert api.read_paths("green", official_onnx) == {"background": None, "model": Path(official_onnx)}
    assert api.read_paths(str(tmp_path / "missing.png"), None) == {"background": None, "model": None}


def test_ignored_png_mbps_drops_a_bitrate_for_png_only(capsys):
    assert api.ignored_png_mbps("video", 4.0, True) == 4.0
    assert api.ignored_png_mbps("png_sequence", 4.0, False) is None
    assert capsys.readouterr().err == ""
    assert api.ignored_png_mbps("png_sequence", 1, True) is None
    assert "output_video_mbps 1 ignored" in capsys.readouterr().err


def test_render_streams_a_planned_job_through_a_loaded_backend(clip, tmp_path, official_onnx):
    from rvmkit.video.composite import parse_background

    with open_source(clip) as source, parse_background("green", 64, 48) as background:
        targets = api.plan_targets({"composition": tmp_path / "c.mp4", "alpha": None, "foreground": None},
                                   source.info, None, False, False)
        job = api.MatteJob(source, source.info, targets, background, 0.5, progress=False)
        with load_backend("onnxruntime", official_onnx) as backend:
            assert api.render(job, backend) == 3
    with open_source(tmp_path / "c.mp4") as written:
        assert written.info.frame_count == 3
