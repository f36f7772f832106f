"""Encode frames to a video file or a PNG folder, keeping the input's frames, size, rate and timestamps.

Containers and codecs, chosen from the output path:
- .png / .webp / .tif / .tiff / .jpg / .jpeg: one image, for a one-frame input (a photo): PNG, lossless
  WebP and deflate TIFF keep the exact pixels and transparency; JPEG (quality 2, 4:4:4) has no alpha;
- folder (no suffix, an existing directory, or output_type="png_sequence"): PNG files 000000.png, ...
  (RGB, RGBA when transparent, or grey for HxW frames);
- .mp4 / .mkv: H.264 (libx264), yuv420p, or yuv444p when the width or height is odd, so nothing is
  cropped or padded; cannot carry transparency;
- .webm: VP9 (libvpx-vp9), yuva420p with transparency;
- .mov: ProRes (prores_ks), 422 HQ, or 4444 with alpha (yuva444p10le) with transparency.

Quality: `mbps` sets the bitrate (for ProRes, the bits per macroblock that give it); else `crf` (x264,
VP9; ProRes has no CRF and ignores it); else x264 crf 18 preset veryfast (aq-mode 2), VP9 crf 30 b:v 0,
ProRes HQ.

Colour: frames are converted to YUV with the input's matrix when it is tagged BT.601 or BT.709 (the
reader decoded with that matrix), else BT.601, and tagged with it, limited range; see
`output_colorspace`.

Every frame gets its source frame's own pts and time base, so variable frame rates survive. Every audio
stream of the input is copied packet by packet (no re-encode) when the container accepts its codec;
otherwise (e.g. AAC into .webm) it is transcoded to Opus for .webm and AAC for the others, keeping its
timestamps. Language and title tags come along.

Outputs are written under a hidden temporary name in the target folder (`rvmkit.fileio.make_temp`).
`finish()` completes one and returns it staged, for the caller to publish with the run's other outputs
(`rvmkit.fileio.publish_all`: all or none, never replacing without overwrite); `commit()` does both
for a single output; `abort()` removes every trace, so the final name only ever holds a complete output.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np

from rvmkit.errors import RvmkitError, describe_path
from rvmkit.fileio import (
    Staged,
    lock_temp,
    make_temp,
    publish_all,
    release_lock,
    remove_stale_temps,
    require_creatable,
    require_replaceable,
)
from rvmkit.video.encoders import IMAGE_OUTPUTS, MUXERS, matte_options, video_settings
from rvmkit.video.reader import Frame, VideoInfo, ffmpeg_path

VIDEO_SUFFIXES = {".mp4": ("libx264", "mp4"), ".mkv": ("libx264", "matroska"),
                  ".webm": ("libvpx-vp9", "webm"), ".mov": ("prores_ks", "mov")}
ALPHA_SUFFIXES = (".webm", ".mov")
OUTPUT_TYPES = ("video", "png_sequence")
IMAGE_CODECS = {"png"} | {codec for codec, _, _ in IMAGE_OUTPUTS.values()}
BT709, BT470BG, SMPTE170M = 1, 5, 6  # AVColorSpace values
# colorspace -> (primaries, transfer) tags that go with it
_COLOR_TAGS = {BT709: (1, 1), BT470BG: (5, 6), SMPTE170M: (6, 6)}
_FORMATS = {3: "rgb24", 4: "rgba", 1: "gray"}
_FRAME_NAME = re.compile(r"\d+\.png")  # frames of a PNG-sequence output (ours: 000000.png; RVM's: 0000.png)


def resolve_output(path: str | os.PathLike, output_type: str | None, images: bool = False) -> tuple[str, str]:
    """Return (kind, codec): kind is "video", "png_sequence" or, where the caller takes `images` (or
    asks for output_type "image"), "image" (one picture: .png, .webp, .tif, .jpg), from `output_type`
    or the path (a trailing slash, as in 'frames.v2/', names a folder whatever its suffix)."""
    folder = os.fspath(path).endswith(("/", os.sep))
    path = Path(path)
    if output_type == "image" and not folder and path.suffix.lower() in IMAGE_OUTPUTS:  # as planned
        output_type, images = None, True
    if output_type not in (None, *OUTPUT_TYPES):
        raise RvmkitError(f"output type {output_type!r}: expected one of {', '.join(OUTPUT_TYPES)}")
    folder = folder or path.is_dir() or not path.suffix
    if output_type == "png_sequence" or (output_type is None and folder):
        return "png_sequence", "png"
    suffix = path.suffix.lower()
    if images and output_type is None and suffix in IMAGE_OUTPUTS:
        return "image", IMAGE_OUTPUTS[suffix][0]
    if suffix not in VIDEO_SUFFIXES:
        known = ", ".join(VIDEO_SUFFIXES)
        pictures = f", an image ({', '.join(IMAGE_OUTPUTS)})" if images and output_type is None else ""
        raise RvmkitError(f"{describe_path(path)}: unknown video type {suffix or '(no suffix)'!r}; "
                          f"use {known}{pictures} or a folder for PNG frames")
    return "video", VIDEO_SUFFIXES[suffix][0]


class FrameSink:
    """Where one output's frames go, the one protocol of every sink (files, PNG folders, images, batch
    segments, live streams, recordings and the virtual camera): `write` each frame, then `finish` (stage
    it for `publish_all`) or `commit` (finish and publish it alone), or `abort` (remove every trace)."""

    path: Path

    def write(self, frame: np.ndarray, source: Frame) -> None:
        raise NotImplementedError

    def finish(self) -> Staged | None:
        """Complete the output under its temporary name and return it for `publish_all` (so a run's
        outputs are published together); None when the sink published it itself."""
        self.commit()
        return None

    def commit(self) -> Path | None:
        """Finish and publish; the published path, or None for an output that is not a file (a stream)."""
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> FrameSink:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        """Abort on an exception; a caller that did not commit gets nothing either."""
        self.abort()


def open_sink(path: str | os.PathLike, info: VideoInfo, *, alpha: bool, output_type: str | None = None,
              mbps: float | None = None, crf: int | None = None, overwrite: bool = False,
              audio_from: Path | None = None, codec_options: dict[str, str] | None = None,
              matte: bool = False) -> FrameSink:
    """Open an output for frames shaped like `info`; `alpha=True` means RGBA frames with transparency,
    `matte=True` grey alpha mattes (cheaper H.264 settings at a fixed bitrate)."""
    path = Path(path)
    kind, codec = resolve_output(path, output_type)
    suffix = path.suffix.lower()
    check_transparency(path, kind, alpha)
    if mbps is not None and not (mbps > 0 and math.isfinite(mbps)):
        raise RvmkitError(f"output video mbps {mbps}: must be a positive number")
    check_quality([codec], mbps, crf)
    check_output_path(path, info, overwrite, kind)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        reason = error.strerror
        raise RvmkitError(f"{describe_path(path.parent)}: cannot create output folder ({reason})") from None
    remove_stale_temps(path)
    if kind == "png_sequence":
        return PngSequenceSink(path, overwrite=overwrite)
    if kind == "image":
        return ImageSink(path, info, overwrite=overwrite)
    fmt = VIDEO_SUFFIXES[suffix][1]
    if matte:
        codec_options = matte_options(codec, mbps, codec_options)
    return VideoSink(path, info, codec=codec, fmt=fmt, alpha=alpha, mbps=mbps, crf=crf,
                     audio_from=audio_from, codec_options=codec_options or {}, overwrite=overwrite)


def check_transparency(path: Path, kind: str, alpha: bool) -> None:
    """A transparent (RGBA) output needs a format with an alpha channel: one line naming the others."""
    suffix = path.suffix.lower()
    if not alpha or kind == "png_sequence" or suffix in ALPHA_SUFFIXES or \
            (kind == "image" and 4 in IMAGE_OUTPUTS[suffix][1]):
        return
    other = ".png, .webp or .tiff" if kind == "image" else \
        ".webm (VP9), .mov (ProRes 4444) or a folder of PNGs"
    raise RvmkitError(f"{describe_path(path)}: {suffix[1:] or 'this format'} cannot carry transparency; "
                      f"use {other}")


def check_quality(codecs: list[str], mbps: float | None, crf: int | None) -> None:
    """--output-video-mbps / --crf against the codecs of the outputs ("png" for a PNG sequence), so a
    setting no output can use is refused before any work rather than ignored or failed at the end."""
    video = [codec for codec in codecs if codec not in IMAGE_CODECS]
    if (mbps is not None or crf is not None) and not video:
        raise RvmkitError("output_video_mbps / crf (--output-video-mbps, --crf) set the quality of video "
                          "outputs, and every output here is a PNG sequence or an image")
    if crf is not None and "libx264" in video and crf > 51:
        raise RvmkitError(f"crf {crf}: beyond H.264's 0 to 51 (.mp4, .mkv outputs)")


def output_colorspace(info: VideoInfo) -> int:
    """The input's matrix when it is BT.601 or BT.709, so colours and tags round-trip; otherwise (RGB
    sources, untagged or other matrices) BT.601, tagged. Not BT.709 for untagged HD: colours are right
    either way (the tag says which), and FFmpeg's own 4:2:0 -> RGB conversion (swscale, what PyAV and
    ffmpeg-based tools decode with) loses about 3 dB PSNR more on BT.709 than on BT.601 (measured on a
    720p composition: 44.4 vs 47.2 dB; 50.3 vs 50.5 dB with an exact decoder)."""
    return info.colorspace if info.colorspace in _COLOR_TAGS else SMPTE170M


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output_path(path: Path, info: VideoInfo, overwrite: bool, kind: str) -> None:
    """Refuse, before anything is written, an output that would destroy data or cannot be written.

    `kind` is "video", "png_sequence" (a folder) or "image". With `overwrite`, an existing folder is
    replaced only when it holds nothing but numbered PNG frames (an earlier PNG-sequence output).
    """
    resolved, source = path.resolve(), info.path.resolve()
    if resolved == source or _same_file(path, info.path):
        raise RvmkitError(f"{describe_path(path)}: output is the input; refusing to overwrite it")
    if resolved in source.parents:
        raise RvmkitError(f"{describe_path(path)}: holds the input {describe_path(info.path)}; "
                          "choose another output")
    here = Path.cwd().resolve()
    if resolved == here or resolved in here.parents:
        raise RvmkitError(f"{describe_path(path)}: is the current folder or one of its parents; "
                          "choose a new folder")
    if info.is_image_sequence and info.path.is_dir() and source in resolved.parents:
        raise RvmkitError(f"{describe_path(path)}: output is inside the input folder; choose another path")
    empty_folder = kind == "png_sequence" and path.is_dir() and not any(path.iterdir())
    if (path.exists() or path.is_symlink()) and not empty_folder:  # an empty folder is made for frames
        if not overwrite:
            raise RvmkitError(f"{describe_path(path)}: already exists; use --overwrite to replace it")
        _check_replaceable(path, kind)
        require_replaceable(path)
    require_creatable(path)


def _check_replaceable(path: Path, kind: str) -> None:
    if not path.is_dir() or path.is_symlink():
        if kind == "png_sequence":
            raise RvmkitError(f"{describe_path(path)}: is a file; a PNG-sequence output is a folder")
        return
    if kind != "png_sequence":
        raise RvmkitError(f"{describe_path(path)}: is a folder; refusing to replace it with a file")
    others = sorted(entry.name for entry in path.iterdir()
                    if not (_FRAME_NAME.fullmatch(entry.name) and entry.is_file()))
    if others:
        more = f" and {len(others) - 1} more" if len(others) > 1 else ""
        raise RvmkitError(f"{describe_path(path)}: --overwrite replaces only a folder of numbered PNG "
                          f"frames, and this one also holds {others[0]!r}{more}; choose a new folder")


def recheck_frame_folder(path: Path) -> None:
    """Just before --overwrite replaces a frame folder: files put there during the run are never deleted."""
    if path.is_dir() and not path.is_symlink():
        _check_replaceable(path, "png_sequence")


def _one_line(path: Path, what: str, error: BaseException) -> RvmkitError:
    reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return RvmkitError(f"{describe_path(path)}: {what} ({reason})")


def _check_frame(frame: np.ndarray, width: int, height: int, path: Path) -> np.ndarray:
    if frame.dtype != np.uint8 or frame.shape[:2] != (height, width) or frame.ndim not in (2, 3) \
            or (frame.ndim == 3 and frame.shape[2] not in _FORMATS):
        raise ValueError(f"{path}: expected a {height}x{width}[x1|3|4] uint8 frame, "
                         f"got {frame.dtype} {frame.shape}")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    return np.ascontiguousarray(frame)


def _pixel_format(frame: np.ndarray) -> str:
    return "gray" if frame.ndim == 2 else _FORMATS[frame.shape[2]]


def encode_png(frame: np.ndarray) -> bytes:
    """PNG bytes of an HxW (grey), HxWx3 (RGB) or HxWx4 (RGBA) uint8 image, with FFmpeg's encoder."""
    return encode_image(frame, ".png")


