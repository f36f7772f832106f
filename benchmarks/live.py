"""`rvmkit live` measured end to end over loopback UDP, against a plain relay and the usual live loop.

    .venv/bin/python benchmarks/live.py        # writes benchmarks/live_results.json and benchmarks/LIVE.md

Set-up (all on 127.0.0.1, every loop bounded in frames and seconds; each party is its own process):

    sender --UDP MPEG-TS--> SUBJECT --UDP MPEG-TS--> receiver

- sender: a real clip (book + sister + milk from ../shared/data, 640x480 30 fps; scaled up for 1280x720),
  encoded once as a live encoder would (x264 veryfast, tune zerolatency, a keyframe every second), its
  packets sent in real time, looped, each frame's pts and wall time logged;
- receiver: decodes the subject's stream and logs each frame's pts and wall time, so the latency of every
  output frame is (receive - send) for the same pts, and exactly which frames were dropped is known;
- subjects, in the same run and the same transport settings:
  (a) relay: rvmkit live's capture, loop and stream output with a pass-through engine (decode, re-encode,
      no matting): what the two MPEG-TS hops and the codecs cost by themselves;
  (b) rvmkit: `rvmkit live udp://... --output udp://... --downsample-ratio 0.5` (the default model on the
      CPU fast path), with its own --stats (capture-to-output latency, frames in/out/dropped);
  (b') rvmkit-auto: the same at its default ratio (auto: a fixed internal size, long side 320 px; 0.25
      at 1280x720, so only run there: at 640x480 it is ratio 0.5 already);
  (c) anchor: the loop live tools use (the OBS background-removal plugin, Linux-Fake-Background-Webcam):
      the official ONNX in ONNX Runtime (whole graph, ratio 0.5), everything in one thread: decode every
      frame, matte it only if the next one is not already due (the newest frame, never a queue), numpy
      composite, the same x264 settings as rvmkit's streams.
Latency percentiles are over frames sent after the first 2 s (start-up excluded). Drift: the p95 of the
first 10 s after those 2 s against the last 10 s of the 60 s rvmkit run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = REPO.parent / "shared" / "data"
CLIPS = ("book", "sister", "milk")
FPS = 30
RATIO = 0.5
SETTLE_S = 2.0
GOALS = {"fps_out_min": 20, "added_p95_ms_max": 120, "own_p95_ms_max": 120, "drift_ms_max": 20}


# ---------------------------------------------------------------- children (one process each)

def child_sender(source: Path, url: str, seconds: float, log: Path) -> None:
    """Send the packets of `source` (MPEG-TS) to `url` in real time, looped, for `seconds`."""
    import av

    sent: dict[int, float] = {}
    with av.open(str(source)) as container:
        period = sum(1 for packet in container.demux(video=0) if packet.pts is not None)
    with av.open(url, "w", format="mpegts", options={"flush_packets": "1"}) as out:
        stream, start, index = None, time.monotonic(), 0
        while index < seconds * FPS:
            with av.open(str(source)) as container:
                stream = stream or out.add_stream_from_template(container.streams.video[0])
                shift = (index // period) * period * (90000 // FPS)
                for packet in container.demux(video=0):
                    if packet.pts is None or index >= seconds * FPS:
                        continue
                    delay = start + index / FPS - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    packet.pts, packet.dts = packet.pts + shift, packet.dts + shift
                    packet.stream = stream
                    out.mux(packet)
                    sent[packet.pts] = time.monotonic()
                    index += 1
    log.write_text(json.dumps(sent))


def child_receiver(url: str, limit: float, log: Path) -> None:
    """Decode the stream at `url` until 3 s of silence (or `limit` s); log pts -> wall time."""
    import av

    from rvmkit.live.capture import TS_OPTIONS

    received: dict[int, float] = {}
    try:
        with av.open(url, options=dict(TS_OPTIONS), timeout=(limit, 3.0)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "SLICE"
            deadline = time.monotonic() + limit
            for frame in container.decode(stream):
                received.setdefault(frame.pts, time.monotonic())
                if time.monotonic() > deadline:
                    break
    except av.ExitError:
        pass
    log.write_text(json.dumps(received))


def child_relay(source: str, url: str, stats: Path) -> None:
    """rvmkit live's capture, loop and output with a pass-through engine: no matting."""
    from rvmkit.live.loop import LiveConfig, run_live
    from rvmkit.runtime.base import Backend, FrameResult

    class Same(FrameResult):
        def __init__(self, rgb: np.ndarray) -> None:
            self.rgb = rgb

        def arrays(self) -> tuple[np.ndarray, np.ndarray]:
            raise NotImplementedError

        def composite(self, background: np.ndarray, want_alpha: bool = True) -> tuple[np.ndarray, None]:
            return self.rgb, None

    class Relay(Backend):
        name = "relay"

        def step(self, src, state, ratio):  # type: ignore[no-untyped-def]
            raise NotImplementedError

        def prepare(self, rgb, ratio):  # type: ignore[no-untyped-def]
            return rgb

        def infer(self, inputs, state, ratio):  # type: ignore[no-untyped-def]
            return list(inputs), state

        def finish(self, rgb, raw, ratio, overlapped=False):  # type: ignore[no-untyped-def]
            return Same(rgb)

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    run_live(LiveConfig(source, outputs=[url], stats=str(stats), timeout=30), stop=stop, backend=Relay())


