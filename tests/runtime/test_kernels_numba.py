"""The fast path's compiled kernels (`rvmkit.runtime.kernels_numba`) give the bits of the numpy code in
`rvmkit.runtime.kernels`, operation for operation, so a frame matted while numba still loads in the
background comes out the same. The kernels' math itself is tested in test_kernels.py."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import read_frames
from rvmkit.runtime import kernels

RATIO = 0.3


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    """A real frame at an odd size: border weights and truncated low-res sizes both get exercised."""
    return np.ascontiguousarray(read_frames("book", 1)[0][:181, :323])


def test_numpy_versions_give_the_compiled_kernels_bits(frame, monkeypatch):
    geometry = kernels.Geometry(frame.shape[0], frame.shape[1], RATIO)
    rng = np.random.default_rng(0)
    coef_a, coef_b = rng.normal(0, 0.3, (2, 1, 4, *geometry.small)).astype(np.float32)
    background = rng.integers(0, 256, (*frame.shape[:2], 3), dtype=np.uint8)
    small = kernels.downsample(frame, geometry)
    fgr, pha = kernels.tail_float(frame, coef_a, coef_b, geometry)
    composed = [kernels.tail_composite(frame, coef_a, coef_b, geometry, bg, parallel=False)
                for bg in (background, np.array([120, 255, 155], np.uint8))]
    assert kernels._compiled is not None  # the numba kernels ran above
    monkeypatch.setattr(kernels, "HAVE_NUMBA", False)
    assert np.array_equal(kernels.downsample(frame, geometry), small)
    fgr_np, pha_np = kernels.tail_float(frame, coef_a, coef_b, geometry)
    assert fgr_np.shape == fgr.shape == (1, 3, *frame.shape[:2]) and pha_np.shape == pha.shape
    assert np.array_equal(fgr_np, fgr) and np.array_equal(pha_np, pha)
    for bg, (comp, alpha) in zip((background, np.array([120, 255, 155], np.uint8)), composed, strict=True):
        comp_np, alpha_np = kernels.tail_composite(frame, coef_a, coef_b, geometry, bg)
        assert np.array_equal(comp_np, comp) and np.array_equal(alpha_np, alpha)
