"""Where the CPU time of `rvmkit live` goes: every thread sampled by `perf`, in CPU ms per output frame.

    .venv/bin/python benchmarks/live_profile.py [--seconds 20] [--lever NAME ...] [--out FILE.json]

The set-up of benchmarks/live.py (a sender streams a 640x480 30 fps clip as UDP MPEG-TS in real time,
`rvmkit live --downsample-ratio 0.5` re-streams it over UDP to a receiver), with `perf record` on the
subject's process for the steady part of the run. CPU samples, not wall times: a sample is a slice of a
core spent in that thread and library, so the split holds on a shared machine (wall numbers do not).
Threads are told apart by their OS names (rvmkit live names its capture and output threads; FFmpeg's
decoder threads inherit the capture thread's name; the main thread, which infers, is named here, and
ONNX Runtime's workers and x264's threads, started from it, inherit that name) and libraries by the
shared object each sample was in. Frames out are the receiver's, in the same window.

Levers (each a separate subject run, `--lever` repeats): see LEVERS. Needs `perf` (linux-perf).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import live as bench  # benchmarks/live.py: the sender, the receiver, the source clip

HERE = Path(__file__).resolve().parent
PERF_HZ = 499
#: a row of `perf report -n --sort pid,dso,sym`: "12.3%  456  tid:comm  dso  [.] symbol"
ROW = re.compile(r"^\s*[\d.]+%\s+(?P<samples>\d+)\s+(?P<tid>\d+):(?P<comm>\S+)\s+"
                 r"(?P<dso>\[JIT\] tid \d+|\S+)\s+\[.\]\s+(?P<sym>.*)$")
#: name -> settings applied in the subject before it starts (module constants, engine options, CLI args)
LEVERS: dict[str, dict] = {
    "baseline": {},
    "decode-1-thread": {"capture.DECODE_THREADS": 1},
    "decode-frame-threads": {"capture.DECODE_THREAD_TYPE": "FRAME"},
    "encode-1-thread": {"encoders.ENCODE_THREADS": 1},
    "encode-ultrafast": {"encoders.ENCODERS": {"libx264/stream": {"preset": "ultrafast"}}},
    "ort-1-thread": {"ort_threads": 1},
    "ort-spinning": {"ort_spinning": True},
    "ort-dynamic-blocks": {"session_config": {"session.dynamic_block_base": "4"}},
    "ort-1-thread-decode-1-thread": {"ort_threads": 1, "capture.DECODE_THREADS": 1},
    "ratio-0.375": {"args": ["--downsample-ratio", "0.375"]},
    "ratio-0.3": {"args": ["--downsample-ratio", "0.3"]},
    "ratio-0.25": {"args": ["--downsample-ratio", "0.25"]},
}


def child_subject(source: str, url: str, stats: str, settings_json: str) -> None:
    """rvmkit live, with the lever's settings applied first."""
    from rvmkit.live import capture
    from rvmkit.live.capture import name_os_thread
    from rvmkit.video import encoders

    name_os_thread("rvmkit-infer")
    settings = json.loads(settings_json)
    args = ["--downsample-ratio", str(bench.RATIO), *settings.pop("args", [])]
    ort = {key[4:]: settings.pop(key) for key in list(settings) if key.startswith("ort_")}
    _add_session_config(settings.pop("session_config", {}))
    for key, value in settings.items():
        module, name = key.split(".")
        target = {"capture": capture, "encoders": encoders}[module]
        current = getattr(target, name)
        if name == "ENCODERS":  # JSON keys "codec/use" -> the table's (codec, use), merged into its entry
            value = {tuple(k.split("/")): {**current[tuple(k.split("/"))], **v} for k, v in value.items()}
        setattr(target, name, {**current, **value} if isinstance(current, dict) else value)
    if ort:
        import rvmkit.runtime as runtime

        load = runtime.load_backend
        runtime.load_backend = lambda *a, **k: load(*a, **{**k, **ort})  # type: ignore[assignment]
    from rvmkit.cli import main

    sys.exit(main(["live", source, "--output", url, *args, "--stats", stats, "--timeout", "30"]))


def _add_session_config(entries: dict[str, str]) -> None:
    """ONNX Runtime session config entries for the fast path's session (a lever)."""
    if not entries:
        return
    from rvmkit.runtime import ort_fast

    make = ort_fast.session_options

    def with_entries(*args: object, **kwargs: object) -> object:
        options = make(*args, **kwargs)  # type: ignore[arg-type]
        for key, value in entries.items():
            options.add_session_config_entry(key, value)
        return options

    ort_fast.session_options = with_entries  # type: ignore[assignment]


