"""Is an ONNX model ready for TensorRT? A table of checks, each PASS / WARN / FAIL with its reason.

Two verdicts, because they fail for different reasons:

- **TensorRT** (trtexec, `rvmkit build-engine`): no float input may feed a shape computation, every
  dynamic input dimension must be named and no name shared by tensors whose sizes can differ (TensorRT
  treats equal names as equal sizes), every op must be in TensorRT's ONNX-parser table at the model's
  opset, and `onnx.checker` must pass.
- **ONNX Runtime's TensorRT EP** additionally relies on ORT's symbolic shape inference for dynamic
  shapes; a failure there does not stop TensorRT itself, so it is reported at its own level.

Everything here runs on CPU with onnx/onnxruntime only; no TensorRT is imported.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from rvmkit.contract import INPUT_NAMES, OUTPUT_NAMES
from rvmkit.errors import first_line
from rvmkit.graph.io import baked_ratio, graph_input_names, is_rvm_onnx, load_onnx
from rvmkit.trt.shapes import symbolic_shape_check

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
TENSORRT, ORT_TRT = "tensorrt", "ort-trt"

# (op_type, input index) slots whose *values* are shapes, sizes, indices or scales.
SHAPE_SLOTS: dict[str, dict[int, str]] = {
    "Resize": {1: "roi", 2: "scales", 3: "sizes"},
    "Upsample": {1: "scales"},
    "Reshape": {1: "shape"},
    "Expand": {1: "shape"},
    "Tile": {1: "repeats"},
    "Slice": {1: "starts", 2: "ends", 3: "axes", 4: "steps"},
    "Pad": {1: "pads"},
    "ConstantOfShape": {0: "shape"},
    "Range": {0: "start", 1: "limit", 2: "delta"},
    "Squeeze": {1: "axes"},
    "Unsqueeze": {1: "axes"},
    "Split": {1: "split"},
    "TopK": {1: "K"},
    "OneHot": {1: "depth"},
    "ReduceMean": {1: "axes"},
    "ReduceSum": {1: "axes"},
}
# Ops whose outputs carry only the *shape* of their input, never its values.
SHAPE_ONLY_OPS = {"Shape", "Size"}
FLOAT_TYPES = {1, 10, 11, 16}  # FLOAT, FLOAT16, DOUBLE, BFLOAT16 (onnx.TensorProto)
RESIZE_MODES = {"nearest", "linear"}
RESIZE_TRANSFORMS = {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric",
                     "align_corners"}


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: str  # PASS / WARN / FAIL
    reason: str
    level: str = TENSORRT  # which verdict a FAIL blocks


@dataclass
class Report:
    path: str
    results: list[CheckResult] = field(default_factory=list)

    def failures(self, level: str = TENSORRT) -> list[CheckResult]:
        return [r for r in self.results if r.status == FAIL and r.level == level]

    @property
    def ready_for_tensorrt(self) -> bool:
        return not self.failures(TENSORRT)

    @property
    def ready_for_ort_trt(self) -> bool:
        """ORT's TensorRT EP needs everything TensorRT needs plus ORT's symbolic shape inference."""
        return self.ready_for_tensorrt and not self.failures(ORT_TRT)


@lru_cache(maxsize=1)
def trt_op_table() -> dict[str, Any]:
    """The packaged TensorRT ONNX-parser op table (trt_ops.json), with the TensorRT version it describes."""
    text = resources.files("rvmkit.trt").joinpath("trt_ops.json").read_text(encoding="utf-8")
    return json.loads(text)


def op_support(op_type: str, opset: int, domain: str = "") -> tuple[bool, str]:
    """(supported, reason) for one op at an opset, per the packaged table and ONNX's own op schemas."""
    import onnx

    table = trt_op_table()
    version = table["tensorrt_version"]
    if domain not in table["domains"]:
        return False, f"{domain}::{op_type} is a custom-domain op (TensorRT {version} needs a plugin)"
    if not table["opset_min"] <= opset <= table["opset_max"]:
        return False, (f"opset {opset} is outside TensorRT {version}'s range "
                       f"{table['opset_min']}..{table['opset_max']}")
    entry = table["operators"].get(op_type)
    if entry is None or not entry["supported"]:
        return False, f"{op_type} is not supported by TensorRT {version}'s ONNX parser"
    try:
        schema = onnx.defs.get_schema(op_type, opset, "")
    except Exception:  # SchemaError: the op does not exist yet at this opset
        return False, f"{op_type} does not exist at opset {opset}"
    if schema.deprecated:
        return False, f"{op_type} is deprecated at opset {opset} (since {schema.since_version})"
    return True, entry.get("note", "")


