"""Fixtures of the model tests: the pretrained network (weights imported from the official ONNX)."""

from __future__ import annotations

import pytest

from rvmkit.weights import load_model


@pytest.fixture(scope="session")
def pretrained(checkpoint):
    return load_model(checkpoint)
