"""Where live frames go: network streams, recordings, a virtual camera; the composition or the alpha.

- Streams are written by FFmpeg's muxers through PyAV: MPEG-TS over udp/tcp/srt, FLV over rtmp(s).
  H.264 (libx264) with tune zerolatency (no B-frames, no lookahead: a frame leaves when it is encoded),
  an IDR keyframe at least every second of stream time (forced by timestamp, so it holds when frames are
  dropped) and the SPS/PPS headers repeated before each one, so a receiver can join at any moment.
  MPEG-TS packets carry their PES length and leave as 1316-byte datagrams, one write per frame.
- Recordings are `rvmkit.video.writer` sinks, as `matte` writes them (mp4/mkv H.264, webm VP9, mov
  ProRes, PNG folders; transparent formats included) under a temporary name, renamed when the run ends,
  however it ends: a live recording is kept (finalized and playable) on Ctrl-C, SIGTERM or a lost source.
  A run killed outright cannot rename it, so video files are muxed to stay playable as they grow
  (encoders.KILL_SAFE_MUXING); the next run for the same path removes such a leftover.
- A virtual camera through pyvirtualcam (the `live` extra; v4l2loopback on Linux).

Every frame written carries its source frame's timestamp: streams keep it as is, recordings start at 0.
The output size is the first frame's; frames of another size (the source changed resolution) are scaled.
"""

from __future__ import annotations

import errno
import os
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from rvmkit.errors import RvmkitError, describe_path, first_line
from rvmkit.fileio import remove_stale_temps
from rvmkit.live.capture import CapturedFrame, LiveError, check_scheme, scheme_of
from rvmkit.video import encoders
from rvmkit.video.reader import Frame, VideoInfo
from rvmkit.video.writer import (
    ALPHA_SUFFIXES,
    SMPTE170M,
    VIDEO_SUFFIXES,
    FrameSink,
    VideoSink,
    check_output_path,
    check_quality,
    open_sink,
    resolve_output,
)

ROLES = ("composition", "alpha")
#: URL scheme -> muxer of a network stream
STREAM_FORMATS = {"udp": "mpegts", "udplite": "mpegts", "tcp": "mpegts", "srt": "mpegts", "rist": "mpegts",
                  "rtmp": "flv", "rtmps": "flv", "rtmpt": "flv", "rtmpts": "flv"}
KEYFRAME_INTERVAL_S = 1.0
V4L2LOOPBACK = Path("/sys/module/v4l2loopback")  # present when the kernel module is loaded
_UDP_PACKET = 1316  # 7 MPEG-TS packets: one datagram, no IP fragmentation


@dataclass(frozen=True)
class OutputPlan:
    """One output, checked: `kind` 'stream' (URL), 'recording' (path) or 'camera' (device or '')."""

    role: str
    kind: str
    target: str
    rgba: bool = False  # a transparent composition (recordings only)


def plan_outputs(*, streams: list[str], alpha_streams: list[str], records: list[str],
                 alpha_records: list[str], virtual_camera: str | None, transparent: bool, source_label: str,
                 overwrite: bool, mbps: float | None, crf: int | None) -> list[OutputPlan]:
    """Check every output before anything is opened: schemes, paths, transparency, quality settings."""
    plans = [OutputPlan("composition", "stream", url) for url in streams]
    plans += [OutputPlan("alpha", "stream", url) for url in alpha_streams]
    for url in (*streams, *alpha_streams):
        _check_stream_url(url)
    if transparent and streams:
        raise RvmkitError("--background transparent: H.264 streams cannot carry transparency; send the alpha "
                          "as its own stream (--output-alpha URL), or record to .webm, .mov or a PNG folder")
    info = placeholder_info(source_label)
    seen: set[Path] = set()
    codecs = ["libx264"] if plans else []
    for role, paths in (("composition", records), ("alpha", alpha_records)):
        for text in paths:
            typed = os.path.expanduser(text)
            path = Path(typed)
            kind, codec = resolve_output(typed, None)  # as typed: a trailing slash means a folder
            rgba = transparent and role == "composition"
            if rgba and kind == "video" and path.suffix.lower() not in ALPHA_SUFFIXES:
                raise RvmkitError(f"{describe_path(path)}: {path.suffix[1:]} cannot carry transparency; "
                                  "use .webm (VP9), .mov (ProRes 4444) or a folder of PNGs")
            if path.resolve() in seen:
                raise RvmkitError(f"{describe_path(path)}: recorded twice; give each recording its own path")
            seen.add(path.resolve())
            check_output_path(path, info, overwrite, kind)
            codecs.append(codec)
            plans.append(OutputPlan(role, "recording", typed, rgba))
    if virtual_camera is not None:
        if transparent:
            raise RvmkitError("--virtual-camera shows an opaque picture: choose a --background other than "
                              "transparent")
        check_virtual_camera()
        plans.append(OutputPlan("composition", "camera", virtual_camera))
    if codecs:
        check_quality(codecs, mbps, crf)
    return plans


