"""TRT-ready RVM ONNX from an official one (with the downsample_ratio input), by graph editing.

The ratio input becomes a constant, the Concat that builds the Resize scales from it is folded,
the seed's axis names are applied, and the result is simplified with onnxsim when installed.
`convert` writes exactly OUTPUT (simplified; no `_trt` twin: there is no unsimplified export to
keep). No torch. The decoder's crop Slices stay as the official graph has them, so, unlike our
export, the result does not pass ONNX Runtime's symbolic shape inference (see shapes.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from rvmkit.errors import RvmkitError, describe_path
from rvmkit.export.interface import (
    RATIO_INPUT,
    apply_dynamic_axes,
    has_ratio_input,
    require_rvm_onnx,
    set_ratio_metadata,
    validate_ratio,
)
from rvmkit.fileio import require_writable_output, write_atomically


def _fold_constant_concats(graph: Any) -> None:
    """Replace Concat nodes whose inputs are all initializers by one initializer (the scales)."""
    from onnx import numpy_helper

    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            attr = next((a for a in node.attribute if a.name == "value"), None)
            if attr is not None:
                values[node.output[0]] = numpy_helper.to_array(attr.t)
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


def bake_ratio(model: Any, downsample_ratio: float) -> Any:
    """Turn the downsample_ratio input into a constant [ratio] (float32, as the input was)."""
    from onnx import helper, numpy_helper

    ratio_input = next(i for i in model.graph.input if i.name == RATIO_INPUT)
    dtype = helper.tensor_dtype_to_np_dtype(ratio_input.type.tensor_type.elem_type)
    model.graph.input.remove(ratio_input)
    model.graph.initializer.append(numpy_helper.from_array(np.array([downsample_ratio], dtype), RATIO_INPUT))
    _fold_constant_concats(model.graph)
    return model


def convert_official(source: Path, output: Path, downsample_ratio: float) -> Path:
    """Write the TRT-ready form of official RVM ONNX `source` at `downsample_ratio` to `output`."""
    import onnx

    validate_ratio(downsample_ratio)
    model = require_rvm_onnx(source)
    if not has_ratio_input(model):
        raise RvmkitError(f"{describe_path(source)}: has no {RATIO_INPUT} input (already TRT-ready?); "
                          "convert takes an official RVM ONNX")
    require_writable_output(output)
    model = bake_ratio(model, downsample_ratio)
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
    write_atomically(Path(output), lambda path: onnx.save(model, os.fspath(path)))
    return Path(output)