def child_anchor(source: str, url: str, log: Path) -> None:
    """The single-threaded live loop with the official ONNX in ONNX Runtime (see the module docstring)."""
    import av
    import onnxruntime as ort

    from rvmkit.live.capture import TS_OPTIONS
    from rvmkit.video.encoders import ENCODERS, MUXERS, STREAM_CRF
    from rvmkit.weights import official_onnx_path

    session = ort.InferenceSession(str(official_onnx_path()), providers=["CPUExecutionProvider"])
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("anchor: waiting for source", file=sys.stderr, flush=True)
    counts = {"decoded": 0, "matted": 0}
    with av.open(source, options=dict(TS_OPTIONS), timeout=(60, 30)) as inp, \
            av.open(f"{url}?pkt_size=1316", "w", format="mpegts", options=MUXERS["mpegts"]) as out:
        stream = None
        state = [np.zeros((1, 1, 1, 1), np.float32)] * 4
        ratio = np.array([RATIO], np.float32)
        green = np.array([120, 255, 155], np.float32).reshape(3, 1, 1) / 255
        arrival = None
        for frame in inp.decode(video=0):
            if stop.is_set():
                break
            counts["decoded"] += 1
            now, media = time.monotonic(), float(frame.pts * frame.time_base)
            arrival = min(arrival, now - media) if arrival is not None else now - media
            if now > arrival + media + 1.0 / FPS + 0.005:
                continue  # the next frame is already due: take that one (newest frame, no queue)
            rgb = frame.to_ndarray(format="rgb24")
            src = rgb.transpose(2, 0, 1)[None].astype(np.float32) / 255
            feed = {"src": src, "downsample_ratio": ratio, **{f"r{i + 1}i": state[i] for i in range(4)}}
            fgr, pha, *state = session.run(None, feed)
            composite = (fgr[0] * pha[0] + green * (1 - pha[0])) * 255 + 0.5
            image = np.ascontiguousarray(composite.clip(0, 255).astype(np.uint8).transpose(1, 2, 0))
            if stream is None:
                stream = out.add_stream("libx264", rate=FPS)
                stream.width, stream.height, stream.pix_fmt = image.shape[1], image.shape[0], "yuv420p"
                stream.options = {**ENCODERS["libx264", "stream"], "g": str(FPS), "crf": str(STREAM_CRF)}
                stream.codec_context.time_base = stream.time_base = Fraction(1, 90000)
            picture = av.VideoFrame.from_ndarray(image, format="rgb24")
            picture.pts, picture.time_base = frame.pts, frame.time_base
            out.mux(stream.encode(picture))
            counts["matted"] += 1
    log.write_text(json.dumps(counts))


