"""Property suite over `rvmkit live` option sets: numbers from the sensible to the absurd (zero,
negative, huge, nan, inf, not numbers), outputs that collide with each other or with the input, existing
files with and without --overwrite. Any option set is either refused up front (one line, exit 2, nothing
written or replaced) or runs and writes every output it names.

The engine is a pass-through double (this is about options, not matting); the source is a 3-frame
MPEG-TS file played with --realtime. Fast in CI (fixed seed, few examples); RVMKIT_FUZZ_EXAMPLES=500
runs longer.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from unittest import mock

import pytest
from fuzz_media import assert_refused, digest, fuzz_settings, run_rvmkit, tree, working_directory
from hypothesis import given
from hypothesis import strategies as st
from live.streaming import free_port, write_stream_file

from conftest import read_frames
from rvmkit.live import loop
from rvmkit.runtime.base import Backend

#: values that can never work: zero, negative, huge, not a number, no number at all
pytestmark = pytest.mark.slow  # a Hypothesis suite of whole live runs

ABSURD = ("0", "-1", "-0.5", "1e-9", "1e300", "1001", "3601", "nan", "inf", "-inf", "x", "")
#: paths as typed, relative to the run's folder: clip.ts is the source, old.mkv exists already
PATHS = ("a.mkv", "b.mp4", "c.webm", "d.mov", "frames", "frames/", "frames.v2/", "frames/e.mp4", "s.json",
         "frames/s.json", "./a.mkv", "clip.ts", "old.mkv", "new/deeper/f.mkv")
#: option -> values that may work (each is also drawn from ABSURD)
OPTIONAL = {
    "--max-fps": ("1", "2.5", "30", "1000"), "--timeout": ("0.1", "2", "10", "3600"),
    "--source-fps": ("0.1", "30", "1000"), "--crf": ("0", "23", "51", "52", "63", "64", "2.5"),
    "--output-video-mbps": ("0.5", "4", "1000"), "--downsample-ratio": ("auto", "0.25", "0.5", "1", "1.5"),
    "--seq-chunk": ("1", "2"), "--source-size": ("64x48", "0x10", "100000x100000"),
    "--background": ("transparent", "blue", "0,0,0", "missing.png", "#12345"),
}
RESIZES = ("0", "1", "2", "16", "64", "16385", "-5", "1000000000")


class Passthrough(Backend):
    name = "double"

    def step(self, src, state, downsample_ratio):  # type: ignore[no-untyped-def]
        return src, src[:, :1], state


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_stream_file(tmp_path_factory.mktemp("fuzz-live") / "clip.ts", read_frames("book", 3), fps=10,
                             size=(64, 48))


@st.composite
def option_sets(draw: st.DrawFn) -> list[str]:
    """An `rvmkit live clip.ts ...` command line as a user might type it."""
    args = ["clip.ts"] + (["--realtime"] if draw(st.integers(0, 9)) else [])
    for option, values in OPTIONAL.items():
        if draw(st.integers(0, 5)) == 0:
            args += [option, draw(st.sampled_from(values) | st.sampled_from(ABSURD))]
    if draw(st.integers(0, 5)) == 0:
        args += ["--input-resize", draw(st.sampled_from(RESIZES)), draw(st.sampled_from(RESIZES))]
    for option in ("--record", "--record", "--record-alpha", "--stats"):
        if draw(st.booleans()):
            args += [option, draw(st.sampled_from(PATHS))]
    if draw(st.integers(0, 3)) == 0:
        args += ["--output", "UDP"]  # a port nothing listens on, chosen when run
    if draw(st.integers(0, 3)) == 0:
        args.append("--overwrite")
    return args + ["--quiet"]


def _written(args: list[str]) -> list[str]:
    options = ("--record", "--record-alpha", "--stats")
    return [value for option, value in zip(args, args[1:]) if option in options]


def _assert_refused(status: int, stderr: str) -> None:
    """`fuzz_media.assert_refused`, where argparse names the subcommand ('rvmkit live: error: ...')."""
    assert_refused(status, stderr.replace("rvmkit live: error: ", "rvmkit: error: ", 1))


@fuzz_settings(60)
@given(args=option_sets())
def test_any_live_option_set_is_refused_up_front_or_runs(args: list[str], clip: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="rvmkit-fuzz-live-") as tmp:
        root = Path(tmp)
        shutil.copy(clip, root / "clip.ts")
        (root / "old.mkv").write_bytes(b"the user's file")
        before = {name: digest(root / name) for name in ("clip.ts", "old.mkv")}
        with working_directory(root), mock.patch.object(loop, "_load_engine", lambda config: Passthrough()):
            status, stderr = run_rvmkit(["live", *[f"udp://127.0.0.1:{free_port()}" if arg == "UDP" else arg
                                                   for arg in args]])
        if status == 2:
            _assert_refused(status, stderr)
            assert tree(root) == {"clip.ts", "old.mkv"}, stderr
            assert {name: digest(root / name) for name in before} == before, stderr
            return
        assert status == 0, (args, stderr)
        assert digest(root / "clip.ts") == before["clip.ts"]  # the input is never written
        if "--overwrite" not in args:
            assert digest(root / "old.mkv") == before["old.mkv"]
        for path in _written(args):
            assert (root / path).exists(), (args, path)
            if path.endswith(".json"):
                assert json.loads((root / path).read_text())["totals"]["frames_out"] > 0
        assert not [name for name in tree(root) if "rvmkit-tmp" in name]
