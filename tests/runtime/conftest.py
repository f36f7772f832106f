"""Fixtures of the runtime tests: real frames and the official ONNX's alphas, which each backend must give."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import official_alphas, read_frames


@pytest.fixture(scope="session")
def milk_frames() -> list[np.ndarray]:
    return read_frames("milk", 4)


@pytest.fixture(scope="session")
def milk_reference(official_onnx, milk_frames) -> list[np.ndarray]:
    return official_alphas(official_onnx, milk_frames, 0.25)
