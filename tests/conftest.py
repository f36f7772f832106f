"""Shared fixtures: the real clips in ../shared/data and the official pretrained model."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
CLIPS = {name: DATA / f"{name}.mkv" for name in ("book", "milk", "sister")}
_PRIVATE_CACHE: list[Path] = []


FAST_ENV = "RVMKIT_FAST"


def pytest_configure(config: pytest.Config) -> None:
    """Run against a private cache holding copies of the user's fetched weights (copies: a test may
    damage them), so what the tests build there (fast graphs of their temporary models) goes away
    with the run. Set in the environment, so CLI subprocesses and Ray workers use it too."""
    from rvmkit import weights

    real = weights.cache_dir()
    private = Path(tempfile.mkdtemp(prefix="rvmkit-test-cache-"))
    for name in (weights.ONNX_NAME, weights.PTH_NAME, weights.PTH_NAME + ".sha256"):
        if (real / name).is_file():
            shutil.copy2(real / name, private / name)
    os.environ[weights.CACHE_ENV] = str(private)
    _PRIVATE_CACHE.append(private)
    # the CPU fast path at every size: which of fast and plain a size would run on is measured only when
    # the machine is quiet, so a suite left to choose would take one path or the other from run to run
    # (tests/runtime/test_path_choice.py checks the choice itself)
    os.environ.setdefault(FAST_ENV, "1")


def pytest_unconfigure(config: pytest.Config) -> None:
    for private in _PRIVATE_CACHE:
        shutil.rmtree(private, ignore_errors=True)


#: fixtures that start something slow (a Ray cluster, a torch ONNX export): every test using one is `slow`
SLOW_FIXTURES = frozenset({"ray_local", "ray_up", "first_run", "runs", "seed_export", "fp16_export"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that need a slow fixture `slow`: `pytest -m "not slow"` is the quick run (about a
    minute); `make test` and CI run everything."""
    for item in items:
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """`rvmkit ARGV` in this process: (exit status, stdout, stderr)."""
    import contextlib
    import io

    from rvmkit.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


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


BARS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255], [255, 0, 255],
                 [200, 60, 30], [40, 90, 220]], np.uint8)


def with_colour_bars(rgb: np.ndarray) -> np.ndarray:
    """A real frame with 8 saturated patches across its top 64 rows, where matrix mix-ups show."""
    out = rgb.copy()
    width = out.shape[1] // len(BARS)
    for index, colour in enumerate(BARS):
        out[:64, index * width:(index + 1) * width] = colour
    return out


def bar_colours(rgb: np.ndarray) -> np.ndarray:
    """The mean colour at the centre of each patch drawn by `with_colour_bars`."""
    width = rgb.shape[1] // len(BARS)
    third = width // 3
    return np.array([rgb[24:40, i * width + third:(i + 1) * width - third, :3].reshape(-1, 3).mean(0)
                     for i in range(len(BARS))])


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 30, size: tuple[int, int] | None = None,
               audio: bool = False, rotation: int = 0, colorspace: int | None = None,
               interlaced: bool = False) -> Path:
    """An H.264 .mp4 of real frames (resized to `size` if given), with a 440 Hz AAC track when `audio`.

    `rotation` (degrees counter-clockwise, a multiple of 90) stores each frame turned the other way with
    a display matrix that turns it back, as phones do; `colorspace` converts and tags with that matrix;
    `interlaced` codes the frames as top-field-first interlaced pictures, as broadcast video is.
    """
    import av

    turns = rotation // 90
    frames = [np.ascontiguousarray(np.rot90(frame, -turns)) for frame in frames]
    width, height = size or (frames[0].shape[1], frames[0].shape[0])
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height = width, height
        video.pix_fmt, video.options = "yuv420p", {"crf": "18", "preset": "veryfast"}
        if interlaced:
            video.options = {**video.options, "x264-params": "interlaced=1:tff=1"}
        if rotation:
            video.set_display_rotation(rotation)
        if colorspace is not None:
            video.codec_context.colorspace, video.codec_context.color_range = colorspace, 1
        sound = container.add_stream("aac", rate=48000) if audio else None
        if sound is not None:
            sound.layout = "mono"
        for index, rgb in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if size is not None:
                picture = picture.reformat(width=width, height=height)
            if colorspace is not None:
                picture.colorspace = colorspace
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


