"""Where the fast path's low-res graph spends its time, per op type and per node (ONNX Runtime's profiler).

    .venv/bin/python benchmarks/op_profile.py [--size 1920x1080@0.25] [--frames 12] [--plain] [--top 25]
        [--floor] [--config KEY=VALUE ...] [--json F]

Runs the low-res graph as the fast path does (ORT's optimisations, no spinning) on a held-out frame,
the recurrent state fed back, and sums the profiler's kernel times over the frames after the first two.
`--plain` profiles the graph without `rvmkit.graph.blocked`'s rewrites, to see what they remove. The
profiler adds its own overhead: compare runs of this script with each other, not with compare.py.

`--floor` also measures the sgemm rate (as compare.py's floor does) and splits the kernel time into
classes (convolutions by shape: the 3-channel image's, depthwise, 1x1, dense kxk, the refiner's blocked
ones; then the other ops), each with its FLOPs, the rate it reached and its time above the floor (its
FLOPs at the sgemm rate; 0 FLOPs for the ops that are not convolutions). `--config` adds ORT session
config entries (e.g. session.set_denormal_as_zero=1).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1920x1080@0.25")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--plain", action="store_true", help="without the blocked rewrites")
    parser.add_argument("--top", type=int, default=25, help="costliest nodes listed")
    parser.add_argument("--floor", action="store_true", help="time above the conv floor, by class")
    parser.add_argument("--config", nargs="+", default=[], help="ORT session config entries KEY=VALUE")
    parser.add_argument("--json", type=Path, help="write the rows here")
    parser.add_argument("--one-core", action="store_true",
                        help="one ORT thread; sgemm on one thread in CPU time (load distorts it least)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    import onnxruntime as ort
    import perf

    from rvmkit import bench
    from rvmkit.graph.io import load_onnx
    from rvmkit.graph.lowres import low_res_model
    from rvmkit.runtime import kernels
    from rvmkit.runtime.ort_fast import session_options
    from rvmkit.weights import official_onnx_path

    width, height, ratio = bench.parse_size_ratio(args.size)
    with tempfile.TemporaryDirectory(prefix="rvmkit-profile-") as tmp:
        clip = perf.held_out_clip(Path(tmp) / "clip.mp4", width, height, 1)
        frame = bench.load_frames(clip, width, height, 1)[0]
    model = low_res_model(load_onnx(official_onnx_path()), blocked=not args.plain).SerializeToString()
    options = session_options(1 if args.one_core else None, spinning=False)
    for entry in args.config:
        options.add_session_config_entry(*entry.split("=", 1))
    options.enable_profiling = True
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    small = kernels.downsample(frame, kernels.Geometry(height, width, ratio))
    names = [i.name for i in session.get_inputs()]
    state = [np.zeros((1, 1, 1, 1), np.float32)] * 4
    for _ in range(args.frames):
        state = session.run(None, dict(zip(names, [small, *state], strict=True)))[2:]
    profile = Path(session.end_profiling())
    events = json.loads(profile.read_text())
    profile.unlink()
    by_op: collections.Counter = collections.Counter()
    by_node: collections.Counter = collections.Counter()
    runs = [e for e in events if e.get("cat") == "Session" and e["name"] == "model_run"]
    skip_until = runs[1]["ts"] + runs[1]["dur"] if len(runs) > 2 else 0  # the first two frames warm up
    for event in events:
        kernel = event.get("cat") == "Node" and event["name"].endswith("_kernel_time")
        # an If's time is its branch's, whose nodes are reported too: counted once, there
        if not kernel or event["ts"] < skip_until or event["args"]["op_name"] == "If":
            continue
        by_op[event["args"]["op_name"]] += event["dur"]
        by_node[(event["name"][:-len("_kernel_time")], event["args"]["op_name"])] += event["dur"]
    frames = max(1, len(runs) - 2) if len(runs) > 2 else len(runs)
    total = sum(by_op.values())
    graph = "plain" if args.plain else "blocked"
    print(f"{args.size}, {graph} graph: {total / frames / 1000:.1f} ms of kernels a frame ({frames} frames; "
          f"machine: {bench.machine()['cpu']})")
    for op, micros in by_op.most_common():
        print(f"  {op:22s} {micros / frames / 1000:7.2f} ms  {100 * micros / total:5.1f}%")
    print("costliest nodes:")
    for (node, op), micros in by_node.most_common(args.top):
        print(f"  {micros / frames / 1000:7.2f} ms  {op:14s} {node}")
    result: dict = {"machine": bench.machine(), "size": args.size, "graph": graph, "config": args.config,
                    "threads": 1 if args.one_core else "all",
                    "frames": frames, "kernel_ms": round(total / frames / 1000, 2),
                    "loadavg": Path("/proc/loadavg").read_text().split()[:3],
                    "by_op_ms": {op: round(us / frames / 1000, 2) for op, us in by_op.most_common()}}
    if args.floor:
        rate = perf.sgemm_gflops(reps=8, one_core=args.one_core)
        result["sgemm_gflops"] = round(rate, 1)
        result["classes"] = floor_classes(events, skip_until, frames, rate)
        print(f"sgemm {rate:.1f} GFLOP/s; by class (ms a frame, GFLOP, GFLOP/s reached, ms above the floor):")
        for row in result["classes"]:
            print(f"  {row['class']:34s} {row['ms']:7.2f} ms {row['gflop']:6.3f} {row['gflops']:6.1f} "
                  f"{row['above_floor_ms']:7.2f} ({row['share_of_above']:.0%})")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


def conv_class(name: str, args: dict) -> tuple[str, float]:
    """(class, MACs) of a Conv event from its logical shapes (ORT reports them unblocked)."""
    import numpy as np

    weight = list(args["input_type_shape"][1].values())[0]
    output = list(args["output_type_shape"][0].values())[0]
    macs = float(np.prod(output)) * float(np.prod(weight[1:]))
    if name.startswith("blocked_refiner"):
        kind = "conv: refiner (blocked rewrites)"
    elif weight[1] == 3 and weight[0] > 3:
        kind = "conv: the 3-channel image's"
    elif weight[1] == 1:
        kind = "conv: depthwise kxk"
    elif weight[2] == weight[3] == 1:
        kind = "conv: 1x1 pointwise" + (" (<= 32 out)" if weight[0] <= 32 else " (> 32 out)")
    else:
        kind = "conv: dense kxk"
    return kind, macs


_ELEMENTWISE = "elementwise (Mul, Add, Sub, Relu)"
_COPIES = "Concat / Split / Slice"
_REORDERS = "reorders (NCHW <-> NCHWc)"
OTHER_CLASSES = {"ReorderInput": _REORDERS, "ReorderOutput": _REORDERS, "Resize": "Resize",
                 "Mul": _ELEMENTWISE, "Add": _ELEMENTWISE, "Sub": _ELEMENTWISE, "Relu": _ELEMENTWISE,
                 "Concat": _COPIES, "Split": _COPIES, "Slice": _COPIES, "AveragePool": "pools",
                 "GlobalAveragePool": "pools"}


def floor_classes(events: list[dict], skip_until: float, frames: int, rate: float) -> list[dict]:
    """Kernel time, FLOPs and time above the floor per class (see the module's docstring)."""
    import collections

    micros: collections.Counter = collections.Counter()
    flops: collections.Counter = collections.Counter()
    for event in events:
        kernel = event.get("cat") == "Node" and event["name"].endswith("_kernel_time")
        if not kernel or event["ts"] < skip_until:
            continue
        args = event["args"]
        if args["op_name"] == "If":
            continue
        if args["op_name"] == "Conv":
            kind, macs = conv_class(event["name"], args)
            flops[kind] += 2 * macs
        else:
            kind = OTHER_CLASSES.get(args["op_name"], "other")
        micros[kind] += event["dur"]
    rows = []
    for kind, us in micros.most_common():
        ms = us / frames / 1000
        gflop = flops[kind] / frames / 1e9
        above = ms - 1000 * gflop / rate
        rows.append({"class": kind, "ms": round(ms, 2), "gflop": round(gflop, 3),
                     "gflops": round(gflop / ms * 1000, 1) if ms else 0.0, "above_floor_ms": round(above, 2)})
    total_above = sum(row["above_floor_ms"] for row in rows) or 1.0
    for row in rows:
        row["share_of_above"] = round(row["above_floor_ms"] / total_above, 3)
    return rows


if __name__ == "__main__":
    sys.exit(main())
