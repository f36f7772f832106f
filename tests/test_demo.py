"""`python -m rvmkit.demo` (`rvmkit.demo`), shortened to a few frames: the astronaut clip is matted into
a composition over the gradient, an alpha that holds a person, and a preview, all at the clip's size."""

from __future__ import annotations

import av
import numpy as np
import pytest

from rvmkit.demo import HEIGHT, WIDTH, gradient_background, main


def _decoded(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_a_short_demo_mattes_the_astronaut_over_the_gradient(tmp_path, capsys):
    pytest.importorskip("skimage", reason="the demo's photo comes with scikit-image")
    assert main(["--out", str(tmp_path / "demo"), "--frames", "3", "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == [
        "alpha.mp4", "background.png", "composition.mp4", "input.mp4", "preview.png"]
    assert "matted 3 frames" in capsys.readouterr().out
    alpha = _decoded(tmp_path / "demo" / "alpha.mp4")
    composition = _decoded(tmp_path / "demo" / "composition.mp4")
    assert [f.shape for f in alpha] == [f.shape for f in composition] == [(HEIGHT, WIDTH, 3)] * 3
    foreground = (alpha[0][:, :, 0] > 128).mean()
    assert 0.05 < foreground < 0.95, "a person on a background, not a blank matte"
    corner = composition[0][:8, :8].astype(int).mean((0, 1))  # background there: the gradient's top
    assert np.abs(corner - gradient_background()[:8, :8].mean((0, 1))).max() < 12


def test_a_clip_of_no_frames_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--out", str(tmp_path / "demo"), "--frames", "0"])
    assert exit_.value.code == 2 and "--frames 0: must be at least 1" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
