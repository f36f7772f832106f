"""One long video split into K time segments matted in parallel, then stitched into one exact output.

Segment i writes frames [start_i, stop_i). It starts inferring `warmup` frames earlier, from zero
state, so its recurrent state is close to the sequential one by the seam. RVM's state has a long memory:
the difference shrinks with W (the mean roughly halves every 30-40 frames) but does not vanish;
benchmarks/segments_seam.py measures it. Frames before the warm-up are decoded and skipped.

Each segment stores the exact uint8 output frames it would have written (composition, alpha, ...) in
a lossless intermediate, FFV1 in NUT, plus its frames' source timestamps, in a work folder next to
the final output (so a shared filesystem works across machines). The stitcher then reads the segments
in order and encodes every output once with the ordinary sinks: frame count, order, timestamps and
audio are those of a sequential run; the first segment is bit-identical to it, and later segments
differ by the measured seam error. Stitching one output kind is independent of the others, so they can
run in parallel too.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from rvmkit.contract import check_limit
from rvmkit.errors import RvmkitError, describe_path
from rvmkit.fileio import Staged, hidden_name
from rvmkit.video import encoders
from rvmkit.video.reader import Frame, ffmpeg_path
from rvmkit.video.writer import FrameSink

#: warm-up frames per segment, chosen from benchmarks/segments_seam.json (see the README)
DEFAULT_WARMUP = 64
_FORMATS = {3: ("rgb24", "bgr0"), 4: ("rgba", "bgra"), 1: ("gray", "gray")}


@dataclass(frozen=True)
class Segment:
    """Frames [start, stop) are written; inference starts at `warm_start` (<= start)."""

    index: int
    start: int
    stop: int
    warm_start: int

    @property
    def warmup(self) -> int:
        return self.start - self.warm_start


def plan_segments(frame_count: int, segments: int, warmup: int = DEFAULT_WARMUP) -> list[Segment]:
    """K near-equal segments covering [0, frame_count); fewer when the video has fewer frames."""
    check_limit("segments", segments)
    check_limit("warmup", warmup)
    if frame_count < 1:
        raise RvmkitError(f"cannot split a video of {frame_count} frames")
    count = min(segments, frame_count)
    bounds = [round(i * frame_count / count) for i in range(count + 1)]
    return [Segment(i, bounds[i], bounds[i + 1], max(0, bounds[i] - warmup)) for i in range(count)]


def work_dir_for(output: Path) -> Path:
    """Hidden per-output work folder beside it (same filesystem as the output, visible to all workers)."""
    output = Path(output).absolute()
    return output.with_name(hidden_name(output.name, ".rvmkit-segments"))


def part_path(work_dir: Path, segment: int, kind: str) -> Path:
    return Path(work_dir) / f"seg{segment:04d}.{kind}.nut"


def times_path(work_dir: Path, segment: int) -> Path:
    return Path(work_dir) / f"seg{segment:04d}.json"


class LosslessSink(FrameSink):
    """FFV1 (bit-exact) frames of one segment and output kind; the pixel format follows the first frame."""

    def __init__(self, path: Path, times: TimesRecorder | None = None) -> None:
        self.path = Path(path)
        self.times = times
        self._temp = self.path.with_name(self.path.name + ".part")
        self._container: av.container.OutputContainer | None = None
        self._stream = None
        self._format = ""
        self.count = 0

    def _open(self, frame: np.ndarray) -> None:
        channels = 1 if frame.ndim == 2 else frame.shape[2]
        self._format, pix_fmt = _FORMATS[channels]
        self._container = av.open(ffmpeg_path(self._temp), mode="w", format=encoders.SEGMENT_MUXER)
        self._stream = self._container.add_stream(encoders.SEGMENT_CODEC, rate=30)
        self._stream.width, self._stream.height = frame.shape[1], frame.shape[0]
        self._stream.pix_fmt = pix_fmt
        self._stream.codec_context.options = dict(encoders.ENCODERS[encoders.SEGMENT_CODEC, "segment"])

    def write(self, frame: np.ndarray, source: Frame) -> None:
        if frame.ndim == 3 and frame.shape[2] == 1:
            frame = frame[:, :, 0]
        if self._container is None:
            self._open(frame)
        picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format=self._format)
        picture.pts = self.count
        self._container.mux(self._stream.encode(picture))
        self.count += 1
        if self.times is not None:
            self.times.add(source)

    def commit(self) -> Path:
        if self._container is None:
            raise RvmkitError(f"{describe_path(self.path)}: segment produced no frames")
        self._container.mux(self._stream.encode(None))
        self._container.close()
        self._container = None
        os.replace(self._temp, self.path)
        return self.path

    def abort(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - cleaning up after a failure already
                pass
            self._container = None
        self._temp.unlink(missing_ok=True)


class TimesRecorder:
    """The source index/pts of every frame a segment writes, saved beside its parts."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.index: list[int] = []
        self.pts: list[int | None] = []
        self.time_base: Fraction | None = None

    def add(self, frame: Frame) -> None:
        self.index.append(frame.index)
        self.pts.append(frame.pts)
        if frame.time_base is not None:
            self.time_base = Fraction(frame.time_base)

    def save(self, segment: Segment, key: str) -> None:
        data = {"segment": asdict(segment), "key": key, "index": self.index, "pts": self.pts,
                "time_base": None if self.time_base is None else str(self.time_base)}
        temp = self.path.with_name(self.path.name + ".part")
        temp.write_text(json.dumps(data))
        os.replace(temp, self.path)


