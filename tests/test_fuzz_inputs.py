"""Property/fuzz suite over generated inputs: every file FFmpeg decodes is matted into exactly the frames
FFmpeg decodes from it (count, size, timestamps), whatever its container, codec, elementary stream,
animated image format, mid-stream size or pixel-format change, edit list, cut before a keyframe, or
file name; an input FFmpeg cannot decode gets one line and exit 2 with nothing written; the input is
never changed; no traceback.

Fast in CI (fixed seed, few examples); RVMKIT_FUZZ_EXAMPLES=500 runs longer. `rvmkit matte` runs
in-process (`rvmkit.cli.main`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fuzz_media import (
    Segment,
    Video,
    assert_refused,
    digest,
    ffmpeg_decode,
    fuzz_settings,
    run_rvmkit,
    tree,
    working_directory,
    write_video,
)
from hypothesis import given
from hypothesis import strategies as st

# (suffix, muxer, encoder, pixel formats): containers, elementary streams, animated images
pytestmark = pytest.mark.slow  # a Hypothesis suite: many generated clips, each matted whole

CONTAINED = [
    (".mp4", "mp4", "libx264", ("yuv420p", "yuv444p")),
    (".mp4", "mp4", "mpeg4", ("yuv420p",)),
    (".mp4", "mp4", "libvpx-vp9", ("yuv420p",)),
    (".m4v", "mp4", "libx264", ("yuv420p",)),
    (".mkv", "matroska", "libx264", ("yuv420p", "yuv444p", "yuv420p10le", "gray")),
    (".mkv", "matroska", "libx265", ("yuv420p", "yuv420p10le")),
    (".mkv", "matroska", "libvpx-vp9", ("yuv420p", "yuv444p")),
    (".mkv", "matroska", "ffv1", ("yuv420p", "yuv444p", "bgr0")),
    (".mkv", "matroska", "mjpeg", ("yuvj420p", "yuvj444p")),
    (".mov", "mov", "libx264", ("yuv420p",)),
    (".mov", "mov", "prores_ks", ("yuv422p10le", "yuva444p10le")),
    (".mov", "mov", "png", ("rgb24", "rgba")),
    (".mov", "mov", "qtrle", ("rgb24",)),
    (".webm", "webm", "libvpx", ("yuv420p",)),
    (".webm", "webm", "libvpx-vp9", ("yuv420p", "yuva420p")),
    (".avi", "avi", "mpeg4", ("yuv420p",)),
    (".avi", "avi", "mjpeg", ("yuvj420p",)),
    (".avi", "avi", "libx264", ("yuv420p",)),
    (".avi", "avi", "huffyuv", ("yuv422p", "rgb24")),
    (".ts", "mpegts", "libx264", ("yuv420p",)),
    (".ts", "mpegts", "mpeg2video", ("yuv420p",)),
    (".mpg", "mpeg", "mpeg1video", ("yuv420p",)),
    (".flv", "flv", "flv", ("yuv420p",)),
    (".nut", "nut", "ffv1", ("yuv420p",)),
]
ELEMENTARY = [
    (".h264", "h264", "libx264", ("yuv420p", "yuv444p")),
    (".264", "h264", "libx264", ("yuv420p",)),
    (".hevc", "hevc", "libx265", ("yuv420p",)),
    (".h265", "hevc", "libx265", ("yuv420p",)),
    (".ivf", "ivf", "libvpx-vp9", ("yuv420p",)),
    (".ivf", "ivf", "libvpx", ("yuv420p",)),
    (".y4m", "yuv4mpegpipe", "rawvideo", ("yuv420p", "yuv444p")),
    (".m2v", "mpeg2video", "mpeg2video", ("yuv420p",)),
    (".m1v", "mpeg1video", "mpeg1video", ("yuv420p",)),
    (".mjpeg", "mjpeg", "mjpeg", ("yuvj420p",)),
]
ANIMATED = [
    (".gif", "gif", "gif", ("rgb8", "bgr8")),
    (".apng", "apng", "apng", ("rgb24", "rgba")),
    (".png", "apng", "apng", ("rgb24",)),  # an animated PNG named .png, as browsers and FFmpeg read it
    (".webp", "webp", "libwebp_anim", ("yuv420p",)),  # FFmpeg decodes these, or refuses them
]
# a new encoder mid-stream changes the size or pixel format of the same stream (what splicing does)
CHANGING = [
    (".ts", "mpegts", "libx264", ("yuv420p", "yuv444p", "yuv420p10le", "gray")),
    (".h264", "h264", "libx264", ("yuv420p", "yuv444p", "yuv422p10le")),
    (".mkv", "matroska", "mjpeg", ("yuvj420p", "yuvj444p")),
    (".avi", "avi", "mjpeg", ("yuvj420p", "yuvj422p")),
    (".ivf", "ivf", "libvpx-vp9", ("yuv420p", "yuv444p", "gbrp")),
]
GOP_CODECS = ("libx264", "libx265", "mpeg4", "mpeg2video", "mpeg1video", "libvpx", "libvpx-vp9")
QUIET_OPTIONS = {"libx265": (("x265-params", "log-level=none"),)}
_EVEN_ONLY = ("420", "422", "411", "nv12", "flv", "mpeg")
NAMES = ["in", "in put", "clip ü ñ", "a:b", "x%d", "-dash", "#1 [a]", "日本"]
OUTPUTS = [("--output-alpha", "alpha.mkv"), ("--output-composition", "comp.mp4"),
           ("--output-alpha", "alpha"), ("--output-foreground", "fgr.webm")]


@st.composite
def segments(draw: st.DrawFn, pix_fmts: tuple[str, ...], count: int, codec: str) -> Segment:
    pix_fmt = draw(st.sampled_from(pix_fmts))
    even = any(mark in pix_fmt or mark in codec for mark in _EVEN_ONLY) or codec in ("libx264", "libx265")
    step = 16 if codec in ("mpeg1video", "flv") else 2 if even else 1
    width = draw(st.integers(64, 160).map(lambda v: v - v % step))
    height = draw(st.integers(48, 120).map(lambda v: v - v % step))
    return Segment(width, height, pix_fmt, count)


@st.composite
def inputs(draw: st.DrawFn, table: list[tuple], parts: int = 1) -> Video:
    suffix, fmt, codec, pix_fmts = draw(st.sampled_from(table))
    counts = [draw(st.integers(2 if parts > 1 else 3, 4 if parts > 1 else 8)) for _ in range(parts)]
    drawn = tuple(draw(segments(pix_fmts, count, codec)) for count in counts)
    fps = draw(st.sampled_from((24, 25, 30)))
    trim = draw(st.integers(0, 2)) if fmt in ("mp4", "mov") and parts == 1 else 0  # an edit list hides some
    # starts before a keyframe (only codecs with a GOP: some image muxers crash without their first packet)
    cut = draw(st.sampled_from((0, 0, 1, 2))) if parts == 1 and codec in GOP_CODECS else 0
    options = QUIET_OPTIONS.get(codec, ()) + ((("g", "3"),) if cut else ())
    return Video(suffix, fmt, codec, drawn, fps=fps, options=options, trim=trim, cut=cut)


def _output_frames(path: Path) -> tuple[int, tuple[int, int], tuple[float | None, ...]]:
    if path.is_dir():
        frames = sorted(path.iterdir())
        first = ffmpeg_decode(frames[0]) if frames else None
        return len(frames), first.first_size if first else (0, 0), ()
    decoded = ffmpeg_decode(path)
    assert decoded.error is None, decoded.error
    return decoded.count, decoded.first_size, decoded.times


def _check_matte(spec: Video, name: str, output: tuple[str, str],
                 damage: Callable[[Path], object] | None = None, strict: bool = True) -> None:
    """Write `spec` (then `damage` it), matte it, and check rvmkit's promises against what FFmpeg decodes
    from it. `strict`: what FFmpeg decodes whole must be matted; else a refusal is fine too."""
    with tempfile.TemporaryDirectory(prefix="rvmkit-fuzz-") as tmp:
        folder = Path(tmp)
        source = write_video(folder / f"{name}{spec.suffix}", spec)
        if damage is not None:
            damage(source)
        expected, before = ffmpeg_decode(source), digest(source)
        flag, out_name = output
        with working_directory(folder):  # relative names, as typed in a shell
            typed = f"./{source.name}" if name.startswith("-") else source.name
            status, stderr = run_rvmkit(["matte", typed, flag, out_name, "--quiet"])
        assert digest(source) == before, "the input was changed"
        if expected.error is not None or expected.count == 0 or (not strict and status != 0):
            assert_refused(status, stderr)
            assert tree(folder) == {source.name}
            return
        assert status == 0, f"{spec}: FFmpeg decodes {expected.count} frames, rvmkit said: {stderr}"
        assert "Traceback" not in stderr
        out = folder / out_name
        inside = {f"{out_name}/{entry}" for entry in os.listdir(out)} if out.is_dir() else set()
        assert tree(folder) == {source.name, out_name} | inside, "leftovers beside the output"
        count, size, times = _output_frames(out)
        assert count == expected.count, f"{spec}: {count} frames written, FFmpeg decodes {expected.count}"
        assert size == expected.first_size
        _check_times(times, expected.times)


def _check_times(written: tuple[float | None, ...], decoded: tuple[float | None, ...]) -> None:
    """Output frame times increase; where the input has increasing times, they are kept (relative)."""
    if not written:
        return  # PNG frames have no times
    assert all(b > a for a, b in zip(written, written[1:])), written
    if None in decoded or not all(b > a for a, b in zip(decoded, decoded[1:])):
        return
    offsets = [w - written[0] - (d - decoded[0]) for w, d in zip(written, decoded)]
    assert max(map(abs, offsets)) <= 0.002, (written, decoded)


@fuzz_settings(14)
@given(spec=inputs(CONTAINED), output=st.sampled_from(OUTPUTS))
def test_containers_and_codecs_give_exactly_the_decoded_frames(spec: Video, output: tuple[str, str]) -> None:
    _check_matte(spec, "in", output)


@fuzz_settings(10)
@given(spec=inputs(ELEMENTARY), output=st.sampled_from(OUTPUTS))
def test_elementary_streams_give_exactly_the_decoded_frames(spec: Video, output: tuple[str, str]) -> None:
    _check_matte(spec, "in", output)


@fuzz_settings(6)
@given(spec=inputs(ANIMATED), output=st.sampled_from(OUTPUTS))
def test_animated_images_give_every_frame(spec: Video, output: tuple[str, str]) -> None:
    _check_matte(spec, "in", output)


@fuzz_settings(8)
@given(spec=inputs(CHANGING, parts=2), output=st.sampled_from(OUTPUTS))
def test_size_and_pixel_format_changes_mid_stream_keep_every_frame(spec: Video, output: tuple[str, str]
                                                                   ) -> None:
    _check_matte(spec, "in", output)


@pytest.mark.parametrize("name", NAMES)
@fuzz_settings(1)
@given(spec=inputs(CONTAINED[:1] + ELEMENTARY[:1] + ANIMATED[:3]))
def test_unusual_input_names_are_read(name: str, spec: Video) -> None:
    _check_matte(spec, name, OUTPUTS[0])


def _cut_or_scramble(fraction: float, scramble: bool, seed: int) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        data = bytearray(path.read_bytes())
        at = int(len(data) * fraction)
        if scramble:
            noise = np.random.default_rng(seed).integers(0, 256, 64, dtype=np.uint8).tobytes()
            data[at:at + 64] = noise[:len(data[at:at + 64])]
        else:
            del data[at:]
        path.write_bytes(bytes(data))

    return damage


@fuzz_settings(8)
@given(spec=inputs(CONTAINED + ELEMENTARY + ANIMATED), fraction=st.floats(0.05, 0.95),
       scramble=st.booleans(), seed=st.integers(0, 2**16))
def test_damaged_inputs_are_refused_in_one_line_or_matted_exactly(spec: Video, fraction: float,
                                                                  scramble: bool, seed: int) -> None:
    """Cut or scrambled files: exactly the frames FFmpeg decodes, or one line and exit 2 (rvmkit stops
    rather than glitching), never a traceback or a partial output."""
    _check_matte(spec, "in", OUTPUTS[0], damage=_cut_or_scramble(fraction, scramble, seed), strict=False)


@fuzz_settings(6)
@given(starts=st.lists(st.integers(0, 12), min_size=2, max_size=3), frames=st.integers(2, 4),
       output=st.sampled_from(OUTPUTS[:2] + OUTPUTS[3:]), audio=st.booleans())
def test_clocks_that_restart_step_back_or_jump_keep_every_frame_and_time_running(
        starts: list[int], frames: int, output: tuple[str, str], audio: bool) -> None:
    """Parts joined end to end, each with its own clock start (so time restarts, steps back, repeats or
    jumps between them): every frame FFmpeg decodes is written, with times that keep increasing."""
    from fuzz_media import joined_stream

    with tempfile.TemporaryDirectory(prefix="rvmkit-fuzz-") as tmp:
        folder = Path(tmp)
        source = joined_stream(folder / "joined.ts", tuple(starts), frames=frames, audio=audio)
        expected = ffmpeg_decode(source)
        flag, out_name = output
        with working_directory(folder):
            status, stderr = run_rvmkit(["matte", source.name, flag, out_name, "--quiet"])
        assert status == 0, stderr
        count, _, times = _output_frames(folder / out_name)
        assert count == expected.count == frames * len(starts)
        if not times:
            return  # PNG frames have no times
        decoded = expected.times
        for index in range(1, count):  # where the clock went on, its step is kept; else a frame (25 fps)
            step, source_step = times[index] - times[index - 1], decoded[index] - decoded[index - 1]
            wanted = source_step if source_step > 0 else 0.04
            assert abs(step - wanted) <= 0.002, (index, times, decoded)
