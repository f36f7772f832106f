"""rvmkit.video.writer: each container keeps frames, size, rate, timestamps, alpha and audio; safe outputs."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from fuzz_media import Audio, Segment, Video, audio_languages, write_video

from conftest import BARS, CLIPS, bar_colours, with_colour_bars
from rvmkit.errors import RvmkitError
from rvmkit.video import Frame, VideoInfo, open_sink, open_source, resolve_output

COUNT = 8


def slow(*suffixes: str) -> list:
    """The rest of a container matrix: one container stays in the quick run, these run in the full one."""
    return [pytest.param(suffix, marks=pytest.mark.slow) for suffix in suffixes]


@pytest.fixture(scope="module")
def clip() -> tuple[VideoInfo, list[Frame]]:
    """The first frames of book.mkv with their own timestamps (ms time base, starting at 33)."""
    with open_source(CLIPS["book"]) as source:
        frames = []
        for frame in source:
            frames.append(frame)
            if len(frames) == COUNT:
                break
    return source.info, frames


def _half_transparent(rgb: np.ndarray) -> np.ndarray:
    alpha = np.zeros(rgb.shape[:2] + (1,), np.uint8)
    alpha[:, : rgb.shape[1] // 2] = 255
    return np.concatenate([rgb, alpha], axis=2)


def _write(path: Path, clip: tuple[VideoInfo, list[Frame]], alpha: bool = False, **options: object) -> Path:
    info, frames = clip
    sink = open_sink(path, info, alpha=alpha, **options)
    for frame in frames:
        sink.write(_half_transparent(frame.rgb) if alpha else frame.rgb, frame)
    return sink.commit()


def _leftovers(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir() if "rvmkit" in entry.name)


@pytest.mark.parametrize("path,output_type,expected", [
    ("out", None, ("png_sequence", "png")),
    ("out.mp4", "png_sequence", ("png_sequence", "png")),
    ("out.mp4", None, ("video", "libx264")),
    ("out.MKV", "video", ("video", "libx264")),
    ("out.webm", None, ("video", "libvpx-vp9")),
    ("out.mov", None, ("video", "prores_ks")),
    ("frames.v2/", None, ("png_sequence", "png")),  # a trailing slash names a folder, whatever its suffix
    ("out.mp4/", None, ("png_sequence", "png")),
])
def test_resolve_output_picks_kind_and_codec(path: str, output_type: str | None, expected: tuple) -> None:
    assert resolve_output(path, output_type) == expected


def test_resolve_output_refuses_unknown_suffix_and_type() -> None:
    with pytest.raises(RvmkitError, match="out.avi.*unknown video type"):
        resolve_output("out.avi", None)
    with pytest.raises(RvmkitError, match="output type"):
        resolve_output("out.mp4", "gif")


@pytest.mark.parametrize("suffix,codec",
                         [(".mp4", "h264"), (".mkv", "h264"), (".webm", "vp9"), (".mov", "prores")])
def test_container_keeps_count_size_rate_and_timestamps(tmp_path: Path, clip, suffix: str,
                                                        codec: str) -> None:
    info, frames = clip
    path = _write(tmp_path / f"out{suffix}", clip)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoded = list(container.decode(stream))
        assert stream.codec_context.name == codec
        assert abs(float(stream.guessed_rate) - 30) < 0.1
    assert len(decoded) == COUNT and (decoded[0].width, decoded[0].height) == (640, 480)
    assert [d.pts * d.time_base for d in decoded] == [f.pts * f.time_base for f in frames]
    error = np.abs(decoded[-1].to_ndarray(format="rgb24").astype(int) - frames[-1].rgb).mean()
    assert error < 3
    assert _leftovers(tmp_path) == []


def test_png_sequence_is_lossless_with_rgba_and_grey(tmp_path: Path, clip) -> None:
    info, frames = clip
    path = _write(tmp_path / "rgba", clip, alpha=True)
    assert sorted(p.name for p in path.iterdir()) == [f"{i:06d}.png" for i in range(COUNT)]
    with av.open(str(path / "000003.png")) as container:
        png = next(container.decode(video=0)).to_ndarray(format="rgba")
    np.testing.assert_array_equal(png, _half_transparent(frames[3].rgb))
    grey = open_sink(tmp_path / "alpha", info, alpha=False, output_type="png_sequence")
    grey.write(frames[0].rgb[:, :, 1], frames[0])
    with open_source(grey.commit()) as source:
        (decoded,) = list(source)
    np.testing.assert_array_equal(decoded.rgb[:, :, 0], frames[0].rgb[:, :, 1])
    assert _leftovers(tmp_path) == []


def _alpha_plane(decoded: av.VideoFrame) -> np.ndarray:
    return decoded.to_ndarray(format="rgba")[:, :, 3]


def test_webm_carries_real_transparency(tmp_path: Path, clip) -> None:
    path = _write(tmp_path / "t.webm", clip, alpha=True)
    decoder = av.CodecContext.create("libvpx-vp9", "r")  # FFmpeg's native VP9 decoder drops alpha
    with av.open(str(path)) as container:
        # demux() ends with an empty packet, which also flushes the decoder
        decoded = [f for packet in container.demux(video=0) for f in decoder.decode(packet)]
    assert len(decoded) == COUNT and decoded[0].format.name == "yuva420p"
    alpha = _alpha_plane(decoded[-1])
    assert alpha[:, :300].min() >= 250 and alpha[:, 340:].max() <= 5


def test_mov_carries_prores_4444_alpha(tmp_path: Path, clip) -> None:
    path = _write(tmp_path / "t.mov", clip, alpha=True)
    with av.open(str(path)) as container:
        decoded = list(container.decode(video=0))
    assert len(decoded) == COUNT and decoded[0].format.name.startswith("yuva444p")
    alpha = _alpha_plane(decoded[-1])
    assert alpha[:, :300].min() >= 250 and alpha[:, 340:].max() <= 5


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_transparency_into_h264_container_is_refused(tmp_path: Path, clip, suffix: str) -> None:
    with pytest.raises(RvmkitError, match=r"cannot carry transparency; use \.webm \(VP9\), \.mov \(ProRes "
                                          r"4444\) or a folder of PNGs"):
        open_sink(tmp_path / f"t{suffix}", clip[0], alpha=True)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def clip_with_audio(tmp_path_factory: pytest.TempPathFactory, clip) -> Path:
    """Real frames at 30 fps muxed with a generated 440 Hz AAC track, like a phone video."""
    path = tmp_path_factory.mktemp("audio") / "talk.mp4"
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = 640, 480, "yuv420p"
        audio = container.add_stream("aac", rate=44100)
        audio.layout = "stereo"
        for index, frame in enumerate(clip[1]):
            picture = av.VideoFrame.from_ndarray(frame.rgb, format="rgb24")
            picture.pts, picture.time_base = index, Fraction(1, 30)
            container.mux(video.encode(picture))
        container.mux(video.encode(None))
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(44100 * COUNT // 30) / 44100)).astype(np.float32)
        for start in range(0, len(tone), 1024):
            chunk = tone[start:start + 1024]
            samples = av.AudioFrame.from_ndarray(np.stack([chunk, chunk]), format="fltp", layout="stereo")
            samples.sample_rate, samples.pts, samples.time_base = 44100, start, Fraction(1, 44100)
            container.mux(audio.encode(samples))
        container.mux(audio.encode(None))
    return path


def _audio_packets(path: Path) -> tuple[str, list[bytes]]:
    with av.open(str(path)) as container:
        name = container.streams.audio[0].codec_context.name
        return name, [bytes(p) for p in container.demux(audio=0) if p.size]


@pytest.mark.parametrize("suffix", [".mp4", *slow(".mkv", ".mov", ".webm")])
def test_audio_is_carried_over(tmp_path: Path, clip_with_audio: Path, suffix: str) -> None:
    with open_source(clip_with_audio) as source:
        assert source.info.has_audio
        sink = open_sink(tmp_path / f"out{suffix}", source.info, alpha=False, audio_from=clip_with_audio)
        for frame in source:
            sink.write(frame.rgb, frame)
    out = sink.commit()
    codec, packets = _audio_packets(out)
    original_codec, original = _audio_packets(clip_with_audio)
    if suffix == ".webm":  # WebM only allows Opus/Vorbis: AAC is transcoded
        assert codec == "opus" and len(packets) > 0
    else:
        assert codec == original_codec == "aac" and packets == original  # copied bit for bit
    with open_source(out) as reread:
        assert reread.info.frame_count == COUNT


@pytest.mark.parametrize("suffix", [".mkv", ".mp4", ".mov", ".webm"])
def test_copied_audio_does_not_shift_video_timestamps(tmp_path: Path, clip, clip_with_audio: Path,
                                                      suffix: str) -> None:
    """AAC starts with a priming packet at a negative time; Matroska used to move all video by +21 ms."""
    path = _write(tmp_path / f"out{suffix}", clip, audio_from=clip_with_audio)
    with av.open(str(path)) as container:
        assert container.streams.audio
        decoded = list(container.decode(video=0))
    assert [d.pts * d.time_base for d in decoded] == [f.pts * f.time_base for f in clip[1]]
    assert decoded[0].pts * decoded[0].time_base == Fraction(33, 1000)


def test_existing_output_needs_overwrite(tmp_path: Path, clip) -> None:
    for name in ("old.mp4", "old_frames"):
        target = tmp_path / name
        if "." in name:
            target.write_bytes(b"precious")
        else:  # an earlier PNG-sequence output
            target.mkdir()
            (target / "000000.png").write_bytes(b"an old frame")
        with pytest.raises(RvmkitError, match="already exists"):
            open_sink(target, clip[0], alpha=False)
        _write(target, clip, overwrite=True)
    with open_source(tmp_path / "old.mp4") as source:
        assert source.info.frame_count == COUNT
    assert len(list((tmp_path / "old_frames").iterdir())) == COUNT
    assert _leftovers(tmp_path) == []


def test_input_is_never_the_output(tmp_path: Path, clip) -> None:
    info = VideoInfo(tmp_path / "in.mp4", 640, 480, COUNT, Fraction(30), Fraction(1, 30), False, False)
    info.path.write_bytes(b"the input")
    with pytest.raises(RvmkitError, match="output is the input"):
        open_sink(tmp_path / "in.mp4", info, alpha=False, overwrite=True)
    assert info.path.read_bytes() == b"the input"


@pytest.mark.parametrize("name", ["out.mp4", "out.webm", "frames"])
def test_abort_leaves_nothing(tmp_path: Path, clip, name: str) -> None:
    info, frames = clip
    sink = open_sink(tmp_path / name, info, alpha=False)
    for frame in frames[:3]:
        sink.write(frame.rgb, frame)
    sink.abort()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(KeyboardInterrupt), open_sink(tmp_path / name, info, alpha=False) as sink:
        sink.write(frames[0].rgb, frames[0])
        raise KeyboardInterrupt  # what Ctrl-C looks like to the pipeline
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".mp4", *slow(".webm", ".mov")])
@pytest.mark.parametrize("colorspace,height,expected", [(1, 480, 1), (1, 720, 1), (6, 480, 6), (5, 480, 5),
                                                        (None, 480, 6), (None, 720, 6), (9, 480, 6)])
def test_colour_matrix_follows_the_input_and_colours_round_trip(tmp_path: Path, clip, suffix: str,
                                                               colorspace, height, expected) -> None:
    info, frames = clip
    width = 640 if height == 480 else 960
    info = dataclasses.replace(info, colorspace=colorspace, width=width, height=height)
    sink = open_sink(tmp_path / f"out{suffix}", info, alpha=False)
    for frame in frames[:2]:
        picture = av.VideoFrame.from_ndarray(frame.rgb, format="rgb24").reformat(width, height).to_ndarray()
        sink.write(with_colour_bars(picture), frame)
    with av.open(str(sink.commit())) as container:
        decoded = next(container.decode(video=0))
        # both 5 and 6 are BT.601: .mov stores BT.470BG as SMPTE 170M
        same_matrix = decoded.colorspace == expected or {decoded.colorspace, expected} == {5, 6}
        assert same_matrix and decoded.color_range == 1
        # the encoder converted with the matrix it tagged: a player gets the colours back
        assert np.abs(bar_colours(decoded.to_ndarray(format="rgb24")) - BARS).max() < 6


def _two_language_clip(path: Path, frames: list[Frame]) -> Path:
    """Real frames with two audio tracks: English AAC from 0 s, Spanish PCM from 0.1 s."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = 640, 480, "yuv420p"
        tracks = []
        for codec, language, start in (("aac", "eng", 0), ("pcm_s16le", "spa", 4800)):
            stream = container.add_stream(codec, rate=48000)
            stream.layout, stream.metadata["language"] = "mono", language
            tracks.append((stream, start, "fltp" if codec == "aac" else "s16"))
        for index, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(frame.rgb, format="rgb24")
            picture.pts = index
            container.mux(video.encode(picture))
        container.mux(video.encode(None))
        for stream, start, fmt in tracks:
            samples = int(48000 * len(frames) / 30)
            tone = 0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)
            data = (tone * 32767).astype(np.int16) if fmt == "s16" else tone.astype(np.float32)
            for offset in range(0, samples, 1024):
                chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[None, offset:offset + 1024]),
                                                   format=fmt, layout="mono")
                chunk.sample_rate, chunk.pts = 48000, start + offset
                container.mux(stream.encode(chunk))
            container.mux(stream.encode(None))
    return path


