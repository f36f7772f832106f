"""A timeline of one `rvmkit matte` run to its first frames, on stderr: seconds since the process started
(wall, and the process's CPU seconds), when the backend is built, numba starts and ends loading, each
downsample / inference / tail runs (with the CPU its thread spent), the sinks open and write, and the
progress line updates. It is how benchmarks/LEVERS.md says where the time before the first frame goes.

    PYTHONPATH=src python benchmarks/first_frame_trace.py [--before] matte CLIP --output-composition C.mp4 \\
        --output-alpha A.mp4 --downsample-ratio 0.5 --overwrite 2>&1 | grep '^\\['

--before: numba starts loading at the backend's construction and the tail waits for it (issue 22's start).
"""

from __future__ import annotations

import os
import sys
import time

_STAT = open("/proc/self/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115 - read once, at start
T0 = time.time() - (time.clock_gettime(time.CLOCK_BOOTTIME) - int(_STAT[19]) / os.sysconf("SC_CLK_TCK"))


def log(message: str) -> None:
    sys.stderr.write(f"\n[{time.time() - T0:.3f} cpu {time.process_time():.2f}] {message}\n")


def wrap(owner: object, name: str, label: str) -> None:
    """Log the start and end (with the thread's CPU) of owner.name."""
    original = getattr(owner, name)

    def traced(*args: object, **kwargs: object) -> object:
        started = time.thread_time()
        log(f"{label} start")
        result = original(*args, **kwargs)
        log(f"{label} end, thread CPU {time.thread_time() - started:.3f} s")
        return result

    setattr(owner, name, traced)


def main() -> None:
    log("python started")
    import rvmkit.progress as progress
    import rvmkit.runtime.kernels as kernels
    import rvmkit.runtime.ort_fast as ort_fast
    import rvmkit.video.writer as writer

    args = sys.argv[1:]
    if args[:1] == ["--before"]:
        args = args[1:]
        kernels.warm_up_later = kernels.warm_up
        kernels._kernels_for = lambda g, tail: (kernels.warm_up(wait=tail), kernels._compiled)[1]
    wrap(kernels, "_load", "numba load")
    wrap(kernels, "downsample", "downsample")
    wrap(kernels, "tail_composite", "tail")
    wrap(ort_fast.FastOnnxRuntimeBackend, "__init__", "backend")
    wrap(ort_fast.FastOnnxRuntimeBackend, "infer_low_res", "inference")
    wrap(writer.VideoSink, "__init__", "sink open")
    wrap(writer.VideoSink, "write", "sink write")
    wrap(progress.Progress, "update", "progress update")
    sys.argv = ["rvmkit", *args]
    from rvmkit.__main__ import main as rvmkit_main

    sys.exit(rvmkit_main())


if __name__ == "__main__":
    main()