@pytest.fixture(scope="session")
def matte(book_frames: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Network-like outputs from real frames: fgr [1,3,H,W], pha [1,1,H,W] in 0..1, and a real background."""
    fgr = (book_frames[0].transpose(2, 0, 1)[None] / np.float32(255)).astype(np.float32)
    pha = (book_frames[5][:, :, 1][None, None] / np.float32(255)).astype(np.float32)
    return fgr, pha, book_frames[10]


# --- shared by the backend, matte and bench tests --------------------------------------------

STATES = ("r1i", "r2i", "r3i", "r4i")


def official_alphas(onnx_path: Path, frames: list[np.ndarray], ratio: float) -> list[np.ndarray]:
    """The reference: the official ONNX run directly in ONNX Runtime, states fed back by hand."""
    import onnxruntime as ort

    from rvmkit.runtime.base import to_input

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rec = [np.zeros((1, 1, 1, 1), np.float32)] * 4
    alphas = []
    for rgb in frames:
        _, pha, *rec = session.run(None, {"src": to_input(rgb), **dict(zip(STATES, rec, strict=True)),
                                          "downsample_ratio": np.array([ratio], np.float32)})
        alphas.append(pha)
    return alphas


def backend_alphas(backend, frames: list[np.ndarray], ratio: float) -> list[np.ndarray]:
    """A backend's alphas over `frames`, its state fed back frame by frame."""
    from rvmkit.runtime.base import to_input

    state, alphas = None, []
    for rgb in frames:
        _, pha, state = backend.step(to_input(rgb), state, ratio)
        alphas.append(pha)
    return alphas


def unread_r1(model) -> None:
    """An RVM ONNX (onnx.ModelProto, edited in place) whose r1i no node reads: each reader reads a zero
    [1,1,1,1] constant instead. Still RVM's names and a low-res form, but no cut into two stages."""
    from onnx import helper

    dtype = next(i for i in model.graph.input if i.name == "r1i").type.tensor_type.elem_type
    model.graph.initializer.append(helper.make_tensor("r1_zero", dtype, [1, 1, 1, 1], [0.0]))
    for node in model.graph.node:
        for index, name in enumerate(node.input):
            if name == "r1i":
                node.input[index] = "r1_zero"


@pytest.fixture(scope="session")
def baked_onnx(official_onnx, tmp_path_factory) -> Path:
    """A TRT-ready-style RVM ONNX: the official graph with its ratio input turned into a constant 0.25."""
    import onnx

    model = onnx.load(str(official_onnx))
    ratio = next(i for i in model.graph.input if i.name == "downsample_ratio")
    model.graph.input.remove(ratio)
    constant = onnx.numpy_helper.from_array(np.array([0.25], np.float32), "downsample_ratio")
    model.graph.initializer.append(constant)
    entry = model.metadata_props.add()
    entry.key, entry.value = "rvmkit.downsample_ratio", "0.25"
    path = tmp_path_factory.mktemp("baked") / "rvm_baked_trt.onnx"
    onnx.save(model, str(path))
    return path



@pytest.fixture(scope="session")
def baked(tmp_path_factory, official_onnx) -> Path:
    """The official ONNX converted with its ratio 0.25 baked in (the verify tests' model)."""
    from rvmkit.graph.bake import convert_official

    return convert_official(official_onnx, tmp_path_factory.mktemp("verify") / "baked.onnx", 0.25)


@pytest.fixture(scope="session")
def trt_ready(official_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The TRT-ready form of the official ONNX (ratio 0.25 baked in), as `rvmkit convert` makes it."""
    from rvmkit.graph.bake import convert_official

    return Path(convert_official(official_onnx, tmp_path_factory.mktemp("trt-ready") / "rvm_trt.onnx", 0.25))

# --- shared by the batch and segment tests ---------------------------------------------------


def real_clip(path: Path, clip: str, count: int, size: tuple[int, int] | None = (320, 240),
              audio: bool = False) -> Path:
    """An H.264 .mp4 of the first `count` frames of a real clip (optionally resized, with a tone track)."""
    return write_clip(path, read_frames(clip, count), size=size, audio=audio)


def png_frames(folder: Path) -> list[np.ndarray]:
    """The frames of a PNG sequence, in file name order."""
    import av

    frames = []
    for path in sorted(Path(folder).iterdir()):
        with av.open(str(path)) as container:
            frames.append(next(container.decode(video=0)).to_ndarray())
    return frames


@pytest.fixture
def no_ray(monkeypatch):
    """Fail the test if a run gets as far as starting (or joining) Ray."""
    from rvmkit.batch import ray_runner

    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(ray_runner, "init_ray", refuse)


def one_line_error(capsys) -> str:
    """The one line a refused run printed on stderr (no traceback)."""
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err.strip()


def _chattr(flag: str, path: Path) -> bool:
    if shutil.which("chattr") is None:
        return False
    return subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0


@pytest.fixture
def immutable_file(tmp_path):
    """A file chattr +i made immutable (even root cannot replace it); skipped where chattr is missing
    or the filesystem keeps no such flag."""
    path = tmp_path / "locked.mp4"
    path.write_text("immutable")
    if not _chattr("+i", path):
        pytest.skip("chattr +i is unavailable here (no chattr, no permission, or no such flag on this "
                    "filesystem)")
    yield path
    _chattr("-i", path)