@pytest.mark.parametrize("suffix", [".mp4", *slow(".mkv", ".mov", ".webm")])
def test_every_audio_track_is_kept_with_its_start_and_language(tmp_path: Path, clip, suffix: str) -> None:
    source = _two_language_clip(tmp_path / "talk.mkv", clip[1])
    with open_source(source) as reader:
        sink = open_sink(tmp_path / f"out{suffix}", reader.info, alpha=False, audio_from=source)
        for frame in reader:
            sink.write(frame.rgb, frame)
    with av.open(str(sink.commit())) as container:
        audio = container.streams.audio
        assert [stream.metadata.get("language") for stream in audio] == ["eng", "spa"]
        starts = [float(next(container.decode(stream)).time) for stream in audio]
    # transcoded tracks (PCM into .mp4, anything into .webm) keep their start too, give or take the
    # encoder's priming (AAC: 1024 samples, 21 ms; Opus: 312)
    assert starts == pytest.approx([0.0, 0.1], abs=0.025)


def test_overwrite_never_deletes_anything_but_an_earlier_frame_folder(tmp_path: Path, clip,
                                                                      monkeypatch) -> None:
    info, _ = clip
    work = tmp_path / "work"
    (work / "notes").mkdir(parents=True)
    (work / "notes" / "keep.txt").write_text("mine")
    (work / "cut.mp4").mkdir()  # a folder named like a video
    (work / "cut.mp4" / "keep.txt").write_text("mine")
    inside = dataclasses.replace(info, path=work / "notes" / "input.mp4")
    monkeypatch.chdir(work)
    for target, source, match in (
            (work / "notes", info, "also holds 'keep.txt'"),
            (work / "cut.mp4", info, "also holds 'keep.txt'"),
            (work / "notes", inside, "holds the input"),
            (Path("."), info, "is the current folder"),
            (Path(".."), info, "is the current folder or one of its parents")):
        with pytest.raises(RvmkitError, match=match):
            open_sink(target, source, alpha=False, overwrite=True)
    with pytest.raises(RvmkitError, match="is a folder; refusing to replace it with a file"):
        open_sink(work / "cut.mp4", info, alpha=False, output_type="video", overwrite=True)
    assert (work / "notes" / "keep.txt").read_text() == "mine" == (work / "cut.mp4" / "keep.txt").read_text()


