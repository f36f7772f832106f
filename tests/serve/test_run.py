"""`rvmkit serve`'s start: the server-wide model options are refused in one line before it listens."""

from __future__ import annotations

import pytest

from rvmkit.errors import RvmkitError
from rvmkit.options import MatteOptions
from rvmkit.serve.config import ServeConfig
from rvmkit.serve.run import check_server_model


def test_model_options_that_do_not_fit_are_refused_naming_the_option(tmp_path, official_onnx):
    config = ServeConfig(data_dir=tmp_path, matte=MatteOptions(model=str(official_onnx), fp16=True))
    with pytest.raises(RvmkitError, match="fp16 applies to --backend torch"):
        check_server_model(config, str(official_onnx))
    config = ServeConfig(data_dir=tmp_path, matte=MatteOptions(downsample_ratio="2"))
    with pytest.raises(RvmkitError, match="downsample ratio"):
        check_server_model(config, None)


def test_a_missing_model_is_named_as_given(tmp_path):
    config = ServeConfig(data_dir=tmp_path, matte=MatteOptions(model=str(tmp_path / "absent.onnx")))
    with pytest.raises(RvmkitError, match="absent.onnx"):
        check_server_model(config, "absent.onnx")


def test_the_default_model_is_accepted_and_its_weights_are_at_hand(tmp_path):
    from rvmkit.cache import official_onnx_path

    check_server_model(ServeConfig(data_dir=tmp_path), None)
    assert official_onnx_path().is_file()
