"""int8 experiment (not shipped): ORT static quantization of the low-res graph, calibrated on real frames.

    .venv/bin/python benchmarks/int8_experiment.py

Calibration: 2 x 12 frames of book.mkv and sister.mkv at 1920x1080 / 0.25 (steady-state recurrent states);
evaluation on milk.mkv (not calibrated on): graph time fp32 vs int8 (QDQ, per-channel int8 weights, uint8
activations, opset 13) and the alpha error of int8 against fp32. See benchmarks/LEVERS.md for the result.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import version_converter
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from rvmkit import bench, weights
from rvmkit.runtime.ort_fast import FastOnnxRuntimeBackend, session_options

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
W, H, RATIO = 1920, 1080, 0.25


def calibration_feeds(fast: FastOnnxRuntimeBackend) -> list[dict]:
    feeds = []
    for clip in ("book", "sister"):
        state = None
        for frame in bench.load_frames(DATA / f"{clip}.mkv", W, H, 12):
            small = fast.prepare(frame, RATIO)
            if state is not None:
                feeds.append({"src_sm": small, **{f"r{k + 1}i": state[k].numpy() for k in range(4)}})
            _, _, state = fast.infer_low_res(small, state)
    return feeds


def main() -> None:
    fast = FastOnnxRuntimeBackend(weights.official_onnx_path())
    feeds = calibration_feeds(fast)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(feeds)

        def get_next(self) -> dict | None:
            return next(self.items, None)

    with tempfile.TemporaryDirectory() as tmp:
        m13, pre, q8 = (str(Path(tmp) / name) for name in ("m13.onnx", "pre.onnx", "q8.onnx"))
        onnx.save(version_converter.convert_version(onnx.load(str(fast.path)), 13), m13)
        quant_pre_process(m13, pre, skip_symbolic_shape=True)
        quantize_static(pre, q8, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        int8 = FastOnnxRuntimeBackend(weights.official_onnx_path())
        int8.session = ort.InferenceSession(q8, session_options(), providers=["CPUExecutionProvider"])
        frames = bench.load_frames(DATA / "milk.mkv", W, H, 16)
        state_a = state_b = None
        times_a, times_b, errors = [], [], []
        for frame in frames:
            started = time.perf_counter()
            a, b, state_a = fast.infer_low_res(fast.prepare(frame, RATIO), state_a)
            times_a.append(time.perf_counter() - started)
            started = time.perf_counter()
            qa, qb, state_b = int8.infer_low_res(int8.prepare(frame, RATIO), state_b)
            times_b.append(time.perf_counter() - started)
            _, pha = fast.finish_float(frame, a, b, RATIO)
            _, pha_q = fast.finish_float(frame, qa, qb, RATIO)
            diff = np.abs(pha - pha_q)
            errors.append((diff.mean(), diff.max(), (diff > 2 / 255).mean()))
    e = np.array(errors)
    print(f"graph fp32 {np.median(times_a[2:]) * 1000:.1f} ms, int8 {np.median(times_b[2:]) * 1000:.1f} ms; "
          f"alpha error vs fp32: mean {e[:, 0].mean() * 255:.2f}/255, max {e[:, 1].max() * 255:.0f}/255, "
          f"{e[:, 2].mean() * 100:.2f}% of pixels beyond 2/255")


if __name__ == "__main__":
    main()
