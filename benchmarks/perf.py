"""Issue 15's measurements, used by compare.py: whole processes, start-up, and the convolution floor.

- whole processes: `rvmkit matte` and the naive loop (`python -m rvmkit.naive`), each a fresh process
  timed from launch to exit (start-up, model load, encoder flush included), alternating, on a held-out
  clip (sister, milk, then book: the levers were tuned on book);
- start-up: `rvmkit matte` under a pseudo-terminal, so its progress line draws; the first draw comes
  when the first frame has been written: that instant, minus launch, is "command to first frame".
  `-X importtime` gives what the imports cost, by top-level module;
- floor: the model's convolution FLOPs (from ONNX Runtime's profile of the unoptimised low-res graph:
  every Conv's real input, weight and output shapes) at a measured sgemm rate (ONNX Runtime's MatMul,
  the MLAS kernels its convolutions run on, same threads).
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
HELD_OUT = ("sister.mkv", "milk.mkv", "book.mkv")


def held_out_clip(dest: Path, width: int, height: int, frames: int) -> Path:
    from rvmkit import bench

    return bench.make_clip([DATA / name for name in HELD_OUT], dest, width, height, frames)


def rvmkit_argv(clip: Path, comp: Path, alpha: Path, ratio: float, *extra: str) -> list[str]:
    return [sys.executable, "-m", "rvmkit", "matte", str(clip), "--output-composition", str(comp),
            "--output-alpha", str(alpha), "--downsample-ratio", str(ratio), "--output-video-mbps", "4",
            "--overwrite", *extra]


def naive_argv(clip: Path, comp: Path, alpha: Path, ratio: float) -> list[str]:
    from rvmkit.weights import official_onnx_path

    return [sys.executable, "-m", "rvmkit.naive", str(clip), str(comp), str(alpha), str(official_onnx_path()),
            str(ratio)]


def timed_process(argv: list[str], timeout: float = 1800) -> float:
    """Wall seconds from launch to exit; a failed run is an error, not a number."""
    started = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} ... failed ({result.returncode}): {result.stderr[-500:]}")
    return seconds


def whole_process(clip: Path, tmp: Path, ratio: float, reps: int, frames: int) -> dict:
    """Both pipelines as fresh processes, alternating order, best of `reps` each."""
    runs: dict[str, list[float]] = {"naive": [], "rvmkit": []}
    argv = {"naive": naive_argv(clip, tmp / "naive_c.mp4", tmp / "naive_a.mp4", ratio),
            "rvmkit": rvmkit_argv(clip, tmp / "rvmkit_c.mp4", tmp / "rvmkit_a.mp4", ratio, "--quiet")}
    for rep in range(reps):
        for name in (("naive", "rvmkit") if rep % 2 == 0 else ("rvmkit", "naive")):
            seconds = timed_process(argv[name])
            runs[name].append(round(seconds, 3))
            print(f"  whole process {name:6s} {seconds:7.2f} s ({1000 * seconds / frames:.1f} ms/frame)",
                  flush=True)
    best = {name: min(values) for name, values in runs.items()}
    return {"frames": frames, "seconds": best, "runs": runs,
            "ratio": round(best["naive"] / best["rvmkit"], 3),
            "outputs": {name: {"composition": str(tmp / f"{name}_c.mp4")} for name in runs}}


def first_frame(argv: list[str], timeout: float = 120) -> tuple[float, float]:
    """(wall s, process CPU s) from launch to the first progress draw on a pseudo-terminal (drawn once the
    first frame is written). CPU seconds (user + system of all its threads, from /proc) are what a busy
    shared machine distorts least."""
    leader, follower = pty.openpty()
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    seen, first, cpu = b"", None, None
    tick = os.sysconf("SC_CLK_TCK")
    try:
        while time.perf_counter() - started < timeout and first is None:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                seen += os.read(leader, 4096)
            except OSError:
                break
            if b" frames" in seen:
                first = time.perf_counter() - started
                fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
                cpu = (int(fields[11]) + int(fields[12])) / tick
        while True:  # drain, so the child never blocks on a full terminal
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    if os.read(leader, 4096):
                        continue
                except OSError:
                    pass
            if process.poll() is not None:
                break
    finally:
        process.wait(timeout=timeout)
        os.close(leader)
    if process.returncode != 0 or first is None or cpu is None:
        raise RuntimeError(f"no first frame seen (exit {process.returncode}): {seen[-300:]!r}")
    return first, cpu


def first_frame_seconds(argv: list[str], timeout: float = 120) -> float:
    """Launch -> the first progress draw on a pseudo-terminal (drawn once the first frame is written)."""
    return first_frame(argv, timeout)[0]


def import_times(argv: list[str]) -> dict:
    """`python -X importtime`: the total and the five costliest top-level imports (cumulative ms)."""
    result = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], capture_output=True, text=True,
                            timeout=300)
    top: list[tuple[int, str]] = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self, cumulative, name = line[len("import time:"):].split("|")
        if not name.startswith("  "):  # depth 0: the name follows exactly one space
            top.append((int(cumulative), name.strip()))
    top.sort(reverse=True)
    return {"total_ms": round(sum(us for us, _ in top) / 1000, 1),
            "top_ms": {name: round(us / 1000, 1) for us, name in top[:5]}}


def startup(clip: Path, tmp: Path, ratio: float, reps: int) -> dict:
    """Command to first frame (best and all of `reps`), and the imports' share."""
    argv = rvmkit_argv(clip, tmp / "s_c.mp4", tmp / "s_a.mp4", ratio)
    firsts = [round(first_frame_seconds(argv), 3) for _ in range(reps)]
    print(f"  start-up: first frame after {min(firsts):.3f} s (runs {firsts})", flush=True)
    return {"first_frame_s": min(firsts), "runs": firsts, "imports": import_times(argv)}


