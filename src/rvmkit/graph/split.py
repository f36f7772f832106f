"""Cut the low-res graph in two stages that run side by side, one frame apart.

Why: on two cores, one ONNX Runtime session splitting every operator across two threads pays for it in
synchronisation (measured on the AVX-512 Xeon at 640x480: 67 CPU ms a frame on two threads against 58
on one). RVM's recurrence is local: the encoder reads no state, and each decoder block reads only its own
(r4i at 1/16 ... r1i at 1/2). So the graph cuts into a first stage (encoder and the coarse blocks, with
their states) and a second (the finest block from its upsample on, the output block and the refiner, with
r1i): frame N+1's first stage runs on one core while frame N's second runs on the other, each session on
one thread, every operator and weight unchanged (outputs identical to the whole graph's).

The cut: the second stage is the forward closure of its seeds (r1i and the upsample that opens the finest
block), the first stage everything else; the tensors the second reads from the first are handed over.
"""

from __future__ import annotations

from typing import Any

from rvmkit.contract import STATE_INPUTS
from rvmkit.errors import RvmkitError

#: bump when the cut changes, so cached stages are cut again
CUT_VERSION = 1


class UnsplittableGraph(RvmkitError):
    """The graph has no cut this module knows (the whole graph then runs as one session)."""


def reads(node: Any) -> list[str]:
    """The tensors a node reads: its inputs and the outer-scope names its subgraphs (If branches) use."""
    import onnx

    names = [name for name in node.input if name]
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            made = {out for inner in attr.g.node for out in inner.output}
            made |= {init.name for init in attr.g.initializer}
            names += [name for inner in attr.g.node for name in reads(inner) if name not in made]
    return names


def _contains(node: Any, op: str) -> bool:
    import onnx

    return node.op_type == op or any(_contains(inner, op) for attr in node.attribute
                                      if attr.type == onnx.AttributeProto.GRAPH for inner in attr.g.node)


def second_stage_seeds(graph: Any) -> set[str]:
    """r1i and the output of the last upsample (a Resize, or an If holding one) before r1i's first reader:
    the finest decoder block from its upsample on."""
    finest = STATE_INPUTS[0]
    first_reader = next((i for i, node in enumerate(graph.node) if finest in reads(node)), None)
    if first_reader is None:
        raise UnsplittableGraph(f"RVM ONNX: no node reads {finest}")
    upsample = next((node for node in reversed(graph.node[:first_reader]) if _contains(node, "Resize")), None)
    if upsample is None:
        raise UnsplittableGraph("RVM ONNX: no upsample before the finest decoder block")
    return {finest, upsample.output[0]}


def _elem_types(model: Any) -> dict[str, int]:
    """tensor name -> ONNX element type, from shape inference and, where it gives none (through If nodes
    and shape arithmetic), from the producing op."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model).graph
    known = {info.name: info.type.tensor_type.elem_type
             for info in (*inferred.value_info, *inferred.input, *inferred.output)
             if info.type.tensor_type.elem_type}
    known.update({init.name: init.data_type for init in model.graph.initializer})
    made_by = {out: node for node in model.graph.node for out in node.output}

    def of(name: str) -> int:
        if name not in known:
            node = made_by[name]
            op = node.op_type
            if op == "Shape":
                known[name] = onnx.TensorProto.INT64
            elif op == "Cast":
                known[name] = next(attr.i for attr in node.attribute if attr.name == "to")
            elif op == "Constant":
                known[name] = next(attr.t.data_type for attr in node.attribute if attr.name == "value")
            elif op in ("Equal", "Less", "Greater", "Not", "And", "Or"):
                known[name] = onnx.TensorProto.BOOL
            elif op == "If":
                branch = next(attr.g for attr in node.attribute if attr.name == "then_branch")
                index = list(node.output).index(name)
                known[name] = branch.output[index].type.tensor_type.elem_type or onnx.TensorProto.FLOAT
            else:
                known[name] = of(node.input[1] if op == "Where" else node.input[0])
        return known[name]

    return {name: of(name) for name in (*made_by, *known)}


def _part(model: Any, nodes: list[Any], inputs: list[str], outputs: list[str], types: dict[str, int]) -> Any:
    import onnx
    from onnx import helper

    declared = {info.name: info for info in (*model.graph.input, *model.graph.output)}

    def info(name: str) -> Any:
        return declared.get(name) or helper.make_tensor_value_info(name, types[name], None)

    part = onnx.ModelProto()
    part.CopyFrom(model)
    graph = part.graph
    used = {name for node in nodes for name in reads(node)}
    for field, items in ((graph.node, nodes), (graph.input, [info(n) for n in inputs]),
                         (graph.output, [info(n) for n in outputs]),
                         (graph.initializer, [t for t in model.graph.initializer if t.name in used])):
        del field[:]
        field.extend(items)
    del graph.value_info[:]
    return part


def split_stages(model: Any) -> tuple[Any, Any]:
    """(first, second) ONNX models of the low-res graph `model` (a ModelProto, its path or its bytes): the
    first reads src_sm and the coarse states, the second the finest state and the first's handed-over
    tensors; together they make every output of `model`, each output once."""
    import onnx

    if isinstance(model, bytes):
        model = onnx.load_from_string(model)
    elif not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    graph = model.graph
    seeds = second_stage_seeds(graph)
    second_made: set[str] = set(seeds)
    first_nodes: list[Any] = []
    second_nodes: list[Any] = []
    for node in graph.node:  # graph order is topological: the closure is one pass
        if any(name in second_made for name in reads(node)):
            second_nodes.append(node)
            second_made.update(node.output)
        else:
            first_nodes.append(node)
    first_made = {out for node in first_nodes for out in node.output}
    handed = sorted({name for node in second_nodes for name in reads(node) if name in first_made})
    outputs = [out.name for out in graph.output]
    inputs = [inp.name for inp in graph.input]
    first_reads = {name for node in first_nodes for name in reads(node)}
    second_reads = {name for node in second_nodes for name in reads(node)}
    if not handed or not any(out in first_made for out in outputs) or not second_nodes:
        raise UnsplittableGraph("RVM ONNX: the cut leaves a stage empty")
    types = _elem_types(model)
    first = _part(model, first_nodes, [n for n in inputs if n in first_reads],
                  handed + [out for out in outputs if out in first_made], types)
    second = _part(model, second_nodes, [n for n in inputs if n in second_reads] + handed,
                   [out for out in outputs if out not in first_made], types)
    return first, second
