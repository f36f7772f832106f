"""Reduced precision where it could pay (issue 22, item 6): bf16 candidates on a CPU with AMX, against
the default fp32 path (ONNX Runtime, rvmkit's fast path), side by side in one run.

    PYTHONPATH=src .venv/bin/python benchmarks/amx_bf16.py                 # all sections -> amx_bf16.json
    PYTHONPATH=src .venv/bin/python benchmarks/amx_bf16.py --sections model --rounds 5

Candidates (each carries its own recurrent state; fp32 ones are there to split engine from precision):
  ort_fp32          the default: `rvmkit matte`'s fast path (ORT low-res graph + kernels, spinning off)
  ov_fp32_lowres    the same kernels, OpenVINO f32 running the low-res graph (engine alone)
  ov_bf16_lowres    the same kernels, OpenVINO bf16 (AMX) running the low-res graph
  ov_fp16_lowres    the same kernels, OpenVINO f16 (AVX512_FP16) running the low-res graph
  ov_bf16_full      OpenVINO bf16 on the whole official graph (`OpenVINOBackend(precision="bf16")`)
  ov_fp16_full      OpenVINO f16 on the whole official graph
  torch_fp32        the PyTorch model on the CPU, fp32
  torch_bf16        the same under torch.autocast(bfloat16) (oneDNN, AMX)
  torch_bf16_enc    autocast on the backbone only (decoder, recurrent state and refiner fp32)
  torch_bf16_b7     autocast on backbone blocks 7-16 only (MobileNetV3 `features[7:]`, issue 15's b7
                    config: the stem, blocks 1-6, LR-ASPP, decoder and refiner fp32), each block's
                    output back in fp32
ONNX Runtime offers no bf16 on x86 (its CPU provider has no bf16 Conv), so it has no candidate.

Sections:
  model    model-only ms/frame at 640x480 @0.5 and 1920x1080 @0.25 on book frames: rounds of all
           candidates in turn (order rotated each round), one frame each, the median per candidate; the
           input conversion is not timed (uint8 frame for the fast-path kernels, float NCHW otherwise);
  metrics  each candidate's alpha against ort_fp32 in RVM's evaluation units (MAD, MSE, Grad scaled to
           512x288 pixels, dtSSD: `rvmkit.export.verify.AlphaMetrics`) over --frames real frames of each
           clip, state carried; the gate: every metric within 10% of RVM MobileNetV3's own error on
           VideoMatte 512x288 (MAD 6.08, MSE 1.47, Grad 0.88, dtSSD 1.36);
  whole    `rvmkit matte` as fresh processes, 1080p @0.25, --whole-frames held-out frames (sister, milk,
           book), composition + alpha H.264 4 Mbps: the default against the same command with the fast
           path's low-res engine swapped for OpenVINO bf16 / fp16 (this script, --child), order rotated
           each rep; wall seconds and the process's CPU seconds (user + system: on a shared machine the
           steadier number; on 2 dedicated cores a CPU-bound run's wall time follows it). Speed gate:
           >= 1.3x.
Machine (CPU model, flags), versions and the 1-minute load before/after each measurement are recorded.

Result (amx_bf16.json, amx_bf16_whole.json; Intel Xeon with AMX, 2 vCPUs, heavily shared; LEVERS.md,
"Reduced precision on AMX (issue 22)"): ov_bf16_lowres makes the model ~1.5x faster at 1080p but fails
dtSSD (0.16-0.19 > 0.136) and the whole process is ~1.2x faster in CPU seconds (< 1.3x); fp16 passes every
metric but is slower than fp32; torch is slower in any precision. No reduced mode is offered.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # benchmarks/perf.py
DATA = HERE.parent.parent / "shared" / "data"
SIZES = ((640, 480, 0.5), (1920, 1080, 0.25))
CANDIDATES = ("ort_fp32", "ov_fp32_lowres", "ov_bf16_lowres", "ov_fp16_lowres", "ov_bf16_full",
              "ov_fp16_full", "torch_fp32", "torch_bf16", "torch_bf16_enc", "torch_bf16_b7")
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")
SPEED_GATE = 1.3


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def machine() -> dict:
    from rvmkit.runtime.cpu import _cpuinfo_field, cpu_flags

    versions = {}
    for name in ("numpy", "onnxruntime", "openvino", "torch", "numba", "av"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = None
    flags = cpu_flags() or set()
    return {"cpu": _cpuinfo_field("model name"), "cores": os.cpu_count(), "platform": platform.platform(),
            "cpu_flags": [f for f in FLAGS if f in flags], "python": platform.python_version(), **versions}


# ---------------------------------------------------------------------------------------------
# Candidates: step(input, state, ratio) -> (fgr, pha, state), as `rvmkit.runtime.base.Backend`


def ov_low_res_class() -> type:
    """The fast path with OpenVINO running its low-res graph (the same kernels before and after)."""
    from rvmkit.graph.lowres import low_res_model_path
    from rvmkit.runtime import kernels
    from rvmkit.runtime.openvino import compile_cpu
    from rvmkit.runtime.ort_fast import FastOnnxRuntimeBackend

    class OpenVINOLowRes(FastOnnxRuntimeBackend):
        precision = os.environ.get("AMX_BF16_PRECISION", "bf16")

        def __init__(self, model_path: Any, *, device: str = "cpu", threads: int | None = None,
                     precision: str | None = None, **_: Any) -> None:
            kernels.warm_up()
            self.source, self.dtype, self._geometry = Path(model_path), np.float32, None
            # the graph whose convolutions are the model's (ORT's blocked rewrites are slower in OpenVINO)
            graph = low_res_model_path(model_path, split_convs=False, blocked=False)
            self.compiled = compile_cpu(graph, precision or self.precision, threads)
            self.requests = [self.compiled.create_infer_request() for _ in range(2)]
            self._turn = 0

        def infer_low_res(self, src_sm: np.ndarray, state: Any) -> tuple[np.ndarray, np.ndarray, Any]:
            import openvino as ov

            request = self.requests[self._turn]
            self._turn ^= 1  # state tensors of frame t stay in the other request's memory
            request.set_tensor("src_sm", ov.Tensor(np.ascontiguousarray(src_sm, np.float32)))
            if state is None:
                state = [ov.Tensor(np.zeros((1, 1, 1, 1), np.float32)) for _ in range(4)]
            for name, tensor in zip(("r1i", "r2i", "r3i", "r4i"), state, strict=True):
                request.set_tensor(name, tensor)
            request.infer()
            coef = [np.array(request.get_tensor(n).data, np.float32) for n in ("coef_a", "coef_b")]
            return coef[0], coef[1], [request.get_tensor(n) for n in ("r1o", "r2o", "r3o", "r4o")]

        def states(self, state: Any) -> list[np.ndarray]:
            return [np.array(t.data, np.float32) for t in state]

        def close(self) -> None:
            self.requests, self.compiled = [], None

    return OpenVINOLowRes


def torch_backend(autocast: str | None) -> Any:
    """The torch backend; autocast 'all' (the whole step) or 'backbone' (the encoder only) in bf16."""
    import torch

    from rvmkit.runtime.torch import TorchBackend

    class Bf16(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: Any) -> Any:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = self.inner(*args)
            return [o.float() for o in out] if isinstance(out, (list, tuple)) else out.float()

    backend = TorchBackend(None, device="cpu")
    if autocast == "backbone":
        backend.model.backbone = Bf16(backend.model.backbone)
    elif autocast == "b7":
        features = backend.model.backbone.features
        for index in range(7, len(features)):
            features[index] = Bf16(features[index])
    elif autocast == "all":
        original = backend.model.forward_frame

        def forward_frame(*args: Any, **kwargs: Any) -> list[Any]:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = original(*args, **kwargs)
            return [o.float() for o in out]  # fgr, pha and the state handed back in fp32

        backend.model.forward_frame = forward_frame
    return backend


def load(name: str, official: Path) -> Any:
    from rvmkit.runtime.openvino import OpenVINOBackend
    from rvmkit.runtime.ort_fast import FastOnnxRuntimeBackend

    if name == "ort_fp32":
        return FastOnnxRuntimeBackend(official)
    if name.endswith("_lowres"):
        return ov_low_res_class()(official, precision=name.split("_")[1])
    if name.endswith("_full"):
        return OpenVINOBackend(official, precision=name.split("_")[1])
    return torch_backend({"torch_fp32": None, "torch_bf16": "all", "torch_bf16_enc": "backbone",
                          "torch_bf16_b7": "b7"}[name])


def as_input(name: str, frame: np.ndarray) -> np.ndarray:
    from rvmkit.runtime.base import to_input

    return frame if name == "ort_fp32" or name.endswith("_lowres") else to_input(frame)


# ---------------------------------------------------------------------------------------------
# Sections


def parse_size(text: str) -> tuple[int, int, float]:
    """'640x480@0.5' -> (640, 480, 0.5)."""
    size, _, ratio = text.partition("@")
    width, _, height = size.partition("x")
    return int(width), int(height), float(ratio)


def model_section(names: list[str], official: Path, rounds: int) -> list[dict]:
    from rvmkit.export.verify import read_clip, resize_rgb

    book = read_clip(DATA / "book.mkv", rounds + 2)
    backends = {name: load(name, official) for name in names}
    rows = []
    for width, height, ratio in SIZES:
        frames = [resize_rgb(f, width, height) for f in book]
        inputs = {name: [as_input(name, f) for f in frames] for name in names}
        states: dict[str, Any] = dict.fromkeys(names)
        times: dict[str, list[float]] = {name: [] for name in names}
        load_before = loadavg()
        for k in range(len(frames)):
            order = names[k % len(names):] + names[:k % len(names)]
            for name in order:
                started = time.perf_counter()
                _, _, states[name] = backends[name].step(inputs[name][k], states[name], ratio)
                if k >= 2:  # two warm-up frames
                    times[name].append(1000 * (time.perf_counter() - started))
        base = statistics.median(times["ort_fp32"])
        for name in names:
            ms = statistics.median(times[name])
            rows.append({"size": f"{width}x{height}", "ratio": ratio, "candidate": name, "ms": round(ms, 1),
                         "runs_ms": [round(t, 1) for t in times[name]],
                         "speedup_vs_ort_fp32": round(base / ms, 3),
                         "load_before": load_before, "load_after": loadavg()})
            print(f"  model {width}x{height} {name:15s} {ms:7.1f} ms  x{base / ms:.2f} vs ort_fp32",
                  flush=True)
    return rows


def metrics_section(names: list[str], official: Path, clips: list[str], count: int,
                    sizes: tuple[tuple[int, int, float], ...] = SIZES) -> list[dict]:
    from rvmkit.export.verify import AlphaMetrics, read_clip, resize_rgb, within_budget

    backends = {name: load(name, official) for name in names}
    rows = []
    for clip in clips:
        source = read_clip(DATA / f"{clip}.mkv", count)
        for width, height, ratio in sizes:
            load_before = loadavg()
            metrics = {name: AlphaMetrics() for name in names if name != "ort_fp32"}
            states: dict[str, Any] = dict.fromkeys(names)
            for frame in source:
                frame = resize_rgb(frame, width, height)
                _, exact, states["ort_fp32"] = backends["ort_fp32"].step(frame, states["ort_fp32"], ratio)
                for name in metrics:
                    _, pha, states[name] = backends[name].step(as_input(name, frame), states[name], ratio)
                    metrics[name].add(pha, exact)
            for name, metric in metrics.items():
                result = {k: round(v, 5) for k, v in metric.result().items()}
                ok = within_budget(result)
                rows.append({"clip": clip, "size": f"{width}x{height}", "ratio": ratio, "candidate": name,
                             "frames": metric.frames, **result, "within_10pct": ok,
                             "passes": all(ok.values()),
                             "load_before": load_before, "load_after": loadavg()})
                print(f"  metrics {clip:6s} {width}x{height} {name:15s} "
                      + " ".join(f"{k} {result[k]:.4f}{'' if ok.get(k, True) else '>'}"
                                 for k in ("MAD", "MSE", "Grad", "dtSSD")), flush=True)
    return rows


def whole_section(tmp: Path, frames: int, reps: int, variants: list[str]) -> dict:
    from perf import held_out_clip, rvmkit_argv, timed_process

    clip = held_out_clip(tmp / "held_out_1080p.mp4", 1920, 1080, frames)

    def matte(name: str) -> list[str]:
        return rvmkit_argv(clip, tmp / f"{name}_c.mp4", tmp / f"{name}_a.mp4", 0.25, "--quiet")

    argv = {"ort_fp32": matte("ort_fp32")}
    for name in variants:  # this script as `python -m rvmkit`, the low-res engine swapped
        argv[name] = [sys.executable, str(Path(__file__).resolve()), "--child", name.split("_")[1], "--",
                      *matte(name)[3:]]
    runs: dict[str, list[dict]] = {name: [] for name in argv}
    for rep in range(reps):
        names = list(argv)
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            load_before, cpu_before = loadavg(), _children_cpu()
            seconds = timed_process(argv[name])
            cpu_s = _children_cpu() - cpu_before
            runs[name].append({"s": round(seconds, 3), "cpu_s": round(cpu_s, 3), "load_before": load_before,
                               "load_after": loadavg()})
            print(f"  whole {name:15s} {seconds:7.2f} s ({1000 * seconds / frames:.1f} ms/frame), "
                  f"CPU {cpu_s:6.2f} s, load {load_before:.2f}", flush=True)
    median = {name: statistics.median(r["s"] for r in values) for name, values in runs.items()}
    cpu_median = {name: statistics.median(r["cpu_s"] for r in values) for name, values in runs.items()}
    return {"frames": frames, "downsample_ratio": 0.25, "runs": runs, "median_s": median,
            "median_cpu_s": cpu_median,
            "speedup_vs_ort_fp32": {name: round(median["ort_fp32"] / median[name], 3) for name in variants},
            "cpu_ratio_vs_ort_fp32": {name: round(cpu_median["ort_fp32"] / cpu_median[name], 3)
                                      for name in variants}}


def _children_cpu() -> float:
    """User + system CPU seconds of the finished child processes so far: the whole process's CPU work,
    which the other jobs on a shared machine disturb less than its wall time."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def child(precision: str, argv: list[str]) -> int:
    """`rvmkit matte` with the fast path's low-res engine swapped for OpenVINO in `precision`."""
    from rvmkit.runtime import ort_fast

    cls = ov_low_res_class()
    cls.precision = precision
    ort_fast.FastOnnxRuntimeBackend = cls  # what load_backend builds for onnxruntime on the CPU
    from rvmkit.cli import main

    return main(argv)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", nargs="+", default=["model", "metrics", "whole"],
                        choices=["model", "metrics", "whole"])
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=CANDIDATES)
    parser.add_argument("--rounds", type=int, default=7, help="timed frames per candidate and size")
    parser.add_argument("--clips", nargs="+", default=["milk", "sister"])
    parser.add_argument("--metric-candidates", nargs="+", choices=CANDIDATES,
                        default=[n for n in CANDIDATES if n != "torch_fp32"],
                        help="candidates for the metrics (default all but torch_fp32, fp32 like ORT: ~0)")
    parser.add_argument("--metric-sizes", nargs="+", type=parse_size, default=list(SIZES),
                        help="WxH@ratio for the metrics (default 640x480@0.5 1920x1080@0.25)")
    parser.add_argument("--frames", type=int, default=40, help="frames per clip for the metrics (>= 30)")
    parser.add_argument("--whole-frames", type=int, default=150)
    parser.add_argument("--reps", type=int, default=3, help="whole-process runs per variant")
    parser.add_argument("--whole-variants", nargs="+", default=["ov_bf16_lowres", "ov_fp16_lowres"],
                        choices=["ov_fp32_lowres", "ov_bf16_lowres", "ov_fp16_lowres"])
    parser.add_argument("--out", type=Path, default=HERE / "amx_bf16.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        raise SystemExit(child(args.child, args.rest))
    for name, value, low in (("--rounds", args.rounds, 1), ("--frames", args.frames, 2),
                             ("--whole-frames", args.whole_frames, 10), ("--reps", args.reps, 1)):
        if value < low:
            parser.error(f"{name} {value}: must be at least {low}")
    from rvmkit.weights import official_onnx_path

    names = ["ort_fp32", *[n for n in args.candidates if n != "ort_fp32"]]
    official = official_onnx_path()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result: dict[str, Any] = {"machine": machine(), "started": started, "command": " ".join(sys.argv),
                              "load_start": loadavg()}
    print(json.dumps(result["machine"]), flush=True)
    if "model" in args.sections:
        result["model"] = model_section(names, official, args.rounds)
    if "metrics" in args.sections:
        chosen = ["ort_fp32", *[n for n in args.metric_candidates if n != "ort_fp32"]]
        result["metrics"] = metrics_section(chosen, official, args.clips, args.frames, args.metric_sizes)
    if "whole" in args.sections:
        with tempfile.TemporaryDirectory(prefix="amx_bf16_") as tmp:
            result["whole"] = whole_section(Path(tmp), args.whole_frames, args.reps, args.whole_variants)
    result["load_end"] = loadavg()
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