def encode_image(frame: np.ndarray, suffix: str) -> bytes:
    """The bytes of an image file (`IMAGE_OUTPUTS`' suffixes) holding an HxW, HxWx3 or HxWx4 uint8 frame."""
    codec, formats, options = IMAGE_OUTPUTS[suffix.lower()]
    source = _pixel_format(frame)
    fmt = formats[1 if frame.ndim == 2 else frame.shape[2]]
    context = av.CodecContext.create(codec, "w")
    context.width, context.height, context.pix_fmt = frame.shape[1], frame.shape[0], fmt
    context.options = dict(options)
    picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format=source)
    if fmt != source:
        picture = picture.reformat(format=fmt)
    return b"".join(bytes(packet) for packet in [*context.encode(picture), *context.encode(None)])


class _TempSink(FrameSink):
    """An output written under a locked temporary name (`_temp`): `finish` stages it, `commit` publishes
    it alone, `abort` removes it."""

    path: Path
    overwrite: bool
    _temp: Path
    _lock: int | None

    def _staged(self, lock: int | None) -> Staged:
        raise NotImplementedError

    def _remove_temp(self) -> None:
        raise NotImplementedError

    def finish(self) -> Staged:
        lock, self._lock = self._lock, None
        return self._staged(lock)

    def commit(self) -> Path:
        publish_all([self.finish()], overwrite=self.overwrite)
        return self.path

    def abort(self) -> None:
        release_lock(self._lock)
        self._lock = None
        self._remove_temp()


