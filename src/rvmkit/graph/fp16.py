"""float32 -> float16 graph conversion, so float16 models can be exported without a GPU.

Like the official fp16 RVM models, every float tensor becomes float16 (inputs and outputs too),
except what ONNX requires in float32: Resize's `scales` (and its `roi`, kept as exported). A
constant shared between a Resize and arithmetic is split into a float32 and a float16 copy.

Pure float16 RVM (like the official fp16 models) differs from float32 by up to ~4.7e-2 in pha
at 1080p: the high-resolution start of the encoder is the sensitive part. Keeping the src
downsampling, normalisation and the stride-2/4 encoder blocks in float32 (KEEP_FLOAT32) brings
fgr/pha within ~1.2e-2 of the float32 model at a small cost (those blocks are cheap).
"""

from __future__ import annotations

from typing import Any

import numpy as np

# (op_type, input index) slots that must keep their float32 constants
_FLOAT32_SLOTS = {("Resize", 1), ("Resize", 2)}
_FP16_MAX = float(np.finfo(np.float16).max)
_STEM = ("/Resize", "/backbone/Sub", "/backbone/Div")  # src downsampling and ImageNet normalisation
KEEP_FLOAT32 = {
    "mobilenetv3": (*_STEM, *(f"/backbone/features.{i}/" for i in range(4))),
    "resnet50": (*_STEM, "/backbone/conv1/", "/backbone/relu/", "/backbone/maxpool/", "/backbone/layer1/"),
}


def _constants_to_initializers(graph: Any) -> None:
    """Turn Constant nodes holding float tensors into initializers (uniform handling below)."""
    from onnx import TensorProto

    keep = []
    for node in graph.node:
        attrs = {a.name: a for a in node.attribute} if node.op_type == "Constant" else {}
        tensor = attrs["value"].t if "value" in attrs else None
        if tensor is not None and tensor.data_type == TensorProto.FLOAT:
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
        else:
            if "value_float" in attrs or "value_floats" in attrs:
                raise ValueError(f"float16 conversion: unsupported Constant attribute in {node.name}")
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)


def _to_fp16(tensor: Any) -> Any:
    from onnx import numpy_helper

    array = numpy_helper.to_array(tensor)
    return numpy_helper.from_array(np.clip(array, -_FP16_MAX, _FP16_MAX).astype(np.float16), tensor.name)


def _float_tensors(model: Any) -> set[str]:
    """Names of float32 tensors (from ONNX shape inference), so int64 shape math is left alone."""
    import onnx
    from onnx import TensorProto

    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    values = [*graph.value_info, *graph.input, *graph.output]
    names = {v.name for v in values if v.type.tensor_type.elem_type == TensorProto.FLOAT}
    return names | {i.name for i in graph.initializer if i.data_type == TensorProto.FLOAT}


def _split_initializers(graph: Any, keep: set[int]) -> None:
    """float16 initializers for float16 consumers, float32 ones (copies if shared) for the rest."""
    import onnx
    from onnx import TensorProto

    uses: dict[str, list[tuple[int, Any, int]]] = {}
    for position, node in enumerate(graph.node):
        for index, name in enumerate(node.input):
            uses.setdefault(name, []).append((position, node, index))
    converted = []
    for init in graph.initializer:
        slots = uses.get(init.name, [])
        if init.data_type != TensorProto.FLOAT or not slots:
            converted.append(init)
            continue
        fp32 = [(n, i) for p, n, i in slots if p in keep or (n.op_type, i) in _FLOAT32_SLOTS]
        if len(fp32) == len(slots):
            converted.append(init)
            continue
        if fp32:  # shared: the float32 consumers get their own copy
            copy = onnx.TensorProto()
            copy.CopyFrom(init)
            copy.name = f"{init.name}_fp32"
            converted.append(copy)
            for node, index in fp32:
                node.input[index] = copy.name
        converted.append(_to_fp16(init))
    del graph.initializer[:]
    graph.initializer.extend(converted)


def _insert_casts(graph: Any, keep: set[int], floats: set[str]) -> None:
    """Cast float tensors where a float16 producer meets a float32 consumer and back."""
    from onnx import TensorProto, helper

    produced_fp32 = {out for p, node in enumerate(graph.node) if p in keep for out in node.output}
    initializers = {i.name for i in graph.initializer}
    casts: dict[tuple[str, int], str] = {}
    nodes = []
    for position, node in enumerate(graph.node):
        wants_fp32 = position in keep
        for index, name in enumerate(node.input):
            if name not in floats or name in initializers or (node.op_type, index) in _FLOAT32_SLOTS:
                continue
            if (name in produced_fp32) == wants_fp32:
                continue
            target = TensorProto.FLOAT if wants_fp32 else TensorProto.FLOAT16
            key = (name, target)
            if key not in casts:
                casts[key] = f"{name}_as_{'fp32' if wants_fp32 else 'fp16'}"
                nodes.append(helper.make_node("Cast", [name], [casts[key]], to=target,
                                              name=f"{casts[key]}_cast"))
            node.input[index] = casts[key]
        nodes.append(node)
    outputs = {o.name for o in graph.output}
    if outputs & produced_fp32:
        raise ValueError("float16 conversion: a graph output is produced by a float32-kept node")
    del graph.node[:]
    graph.node.extend(nodes)


def convert_to_float16(model: Any, keep_float32: tuple[str, ...] = ()) -> Any:
    """Return a float16 copy of a float32 ONNX model (see the module docstring). Nodes named in
    `keep_float32` (or under an entry ending in "/") stay float32, with Casts at their boundary."""
    import onnx
    from onnx import TensorProto

    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    _constants_to_initializers(graph)
    floats = _float_tensors(model)
    prefixes = tuple(k for k in keep_float32 if k.endswith("/"))
    keep = {p for p, node in enumerate(graph.node)
            if node.name in keep_float32 or (prefixes and node.name.startswith(prefixes))}
    _split_initializers(graph, keep)
    for position, node in enumerate(graph.node):
        for attr in node.attribute:
            if position not in keep and node.op_type == "Cast" and attr.name == "to" \
                    and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.FLOAT16
    _insert_casts(graph, keep, floats)
    for value in [*graph.input, *graph.output]:
        if value.type.tensor_type.elem_type == TensorProto.FLOAT:
            value.type.tensor_type.elem_type = TensorProto.FLOAT16
    del graph.value_info[:]  # stale float32 annotations; onnx/ORT re-infer them
    return model
