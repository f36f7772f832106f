"""`rvmkit.serve.checks`: a job's form fields judged by the same options as `rvmkit matte`'s."""

from __future__ import annotations

import pytest

from conftest import CLIPS
from rvmkit.options import FORMATS
from rvmkit.serve.checks import check_upload, job_options
from rvmkit.serve.config import ServeConfig
from rvmkit.serve.upload import UploadError


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_job_takes_every_format_batch_takes(tmp_path, fmt):
    config = ServeConfig(data_dir=tmp_path)
    options = job_options({"outputs": "alpha,composition", "format": fmt}, None, config)
    assert options["format"] == fmt and options["outputs"] == ["alpha", "composition"]


def test_an_mkv_job_is_checked_as_matte_checks_it(tmp_path):
    """The upload probed and its outputs planned (as `rvmkit matte` would) in the format batch offers too."""
    config = ServeConfig(data_dir=tmp_path)
    options = job_options({"outputs": "composition", "format": "mkv"}, None, config)
    shown = check_upload(CLIPS["milk"], "milk.mkv", options, tmp_path / "outputs", None, config)
    assert shown["frames"] > 0 and not (tmp_path / "outputs").exists()
    transparent = job_options({"background": "transparent", "format": "mkv"}, None, config)
    with pytest.raises(UploadError, match="transparen"):
        check_upload(CLIPS["milk"], "milk.mkv", transparent, tmp_path / "outputs", None, config)


def test_the_server_ratio_is_the_default_and_a_bad_one_is_refused(tmp_path):
    from rvmkit.options import MatteOptions

    config = ServeConfig(data_dir=tmp_path, matte=MatteOptions(downsample_ratio="0.5"))
    assert job_options({}, None, config)["downsample_ratio"] == "0.5"
    with pytest.raises(UploadError, match="downsample ratio 2: must be > 0 and <= 1"):
        job_options({"downsample_ratio": "2"}, None, config)