def test_an_empty_folder_takes_frames_without_overwrite(tmp_path: Path, clip) -> None:
    (tmp_path / "frames").mkdir()
    _write(tmp_path / "frames", clip)
    assert len(list((tmp_path / "frames").iterdir())) == COUNT


def _clip_with_track(path: Path, frames: list[Frame], codec: str, layout: str) -> Path:
    """Real frames with one silent-ish audio track of `codec` in Matroska (which takes any codec)."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = 640, 480, "yuv420p"
        audio = container.add_stream(codec, rate=48000)
        audio.layout = layout
        for index, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(frame.rgb, format="rgb24")
            picture.pts = index
            container.mux(video.encode(picture))
        container.mux(video.encode(None))
        channels = 2 if layout == "stereo" else 1
        samples = int(48000 * len(frames) / 30)
        tone = (0.1 * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)).astype(np.float32)
        for start in range(0, samples, 960):
            chunk = av.AudioFrame.from_ndarray(np.repeat(tone[None, start:start + 960], channels, 0),
                                               format="fltp", layout=layout)
            chunk.sample_rate, chunk.pts = 48000, start
            container.mux(audio.encode(chunk))
        container.mux(audio.encode(None))
    return path


@pytest.mark.parametrize("codec, suffix, carried", [
    ("libopus", ".mov", "aac"),  # QuickTime takes no Opus
    pytest.param("flac", ".mov", "aac", marks=pytest.mark.slow),  # nor FLAC
    ("pcm_s16le", ".mp4", "aac"),  # MP4 takes no stereo PCM
    pytest.param("pcm_s16le", ".mov", "pcm_s16le", marks=pytest.mark.slow),
    pytest.param("flac", ".mp4", "flac", marks=pytest.mark.slow),
    pytest.param("libopus", ".webm", "opus", marks=pytest.mark.slow),
    pytest.param("libmp3lame", ".mp4", "mp3", marks=pytest.mark.slow),  # copied: the decoder is "mp3float"
    pytest.param("libmp3lame", ".mov", "mp3", marks=pytest.mark.slow),
])
def test_audio_the_container_refuses_is_transcoded_not_fatal(tmp_path: Path, clip, codec: str, suffix: str,
                                                             carried: str) -> None:
    source = _clip_with_track(tmp_path / "in.mkv", clip[1], codec, "stereo")
    with open_source(source) as reader:
        sink = open_sink(tmp_path / f"out{suffix}", reader.info, alpha=False, audio_from=source)
        for frame in reader:
            sink.write(frame.rgb, frame)
    with av.open(str(sink.commit())) as container:
        [audio] = container.streams.audio
        decoded = sum(frame.samples for frame in container.decode(audio))
    assert audio.codec_context.codec.canonical_name == carried and audio.channels == 2
    assert decoded == pytest.approx(48000 * COUNT / 30, abs=2048)  # the whole track, give or take a frame


def test_overwrite_rechecks_the_folder_before_replacing_it(tmp_path: Path, clip) -> None:
    info, frames = clip
    target = tmp_path / "frames"
    target.mkdir()
    (target / "000000.png").write_bytes(b"an old frame")
    sink = open_sink(target, info, alpha=False, overwrite=True)
    for frame in frames:
        sink.write(frame.rgb, frame)
    (target / "notes.txt").write_text("written during the run")
    with pytest.raises(RvmkitError, match="also holds 'notes.txt'"):
        sink.commit()
    sink.abort()
    assert (target / "notes.txt").read_text() == "written during the run"
    assert _leftovers(tmp_path) == []


def test_names_with_a_colon_are_files_not_urls(tmp_path: Path, clip, clip_with_audio: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """'c:d.mp4' typed relative is a file here, not a URL of protocol 'c' (nor is its '.c:d...' temp)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a:b.mp4").write_bytes(clip_with_audio.read_bytes())
    info = dataclasses.replace(clip[0], path=Path("a:b.mp4"))
    for name in ("c:d.mp4", "e:f.webm"):
        written = _write(Path(name), (info, clip[1]), audio_from=Path("a:b.mp4"))
        with av.open(str(tmp_path / written)) as container:
            assert container.streams.audio and sum(1 for _ in container.decode(video=0)) == COUNT
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("name", ["n" * 251 + ".mp4", "ü" * 125 + ".webm", "f" * 255])
def test_names_at_the_length_limit_get_their_temporary_sibling(tmp_path: Path, clip, name: str) -> None:
    """A 255-byte name is valid; its hidden temporary name is cut to fit, never refused or a crash."""
    written = _write(tmp_path / name, clip)
    assert written.name == name and _leftovers(tmp_path) == []
    if written.is_dir():
        assert len(list(written.iterdir())) == COUNT
    else:
        with av.open(str(written)) as container:
            assert sum(1 for _ in container.decode(video=0)) == COUNT