def model_alone(threads: int | None, frames: int = 20) -> dict:
    """The engine alone (FrameMatter, as live calls it) on the source's frames: CPU and wall ms a frame
    with `threads` intra-op threads (None: ONNX Runtime's default), under the same load as the runs."""
    import av
    import numpy as np

    from rvmkit.runtime import load_backend
    from rvmkit.runtime.base import FrameMatter

    with av.open(str(bench.DATA / "book.mkv")) as clip:
        images = [frame.to_ndarray(format="rgb24") for _, frame in zip(range(frames), clip.decode(video=0))]
    engine = load_backend("onnxruntime", None, **({"threads": threads} if threads else {}))
    matter = FrameMatter(engine, bench.RATIO, overlapped=True)
    background = np.zeros(3, np.uint8)
    for image in images[:3]:
        matter(image).composite(background)
    cpu, wall = time.process_time(), time.perf_counter()
    for image in images:
        matter(image)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"threads": threads or "default", "size": list(images[0].shape[1::-1]),
            "cpu_ms": round(cpu / len(images) * 1000, 1), "wall_ms": round(wall / len(images) * 1000, 1),
            "loadavg_1min": round(os.getloadavg()[0], 2)}


def classify(comm: str, tid: int, pid: int, dso: str) -> str:
    """The stage a perf sample belongs to, from its thread and shared object."""
    lib = Path(dso).name
    role = {"rvmkit-capture": "capture", "udp-rx": "capture", "rvmkit-output": "output"}.get(comm, "infer")
    if "x264" in lib:
        return "encode: x264"
    if "swscale" in lib:
        return "output: swscale rgb->yuv" if role == "output" else "input: swscale yuv->rgb (frame taken)"
    if "onnxruntime" in lib:
        return "ORT: caller thread" if tid == pid else "ORT: worker threads"
    if role == "capture":
        if "avcodec" in lib:
            return "input: h264 decode"
        if "avformat" in lib or "avutil" in lib:
            return "input: demux (+avutil)"
    if role == "output" and ("avcodec" in lib or "avformat" in lib or "avutil" in lib):
        return "output: mux, libavcodec glue"
    if lib in ("[unknown]", "") or dso.startswith("[JIT]") or lib.startswith("perf-"):
        return {"infer": "downsample kernel (numba)", "output": "tail kernel (numba)"}.get(role,
                                                                                          "capture: jit?")
    if lib.startswith("[kernel"):
        return f"{role}: kernel (syscalls, futex, udp, page faults)"
    if "python" in lib or "multiarray" in lib or lib.endswith(".so") and "/av/" in dso:
        return f"{role}: Python, numpy, PyAV glue"
    return f"{role}: other ({lib})"


#: the stages of the report's table, each a set of `classify` prefixes
STAGES = {
    "capture: demux + decode of every source frame (all capture threads)": ("input: h264", "input: demux",
                                                                            "capture:"),
    "RGB conversion (the frame taken only)": ("input: swscale",),
    "downsample kernel": ("downsample kernel",),
    "ORT: work (caller + workers)": ("ORT: caller", "ORT: worker"),
    "ORT: spin-wait (pause loop)": ("ORT: spin-wait",),
    "inference threads: libc (memmove, unattributed), libstdc++": ("infer: other",),
    "inference threads: Python, kernel": ("infer: Python", "infer: kernel"),
    "tail kernel (output thread)": ("tail kernel",),
    "output: swscale rgb->yuv, x264, mux": ("output: swscale", "encode: x264", "output: mux"),
    "output thread: Python, kernel, libc": ("output:",),
}


def by_stage(per_frame: dict[str, float]) -> dict[str, float]:
    """CPU ms a frame per row of STAGES (each `classify` label counted once, in the first row it fits)."""
    rows = dict.fromkeys(STAGES, 0.0)
    for label, value in per_frame.items():
        row = next((row for row, prefixes in STAGES.items() if label.startswith(prefixes)), "other")
        rows[row] = rows.get(row, 0.0) + value
    return {row: round(value, 1) for row, value in rows.items()}


def perf_samples(data: Path) -> dict[str, int]:
    """perf.data of one process -> samples per stage (`perf report`, by thread, library and address)."""
    report = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "-n", "--sort", "pid,dso,sym"],
                            capture_output=True, text=True, check=True).stdout
    counts: dict[str, int] = defaultdict(int)
    rows = [match for line in report.splitlines() if (match := ROW.match(line)) is not None]
    pid = min(int(match["tid"]) for match in rows)  # the main thread's id is the process's
    for match in rows:
        tid, comm, dso, symbol = int(match["tid"]), match["comm"].strip(), match["dso"], match["sym"].strip()
        stage = classify(comm, tid, pid, dso)
        if stage.startswith("ORT") and is_spin_wait(symbol):
            stage = "ORT: spin-wait (pause loop)"
        counts[stage] += int(match["samples"])
    return dict(counts)


