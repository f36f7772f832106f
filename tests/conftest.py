"""Shared fixtures: the real clips in ../shared/data and the official pretrained model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
CLIPS = {name: DATA / f"{name}.mkv" for name in ("book", "milk", "sister")}


def read_frames(clip: str = "book", count: int = 20) -> list[np.ndarray]:
    """The first `count` frames of a real clip as HxWx3 uint8 RGB."""
    import av

    frames = []
    with av.open(str(CLIPS[clip])) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                break
    return frames


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 30, size: tuple[int, int] | None = None,
               audio: bool = False) -> Path:
    """An H.264 .mp4 of real frames (resized to `size` if given), with a 440 Hz AAC track when `audio`."""
    import av

    width, height = size or (frames[0].shape[1], frames[0].shape[0])
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height = width, height
        video.pix_fmt, video.options = "yuv420p", {"crf": "18", "preset": "veryfast"}
        sound = container.add_stream("aac", rate=48000) if audio else None
        if sound is not None:
            sound.layout = "mono"
        for index, rgb in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if size is not None:
                picture = picture.reformat(width=width, height=height)
            picture.pts = index
            container.mux(video.encode(picture))
        container.mux(video.encode(None))
        if sound is not None:
            count = int(48000 * len(frames) / fps)
            tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(count) / 48000)).astype(np.float32)[None]
            for start in range(0, count, 1024):
                chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, start:start + 1024]),
                                                   format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = 48000, start
                container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))
    return path


@pytest.fixture(scope="session")
def official_onnx() -> Path:
    from rvmkit import weights

    return weights.official_onnx_path()


@pytest.fixture(scope="session")
def checkpoint() -> Path:
    from rvmkit import weights

    return weights.default_checkpoint_path()


@pytest.fixture(scope="session")
def book_frames() -> list[np.ndarray]:
    return read_frames("book", 20)