class PngSequenceSink(_TempSink):
    """PNG frames in a hidden temporary folder, renamed to `path` when published."""

    def __init__(self, path: Path, overwrite: bool = False) -> None:
        self.path, self.overwrite = path, overwrite
        try:
            self._temp = make_temp(path, folder=True)
        except OSError as error:
            raise _one_line(path, "cannot create the output", error) from None
        self._lock = lock_temp(self._temp)
        self._count = 0

    def write(self, frame: np.ndarray, source: Frame) -> None:
        if frame.ndim < 2:
            raise ValueError(f"{self.path}: expected an image, got shape {frame.shape}")
        frame = _check_frame(frame, frame.shape[1], frame.shape[0], self.path)
        try:
            (self._temp / f"{source.index:06d}.png").write_bytes(encode_png(frame))
        except OSError as error:  # disk full, quota, file size limit
            raise _one_line(self.path, f"cannot write frame {source.index}", error) from None
        self._count += 1

    def _staged(self, lock: int | None) -> Staged:
        return Staged(self._temp, self.path, into_empty_folder=True, recheck=recheck_frame_folder, lock=lock)

    def _remove_temp(self) -> None:
        shutil.rmtree(self._temp, ignore_errors=True)


class ImageSink(_TempSink):
    """One picture (a one-frame input) in a temporary file, renamed to `path` when published."""

    def __init__(self, path: Path, info: VideoInfo, overwrite: bool = False) -> None:
        self.path, self.info, self.overwrite = path, info, overwrite
        self._written = False
        try:
            self._temp = make_temp(path)
        except OSError as error:
            raise _one_line(path, "cannot create the output", error) from None
        self._lock = lock_temp(self._temp)

    def write(self, frame: np.ndarray, source: Frame) -> None:
        if self._written:  # the plan checked the frame count; a second frame means the input changed
            raise RvmkitError(f"{describe_path(self.path)}: an image holds one frame, and "
                              f"{describe_path(self.info.path)} has more")
        frame = _check_frame(frame, self.info.width, self.info.height, self.path)
        try:
            self._temp.write_bytes(encode_image(frame, self.path.suffix))
        except OSError as error:
            raise _one_line(self.path, "cannot write the image", error) from None
        self._written = True

    def _staged(self, lock: int | None) -> Staged:
        return Staged(self._temp, self.path, lock=lock)

    def _remove_temp(self) -> None:
        with contextlib.suppress(OSError):
            self._temp.unlink(missing_ok=True)


