"""Reading and labelling RVM ONNX files: load, is it an RVM graph, its baked ratio, variant and metadata.

TensorRT needs every dynamic dimension named distinctly per tensor (the seed recipe's names, in
`rvmkit.contract`), and the downsample ratio baked into the graph instead of a float input. Pure onnx,
no torch: the runtime path and `convert` use this module.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rvmkit.contract import DYNAMIC_AXES, INPUT_NAMES, OUTPUT_NAMES, RATIO_INPUT, RATIO_METADATA_KEY
from rvmkit.errors import RvmkitError, describe_path, require_readable_file
from rvmkit.graph.edit import constant_values


def load_onnx(path: str | os.PathLike, what: str = "model file") -> Any:
    """onnx.load with a one-line RvmkitError for missing/unreadable/corrupt files."""
    import onnx

    path = require_readable_file(path, what)
    try:
        return onnx.load(path)
    except Exception as exc:  # DecodeError and friends
        raise RvmkitError(f"{describe_path(path)}: not a valid ONNX model ({type(exc).__name__})") from None


def _as_model(model_or_path: Any) -> Any:
    return load_onnx(model_or_path) if isinstance(model_or_path, (str, os.PathLike)) else model_or_path


def _initializer_names(graph: Any) -> set[str]:
    return {init.name for init in graph.initializer}


def graph_input_names(model: Any) -> list[str]:
    """Real inputs (initializers listed as inputs by old exporters are left out)."""
    inits = _initializer_names(model.graph)
    return [i.name for i in model.graph.input if i.name not in inits]


def is_rvm_onnx(model: Any) -> bool:
    """True for an RVM matting model: official (with downsample_ratio) or TRT-ready (baked)."""
    inputs = graph_input_names(model)
    outputs = [o.name for o in model.graph.output]
    return inputs in (INPUT_NAMES, INPUT_NAMES + [RATIO_INPUT]) and outputs == OUTPUT_NAMES


def has_ratio_input(model: Any) -> bool:
    return RATIO_INPUT in graph_input_names(model)


def require_rvm_onnx(path: str | os.PathLike) -> Any:
    """Load `path` and check it is an RVM matting ONNX, else a one-line RvmkitError."""
    model = load_onnx(path)
    if not is_rvm_onnx(model):
        inputs = ", ".join(graph_input_names(model)) or "none"
        raise RvmkitError(f"{describe_path(path)}: not an RVM matting ONNX (inputs: {inputs}; expected "
                          f"{', '.join(INPUT_NAMES)}[, {RATIO_INPUT}])")
    return model


def precision_of(model: Any) -> str:
    """'float16' or 'float32', from the element type of `src`."""
    from onnx import TensorProto

    src = next(i for i in model.graph.input if i.name == "src")
    return "float16" if src.type.tensor_type.elem_type == TensorProto.FLOAT16 else "float32"


def set_ratio_metadata(model: Any, ratio: float) -> None:
    """Record the baked ratio in metadata_props (replacing an older entry)."""
    keep = [(p.key, p.value) for p in model.metadata_props if p.key != RATIO_METADATA_KEY]
    del model.metadata_props[:]
    for key, value in [*keep, (RATIO_METADATA_KEY, repr(float(ratio)))]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def apply_dynamic_axes(model: Any, state_channels: tuple[int, ...] | None = None) -> None:
    """Name the dynamic dims of inputs/outputs exactly as DYNAMIC_AXES (onnxsim and graph edits
    may drop or rename them). Other dims keep a fixed value; stray names (the tracer's
    "Addr1o_dim_1") become fixed values where known (`state_channels` for r1o..r4o) or unknown."""
    fixed = {"fgr": 3, "pha": 1}
    if state_channels is not None:
        fixed.update({f"r{k}o": c for k, c in enumerate(state_channels, start=1)})
    for value in [*model.graph.input, *model.graph.output]:
        axes = DYNAMIC_AXES.get(value.name)
        if axes is None:
            continue
        dims = value.type.tensor_type.shape.dim
        while len(dims) < 4:
            dims.add()
        for axis in range(4):
            if axis in axes:
                dims[axis].dim_param = axes[axis]
            elif value.name in fixed:
                dims[axis].dim_value = fixed[value.name]
            elif dims[axis].dim_param:
                dims[axis].ClearField("dim_param")


def dim_names(model: Any) -> dict[str, list[str | int]]:
    """name -> dims (dim_param or dim_value) for every input and output: handy in tests and reports."""
    result: dict[str, list[str | int]] = {}
    for value in [*model.graph.input, *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        result[value.name] = [d.dim_param if d.dim_param else d.dim_value for d in dims]
    return result


def _ratio_from_graph(model: Any) -> float | None:
    """The scale of the first Resize fed (through Casts) by `src`: the baked downsample ratio."""
    graph = model.graph
    constants = constant_values(graph)
    names = {"src"}
    for node in graph.node:
        if node.op_type in ("Cast", "Identity") and node.input and node.input[0] in names:
            names.add(node.output[0])
        elif node.op_type == "Resize" and node.input and node.input[0] in names:
            scales = constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            if scales is not None and scales.size == 4:
                return float(scales[2])
            return None
    return None


def baked_ratio(model_or_path: Any) -> float | None:
    """The downsample ratio baked into a TRT-ready RVM ONNX; None for a model that takes the ratio
    as an input (official) or one where no ratio can be found. Metadata first, then the graph."""
    model = _as_model(model_or_path)
    if has_ratio_input(model):
        return None
    for prop in model.metadata_props:
        if prop.key == RATIO_METADATA_KEY:
            try:
                return float(prop.value)
            except ValueError:
                break
    return _ratio_from_graph(model)


def trt_path_for(output: Path) -> Path:
    """`<stem>_trt.onnx` beside `output` (the seed's step 4 name)."""
    return output.with_name(f"{output.stem}_trt{output.suffix or '.onnx'}")


def variant_of(model: Any) -> str | None:
    """'mobilenetv3' or 'resnet50' from the stem convolution's weight shape; None if unknown."""
    shapes = {tuple(init.dims) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            shapes |= {tuple(a.t.dims) for a in node.attribute if a.name == "value"}
    if (16, 3, 3, 3) in shapes:
        return "mobilenetv3"
    if (64, 3, 7, 7) in shapes:
        return "resnet50"
    return None
