"""Tiny media files for the property/fuzz suites (test_fuzz_*.py): real frames of the clips, re-encoded
in many forms with PyAV, and what FFmpeg itself decodes from a file (the reference every promise is
checked against).

Also the Hypothesis settings shared by those suites: a fixed seed and few examples in CI; set
RVMKIT_FUZZ_EXAMPLES=500 (say) for a longer, still reproducible, run.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from hypothesis import HealthCheck, settings

from conftest import read_frames

FUZZ_EXAMPLES_ENV = "RVMKIT_FUZZ_EXAMPLES"


def fuzz_settings(examples: int) -> settings:
    """`examples` per property in CI (deterministic: derandomize), or RVMKIT_FUZZ_EXAMPLES each."""
    wanted = os.environ.get(FUZZ_EXAMPLES_ENV)
    return settings(max_examples=int(wanted) if wanted else examples, derandomize=True, deadline=None,
                    database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@functools.lru_cache(maxsize=1)
def _source_frames() -> tuple[np.ndarray, ...]:
    return tuple(read_frames("book", 8))


def real_frames(count: int, width: int, height: int) -> list[np.ndarray]:
    """`count` (<= 8) consecutive real frames of book.mkv scaled to width x height, HxWx3 uint8 RGB."""
    frames = []
    for rgb in _source_frames()[:count]:
        picture = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(width=width, height=height)
        frames.append(picture.to_ndarray(format="rgb24"))
    return frames


@dataclass(frozen=True)
class Segment:
    """A run of frames of one size and pixel format (a new segment = a mid-stream format change)."""

    width: int
    height: int
    pix_fmt: str
    count: int


@dataclass(frozen=True)
class Audio:
    """One audio track: codec (encoder name), channels, optional language tag."""

    codec: str
    channels: int = 1
    language: str | None = None


@dataclass(frozen=True)
class Video:
    """How to write a generated input: muxer `fmt` (None: from the suffix), encoder, segments."""

    suffix: str
    fmt: str | None
    codec: str
    segments: tuple[Segment, ...]
    fps: int = 25
    audio: tuple[Audio, ...] = ()  # one stream each
    options: tuple[tuple[str, str], ...] = ()
    trim: int = 0  # frames moved before time 0: an MP4/MOV edit list hides them (a cut, not re-encoded)
    cut: int = 0  # packets dropped from the start: the stream then starts before a keyframe (a cut)

    @property
    def frame_count(self) -> int:
        return sum(segment.count for segment in self.segments)


def _encoder(spec: Video, segment: Segment) -> av.CodecContext:
    """A fresh encoder per segment: one encoder cannot change size mid-stream, a new one can."""
    context = av.CodecContext.create(spec.codec, "w")
    context.width, context.height, context.pix_fmt = segment.width, segment.height, segment.pix_fmt
    context.time_base = Fraction(1, spec.fps)
    context.framerate = Fraction(spec.fps)
    context.options = dict(spec.options)
    context.max_b_frames = 0  # B-frames would start each segment's DTS before the last one's end
    return context


def write_video(path: Path, spec: Video) -> Path:
    """Encode `spec` (real frames) to `path`; segments after the first are encoded by fresh encoders
    and muxed into the same stream, as a stream spliced at a format change is."""
    first = spec.segments[0]
    with av.open(str(path), "w", format=spec.fmt) as container:
        stream = container.add_stream(spec.codec, rate=spec.fps)
        stream.width, stream.height, stream.pix_fmt = first.width, first.height, first.pix_fmt
        stream.options = dict(spec.options)
        sounds = [_add_audio(container, audio) for audio in spec.audio]
        if len(spec.segments) == 1:
            packets = _encode_segment(stream, stream.codec_context, first, spec, 0)
        else:
            packets, start = [], 0
            for segment in spec.segments:
                packets += _encode_segment(stream, _encoder(spec, segment), segment, spec, start)
                start += segment.count
        for packet in packets[spec.cut:]:
            packet.stream = stream
            if spec.trim:
                packet.pts, packet.dts = packet.pts - spec.trim, packet.dts - spec.trim  # 1/fps units
            container.mux(packet)
        for sound in sounds:
            _encode_tone(container, sound, spec.frame_count / spec.fps)
    return path


def _encode_segment(stream: av.video.VideoStream, encoder: av.CodecContext, segment: Segment, spec: Video,
                    start: int) -> list[av.Packet]:
    encode = stream.encode if encoder is stream.codec_context else encoder.encode
    packets = []
    for offset, rgb in enumerate(real_frames(segment.count, segment.width, segment.height)):
        picture = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=segment.pix_fmt)
        picture.pts, picture.time_base = start + offset, Fraction(1, spec.fps)
        packets += encode(picture)
    return packets + encode(None)


def _add_audio(container: av.container.OutputContainer, audio: Audio) -> av.audio.AudioStream:
    stream = container.add_stream(audio.codec, rate=48000)
    stream.layout = "mono" if audio.channels == 1 else "stereo"
    if audio.language is not None:
        stream.metadata["language"] = audio.language
    return stream


def _encode_tone(container: av.container.OutputContainer, stream: av.audio.AudioStream,
                 seconds: float, first: int = 0) -> None:
    """A 440 Hz tone as long as the video, from sample `first` (PyAV resamples it to the encoder's
    format and frame size)."""
    layout = stream.layout.name
    channels = stream.layout.nb_channels
    count = int(48000 * seconds)
    tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(count) / 48000)).astype(np.float32)
    for start in range(0, count, 1024):
        chunk = np.ascontiguousarray(np.repeat(tone[None, start:start + 1024], channels, axis=0))
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
        frame.sample_rate, frame.pts = 48000, first + start
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


@dataclass(frozen=True)
class Decoded:
    """What FFmpeg (PyAV's defaults, as ffmpeg/ffprobe decode) gets from a file's first video stream."""

    count: int
    first_size: tuple[int, int]  # of the first frame, upright (its display matrix applied, as ffmpeg does)
    times: tuple[float | None, ...]
    error: str | None  # FFmpeg's own decode or open error, None when every packet decoded


def ffmpeg_decode(path: Path) -> Decoded:
    count, size, times = 0, (0, 0), []
    try:
        with av.open(str(Path(path).absolute())) as container:
            for frame in container.decode(video=0):
                if count == 0:
                    size = (frame.height, frame.width) if round(frame.rotation / 90) % 2 else (
                        frame.width, frame.height)
                times.append(float(frame.time) if frame.time is not None else None)
                count += 1
    except (av.FFmpegError, IndexError, ValueError) as error:
        return Decoded(count, size, tuple(times), str(error))
    return Decoded(count, size, tuple(times), None)


def audio_languages(path: Path) -> list[str | None]:
    """The language tag of each audio stream, 'und' (undetermined) read as no tag."""
    with av.open(str(Path(path).absolute())) as container:
        tags = [stream.metadata.get("language") for stream in container.streams.audio]
    return [None if tag == "und" else tag for tag in tags]


def digest(path: Path) -> str:
    """sha256 of a file, or of every file under a folder (names included)."""
    path = Path(path)
    hasher = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        hasher.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        hasher.update(file.read_bytes())
    return hasher.hexdigest()


def tree(folder: Path) -> set[str]:
    """Every path under `folder`, relative, hidden ones included (temp files show up here)."""
    return {str(p.relative_to(folder)) for p in Path(folder).rglob("*")}


@contextlib.contextmanager
def working_directory(folder: Path) -> Iterator[None]:
    """chdir for the duration (contextlib.chdir is Python 3.11+)."""
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def run_rvmkit(args: list[str]) -> tuple[int, str]:
    """`rvmkit ARGS` in-process: (exit status, stderr). An exception that escapes `main` (what a user
    would see as a traceback) is not caught: the test fails on it."""
    import io

    from rvmkit.cli import main

    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            status = main(args)
        except SystemExit as exit_:  # argparse
            status = exit_.code if isinstance(exit_.code, int) else 2
    return status, err.getvalue()


def assert_refused(status: int, stderr: str) -> None:
    """The promise for input rvmkit cannot take: one line on stderr, exit 2, no traceback (argparse's
    usage errors name the command: 'rvmkit matte: error: ...')."""
    import re

    lines = stderr.strip().splitlines()
    usage = re.match(r"rvmkit( [a-z-]+)?: error: ", lines[0]) if lines else None
    assert status == 2 and len(lines) == 1 and usage, (status, stderr)
    assert "Traceback" not in stderr


def joined_stream(path: Path, starts: tuple[int, ...], frames: int = 3, size: tuple[int, int] = (64, 48),
                  fps: int = 25, audio: bool = False) -> Path:
    """An MPEG-TS of real frames made of parts joined end to end (`cat a.ts b.ts`), part i's clock
    starting at starts[i] frames: (0, 0) restarts at 0, (0, 1) steps back, (0, 200) jumps forward,
    (0, 2) repeats the last time; with `audio`, each part has its AAC tone on the same clock. Each part
    is muxed on its own, so the timestamps are the file's."""
    parts = []
    for number, start in enumerate(starts):
        part = path.with_name(f".{path.name}.part{number}")
        with av.open(str(part), "w", format="mpegts") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
            stream.codec_context.max_b_frames = 0
            sound = _add_audio(container, Audio("aac")) if audio else None
            for offset, rgb in enumerate(real_frames(frames, *size)):
                picture = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                picture.pts, picture.time_base = start + offset, Fraction(1, fps)
                container.mux(stream.encode(picture))
            container.mux(stream.encode(None))
            if sound is not None:
                _encode_tone(container, sound, frames / fps, first=round(start * 48000 / fps))
        parts.append(part.read_bytes())
        part.unlink()
    path.write_bytes(b"".join(parts))
    return path


def lying_header(path: Path, claim: str) -> Path:
    """A tiny real clip (8 frames, 25 fps) whose header lies about it while every frame is intact:
    'short.mkv' / 'long.mkv' (Matroska Duration 0.1 s / 30 s), 'few.avi' / 'many.avi' (AVI frame
    counts 2 / 100), 'short.mp4' / 'long.mp4' (MP4 movie duration a quarter / ten times the truth)."""
    import struct

    stem, suffix = claim.split(".")
    spec = {"mkv": ("matroska", "libx264"), "avi": ("avi", "mpeg4"), "mp4": ("mp4", "libx264")}[suffix]
    write_video(path, Video(f".{suffix}", spec[0], spec[1], (Segment(64, 48, "yuv420p", 8),)))
    data = bytearray(path.read_bytes())
    more = stem in ("long", "many")
    if suffix == "mkv":  # EBML Duration (ID 0x4489), in TimecodeScale units (ms by default)
        at = data.index(b"\x44\x89") + 3
        width = {0x84: 4, 0x88: 8}[data[at - 1]]
        data[at:at + width] = struct.pack(">f" if width == 4 else ">d", 30_000 if more else 100)
    elif suffix == "avi":  # avih dwTotalFrames and the video strh dwLength
        frames = struct.pack("<I", 100 if more else 2)
        avih, strh = data.index(b"avih") + 8, data.index(b"strh") + 8
        data[avih + 16:avih + 20], data[strh + 32:strh + 36] = frames, frames
    else:  # mvhd duration
        mvhd = data.index(b"mvhd")
        at = mvhd + 8 + (16 if data[mvhd + 4] else 8) + 4
        duration = struct.unpack(">I", data[at:at + 4])[0]
        data[at:at + 4] = struct.pack(">I", duration * 10 if more else duration // 4)
    path.write_bytes(bytes(data))
    return path
