"""`rvmkit export-web`: a static site that mattes the webcam live in the browser with onnxruntime-web.

The page (static/: index.html, app.js, boot.js, style.css; no build step) and the onnxruntime-web
runtime (static/ort/, copied from the pinned npm package by `make install`) ship in this package. The
models are made here, without torch, by `export.convert`: the official ONNX with the ratio baked in,
one file per ratio. A baked ratio means no float input feeding a Resize (onnxruntime-web's GPU backends
have Resize bugs) and fixed-rank, named shapes; the ceil-mode pools are padded (graph.pools: the WebGPU
kernel refuses ceil_mode). A user's model is run once here, so another graph under RVM's names gets one
line instead of a page that fails. `models.json` lists them for the page.

The folder is built under a temporary name beside OUT_DIR and renamed when complete: all or nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from rvmkit.errors import RvmkitError, describe_path, first_line

STATIC = Path(__file__).resolve().parent / "static"
PAGE_FILES = ("index.html", "app.js", "boot.js", "style.css")
#: the ESM build with the WebGPU (JSEP) and WASM (SIMD + threads) backends, and its one WASM binary
ORT_FILES = ("ort.min.mjs", "ort-wasm-simd-threaded.jsep.mjs", "ort-wasm-simd-threaded.jsep.wasm")
MODELS_DIR = "models"
MANIFEST = "models.json"
#: Netlify / Cloudflare Pages header rules, so static hosts that read them isolate the page (threads)
HEADERS_FILE = "_headers"
ISOLATION_HEADERS = {"Cross-Origin-Opener-Policy": "same-origin",
                     "Cross-Origin-Embedder-Policy": "require-corp"}
#: everything an exported site holds: --overwrite replaces a folder holding nothing else
SITE_ENTRIES = frozenset({*PAGE_FILES, "ort", MODELS_DIR, MANIFEST, HEADERS_FILE})
DEFAULT_RATIOS = (0.25, 0.5)


def ort_dir() -> Path:
    """The packaged onnxruntime-web files; a one-line error naming the fix when they are missing."""
    folder = STATIC / "ort"
    missing = [name for name in ORT_FILES if not (folder / name).is_file()]
    if missing:
        raise RvmkitError(f"{describe_path(folder / missing[0])}: onnxruntime-web file missing from the "
                          "rvmkit package; in the source tree run `make install` (it runs `npm ci` and "
                          "copies the files), then retry")
    return folder


def ort_version() -> str:
    """The onnxruntime-web version, from the banner of its script."""
    head = (ort_dir() / ORT_FILES[0]).read_text(encoding="utf-8", errors="replace")[:400]
    found = re.search(r"ONNX Runtime Web v(\S+)", head)
    return found.group(1) if found else "unknown"


def model_file_name(variant: str, ratio: float) -> str:
    return f"rvm_{variant}_r{ratio:g}.onnx"


def write_site(out_dir: Path, *, ratios: tuple[float, ...] = DEFAULT_RATIOS, model: str | Path | None = None,
               overwrite: bool = False) -> Path:
    """Write the live-matting site to `out_dir` and return it.

    `model`: an official RVM ONNX (with the downsample_ratio input), converted once per ratio; None is
    the cached pretrained MobileNetV3. Refuses an existing non-empty `out_dir` unless `overwrite`, and
    then replaces only a folder that holds nothing but an earlier site's files.
    """
    out_dir = Path(out_dir)
    ratios = _checked_ratios(ratios)
    if model is not None:
        _check_apart(out_dir, Path(model))
    check_out_dir(out_dir, overwrite)
    source = _source_model(model)
    _check_apart(out_dir, source)
    runtime = ort_dir()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.", suffix=".rvmkit-tmp"))
    try:
        os.chmod(staging, 0o777 & ~_umask())
        _fill(staging, source, ratios, runtime, checked=model is not None)
        _publish(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _checked_ratios(ratios: Iterable[float]) -> tuple[float, ...]:
    from rvmkit.contract import validate_ratio

    unique = tuple(dict.fromkeys(validate_ratio(float(ratio)) for ratio in ratios))
    if not unique:
        raise RvmkitError("export-web: give at least one downsample ratio")
    return unique


def _source_model(model: str | Path | None) -> Path:
    """An official ONNX to convert: `model`, or the cached pretrained one."""
    from rvmkit.errors import require_readable_file
    from rvmkit.graph.io import has_ratio_input, require_rvm_onnx

    if model is None:
        from rvmkit import weights

        return weights.official_onnx_path()
    path = Path(require_readable_file(model, "model file"))
    if not has_ratio_input(require_rvm_onnx(path)):
        raise RvmkitError(f"{describe_path(path)}: has no downsample_ratio input (already TRT-ready?); "
                          "export-web takes an official RVM ONNX and bakes each --ratio into it")
    return path


def check_out_dir(out_dir: Path, overwrite: bool) -> None:
    """Refuse, before any work, an OUT_DIR whose replacement could lose a user's files."""
    from rvmkit.fileio import require_creatable

    resolved, here = out_dir.resolve(), Path.cwd().resolve()
    if resolved == here or resolved in here.parents:
        raise RvmkitError(f"{describe_path(out_dir)}: is the current folder or one of its parents; "
                          "choose a new folder")
    if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
        raise RvmkitError(f"{describe_path(out_dir)}: exists and is not a folder; choose a new folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise RvmkitError(f"{describe_path(out_dir)}: already exists and is not empty; use --overwrite "
                              "to replace an earlier export-web site")
        _check_replaceable(out_dir)
    require_creatable(out_dir)