@pytest.mark.parametrize("language", ["fre", "deu", "zho", "eng"])
def test_mov_keeps_languages_quicktime_has_no_number_for(tmp_path: Path, language: str) -> None:
    """FFmpeg's mov muxer drops tags outside the Macintosh language list ('fre', 'deu', 'zho'); rvmkit
    writes them as packed ISO 639-2 codes, as mp4 does. 'eng' keeps its Macintosh number."""
    video = (Segment(64, 48, "yuv420p", 3),)
    source = write_video(tmp_path / "talk.mkv", Video(".mkv", "matroska", "libx264", video,
                                                      audio=(Audio("aac", 1, language),)))
    with open_source(source) as reader:
        sink = open_sink(tmp_path / "out.mov", reader.info, alpha=False, audio_from=source)
        for frame in reader:
            sink.write(frame.rgb, frame)
    assert audio_languages(sink.commit()) == [language]


def _x264_settings(path: Path) -> str:
    """The settings x264 writes into its stream (its SEI message), e.g. 'cabac=1 ... aq=2:1.00 ...'."""
    data = path.read_bytes()
    start = data.index(b"x264 - core")
    return data[start:data.index(b"\0", start)].decode("ascii", "replace")


def test_h264_uses_auto_variance_aq_and_a_matte_at_a_bitrate_ultrafast(tmp_path: Path, clip) -> None:
    """Issues 15 and 22's encoder settings (benchmarks/encoder.py, quality.py): compositions get aq-mode 2,
    at a bitrate mbtree over a 40-frame lookahead (what holds on any footage) with superfast (subme 1) where
    each pixel gets 0.1 bit or more (640x480 at 2 Mbps: 0.22) and fast (subme 6) below (at 0.5 Mbps:
    0.054), and veryfast at the default quality (subme 2); a grey matte at a bitrate is encoded with
    ultrafast (no CABAC), and at a CRF not."""
    info, frames = clip
    composition = _x264_settings(_write(tmp_path / "c.mp4", clip, mbps=2))
    assert "aq=2:" in composition and "cabac=1" in composition and "subme=1" in composition
    assert " mbtree=1 " in composition and " rc_lookahead=40 " in composition
    low = _x264_settings(_write(tmp_path / "low.mp4", clip, mbps=0.5))
    assert "aq=2:" in low and "subme=6" in low and " mbtree=1 " in low and " rc_lookahead=40 " in low
    quality = _x264_settings(_write(tmp_path / "q.mp4", clip))
    assert "aq=2:" in quality and "subme=2" in quality

    def matte(path: Path, **options: object) -> str:
        sink = open_sink(path, info, alpha=False, matte=True, **options)
        for frame in frames:
            sink.write(frame.rgb[:, :, 0], frame)
        return _x264_settings(sink.commit())

    assert "cabac=0" in matte(tmp_path / "a.mp4", mbps=2)
    assert "cabac=1" in matte(tmp_path / "a_crf.mp4", crf=20)