def is_spin_wait(symbol: str) -> bool:
    """A sample just after a `pause` instruction in ONNX Runtime (no symbols): its thread pool waiting
    for work or for the other threads of a parallel section."""
    if not symbol.startswith("0x"):
        return False
    if not _ORT_LIBRARY:
        import onnxruntime

        _ORT_LIBRARY.extend(Path(onnxruntime.__file__).parent.glob("capi/onnxruntime_pybind11_state*.so"))
    address = int(symbol, 16)  # in this library the text segment's addresses are its file offsets
    with open(_ORT_LIBRARY[0], "rb") as library:
        library.seek(max(0, address - 2))
        return library.read(2) == b"\xf3\x90"


_ORT_LIBRARY: list[Path] = []


def profile(lever: str, source: Path, seconds: float, tmp: Path, ports: tuple[int, int],
            keep: Path | None = None) -> dict:
    """One run of the subject under `lever`, perf recording from 4 s after the sender starts."""
    src, dst = (f"udp://127.0.0.1:{port}" for port in ports)
    sent_log, received_log, stats = (tmp / f"{lever}_{name}.json" for name in ("sent", "recv", "stats"))
    data = tmp / f"{lever}.perf"
    receiver = subprocess.Popen(bench._python("--child", "receiver", dst, str(seconds + 120),
                                              str(received_log)), env=bench._env())
    command = [sys.executable, str(Path(__file__).resolve()), "--child", src, dst, str(stats),
               json.dumps(LEVERS[lever])]
    subject = subprocess.Popen(command, env=bench._env(), stderr=subprocess.PIPE, text=True)
    window = max(1.0, seconds - 6)
    try:
        bench._wait_ready(subject, 300)
        time.sleep(0.5)
        sender = subprocess.Popen(bench._python("--child", "sender", str(source), src, str(seconds),
                                                str(sent_log)), env=bench._env())
        time.sleep(4)
        load = os.getloadavg()[0]
        began = time.monotonic()
        subprocess.run(["perf", "record", "-q", "-F", str(PERF_HZ), "-p", str(subject.pid), "-o", str(data),
                        "--", "sleep", str(window)], check=True, capture_output=True)
        ended = time.monotonic()
        sender.wait(seconds + 60)
        time.sleep(1.0)
    finally:
        subject.send_signal(signal.SIGINT)
        subject.wait(60)
    receiver.wait(seconds + 180)
    received = json.loads(received_log.read_text()).values()
    frames = sum(began <= wall <= ended for wall in received)
    samples = perf_samples(data)
    if keep is not None:
        subprocess.run(["cp", str(data), str(keep / f"{lever}.perf")], check=False)
    per_frame = {stage: round(count / PERF_HZ * 1000 / max(frames, 1), 1)
                 for stage, count in sorted(samples.items(), key=lambda item: -item[1])}
    totals = json.loads(stats.read_text())["totals"] if stats.exists() else {}
    return {"lever": lever, "settings": LEVERS[lever], "window_s": round(ended - began, 2),
            "frames_out_in_window": frames, "fps_out": round(frames / (ended - began), 2),
            "cpu_ms_per_frame_total": round(sum(samples.values()) / PERF_HZ * 1000 / max(frames, 1), 1),
            "cores_busy": round(sum(samples.values()) / PERF_HZ / (ended - began), 2),
            "cpu_ms_per_stage": by_stage(per_frame), "cpu_ms_per_frame": per_frame,
            "loadavg_1min": round(load, 2),
            "subject_latency_ms": {key: totals.get(key) for key in ("latency_p50_ms", "latency_p95_ms")},
            "subject_frames": {key: totals.get(key) for key in ("frames_in", "frames_out", "dropped")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--lever", action="append", choices=sorted(LEVERS))
    parser.add_argument("--out", type=Path, default=HERE / "live_profile.json")
    parser.add_argument("--keep", type=Path, help="copy each run's perf.data into this folder")
    args = parser.parse_args()
    if args.child:
        child_subject(*args.child)
        return
    if shutil.which("perf") is None:
        sys.exit("live_profile.py needs perf (Debian: apt-get install linux-perf)")
    results = {"machine": bench.machine(), "model_alone": [model_alone(None), model_alone(1)], "runs": []}
    print(json.dumps(results["model_alone"]), file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="rvmkit-live-profile-") as folder:
        tmp = Path(folder)
        source = bench.make_source(tmp / "src.ts", 640, 480)
        for number, lever in enumerate(args.lever or ["baseline"]):
            print(f"{lever} ...", file=sys.stderr, flush=True)
            run = profile(lever, source, args.seconds, tmp, (47100 + 2 * number, 47101 + 2 * number),
                          args.keep)
            results["runs"].append(run)
            print(json.dumps(run, indent=1), file=sys.stderr, flush=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