# ---------------------------------------------------------------------------------------------
# Individual checks


def _node_label(node: Any, index: int) -> str:
    return f"{node.op_type} '{node.name}'" if node.name else f"{node.op_type} #{index}"


def _elem_type(value: Any) -> int:
    return value.type.tensor_type.elem_type


def float_inputs_feeding_shapes(model: Any) -> dict[str, list[str]]:
    """float graph input -> descriptions of shape slots its *values* reach ('Resize 'Resize_3' scales').

    Values propagate forward through every node except Shape/Size (which keep only the shape);
    a float value arriving in a shape slot means the engine's shapes depend on data, which TensorRT
    cannot plan an optimization profile for.
    """
    graph = model.graph
    inits = {init.name for init in graph.initializer}
    floats = [v.name for v in graph.input if v.name not in inits and _elem_type(v) in FLOAT_TYPES]
    found: dict[str, list[str]] = {}
    for name in floats:
        reached = {name}
        hits: list[str] = []
        for index, node in enumerate(graph.node):  # ONNX nodes are topologically sorted
            slots = SHAPE_SLOTS.get(node.op_type, {})
            for slot, tensor in enumerate(node.input):
                if tensor in reached and slot in slots:
                    hits.append(f"{_node_label(node, index)} input '{slots[slot]}'")
            if node.op_type not in SHAPE_ONLY_OPS and any(t in reached for t in node.input):
                reached.update(o for o in node.output if o)
        if hits:
            found[name] = hits
    return found


def check_float_shape_inputs(model: Any) -> CheckResult:
    found = float_inputs_feeding_shapes(model)
    if not found:
        return CheckResult("no float input feeds a shape", PASS, "no input value reaches a shape computation")
    parts = [f"input '{name}' feeds {', '.join(hits[:3])}{' ...' if len(hits) > 3 else ''}"
             for name, hits in found.items()]
    hint = " (bake the ratio: `rvmkit convert` / `rvmkit export`)" if "downsample_ratio" in found else ""
    return CheckResult("no float input feeds a shape", FAIL, "; ".join(parts) + hint)


def _size_class(tensor: str, axis: int) -> tuple[str, int] | None:
    """RVM dims that always have equal sizes share a class; None for tensors outside the interface.

    src/fgr/pha share spatial sizes; r<k>o share the frame batch; r<k>i batch, channels and spatial
    sizes can differ from everything else (the [1,1,1,1] initial state).
    """
    if tensor in ("src", "fgr", "pha"):
        return ("frame", axis) if axis != 1 else (tensor, 1)
    if tensor in OUTPUT_NAMES[2:]:
        return ("frame", 0) if axis == 0 else (tensor, axis)
    if tensor in INPUT_NAMES[1:]:
        return ("states-in", 0) if axis == 0 else (tensor, axis)
    return None


def check_dim_names(model: Any) -> CheckResult:
    """Every dynamic dim named; a name shared across dims that can differ fails for inputs (TensorRT
    then forces them equal) and warns for outputs (only an annotation there)."""
    rvm = is_rvm_onnx(model)
    inputs = set(graph_input_names(model))
    unnamed: list[str] = []
    unnamed_outputs: list[str] = []
    uses: dict[str, list[tuple[str, int]]] = defaultdict(list)
    values = [v for v in model.graph.input if v.name in inputs] + list(model.graph.output)
    for value in values:
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.dim_param:
                uses[dim.dim_param].append((value.name, axis))
            elif dim.dim_value <= 0:
                (unnamed if value.name in inputs else unnamed_outputs).append(f"{value.name}[{axis}]")
    fails, warns = [], []
    if unnamed:
        fails.append(f"unnamed dynamic dims: {', '.join(unnamed)}")
    if unnamed_outputs:
        warns.append(f"unnamed dynamic output dims: {', '.join(unnamed_outputs)}")
    for name, places in uses.items():
        classes = {(_size_class(t, a) if rvm else (t, a)) for t, a in places}
        if len(classes) <= 1:
            continue
        where = ", ".join(f"{t}[{a}]" for t, a in places[:6]) + (" ..." if len(places) > 6 else "")
        input_classes = {(_size_class(t, a) if rvm else (t, a)) for t, a in places if t in inputs}
        message = f"'{name}' is shared by {where}" + ("" if rvm else " (cannot tell whether they are equal)")
        (fails if len(input_classes) > 1 and rvm else warns).append(message)
    if fails:
        return CheckResult("dynamic dims named distinctly", FAIL, "; ".join(fails + warns))
    if warns:
        return CheckResult("dynamic dims named distinctly", WARN, "; ".join(warns))
    return CheckResult("dynamic dims named distinctly", PASS, f"{len(uses)} distinct names")


