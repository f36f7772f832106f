"""Live sources: a camera, a network stream or a file played in real time, as a `Capture`, the iterable
source that `rvmkit live` hands to the streaming core (`pipeline.run` with the `NewestFrame` policy).

    source thread (capture): demux -> decode -> NewestFrame (replaces an untaken frame: a drop, counted)
    inference:               the newest frame -> RGB -> the engine, never a queue

Capture never waits for inference, so latency cannot build up: a slow machine sees a lower frame rate.
Sources are named as FFmpeg names them: `/dev/video0` (v4l2), `FORMAT:NAME` for any device input this
FFmpeg has (`avfoundation:0`, `dshow:video=Integrated Camera`, `v4l2:/dev/video2`, `lavfi:testsrc`), a URL
(udp, tcp, rtmp, rtsp, srt, http/HLS, ...) or a file (`realtime=True`, optionally looped).

Timestamps: every frame keeps its source timestamp. They are made increasing across a loop, a reconnect or
a discontinuity (a segment that starts earlier, or jumps far ahead, is moved to just after the last
frame), never renumbered otherwise; no frame is dropped for its timestamp.
"""

from __future__ import annotations

import ctypes
import errno
import glob
import os
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from rvmkit.errors import RvmkitError, describe_path, first_line
from rvmkit.video.reader import Frame, quarter_turns, to_rgb  # the file reader's upright RGB conversion

#: FFmpeg device inputs that may prefix a source as FORMAT:NAME
DEVICE_FORMATS = ("v4l2", "video4linux2", "avfoundation", "dshow", "gdigrab", "x11grab", "kmsgrab", "fbdev",
                  "decklink", "lavfi")
#: URL schemes handled by a demuxer rather than a protocol
DEMUXER_SCHEMES = ("rtsp", "rtsps")
#: probing a network stream: not FFmpeg's 5 s, which also waits for 20 frames to guess the rate (it is in
#: the stream's headers): frames read while probing arrive together afterwards, as a burst the newest-
#: frame loop would mostly drop. MPEG-TS transports declare their streams up front (PAT/PMT), so their
#: probe ends at the first packet; a stream joined before a keyframe decodes from the next one.
NETWORK_OPTIONS = {"analyzeduration": "500000", "fpsprobesize": "0"}
TS_OPTIONS = {"analyzeduration": "1", "probesize": "32768", "fpsprobesize": "0"}
TS_SCHEMES = ("udp", "udplite", "tcp", "srt", "rist", "rtp")
#: the decoder's threads: slices, not frames (frame threads hold a frame per thread: latency);
#: 0 lets FFmpeg choose the count (the cores + 1)
DECODE_THREAD_TYPE = "SLICE"
DECODE_THREADS = 0
RECONNECT_BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0)
#: when more than this many seconds of a live source queue in front of the decoder (the machine cannot
#: even decode it in real time), capture skips to its next keyframe: latency stays bounded there too
BEHIND_LIMIT_S = 1.0
#: a timestamp that jumps ahead by more than this beyond the time that passed is a discontinuity (FFmpeg's
#: dts_delta_threshold): the frame follows the last one instead of waiting (--realtime) or leaving a gap
JUMP_S = 10.0


class LiveError(RvmkitError):
    """A live run failed after it started (source lost, sink gone): exit 1, not a usage error."""

    exit_code = 1


def name_os_thread(name: str) -> None:
    """Give the calling thread `name` in the OS (Linux: `top -H`, `perf`, py-spy show it; threads FFmpeg
    or ONNX Runtime start from it inherit it). A no-op where prctl is missing."""
    try:
        libc = ctypes.CDLL(None)
        libc.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


def ffmpeg_protocols(output: bool) -> frozenset[str] | None:
    """The URL protocols PyAV's FFmpeg reads (or writes), from avio_enum_protocols; None if the library
    cannot be found (then unknown schemes are reported when opened)."""
    library = _avformat_library()
    if library is None:
        return None
    enum = library.avio_enum_protocols
    enum.restype, enum.argtypes = ctypes.c_char_p, [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int]
    cursor, names = ctypes.c_void_p(None), set()
    while (name := enum(ctypes.byref(cursor), int(output))) is not None:
        names.add(name.decode())
    return frozenset(names)


