"""The CPU fast path's graph rewrite (`rvmkit.graph.lowres`): what the low-res graph takes and gives, which
graphs it refuses, and its cache. That its outputs equal the official model's is tested with the kernels
in tests/runtime/test_ort_fast.py."""

from __future__ import annotations

import os
import shutil
import time

import onnx
import pytest

from rvmkit.contract import STATE_INPUTS, STATE_OUTPUTS
from rvmkit.graph.lowres import (
    CACHE_MAX_AGE_S,
    COEF_OUTPUTS,
    SMALL_INPUT,
    UnsupportedGraph,
    low_res_model,
    low_res_model_path,
    low_res_stages_for_session,
)
from rvmkit.graph.split import CUT_VERSION, split_stages


def test_low_res_graph_takes_the_small_frame_and_returns_the_coefficients(official_onnx):
    model = low_res_model(onnx.load(str(official_onnx)))
    assert [i.name for i in model.graph.input] == [SMALL_INPUT, *STATE_INPUTS]
    assert [o.name for o in model.graph.output] == [*COEF_OUTPUTS, *STATE_OUTPUTS]
    used = {name for node in model.graph.node for name in node.input}
    assert "src" not in used and "downsample_ratio" not in used  # no full-resolution work is left


def test_a_graph_the_rewrite_does_not_know_is_unsupported(official_onnx):
    model = onnx.load(str(official_onnx))
    model.graph.node.remove(next(n for n in model.graph.node if n.input and n.input[0] == "src"))
    with pytest.raises(UnsupportedGraph, match="downsample Resize of src"):
        low_res_model(model)


def test_fast_cache_keeps_one_variant_per_model_and_drops_unused_ones(official_onnx, tmp_path):
    model, cache = tmp_path / "model.onnx", tmp_path / "cache"
    shutil.copy(official_onnx, model)
    first = low_res_model_path(model, cache=cache)
    # its per-size path choice (runtime/path_choice.py) goes with it
    first.with_name(f"{first.stem}.ort1.0.0123456789ab.640x480-320x240.choice.json").write_text("{}")
    old = cache / "gone.lowres.0123456789ab.0123456789ab.onnx"  # a model deleted long ago
    old.write_bytes(b"x")
    os.utime(old, (time.time() - CACHE_MAX_AGE_S - 60,) * 2)
    os.utime(model, ns=(time.time_ns(), time.time_ns() + 10**9))  # re-exported: a new mtime
    second = low_res_model_path(model, cache=cache)
    assert second != first and sorted(cache.iterdir()) == [second]
    assert low_res_model_path(model, cache=cache) == second  # unchanged: reused, not rebuilt


def test_the_two_stages_are_cut_once_and_cached_beside_their_variant(official_onnx, tmp_path):
    model, cache = tmp_path / "model.onnx", tmp_path / "cache"
    shutil.copy(official_onnx, model)
    variant = low_res_model_path(model, cache=cache)
    paths = low_res_stages_for_session(variant)
    names = [f"{variant.stem}.cut{CUT_VERSION}.stage{n}.onnx" for n in (1, 2)]
    assert list(paths) == [variant.with_name(name) for name in names]
    expected = [part.SerializeToString() for part in split_stages(variant)]
    assert [path.read_bytes() for path in paths] == expected
    inodes = [path.stat().st_ino for path in paths]
    assert low_res_stages_for_session(variant) == paths  # reused: not cut or written again
    assert [path.stat().st_ino for path in paths] == inodes
    assert low_res_stages_for_session(variant, rebuild=True) == paths  # rebuild: written again
    assert [path.stat().st_ino for path in paths] != inodes
    assert [path.read_bytes() for path in paths] == expected
    # a model held in memory (no cache): its stages too, nothing written
    assert list(low_res_stages_for_session(variant.read_bytes())) == expected
    assert sorted(cache.iterdir()) == sorted([variant, *paths])
    # the model re-exported: its new variant is built and the old one's stages go with the old one
    os.utime(model, ns=(time.time_ns(), time.time_ns() + 10**9))
    newer = low_res_model_path(model, cache=cache)
    assert sorted(cache.iterdir()) == [newer]


def test_stages_that_cannot_be_cached_are_given_in_memory(official_onnx, tmp_path):
    model, cache = tmp_path / "model.onnx", tmp_path / "cache"
    shutil.copy(official_onnx, model)
    variant = low_res_model_path(model, cache=cache)
    blocker = variant.with_name(f"{variant.stem}.cut{CUT_VERSION}.stage2.onnx")
    blocker.mkdir()  # a folder where the second stage goes
    parts = low_res_stages_for_session(variant)
    assert list(parts) == [part.SerializeToString() for part in split_stages(variant)]
    assert blocker.is_dir() and not any(blocker.iterdir())