class VideoSink(FrameSink):
    """One video stream (plus the input's audio) in a temporary file, renamed to `path` at commit."""

    def __init__(self, path: Path, info: VideoInfo, *, codec: str, fmt: str, alpha: bool, mbps: float | None,
                 crf: int | None, audio_from: Path | None, codec_options: dict[str, str],
                 overwrite: bool = False) -> None:
        self.path, self.info, self.overwrite = path, info, overwrite
        self.fps = Fraction(info.fps) if info.fps else Fraction(30)
        self.time_base = Fraction(info.time_base) if info.time_base else 1 / self.fps
        self._frame_duration = max(1, round(1 / self.fps / self.time_base))
        self._audio: _AudioCopy | None = None
        self._last_pts: int | None = None
        self._offset = 0  # added to every later pts once the source's clock went back (see `_pts`)
        self._committed = False
        self._lock: int | None = None
        try:
            self._temp = make_temp(path)
        except OSError as error:
            raise _one_line(path, "cannot create output", error) from None
        self._lock = lock_temp(self._temp)
        try:
            options = MUXERS.get(fmt, {})
            self._container = av.open(ffmpeg_path(self._temp), mode="w", format=fmt, options=options)
        except (av.FFmpegError, OSError) as error:
            self.abort()
            raise RvmkitError(f"{describe_path(path)}: cannot create output ({error})") from None
        try:
            self._stream = self._add_video(codec, alpha, mbps, crf, codec_options)
            if audio_from is not None:
                self._audio = _AudioCopy.open(Path(audio_from), self._container)
        except BaseException:
            self.abort()
            raise

    def _add_video(self, codec: str, alpha: bool, mbps: float | None, crf: int | None,
                   codec_options: dict[str, str]) -> av.video.VideoStream:
        width, height = self.info.width, self.info.height
        stream = self._container.add_stream(codec, rate=self.fps)
        context = stream.codec_context
        context.width, context.height = width, height
        context.time_base = self.time_base
        stream.time_base = self.time_base
        settings = video_settings(codec, width, height, self.fps, alpha=alpha, mbps=mbps, crf=crf,
                                  extra=codec_options)
        context.pix_fmt = settings.pix_fmt
        if settings.bit_rate:
            context.bit_rate = settings.bit_rate
        self._colorspace = output_colorspace(self.info)
        context.color_range, context.colorspace = 1, self._colorspace  # limited range: swscale's default
        context.color_primaries, context.color_trc = _COLOR_TAGS[self._colorspace]
        context.options = settings.options
        stream.thread_type = "AUTO"
        return stream

    def _pts(self, source: Frame) -> int:
        """The source frame's pts in our time base, moved by the running `_offset`. A clock that goes back
        or repeats (streams joined end to end, a broken muxer) keeps time running as FFmpeg does: that
        frame comes one frame duration after the last, and the frames after it keep their own spacing
        from there. A forward jump is kept (it is a gap in the source's time)."""
        if source.pts is None or source.time_base is None:
            pts = round(source.index / self.fps / self.time_base)
        elif Fraction(source.time_base) == self.time_base:
            pts = int(source.pts)
        else:
            pts = round(source.pts * Fraction(source.time_base) / self.time_base)
        pts += self._offset
        if self._last_pts is not None and pts <= self._last_pts:
            self._offset += self._last_pts + self._frame_duration - pts
            pts = self._last_pts + self._frame_duration
        self._last_pts = pts
        return pts

    def write(self, frame: np.ndarray, source: Frame) -> None:
        frame = _check_frame(frame, self.info.width, self.info.height, self.path)
        picture = av.VideoFrame.from_ndarray(frame, format=_pixel_format(frame))
        picture.pts, picture.time_base = self._pts(source), self.time_base
        picture.colorspace = self._colorspace  # the RGB->YUV matrix the encoder's conversion uses
        picture.duration = self._frame_duration  # the last frame's duration is not implied by a next pts
        try:
            packets = self._stream.encode(picture)
            if self._audio is not None:
                self._audio.copy_until(float(picture.pts * self.time_base))
            self._container.mux(packets)
        except (av.FFmpegError, OSError) as error:  # OSError: disk full, file size limit
            raise _one_line(self.path, f"encoding frame {source.index} failed", error) from None

    def finish(self) -> Staged:
        try:
            self._container.mux(self._stream.encode(None))
            if self._audio is not None:
                self._audio.copy_until(None)
                self._audio.close()
            streams, mov = self._container.streams, self._container.format.name == "mov"
            languages = {stream.index + 1: stream.metadata.get("language") for stream in streams}
            self._container.close()
            if mov:
                _keep_iso_languages(self._temp, languages)
        except (av.FFmpegError, OSError) as error:
            self.abort()
            raise _one_line(self.path, "finishing the video failed", error) from None
        lock, self._lock = self._lock, None
        return Staged(self._temp, self.path, lock=lock)

    def commit(self) -> Path:
        publish_all([self.finish()], overwrite=self.overwrite)
        self._committed = True
        return self.path

    def abort(self) -> None:
        release_lock(self._lock)
        self._lock = None
        if self._committed:
            return
        for closable in (self._audio, getattr(self, "_container", None)):
            try:
                if closable is not None:
                    closable.close()
            except Exception:  # noqa: BLE001 - we are cleaning up after a failure already
                pass
        with contextlib.suppress(OSError):  # never hide the error that made us abort
            self._temp.unlink(missing_ok=True)