def _avformat_library() -> ctypes.CDLL | None:
    """The libavformat PyAV loaded: its wheel's bundled copy, else the one mapped into this process."""
    package = Path(av.__file__).parent
    candidates = glob.glob(str(package.parent / "av.libs" / "libavformat*")) + \
        glob.glob(str(package / ".dylibs" / "libavformat*"))
    if not candidates and os.path.exists("/proc/self/maps"):
        with open("/proc/self/maps") as maps:
            candidates = sorted({line.split()[-1] for line in maps if "libavformat" in line})
    for path in candidates:
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


def scheme_of(text: str) -> str | None:
    """'udp' for 'udp://host:port', None for a path."""
    head, sep, _ = text.partition("://")
    if not sep or not head or not all(char.isalnum() or char in "+-." for char in head):
        return None
    return head.lower()


def check_scheme(url: str, output: bool) -> None:
    """Refuse a URL whose scheme this FFmpeg cannot open, before anything starts."""
    scheme = scheme_of(url)
    known = ffmpeg_protocols(output)
    if scheme is None or known is None or scheme in known or (not output and scheme in DEMUXER_SCHEMES):
        return
    verb = "write" if output else "read"
    raise RvmkitError(f"{describe_path(url)}: this FFmpeg cannot {verb} {scheme}:// URLs (it can {verb}: "
                      f"{', '.join(sorted(known))})")


@dataclass(frozen=True)
class SourceSpec:
    """What to open: `url` with input `format` (None: probe) and demuxer/device `options`."""

    label: str
    url: str
    format: str | None
    kind: str  # "device" | "network" | "file"
    options: dict[str, str] = field(default_factory=dict)
    realtime: bool = False
    loop: bool = False


def _input_formats() -> set[str]:
    return {name for entry in av.formats_available for name in entry.split(",")}


def parse_source(text: str, *, fmt: str | None = None, size: tuple[int, int] | None = None,
                 fps: float | None = None, options: dict[str, str] | None = None, realtime: bool = False,
                 loop: bool = False) -> SourceSpec:
    """Classify SOURCE and check it can be opened in principle (format exists, scheme known, device or
    file present), in one line each, before any model is loaded."""
    url, prefix = text, None
    head, sep, rest = text.partition(":")
    if sep and head.lower() in DEVICE_FORMATS and not rest.startswith("//"):
        prefix, url = head.lower(), rest
    fmt = (fmt or prefix or ("v4l2" if text.startswith("/dev/video") else None))
    scheme = scheme_of(url)
    if fmt in DEVICE_FORMATS:
        kind = "device"
    elif scheme is not None and scheme != "file":
        kind = "network"
    else:
        kind = "file"
    if fmt is not None and fmt not in _input_formats():
        hint = {"avfoundation": " (macOS only)", "dshow": " (Windows only)", "gdigrab": " (Windows only)",
                "v4l2": " (Linux only)"}.get(fmt, "")
        raise RvmkitError(f"{describe_path(text)}: this FFmpeg has no {fmt!r} input{hint}")
    settings = {}
    if kind == "network":
        settings = dict(TS_OPTIONS if scheme in TS_SCHEMES and fmt in (None, "mpegts") else NETWORK_OPTIONS)
    if size is not None or fps is not None:
        if kind != "device":
            raise RvmkitError(f"{describe_path(text)}: --source-size and --source-fps are for camera "
                              "devices; a stream or file has its own size and rate (--input-resize scales)")
        settings.update({"video_size": f"{size[0]}x{size[1]}"} if size else {})
        settings.update({"framerate": f"{fps:g}"} if fps else {})
    settings.update(options or {})
    if (realtime or loop) and kind != "file":
        raise RvmkitError(f"{describe_path(text)}: --realtime and --loop apply to files; a {kind} source is "
                          "live already")
    if kind == "network":
        check_scheme(url, output=False)
    elif kind == "file":
        _check_file(text, url, realtime)
    elif fmt in ("v4l2", "video4linux2") and not os.path.exists(url):
        raise RvmkitError(f"{describe_path(url)}: no such device (is the camera connected? "
                          "`v4l2-ctl --list-devices` lists them)")
    # lavfi generates frames as fast as they are read: it plays at its own rate, as a file does
    return SourceSpec(text, url, fmt, kind, settings, realtime or fmt == "lavfi", loop)