# ---------------------------------------------------------------- the orchestra

def make_source(path: Path, width: int, height: int) -> Path:
    """The sender's stream: the three clips back to back at width x height, as a live encoder makes it."""
    import av

    with av.open(str(path), "w", format="mpegts") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "veryfast", "tune": "zerolatency", "crf": "20", "g": str(FPS)}
        index = 0
        for name in CLIPS:
            with av.open(str(DATA / f"{name}.mkv")) as clip:
                for frame in clip.decode(video=0):
                    picture = frame.reformat(width=width, height=height, format="yuv420p",
                                             interpolation="BICUBIC")
                    picture.pts, picture.time_base = index, Fraction(1, FPS)
                    out.mux(video.encode(picture))
                    index += 1
        out.mux(video.encode(None))
    return path


def _python(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *args]


def _env() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def _wait_ready(process: subprocess.Popen, timeout: float) -> None:
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    for line in process.stderr:
        if "waiting for" in line:
            threading.Thread(target=process.stderr.read, daemon=True).start()  # keep the pipe drained
            return
        if time.monotonic() > deadline:
            break
    raise RuntimeError(f"subject did not start: {process.args}")


def run_subject(kind: str, source: Path, seconds: float, tmp: Path, ports: tuple[int, int]) -> dict:
    """One measured run of `kind` ('relay', 'rvmkit', 'rvmkit-auto', 'anchor'); the raw logs and the subject's
    stats."""
    src, dst = (f"udp://127.0.0.1:{port}" for port in ports)
    sent_log, received_log, stats = (tmp / f"{kind}_{name}.json" for name in ("sent", "recv", "stats"))
    stats.unlink(missing_ok=True)
    command = {"relay": _python("--child", "relay", src, dst, str(stats)),
               "anchor": _python("--child", "anchor", src, dst, str(stats)),
               "rvmkit": [sys.executable, "-m", "rvmkit", "live", src, "--output", dst, "--downsample-ratio",
                          str(RATIO), "--stats", str(stats), "--timeout", "30"],
               "rvmkit-auto": [sys.executable, "-m", "rvmkit", "live", src, "--output", dst, "--stats",
                               str(stats), "--timeout", "30"]}[kind]
    receiver = subprocess.Popen(_python("--child", "receiver", dst, str(seconds + 120), str(received_log)),
                                env=_env())
    subject = subprocess.Popen(command, env=_env(), stderr=subprocess.PIPE, text=True)
    load_before = os.getloadavg()[0]
    try:
        _wait_ready(subject, 300)
        time.sleep(0.5)
        subprocess.run(_python("--child", "sender", str(source), src, str(seconds), str(sent_log)),
                       env=_env(), check=True, timeout=seconds + 60)
        time.sleep(1.0)
    finally:
        subject.send_signal(signal.SIGINT)
        subject.wait(60)
    receiver.wait(seconds + 180)
    return {"sent": {int(k): v for k, v in json.loads(sent_log.read_text()).items()},
            "received": {int(k): v for k, v in json.loads(received_log.read_text()).items()},
            "subject": json.loads(stats.read_text()) if stats.exists() else None,
            "loadavg": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)) * 1000, 1) if values else None


