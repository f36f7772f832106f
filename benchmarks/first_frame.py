"""Issue 22 item 5: `rvmkit matte` from launch to its first frame written, at one size (default 640x480,
ratio 0.5), fresh processes, variants alternating in rounds; medians reported with the load average.

A variant is a Python prelude run before rvmkit's CLI in the same process (`python -c PRELUDE; main()`),
so kernel policies can be compared without options in the product:

    PYTHONPATH=src python benchmarks/first_frame.py --rounds 5
    PYTHONPATH=src python benchmarks/first_frame.py --variants default wait --rounds 5

`--importtime` adds `python -X importtime`'s top-level imports of the default variant.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import perf  # noqa: E402 - the benchmarks' shared helpers

MAIN = "from rvmkit.__main__ import main; sys.exit(main())"
VARIANTS = {
    # what rvmkit does
    "default": "",
    # before issue 22: numba starts loading at the backend's construction, numpy downsamples while it
    # loads, the tail waits for it
    "before": "import rvmkit.runtime.kernels as k; k.warm_up_later = k.warm_up; "
              "k._kernels_for = lambda g, tail: (k.warm_up(wait=tail), k._compiled)[1]",
    # numba starts loading at the backend's construction; the tail and frames after the first wait for it
    # (rvmkit's policy above 640x480, but started earlier than rvmkit can: the size is not known then)
    "wait": "import rvmkit.runtime.kernels as k; k.NUMPY_TAIL_MAX_PIXELS = 0; k.warm_up_later = k.warm_up",
    # rvmkit's policy above 640x480 at any size: numba starts at the first downsample, everything waits
    "big-frame-policy": "import rvmkit.runtime.kernels as k; k.NUMPY_TAIL_MAX_PIXELS = 0",
    # numba starts loading at the backend's construction, the tail in numpy while it loads
    "numpy-tail-early-load": "import rvmkit.runtime.kernels as k; k.warm_up_later = k.warm_up",
    # no numba at all: numpy does everything (the floor without numba's import)
    "no-numba": "import rvmkit.runtime.kernels as k; k.HAVE_NUMBA = False",
    # the fast path forced: no per-size path choice read from the cache (rvmkit before that choice)
    "fast-forced": "import os; os.environ['RVMKIT_FAST'] = '1'",
    # the fast path's two stages never loaded (RVMKIT_SPLIT=0): what loading them costs the first frame
    "no-stages": "import os; os.environ['RVMKIT_SPLIT'] = '0'",
}


def argv_for(variant: str, clip: Path, tmp: Path, ratio: float) -> list[str]:
    base = perf.rvmkit_argv(clip, tmp / "c.mp4", tmp / "a.mp4", ratio)
    prelude = VARIANTS[variant]
    code = f"import sys; sys.argv = ['rvmkit', *sys.argv[1:]]; {prelude + '; ' if prelude else ''}{MAIN}"
    return [base[0], "-c", code, *base[3:]]


#: imported by the numba loader thread, which starts after the first frame up to 640x480
NUMBA_THREAD = ("numba", "llvmlite", "scipy", "rvmkit.runtime.kernels_numba", "numpy.ma")


def import_split(argv: list[str]) -> dict:
    """`python -X importtime`: top-level imports (cumulative ms) of the main thread and of the numba
    loader thread (NUMBA_THREAD; it runs after the first frame up to 640x480), the five costliest of each."""
    result = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], capture_output=True, text=True,
                            timeout=300)
    parts: dict[str, list[tuple[float, str]]] = {"main": [], "numba loader": []}
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self, cumulative, name = line[len("import time:"):].split("|")
        if not name.startswith("  "):  # depth 0
            part = "numba loader" if name.strip().startswith(NUMBA_THREAD) else "main"
            parts[part].append((int(cumulative) / 1000, name.strip()))
    return {part: {"total_ms": round(sum(ms for ms, _ in rows), 1),
                   "top_ms": {name: round(ms, 1) for ms, name in sorted(rows, reverse=True)[:5]}}
            for part, rows in parts.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--frames", type=int, default=12, help="clip length (default 12)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["default", "before"])
    parser.add_argument("--importtime", action="store_true")
    parser.add_argument("--json", type=Path, default=HERE / "first_frame.json")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    from rvmkit import bench

    with tempfile.TemporaryDirectory(prefix="rvmkit-ff-") as name:
        tmp = Path(name)
        clip = perf.held_out_clip(tmp / "clip.mp4", width, height, args.frames)
        perf.first_frame(argv_for("default", clip, tmp, args.ratio))  # warm caches (graph, numba)
        runs: dict[str, list[float]] = {v: [] for v in args.variants}
        cpus: dict[str, list[float]] = {v: [] for v in args.variants}
        loads = []
        for rnd in range(args.rounds):
            order = args.variants if rnd % 2 == 0 else args.variants[::-1]
            for variant in order:
                loads.append(os.getloadavg()[0])
                wall, cpu = perf.first_frame(argv_for(variant, clip, tmp, args.ratio))
                runs[variant].append(round(wall, 3))
                cpus[variant].append(round(cpu, 2))
            print(f"round {rnd}: " + ", ".join(f"{v} {runs[v][-1]:.3f} s ({cpus[v][-1]:.2f} CPU s)"
                                               for v in args.variants), flush=True)
        imports = import_split(perf.rvmkit_argv(clip, tmp / "c.mp4", tmp / "a.mp4", args.ratio)) \
            if args.importtime else None
    result = {"machine": bench.machine(), "size": args.size, "ratio": args.ratio,
              "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "load_1min": {"min": min(loads), "max": max(loads)},
              "median_s": {v: statistics.median(r) for v, r in runs.items()}, "runs": runs,
              "median_cpu_s": {v: statistics.median(r) for v, r in cpus.items()}, "cpu_runs": cpus,
              "imports": imports}
    for variant, median in result["median_s"].items():
        print(f"{variant:12s} first frame median {median:.3f} s, {result['median_cpu_s'][variant]:.2f} CPU s"
              f"  (runs {runs[variant]})")
    print(f"load average {min(loads):.1f}-{max(loads):.1f}; {result['machine'].get('cpu')}")
    if imports:
        for part, info in imports.items():
            print(f"imports, {part}: {info['total_ms']} ms: {info['top_ms']}")
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