def read_times(work_dir: Path, segment: int) -> tuple[list[int], list[int | None], Fraction | None]:
    data = json.loads(times_path(work_dir, segment).read_text())
    time_base = Fraction(data["time_base"]) if data["time_base"] else None
    return data["index"], data["pts"], time_base


def read_part(work_dir: Path, segment: int, kind: str) -> Iterator[np.ndarray]:
    """The exact uint8 frames a segment stored for `kind` (HxW for grey, HxWxC otherwise)."""
    path = part_path(work_dir, segment, kind)
    with av.open(ffmpeg_path(path)) as container:
        stream = container.streams.video[0]
        fmt = {"bgr0": "rgb24", "bgra": "rgba", "gray": "gray"}[stream.codec_context.pix_fmt]
        for picture in container.decode(stream):
            yield picture.to_ndarray(format=fmt)


def segment_done(work_dir: Path, segment: Segment, kinds: list[str], key: str) -> bool:
    """True when an earlier attempt with the same input and options (`key`) finished this segment."""
    times = times_path(work_dir, segment.index)
    if not times.exists() or not all(part_path(work_dir, segment.index, k).exists() for k in kinds):
        return False
    try:
        data = json.loads(times.read_text())
        return data["segment"] == asdict(segment) and data["key"] == key
    except (ValueError, KeyError):
        return False


def stitched_frames(work_dir: Path, segments: list[Segment], kind: str, frame_count: int | None
                    ) -> Iterator[tuple[np.ndarray, Frame]]:
    """(frame, source Frame) for the whole video, segment after segment, checking count and order."""
    expected = 0
    for segment in segments:
        index, pts, time_base = read_times(work_dir, segment.index)
        if index != list(range(segment.start, segment.start + len(index))) or index[:1] != [expected]:
            raise RvmkitError(f"{describe_path(work_dir)}: segment {segment.index} holds frames "
                              f"{index[:1]}..{index[-1:]}, expected from {expected}; re-run to redo it")
        count = 0
        for frame, i, p in zip(read_part(work_dir, segment.index, kind), index, pts, strict=False):
            yield frame, Frame(index=i, rgb=frame, pts=p, time_base=time_base)
            count += 1
        if count != len(index):
            raise RvmkitError(f"{describe_path(part_path(work_dir, segment.index, kind))}: {count} frames, "
                              f"expected {len(index)}; re-run to redo it")
        expected += count
    if frame_count is not None and expected != frame_count:
        raise RvmkitError(f"{describe_path(work_dir)}: segments hold {expected} frames, the input has "
                          f"{frame_count}")


def stitch(work_dir: Path, segments: list[Segment], kind: str, sink: FrameSink,
           frame_count: int | None) -> tuple[int, Staged | None]:
    """Write every segment's `kind` frames, in order, into `sink` and finish it; return the count and
    the staged output, which the caller publishes with the item's other outputs (all or none)."""
    written = 0
    try:
        for frame, source in stitched_frames(work_dir, segments, kind, frame_count):
            sink.write(frame, source)
            written += 1
        return written, sink.finish()
    except BaseException:
        sink.abort()
        raise


def remove_work_dir(work_dir: Path) -> None:
    shutil.rmtree(work_dir, ignore_errors=True)
