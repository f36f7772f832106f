"""rvmkit.video.reader: real clips, GIF, odd sizes, image folders and every bad input."""

from __future__ import annotations

import os
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from fuzz_media import Segment, Video, ffmpeg_decode, lying_header, real_frames, write_video

from conftest import BARS, CLIPS, bar_colours, read_frames, with_colour_bars, write_clip
from rvmkit.errors import RvmkitError
from rvmkit.video import Frame, VideoInfo, encode_png, open_sink, open_source
from rvmkit.video.reader import notes


def _write_images(folder: Path, frames: list[np.ndarray], names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for frame, name in zip(frames, names):
        (folder / name).write_bytes(encode_png(frame))


@pytest.mark.parametrize("clip,count", [("book", 109), ("milk", 51), ("sister", 87)])
def test_real_clips_report_exact_count_size_and_rate(clip: str, count: int) -> None:
    with open_source(CLIPS[clip]) as source:
        info = source.info
    assert (info.width, info.height, info.frame_count) == (640, 480, count)
    assert info.fps == 30 and info.time_base == Fraction(1, 1000)
    assert not info.has_audio and not info.is_image_sequence


def test_decoding_yields_every_frame_with_source_timestamps() -> None:
    with open_source(CLIPS["milk"]) as source:
        frames = list(source)
    assert len(frames) == source.info.frame_count == 51
    assert [frame.index for frame in frames] == list(range(51))
    assert frames[0].pts == 33 and frames[-1].pts == 1700 and frames[0].time_base == Fraction(1, 1000)
    first = frames[0].rgb
    assert first.shape == (480, 640, 3) and first.dtype == np.uint8 and first.flags.c_contiguous
    np.testing.assert_array_equal(first, read_frames("milk", 1)[0])


def test_input_resize_scales_frames_and_info() -> None:
    with open_source(CLIPS["book"], resize=(321, 239)) as source:
        frame = next(iter(source))
    assert (source.info.width, source.info.height) == (321, 239)
    assert frame.rgb.shape == (239, 321, 3)
    with open_source(CLIPS["book"], resize=(np.int64(320), np.int32(240))) as source:  # numpy sizes too
        assert (source.info.width, source.info.height) == (320, 240)
    for bad in ((0, 10), (99999, 99999), (float("nan"), 10), (320.5, 240)):
        with pytest.raises(RvmkitError, match="whole numbers from 1 to 16384"):
            open_source(CLIPS["book"], resize=bad)


def test_gif_input(tmp_path: Path, book_frames: list[np.ndarray]) -> None:
    gif = tmp_path / "clip.gif"
    with av.open(str(gif), "w") as container:
        stream = container.add_stream("gif", rate=10)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "rgb8"
        for index, rgb in enumerate(book_frames[:5]):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(160, 120)
            frame.pts, frame.time_base = index, Fraction(1, 10)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with open_source(gif) as source:
        frames = list(source)
    assert (source.info.width, source.info.height, source.info.frame_count) == (160, 120, 5)
    assert source.info.fps == 10 and len(frames) == 5
    assert [float(f.pts * f.time_base) for f in frames] == pytest.approx([0, 0.1, 0.2, 0.3, 0.4])
    small = av.VideoFrame.from_ndarray(book_frames[2], format="rgb24").reformat(160, 120).to_ndarray()
    assert np.abs(frames[2].rgb.astype(int) - small).mean() < 25  # a 256-colour palette, but the same picture


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".mov"])
def test_odd_size_round_trip_keeps_size_and_count(tmp_path: Path, book_frames: list[np.ndarray],
                                                   suffix: str) -> None:
    odd = [np.ascontiguousarray(np.pad(rgb, ((0, 0), (0, 1), (0, 0)), mode="edge")[:479])
           for rgb in book_frames[:4]]
    info = VideoInfo(tmp_path / "in", 641, 479, 4, Fraction(30), Fraction(1, 30), False, False)
    sink = open_sink(tmp_path / f"odd{suffix}", info, alpha=False)
    for index, rgb in enumerate(odd):
        sink.write(rgb, Frame(index, rgb, index, Fraction(1, 30)))
    with open_source(sink.commit()) as source:
        frames = list(source)
    assert (source.info.width, source.info.height, source.info.frame_count, len(frames)) == (641, 479, 4, 4)
    assert np.abs(frames[3].rgb.astype(int) - odd[3]).mean() < 3  # nothing cropped, shifted or padded


