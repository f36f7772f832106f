"""x264 settings at 4 Mbps, composition and alpha: PSNR against the lossless render, and encoder CPU time.

    .venv/bin/python benchmarks/encoder.py [--frames 150] [--size 1920x1080] [--settings NAME ...]
        [--json benchmarks/encoder.json]

The held-out clip (sister, milk, book; benchmarks/perf.py) is matted once with the official model (ORT,
float outputs); the compositions over RVM green, rounded to uint8 as rvmkit writes them, are encoded with
each setting as a fresh libx264 stream at 4 Mbps (ABR, yuv420p, as `rvmkit matte --output-video-mbps 4`
and the naive loop do), decoded, and compared with the float composite. CPU time is the process's user +
system time over the encode (x264's own threads included), so it holds on a loaded machine better than
wall time; it is still approximate there.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SETTINGS = {  # name -> x264 options (all at 4 Mbps); "medium" is libx264's default: the naive loop
    "medium (naive loop)": {},
    "veryfast (rvmkit now)": {"preset": "veryfast"},
    "veryfast aq-mode=2": {"preset": "veryfast", "x264-params": "aq-mode=2"},
    "veryfast aq-mode=3": {"preset": "veryfast", "x264-params": "aq-mode=3"},
    "veryfast psy-rd=0": {"preset": "veryfast", "x264-params": "psy-rd=0,0"},
    "veryfast tune=psnr": {"preset": "veryfast", "tune": "psnr"},
    "veryfast lookahead 40": {"preset": "veryfast", "x264-params": "rc-lookahead=40"},
    "veryfast subme=6 ref=2": {"preset": "veryfast", "x264-params": "subme=6:ref=2"},
    "veryfast trellis=1": {"preset": "veryfast", "x264-params": "trellis=1"},
    "veryfast bframes=5": {"preset": "veryfast", "x264-params": "bframes=5:b-adapt=1"},
    "veryfast aq-mode=2 trellis=1": {"preset": "veryfast", "x264-params": "aq-mode=2:trellis=1"},
    "veryfast aq-mode=2 lookahead 20": {"preset": "veryfast", "x264-params": "aq-mode=2:rc-lookahead=20"},
    "faster": {"preset": "faster"},
    "fast": {"preset": "fast"},
    "superfast": {"preset": "superfast"},
    "superfast aq-mode=2": {"preset": "superfast", "x264-params": "aq-mode=2"},
    "ultrafast aq-mode=2": {"preset": "ultrafast", "x264-params": "aq-mode=2"},
}
ALPHA_SETTINGS = {  # the alpha stream (grey), same bitrate
    "veryfast aq-mode=2 (rvmkit)": {"preset": "veryfast", "x264-params": "aq-mode=2"},
    "superfast aq-mode=2": {"preset": "superfast", "x264-params": "aq-mode=2"},
    "ultrafast": {"preset": "ultrafast"},
    "medium (naive loop)": {},
}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def lossless(clip: Path, ratio: float) -> dict[str, tuple[list[np.ndarray], list[np.ndarray]]]:
    """{"composition": (float composites HxWx3 in 0..255, their uint8 roundings), "alpha": (float alpha
    HxW in 0..255, uint8)} from the official model."""
    import av

    from rvmkit.bench import GREEN
    from rvmkit.runtime.base import to_input
    from rvmkit.runtime.onnxruntime import OnnxRuntimeBackend
    from rvmkit.weights import official_onnx_path

    backend = OnnxRuntimeBackend(official_onnx_path())
    bg = np.array(GREEN, np.float32).reshape(3, 1, 1)
    floats, rounded, alpha_floats, alphas, state = [], [], [], [], None
    with av.open(str(clip)) as container:
        for frame in container.decode(video=0):
            fgr, pha, state = backend.step(to_input(frame.to_ndarray(format="rgb24")), state, ratio)
            comp = ((fgr[0] * 255 - bg) * pha[0] + bg).transpose(1, 2, 0)
            floats.append(comp.astype(np.float32))
            rounded.append(np.clip(comp + 0.5, 0, 255).astype(np.uint8))
            alpha_floats.append(pha[0, 0] * np.float32(255))
            alphas.append((pha[0, 0] * 255 + 0.5).astype(np.uint8))
    return {"composition": (floats, rounded), "alpha": (alpha_floats, alphas)}


def encode(frames: list[np.ndarray], path: Path, options: dict[str, str]) -> float:
    """Encode at 4 Mbps with `options`; returns the CPU seconds spent."""
    import av

    height, width = frames[0].shape[:2]
    started = _cpu()
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = 4_000_000
        stream.options = dict(options)
        for image in frames:
            kind = "gray" if image.ndim == 2 else "rgb24"
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format=kind)))
        out.mux(stream.encode(None))
    return _cpu() - started


def psnr(path: Path, reference: list[np.ndarray]) -> float:
    import av

    squared, values = 0.0, 0
    with av.open(str(path)) as container:
        for frame, ref in zip(container.decode(video=0), reference, strict=True):
            decoded = frame.to_ndarray(format="gray" if ref.ndim == 2 else "rgb24").astype(np.float32)
            squared += float(np.square(decoded - ref).sum())
            values += ref.size
    return float(10 * np.log10(255.0 ** 2 / (squared / values)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--ratio", type=float, default=0.25)
    parser.add_argument("--settings", nargs="+", help="a subset of the settings, by name (default: all)")
    parser.add_argument("--json", type=Path, default=HERE / "encoder.json")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    import perf

    width, height = (int(v) for v in args.size.split("x"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="rvmkit-encoder-") as tmp:
        clip = perf.held_out_clip(Path(tmp) / "clip.mp4", width, height, args.frames)
        renders = lossless(clip, args.ratio)
        for stream, settings in (("composition", SETTINGS), ("alpha", ALPHA_SETTINGS)):
            floats, rounded = renders[stream]
            for name, options in settings.items():
                if args.settings and name not in args.settings:
                    continue
                out = Path(tmp) / "out.mp4"
                cpu = encode(rounded, out, options)
                rows.append({"stream": stream, "setting": name, "options": options,
                             "psnr_db": round(psnr(out, floats), 3),
                             "cpu_ms_per_frame": round(1000 * cpu / len(rounded), 1),
                             "mb": round(out.stat().st_size / 1e6, 2)})
                row = rows[-1]
                print(f"  {stream:11s} {name:30s} {row['psnr_db']:7.3f} dB "
                      f"{row['cpu_ms_per_frame']:6.1f} ms CPU",
                      flush=True)
    perf.save_rows(args.json, rows, ["stream", "setting", "psnr_db", "cpu_ms_per_frame", "mb"],
                   clip=f"{'+'.join(perf.HELD_OUT)} first {args.frames} frames at {args.size}",
                   ratio=args.ratio)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