def _check_file(text: str, url: str, realtime: bool) -> None:
    path = url[len("file://"):] if url.startswith("file://") else url
    if not os.path.exists(path):
        raise RvmkitError(f"{describe_path(text)}: no such file, device or URL (a stream needs its scheme, "
                          "e.g. udp://127.0.0.1:5000)")
    if os.path.isdir(path):
        raise RvmkitError(f"{describe_path(text)}: is a folder; live takes a camera, a stream or a video "
                          "file")
    if not realtime:
        raise RvmkitError(f"{describe_path(text)}: is a file: add --realtime to play it at its own frame "
                          "rate (and --loop to repeat it), or use `rvmkit matte` to matte every frame")


_REASONS = {
    errno.ENOENT: "not found", errno.ENODEV: "no such device",
    errno.EBUSY: "device is busy (another program is using the camera)",
    errno.EACCES: "permission denied", errno.EPERM: "permission denied",
    errno.ECONNREFUSED: "connection refused (nothing is serving there)",
    errno.ECONNRESET: "connection reset by the sender", errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable", errno.EIO: "input/output error",
}


def source_problem(error: BaseException, spec: SourceSpec, timeout: float | None, started: bool) -> str:
    """What went wrong with the source, from an FFmpeg/OS error's type and errno (no label)."""
    code = getattr(error, "errno", None)
    if isinstance(error, av.ExitError) or code == errno.ETIMEDOUT:
        when = f"for {timeout:g} s" if started else f"within {timeout:g} s"
        return f"no data {when} (--timeout); is the sender running?"
    if spec.kind == "device" and code in (errno.ENOENT, errno.ENODEV):
        return "no such device"
    reason = _REASONS.get(code) if code is not None else None
    if reason is not None and spec.kind == "device" and code == errno.EACCES:
        reason += " (is this user in the 'video' group?)"
    return reason or first_line(getattr(error, "strerror", None) or error, type(error).__name__)


def source_error(error: BaseException, spec: SourceSpec, timeout: float | None, started: bool) -> RvmkitError:
    """One line for an FFmpeg/OS error of the source."""
    label = describe_path(spec.label)
    if isinstance(error, av.ProtocolNotFoundError):
        return RvmkitError(f"{label}: this FFmpeg cannot open {scheme_of(spec.url) or 'such'}:// URLs")
    if isinstance(error, RvmkitError):
        return error
    return LiveError(f"{label}: {source_problem(error, spec, timeout, started)}")


class CapturedFrame(Frame):
    """A decoded live frame, a `Frame` as every source yields: `index` counts every frame captured
    (dropped ones too), `pts` is in `time_base` (increasing), `native` is the decoded size before
    --input-resize, `epoch` changes when the source is reopened (reconnect: the recurrent state restarts).
    `rgb` (upright HxWx3 uint8, after --input-resize) is converted on first use, so frames that are
    dropped are never converted."""

    def __init__(self, index: int, image: np.ndarray | Callable[[], np.ndarray], pts: int,
                 time_base: Fraction, native: tuple[int, int], epoch: int, captured_at: float) -> None:
        self.index, self.pts, self.time_base = index, pts, time_base
        self.native, self.epoch, self.captured_at = native, epoch, captured_at
        self._image = image

    @property  # type: ignore[override]
    def rgb(self) -> np.ndarray:
        if callable(self._image):
            self._image = self._image()
        return self._image

    @property
    def segment(self) -> Hashable:
        """A new decoded size or a reopened source starts a new stream (the recurrent state restarts)."""
        return self.native, self.epoch


