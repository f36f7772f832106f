"""Rewrites that keep the low-res graph's last stages on ONNX Runtime's blocked (NCHWc) CPU kernels.

ONNX Runtime runs a convolution in NCHWc (channels in blocks of 8) and converts tensors back to NCHW for
every op it has no blocked kernel for (Sub, Split, a Concat of 4-channel tensors) or whose input shapes
it cannot prove equal. In the refiner that costs more than its convolutions: a dozen reorders of
4-channel tensors at the network's full resolution. Both rewrites here are exact in the sense of
`rvmkit.graph.lowres` (every weight and every value the original's, sums taken in another order):

- `fuse_refiner`: the Deep Guided Filter refiner on 8-channel tensors ([x, y], [x, x], ...) built by
  1x1 convolutions whose weights are 0 and 1 (exact copies), differences as sums with negated box
  filters (exact), and shapes declared equal to the small frame's, so ONNX Runtime keeps every Mul
  and Add blocked and fuses the Adds into the convolutions.
- `skip_even_crops`: the decoder's 2x upsample is cropped to the skip connection's size by a Slice,
  which copies the whole tensor even where the sizes are even and it crops nothing (every common frame
  size at every ratio rvmkit picks); an If runs the crop only where the sizes are odd.

Each returns what it changed and leaves a graph it does not recognise as it is: the fast path is then
as fast as before, never wrong.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rvmkit.graph.edit import attribute, constant_values, consumers, producers

#: the low-res graph's input dims: tensors declared with them are the small frame's size
SMALL_DIMS = ("batch", "height_sm", "width_sm")
_PREFIX = "blocked_refiner_"


class _Refiner:
    """The official refiner's tensors, found backwards from `coef_a`/`coef_b`; `ok` False otherwise."""

    def __init__(self, graph: Any, coef_a: str, coef_b: str) -> None:
        self.ok = False
        made, values = producers(graph), constant_values(graph)

        def op(name: str, op_type: str) -> Any:
            node = made.get(name)
            if node is None or node.op_type != op_type:
                raise LookupError(name)
            return node

        try:
            sub = op(coef_b, "Sub")
            mul = op(sub.input[1], "Mul")
            conv_a = op(coef_a, "Conv")
            box_x = op(next(n for n in mul.input if n != coef_a), "Conv")
            box_y = op(sub.input[0], "Conv")
            relu2 = op(conv_a.input[0], "Relu")
            conv2 = op(relu2.input[0], "Conv")
            conv1 = op(op(conv2.input[0], "Relu").input[0], "Conv")
            concat = op(conv1.input[0], "Concat")
        except (LookupError, StopIteration):
            return
        y = box_y.input[0]
        if made.get(y) is not None and made[y].op_type == "Concat":  # Concat(Split(t)) is t
            split = made.get(made[y].input[0])
            if split is not None and split.op_type == "Split" and list(made[y].input) == list(split.output):
                y = split.input[0]
        project = made.get(y)
        if project is None or project.op_type != "Conv" or len(concat.input) != 3:
            return
        names = [box_x.input[1], box_y.input[1], *project.input[1:], *conv1.input[1:], conv2.input[1],
                 *conv_a.input[1:]]
        if any(name not in values for name in names):
            return
        variance = [i for i, name in enumerate(concat.input[:2]) if self._is_variance(made, name)]
        box = values[box_x.input[1]]
        pointwise = all(values[node.input[1]].shape[2:] == (1, 1) for node in (project, conv1, conv_a))
        if (variance not in ([0], [1]) or box.shape != (4, 1, 3, 3) or attribute(box_x, "group") != 4
                or attribute(box_x, "pads") != [1, 1, 1, 1] or not pointwise):
            return
        self.x, self.hidden, self.box = box_x.input[0], concat.input[2], box
        self.project, self.conv1, self.conv2, self.conv_a = project, conv1, conv2, conv_a
        self.variance_first = variance == [0]
        self.weights = {name: values[name] for name in names}
        self.ok = project.input[0] == self.hidden and len(project.input) == 3 and len(conv_a.input) == 3

    @staticmethod
    def _is_variance(made: dict, name: str) -> bool:
        """Sub(box(x*x), mx*mx): the variance (the covariance's Mul takes two different tensors)."""
        sub = made.get(name)
        square = made.get(sub.input[1]) if sub is not None and sub.op_type == "Sub" else None
        return square is not None and square.op_type == "Mul" and square.input[0] == square.input[1]


