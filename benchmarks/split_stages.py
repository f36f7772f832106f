"""The fast path's low-res graph whole (one session, two threads) against cut in two stages (two
single-threaded sessions, one frame apart, as the pipeline runs them), model only, per size.

    PYTHONPATH=src python benchmarks/split_stages.py [--frames 24] [--rounds 3] [--json OUT]

Per size and round, the same real frames (book.mkv scaled) go through each form as a stream (the state
carried), the forms alternating round by round; wall and process CPU time per frame are the medians of
the rounds. Both forms' coefficients are compared (max abs difference). Machine and load recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from core_speed import DATA, cpu_name  # noqa: E402

from rvmkit.cache import official_onnx_path  # noqa: E402
from rvmkit.runtime.ort_fast import FastOnnxRuntimeBackend  # noqa: E402

SIZES = ((320, 240, 1.0), (640, 480, 0.5), (1280, 720, 0.375), (1920, 1080, 0.25))


def frames(width: int, height: int, count: int) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    with av.open(str(DATA / "book.mkv")) as container:
        for frame in container.decode(video=0):
            out.append(frame.to_ndarray(format="rgb24", width=width, height=height))
            if len(out) == count:
                break
    return out


def whole(backend: FastOnnxRuntimeBackend, frames: list) -> list[np.ndarray]:
    state, out = None, []
    for small in frames:
        coef_a, _, state = backend.infer_low_res(small, state)
        out.append(coef_a)
    return out


def staged(backend: FastOnnxRuntimeBackend, frames: list) -> list[np.ndarray]:
    """The first stage in this thread, the second in another, one frame handed over at a time."""
    handed: queue.Queue = queue.Queue(1)
    out: list[np.ndarray] = []

    def second() -> None:
        state = None
        while (middles := handed.get()) is not None:
            raws, state = backend.infer_second(middles, state, 0.0)
            out.append(raws[0][0])

    worker = threading.Thread(target=second)
    worker.start()
    state = None
    for prepared in frames:
        middles, state = backend.infer_first([prepared], state, 0.0)
        assert hasattr(middles[0], "outputs"), "not run on the stages"
        handed.put(middles)
    handed.put(None)
    worker.join()
    return out


def timed(run, backend, inputs) -> tuple[float, float, list[np.ndarray]]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = run(backend, inputs)
    return ((time.perf_counter() - wall) * 1e3 / len(inputs), (time.process_time() - cpu) * 1e3 / len(inputs),
            out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    model = official_onnx_path()
    os.environ["RVMKIT_SPLIT"] = "1"  # the backend with stages prepares its frames for them
    forms = {"whole, 2 threads": (FastOnnxRuntimeBackend(model, split=False), whole),
             "two stages, 1+1 threads": (FastOnnxRuntimeBackend(model, split=True), staged)}
    rows = []
    for width, height, ratio in SIZES:
        rgbs = frames(width, height, args.frames)
        inputs = {name: [form.prepare(rgb, ratio) for rgb in rgbs] for name, (form, _) in forms.items()}
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in forms}
        outputs = {}
        for round_ in range(args.rounds + 1):  # round 0 warms up
            for name in (forms if round_ % 2 else reversed(forms)):
                form, run = forms[name]
                wall, cpu, outputs[name] = timed(run, form, inputs[name])
                if round_:
                    results[name].append((wall, cpu))
        diff = max(float(np.abs(a - b).max()) for a, b in zip(*outputs.values(), strict=True))
        row = {"size": f"{width}x{height}@{ratio}", "load_1min": round(os.getloadavg()[0], 2),
               "coef_max_abs_diff": diff}
        for name, values in results.items():
            row[name] = {"wall_ms": round(statistics.median(v[0] for v in values), 1),
                         "cpu_ms": round(statistics.median(v[1] for v in values), 1)}
        rows.append(row)
        print(json.dumps(row))
    report = {"what": "model only: low-res graph whole vs two stages, ms per frame (median of rounds)",
              "command": " ".join(["benchmarks/split_stages.py", *sys.argv[1:]]),
              "machine": {"cpu": cpu_name(), "cores": os.cpu_count()}, "frames": args.frames,
              "rounds": args.rounds, "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