def _keep_iso_languages(path: Path, languages: dict[int, str | None]) -> None:
    """Write, in a QuickTime file, the language tags FFmpeg's mov muxer dropped.

    A track's `mdhd` language is a Macintosh language number or a packed ISO 639-2 code (three letters,
    five bits each); FFmpeg's mov muxer writes only the former and marks every language without one
    (e.g. 'fre', 'deu', 'zho') 'unspecified' (0x7FFF). Where it did, the packed code goes in, as mp4 has
    it and as FFmpeg and QuickTime read it. `languages` maps track ID (stream index + 1) to tag.
    """
    with open(path, "r+b") as handle:
        for offset, size in _boxes(handle, 0, os.fstat(handle.fileno()).st_size, b"moov"):
            for trak, trak_size in _boxes(handle, offset, offset + size, b"trak"):
                _pack_language(handle, trak, trak + trak_size, languages)


def _boxes(handle: BinaryIO, start: int, end: int, kind: bytes) -> list[tuple[int, int]]:
    """(content offset, content size) of each `kind` box in [start, end) of an ISO-BMFF file."""
    found, position = [], start
    while position + 8 <= end:
        handle.seek(position)
        size, name = int.from_bytes(handle.read(4), "big"), handle.read(4)
        header = 8
        if size == 1:
            size, header = int.from_bytes(handle.read(8), "big"), 16
        elif size == 0:
            size = end - position
        if size < header:
            break
        if name == kind:
            found.append((position + header, size - header))
        position += size
    return found


