"""Small graph-editing helpers shared by the rewrites (bake, lowres): who makes a tensor, who reads
it, and which tensors are constants. Pure onnx, no torch."""

from __future__ import annotations

from typing import Any


def producers(graph: Any) -> dict[str, Any]:
    """tensor name -> the node that outputs it."""
    return {out: node for node in graph.node for out in node.output}


def consumers(graph: Any) -> dict[str, list[Any]]:
    """tensor name -> the nodes that read it, in graph order."""
    users: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    return users


def attribute(node: Any, name: str, default: Any = None) -> Any:
    """A node attribute's value (int, list, bytes, ...), or `default` where the node does not set it."""
    from onnx import helper

    found = next((a for a in node.attribute if a.name == name), None)
    return default if found is None else helper.get_attribute_value(found)


def constant_values(graph: Any) -> dict[str, Any]:
    """tensor name -> numpy value, for initializers and Constant nodes' `value` outputs."""
    from onnx import numpy_helper

    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
    return values
