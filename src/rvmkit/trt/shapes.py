"""Symbolic shape inference check (ONNX Runtime's `SymbolicShapeInference`).

TensorRT and ORT's TensorRT/transformer tooling run it on dynamic models. The seed's export
fails it: the decoder crops its upsampled maps to the skip tensors' shapes, which are nested
ceil() expressions (stride-2 convs, ceil-mode average pooling) that SymPy cannot prove
non-negative, and the Slice handler then asserts. Our export computes the crop sizes as
floor((n + 1) / 2) chains instead (same numbers), which SymPy can reason about.
"""

from __future__ import annotations

import logging
import os

from rvmkit.errors import first_line
from rvmkit.graph.io import load_onnx


def symbolic_shape_check(model_path: str | os.PathLike) -> tuple[bool, str]:
    """(passed, one-line detail): does symbolic shape inference infer every output's shape?"""
    from onnxruntime.tools import symbolic_shape_infer as ssi

    model = load_onnx(model_path)
    logger = logging.getLogger(ssi.__name__)
    level = logger.level
    logger.setLevel(logging.ERROR)  # it warns for each comparison it cannot decide
    try:
        inferred = ssi.SymbolicShapeInference.infer_shapes(model, auto_merge=True, guess_output_rank=False)
    except Exception as exc:  # it raises AssertionError/TypeError/Exception on failure
        return False, f"symbolic shape inference failed: {type(exc).__name__}: {first_line(exc, '')}"[:300]
    finally:
        logger.setLevel(level)
    if inferred is None:
        return False, "symbolic shape inference did not complete"
    shapes = []
    for output in inferred.graph.output:
        dims = output.type.tensor_type.shape.dim
        if not dims:
            return False, f"symbolic shape inference left output {output.name} without a shape"
        shapes.append(f"{output.name}[{','.join(d.dim_param or str(d.dim_value) for d in dims)}]")
    return True, "all output shapes inferred: " + " ".join(shapes)