def _check_stream_url(url: str) -> None:
    scheme = scheme_of(url)
    if scheme is None:
        raise RvmkitError(f"{describe_path(url)}: --output/--output-alpha take a stream URL (udp://, tcp://, "
                          "srt://, rtmp://); record files with --record/--record-alpha")
    if scheme not in STREAM_FORMATS:
        raise RvmkitError(f"{describe_path(url)}: cannot stream over {scheme}://; use "
                          f"{', '.join(f'{name}://' for name in ('udp', 'tcp', 'srt', 'rtmp', 'rtmps'))}")
    check_scheme(url, output=True)


def placeholder_info(source_label: str, width: int = 2, height: int = 2, fps: Fraction | None = None,
                     time_base: Fraction | None = None) -> VideoInfo:
    """The VideoInfo the writers take, for a live source (no frame count, no audio)."""
    return VideoInfo(path=Path(source_label), width=width, height=height, frame_count=None, fps=fps,
                     time_base=time_base, has_audio=False, is_image_sequence=False)


def check_virtual_camera() -> None:
    """pyvirtualcam installed and, on Linux, the v4l2loopback module loaded: else one line."""
    try:
        import pyvirtualcam  # noqa: F401
    except ImportError:
        raise RvmkitError("--virtual-camera needs pyvirtualcam: pip install 'rvmkit[live]'") from None
    if sys.platform.startswith("linux") and not V4L2LOOPBACK.is_dir():
        raise RvmkitError("--virtual-camera: the v4l2loopback kernel module is not loaded, so there is no "
                          "camera to write to (sudo modprobe v4l2loopback exclusive_caps=1)")


class StreamSink(FrameSink):
    """An H.264 network stream (MPEG-TS or FLV), connected (header written) when created."""

    role: str  # "composition" or "alpha"
    label: str
    frames = 0

    def __init__(self, url: str, role: str, width: int, height: int, fps: Fraction, *, mbps: float | None,
                 crf: int | None, timeout: float) -> None:
        self.role, self.label = role, url
        fmt = STREAM_FORMATS[scheme_of(url) or ""]
        self._container = av.open(_with_packet_size(url), "w", format=fmt, options=encoders.MUXERS[fmt],
                                  timeout=(timeout, timeout))
        self._last_key: int | None = None  # pts of the last IDR
        self._last_pts: float | None = None  # seconds
        self._gap = 1 / float(fps)
        self._closed = False
        try:
            self._stream = self._add_video(width, height, fps, mbps, crf)
        except BaseException:
            self._container.close()
            raise

    def _add_video(self, width: int, height: int, fps: Fraction, mbps: float | None,
                   crf: int | None) -> av.video.VideoStream:
        stream = self._container.add_stream("libx264", rate=fps)
        stream.width, stream.height = width, height
        settings = encoders.stream_settings(width, height, fps, mbps, crf)  # IDR by time, see write
        stream.pix_fmt = settings.pix_fmt
        if settings.bit_rate:
            stream.codec_context.bit_rate = settings.bit_rate
        stream.options = settings.options
        context = stream.codec_context
        context.color_range, context.colorspace = 1, SMPTE170M
        context.color_primaries, context.color_trc = SMPTE170M, SMPTE170M
        stream.thread_type = "SLICE"
        context.thread_count = encoders.ENCODE_THREADS
        return stream

    def start(self, time_base: Fraction) -> None:
        """Open the codec, connect and write the header (a refused connection fails here)."""
        self._stream.codec_context.time_base = time_base
        self._stream.time_base = time_base
        try:
            self._container.start_encoding()
        except (av.FFmpegError, OSError) as error:
            self.abort()
            raise sink_error(self.label, error, opening=True) from None

    def write(self, image: np.ndarray, frame: Frame) -> None:
        picture = av.VideoFrame.from_ndarray(image, format="gray" if image.ndim == 2 else "rgb24")
        picture.pts, picture.time_base = frame.pts, frame.time_base
        picture.colorspace = SMPTE170M
        if self._keyframe_due(frame):
            picture.pict_type = av.video.frame.PictureType.I
            self._last_key = frame.pts
        try:
            self._container.mux(self._stream.encode(picture))
        except (av.FFmpegError, OSError) as error:
            raise sink_error(self.label, error) from None
        self.frames += 1

    def _keyframe_due(self, frame: Frame) -> bool:
        """An IDR now if waiting for the next frame could leave more than KEYFRAME_INTERVAL_S since the
        last one; the next frame's distance is guessed from recent ones (a decaying maximum of the gaps,
        which grow when frames are dropped)."""
        seconds = float(frame.pts * frame.time_base)
        if self._last_pts is not None:
            self._gap = max(seconds - self._last_pts, 0.8 * self._gap)
        self._last_pts = seconds
        if self._last_key is None:
            return True
        return float((frame.pts - self._last_key) * frame.time_base) + self._gap >= KEYFRAME_INTERVAL_S - 1e-6

    def commit(self) -> None:
        """Flush the encoder, write the trailer, close the connection (once)."""
        if self._closed:
            return None
        self._closed = True
        try:
            self._container.mux(self._stream.encode(None))
        except (av.FFmpegError, OSError, ValueError):
            pass  # the receiver is gone: nothing left to deliver
        finally:
            try:
                self._container.close()
            except (av.FFmpegError, OSError):
                pass
        return None

    def abort(self) -> None:
        """What a stream can do on failure: deliver what is encoded and hang up."""
        self.commit()


