"""`--segments`: one video split across Ray workers and stitched back: exact frame count, order,
timestamps and audio; the first segment bit-identical to sequential; later ones within the seam bound
measured by benchmarks/segments_seam.py."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from conftest import png_frames, real_clip

pytest.importorskip("ray")

from rvmkit.batch.segments import Segment, plan_segments  # noqa: E402
from rvmkit.cli import main  # noqa: E402
from rvmkit.errors import RvmkitError  # noqa: E402

FRAMES, SEGMENTS, WARMUP = 24, 2, 8
# Seam error bounds in 8-bit alpha levels (|alpha - sequential| * 255) for W=8, from
# benchmarks/segments_seam.json, where the seam sits 160 frames into the video (the worst case: more
# history to miss than this 12-frame seam): over the first 8 frames after it book / sister measured a
# mean of 0.087 / 0.095, and a 99.9th percentile of 11.6 / 13.4 over 48 frames. Here W=8 measures about
# 0.02 / 3 and a cold start (W=0) about 0.11 / 18, which these bounds reject.
MEAN_BOUND, P99_9_BOUND = 0.1, 14.0


def test_plan_segments_covers_every_frame_once_with_warmup():
    plan = plan_segments(109, 4, 16)
    assert [(s.start, s.stop) for s in plan] == [(0, 27), (27, 54), (54, 82), (82, 109)]
    assert [s.warm_start for s in plan] == [0, 11, 38, 66]
    assert plan_segments(3, 8, 5) == [Segment(0, 0, 1, 0), Segment(1, 1, 2, 0), Segment(2, 2, 3, 0)]
    with pytest.raises(RvmkitError, match="segments 0"):
        plan_segments(10, 0)


@pytest.fixture(scope="session")
def long_clip(tmp_path_factory) -> Path:
    """24 real 640x480 frames with an AAC track (the seam bound was measured at this size)."""
    folder = tmp_path_factory.mktemp("segments-in")
    return real_clip(folder / "talk.mp4", "book", FRAMES, size=None, audio=True)


@pytest.fixture(scope="session")
def runs(tmp_path_factory, long_clip, official_onnx, ray_local) -> tuple[Path, Path]:
    """(sequential, segmented) output folders, each with composition.mp4 and alpha/ PNGs."""
    out = tmp_path_factory.mktemp("segments-out")
    folders = []
    segmented = ["--segments", str(SEGMENTS), "--warmup", str(WARMUP)]
    for name, extra in (("sequential", []), ("segmented", segmented)):
        folder = out / name
        assert main(["matte", str(long_clip), "--output-composition", str(folder / "composition.mp4"),
                     "--output-alpha", str(folder / "alpha"), "--quiet", *extra]) == 0
        folders.append(folder)
    return folders[0], folders[1]


def _stream_facts(path: Path) -> tuple[list[int], float | None, bool]:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        pts = sorted(frame.pts for frame in container.decode(video))
    with av.open(str(path)) as container:
        audio = container.streams.audio[0] if container.streams.audio else None
        samples = sum(frame.samples for frame in container.decode(audio)) if audio is not None else 0
        return pts, samples / audio.rate if audio is not None else None, audio is not None


def test_stitched_output_keeps_frame_count_order_timestamps_and_audio(runs, long_clip):
    sequential, segmented = runs
    source_pts, source_audio, _ = _stream_facts(long_clip)
    got_pts, got_audio, has_audio = _stream_facts(segmented / "composition.mp4")
    assert len(got_pts) == FRAMES and got_pts == source_pts
    assert has_audio and got_audio == pytest.approx(source_audio, abs=0.05)
    assert sorted(p.name for p in (segmented / "alpha").iterdir()) == [f"{i:06d}.png" for i in range(FRAMES)]
    assert not list(segmented.glob(".*")), "segment work folder left behind"


def test_first_segment_is_identical_to_sequential(runs):
    sequential, segmented = runs
    seam = plan_segments(FRAMES, SEGMENTS)[1].start
    want, got = png_frames(sequential / "alpha"), png_frames(segmented / "alpha")
    for index in range(seam):
        assert np.array_equal(got[index], want[index]), f"frame {index} differs"


def test_seam_error_is_within_measured_bound(runs):
    sequential, segmented = runs
    seam = plan_segments(FRAMES, SEGMENTS, WARMUP)[1]
    assert seam.warm_start > 0, "the test clip must be long enough to exercise a real warm-up"
    want = np.stack(png_frames(sequential / "alpha")[seam.start:]).astype(np.int16)
    got = np.stack(png_frames(segmented / "alpha")[seam.start:]).astype(np.int16)
    diff = np.abs(got - want)
    assert diff.mean() <= MEAN_BOUND and np.percentile(diff, 99.9) <= P99_9_BOUND, (
        diff.mean(), np.percentile(diff, 99.9), diff.max())
    assert diff.max() > 0, "segments that match exactly mean the seam was not exercised"


def test_segments_print_a_line_per_finished_segment(tmp_path, official_onnx, ray_local, capsys):
    clip = real_clip(tmp_path / "short.mp4", "milk", 6)
    assert main(["matte", str(clip), "--output-alpha", str(tmp_path / "alpha.mkv"), "--segments", "2",
                 "--warmup", "2"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("segment ")]
    # the two segments finish in either order; each is reported once, with the running count
    assert sorted(line.split(" (")[0] for line in lines) == [
        "segment 1 of short.mp4 done: frames 0-2", "segment 2 of short.mp4 done: frames 3-5"]
    assert [line.split(" (")[1] for line in lines] == ["1/2 segments)", "2/2 segments)"]


def test_segments_refuse_preview_in_one_line_saying_why(tmp_path, capsys):
    clip = real_clip(tmp_path / "short.mp4", "milk", 2)
    assert main(["matte", str(clip), "--output-alpha", str(tmp_path / "alpha.mkv"), "--segments", "2",
                 "--preview", str(tmp_path / "sheet.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "sheet.png" in err
    assert "--segments" in err and "separate workers" in err
    assert not (tmp_path / "alpha.mkv").exists()


def test_segments_on_a_single_image_run_sequentially_without_ray(tmp_path, official_onnx, capsys,
                                                                 monkeypatch):
    from conftest import read_frames
    from rvmkit.batch import ray_runner
    from rvmkit.video.writer import encode_png

    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started for a one-frame input")

    monkeypatch.setattr(ray_runner, "init_ray", refuse)
    image = tmp_path / "still.png"
    image.write_bytes(encode_png(np.ascontiguousarray(read_frames("milk", 1)[0][:240, :320])))
    assert main(["matte", str(image), "--output-alpha", str(tmp_path / "alpha"), "--segments", "2",
                 "--downsample-ratio", "0.25", "--quiet"]) == 0
    assert [p.name for p in (tmp_path / "alpha").iterdir()] == ["000000.png"]
    assert capsys.readouterr().err == ""


def test_batch_runs_a_one_frame_input_whole_instead_of_in_segments(tmp_path, official_onnx, ray_local):
    from conftest import read_frames
    from rvmkit.batch import run_batch
    from rvmkit.video.writer import encode_png

    image = tmp_path / "still.png"
    image.write_bytes(encode_png(np.ascontiguousarray(read_frames("milk", 1)[0][:240, :320])))
    lines: list[str] = []
    [item] = run_batch([image], tmp_path / "out", outputs=["alpha"], fmt="png", segments=2, warmup=2,
                       num_workers=1, downsample_ratio=0.25, log=lines.append)
    assert item.status == "done" and item.frames == 1, item.error
    assert [p.name for p in (tmp_path / "out" / "still.alpha").iterdir()] == ["000000.png"]
    assert not [line for line in lines if line.startswith("segment ")]
    assert not list((tmp_path / "out").glob(".*")), "segment work folder left behind"


@pytest.mark.parametrize("clock", [(0, 0, 0), (0, 1, 200)], ids=["restarts", "back-then-jumps"])
def test_batch_segments_keep_every_frame_in_order_when_the_clock_restarts(tmp_path, official_onnx, ray_local,
                                                                          clock):
    """Parts joined end to end (a clock that restarts, steps back, jumps): `batch --segments` writes every
    frame FFmpeg decodes, in order (the warm-up covers the whole clip, so each frame equals the
    sequential run's), with times that keep increasing."""
    from fuzz_media import ffmpeg_decode, joined_stream

    source = joined_stream(tmp_path / "joined.ts", clock)
    decoded = ffmpeg_decode(source)
    assert decoded.count == 9
    assert main(["matte", str(source), "--output-alpha", str(tmp_path / "sequential"), "--downsample-ratio",
                 "0.5", "--quiet"]) == 0
    assert main(["batch", str(source), "--output-dir", str(tmp_path / "out"), "--outputs", "alpha",
                 "--format", "png", "--segments", "3", "--num-workers", "1", "--downsample-ratio", "0.5",
                 "--quiet"]) == 0
    sequential, segmented = png_frames(tmp_path / "sequential"), png_frames(tmp_path / "out" / "joined.alpha")
    assert len(segmented) == len(sequential) == decoded.count
    assert all(np.array_equal(a, b) for a, b in zip(segmented, sequential, strict=True)), "out of order"
    assert main(["matte", str(source), "--output-composition", str(tmp_path / "comp.mp4"), "--segments", "3",
                 "--downsample-ratio", "0.5", "--quiet"]) == 0
    composition = ffmpeg_decode(tmp_path / "comp.mp4")
    assert composition.count == decoded.count
    assert (np.diff(composition.times) >= 0.039).all(), composition.times


@pytest.mark.parametrize("claim", ["few.avi", "long.mp4"])
def test_segments_are_split_over_the_decoded_frames_not_the_header(tmp_path, official_onnx, ray_local, claim):
    """A header claiming 2 frames (or an MP4 movie of 30 s) of an 8-frame clip: the segments cover the 8
    decoded frames, in order, each equal to the sequential run's (the warm-up covers the whole clip)."""
    from fuzz_media import lying_header

    source = lying_header(tmp_path / claim, claim)
    assert main(["matte", str(source), "--output-alpha", str(tmp_path / "sequential"), "--downsample-ratio",
                 "0.5", "--quiet"]) == 0
    assert main(["batch", str(source), "--output-dir", str(tmp_path / "out"), "--outputs", "alpha",
                 "--format", "png", "--segments", "4", "--num-workers", "1", "--downsample-ratio", "0.5",
                 "--quiet"]) == 0
    stem = claim.split(".")[0]
    sequential = png_frames(tmp_path / "sequential")
    segmented = png_frames(tmp_path / "out" / f"{stem}.alpha")
    assert len(segmented) == len(sequential) == 8
    assert all(np.array_equal(a, b) for a, b in zip(segmented, sequential, strict=True))