def fuse_refiner(model: Any, coef_outputs: tuple[str, str]) -> bool:
    """Rewrite the refiner that computes `coef_outputs` (A, b) on 8-channel blocks (see the module)."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    coef_a, coef_b = (producers(graph)[name].input[0] for name in coef_outputs)
    found = _Refiner(graph, coef_a, coef_b)
    if not found.ok:
        return False
    weight = found.weights.__getitem__
    nodes: list[Any] = []
    declared: dict[str, int] = {found.hidden: weight(found.project.input[1]).shape[1]}

    def constant(name: str, value: np.ndarray) -> str:
        array = np.ascontiguousarray(value, np.float32)
        graph.initializer.append(numpy_helper.from_array(array, _PREFIX + name))
        return _PREFIX + name

    def conv(name: str, inputs: list[str], channels: int, size: int = 1, group: int = 1) -> str:
        nodes.append(helper.make_node("Conv", inputs, [_PREFIX + name], name=_PREFIX + name,
                                      kernel_shape=[size, size], pads=[size // 2] * 4, group=group))
        declared[_PREFIX + name] = channels
        return _PREFIX + name

    def binary(op_type: str, name: str, a: str, b: str) -> str:
        nodes.append(helper.make_node(op_type, [a, b], [_PREFIX + name], name=_PREFIX + name))
        declared[_PREFIX + name] = declared[a]
        return _PREFIX + name

    eye, zero = np.eye(4, dtype=np.float32)[:, :, None, None], np.zeros((4, 4, 1, 1), np.float32)
    box = constant("box", np.concatenate([found.box, found.box]))
    minus_box = constant("minus_box", -np.concatenate([found.box, found.box]))
    project_w, project_b = weight(found.project.input[1]), weight(found.project.input[2])
    # [x, y]: y the projection of the hidden features, x copied by a 0/1 convolution
    project_w = np.concatenate([np.zeros_like(project_w), project_w])
    project_b = np.concatenate([np.zeros(4, np.float32), project_b])
    xy = binary("Add", "xy", conv("x0", [found.x, constant("x0_w", np.concatenate([eye, zero]))], 8),
                conv("0y", [found.hidden, constant("0y_w", project_w), constant("0y_b", project_b)], 8))
    xx = conv("xx", [found.x, constant("xx_w", np.concatenate([eye, eye]))], 8)
    means = conv("means", [xy, box], 8, 3, 8)  # [mean x, mean y]
    moments = conv("moments", [binary("Mul", "products", xy, xx), box], 8, 3, 8)  # [E xx, E xy]
    minus_mx = conv("minus_mx", [xx, minus_box], 8, 3, 8)  # [-mean x, -mean x]
    spread = binary("Add", "spread", moments, binary("Mul", "mean_products", minus_mx, means))  # [var, cov]
    # the first 1x1 convolution over [cov, var, hidden], split at its input channels
    w1 = weight(found.conv1.input[1])
    cov_w, var_w = (w1[:, 4:8], w1[:, 0:4]) if found.variance_first else (w1[:, 0:4], w1[:, 4:8])
    hidden = binary("Add", "c1", conv("c1_spread", [spread, constant("c1_spread_w", np.concatenate(
                        [var_w, cov_w], axis=1))], len(w1)),
                    conv("c1_hidden", [found.hidden, constant("c1_hidden_w", w1[:, 8:]),
                                       *found.conv1.input[2:]], len(w1)))
    nodes.append(helper.make_node("Relu", [hidden], [_PREFIX + "r1"]))
    conv2 = helper.make_node("Conv", [_PREFIX + "r1", *found.conv2.input[1:]], [_PREFIX + "c2"])
    conv2.attribute.extend(found.conv2.attribute)
    nodes.extend([conv2, helper.make_node("Relu", [_PREFIX + "c2"], [_PREFIX + "r2"])])
    declared.update({_PREFIX + "r1": len(w1), _PREFIX + "c2": len(w1), _PREFIX + "r2": len(w1)})
    # [A, b] = [A, A] * [1, -mean x] + [0, mean y]: b = mean y - A * mean x
    wa, ba = weight(found.conv_a.input[1]), weight(found.conv_a.input[2])
    aa = conv("aa", [_PREFIX + "r2", constant("aa_w", np.concatenate([wa, wa])),
                     constant("aa_b", np.concatenate([ba, ba]))], 8)
    pick_mx, pick_my = np.zeros((8, 8, 1, 1), np.float32), np.zeros((8, 8, 1, 1), np.float32)
    pick_mx[4:, :4], pick_my[4:, 4:] = -eye, eye
    one_minus_mx = conv("one_minus_mx", [means, constant("pick_mx", pick_mx),
                                         constant("ones", np.array([1, 1, 1, 1, 0, 0, 0, 0], np.float32))], 8)
    coef = binary("Add", "coef", binary("Mul", "a_terms", aa, one_minus_mx),
                  conv("0my", [means, constant("pick_my", pick_my)], 8))
    nodes.append(helper.make_node("Split", [coef], [coef_a, coef_b], axis=1, split=[4, 4]))
    for node in [node for node in graph.node if set(node.output) & {coef_a, coef_b}]:
        graph.node.remove(node)
    # before the first reader of A or b: after everything the refiner reads, so still in graph order
    ordered = list(graph.node)
    index = next(i for i, node in enumerate(ordered) if set(node.input) & {coef_a, coef_b})
    del graph.node[:]
    graph.node.extend([*ordered[:index], *nodes, *ordered[index:]])
    batch, height, width = SMALL_DIMS
    graph.value_info.extend(helper.make_tensor_value_info(name, TensorProto.FLOAT,
                                                          [batch, channels, height, width])
                            for name, channels in declared.items())
    return True


def skip_even_crops(model: Any) -> int:
    """Slice(Resize(x, scales 2), 0, ends, axes 2-3) -> If(ends == 2 * size(x), Resize, Resize + Slice)."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    made, users, values = producers(graph), consumers(graph), constant_values(graph)
    two = "skip_even_crops_two"
    rewritten = 0
    for crop in [node for node in graph.node if node.op_type == "Slice" and len(node.input) == 4]:
        resize = made.get(crop.input[0])
        if resize is None or resize.op_type != "Resize" or len(users.get(resize.output[0], [])) != 1:
            continue
        scales = values.get(resize.input[2]) if len(resize.input) == 3 else None
        starts, axes = values.get(crop.input[1]), values.get(crop.input[3])
        if scales is None or starts is None or axes is None or list(scales) != [1, 1, 2, 2] or any(
                starts) or list(axes) != [2, 3]:
            continue
        name = f"{crop.name or crop.output[0]}_crop"
        checks = [
            helper.make_node("Shape", [resize.input[0]], [f"{name}_shape"]),
            helper.make_node("Slice", [f"{name}_shape", "skip_even_crops_2", "skip_even_crops_4",
                                       "skip_even_crops_0"], [f"{name}_hw"]),
            helper.make_node("Mul", [f"{name}_hw", two], [f"{name}_doubled"]),
            helper.make_node("Equal", [f"{name}_doubled", crop.input[2]], [f"{name}_equal"]),
            helper.make_node("Cast", [f"{name}_equal"], [f"{name}_equal_int"], to=TensorProto.INT64),
            helper.make_node("ReduceMin", [f"{name}_equal_int"], [f"{name}_all"], keepdims=0),
            helper.make_node("Cast", [f"{name}_all"], [f"{name}_cond"], to=TensorProto.BOOL),
        ]
        checks.append(helper.make_node("If", [f"{name}_cond"], [crop.output[0]], name=name,
                                       then_branch=_upsample(resize, crop, f"{name}_even", cropped=False),
                                       else_branch=_upsample(resize, crop, f"{name}_odd", cropped=True)))
        index = list(graph.node).index(crop)
        graph.node.remove(crop)
        for offset, node in enumerate(checks):
            graph.node.insert(index + offset, node)
        graph.node.remove(resize)
        rewritten += 1
    if rewritten:
        graph.initializer.extend([numpy_helper.from_array(np.array([2, 2], np.int64), two),
                                  *(numpy_helper.from_array(np.array([v], np.int64), f"skip_even_crops_{v}")
                                    for v in (0, 2, 4))])
    return rewritten


def _upsample(resize: Any, crop: Any, out: str, cropped: bool) -> Any:
    """An If branch: the decoder's Resize, then its crop where `cropped`."""
    from onnx import TensorProto, helper

    upsample = helper.make_node("Resize", list(resize.input), [f"{out}_full" if cropped else out])
    upsample.attribute.extend(resize.attribute)
    body = [upsample]
    if cropped:
        body.append(helper.make_node("Slice", [f"{out}_full", *crop.input[1:]], [out]))
    return helper.make_graph(body, out, [], [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)])