def _pack_language(handle: BinaryIO, start: int, end: int, languages: dict[int, str | None]) -> None:
    """In one `trak` box [start, end): its track ID from `tkhd`, its language in `mdia/mdhd`."""
    tkhd, mdia = _boxes(handle, start, end, b"tkhd"), _boxes(handle, start, end, b"mdia")
    if not tkhd or not mdia:
        return
    handle.seek(tkhd[0][0])
    version = handle.read(4)[0]
    handle.seek(tkhd[0][0] + (20 if version == 1 else 12))  # after version, flags, creation, modification
    language = languages.get(int.from_bytes(handle.read(4), "big")) or ""
    mdia_start, mdia_size = mdia[0]
    for mdhd, _ in _boxes(handle, mdia_start, mdia_start + mdia_size, b"mdhd"):
        handle.seek(mdhd)
        field = mdhd + (32 if handle.read(1)[0] == 1 else 20)  # after version, flags, times, timescale
        handle.seek(field)
        if re.fullmatch("[a-z]{3}", language) and handle.read(2) == b"\x7f\xff":
            packed = sum((ord(letter) - 0x60) << shift for letter, shift in zip(language, (10, 5, 0)))
            handle.seek(field)
            handle.write(packed.to_bytes(2, "big"))


class _AudioCopy:
    """Every audio stream of the input, interleaved into the output as video frames are written."""

    def __init__(self, source: av.container.InputContainer, output: av.container.OutputContainer,
                 tracks: dict[int, tuple[av.audio.AudioStream, bool]]) -> None:
        self.source, self.output = source, output
        self.tracks = tracks  # input stream index -> (output stream, transcode?)
        self._packets = source.demux(*source.streams.audio)
        self._pending: av.Packet | None = None
        self._done = False
        self._clock: dict[int, tuple[int, int]] = {}  # stream -> (offset added, end of its last packet)

    @classmethod
    def open(cls, path: Path, output: av.container.OutputContainer) -> _AudioCopy | None:
        source = av.open(ffmpeg_path(path))
        if not source.streams.audio:
            source.close()
            return None
        try:
            tracks = {stream.index: _add_audio_track(stream, output) for stream in source.streams.audio}
        except BaseException:
            source.close()
            raise
        return cls(source, output, tracks)

    def copy_until(self, seconds: float | None) -> None:
        """Mux audio packets that start at or before `seconds` (all remaining ones when None)."""
        output = self.output
        while not self._done:
            packet = self._pending or self._next()
            self._pending = None
            if packet is None:
                self._done = True
                break
            if packet.dts is None and packet.pts is None:
                continue
            start = packet.pts if packet.pts is not None else packet.dts
            if seconds is not None and float(start * packet.time_base) > seconds:
                self._pending = packet
                break
            out_stream, transcode = self.tracks[packet.stream.index]
            if transcode:
                for frame in packet.decode():  # keeps its pts: the encoder's resampler carries it over
                    output.mux(out_stream.encode(frame))
            else:
                packet.stream = out_stream
                output.mux(packet)
        if seconds is None:
            for out_stream, transcode in self.tracks.values():
                if transcode:
                    output.mux(out_stream.encode(None))

    def _next(self) -> av.Packet | None:
        """The next audio packet, its clock kept running as the video's is (see `VideoSink._pts`): a
        packet timed at or before the end of its stream's last one (streams joined end to end) starts
        where that one ended, and the packets after it keep their spacing from there."""
        packet = next(self._packets, None)
        if packet is None or (packet.dts is None and packet.pts is None):
            return packet
        offset, end = self._clock.get(packet.stream.index, (0, None))
        time = packet.dts if packet.dts is not None else packet.pts
        if end is not None and time + offset < end and (packet.duration or 0) > 0:
            offset = end - time
        if offset:
            packet.pts = None if packet.pts is None else packet.pts + offset
            packet.dts = None if packet.dts is None else packet.dts + offset
        self._clock[packet.stream.index] = (offset, time + offset + (packet.duration or 0))
        return packet

    def close(self) -> None:
        self.source.close()


