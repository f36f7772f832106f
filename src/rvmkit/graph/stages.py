"""The fast path's low-res graph cut in two where the recurrent state comes in.

RVM's encoder (backbone, LR-ASPP, the image pyramid) never reads the recurrent state; only the decoder
and what follows do. Stage 1 is every node that does not depend on a state input, stage 2 the rest, fed
with the tensors stage 1 hands over. Chained, they compute exactly the whole graph. Because stage 1 of
frame t+1 does not wait for frame t, the pipeline runs it in its decode thread while the inference
thread runs stage 2 of frame t: the two cores work on two frames instead of sharing one frame's
small convolutions (benchmarks/stage_split.py, benchmarks/LEVERS.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import helper

from rvmkit.contract import STATE_INPUTS
from rvmkit.errors import RvmkitError
from rvmkit.fileio import write_atomically


@dataclass(frozen=True)
class Stages:
    """Stage 1 (src_sm -> the tensors it hands over, its outputs) and stage 2 (those, src_sm if it reads
    it, the states -> the whole graph's outputs), each a path (cached) or serialized bytes."""

    first: Path | bytes
    second: Path | bytes


def split_by_state(model: onnx.ModelProto) -> tuple[onnx.ModelProto, onnx.ModelProto, list[str]]:
    """(stage 1, stage 2, the tensors stage 1 hands to stage 2). The graph's nodes are in topological
    order (ONNX requires it). Constants stage 2 reads are copied into it rather than handed over."""
    graph = model.graph
    dependent = set(STATE_INPUTS)
    first, second = [], []
    for node in graph.node:
        if any(name in dependent for name in node.input):
            second.append(node)
            dependent.update(node.output)
        else:
            first.append(node)
    if not second:
        raise ValueError("no node reads a recurrent state: not an RVM graph")
    made_first = {name for node in first for name in node.output}
    constants = {name: node for node in first if node.op_type == "Constant" for name in node.output}
    handover: list[str] = []
    copied: list[onnx.NodeProto] = []
    for node in second:
        for name in node.input:
            if name in constants:
                if constants[name] not in copied:
                    copied.append(constants[name])
            elif name in made_first and name not in handover:
                handover.append(name)
    types = {info.name: info.type.tensor_type.elem_type
             for info in onnx.shape_inference.infer_shapes(model).graph.value_info}
    inputs = {value.name: value for value in graph.input}
    read_by_second = {name for node in second for name in node.input}

    def value(name: str) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, types.get(name, onnx.TensorProto.FLOAT), None)

    frame_inputs = [inputs[name] for name in inputs if name not in STATE_INPUTS]
    stage1 = _sub_model(model, first, frame_inputs, [value(name) for name in handover], "stage1")
    stage2 = _sub_model(model, copied + second,
                        [value(name) for name in handover]
                        + [value for value in frame_inputs if value.name in read_by_second]
                        + [inputs[name] for name in STATE_INPUTS], list(graph.output), "stage2")
    return stage1, stage2, handover


def _sub_model(model: onnx.ModelProto, nodes: list, inputs: list, outputs: list, name: str
               ) -> onnx.ModelProto:
    used = {name for node in nodes for name in node.input}
    initializers = [init for init in model.graph.initializer if init.name in used]
    sub = helper.make_model(helper.make_graph(nodes, name, inputs, outputs, initializers),
                            opset_imports=model.opset_import)
    sub.ir_version = model.ir_version
    return sub


def stages_for_session(low_res: Path | bytes) -> Stages:
    """The two stages of the (cached) low-res graph: cached beside it when it is a file (and pruned with
    it), else in memory."""
    if isinstance(low_res, Path):
        paths = tuple(low_res.with_name(f"{low_res.stem}.stage{k}.onnx") for k in (1, 2))
        if all(path.is_file() for path in paths):
            return Stages(*paths)
        model = onnx.load(str(low_res))
    else:
        model = onnx.load_from_string(low_res)
    first, second, _ = split_by_state(model)
    if isinstance(low_res, Path):
        try:
            for path, stage in zip(paths, (first, second), strict=True):
                write_atomically(path, lambda tmp, stage=stage: tmp.write_bytes(stage.SerializeToString()))
            return Stages(*paths)
        except RvmkitError:
            pass  # the cache cannot be written: in memory
    return Stages(first.SerializeToString(), second.SerializeToString())
