"""Where the fast path's low-res graph spends its time, per op type and per node (ONNX Runtime's profiler).

    .venv/bin/python benchmarks/op_profile.py [--size 1920x1080@0.25] [--frames 12] [--plain] [--top 25]

Runs the low-res graph as the fast path does (ORT's optimisations, no spinning) on a held-out frame,
the recurrent state fed back, and sums the profiler's kernel times over the frames after the first two.
`--plain` profiles the graph without `rvmkit.graph.blocked`'s rewrites, to see what they remove. The
profiler adds its own overhead: compare runs of this script with each other, not with compare.py.
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
    options = session_options()
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