class _Timeline:
    """Makes timestamps increasing in one time base, keeping every frame, as FFmpeg keeps time running
    over a discontinuity: a segment that starts at or before the last frame (a looped file, a restarted
    sender, a step back) or jumps ahead of it by more than JUMP_S beyond the time that really passed
    (a sender's clock jump, concatenated streams) is shifted to follow the last frame by one frame
    interval. A jump is judged against the capture clock, so a source that really paused keeps its gap."""

    def __init__(self) -> None:
        self.time_base: Fraction | None = None
        self.offset = 0
        self.last: int | None = None
        self.last_clock = 0.0
        self.step = 1

    def place(self, pts: int | None, time_base: Fraction | None, clock_s: float) -> int:
        if self.time_base is None:
            self.time_base = Fraction(time_base) if time_base else Fraction(1, 90000)
        if pts is None or time_base is None:
            value = round(clock_s / self.time_base)  # no timestamps (some devices): the capture clock
        else:
            value = round(pts * Fraction(time_base) / self.time_base) + self.offset
        if self.last is not None:
            waited = max(0.0, clock_s - self.last_clock)
            if value <= self.last or float((value - self.last) * self.time_base) > waited + JUMP_S:
                self.offset += self.last + self.step - value
                value = self.last + self.step
            else:
                self.step = max(1, min(value - self.last, round(Fraction(1, 5) / self.time_base)))
        self.last, self.last_clock = value, clock_s
        return value