def _with_packet_size(url: str) -> str:
    """udp:// URLs send 1316-byte datagrams (7 TS packets) unless the URL says otherwise."""
    if scheme_of(url) not in ("udp", "udplite") or "pkt_size=" in url:
        return url
    return f"{url}{'&' if '?' in url else '?'}pkt_size={_UDP_PACKET}"


def sink_error(label: str, error: BaseException, opening: bool = False) -> LiveError:
    """One line for a stream that cannot be opened or written."""
    code = getattr(error, "errno", None)
    if code == errno.ECONNREFUSED:
        reason = "connection refused (is the receiver or media server running?)"
    elif code in (errno.EPIPE, errno.ECONNRESET):
        reason = "the receiver closed the connection"
    elif isinstance(error, av.ExitError) or code == errno.ETIMEDOUT:
        reason = "the receiver does not answer (--timeout)"
    elif isinstance(error, av.ProtocolNotFoundError):
        reason = f"this FFmpeg cannot write {scheme_of(label)}:// URLs"
    else:
        reason = first_line(getattr(error, "strerror", None) or error, type(error).__name__)
    return LiveError(f"{describe_path(label)}: {'cannot open the stream: ' if opening else ''}{reason}")


class _KillSafeVideoSink(VideoSink):
    """A `VideoSink` whose container stays playable if the process dies (KILL_SAFE_MUXING)."""

    def __init__(self, path: Path, info: VideoInfo, *, fmt: str, **settings: Any) -> None:
        super().__init__(path, info, fmt=fmt, audio_from=None, **settings)
        # VideoSink takes no muxer options; its container writes the header with the first frame, after
        # this, so options added here apply to it
        self._container.container_options.update(encoders.KILL_SAFE_MUXING[fmt])


class RecordingSink(FrameSink):
    """A `rvmkit.video.writer` sink (kill-safe for video files), timestamps starting at 0; finalized
    (committed) on commit. The temporaries dead runs left for the same target are removed first."""

    role: str  # "composition" or "alpha"
    label: str
    frames = 0

    def __init__(self, plan: OutputPlan, info: VideoInfo, *, mbps: float | None, crf: int | None,
                 overwrite: bool) -> None:
        self.role, self.label = plan.role, plan.target
        self._sink: FrameSink | None = _open_recording(plan, info, mbps, crf, overwrite)
        self._first_pts: int | None = None

    def write(self, image: np.ndarray, frame: Frame) -> None:
        if self._first_pts is None:
            self._first_pts = frame.pts
        assert self._sink is not None
        self._sink.write(image, Frame(index=frame.index, rgb=image, pts=frame.pts - self._first_pts,
                                      time_base=frame.time_base))
        self.frames += 1

    def commit(self) -> Path | None:
        """Publish the recording; one without frames is removed instead (no empty files)."""
        sink, self._sink = self._sink, None
        if sink is None:
            return None
        if self.frames == 0:
            sink.abort()
            return None
        return sink.commit()

    def abort(self) -> None:
        sink, self._sink = self._sink, None
        if sink is not None:
            sink.abort()


DEFAULT_RATE = 30