def summarize(raw: dict, seconds: float) -> dict:
    """Latency (receive - send per pts), fps out, drops, drift, from a run's logs."""
    sent, received = raw["sent"], raw["received"]
    start = min(sent.values())
    steady = {pts: received[pts] - wall for pts, wall in sent.items() if pts in received
              and wall - start >= SETTLE_S}
    sent_steady = [pts for pts, wall in sent.items() if wall - start >= SETTLE_S]
    latencies = list(steady.values())
    window = seconds - SETTLE_S
    result = {"frames_sent": len(sent), "frames_received": sum(pts in received for pts in sent),
              "fps_out": round(len(steady) / window, 2) if window > 0 else None,
              "dropped_steady": len(sent_steady) - len(steady),
              "latency_ms": {"p50": _pct(latencies, 50), "p95": _pct(latencies, 95),
                             "max": _pct(latencies, 100)},
              "loadavg_before_after": raw["loadavg"]}
    if seconds >= 40:
        first = [lat for pts, lat in steady.items() if sent[pts] - start < SETTLE_S + 10]
        last = [lat for pts, lat in steady.items() if sent[pts] - start >= seconds - 10]
        result["drift"] = {"p95_first_10s_ms": _pct(first, 95), "p95_last_10s_ms": _pct(last, 95)}
    if raw["subject"] is not None:
        result["subject"] = raw["subject"].get("totals", raw["subject"])
    return result


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in subprocess.run(
        ["lscpu"], capture_output=True, text=True).stdout.splitlines() if line.startswith("Model name")), "?")
    import av
    import onnxruntime

    return {"cpu": model, "cpus": os.cpu_count(), "python": platform.python_version(), "pyav": av.__version__,
            "onnxruntime": onnxruntime.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=20, help="length of the relay/anchor/720p runs")
    parser.add_argument("--long", type=float, default=60, help="length of the rvmkit 640x480 run (drift)")
    parser.add_argument("--out", type=Path, default=HERE / "live_results.json")
    parser.add_argument("--only", nargs="+", metavar="KIND_WxH",
                        help="run only these subjects, --seconds each (relay, rvmkit, rvmkit-auto, anchor at "
                             "640x480 or 1280x720, e.g. rvmkit-auto_640x480)")
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        {"sender": lambda: child_sender(Path(rest[0]), rest[1], float(rest[2]), Path(rest[3])),
         "receiver": lambda: child_receiver(rest[0], float(rest[1]), Path(rest[2])),
         "relay": lambda: child_relay(rest[0], rest[1], Path(rest[2])),
         "anchor": lambda: child_anchor(rest[0], rest[1], Path(rest[2]))}[kind]()
        return
    from rvmkit.live.capture import ffmpeg_protocols  # noqa: F401 - fail early outside the venv

    results = {"machine": machine(), "ratio": RATIO, "settle_s": SETTLE_S, "goals": GOALS, "runs": {}}
    plan = [((640, 480), "relay", args.seconds), ((640, 480), "rvmkit", args.long),
            ((640, 480), "anchor", args.seconds), ((1280, 720), "relay", args.seconds),
            ((1280, 720), "rvmkit", args.seconds), ((1280, 720), "rvmkit-auto", args.seconds)]
    if args.only:
        plan = [(tuple(int(side) for side in size.split("x")), kind, args.seconds)
                for kind, size in (name.rsplit("_", 1) for name in args.only)]
    with tempfile.TemporaryDirectory(prefix="rvmkit-live-bench-") as folder:
        tmp = Path(folder)
        sizes = {size for size, _, _ in plan}
        sources = {size: make_source(tmp / f"src_{size[0]}.ts", *size) for size in sizes}
        for number, (size, kind, seconds) in enumerate(plan):
            ports = (47000 + 2 * number, 47001 + 2 * number)
            print(f"{kind} {size[0]}x{size[1]} for {seconds:g} s ...", file=sys.stderr, flush=True)
            raw = run_subject(kind, sources[size], seconds, tmp, ports)
            results["runs"][f"{kind}_{size[0]}x{size[1]}"] = summarize(raw, seconds)
            print(json.dumps(results["runs"][f"{kind}_{size[0]}x{size[1]}"]), file=sys.stderr, flush=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
