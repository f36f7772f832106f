"""The graph-editing helpers the rewrites share (`rvmkit.graph.edit`), on the official RVM graph: who makes
a tensor, who reads it, a node's attributes, and which tensors are constants."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from rvmkit.graph.edit import attribute, constant_values, consumers, producers


@pytest.fixture(scope="module")
def graph(official_onnx):
    return onnx.load(str(official_onnx)).graph


def test_producers_and_consumers_link_every_node_to_its_tensors(graph):
    made, read = producers(graph), consumers(graph)
    assert "src" not in made  # a graph input is made by no node
    resize = read["src"][0]  # the downsample is the first node to read the source
    assert resize.op_type == "Resize" and [n.op_type for n in read["src"]].count("Resize") == 1
    assert all(made[out] is node for node in graph.node for out in node.output)
    assert sum(len(nodes) for nodes in read.values()) == sum(len(node.input) for node in graph.node)
    assert made[resize.input[2]].op_type == "Concat"  # its scales are computed from downsample_ratio


def test_attributes_and_constants(graph):
    resize = consumers(graph)["src"][0]
    assert attribute(resize, "mode") == b"linear"
    assert attribute(resize, "antialias", default=0) == 0  # not set on the node: the default
    values = constant_values(graph)
    constants = [node.output[0] for node in graph.node if node.op_type == "Constant"]
    assert set(values) == {init.name for init in graph.initializer} | set(constants)
    first = graph.initializer[0]
    np.testing.assert_array_equal(values[first.name], onnx.numpy_helper.to_array(first))
