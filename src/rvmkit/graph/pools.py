"""Ceil-mode average pools rewritten as floor mode with end padding: the same numbers, fewer kernels needed.

RVM's decoder halves the frame three times with AveragePool 2x2 / stride 2 / ceil_mode=1 (padding
excluded from the average). onnxruntime-web's WebGPU kernel refuses ceil_mode, so the browser models
use the equivalent form: pad each spatial axis at its end by kernel - 1 and round down. With
stride == kernel and no other padding, both give ceil(n / k) windows, each the in-bounds part of
[i*k, i*k + k), averaged over its in-bounds elements. (runtime/openvino.py does the same on
OpenVINO's graph, for its CPU plugin's small-frame limit.) Pure onnx, no torch.
"""

from __future__ import annotations

from typing import Any


def _is_exact_ceil_pool(node: Any) -> bool:
    """An AveragePool that the padded floor form reproduces exactly: ceil_mode, padding excluded from
    the average, stride == kernel, no pads, no auto_pad, no dilation."""
    from onnx import helper

    if node.op_type != "AveragePool":
        return False
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    kernel = list(attrs.get("kernel_shape", []))
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    return (attrs.get("ceil_mode", 0) == 1 and attrs.get("count_include_pad", 0) == 0
            and bool(kernel) and list(attrs.get("strides", [])) == kernel
            and not any(attrs.get("pads", [])) and auto_pad in (b"NOTSET", "NOTSET")
            and all(d == 1 for d in attrs.get("dilations", [1] * len(kernel))))


def pad_ceil_pools(graph: Any) -> int:
    """Rewrite, in place, the ceil-mode AveragePools of `graph` that have an exact floor-mode form
    (see `_is_exact_ceil_pool`) as pads = [0.., k - 1..] with ceil_mode = 0; returns how many.
    Pools of any other kind are left as they are."""
    from onnx import helper

    rewritten = 0
    for node in graph.node:
        if not _is_exact_ceil_pool(node):
            continue
        kernel = list(next(a for a in node.attribute if a.name == "kernel_shape").ints)
        keep = [a for a in node.attribute if a.name not in ("ceil_mode", "pads", "auto_pad")]
        del node.attribute[:]
        node.attribute.extend([*keep, helper.make_attribute("ceil_mode", 0),
                               helper.make_attribute("pads", [0] * len(kernel) + [k - 1 for k in kernel])])
        rewritten += 1
    return rewritten


def ceil_pools(graph: Any) -> int:
    """How many pooling nodes of `graph` still use ceil_mode (the WebGPU kernel refuses all of them)."""
    from onnx import helper

    return sum(1 for node in graph.node if node.op_type.endswith("Pool") and any(
        a.name == "ceil_mode" and helper.get_attribute_value(a) == 1 for a in node.attribute))


__all__ = ["ceil_pools", "pad_ceil_pools"]
