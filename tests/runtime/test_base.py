"""The Backend interface's shared pieces (`rvmkit.runtime.base`): the input layout, the default
prepare/infer/finish stages over `step`, and FrameMatter for front-ends."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import read_frames
from rvmkit.runtime.base import Backend, FrameMatter, to_input


class StepCounter(Backend):
    """A backend with only `step`: pha holds how many frames the state has seen, fgr is the input."""

    name = "counter"

    def step(self, src, state, downsample_ratio):
        seen = 0 if state is None else state
        return src.copy(), np.full((1, 1, *src.shape[2:]), seen / 255, np.float32), seen + 1


def frames_seen(result) -> int:
    return int(round(result.arrays()[1][0, 0, 0] * 255))


def test_to_input_layout_and_scale():
    rgb = read_frames("milk", 1)[0]
    src = to_input(rgb)
    assert src.shape == (1, 3, *rgb.shape[:2]) and src.dtype == np.float32
    np.testing.assert_allclose(src[0, :, 10, 20] * 255, rgb[10, 20], atol=1e-3)


def test_default_stages_run_step_frame_by_frame_in_order():
    backend = StepCounter()
    rgbs = [np.full((4, 6, 3), value, np.uint8) for value in (10, 20, 30)]
    raws, state = backend.infer([backend.prepare(rgb, 0.5) for rgb in rgbs], None, 0.5)
    assert state == 3
    results = [backend.finish(rgb, raw, 0.5) for rgb, raw in zip(rgbs, raws, strict=True)]
    assert [frames_seen(result) for result in results] == [0, 1, 2]
    fgr, pha = results[2].arrays()
    assert fgr.shape == (3, 4, 6) and pha.shape == (1, 4, 6)
    np.testing.assert_allclose(fgr * 255, 30, atol=1e-3)


def test_a_one_stage_backend_has_a_first_stage_that_passes_the_frames_on():
    """The two-stage defaults of a one-stage backend: `infer_first` hands the prepared frames on with the
    state untouched, `infer_second` is `infer`; what the pipeline would run in two threads is `infer`."""
    backend = StepCounter()
    assert backend.two_stage is False
    rgbs = [np.full((4, 6, 3), value, np.uint8) for value in (10, 20, 30)]
    inputs = [backend.prepare(rgb, 0.5) for rgb in rgbs]
    middles, state = backend.infer_first(inputs, 7, 0.5)
    assert state == 7 and len(middles) == 3 and all(a is b for a, b in zip(middles, inputs, strict=True))
    raws, state = backend.infer_second(middles, 1, 0.5)
    assert state == 4
    seen = [frames_seen(backend.finish(rgb, raw, 0.5)) for rgb, raw in zip(rgbs, raws, strict=True)]
    assert seen == [1, 2, 3]  # the state given carried on


def test_frame_matter_carries_the_state_until_reset():
    matter = FrameMatter(StepCounter(), 0.5)
    rgb = np.zeros((6, 8, 3), np.uint8)
    assert [frames_seen(matter(rgb)) for _ in range(3)] == [0, 1, 2]
    matter.reset()
    assert frames_seen(matter(rgb)) == 0


def test_a_backend_that_cannot_read_its_state_back_says_so():
    from rvmkit.runtime.base import Backend

    class Opaque(Backend):
        name = "opaque"

        def step(self, src, state, downsample_ratio):
            return src, src[:, :1], object()

    _, _, state = Opaque().step(np.zeros((1, 3, 2, 2), np.float32), None, 1.0)
    with pytest.raises(NotImplementedError, match="opaque backend does not expose its recurrent state"):
        Opaque().states(state)
