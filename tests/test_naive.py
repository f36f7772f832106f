"""The alternatives' naive loop (`rvmkit.naive`), the benchmarks' baseline: it mattes every frame of a real
clip into a green composition and an alpha video the size of the input, with the official model's
alpha; as a process it names its arguments when they are wrong."""

from __future__ import annotations

import subprocess
import sys

import av
import numpy as np
from PIL import Image

from conftest import official_alphas, read_frames, write_clip
from rvmkit.naive import naive_loop


def _decoded(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_every_frame_is_matted_with_the_official_alpha(tmp_path, official_onnx):
    frames = [np.asarray(Image.fromarray(rgb).resize((160, 120), Image.BILINEAR))
              for rgb in read_frames("milk", 6)]
    clip = write_clip(tmp_path / "in.mp4", frames)
    count, seconds = naive_loop(clip, tmp_path / "comp.mp4", tmp_path / "alpha.mp4", official_onnx, 0.5)
    assert count == 6 and seconds > 0
    composition, alpha = _decoded(tmp_path / "comp.mp4"), _decoded(tmp_path / "alpha.mp4")
    assert [f.shape for f in composition] == [f.shape for f in alpha] == [(120, 160, 3)] * 6
    decoded_input = _decoded(clip)  # the loop mattes what it decodes, as the reference does here
    reference = official_alphas(official_onnx, decoded_input, 0.5)
    for ours, ref in zip(alpha, reference, strict=True):
        assert np.abs(ours[:, :, 0].astype(np.float32) - ref[0, 0] * 255).mean() < 4  # H.264 at 4 Mb/s


def test_as_a_process_it_names_its_arguments():
    result = subprocess.run([sys.executable, "-m", "rvmkit.naive", "only-one"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip() == "usage: python -m rvmkit.naive INPUT COMPOSITION ALPHA MODEL RATIO"
