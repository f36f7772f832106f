"""Loopback senders and receivers for the live tests (127.0.0.1 only, every loop bounded)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from rvmkit.live.capture import TS_OPTIONS  # a short probe: the receiver sees frames as they come

REPO = Path(__file__).resolve().parents[2]


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port nothing listens on right now (UDP by default)."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_stream_file(path: Path, frames: list[np.ndarray], fps: int, size: tuple[int, int],
                      first_pts: int = 0) -> Path:
    """An MPEG-TS file as a live encoder makes it (H.264, no B-frames, a keyframe every second), so
    that sending its packets gives a receiver exactly the frames `rvmkit matte` decodes from it; its
    timestamps start at `first_pts` frame intervals."""
    with av.open(str(path), "w", format="mpegts") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        video.options = {"preset": "veryfast", "tune": "zerolatency", "crf": "20", "g": str(fps)}
        for index, rgb in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(width=size[0], height=size[1])
            picture.pts = first_pts + index
            container.mux(video.encode(picture))
        container.mux(video.encode(None))
    return path


def stream_pts(path: Path) -> list[int]:
    """The pts (1/90000 s) of every video packet of an MPEG-TS file, in order."""
    with av.open(str(path)) as container:
        return [packet.pts for packet in container.demux(video=0) if packet.pts is not None]


def send(path: Path, url: str, pts_shift: int = 0) -> list[tuple[int, float]]:
    """Send the packets of an MPEG-TS file to `url` at their own rate; (pts, wall time) of each."""
    sent = []
    with av.open(str(path)) as source, av.open(url, "w", format="mpegts",
                                                options={"omit_video_pes_length": "0"}) as out:
        stream = out.add_stream_from_template(source.streams.video[0])
        start, first = time.monotonic(), None
        for packet in source.demux(video=0):
            if packet.pts is None:
                continue
            first = packet.pts if first is None else first
            delay = start + float((packet.pts - first) * packet.time_base) - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            packet.pts += pts_shift
            packet.dts += pts_shift
            packet.stream = stream
            out.mux(packet)
            sent.append((packet.pts, time.monotonic()))
    return sent


class _InThread:
    """A test's viewer: `_run` starts in a daemon thread when the dataclass is made; `join` waits."""

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        raise NotImplementedError

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


@dataclass
class Receiver(_InThread):
    """Decodes an MPEG-TS stream from udp://127.0.0.1:port in a thread until `silence` s pass without
    data (or `limit` s in all); keeps (pts, wall time, image) per frame."""

    port: int
    gray: bool = False
    silence: float = 3.0
    limit: float = 60.0
    frames: list[tuple[int, float, np.ndarray]] = field(default_factory=list)
    error: BaseException | None = None

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit
        try:
            with av.open(f"udp://127.0.0.1:{self.port}", options=dict(TS_OPTIONS),
                         timeout=(self.limit, self.silence)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "SLICE"
                for frame in container.decode(stream):
                    image = frame.to_ndarray(format="gray" if self.gray else "rgb24")
                    self.frames.append((frame.pts, time.monotonic(), image))
                    if time.monotonic() > deadline:
                        break
        except av.ExitError:
            pass  # silence: the stream is over
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.error = error

    @property
    def pts(self) -> list[int]:
        return [pts for pts, _, _ in self.frames]


def start_live(args: list[str], cwd: Path) -> subprocess.Popen:
    """`rvmkit live ARGS` with this checkout's source first on the path; stderr piped (text)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "rvmkit", "live", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_line(process: subprocess.Popen, text: str, timeout: float) -> list[str]:
    """Read stderr lines until one contains `text` (returns the lines so far); fail after `timeout` s or
    when the process ends first."""
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if text in line:
                found.set()
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if not found.wait(timeout):
        process.kill()
        raise AssertionError(f"no {text!r} from rvmkit live within {timeout} s; stderr: {''.join(lines)}")
    return lines


def wait_for_udp_listener(port: int, timeout: float) -> None:
    """Wait until a UDP socket is bound to 127.0.0.1:`port` (Linux: /proc/net/udp). rvmkit live says
    "waiting for" before its source thread opens the socket: a sender that starts in between loses its
    first packets, and the receiver then waits for the next keyframe."""
    local = f"0100007F:{port:04X}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        table = Path("/proc/net/udp")
        if not table.exists() or any(line.split()[1] == local for line in table.read_text().splitlines()[1:]):
            return
        time.sleep(0.01)
    raise AssertionError(f"nothing listens on udp://127.0.0.1:{port} after {timeout} s")


def finish(process: subprocess.Popen, signal_number: int, timeout: float = 20) -> tuple[int, str, str]:
    """Send a signal, wait for the exit; (returncode, stdout, rest of stderr)."""
    process.send_signal(signal_number)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"rvmkit live did not stop within {timeout} s of signal {signal_number}: "
                             f"{err}") from None
    return process.returncode, out, err


class Datagrams:
    """Collects the raw UDP payloads sent to 127.0.0.1:port in a thread, until `silence` s pass."""

    def __init__(self, silence: float = 1.0) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(silence)
        self.port = self.socket.getsockname()[1]
        self.data = bytearray()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while len(self.data) < 64 << 20:
                self.data.extend(self.socket.recv(65536))
        except OSError:
            pass  # silence (timeout): the stream is over
        finally:
            self.socket.close()

    def join(self, timeout: float) -> bytes:
        self._thread.join(timeout)
        return bytes(self.data)


NGINX = Path("/usr/sbin/nginx")
RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")  # Debian's libnginx-mod-rtmp
_NGINX_CONF = """\
load_module {module};
master_process off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log info;
events {{ worker_connections 64; }}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        application live {{ live on; record off; wait_key on; wait_video on; }}
    }}
}}
"""


def rtmp_server_missing() -> str | None:
    """Why a real RTMP media server cannot run here, or None."""
    if not NGINX.is_file() or not RTMP_MODULE.is_file():
        return "needs nginx with its RTMP module (apt-get install nginx libnginx-mod-rtmp; .ci/run does)"
    return None


@contextlib.contextmanager
def rtmp_server(folder: Path, start_s: float = 15) -> Iterator[int]:
    """nginx's RTMP module on 127.0.0.1 (a free port, yielded), everything it writes inside `folder`;
    stopped and waited for at the end."""
    port = free_port(socket.SOCK_STREAM)
    conf = folder / "nginx.conf"
    conf.write_text(_NGINX_CONF.format(module=RTMP_MODULE, folder=folder, port=port))
    command = [str(NGINX), "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(conf),
               "-g", "daemon off;"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + start_s
        while not _accepts(port):
            if process.poll() is not None or time.monotonic() > deadline:
                log = (folder / "error.log").read_text() if (folder / "error.log").exists() else ""
                raise AssertionError(f"nginx did not start: {process.stderr.read() if process.stderr else ''}"
                                     f"{log}")
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Puller(_InThread):
    """Plays `url` (an RTMP stream) in a thread as a viewer does, keeping the first `count` decoded
    frames (pts in ms, RGB) or what came within `limit` s."""

    url: str
    count: int
    limit: float = 60.0
    frames: list[tuple[int, np.ndarray]] = field(default_factory=list)
    error: BaseException | None = None

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit
        try:
            with av.open(self.url, timeout=(self.limit, 10)) as container:
                for frame in container.decode(video=0):
                    self.frames.append((frame.pts, frame.to_ndarray(format="rgb24")))
                    if len(self.frames) >= self.count or time.monotonic() > deadline:
                        break
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.error = error
