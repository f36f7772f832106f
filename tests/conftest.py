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
