"""Experiment (issue 15 / issue 12): RVM's encoder never reads the recurrent state, so frame t+1's encoder
can run on one core while frame t's decoder runs on the other. Is that faster than one session using both
cores (intra-op threads)?

    .venv/bin/python benchmarks/stage_split.py [--frames 24] [--sizes 1920x1080@0.25 640x480@0.5]

The fast path's low-res graph is cut in two: stage 1 is every node that does not depend on a state input
(backbone, LR-ASPP, the image pyramid), stage 2 the rest (decoder, refiner). Both stages, chained, give
the same bits as the whole graph (checked here). Timed, on held-out frames: the whole graph in one
session (threads = cores, as rvmkit runs it), and the two stages pipelined over frames in two threads,
each stage a one-thread session. Throughput in ms per frame (wall time / frames).

Result (benchmarks/stage_split.json, quiet AMD EPYC Zen 1, 2 vCPUs): the pipelined stages are slower
(1080p 0.25: 209.8 vs 167.9 ms; 640x480 0.5: 122.9 vs 98.8 ms), and `rvmkit matte` end to end gained
nothing (36.0-36.3 s either way on 150 frames at 1080p): not kept (benchmarks/LEVERS.md). On a loaded
machine the stages looked 1.2-1.4x faster: two busy threads simply took more of the contended CPU.
"""

from __future__ import annotations

import argparse
import queue
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

HERE = Path(__file__).resolve().parent
STATES = ("r1i", "r2i", "r3i", "r4i")


def split_by_state(model: onnx.ModelProto) -> tuple[onnx.ModelProto, onnx.ModelProto, list[str]]:
    """(stage 1, stage 2, the tensors stage 1 hands to stage 2). Nodes are in topological order."""
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    dependent = set(STATES)
    first, second = [], []
    for node in graph.node:
        if any(name in dependent for name in node.input):
            second.append(node)
            dependent.update(node.output)
        else:
            first.append(node)
    made_by_first = {out for node in first for out in node.output}
    constants = {out: node for node in first if node.op_type == "Constant" for out in node.output}
    boundary: list[str] = []
    copied = []
    for node in second:
        for name in node.input:
            if name in constants and constants[name] not in copied:
                copied.append(constants[name])
            elif name in made_by_first and name not in constants and name not in boundary:
                boundary.append(name)
    graph_inputs = {value.name: value for value in graph.input}
    passthrough = [name for node in second for name in node.input if name in graph_inputs
                   and name not in STATES]

    def sub(nodes: list, inputs: list, outputs: list, name: str) -> onnx.ModelProto:
        used = {name for node in nodes for name in node.input}
        sub_graph = helper.make_graph(nodes, name, inputs, outputs,
                                      [init for key, init in initializers.items() if key in used])
        out = helper.make_model(sub_graph, opset_imports=model.opset_import)
        out.ir_version = model.ir_version
        return out

    inferred = onnx.shape_inference.infer_shapes(model).graph.value_info
    types = {info.name: info.type.tensor_type.elem_type for info in inferred}

    def value(name: str) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, types.get(name, onnx.TensorProto.FLOAT), None)

    stage1 = sub(first, [graph_inputs[n] for n in graph_inputs if n not in STATES],
                 [value(n) for n in boundary], "stage1")
    stage2_inputs = [value(n) for n in boundary] + [graph_inputs[n] for n in dict.fromkeys(passthrough)] + \
        [graph_inputs[n] for n in STATES]
    stage2 = sub(copied + second, stage2_inputs, list(graph.output), "stage2")
    return stage1, stage2, boundary


class Runs:
    """The same frames through the whole graph, or through the two stages pipelined in two threads."""

    def __init__(self, smalls: list, whole, stage1, stage2, boundary: list[str]) -> None:
        self.smalls, self.whole_session, self.stage1, self.stage2 = smalls, whole, stage1, stage2
        self.boundary = boundary
        self.outputs = [o.name for o in whole.get_outputs()]
        self.inputs2 = [i.name for i in stage2.get_inputs()]
        self.zeros = np.zeros((1, 1, 1, 1), np.float32)

    def whole(self) -> tuple[float, list]:
        state, results = [self.zeros] * 4, []
        started = time.perf_counter()
        for small in self.smalls:
            out = self.whole_session.run(self.outputs, {"src_sm": small, **dict(zip(STATES, state))})
            state = out[2:]
            results.append(out[:2])
        return time.perf_counter() - started, results

    def _first(self, handoff: queue.Queue) -> None:
        for small in self.smalls:
            features = self.stage1.run(self.boundary, {"src_sm": small})
            handoff.put({**dict(zip(self.boundary, features)), "src_sm": small})
        handoff.put(None)

    def split(self) -> tuple[float, list]:
        handoff: queue.Queue = queue.Queue(maxsize=2)
        state, results = [self.zeros] * 4, []
        started = time.perf_counter()
        producer = threading.Thread(target=self._first, args=(handoff,))
        producer.start()
        while (feed := handoff.get()) is not None:
            feed.update(zip(STATES, state))
            out = self.stage2.run(self.outputs, {name: feed[name] for name in self.inputs2})
            state = out[2:]
            results.append(out[:2])
        producer.join()
        return time.perf_counter() - started, results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--sizes", nargs="+", default=["1920x1080@0.25", "640x480@0.5"])
    parser.add_argument("--json", type=Path, default=HERE / "stage_split.json")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    import onnxruntime as ort
    import perf

    from rvmkit import bench
    from rvmkit.cache import official_onnx_path
    from rvmkit.graph.lowres import low_res_model_for_session
    from rvmkit.runtime import kernels

    lowres = onnx.load(str(low_res_model_for_session(official_onnx_path())))
    stage1, stage2, boundary = split_by_state(lowres)

    def session(model: onnx.ModelProto | str, threads: int | None) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
        data = model if isinstance(model, str) else model.SerializeToString()
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])

    whole = session(str(low_res_model_for_session(official_onnx_path())), None)
    rows = []
    for text in args.sizes:
        width, height, ratio = bench.parse_size_ratio(text)
        with tempfile.TemporaryDirectory(prefix="rvmkit-split-") as tmp:
            clip = perf.held_out_clip(Path(tmp) / "clip.mp4", width, height, args.frames)
            frames = bench.load_frames(clip, width, height, args.frames)
        geometry = kernels.Geometry(height, width, ratio)
        runs = Runs([kernels.downsample(frame, geometry) for frame in frames], whole,
                    session(stage1, 1), session(stage2, 1), boundary)
        timings: dict[str, list[float]] = {"whole graph, one session": [], "two stages pipelined": []}
        for rep in range(3):
            for name, run in (("whole graph, one session", runs.whole), ("two stages pipelined", runs.split)):
                seconds, results = run()
                timings[name].append(seconds)
                if rep == 0 and name == "two stages pipelined":
                    reference = runs.whole()[1]
                    same = all(np.array_equal(a, b) for r, q in zip(results, reference) for a, b in zip(r, q))
                    print(f"  {text}: the stages give the whole graph's bits: {same}", flush=True)
        for name, values in timings.items():
            rows.append({"size": f"{width}x{height}", "ratio": ratio, "variant": name,
                         "ms_per_frame": round(1000 * min(values) / len(frames), 1)})
            print(f"  {text} {name}: {rows[-1]['ms_per_frame']} ms/frame", flush=True)
    perf.save_rows(args.json, rows, ["size", "ratio", "variant", "ms_per_frame"],
                   boundary_tensors=len(boundary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