def test_image_folder_is_read_in_natural_order(tmp_path: Path, book_frames: list[np.ndarray]) -> None:
    picks = [book_frames[i] for i in (0, 5, 10)]
    _write_images(tmp_path / "seq", picks, ["f2.png", "f10.png", "f1.png"])
    (tmp_path / "seq" / "notes.txt").write_text("ignored")
    with open_source(tmp_path / "seq") as source:
        frames = list(source)
    assert source.info.is_image_sequence and source.info.frame_count == 3 and source.info.fps == 30
    for frame, expected in zip(frames, [picks[2], picks[0], picks[1]]):  # f1, f2, f10
        np.testing.assert_array_equal(frame.rgb, expected)
    assert [(f.pts, f.time_base) for f in frames] == [(i, Fraction(1, 30)) for i in range(3)]


def test_single_image_and_jpeg(tmp_path: Path, book_frames: list[np.ndarray]) -> None:
    _write_images(tmp_path, [book_frames[0]], ["one.png"])
    with open_source(tmp_path / "one.png", resize=(320, 240)) as source:
        (frame,) = list(source)
    assert source.info.is_image_sequence and source.info.frame_count == 1 and frame.rgb.shape == (240, 320, 3)
    jpeg = tmp_path / "one.jpg"
    context = av.CodecContext.create("mjpeg", "w")
    context.width, context.height, context.pix_fmt, context.time_base = 640, 480, "yuvj420p", Fraction(1, 25)
    picture = av.VideoFrame.from_ndarray(book_frames[0], format="rgb24").reformat(format="yuvj420p")
    jpeg.write_bytes(b"".join(bytes(p) for p in [*context.encode(picture), *context.encode(None)]))
    with open_source(jpeg) as source:
        (frame,) = list(source)
    assert np.abs(frame.rgb.astype(int) - book_frames[0]).mean() < 4


@pytest.mark.parametrize("name,fmt,codec,pix_fmt", [("anim.png", "apng", "apng", "rgb24"),
                                                      ("clip.jpg", "mp4", "libx264", "yuv420p")])
def test_animation_under_an_image_name_is_read_whole(tmp_path: Path, name: str, fmt: str, codec: str,
                                                      pix_fmt: str) -> None:
    """An animated PNG named .png (or a video named .jpg) is what FFmpeg reads it as: every frame."""
    path = write_video(tmp_path / name, Video(Path(name).suffix, fmt, codec, (Segment(96, 64, pix_fmt, 5),)))
    with open_source(path) as source:
        frames = list(source)
    assert not source.info.is_image_sequence
    assert source.info.frame_count == len(frames) == 5


@pytest.mark.parametrize("suffix,fmt,codec,pix_fmt", [(".mp4", "mp4", "libx264", "yuv420p"),
                                                       (".mov", "mov", "libx264", "yuv420p"),
                                                       (".mov", "mov", "prores_ks", "yuv422p10le")])
def test_frames_an_edit_list_hides_are_not_counted(tmp_path: Path, suffix: str, fmt: str, codec: str,
                                                   pix_fmt: str) -> None:
    """A clip cut without re-encoding: its edit list hides the first frames, which FFmpeg decodes as
    references only (H.264) or leaves out (ProRes: the header still counts them). The count is the
    frames shown, not refused as damaged or truncated."""
    spec = Video(suffix, fmt, codec, (Segment(96, 64, pix_fmt, 8),), trim=3)
    with open_source(write_video(tmp_path / f"cut{suffix}", spec)) as source:
        frames = list(source)
    assert source.info.frame_count == len(frames) == 5
    assert [float(f.pts * f.time_base) for f in frames] == pytest.approx([0, 0.04, 0.08, 0.12, 0.16])
    assert np.abs(frames[0].rgb.astype(int) - real_frames(8, 96, 64)[3]).mean() < 8  # the 4th shows first