def conv_flops(width: int, height: int, ratio: float) -> float:
    """FLOPs of every Conv in the low-res graph for one frame (2 x MACs), from real shapes."""
    import onnxruntime as ort

    from rvmkit.cache import official_onnx_path
    from rvmkit.graph.io import load_onnx
    from rvmkit.graph.lowres import low_res_model
    from rvmkit.runtime import kernels

    # the model's own convolutions: without the blocked rewrites' 0/1 copies (rvmkit.graph.blocked)
    model = low_res_model(load_onnx(official_onnx_path()), blocked=False).SerializeToString()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.enable_profiling = True
    options.log_severity_level = 3
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    small = kernels.downsample(np.zeros((height, width, 3), np.uint8), kernels.Geometry(height, width, ratio))
    zeros = np.zeros((1, 1, 1, 1), np.float32)
    names = [i.name for i in session.get_inputs()]
    state = [zeros] * 4
    for _ in range(2):  # the second frame has full-size states
        out = session.run(None, dict(zip(names, [small, *state])))
        state = out[2:]
    profile = Path(session.end_profiling())
    flops = 0.0
    for event in json.loads(profile.read_text()):
        args = event.get("args", {})
        if event.get("cat") != "Node" or args.get("op_name") != "Conv" or "_kernel_time" not in event["name"]:
            continue
        weight = list(args["input_type_shape"][1].values())[0]
        output = list(args["output_type_shape"][0].values())[0]
        flops += 2.0 * float(np.prod(output)) * float(np.prod(weight[1:]))
    profile.unlink(missing_ok=True)
    return flops / 2  # two frames, the same conv shapes (zero states are broadcast before any conv)


def sgemm_gflops(size: int = 1024, reps: int = 8, one_core: bool = False) -> float:
    """ONNX Runtime MatMul (MLAS sgemm) on `size`^3, best of `reps`, default threads (`one_core`: one
    thread, timed in process CPU time)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "sgemm",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, [size, size])
                               for n in "ab"],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [size, size])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if one_core:
        options.intra_op_num_threads = 1
    clock = time.process_time if one_core else time.perf_counter
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {n: rng.standard_normal((size, size), dtype=np.float32) for n in "ab"}
    session.run(None, feeds)
    best = float("inf")
    for _ in range(reps):
        started = clock()
        session.run(None, feeds)
        best = min(best, clock() - started)
    return 2.0 * size ** 3 / best / 1e9


def floor(width: int, height: int, ratio: float, model_ms: float, rate: float | None = None) -> dict:
    """The model's conv FLOPs at `rate` GFLOP/s (measured here when None) against `model_ms`."""
    gflop = conv_flops(width, height, ratio) / 1e9
    rate = rate or sgemm_gflops()
    floor_ms = 1000 * gflop / rate
    return {"conv_gflop": round(gflop, 3), "sgemm_gflops": round(rate, 1), "floor_ms": round(floor_ms, 1),
            "model_ms": model_ms, "model_over_floor": round(model_ms / floor_ms, 2)}


def save_rows(path: Path, rows: list[dict], columns: list[str], **fields: object) -> None:
    """Write {machine, loadavg, **fields, rows} as JSON (atomically) and print the rows as a table: the
    record every benchmark script here keeps beside its numbers."""
    from rvmkit import bench
    from rvmkit.fileio import write_atomically

    result = {"machine": bench.machine(), "loadavg": Path("/proc/loadavg").read_text().split()[:3], **fields,
              "rows": rows}
    write_atomically(path, lambda temp: temp.write_text(json.dumps(result, indent=2) + "\n"))
    print(bench.format_table(rows, columns))
