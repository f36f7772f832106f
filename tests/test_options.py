"""`rvmkit.options`: the one spelling of the matte options, and the one check every front-end runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import CLIPS
from rvmkit import options
from rvmkit.api import convert_video
from rvmkit.batch.work import worker_options
from rvmkit.contract import LIMITS
from rvmkit.errors import RvmkitError
from rvmkit.live.loop import LiveConfig, check_config
from rvmkit.options import FORMATS, ROLES, MatteOptions, output_paths


def test_roles_and_formats_are_the_ones_every_front_end_offers():
    from rvmkit.batch import FORMATS as batch_formats
    from rvmkit.serve.checks import FORMATS as serve_formats
    from rvmkit.serve.worker import ROLES as serve_roles

    assert ROLES == ("composition", "alpha", "foreground") == serve_roles
    assert "mkv" in FORMATS and FORMATS == batch_formats == serve_formats


def test_output_paths_by_role_for_serve_and_by_stem_for_batch():
    assert output_paths(Path("/d"), ["alpha"], "mkv") == {"alpha": Path("/d/alpha.mkv")}
    assert output_paths(Path("/d"), ["alpha"], "png") == {"alpha": Path("/d/alpha")}  # a PNG folder
    assert output_paths(Path("/d"), ["composition", "alpha"], "webm", stem="talk") == {
        "composition": Path("/d/talk.composition.webm"), "alpha": Path("/d/talk.alpha.webm")}


def test_checked_names_the_backend_and_makes_the_resize_whole():
    checked = MatteOptions(input_resize=(320.0, 240.0), background="white").checked()
    assert checked.backend == "onnxruntime"
    assert checked.input_resize == (320, 240) and all(type(v) is int for v in checked.input_resize)
    assert checked.background == "white"


@pytest.mark.parametrize(("field", "value", "message"), [
    ("crf", 99, "crf 99: must be a whole number from 0 to 63"),
    ("output_video_mbps", 5000, "output video mbps 5000: must be a number from 0.01 to 1000"),
    ("downsample_ratio", "1.5", "downsample ratio 1.5: must be > 0 and <= 1"),
    ("input_resize", (0, 240), "input resize"),
])
def test_every_front_end_refuses_a_value_with_the_same_line(tmp_path, field, value, message):
    """matte/convert_video, batch items and live judge a value by the one rule, in the same words."""
    live_name = {"output_video_mbps": "mbps"}.get(field, field)
    attempts = [
        lambda: MatteOptions(**{field: value}).checked(),
        lambda: convert_video(CLIPS["milk"], tmp_path / "out.mp4", **{field: value}),
        lambda: worker_options({field: value}),
        lambda: check_config(LiveConfig(source=str(CLIPS["milk"]), records=[str(tmp_path / "rec.mp4")],
                                        **{live_name: value})),
    ]
    lines = set()
    for attempt in attempts:
        with pytest.raises(RvmkitError) as info:
            attempt()
        lines.add(str(info.value))
    assert len(lines) == 1 and message in lines.pop()
    assert not os.listdir(tmp_path)  # nothing written by any of them


def test_for_workers_gives_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bg.png").write_bytes(b"")
    options = MatteOptions(model="m.onnx", background="bg.png").for_workers()
    assert options.model == str(tmp_path / "m.onnx") and options.background == str(tmp_path / "bg.png")
    assert MatteOptions(background="white").for_workers().background == "white"  # a colour stays a colour


def test_batch_refuses_an_in_memory_model():
    with pytest.raises(RvmkitError, match="load the model from a file"):
        worker_options({"model": object()})


def test_check_model_fit_returns_the_spec_and_the_default_backend(official_onnx, checkpoint):
    spec, name = options.check_model_fit(official_onnx, None, "cpu", False)
    assert (spec.kind, spec.path, name) == ("onnx", Path(official_onnx), "onnxruntime")
    spec, name = options.check_model_fit(checkpoint, None, "cpu", False)
    assert (spec.kind, name) == ("checkpoint", "torch")


def test_check_model_fit_refuses_mismatches_in_one_line(official_onnx):
    with pytest.raises(RvmkitError, match="fp16 applies to --backend torch"):
        options.check_model_fit(official_onnx, None, "cpu", True)
    with pytest.raises(RvmkitError, match="--variant resnet50: .* is not a .pth"):
        options.check_model_fit(official_onnx, None, "cpu", False, "resnet50")
    with pytest.raises(RvmkitError, match="backend openvino: runs on the CPU here"):
        options.check_model_fit(official_onnx, "openvino", "cuda", False)
    with pytest.raises(RvmkitError, match="--precision int8: not offered"):
        options.check_model_fit(official_onnx, None, "cpu", False, precision="int8")


def test_check_numbers_names_the_option_out_of_range():
    options.check_numbers(1, 4.0, None, (64, 48), 0)
    with pytest.raises(RvmkitError, match="seq chunk 0: must be a whole number from 1"):
        options.check_numbers(0, None, None, None)
    with pytest.raises(RvmkitError, match="give --crf or --output-video-mbps, not both"):
        options.check_numbers(1, 4.0, 20, None)
    with pytest.raises(RvmkitError, match="output video mbps 2000: must be a number from"):
        options.check_numbers(1, LIMITS["output_video_mbps"][2] * 2, None, None)
