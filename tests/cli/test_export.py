"""`rvmkit export` (`rvmkit.cli.export`): every argument (numbers, opset, variant, verification frames and
clip, output suffix and place, the `_trt.onnx` twin) is checked before the export, in one line, exit 2,
with nothing written. The export itself is tested in tests/export/test_onnx_export.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli


@pytest.mark.parametrize("args, message", [
    (["--downsample-ratio", "0"], "must be > 0 and <= 1"),
    (["--downsample-ratio", "1.5"], "must be > 0 and <= 1"),
    (["--downsample-ratio", "-0.25"], "must be > 0 and <= 1"),
    (["--opset", "10"], "unsupported opset"),
    (["--opset", "18"], "unsupported opset"),
    (["--model-variant", "resnet50"], "checkpoint is for variant mobilenetv3, not resnet50"),
])
def test_export_errors_are_one_line(args, message, tmp_path, checkpoint):
    out = tmp_path / "out.onnx"
    rc, _, stderr = run_cli(["export", "--checkpoint", str(checkpoint), "--output", str(out), *args])
    assert rc == 2
    assert message in stderr and len(stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_export_to_unwritable_output_fails_before_exporting(tmp_path, checkpoint):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    for out in (blocker / "out.onnx", tmp_path):
        rc, _, stderr = run_cli(["export", "--checkpoint", str(checkpoint), "--output", str(out)])
        assert rc == 2 and len(stderr.strip().splitlines()) == 1
        assert str(out) in stderr


def write_audio_only(path: Path) -> Path:
    """A short .mp4 with one AAC track and no video stream."""
    import av

    with av.open(str(path), "w") as container:
        sound = container.add_stream("aac", rate=48000)
        sound.layout = "mono"
        tone = np.zeros((1, 1024), np.float32)
        for start in range(0, 48000 // 4, 1024):
            chunk = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 48000, start
            container.mux(sound.encode(chunk))
        container.mux(sound.encode(None))
    return path


@pytest.fixture
def no_export(monkeypatch):
    """Fail the test if the export gets as far as loading the model (argument checks come first)."""
    from rvmkit import weights

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(weights, "load_model", refuse)


@pytest.mark.parametrize("case, message", [
    ("frames0", "--verify-frames 0: must be at least 1"),
    ("frames_negative", "--verify-frames -1: must be at least 1"),
    ("missing_video", "no such input file"),
    ("random_bytes_video", "not a readable video or image"),
    ("audio_only_video", "no video stream"),
    ("txt_output", "output must be a .onnx file"),
])
def test_export_checks_verify_arguments_and_suffix_before_writing_anything(case, message, tmp_path,
                                                                         no_export):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / ("x.txt" if case == "txt_output" else "x.onnx")
    args = {"frames0": ["--verify-frames", "0"], "frames_negative": ["--verify-frames", "-1"],
            "missing_video": ["--video", str(tmp_path / "nope.mp4")]}.get(case, [])
    if case == "random_bytes_video":
        clip = tmp_path / "random.mp4"
        clip.write_bytes(np.random.default_rng(0).bytes(4096))
        args = ["--video", str(clip)]
    elif case == "audio_only_video":
        args = ["--video", str(write_audio_only(tmp_path / "audio.mp4"))]
    rc, stdout, stderr = run_cli(["export", "--opset", "12", "--output", str(out), *args])
    assert rc == 2
    assert message in stderr and len(stderr.strip().splitlines()) == 1
    assert "--frames" not in stderr
    assert stdout == "" and list(out_dir.iterdir()) == []


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_export_to_proc_fails_in_one_line_before_exporting(no_export):
    rc, _, stderr = run_cli(["export", "--output", "/proc/rvmkit_x.onnx"])
    assert rc == 2 and len(stderr.strip().splitlines()) == 1
    assert "/proc/rvmkit_x.onnx" in stderr and "Traceback" not in stderr


@pytest.mark.parametrize("case", ["output", "trt_twin"])
def test_export_never_writes_over_its_checkpoint(case, tmp_path, official_onnx, no_export):
    """An official .onnx is a valid --checkpoint: neither output may be it, even with --overwrite."""
    checkpoint = tmp_path / ("rvm.onnx" if case == "output" else "rvm_trt.onnx")
    checkpoint.write_bytes(official_onnx.read_bytes())
    out = tmp_path / "rvm.onnx"
    rc, _, stderr = run_cli(["export", "--checkpoint", str(checkpoint), "--output", str(out), "--overwrite"])
    assert rc == 2 and "output is the input" in stderr and len(stderr.strip().splitlines()) == 1
    assert checkpoint.read_bytes() == official_onnx.read_bytes()
    assert sorted(tmp_path.iterdir()) == [checkpoint]


def test_export_refuses_an_existing_twin_before_exporting(tmp_path, no_export):
    """The issue's repro: an unrelated notes_trt.onnx beside the output was silently replaced."""
    notes = tmp_path / "notes_trt.onnx"
    notes.write_text("unrelated")
    rc, stdout, stderr = run_cli(["export", "--output", str(tmp_path / "notes.onnx")])
    assert rc == 2 and "notes_trt.onnx': already exists; use --overwrite" in stderr
    assert len(stderr.strip().splitlines()) == 1 and stdout == ""
    assert notes.read_text() == "unrelated" and sorted(tmp_path.iterdir()) == [notes]
