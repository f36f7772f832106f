"""The fast path's session settings side by side on this CPU (issue 15's per-CPU levers), model only.

    .venv/bin/python benchmarks/session_levers.py [--frames 20] [--sizes 1920x1080@0.25 640x480@0.5]
        [--variants default "refiner and crops not blocked"] [--json F]

Variants of `FastOnnxRuntimeBackend` on held-out frames (sister, milk, book): the default (split decoder
convs, the refiner and the decoder's crops rewritten for blocked kernels, NCHWc layouts through ORT's
"all" level, threads = cores, no spinning) against each setting changed alone. Each variant runs its
frames alone (interleaving the sessions frame by frame thrashed the caches and misranked them), in
--reps rounds whose order alternates; the median ms of each round, best round kept. Results in
benchmarks/session_levers.json with the machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
VARIANTS = {  # name -> FastOnnxRuntimeBackend options
    "default": {},
    "convs not split": {"split_convs": False},
    "refiner and crops not blocked": {"blocked": False},
    "no NCHWc (level extended)": {"opt_level": "extended"},
    "1 intra-op thread": {"threads": 1},
    "spinning": {"spinning": True},
    # ORT session config entries (issue 22 item 3, AVX-512): set while the variant's session is built
    "denormals as zero": {"config": {"session.set_denormal_as_zero": "1"}},
    "dynamic block base 4": {"config": {"session.dynamic_block_base": "4"}},
    # threads None lets ORT pick the count and pin its workers; 2 named: no pinning
    "2 threads named (no pinning)": {"threads": 2},
}


def fast_backend(name: str):
    """The variant's backend; session config entries added to every session options it builds."""
    from rvmkit.runtime import ort_fast
    from rvmkit.weights import official_onnx_path

    options = dict(VARIANTS[name])
    config = options.pop("config", {})
    original = ort_fast.session_options

    def with_config(*args, **kwargs):
        built = original(*args, **kwargs)
        for key, value in config.items():
            built.add_session_config_entry(key, value)
        return built

    ort_fast.session_options = with_config
    try:
        return ort_fast.FastOnnxRuntimeBackend(official_onnx_path(), **options)
    finally:
        ort_fast.session_options = original


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--sizes", nargs="+", default=["1920x1080@0.25", "640x480@0.5"])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS),
                        help="a subset (default: all)")
    parser.add_argument("--json", type=Path, default=HERE / "session_levers.json")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    import perf

    from rvmkit import bench

    rows = []
    for text in args.sizes:
        width, height, ratio = bench.parse_size_ratio(text)
        with tempfile.TemporaryDirectory(prefix="rvmkit-levers-") as tmp:
            clip = perf.held_out_clip(Path(tmp) / "clip.mp4", width, height, args.frames + 2)
            frames = bench.load_frames(clip, width, height, args.frames + 2)
        backends = {name: fast_backend(name) for name in args.variants}
        rounds: dict[str, list[float]] = {name: [] for name in backends}
        for rep in range(args.reps):
            for name in (list(backends) if rep % 2 == 0 else list(reversed(backends))):
                seconds = bench.time_interleaved({name: bench.backend_stepper(backends[name], frames, ratio)},
                                                 len(frames))[name]
                rounds[name].append(bench.summarize(name, seconds, width, height, ratio).median_ms)
        base = min(rounds[args.variants[0]])
        for name, medians in rounds.items():
            rows.append({"size": f"{width}x{height}", "ratio": ratio, "variant": name,
                         "median_ms": min(medians), "rounds": medians,
                         f"vs {args.variants[0]}": round(base / min(medians), 3)})
        for backend in backends.values():
            backend.close()
    perf.save_rows(args.json, rows, ["size", "ratio", "variant", "median_ms", f"vs {args.variants[0]}"],
                   frames=args.frames)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