CLOSED_GOP = (("g", "4"), ("bf", "0"))
OPEN_GOP = (("g", "3"), ("x265-params", "log-level=none"))  # x265: open GOPs, B-frames


@pytest.mark.parametrize("suffix,fmt,codec,options,shown", [(".mkv", "matroska", "libx264", CLOSED_GOP, 4),
                                                             (".mkv", "matroska", "mpeg4", CLOSED_GOP, 7),
                                                             (".avi", "avi", "mpeg4", CLOSED_GOP, 7),
                                                             (".mkv", "matroska", "libx265", OPEN_GOP, 5),
                                                             (".hevc", "hevc", "libx265", OPEN_GOP, 5)])
def test_a_stream_cut_before_a_keyframe_counts_the_frames_ffmpeg_shows(tmp_path: Path, suffix: str, fmt: str,
                                                                        codec: str, options: tuple, shown: int
                                                                        ) -> None:
    """A copy cut that starts after a keyframe: H.264 skips the frames up to the next one, MPEG-4
    part 2 shows them, HEVC also skips the open GOP's leading pictures (RASL) shown before it; rvmkit
    counts what FFmpeg shows instead of refusing the file as damaged. (The AVI also keeps an empty
    chunk for the frame cut away, which its header counts.)"""
    spec = Video(suffix, fmt, codec, (Segment(96, 64, "yuv420p", 8),), options=options, cut=1)
    with open_source(write_video(tmp_path / f"cut{suffix}", spec)) as source:
        frames = list(source)
    assert source.info.frame_count == len(frames) == shown


def test_a_leading_tilde_is_the_home_folder_as_for_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    write_clip(tmp_path / "talk.mp4", read_frames("book", 3))
    monkeypatch.setenv("HOME", str(tmp_path))
    with open_source("~/talk.mp4") as source:
        assert source.info.path == tmp_path / "talk.mp4" and len(list(source)) == 3


def test_a_name_with_a_colon_is_a_file_not_a_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """'a:b.mp4' typed relative is read as the file, not as a URL of protocol 'a'."""
    write_clip(tmp_path / "a:b.mp4", read_frames("book", 3))
    monkeypatch.chdir(tmp_path)
    with open_source("a:b.mp4") as source:
        assert source.info.frame_count == len(list(source)) == 3


def test_a_codec_ffmpeg_cannot_decode_is_one_line(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "clip.mp4", read_frames("book", 2))
    path.write_bytes(path.read_bytes().replace(b"avc1", b"zzzz"))  # a codec tag FFmpeg does not know
    assert "no decoder" in _error(path)
    image = tmp_path / "photo.png"
    image.write_bytes(path.read_bytes())
    assert "no decoder" in _error(image)


def _error(path: Path | str) -> str:
    with pytest.raises(RvmkitError) as caught:
        with open_source(path) as source:
            list(source)
    message = str(caught.value)
    assert "\n" not in message and os.fspath(path) in message
    return message