def _check_apart(out_dir: Path, source: Path) -> None:
    """Refuse an OUT_DIR that is the model file, holds it (--overwrite would delete it) or lies inside it."""
    from rvmkit.fileio import is_same_path

    folder, model = out_dir.resolve(), source.resolve()
    if is_same_path(out_dir, source) or folder in model.parents or model in folder.parents:
        where = "lies inside" if model in folder.parents else "is or holds"
        raise RvmkitError(f"{describe_path(out_dir)}: {where} the input model {describe_path(source)}; "
                          "choose a folder apart from it")


def _check_replaceable(out_dir: Path) -> None:
    others = sorted(entry.name for entry in out_dir.iterdir() if entry.name not in SITE_ENTRIES)
    if others or not (out_dir / MANIFEST).is_file():
        what = f"also holds {others[0]!r}" if others else f"has no {MANIFEST}"
        raise RvmkitError(f"{describe_path(out_dir)}: --overwrite replaces only an earlier export-web site, "
                          f"and this folder {what}; choose a new folder")


def _fill(folder: Path, source: Path, ratios: tuple[float, ...], runtime: Path, checked: bool) -> None:
    """Page, runtime, one model per ratio, manifest and host headers into `folder`; `checked`: run
    each model once here first (a user's file may hold another graph under RVM's names)."""
    from rvmkit.graph.io import load_onnx, variant_of

    for name in PAGE_FILES:
        shutil.copyfile(STATIC / name, folder / name)
    (folder / "ort").mkdir()
    for name in ORT_FILES:
        shutil.copyfile(runtime / name, folder / "ort" / name)
    (folder / MODELS_DIR).mkdir()
    variant = variant_of(load_onnx(source)) or "mobilenetv3"
    models = []
    for ratio in ratios:
        relative = f"{MODELS_DIR}/{model_file_name(variant, ratio)}"
        _web_model(source, folder / relative, ratio, check=checked)
        models.append({"ratio": ratio, "file": relative, "variant": variant,
                       "bytes": (folder / relative).stat().st_size, "sha256": _sha256(folder / relative)})
    manifest = {"format": "rvmkit-web/1", "onnxruntime_web": ort_version(), "models": models,
                "inputs": ["src", "r1i", "r2i", "r3i", "r4i"],
                "outputs": ["fgr", "pha", "r1o", "r2o", "r3o", "r4o"]}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    rules = "".join(f"  {name}: {value}\n" for name, value in ISOLATION_HEADERS.items())
    (folder / HEADERS_FILE).write_text(f"/*\n{rules}", encoding="utf-8")


def _web_model(source: Path, output: Path, ratio: float, check: bool) -> None:
    """`source` with `ratio` baked in (graph.bake), its ceil-mode pools padded (graph.pools: the
    WebGPU kernel refuses ceil_mode) and, with `check`, run once on a small frame; a file that is not
    an RVM graph gets one line naming it, whatever failed (onnxsim, onnx.checker, the run)."""
    from rvmkit.graph.bake import convert_official

    try:
        convert_official(source, output, ratio)
        _pad_pools(output)
        if check:
            _check_runs(output)
    except RvmkitError:
        raise
    except Exception as error:  # onnxsim, onnx and ONNX Runtime raise their own types
        raise RvmkitError(f"{describe_path(source)}: has RVM's input and output names but not a graph "
                          f"export-web can convert ({first_line(error, type(error).__name__)})") from None


def _pad_pools(path: Path) -> None:
    import onnx

    from rvmkit.graph.pools import ceil_pools, pad_ceil_pools

    model = onnx.load(os.fspath(path))
    pad_ceil_pools(model.graph)
    if ceil_pools(model.graph):
        raise ValueError("it has a ceil-mode pool that the WebGPU kernel cannot run")
    onnx.checker.check_model(model)
    onnx.save(model, os.fspath(path))


#: the check frame (height, width): odd sides, so every pooling level rounds
CHECK_SIZE = (45, 61)


def _check_runs(path: Path) -> None:
    """Run the model on one frame (ONNX Runtime, CPU) and check the matte's shapes."""
    import numpy as np
    import onnxruntime as ort

    from rvmkit.contract import INPUT_NAMES

    height, width = CHECK_SIZE
    feeds = {name: np.zeros((1, 1, 1, 1), np.float32) for name in INPUT_NAMES}
    feeds["src"] = np.full((1, 3, height, width), 0.5, np.float32)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])
    fgr, pha, *_ = session.run(None, feeds)
    if fgr.shape != (1, 3, height, width) or pha.shape != (1, 1, height, width):
        raise ValueError(f"a {width}x{height} frame gave fgr {list(fgr.shape)} and pha {list(pha.shape)}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _publish(staging: Path, out_dir: Path) -> None:
    """Rename the finished folder onto out_dir; an earlier site is moved aside, checked again (files
    put there meanwhile are never deleted), then removed."""
    try:
        if out_dir.is_dir() and any(out_dir.iterdir()):
            _check_replaceable(out_dir)
            trash = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.rvmkit-old")
            os.replace(out_dir, trash)
            try:
                os.replace(staging, out_dir)
            except OSError:
                os.replace(trash, out_dir)
                raise
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(staging, out_dir)
    except OSError as error:
        raise RvmkitError(f"{describe_path(out_dir)}: cannot publish the site "
                          f"({error.strerror or type(error).__name__})") from None


__all__ = ["DEFAULT_RATIOS", "ISOLATION_HEADERS", "STATIC", "check_out_dir", "ort_dir", "ort_version",
           "write_site"]
