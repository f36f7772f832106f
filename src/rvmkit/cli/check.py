"""`rvmkit check MODEL.onnx`: is the model ready for TensorRT (and for ONNX Runtime's TensorRT EP)?"""

from __future__ import annotations

import argparse
import json

from rvmkit.trt.check import check_model, format_report


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check", help="report whether an ONNX model is ready for TensorRT",
        description="Run the TensorRT readiness checks (float inputs feeding shapes, dynamic dim names, "
                    "TensorRT-supported ops, onnx.checker) and ONNX Runtime's symbolic shape inference "
                    "(needed by ORT's TensorRT EP only). Exit status 0 when ready for TensorRT, 1 when not.")
    parser.add_argument("model", help="ONNX model file")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    report = check_model(args.model)
    if args.json:
        print(json.dumps({
            "model": report.path, "ready_for_tensorrt": report.ready_for_tensorrt,
            "ready_for_ort_tensorrt_ep": report.ready_for_ort_trt,
            "checks": [vars(r) for r in report.results]}, indent=2))
    else:
        print(format_report(report))
    return 0 if report.ready_for_tensorrt else 1