def _opset(model: Any) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 0


def _resize_problems(node: Any, index: int) -> list[str]:
    from onnx import helper

    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    decode = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}
    problems = []
    if decode.get("mode", "nearest") not in RESIZE_MODES:
        problems.append(f"mode {decode['mode']}")
    if decode.get("coordinate_transformation_mode", "half_pixel") not in RESIZE_TRANSFORMS:
        problems.append(f"coordinate_transformation_mode {decode['coordinate_transformation_mode']}")
    if decode.get("antialias", 0):
        problems.append("antialias")
    if decode.get("keep_aspect_ratio_policy", "stretch") != "stretch":
        problems.append(f"keep_aspect_ratio_policy {decode['keep_aspect_ratio_policy']}")
    return [f"{_node_label(node, index)}: {', '.join(problems)}"] if problems else []


def check_ops(model: Any) -> CheckResult:
    table = trt_op_table()
    opset = _opset(model)
    bad: dict[str, str] = {}
    counts: dict[str, int] = defaultdict(int)
    restrictions: list[str] = []
    for index, node in enumerate(model.graph.node):
        counts[node.op_type] += 1
        ok, reason = op_support(node.op_type, opset, node.domain)
        if not ok:
            bad.setdefault(node.op_type, reason)
        elif node.op_type == "Resize":
            restrictions += _resize_problems(node, index)
    label = f"ops supported by TensorRT {table['tensorrt_version']} (opset {opset})"
    if bad or restrictions:
        parts = [f"{reason} (x{counts[op]})" for op, reason in bad.items()] + restrictions
        return CheckResult(label, FAIL, "; ".join(parts))
    return CheckResult(label, PASS, f"{len(counts)} op types, {sum(counts.values())} nodes")


def check_onnx_checker(path: str) -> CheckResult:
    import onnx

    try:
        onnx.checker.check_model(path, full_check=True)
    except Exception as exc:  # ValidationError, InferenceError
        return CheckResult("onnx.checker (full_check)", FAIL, first_line(exc)[:300])
    return CheckResult("onnx.checker (full_check)", PASS, "valid")


def check_interface(model: Any) -> CheckResult:
    """Informational: an RVM model with a baked ratio is what `profile` and the TRT backend expect."""
    if not is_rvm_onnx(model):
        return CheckResult("RVM interface", WARN, "not the RVM src/r1i..r4i -> fgr/pha/r1o..r4o interface")
    ratio = baked_ratio(model)
    if ratio is None:
        return CheckResult("RVM interface", WARN, "RVM model without a baked downsample ratio")
    return CheckResult("RVM interface", PASS, f"RVM model, downsample ratio {ratio:g} baked in")


def check_symbolic_shapes(path: str) -> CheckResult:
    name = "ORT symbolic shape inference"
    ok, detail = symbolic_shape_check(path)
    if ok:
        return CheckResult(name, PASS, detail or "all shapes inferred", ORT_TRT)
    return CheckResult(name, FAIL, f"{detail} (needed by ORT's TensorRT EP for dynamic shapes; "
                                   "TensorRT itself does not use it; `rvmkit export` and `rvmkit convert` "
                                   "give a formulation that passes)", ORT_TRT)


# ---------------------------------------------------------------------------------------------


def check_model(path: str | os.PathLike) -> Report:
    """Run every check on the ONNX file at `path` (load errors are one-line RvmkitErrors)."""
    path = os.fspath(path)
    model = load_onnx(path)
    report = Report(path)
    report.results = [
        check_interface(model),
        check_float_shape_inputs(model),
        check_dim_names(model),
        check_ops(model),
        check_onnx_checker(path),
        check_symbolic_shapes(path),
    ]
    return report


def format_report(report: Report) -> str:
    """A fixed-width table plus the two verdicts."""
    rows = [("check", "level", "result", "reason")]
    rows += [(r.name, r.level, r.status, r.reason) for r in report.results]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{report.path}"]
    for row in rows:
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])
    verdict = "READY" if report.ready_for_tensorrt else "NOT READY"
    lines.append(f"TensorRT: {verdict}" + ("" if report.ready_for_tensorrt else
                 " (" + "; ".join(r.name for r in report.failures(TENSORRT)) + ")"))
    ort_verdict = "READY" if report.ready_for_ort_trt else "NOT READY"
    if report.ready_for_ort_trt and any(r.level == ORT_TRT and r.status == WARN for r in report.results):
        ort_verdict = "UNKNOWN (not checked)"
    lines.append(f"ONNX Runtime TensorRT EP: {ort_verdict}")
    return "\n".join(lines)
