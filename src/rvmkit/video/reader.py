"""Decode a video file, a folder of images or a single image into RGB frames, with PyAV.

Every source reports its exact frame count before the first frame is decoded (the video's packets are
counted, because containers such as Matroska do not store it), so outputs can promise the same count:
the frames FFmpeg shows, without those an edit list hides or a decoder skips at the start of a cut
stream (see `_Tally`).

Orientation: phone videos store the picture sideways with a display matrix that players apply. rvmkit
applies it too (as FFmpeg does by default), so the network sees an upright person and every output is
upright, sized as the input is displayed, with no display matrix left to apply.

Format changes mid-stream (a spliced stream whose size or pixel format changes): every frame comes out
at the first frame's size, a later size scaled to it as ffmpeg's own conversion does, so the outputs
keep one size and every frame.

Claims and data: frame counts, progress totals, preview picks and segment splits come from the data
(the packets FFmpeg decodes), never from what a header claims; a header that claims less than the data
holds changes nothing.

Damaged input policy: rvmkit stops rather than skipping. A file whose data ends before the duration or
frame count its header declares (a truncated download or copy) is refused when it is opened; a frame that
fails to decode, is flagged corrupt by the decoder, or goes missing mid-stream raises `RvmkitError` naming
the file and the frame index. A silently shorter or glitched output would break the exact-frame-count
promise; the pipeline removes its partial outputs when this happens.
"""

from __future__ import annotations

import itertools
import numbers
import os
import re
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from rvmkit.contract import MAX_SIDE, check_limit
from rvmkit.errors import RvmkitError, describe_path, require_readable_file

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
DEFAULT_IMAGE_FPS = Fraction(30)
# A stream that stops this far before the container's declared duration is treated as truncated.
_TRUNCATION_SLACK_S = 0.5


@dataclass(frozen=True)
class VideoInfo:
    """What a source looks like after `resize`; `frame_count` is exact when not None."""

    path: Path
    width: int
    height: int
    frame_count: int | None
    fps: Fraction | None
    time_base: Fraction | None
    has_audio: bool
    is_image_sequence: bool
    colorspace: int | None = None  # the input's AVColorSpace (1 = BT.709, 5/6 = BT.601); None if untagged
    interlaced: bool = False  # fields are matted as the frames that hold them; see `notes`


@dataclass
class Frame:
    """One decoded frame; `pts`/`time_base` are the input's own timestamps so writers can keep them."""

    index: int
    rgb: np.ndarray
    pts: int | None
    time_base: Fraction | None

    @property
    def segment(self) -> Hashable:
        """Frames of one segment are one stream: the recurrent state restarts where the segment (or the
        frame size) changes. A file is one segment; a live source starts another when it is reopened."""
        return None


class FrameSource:
    """Iterable of `Frame`s with `info`; use as a context manager or call `close()`."""

    info: VideoInfo

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the decoder; safe to call twice."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_source(path: str | os.PathLike, resize: tuple[int, int] | None = None, *,
                image_fps: Fraction | int = DEFAULT_IMAGE_FPS) -> FrameSource:
    """Open a video file, an image folder (natural sort order) or a single image.

    `resize=(W, H)` scales every frame; `image_fps` is the rate given to image inputs, which have none.
    A leading '~' is the home folder, as in output paths (Python callers have no shell to expand it).
    """
    path = Path(path).expanduser()
    if resize is not None:
        check_resize(resize)
    if path.is_dir():
        return ImageSource(path, _list_images(path), resize, Fraction(image_fps))
    require_readable_file(path, "input file")
    if path.suffix.lower() in IMAGE_SUFFIXES and _is_still_image(path):
        return ImageSource(path, [path], resize, Fraction(image_fps))
    return VideoFileSource(path, resize)


def _is_still_image(path: Path) -> bool:
    """True when FFmpeg reads the file with an image demuxer (image2, png_pipe, ...). An animated PNG
    (apng demuxer), or a video under an image name, is read whole, as the video FFmpeg sees."""
    with _open_container(path) as probe:
        name = probe.format.name
    return name == "image2" or name.endswith("_pipe")


def check_resize(resize: tuple[int, int]) -> None:
    """--input-resize W H: two whole numbers from 1 to MAX_SIDE (frames larger than 16K are refused
    rather than left to fail an allocation)."""
    shown = "x".join(str(v) for v in resize)
    try:
        if len(resize) != 2 or not all(isinstance(v, numbers.Real) for v in resize):
            raise RvmkitError("not a pair")
        for value in resize:
            check_limit("input_resize", value)
    except RvmkitError:
        raise RvmkitError(f"input resize {shown}: width and height must be whole numbers "
                          f"from 1 to {MAX_SIDE}") from None


