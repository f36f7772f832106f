"""Property/fuzz suite over what rvmkit writes and where: output path forms (relative, ./, .., ~,
unicode, spaces, a colon, a leading dash, upper-case suffixes, folders not made yet, a trailing slash for
PNG folders, names near the 255-byte limit), whole `matte` and `batch` option sets (numbers in and out
of range, outputs and previews that collide or nest, image outputs, backgrounds), audio tracks with
language tags into every output container, and cache locations for the CPU fast path. Each gives the
promised output (every frame, every track with its tag, the fast path) or one line and exit 2 with
nothing written; never a traceback.

Fast in CI (fixed seed, few examples); RVMKIT_FUZZ_EXAMPLES=500 runs longer.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from fuzz_media import (
    Audio,
    Segment,
    Video,
    assert_refused,
    audio_languages,
    digest,
    ffmpeg_decode,
    fuzz_settings,
    real_frames,
    run_rvmkit,
    tree,
    working_directory,
    write_video,
)
from hypothesis import event, given
from hypothesis import strategies as st

from rvmkit import weights

pytestmark = pytest.mark.slow  # a Hypothesis suite: many whole matte and batch runs

FRAMES = 3
CLIP = Video(".mp4", "mp4", "libx264", (Segment(64, 48, "yuv420p", FRAMES),))
VIDEO_SUFFIXES = (".mp4", ".MP4", ".mkv", ".Mkv", ".webm", ".WEBM", ".mov", ".MOV")
FOLDER_ENDINGS = ("", "/", ".d/", ".frames/", ".mp4/")  # no suffix, or a trailing slash: PNG frames
REFUSED_SUFFIXES = (".v1", ".avi", ".png")  # not an output type, or an image (one frame) of 3 frames
PREFIXES = ("", "./", "../cwd/", "new/deeper/", "~/", "ABS/", "./a b/../")
STEMS = ("out", "spa ce", "ü ñ", "a:b", "x%d", "-x", "#1 [a]", "日本語", ".hidden", "n" * 200)
ROLES = ("--output-alpha", "--output-composition", "--output-foreground")


def _stems() -> st.SearchStrategy[str]:
    typed = st.text(st.characters(codec="utf-8", exclude_characters="/.\\\x00", exclude_categories=("Cs",)),
                    min_size=1, max_size=12)
    return st.one_of(st.sampled_from(STEMS), typed)


@st.composite
def output_paths(draw: st.DrawFn) -> str:
    """An output path as a user types it (ABS stands for an absolute folder)."""
    prefix, stem = draw(st.sampled_from(PREFIXES)), draw(_stems())
    ending = draw(st.sampled_from(VIDEO_SUFFIXES + FOLDER_ENDINGS + REFUSED_SUFFIXES))
    while len((stem + ending.rstrip("/")).encode()) > 255:  # a name the filesystem takes
        stem = stem[:-1] or "x"
    return prefix + stem + ending


def _expected_kind(typed: str) -> str | None:
    """'video', 'png_sequence' or None (refused), from the path as typed: a trailing slash or no suffix
    means a folder of PNG frames, a video suffix (any case) a video, anything else is refused."""
    suffix = Path(typed).suffix.lower()
    if typed.endswith("/") or not suffix:
        return "png_sequence"
    return "video" if suffix in {s.lower() for s in VIDEO_SUFFIXES} else None


@fuzz_settings(30)
@given(typed=output_paths(), role=st.sampled_from(ROLES))
def test_output_path_forms_are_written_where_typed(typed: str, role: str) -> None:
    with tempfile.TemporaryDirectory(prefix="rvmkit-fuzz-") as tmp:
        root = Path(tmp)
        cwd, home = root / "cwd", root / "home"
        cwd.mkdir(), home.mkdir()
        source = write_video(cwd / "source clip.mp4", CLIP)
        typed = typed.replace("ABS/", f"{root}/abs/")
        argument = f"./{typed}" if typed.startswith("-") else typed
        before, existing = digest(source), tree(root)
        with working_directory(cwd), mock.patch.dict(os.environ, {"HOME": str(home)}):
            status, stderr = run_rvmkit(["matte", source.name, role, argument, "--quiet"])
            target = Path(os.path.expanduser(typed)).absolute()
        assert digest(source) == before, "the input was changed"
        kind = _expected_kind(typed)
        if kind is None:
            assert_refused(status, stderr)
            assert tree(root) == existing, "a refused run wrote something"
            return
        assert status == 0, f"{typed!r}: {stderr}"
        if kind == "png_sequence":
            assert target.is_dir(), f"{typed!r}: no folder of frames at {target}"
            assert len(list(target.iterdir())) == FRAMES
        else:
            assert target.is_file(), f"{typed!r}: no video at {target}"
            assert ffmpeg_decode(target).count == FRAMES
        assert not [name for name in tree(root) if "rvmkit" in name], "temporary files left behind"


# audio codecs each input container takes, and the language tags to try (ISO 639-2 B and T codes,
# codes with and without a QuickTime language number)
AUDIO_IN = {".mkv": ("aac", "libopus", "libmp3lame", "flac", "pcm_s16le", "ac3"),
            ".mp4": ("aac", "libmp3lame", "libopus", "flac", "ac3"),
            ".mov": ("aac", "libmp3lame", "pcm_s16le", "alac"),
            ".webm": ("libopus",)}
LANGUAGES = ("fre", "deu", "zho", None, "eng", "fra", "ger", "spa", "jpn", "chi", "nld", "swe", "ukr", "hin",
             "por", "und")  # Hypothesis starts from the first: a tag QuickTime has no number for
MUXERS = {".mkv": "matroska", ".mp4": "mp4", ".mov": "mov", ".webm": "webm"}


@st.composite
def clips_with_audio(draw: st.DrawFn) -> Video:
    """A tiny clip with one to three audio tracks, each its own codec, channels and language."""
    suffix = draw(st.sampled_from(sorted(AUDIO_IN)))
    track = st.builds(Audio, st.sampled_from(AUDIO_IN[suffix]), st.sampled_from((1, 2)),
                      st.sampled_from(LANGUAGES))
    codec = "libvpx-vp9" if suffix == ".webm" else "libx264"
    return Video(suffix, MUXERS[suffix], codec, (Segment(64, 48, "yuv420p", FRAMES),),
                 audio=tuple(draw(st.lists(track, min_size=1, max_size=3))))


@pytest.mark.parametrize("output", [".mp4", ".mkv", ".mov", ".webm"])
@fuzz_settings(4)
@given(spec=clips_with_audio())
def test_audio_tracks_keep_their_language_in_every_output_container(spec: Video, output: str) -> None:
    with tempfile.TemporaryDirectory(prefix="rvmkit-fuzz-") as tmp:
        source = write_video(Path(tmp) / f"in{spec.suffix}", spec)
        expected = audio_languages(source)  # what FFmpeg reads from the input
        out = Path(tmp) / f"out{output}"
        status, stderr = run_rvmkit(["matte", str(source), "--output-composition", str(out), "--quiet"])
        assert status == 0, stderr
        assert audio_languages(out) == expected, f"{spec.audio} into {output}"
        assert ffmpeg_decode(out).count == FRAMES


@contextlib.contextmanager
def fast_backends_made() -> Iterator[list[object]]:
    """Each CPU fast-path backend made meanwhile (a silent fall back to the plain path makes none)."""
    from rvmkit.runtime.ort_fast import FastOnnxRuntimeBackend

    made: list[object] = []
    original = FastOnnxRuntimeBackend.__init__

    def record(self: FastOnnxRuntimeBackend, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)
        made.append(self)

    with mock.patch.object(FastOnnxRuntimeBackend, "__init__", record):
        yield made


# $RVMKIT_CACHE_DIR as typed (ROOT: a scratch folder, the working directory; HOME is ROOT/home)
CACHE_FORMS = {"spaces": "ROOT/with spaces", "unicode": "ROOT/ünï cödé", "symlink": "ROOT/link",
               "relative": "rel/cache", "tilde": "~/cache", "colon": "ROOT/a:b", "dotdot": "ROOT/x/../cache",
               "unwritable": "ROOT/full"}
BUILT_HERE = ("unicode", "unwritable")  # the others start with the fast graph already cached (faster)


@pytest.mark.parametrize("form", sorted(CACHE_FORMS))
def test_cache_locations_keep_the_fast_path(form: str, official_onnx: Path) -> None:
    """$RVMKIT_CACHE_DIR of any form, with the weights in it, runs the CPU fast path; one that cannot be
    written (here: a file where its fast/ folder goes) runs it uncached."""
    from rvmkit.graph.lowres import low_res_model_path

    with tempfile.TemporaryDirectory(prefix="rvmkit-fuzz-") as tmp:
        root = Path(tmp)
        typed = CACHE_FORMS[form].replace("ROOT", str(root))
        cache = root / "real cache" if form == "symlink" else root / os.path.expanduser(
            typed.replace("~", str(root / "home")))
        (cache / "fast").mkdir(parents=True)
        if form == "symlink":
            (root / "link").symlink_to(cache)
        (cache / weights.ONNX_NAME).symlink_to(official_onnx)  # same file: the cached graph's key holds
        if form == "unwritable":
            (cache / "fast").rmdir()
            (cache / "fast").write_bytes(b"")
        elif form not in BUILT_HERE:
            shutil.copy(low_res_model_path(official_onnx), cache / "fast")
        write_video(root / "in.mp4", CLIP)
        env = {weights.CACHE_ENV: typed, "HOME": str(root / "home")}
        with working_directory(root), mock.patch.dict(os.environ, env), fast_backends_made() as made:
            status, stderr = run_rvmkit(["matte", "in.mp4", "--output-alpha", "alpha.mkv", "--quiet"])
        assert status == 0, stderr
        assert len(made) == 1, "the fast path was not used"
        assert ffmpeg_decode(root / "alpha.mkv").count == FRAMES
        if form != "unwritable":  # one low-res graph, and ONNX Runtime's optimised form of it
            graphs = sorted(path.name for path in (cache / "fast").glob("*.onnx"))
            assert len(graphs) == 2 and ".ort" in graphs[1]
            assert graphs[1].startswith(graphs[0].removesuffix(".onnx"))


# --- whole option sets of `rvmkit matte` and `rvmkit batch` (issue 20) ----------------------------

NUMBERS = {  # option -> (values in range, values out of it)
    "--seq-chunk": (("1", "2", "64"), ("65", "0", "-3", str(10**9), "1.5")),
    "--downsample-ratio": (("auto", "0.5", "1"), ("0", "1e-9", "nan", "2", "x")),
    "--output-video-mbps": (("0.5", "4", "1000"), ("0.001", "1e9", "0", "-1", "inf")),
    "--crf": (("0", "18", "51"), ("52", "63", "64", "-1")),
    "--input-resize": ((("64", "48"), ("33", "17")), (("0", "48"), ("100000", "100000"))),
    "--segments": (("1",), ("0", str(10**6))),  # a valid count above 1 would start Ray: see batch below
    "--warmup": (("0", "8"), (str(10**9), "-1")),
}
VIDEO_FORMS = ("o.mp4", "o.mkv", "o.webm", "o.mov", "o", "o.d/")
IMAGE_FORMS = ("o.png", "o.jpg", "o.webp", "o.tiff")


@st.composite
def matte_option_sets(draw: st.DrawFn) -> tuple[str, list[str], dict[str, str]]:
    """(input name, argv after it, {role flag: output path as typed}) of one `rvmkit matte` run: about
    half of them meant to run (numbers in range, outputs apart), the others with one or more mistakes
    (a number out of range, an output that is or sits inside another, an image of a video, ...)."""
    source = draw(st.sampled_from(["clip.mp4", "photo.png"]))
    sound = draw(st.booleans())
    roles = draw(st.lists(st.sampled_from(ROLES), min_size=1, max_size=3, unique=True))
    forms = VIDEO_FORMS + (IMAGE_FORMS if source == "photo.png" or not sound else ())
    outputs: dict[str, str] = {}
    for number, role in enumerate(roles):
        earlier = list(outputs.values())
        clash = None if sound or not earlier else draw(st.sampled_from([None, "same", "inside"]))
        if clash == "same":
            typed = draw(st.sampled_from(earlier))
        elif clash == "inside":
            typed = f"{draw(st.sampled_from(earlier)).rstrip('/')}/x{number}.mp4"
        else:
            typed = draw(st.sampled_from(forms)).replace("o", f"o{number}", 1)
        outputs[role] = typed
    argv = [part for role, typed in outputs.items() for part in (role, typed)]
    for option in draw(st.lists(st.sampled_from(sorted(NUMBERS)), max_size=3, unique=True)):
        value = draw(st.sampled_from(NUMBERS[option][0] + (() if sound else NUMBERS[option][1])))
        argv += [option, *value] if isinstance(value, tuple) else [option, value]
    if "--downsample-ratio" not in argv:
        argv += ["--downsample-ratio", "0.5"]
    background = draw(st.sampled_from([None, "white", "transparent", "#123456", "bg.png"]))
    argv += ["--background", background] if background else []
    preview = draw(st.sampled_from([None, "sheet.png"] + ([] if sound else ["sheet.mp4", "INSIDE"])))
    if preview is not None:
        argv += ["--preview", f"{next(iter(outputs.values())).rstrip('/')}/p.png" if preview == "INSIDE"
                 else preview]
    return source, argv, outputs


def _published(path: Path, frames: int) -> int:
    """Frames in a published output: PNG files in a folder, else what FFmpeg decodes."""
    if path.is_dir():
        return len([entry for entry in path.iterdir() if entry.suffix == ".png"])
    decoded = ffmpeg_decode(path)
    assert decoded.error is None, decoded.error
    return decoded.count


def _matte_inputs(folder: Path) -> None:
    """The 3-frame clip, a photo (one of its real frames) and a background image."""
    from rvmkit.video.writer import encode_png

    write_video(folder / "clip.mp4", CLIP)
    rgb = real_frames(1, 64, 48)[0]
    (folder / "photo.png").write_bytes(encode_png(rgb))
    (folder / "bg.png").write_bytes(encode_png(np.ascontiguousarray(rgb[::-1])))


@fuzz_settings(24)
@given(case=matte_option_sets())
def test_matte_option_sets_are_refused_up_front_or_publish_every_output(case) -> None:
    """Any option set: one line, exit 2 and nothing written (inputs untouched), or exit 0 with every
    output published, each holding every frame of the input (one for a photo)."""
    source, argv, outputs = case
    with tempfile.TemporaryDirectory(prefix="rvmkit-fuzz-") as tmp:
        folder = Path(tmp)
        _matte_inputs(folder)
        before, existing = {name: digest(folder / name) for name in ("clip.mp4", "photo.png", "bg.png")}, \
            tree(folder)
        with working_directory(folder):
            status, stderr = run_rvmkit(["matte", source, *argv, "--quiet"])
        assert {name: digest(folder / name) for name in before} == before, "an input was changed"
        event("refused" if status else "published")
        if status != 0:
            assert_refused(status, stderr)
            assert tree(folder) == existing, f"{argv}: a refused run wrote something"
            return
        assert stderr == "", stderr
        frames = 3 if source == "clip.mp4" else 1
        for typed in outputs.values():
            assert _published(folder / typed, frames) == frames, (argv, typed)
        assert not [name for name in tree(folder) if "rvmkit" in name], "temporary files left behind"


BATCH_NUMBERS = {
    "--num-workers": ("1", "0", str(10**6)),
    "--cpus-per-worker": ("1", "0", str(10**5)),
    "--segments": ("1", "2", "0", str(10**6)),
    "--warmup": ("0", "2", "-1", str(10**9)),
    "--seq-chunk": ("1", "3", "0", str(10**9)),
    "--output-video-mbps": ("2", "0", "1e9"),
    "--crf": ("20", "52", "99"),
    "--downsample-ratio": ("0.5", "1e-9", "0"),
}


@st.composite
def batch_option_sets(draw: st.DrawFn) -> tuple[list[str], list[str], str]:
    """(inputs, argv after them, output dir as typed) of one `rvmkit batch` run."""
    inputs = draw(st.lists(st.sampled_from(["clip.mp4", "photo.png"]), min_size=1, max_size=2, unique=True))
    out = draw(st.sampled_from(["out", "out/", "new/deeper", "clip.mp4", ".", "frames"]))
    argv = ["--output-dir", out, "--outputs", draw(st.sampled_from(["composition", "alpha,foreground",
                                                                   "alpha", "nope", ""]))]
    argv += ["--format", draw(st.sampled_from(["mp4", "webm", "png", "mkv"]))]
    for option in draw(st.lists(st.sampled_from(sorted(BATCH_NUMBERS)), max_size=3, unique=True)):
        argv += [option, draw(st.sampled_from(BATCH_NUMBERS[option]))]
    if "--downsample-ratio" not in argv:
        argv += ["--downsample-ratio", "0.5"]
    background = draw(st.sampled_from([None, "transparent", "white", "out/clip.composition.mp4"]))
    argv += ["--background", background] if background else []
    argv += ["--overwrite"] if draw(st.booleans()) else []
    return inputs, argv, out


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    """One local Ray cluster for the batch option sets (each run joins it rather than starting one)."""
    pytest.importorskip("ray")
    import ray

    from rvmkit.batch.ray_runner import init_ray

    started = init_ray(num_cpus=2)
    yield
    if started:
        ray.shutdown()


@fuzz_settings(8)
@given(case=batch_option_sets())
def test_batch_option_sets_are_refused_up_front_or_publish_every_output(ray_session, case) -> None:
    """Any `rvmkit batch` option set: one line, exit 2 and nothing written, or every input's outputs
    published with all their frames, and the manifest."""
    inputs, argv, out = case
    with tempfile.TemporaryDirectory(prefix="rvmkit-fuzz-") as tmp:
        folder = Path(tmp)
        _matte_inputs(folder)
        (folder / "frames").mkdir()
        before, existing = {name: digest(folder / name) for name in inputs}, tree(folder)
        with working_directory(folder):
            status, stderr = run_rvmkit(["batch", *inputs, *argv, "--quiet"])
        assert {name: digest(folder / name) for name in inputs} == before, "an input was changed"
        event("refused" if status else "published")
        if status != 0:
            assert_refused(status, stderr)
            assert tree(folder) == existing, f"{argv}: a refused run wrote something"
            return
        fmt = argv[argv.index("--format") + 1]
        roles = argv[argv.index("--outputs") + 1].split(",")
        for name in inputs:
            frames = 3 if name == "clip.mp4" else 1
            for role in roles:
                target = folder / out / f"{Path(name).stem}.{role}{'' if fmt == 'png' else '.' + fmt}"
                assert _published(target, frames) == frames, (argv, target)
        assert (folder / out / "manifest.json").is_file()
