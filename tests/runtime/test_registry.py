"""The backend registry: one record per backend, read before any runtime is imported, and the one
`load_backend` every front-end, bench and verify open engines with."""

from __future__ import annotations

import importlib
import subprocess
import sys

import numpy as np
import pytest

from conftest import read_frames
from rvmkit.errors import RvmkitError
from rvmkit.runtime import (
    BACKENDS,
    ModelSpec,
    backend_class,
    check_backend,
    load_backend,
    precision,
    registry,
)
from rvmkit.runtime.ort_reference import OrtReferenceBackend


def test_every_record_names_the_class_its_module_defines():
    for info in registry.REGISTRY:
        try:
            module = importlib.import_module(info.module)
        except ImportError:  # an optional runtime that is not installed here
            continue
        cls = getattr(module, info.cls)
        assert backend_class(info.name) is cls
        assert set(info.accepts) <= {"onnx", "onnx_baked", "checkpoint", "engine"}
        assert set(info.devices) <= {"cpu", "cuda"}, info.name


def test_the_lists_front_ends_show_come_from_the_records():
    assert BACKENDS == ("onnxruntime", "openvino", "torch", "tensorrt")
    assert registry.VERIFY_BACKENDS == ("onnxruntime", "openvino")
    assert precision.BACKENDS == ("onnxruntime", "openvino")
    assert [name for name in BACKENDS if registry.takes_fp16(name)] == ["torch"]
    assert not registry.takes_fp16("no-such-backend")


def test_the_reference_backend_is_internal(official_onnx):
    spec = ModelSpec("onnx", official_onnx)
    with pytest.raises(RvmkitError, match="backend 'reference': unknown; choose one of onnxruntime"):
        check_backend("reference", spec, "cpu")
    check_backend("reference", spec, "cpu", internal=True)
    with pytest.raises(RvmkitError, match="backend reference: runs on the CPU"):
        check_backend("reference", spec, "cuda", internal=True)


def test_load_backend_opens_the_reference_with_a_thread_cap(official_onnx):
    frames = read_frames("milk", 2)
    with load_backend("reference", official_onnx, threads=1) as reference, \
            load_backend("onnxruntime", official_onnx, fast=False) as plain:
        assert isinstance(reference, OrtReferenceBackend)
        assert reference.session.get_session_options().intra_op_num_threads == 1
        assert reference.model_label == str(official_onnx)
        ref_state = plain_state = None
        for rgb in frames:
            src = reference.prepare(rgb, 0.25)
            ref_fgr, ref_pha, ref_state = reference.step(src, ref_state, 0.25)
            fgr, pha, plain_state = plain.step(src, plain_state, 0.25)
            np.testing.assert_allclose(pha, ref_pha, atol=1e-5)
            np.testing.assert_allclose(fgr, ref_fgr, atol=1e-5)


def test_the_baked_ratio_is_read_from_the_model_for_every_onnx_backend(baked_onnx):
    with load_backend("reference", baked_onnx) as reference, \
            load_backend("onnxruntime", baked_onnx, fast=False) as plain:
        assert reference.baked_ratio == plain.baked_ratio is not None


def test_preload_imports_only_the_backend_asked_for():
    code = ("import sys\nfrom rvmkit.runtime import preload\npreload('torch', 'cpu')\n"
            "print('torch' in sys.modules, 'rvmkit.runtime.ort_fast' in sys.modules)")
    try:
        import torch  # noqa: F401
    except ImportError:
        pytest.skip("torch is not installed")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            timeout=120)
    assert result.stdout.split() == ["True", "False"]
