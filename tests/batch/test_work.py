"""A batch worker's one model: loaded through the registry with its thread cap, whatever the backend."""

from __future__ import annotations

import pytest

from rvmkit.batch.work import MatteOptions, load_worker_backend
from rvmkit.errors import RvmkitError


def test_worker_backend_caps_the_onnxruntime_session_threads(official_onnx):
    options = MatteOptions(model=str(official_onnx)).checked()
    with load_worker_backend(options, threads=1) as backend:
        assert backend.name == "onnxruntime"
        assert backend.session.get_session_options().intra_op_num_threads == 1


def test_worker_backend_caps_torch_threads_process_wide(checkpoint):
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    try:
        with load_worker_backend(MatteOptions(model=str(checkpoint)).checked(), threads=1) as backend:
            assert backend.name == "torch" and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_worker_backend_refuses_fp16_off_the_torch_backend(official_onnx):
    with pytest.raises(RvmkitError, match="fp16 applies to --backend torch"):
        load_worker_backend(MatteOptions(model=str(official_onnx), fp16=True).checked())