def test_missing_empty_and_non_video_inputs_are_refused(tmp_path: Path) -> None:
    assert "no such" in _error(tmp_path / "missing.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    assert "empty" in _error(tmp_path / "empty.mp4")
    (tmp_path / "text.mp4").write_text("not a video at all\n" * 50)
    assert "not a readable video" in _error(tmp_path / "text.mp4")
    (tmp_path / "fake.png").write_text("not an image\n" * 50)
    assert "not a readable" in _error(tmp_path / "fake.png")
    (tmp_path / "nothing").mkdir()
    assert "no images" in _error(tmp_path / "nothing")


def test_unreadable_input_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "locked.mkv"
    shutil.copy(CLIPS["milk"], path)
    path.chmod(0)
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # root reads anything: answer as for a user
        real_access = os.access
        monkeypatch.setattr(os, "access",
                            lambda p, mode: False if str(p) == str(path) else real_access(p, mode))
    assert "permission" in _error(path)


def test_audio_only_file_has_no_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "sound.m4a"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        samples = np.zeros((1, 1024), np.float32)
        for index in range(4):
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 8000, index * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    assert "no video stream" in _error(path)


def test_folder_with_images_of_different_sizes_is_refused(tmp_path: Path,
                                                           book_frames: list[np.ndarray]) -> None:
    _write_images(tmp_path / "mixed", [book_frames[0], book_frames[1][:240, :320]], ["a.png", "b.png"])
    message = _error(tmp_path / "mixed")
    assert "b.png" in message and "320x240" in message and "same size" in message


@pytest.mark.parametrize("suffix,fmt,codec", [(".h264", "h264", "libx264"), (".hevc", "hevc", "libx265")])
def test_elementary_stream_without_timestamps_is_read_whole(tmp_path: Path, suffix: str, fmt: str,
                                                            codec: str) -> None:
    """Annex B streams have no timestamps at all: every packet counts, not only timed ones."""
    quiet = (("x265-params", "log-level=none"),) if codec == "libx265" else ()
    path = write_video(tmp_path / f"clip{suffix}", Video(suffix, fmt, codec, (Segment(96, 64, "yuv420p", 5),),
                                                         options=quiet))
    with open_source(path) as source:
        frames = list(source)
    assert source.info.frame_count == len(frames) == 5
    assert frames[4].rgb.shape == (64, 96, 3)


SPLICED = [(".ts", "mpegts", "libx264", ("yuv420p", "yuv444p")),
           (".mkv", "matroska", "mjpeg", ("yuvj420p", "yuvj444p"))]


@pytest.mark.parametrize("suffix,fmt,codec,pix_fmts", SPLICED)
def test_size_change_mid_stream_is_scaled_to_the_first_size(tmp_path: Path, suffix: str, fmt: str, codec: str,
                                                             pix_fmts: tuple[str, str]) -> None:
    """A spliced stream that changes size (and pixel format) keeps every frame, at the first size."""
    segments = (Segment(96, 64, pix_fmts[0], 3), Segment(160, 120, pix_fmts[1], 3))
    path = write_video(tmp_path / f"spliced{suffix}", Video(suffix, fmt, codec, segments))
    with open_source(path) as source:
        frames = list(source)
    assert (source.info.width, source.info.height, source.info.frame_count) == (96, 64, 6)
    assert [frame.rgb.shape for frame in frames] == [(64, 96, 3)] * 6
    expected = real_frames(3, 96, 64)  # the second segment restarts at the clip's first frame
    assert np.abs(frames[4].rgb.astype(int) - expected[1]).mean() < 8


def test_truncated_file_is_refused_before_any_frame(tmp_path: Path) -> None:
    data = CLIPS["book"].read_bytes()
    path = tmp_path / "cut.mkv"
    path.write_bytes(data[: len(data) // 2])
    assert "truncated" in _error(path)


@pytest.mark.parametrize("claim", ["short.mkv", "long.mkv", "few.avi", "many.avi", "short.mp4", "long.mp4"])
def test_a_header_that_lies_never_sets_the_frame_count(tmp_path: Path, claim: str) -> None:
    """Every frame decoded counts, whatever the header claims: a claim short of the data changes nothing;
    a claim beyond it is a truncated copy, refused up front (MP4's sample table, not its movie duration,
    says what is there)."""
    path = lying_header(tmp_path / claim, claim)
    if claim in ("long.mkv", "many.avi"):
        assert "truncated" in _error(path)
        return
    with open_source(path) as source:
        frames = list(source)
    assert source.info.frame_count == len(frames) == ffmpeg_decode(path).count == 8
    assert notes(source.info) == []


def test_frame_damaged_mid_stream_stops_with_its_index(tmp_path: Path) -> None:
    """Policy: a damaged frame stops decoding with an error rather than being skipped or glitched."""
    data = bytearray(CLIPS["book"].read_bytes())
    offset = int(len(data) * 0.6)
    data[offset:offset + 200] = np.random.default_rng(1).integers(0, 256, 200, dtype=np.uint8).tobytes()
    path = tmp_path / "damaged.mkv"
    path.write_bytes(bytes(data))
    with open_source(path) as source:
        assert source.info.frame_count == 109
        decoded = []
        with pytest.raises(RvmkitError, match=r"frame \d+ .*damaged") as caught:
            for frame in source:
                decoded.append(frame.index)
    assert f"frame {len(decoded)} " in str(caught.value) and 0 < len(decoded) < 109


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_phone_rotation_is_applied_so_frames_are_upright(tmp_path: Path, book_frames: list[np.ndarray],
                                                         rotation: int) -> None:
    clip = write_clip(tmp_path / "phone.mp4", book_frames[:3], rotation=rotation)
    with open_source(clip) as source:
        frames = list(source)
    assert (source.info.width, source.info.height) == (640, 480)
    for frame, upright in zip(frames, book_frames):
        assert frame.rgb.shape == (480, 640, 3) and frame.rgb.flags.c_contiguous
        assert np.abs(frame.rgb.astype(int) - upright).mean() < 3  # x264 crf 18, not a turned picture
    with open_source(clip, resize=(320, 240)) as source:  # --input-resize is the upright size
        assert next(iter(source)).rgb.shape == (240, 320, 3)


@pytest.mark.parametrize("colorspace", [1, 6])
def test_input_colour_matrix_is_used_and_reported(tmp_path: Path, book_frames: list[np.ndarray],
                                                 colorspace: int) -> None:
    frames = [with_colour_bars(rgb) for rgb in book_frames[:2]]
    clip = write_clip(tmp_path / "tagged.mp4", frames, colorspace=colorspace)
    with open_source(clip) as source:
        first = next(iter(source))
    assert source.info.colorspace == colorspace
    # decoding with the other matrix moves saturated colours by 10 to 40 levels
    assert np.abs(bar_colours(first.rgb) - BARS).max() < 5


def test_exif_orientation_of_photos_is_applied(tmp_path: Path, book_frames: list[np.ndarray]) -> None:
    from PIL import Image

    stored = Image.fromarray(np.ascontiguousarray(np.rot90(book_frames[0])))  # the camera held sideways
    exif = stored.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    stored.save(tmp_path / "photo.jpg", exif=exif, quality=95)
    with open_source(tmp_path / "photo.jpg") as source:
        frame = next(iter(source))
    assert (source.info.width, source.info.height) == (640, 480) and frame.rgb.shape == (480, 640, 3)
    assert np.abs(frame.rgb.astype(int) - book_frames[0]).mean() < 3
    plain = tmp_path / "upright.jpg"
    Image.fromarray(book_frames[1]).save(plain, quality=95)
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name, image in (("a.jpg", plain), ("b.jpg", tmp_path / "photo.jpg")):
        (folder / name).write_bytes(image.read_bytes())
    with open_source(folder) as source:  # two 640x480 photos, one stored sideways
        assert [f.rgb.shape for f in source] == [(480, 640, 3)] * 2
    Image.fromarray(np.ascontiguousarray(np.rot90(book_frames[2]))).save(folder / "c.jpg", quality=95)
    with pytest.raises(RvmkitError, match="c.jpg.*480x640 once turned upright"):
        with open_source(folder) as source:
            list(source)  # sideways without EXIF: not the same picture size
