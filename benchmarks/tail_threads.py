"""The fast path's full-resolution float tail (`kernels.tail_float`) on one thread vs numba's parallel
kernel, per frame size, alternating call by call; medians with the load average. Sets
kernels.SERIAL_TAIL_MAX_PIXELS (the size up to which the tail stays on one thread).

    PYTHONPATH=src python benchmarks/tail_threads.py [--calls 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

SIZES = [(320, 240, 1.0), (640, 480, 0.5), (1280, 720, 0.25), (1920, 1080, 0.25)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args(argv)
    from rvmkit.runtime import kernels

    kernels.warm_up(wait=True)
    kernels.SERIAL_TAIL_MAX_PIXELS = 0  # let parallel=True mean parallel here
    rng = np.random.default_rng(0)
    loads = []
    for width, height, ratio in SIZES:
        geometry = kernels.Geometry(height, width, ratio)
        frame = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        coef = rng.normal(0, 0.3, (2, 1, 4, *geometry.small)).astype(np.float32)
        times: dict[bool, list[float]] = {False: [], True: []}
        for call in range(args.calls + 2):
            loads.append(os.getloadavg()[0])
            for parallel in ((False, True) if call % 2 == 0 else (True, False)):
                started = time.perf_counter()
                kernels.tail_float(frame, coef[0], coef[1], geometry, parallel=parallel)
                if call >= 2:
                    times[parallel].append(1000 * (time.perf_counter() - started))
        one, two = statistics.median(times[False]), statistics.median(times[True])
        print(f"{width}x{height}: one thread {one:.1f} ms, parallel {two:.1f} ms", flush=True)
    print(f"load average {min(loads):.1f}-{max(loads):.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
