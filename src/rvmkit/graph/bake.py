"""TRT-ready RVM ONNX from an official one (with the downsample_ratio input), by graph editing.

The ratio input becomes a constant, the Concat that builds the Resize scales from it is folded,
the seed's axis names are applied, and the result is simplified with onnxsim when installed.
`convert` writes exactly OUTPUT (simplified; no `_trt` twin: there is no unsimplified export to
keep). No torch. The decoder's crop sizes are rewritten as `(n + 1) // 2` chains from the
downsampled frame's size (same numbers, as our export computes them) so that the result passes
ONNX Runtime's symbolic shape inference (see rvmkit.trt.shapes).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from rvmkit.contract import RATIO_INPUT, validate_ratio
from rvmkit.errors import RvmkitError, describe_path
from rvmkit.fileio import require_new_output, require_writable_output, write_atomically
from rvmkit.graph.edit import constant_values, consumers, producers
from rvmkit.graph.io import apply_dynamic_axes, has_ratio_input, require_rvm_onnx, set_ratio_metadata


def _fold_constant_concats(graph: Any) -> None:
    """Replace Concat nodes whose inputs are all initializers by one initializer (the scales)."""
    from onnx import numpy_helper

    values = constant_values(graph)
    keep = []
    for node in graph.node:
        if node.op_type == "Concat" and node.input and all(name in values for name in node.input):
            axis = next(a.i for a in node.attribute if a.name == "axis")
            folded = np.concatenate([values[name] for name in node.input], axis=axis)
            graph.initializer.append(numpy_helper.from_array(folded, node.output[0]))
            values[node.output[0]] = folded
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)


def _is_half_pool(node: Any) -> bool:
    """AveragePool 2x2 / stride 2 / ceil_mode / no pads: output size is ceil(n / 2) = (n + 1) // 2."""
    from onnx import helper

    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    return (node.op_type == "AveragePool" and attrs.get("ceil_mode") == 1
            and list(attrs.get("kernel_shape", [])) == [2, 2] and list(attrs.get("strides", [])) == [2, 2]
            and not any(attrs.get("pads", [])) and attrs.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET"))


def rewrite_crop_sizes(graph: Any) -> int:
    """Shape(pooled)[2:4] -> Shape(unpooled)[2:4] then (n + 1) // 2 per pooling level; returns the
    number of rewritten crop sizes.

    The official decoder crops to the skip tensors' sizes, nested ceil() expressions that ORT's
    symbolic shape inference cannot handle; integer Add/Div it can. Same numbers for all n >= 1.
    """
    from onnx import helper, numpy_helper

    made_by, users_of, constants = producers(graph), consumers(graph), constant_values(graph)
    one, two = "rvmkit_crop_one", "rvmkit_crop_two"
    added = 0
    for shape in [n for n in graph.node if n.op_type == "Shape" and not n.attribute]:
        source, levels = shape.input[0], 0
        while source in made_by and _is_half_pool(made_by[source]):
            source, levels = made_by[source].input[0], levels + 1
        users = users_of.get(shape.output[0], [])
        if not levels or len(users) != 1 or users[0].op_type != "Slice" or len(users[0].input) < 4:
            continue
        spatial = users[0]
        bounds = [constants.get(name) for name in spatial.input[1:4]]
        if any(b is None for b in bounds) or [b.tolist() for b in bounds] != [[2], [4], [0]]:
            continue  # not the [H, W] of an NCHW shape: leave it
        shape.input[0] = source
        value = spatial.output[0]
        new_nodes = []
        for level in range(levels):
            plus, half = f"{value}_rvmkit_plus1_{level}", f"{value}_rvmkit_half_{level}"
            new_nodes += [helper.make_node("Add", [value, one], [plus], name=plus),
                          helper.make_node("Div", [plus, two], [half], name=half)]
            value = half
        for user in users_of.get(spatial.output[0], []):
            user.input[:] = [value if name == spatial.output[0] else name for name in user.input]
        index = list(graph.node).index(spatial) + 1
        for offset, node in enumerate(new_nodes):
            graph.node.insert(index + offset, node)
        added += 1
    if added:
        graph.initializer.extend([numpy_helper.from_array(np.array([1], np.int64), one),
                                  numpy_helper.from_array(np.array([2], np.int64), two)])
    return added


def bake_ratio(model: Any, downsample_ratio: float) -> Any:
    """Turn the downsample_ratio input into a constant [ratio] (float32, as the input was)."""
    from onnx import helper, numpy_helper

    ratio_input = next(i for i in model.graph.input if i.name == RATIO_INPUT)
    dtype = helper.tensor_dtype_to_np_dtype(ratio_input.type.tensor_type.elem_type)
    model.graph.input.remove(ratio_input)
    model.graph.initializer.append(numpy_helper.from_array(np.array([downsample_ratio], dtype), RATIO_INPUT))
    _fold_constant_concats(model.graph)
    return model


def convert_official(source: Path, output: Path, downsample_ratio: float, overwrite: bool = False) -> Path:
    """Write the TRT-ready form of official RVM ONNX `source` at `downsample_ratio` to `output`: never
    over `source`, and over an existing file only with `overwrite`."""
    import onnx

    validate_ratio(downsample_ratio)
    require_new_output(output, [source], overwrite)
    model = require_rvm_onnx(source)
    if not has_ratio_input(model):
        raise RvmkitError(f"{describe_path(source)}: has no {RATIO_INPUT} input (already TRT-ready?); "
                          "convert takes an official RVM ONNX")
    require_writable_output(output, ".onnx")
    model = bake_ratio(model, downsample_ratio)
    rewrite_crop_sizes(model.graph)
    try:
        import onnxsim
    except ImportError:
        onnxsim = None
    if onnxsim is not None:
        model, ok = onnxsim.simplify(model)
        if not ok:
            raise RvmkitError(f"{describe_path(source)}: onnxsim could not validate the simplified model")
    apply_dynamic_axes(model)
    set_ratio_metadata(model, downsample_ratio)
    onnx.checker.check_model(model)
    write_atomically(output, lambda path: onnx.save(model, os.fspath(path)), overwrite=overwrite)
    return Path(output)