def _open_recording(plan: OutputPlan, info: VideoInfo, mbps: float | None, crf: int | None,
                    overwrite: bool) -> FrameSink:
    """`open_sink`'s sink for the planned (checked) target, but a video file kill-safe and with a keyframe
    every second (what a killed run loses in the encoder, and how a recording is seeked)."""
    kind, codec = resolve_output(plan.target, None)
    if kind != "video":
        return open_sink(plan.target, info, alpha=plan.rgba, output_type=kind, mbps=mbps, crf=crf,
                         overwrite=overwrite)
    target = Path(plan.target)
    remove_stale_temps(target)  # as open_sink does: what killed runs left
    fmt = VIDEO_SUFFIXES[target.suffix.lower()][1]
    options = encoders.recording_options(codec, fmt, float(info.fps or DEFAULT_RATE),
                                         matte=plan.role == "alpha", mbps=mbps)
    return _KillSafeVideoSink(target, info, fmt=fmt, codec=codec, alpha=plan.rgba, mbps=mbps, crf=crf,
                              codec_options=options, overwrite=overwrite)


class CameraSink(FrameSink):
    """A virtual camera (pyvirtualcam): RGB frames, shown as they come."""

    role: str  # "composition" or "alpha"
    label: str
    frames = 0

    def __init__(self, device: str, width: int, height: int, fps: Fraction) -> None:
        import pyvirtualcam

        self.role, self.label = "composition", device or "virtual camera"
        try:
            self._camera = pyvirtualcam.Camera(width, height, float(fps), fmt=pyvirtualcam.PixelFormat.RGB,
                                               device=device or None)
        except (RuntimeError, ValueError) as error:
            raise RvmkitError(f"--virtual-camera: {first_line(error)}") from None
        self.label = self._camera.device

    def write(self, image: np.ndarray, frame: Frame) -> None:
        self._camera.send(np.ascontiguousarray(image))
        self.frames += 1

    def commit(self) -> None:
        self._camera.close()
        return None

    def abort(self) -> None:
        self.commit()


def fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """`image` scaled to width x height (after the source changed resolution), else as is."""
    if image.shape[1] == width and image.shape[0] == height:
        return image
    fmt = "gray" if image.ndim == 2 else {3: "rgb24", 4: "rgba"}[image.shape[2]]
    picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=fmt)
    return picture.reformat(width=width, height=height, interpolation="AREA").to_ndarray()


class Outputs:
    """Every sink of a run; `write` sends the composition and/or alpha of one frame to each."""

    def __init__(self, sinks: list[FrameSink], width: int, height: int) -> None:
        self.sinks, self.width, self.height = sinks, width, height
        self.wants_alpha = any(sink.role == "alpha" for sink in sinks)
        self.wants_composition = any(sink.role == "composition" for sink in sinks)

    def write(self, composition: np.ndarray | None, alpha: np.ndarray | None, frame: CapturedFrame) -> None:
        for sink in self.sinks:
            image = composition if sink.role == "composition" else alpha
            assert image is not None
            sink.write(fit(image, self.width, self.height), frame)

    def close(self) -> list[Path]:
        """Finalize every sink (all of them, even if one fails); the published recordings."""
        published, failure = [], None
        for sink in self.sinks:
            try:
                path = sink.commit()
            except Exception as error:  # noqa: BLE001 - finish the others first
                failure = failure or error
                continue
            if path is not None:
                published.append(path)
        if failure is not None:
            raise failure
        return published

    def abort(self) -> None:
        for sink in self.sinks:
            try:
                sink.abort()
            except Exception:  # noqa: BLE001 - cleaning up after a failure already
                pass


def open_outputs(plans: list[OutputPlan], *, source_label: str, width: int, height: int, fps: Fraction,
                 time_base: Fraction, mbps: float | None, crf: int | None, overwrite: bool,
                 timeout: float) -> Outputs:
    """Open every planned output for width x height frames; on any failure close those already open
    (no socket left open, no file left behind) and raise."""
    info = placeholder_info(source_label, width, height, fps, time_base)
    sinks: list[FrameSink] = []
    try:
        for plan in plans:
            if plan.kind == "stream":
                stream = StreamSink(plan.target, plan.role, width, height, fps, mbps=mbps, crf=crf,
                                    timeout=timeout)
                sinks.append(stream)
                stream.start(time_base)
            elif plan.kind == "recording":
                sinks.append(RecordingSink(plan, info, mbps=mbps, crf=crf, overwrite=overwrite))
            else:
                sinks.append(CameraSink(plan.target, width, height, fps))
    except BaseException:
        Outputs(sinks, width, height).abort()
        raise
    return Outputs(sinks, width, height)
