"""Issue 22 item 3 (AVX-512): the decoder's four 2x upsamples on ONNX Runtime's blocked (NCHWc) kernels.

    PYTHONPATH=src python benchmarks/upsample_nchwc.py [--size 640x480@0.5] [--reps 5] [--one-core]

On the Xeon the upsamples (Resize, linear, pytorch_half_pixel) take ~9% of the low-res graph's kernel
time and the reorder of their outputs into the next convolution's blocks another ~2.5%
(`op_profile.py`). ONNX Runtime 1.32 runs a linear Resize blocked (nchwc.Upsample) only when its
coordinate mode is half_pixel (the same coordinates as pytorch_half_pixel for any output longer than 1,
which a 2x upsample always has), its input is already blocked, and it is not inside a subgraph: the
fast graph's crop rewrite (`graph/blocked.py`: an If per upsample) keeps it in one. Variants of the
low-res graph, each run alone on held-out frames in rounds alternating the order, median ms a frame:

  current                     the fast path's graph
  no crops                    the If replaced by its no-crop branch (valid only where every decoder size
                              is even: 320x240 is, 480x270 is not), Resize as it is
  no crops, half_pixel        ... with the coordinate mode half_pixel (still NCHW: its input is not blocked)
  no crops, NCHWc Upsample    ... and a 1x1 identity depthwise convolution before each Resize, so its
                              input is blocked and ONNX Runtime makes it an nchwc.Upsample

Each variant's outputs are compared with the current graph's (max abs difference of coef_a, coef_b).
`--one-core`: one ORT thread, process CPU time (what a shared machine's load distorts least).
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def without_crops(model, half_pixel: bool, identity: bool):
    """The low-res graph with each crop If replaced by its no-crop branch (see the module docstring)."""
    import onnx
    from onnx import helper, numpy_helper

    edited = copy.deepcopy(model)
    graph = edited.graph
    channels = {}
    for info in onnx.shape_inference.infer_shapes(edited).graph.value_info:
        dims = info.type.tensor_type.shape.dim
        if len(dims) == 4 and dims[1].HasField("dim_value"):
            channels[info.name] = dims[1].dim_value
    for node in [n for n in graph.node if n.op_type == "If" and n.name.endswith("_crop")]:
        then = next(a.g for a in node.attribute if a.name == "then_branch")
        [resize] = list(then.node)
        source = resize.input[0]
        index = list(graph.node).index(node)
        graph.node.remove(node)
        if identity:
            ones = np.ones((channels[source], 1, 1, 1), np.float32)
            weight = numpy_helper.from_array(ones, f"{node.name}_one")
            graph.initializer.append(weight)
            graph.node.insert(index, helper.make_node("Conv", [source, weight.name], [f"{node.name}_blocked"],
                                                      group=channels[source], kernel_shape=[1, 1]))
            source, index = f"{node.name}_blocked", index + 1
        upsample = helper.make_node("Resize", [source, *resize.input[1:]], [node.output[0]],
                                    name=f"{node.name}_up")
        upsample.attribute.extend(resize.attribute)
        for attribute in upsample.attribute:
            if half_pixel and attribute.name == "coordinate_transformation_mode":
                attribute.s = b"half_pixel"
        graph.node.insert(index, upsample)
    return edited


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="640x480@0.5")
    parser.add_argument("--frames", type=int, default=14)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--one-core", action="store_true")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    import onnxruntime as ort
    import perf

    from rvmkit import bench
    from rvmkit.cache import official_onnx_path
    from rvmkit.graph.io import load_onnx
    from rvmkit.graph.lowres import low_res_model
    from rvmkit.runtime import kernels
    from rvmkit.runtime.ort_session import session_options

    width, height, ratio = bench.parse_size_ratio(args.size)
    base = low_res_model(load_onnx(official_onnx_path()))
    variants = {"current": base, "no crops": without_crops(base, False, False),
                "no crops, half_pixel": without_crops(base, True, False),
                "no crops, NCHWc Upsample": without_crops(base, True, True)}
    with tempfile.TemporaryDirectory(prefix="rvmkit-upsample-") as tmp:
        frames = bench.load_frames(perf.held_out_clip(Path(tmp) / "c.mp4", width, height, args.frames),
                                   width, height, args.frames)
    geometry = kernels.Geometry(height, width, ratio)
    smalls = [kernels.downsample(frame, geometry) for frame in frames]
    threads = 1 if args.one_core else None
    clock = time.process_time if args.one_core else time.perf_counter
    sessions = {name: ort.InferenceSession(model.SerializeToString(), session_options(threads, False),
                                           providers=["CPUExecutionProvider"])
                for name, model in variants.items()}

    def run(session) -> tuple[float, list]:
        names = [i.name for i in session.get_inputs()]
        state, times, outputs = [np.zeros((1, 1, 1, 1), np.float32)] * 4, [], []
        for small in smalls:
            started = clock()
            out = session.run(None, dict(zip(names, [small, *state], strict=True)))
            times.append(1000 * (clock() - started))
            state, outputs = out[2:], [*outputs, out[:2]]
        return statistics.median(times[2:]), outputs

    reference = run(sessions["current"])[1]
    rounds: dict[str, list[float]] = {name: [] for name in sessions}
    loads = []
    for rep in range(args.reps):
        for name in (list(sessions) if rep % 2 == 0 else list(sessions)[::-1]):
            loads.append(os.getloadavg()[0])
            rounds[name].append(round(run(sessions[name])[0], 2))
    print(f"{args.size}, {'one thread, CPU ms' if args.one_core else 'all cores, wall ms'}, "
          f"load {min(loads):.1f}-{max(loads):.1f}")
    for name, session in sessions.items():
        diff = max(float(np.abs(a - b).max()) for ours, theirs in zip(run(session)[1], reference, strict=True)
                   for a, b in zip(ours, theirs, strict=True))
        print(f"  {name:26s} median {statistics.median(rounds[name]):6.1f} ms  rounds {rounds[name]}  "
              f"max diff {diff:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