# Audio codecs each muxer really takes when copied: PyAV's `supported_codecs` also lists some the muxer
# then refuses when writing the header (Opus and FLAC in QuickTime .mov, stereo PCM in .mp4).
_COPYABLE_AUDIO = {
    "mp4": {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"},
    "mov": {"aac", "mp3", "ac3", "eac3", "alac"},
    "webm": {"opus", "vorbis"},
}


def _can_copy_audio(codec: str, output: av.container.OutputContainer) -> bool:
    fmt = output.format.name
    if fmt == "mov" and codec.startswith("pcm_"):
        return codec in output.supported_codecs
    allowed = _COPYABLE_AUDIO.get(fmt)
    return codec in (allowed if allowed is not None else output.supported_codecs)


def _add_audio_track(stream: av.audio.AudioStream,
                     output: av.container.OutputContainer) -> tuple[av.audio.AudioStream, bool]:
    """An output stream for one input audio stream: copied when the container takes its codec, else
    transcoded (Opus in WebM, AAC elsewhere). Language tags come along."""
    name = stream.codec_context.codec.canonical_name  # "mp3", where the decoder is "mp3float"
    webm = output.format.name == "webm"
    if _can_copy_audio(name, output):
        out_stream, transcode = output.add_stream_from_template(stream), False
    else:
        target = "libopus" if webm else "aac"
        out_stream = output.add_stream(target, rate=48000 if target == "libopus" else stream.rate)
        out_stream.layout = "mono" if stream.layout.nb_channels == 1 else "stereo"  # PCM may say "2 channels"
        transcode = True
    for key in ("language", "title"):
        if key in stream.metadata:
            out_stream.metadata[key] = stream.metadata[key]
    return out_stream, transcode