def natural_key(name: str) -> list[object]:
    """Sort key so that frame2.png comes before frame10.png."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _list_images(folder: Path) -> list[Path]:
    if not os.access(folder, os.R_OK | os.X_OK):
        raise RvmkitError(f"{describe_path(folder)}: folder is not readable (permission denied)")
    images = [entry for entry in folder.iterdir() if entry.suffix.lower() in IMAGE_SUFFIXES
              and entry.is_file() and not entry.name.startswith(".")]
    if not images:
        raise RvmkitError(f"{describe_path(folder)}: folder has no images ({', '.join(IMAGE_SUFFIXES)})")
    return sorted(images, key=lambda entry: natural_key(entry.name))


def ffmpeg_path(path: str | os.PathLike) -> str:
    """A local file's name as FFmpeg must be given it: absolute, so that a name such as 'a:b.mp4' (or
    the hidden temp name '.a:b.mp4...') is not taken for a URL of protocol 'a'."""
    return os.path.abspath(path)


def _open_container(path: Path) -> av.container.InputContainer:
    try:
        return av.open(ffmpeg_path(path), mode="r")
    except av.FFmpegError as error:
        reason = _reason(error)
        raise RvmkitError(f"{describe_path(path)}: not a readable video or image ({reason})") from None


def _reason(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error).split(":")[0] or type(error).__name__


def to_rgb(frame: av.VideoFrame, resize: tuple[int, int] | None, turns: int = 0) -> np.ndarray:
    """Upright HxWx3 uint8 RGB: scaled (area averaging to shrink, bicubic to enlarge), then turned
    `turns` quarter turns counter-clockwise; `resize` is the upright size."""
    if resize is not None and turns % 2:
        resize = (resize[1], resize[0])
    if resize is not None and (frame.width, frame.height) != tuple(resize):
        shrink = resize[0] * resize[1] < frame.width * frame.height
        frame = frame.reformat(width=resize[0], height=resize[1], format="rgb24",
                               interpolation="AREA" if shrink else "BICUBIC")
    return np.ascontiguousarray(np.rot90(frame.to_ndarray(format="rgb24"), turns))


def _require_decoder(path: Path, stream: av.video.VideoStream) -> None:
    """FFmpeg opens a stream whose codec it cannot identify (a damaged header) or has no decoder for,
    and gives it no codec context."""
    if stream.codec_context is None:
        raise RvmkitError(f"{describe_path(path)}: no decoder for its video stream (damaged, or a codec "
                          "this FFmpeg cannot decode)")


def quarter_turns(frame: av.VideoFrame) -> int:
    """Counter-clockwise quarter turns that make the frame upright, from its display matrix."""
    return round(frame.rotation / 90) % 4


def _decoded(stream: av.video.VideoStream, packet: av.Packet | None) -> av.VideoFrame | None:
    """The first frame `packet` (None: the decoder's flush) yields; decode errors are left for the
    frame-by-frame pass, which names the frame."""
    try:
        frames = stream.decode(packet)
    except av.FFmpegError:
        return None
    return frames[0] if frames else None


def notes(info: VideoInfo) -> list[str]:
    """What a user should know about an input that is processed anyway."""
    if info.interlaced:
        return [f"{describe_path(info.path)} is interlaced: its frames are matted as stored, fields "
                "together; deinterlace it first (e.g. ffmpeg -vf bwdif) for cleaner edges"]
    return []


class VideoFileSource(FrameSource):
    """A video file decoded with FFmpeg (mp4, mkv, mov, webm, gif, ...)."""

    def __init__(self, path: Path, resize: tuple[int, int] | None) -> None:
        self.path = path
        self.resize = resize
        self._container: av.container.InputContainer | None = None
        with _open_container(path) as probe:
            if not probe.streams.video:
                raise RvmkitError(f"{describe_path(path)}: no video stream")
            stream = probe.streams.video[0]
            _require_decoder(path, stream)
            coded = (stream.codec_context.width, stream.codec_context.height)
            if not all(coded):
                raise RvmkitError(f"{describe_path(path)}: video stream has no frame size (not a video?)")
            count, first = _count_frames(path, probe, stream)
            self.turns = quarter_turns(first) if first is not None else 0
            if first is not None:
                coded = (first.width, first.height)
            width, height = resize or (coded[::-1] if self.turns % 2 else coded)
            colorspace = first.colorspace if first is not None else None
            fps = stream.average_rate or stream.guessed_rate or stream.base_rate
            self.info = VideoInfo(path=path, width=int(width), height=int(height), frame_count=count,
                                  fps=Fraction(fps) if fps else None,
                                  time_base=Fraction(stream.time_base) if stream.time_base else None,
                                  has_audio=bool(probe.streams.audio), is_image_sequence=False,
                                  colorspace=colorspace if colorspace not in (None, 2) else None,
                                  interlaced=bool(first is not None and first.interlaced_frame))

    def __iter__(self) -> Iterator[Frame]:
        self.close()
        self._container = _open_container(self.path)
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        index = 0
        frames = self._container.decode(stream)
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except av.FFmpegError as error:
                raise RvmkitError(f"{describe_path(self.path)}: frame {index} could not be decoded "
                                  f"({_reason(error)}); the file is damaged") from None
            if frame.is_corrupt:
                raise RvmkitError(f"{describe_path(self.path)}: frame {index} is corrupt; "
                                  "the file is damaged")
            size = (self.info.width, self.info.height)
            yield Frame(index=index, rgb=to_rgb(frame, size, self.turns), pts=frame.pts,
                        time_base=Fraction(frame.time_base) if frame.time_base else self.info.time_base)
            index += 1
        if self.info.frame_count is not None and index != self.info.frame_count:
            raise RvmkitError(f"{describe_path(self.path)}: decoded {index} of {self.info.frame_count} "
                              "frames; the file is damaged")

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


def _count_frames(path: Path, container: av.container.InputContainer, stream: av.video.VideoStream
                  ) -> tuple[int, av.VideoFrame | None]:
    """Count the frames FFmpeg will show, from the video packets (decoding only until the first frame,
    whose display matrix and colour tags describe the stream); refuse a file that stops early."""
    tally, first, ends = _Tally(), None, {}  # ends: where each stream's data stops (s)
    try:
        for packet in container.demux():
            if packet.size == 0:
                continue  # the demuxer's final flush packet (elementary streams have no timestamps)
            if packet.pts is not None and packet.time_base is not None:
                stop = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                ends[packet.stream.index] = max(ends.get(packet.stream.index, stop), stop)
            if packet.stream.index == stream.index:
                tally.add(packet)
                if first is None:
                    first = _decoded(stream, packet)
    except av.FFmpegError as error:
        raise RvmkitError(f"{describe_path(path)}: cannot read packet {tally.count} ({_reason(error)}); "
                          "the file is damaged") from None
    shown = tally.shown(path)
    if shown <= 0:
        raise RvmkitError(f"{describe_path(path)}: video stream has no frames")
    _check_complete(path, container, stream, tally.count, ends)
    return shown, first if first is not None else _decoded(stream, None)


class _Tally:
    """Which video packets FFmpeg shows as frames: all but those flagged discard (an MP4/MOV edit list
    starts after them) and those of a stream's first stretch the decoder skips. A stream cut without
    re-encoding starts before a keyframe: H.264 and MPEG-2 skip the frames up to it, MPEG-4 part 2
    shows them, and HEVC also skips the open GOP's leading pictures after it (RASL); its first GOP is
    decoded on its own to see which it shows. A stream that starts at a keyframe has only the
    pictures timed before it (RASL again) to check, or, with no timestamps to tell (an elementary
    stream), its first GOP is decoded too."""

    def __init__(self) -> None:
        self.count, self.keys, self.prefix, self.discards = 0, 0, 0, []
        self.first_gop, self.key_pts = False, None  # first_gop: decode the first GOP on its own

    def add(self, packet: av.Packet) -> None:
        index, self.count = self.count, self.count + 1
        if packet.is_discard:
            self.discards.append(index)
        if packet.is_keyframe:
            self.keys += 1
            self.key_pts = packet.pts if self.keys == 1 else self.key_pts
        self.first_gop = self.first_gop or (index == 0 and (not packet.is_keyframe or packet.pts is None))
        shown_before_key = self.key_pts is not None and packet.pts is not None and packet.pts < self.key_pts
        if (self.first_gop and self.keys < 2) or shown_before_key:
            self.prefix = index + 1  # decoded on its own, up to here

    def shown(self, path: Path) -> int:
        prefix = self.prefix if self.keys else 0  # no keyframe flags at all: nothing to skip to
        rest = self.count - prefix - sum(index >= prefix for index in self.discards)
        return rest + (_frames_shown(path, prefix) if prefix else 0)


def _frames_shown(path: Path, packets: int) -> int:
    """How many frames FFmpeg shows from the first `packets` video packets, decoded on their own; a
    frame that cannot be decoded is not shown."""
    shown = 0
    with _open_container(path) as container:
        stream = container.streams.video[0]
        video = (packet for packet in container.demux(stream) if packet.size)
        try:
            for packet in itertools.islice(video, packets):
                shown += len(stream.decode(packet))
            shown += len(stream.decode(None))
        except av.FFmpegError:
            pass
    return shown


def _check_complete(path: Path, container: av.container.InputContainer, stream: av.video.VideoStream,
                    count: int, ends: dict[int, float]) -> None:
    """Refuse a file whose data stops before its declared duration (a truncated download or copy), or
    with fewer video packets than its header declares, unless they still reach the stream's declared
    end (samples an edit list leaves out; an AVI's empty dropped-frame chunks)."""
    declared = stream.frames or 0
    if declared > count and not _reaches_declared_end(stream, ends.get(stream.index)):
        raise RvmkitError(f"{describe_path(path)}: truncated or damaged: only {count} of {declared} "
                          "frames present")
    end = max(ends.values(), default=None)
    if container.duration and end is not None:
        start = (container.start_time or 0) / av.time_base
        declared_end = start + container.duration / av.time_base
        if end < declared_end - _TRUNCATION_SLACK_S:
            raise RvmkitError(f"{describe_path(path)}: truncated or damaged: data stops at {end:.2f} s of "
                              f"{declared_end:.2f} s")


def _reaches_declared_end(stream: av.video.VideoStream, video_end: float | None) -> bool:
    if video_end is None or not stream.duration or not stream.time_base:
        return False
    declared_end = ((stream.start_time or 0) + stream.duration) * stream.time_base
    return video_end >= float(declared_end) - 1e-3


class ImageSource(FrameSource):
    """A single image or a folder of same-size images; timestamps are frame indices at `fps`.

    Sizes are checked from the headers up front; EXIF orientation is applied as each image is decoded.
    """

    def __init__(self, path: Path, images: list[Path], resize: tuple[int, int] | None, fps: Fraction) -> None:
        self.path, self.images, self.resize = path, images, resize
        first = _image_size(images[0])
        for image in images[1:]:
            size = _image_size(image)
            if size not in (first, first[::-1]):  # a sideways photo is checked once turned upright
                raise RvmkitError(f"{describe_path(image)}: image is {size[0]}x{size[1]}, but "
                                  f"{images[0].name} is {first[0]}x{first[1]}; "
                                  "all images must be the same size")
        upright = first[::-1] if quarter_turns(_decode_image(images[0])) % 2 else first
        width, height = resize or upright
        self.info = VideoInfo(path=path, width=int(width), height=int(height), frame_count=len(images),
                              fps=fps, time_base=1 / fps, has_audio=False, is_image_sequence=True)

    def __iter__(self) -> Iterator[Frame]:
        for index, image in enumerate(self.images):
            picture = _decode_image(image)
            rgb = to_rgb(picture, self.resize, quarter_turns(picture))
            if rgb.shape[:2] != (self.info.height, self.info.width):
                raise RvmkitError(f"{describe_path(image)}: image is {rgb.shape[1]}x{rgb.shape[0]} once "
                                  f"turned upright, but {self.images[0].name} is "
                                  f"{self.info.width}x{self.info.height}; all images must be the same size")
            yield Frame(index=index, rgb=rgb, pts=index, time_base=self.info.time_base)


def _image_size(image: Path) -> tuple[int, int]:
    require_readable_file(image, "image")
    with _open_container(image) as container:
        if not container.streams.video:
            raise RvmkitError(f"{describe_path(image)}: not an image")
        _require_decoder(image, container.streams.video[0])
        context = container.streams.video[0].codec_context
        if not context.width or not context.height:
            raise RvmkitError(f"{describe_path(image)}: not a readable image")
        return context.width, context.height


def _decode_image(image: Path) -> av.VideoFrame:
    with _open_container(image) as container:
        try:
            for frame in container.decode(video=0):
                return frame
        except av.FFmpegError as error:
            reason = _reason(error)
            raise RvmkitError(f"{describe_path(image)}: image could not be decoded ({reason})") from None
    raise RvmkitError(f"{describe_path(image)}: image has no picture data")