class _Backlog:
    """Seconds of a live source waiting in front of the decoder, from the demuxer's pace: packets that
    come back faster than their timestamps advance are being read from a backlog. A pause or a late
    packet (the sender's doing) only lowers the estimate; a timestamp jump resets it."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.fresh = False  # the last packet had to be waited for: nothing was queued
        self._last: tuple[float, float] | None = None  # (media s, clock s)

    def update(self, media_s: float, now: float) -> float:
        if self._last is not None:
            media_dt, wall_dt = media_s - self._last[0], now - self._last[1]
            if 0 <= media_dt <= 5:
                self.seconds = max(0.0, self.seconds + media_dt - wall_dt)
                self.fresh = wall_dt > media_dt / 2
            else:
                self.seconds, self.fresh = 0.0, True
        self._last = (media_s, now)
        return self.seconds


class Capture:
    """A live source as an iterable of `CapturedFrame`s, read and decoded in the thread that iterates it
    (the pipeline's source thread), at the source's own pace: reconnects (`reconnect`), a looped file's
    passes, --realtime pacing, skipping to a keyframe when decoding falls behind. Iteration ends at the
    source's end, at `stop`, or at an error, which is kept in `error` (the frames before it are still
    matted and written). `on_frame(dropped)` counts every frame: each one yielded, and each skipped."""

    def __init__(self, spec: SourceSpec, *, resize: tuple[int, int] | None, timeout: float,
                 reconnect: bool, on_frame: Callable[[bool], None], note: Callable[[str], None],
                 stop: threading.Event | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.spec, self.resize, self.timeout, self.reconnect = spec, resize, timeout, reconnect
        self.on_frame, self.note, self.clock = on_frame, note, clock
        self.error: BaseException | None = None
        self.fps: Fraction | None = None
        self.reconnects = 0
        self.catch_ups = 0  # times decoding fell behind and skipped to a keyframe
        self._stop = stop if stop is not None else threading.Event()
        self._timeline = _Timeline()
        self._seq = 0
        self._epoch = 0
        self._pace: tuple[float, float] | None = None  # (clock, seconds of media) of the first frame

    @property
    def _can_retry(self) -> bool:
        return self.reconnect and self.spec.kind != "file"

    def __iter__(self) -> Iterator[CapturedFrame]:
        name_os_thread("rvmkit-capture")
        failures = 0
        try:
            while not self._stop.is_set():
                before = self._seq
                try:
                    yield from self._read_once()
                    reason = "the stream ended"
                except (av.FFmpegError, OSError) as error:
                    if not self._can_retry:
                        raise source_error(error, self.spec, self.timeout, self._seq > 0) from None
                    reason = source_problem(error, self.spec, self.timeout, self._seq > 0)
                got = self._seq > before
                if self.spec.loop and got and not self._stop.is_set():
                    continue
                if not self._can_retry or self._stop.is_set():
                    break
                failures = 0 if got else failures + 1
                delay = RECONNECT_BACKOFF_S[min(failures, len(RECONNECT_BACKOFF_S) - 1)]
                self.note(f"{describe_path(self.spec.label)}: {reason}; reconnecting in {delay:g} s")
                self._stop.wait(delay)
        except Exception as error:  # noqa: BLE001 - raised by the front-end once the frames before it are out
            self.error = error

    def _read_once(self) -> Iterator[CapturedFrame]:
        """Open the source and yield its frames until it ends (or `stop`)."""
        timeout = None if self.spec.kind == "file" else self.timeout
        container = av.open(self.spec.url, format=self.spec.format, options=dict(self.spec.options),
                            timeout=(timeout, timeout) if timeout else None)
        try:
            if not container.streams.video:
                raise RvmkitError(f"{describe_path(self.spec.label)}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = DECODE_THREAD_TYPE
            stream.codec_context.thread_count = DECODE_THREADS
            self.fps = self.fps or stream.average_rate or stream.guessed_rate
            yield from self._decode(container, stream)
        finally:
            container.close()

    def _decode(self, container: av.container.InputContainer, stream: av.video.VideoStream
                ) -> Iterator[CapturedFrame]:
        """Every frame of `stream`; packets of a live source that arrive too late are skipped."""
        first, backlog, skipping = True, _Backlog(), False
        for packet in container.demux(stream):
            if self._stop.is_set():
                break
            if not self.spec.realtime and packet.pts is not None and packet.time_base is not None:
                backlog.update(float(packet.pts * packet.time_base), self.clock())
                skipping = self._skip(packet, backlog, skipping)
                if skipping:
                    continue
            try:
                frames = packet.decode()
            except av.InvalidDataError:
                continue  # a damaged packet (UDP loss): the decoder resyncs at the next keyframe
            for frame in frames:
                if first and self._seq:
                    self._new_epoch()
                first = False
                yield self._captured(frame)

    def _skip(self, packet: av.Packet, backlog: _Backlog, skipping: bool) -> bool:
        """Whether to skip this packet undecoded (counted as a dropped frame): from when over
        BEHIND_LIMIT_S of the source is queued until a keyframe that did not wait in the queue."""
        if skipping and packet.is_keyframe and backlog.fresh:
            backlog.seconds = 0.0
            return False
        if not skipping and backlog.seconds > BEHIND_LIMIT_S:
            self.catch_ups += 1
            if self.catch_ups == 1:
                self.note(f"{describe_path(self.spec.label)}: decoding fell {backlog.seconds:.1f} s behind "
                          "the source; skipping to the next keyframe (the machine is too busy for it)")
            skipping = True
        if skipping and packet.size:
            self._seq += 1
            self.on_frame(True)
        return skipping

    def _new_epoch(self) -> None:
        """The source was reopened: a looped file's next pass, or a reconnect (the state restarts)."""
        self._epoch += 1
        if not self.spec.loop:
            self.reconnects += 1
            self.note(f"{describe_path(self.spec.label)}: reconnected; recurrent state restarted")

    def _captured(self, frame: av.VideoFrame) -> CapturedFrame:
        turns = quarter_turns(frame) if self.spec.kind == "file" else 0
        resize = self.resize
        time_base = Fraction(frame.time_base) if frame.time_base else None
        pts = self._timeline.place(frame.pts, time_base, self.clock())
        if self.spec.realtime:
            self._wait_until_due(float(pts * self._timeline.time_base))
        native = (frame.width, frame.height) if turns % 2 == 0 else (frame.height, frame.width)
        captured = CapturedFrame(self._seq, lambda: to_rgb(frame, resize, turns), pts,
                                 self._timeline.time_base, native, self._epoch, self.clock())
        self._seq += 1
        self.on_frame(False)
        return captured

    def _wait_until_due(self, media_s: float) -> None:
        """--realtime: hold each frame until its time since the first frame has passed."""
        if self._pace is None:
            self._pace = (self.clock(), media_s)
        due = self._pace[0] + media_s - self._pace[1]
        delay = due - self.clock()
        if delay > 0:
            self._stop.wait(delay)
