"""Settings checked at start-up: binding beyond loopback needs a real token; every number has a range,
refused in one line naming the option; durations and sizes parse."""

from __future__ import annotations

import pytest

from rvmkit.cli import main
from rvmkit.errors import RvmkitError
from rvmkit.serve.config import ServeConfig, is_loopback, parse_duration, parse_pixels


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("192.168.1.5", False), ("example.com", False)])
def test_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_another_address_needs_a_token_of_16_characters(tmp_path):
    with pytest.raises(RvmkitError, match="needs --token"):
        ServeConfig(data_dir=tmp_path, host="0.0.0.0").checked()
    for short in ("t", "fifteen-chars-x", " " * 20, "short" + " " * 20):
        with pytest.raises(RvmkitError, match="--token"):
            ServeConfig(data_dir=tmp_path, host="0.0.0.0", token=short).checked()
    token = "0123456789abcdef"
    assert ServeConfig(data_dir=tmp_path, host="0.0.0.0", token=token).checked().token == token


def test_a_whitespace_token_is_refused_on_loopback_too(tmp_path):
    with pytest.raises(RvmkitError, match="only whitespace"):
        ServeConfig(data_dir=tmp_path, token="   ").checked()


@pytest.mark.parametrize("option, value", [
    ("--workers", "0"), ("--workers", "100000"), ("--port", "70000"), ("--port", "0"),
    ("--max-upload-mb", "-1"), ("--max-upload-mb", "inf"), ("--max-upload-mb", "nan"),
    ("--max-upload-mb", "1e30"), ("--max-duration", "0"), ("--max-duration", "1e12"),
    ("--max-frames", "0"), ("--max-frames", "99999999999"), ("--max-pixels", "100000x100000"),
    ("--max-queued", "0"), ("--max-queued", "1000000000"), ("--min-free-mb", "-5"),
    ("--min-free-mb", "inf"), ("--retention", "99999999999d"), ("--workers", "two"),
])
def test_every_number_has_a_range_refused_in_one_line(tmp_path, capsys, option, value):
    try:
        status = main(["serve", "--data-dir", str(tmp_path / "d"), option, value])
    except SystemExit as usage:  # argparse's (one-line) usage error
        status = usage.code
    assert status == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and option in err, err
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("field, value", [("workers", 0), ("port", 70000), ("max_upload_bytes", -1),
                                          ("max_duration_s", float("inf")), ("max_frames", 10**12),
                                          ("min_free_bytes", float("nan")), ("retention_s", 1e20)])
def test_the_config_checks_the_same_ranges(tmp_path, field, value):
    with pytest.raises(RvmkitError, match="must be between"):
        ServeConfig(data_dir=tmp_path, **{field: value}).checked()


@pytest.mark.parametrize("text, seconds", [("90", 90), ("30m", 1800), ("12h", 43200), ("7d", 604800),
                                           ("0", None), ("never", None)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["-1", "soon", "3w"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_pixels():
    assert parse_pixels("3840x2160") == 3840 * 2160 and parse_pixels("1000") == 1000
    with pytest.raises(ValueError):
        parse_pixels("big")
