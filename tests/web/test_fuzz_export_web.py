"""Property suite over `rvmkit export-web` options: every numeric option (--ratio, --port) is checked
against its range before any other work, in one line naming it; an OUT_DIR that is, holds or lies
inside the input model, however spelled (symlink, `..`, trailing slash, --overwrite or not), is refused
in one line, exit 2, with the model and every other file as they were. No traceback.

Fast in CI (fixed seed, few examples); RVMKIT_FUZZ_EXAMPLES=500 runs longer (as tests/test_fuzz_*.py).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from fuzz_media import fuzz_settings, run_rvmkit, tree, working_directory
from hypothesis import given
from hypothesis import strategies as st

NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-2**20, 2**20).map(str),
    st.sampled_from(["0", "1", "0.5", "1e-9", "-0", "1.0000001", "65535", "65536", "0x10", " 1", "", "abc",
                     "nan", "inf", "-inf", "1_000"]),
)


def ratio_ok(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value) and 0 < value <= 1


def port_ok(text: str) -> bool:
    try:
        return 0 <= int(text) <= 65535
    except ValueError:
        return False


def assert_one_line(status: int, stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert status == 2 and len(lines) == 1 and "error: " in lines[0], (status, stderr)
    assert "Traceback" not in stderr
    return lines[0]


@fuzz_settings(40)
@given(ratios=st.lists(NUMBERS, min_size=1, max_size=3), port=NUMBERS, serve=st.booleans())
def test_numeric_options_are_checked_first_in_one_line(ratios: list[str], port: str, serve: bool) -> None:
    """OUT_DIR is a non-empty folder, so a run whose options all pass stops at it (nothing is built):
    the one line names the first bad option, or else OUT_DIR."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "taken"
        out.mkdir()
        (out / "notes.txt").write_text("mine")
        args = ["export-web", str(out), *[f"--ratio={r}" for r in ratios], f"--port={port}"]
        line = assert_one_line(*run_rvmkit(args + ["--serve"] * serve))
        if not all(ratio_ok(r) for r in ratios):
            assert "argument --ratio" in line and "> 0 and <= 1" in line
        elif not port_ok(port):
            assert "argument --port" in line and "0 to 65535" in line
        else:
            assert "already exists" in line or "already holds" in line, line
        assert tree(Path(scratch)) == {"taken", "taken/notes.txt"}
        assert (out / "notes.txt").read_text() == "mine"


# where the model lies (relative to a scratch folder that is also the working directory)
LAYOUTS = {
    "plain": "models/mine.onnx",
    "earlier site": "site/models/mine.onnx",  # an export-web site that also holds the user's model
    "deep": "a/b/mine.onnx",
}


def spellings(model: str) -> list[str]:
    """OUT_DIRs that are the model, hold it, or lie inside it."""
    parent = str(Path(model).parent)
    top = Path(model).parts[0]
    return [model, parent, top, f"{parent}/", f"./{parent}", f"{parent}/../{Path(parent).name}",
            f"{model}/site", "link", "link/", os.path.abspath(parent)]


@pytest.fixture(scope="module")
def model_copy(official_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy of the official ONNX; examples hard-link it (a real model: a missed collision would
    really convert, publish and delete it)."""
    return Path(shutil.copyfile(official_onnx, tmp_path_factory.mktemp("model") / "official.onnx"))


@fuzz_settings(24)
@given(layout=st.sampled_from(sorted(LAYOUTS)), which=st.integers(0, 9), overwrite=st.booleans(),
       link_to=st.sampled_from(["parent", "top"]))
def test_out_dir_that_is_or_holds_the_model_is_refused(model_copy: Path, layout: str, which: int,
                                                       overwrite: bool, link_to: str) -> None:
    with tempfile.TemporaryDirectory() as scratch, working_directory(Path(scratch)):
        model = Path(LAYOUTS[layout])
        model.parent.mkdir(parents=True)
        os.link(model_copy, model)
        if layout == "earlier site":
            (model.parents[1] / "models.json").write_text("{}")
        os.symlink(model.parent if link_to == "parent" else model.parts[0], "link")
        out = spellings(str(model))[which]
        before = tree(Path("."))
        line = assert_one_line(*run_rvmkit(["export-web", out, "--model", str(model), "--ratio", "0.5",
                                            *["--overwrite"] * overwrite]))
        assert "the input model" in line and "choose a folder apart from it" in line, line
        assert tree(Path(".")) == before
        assert model.stat().st_size == model_copy.stat().st_size and os.path.samefile(model, model_copy)
