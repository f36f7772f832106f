"""Settings checked at start-up: binding beyond loopback needs a real token; every number has a range,
refused in one line naming the option; durations and sizes parse."""

from __future__ import annotations

import re

import pytest

from rvmkit.cli import main
from rvmkit.errors import RvmkitError
from rvmkit.serve.config import MB, ServeConfig, is_loopback, parse_duration, parse_pixels


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


@pytest.mark.parametrize("option, value, message", [
    ("--workers", "0", "--workers 0: must be a whole number from 1 to 64"),
    ("--workers", "100000", "--workers 100000: must be a whole number from 1 to 64"),
    ("--port", "70000", "--port 70000: must be a whole number from 1 to 65535"),
    ("--port", "0", "--port 0: must be a whole number from 1 to 65535"),
    ("--max-upload-mb", "-1", "--max-upload-mb -1: must be a number from 0.001 to 1048576"),
    ("--max-upload-mb", "inf", "--max-upload-mb inf: must be a number"),
    ("--max-upload-mb", "nan", "--max-upload-mb nan: must be a number"),
    ("--max-upload-mb", "1e30", "--max-upload-mb 1e30: must be a number"),
    ("--max-duration", "0", "--max-duration 0: must be a number from 0.001 to 604800"),
    ("--max-duration", "1e12", "--max-duration 1e12: must be a number"),
    ("--max-frames", "0", "--max-frames 0: must be a whole number from 1 to 10000000"),
    ("--max-frames", "99999999999", "--max-frames 99999999999: must be a whole number"),
    ("--max-pixels", "100000x100000",
     "--max-pixels 100000x100000: must be a whole number from 1 to 268435456"),
    ("--max-queued", "0", "--max-queued 0: must be a whole number from 1 to 10000"),
    ("--max-queued", "1000000000", "--max-queued 1000000000: must be a whole number"),
    ("--min-free-mb", "-5", "--min-free-mb -5: must be a number from 0 to 1048576"),
    ("--min-free-mb", "inf", "--min-free-mb inf: must be a number"),
    ("--retention", "99999999999d",
     "--retention 99999999999d (8.64e+15 s): must be a number from 1 to 3153600000"),
    ("--workers", "two", "'two' is not a whole number"),
])
def test_every_number_has_a_range_refused_in_one_line(tmp_path, capsys, option, value, message):
    try:
        status = main(["serve", "--data-dir", str(tmp_path / "d"), option, value])
    except SystemExit as usage:  # argparse's (one-line) usage error
        status = usage.code
    assert status == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and option in err and message in err, err
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("field, value, message", [
    ("workers", 0, "--workers 0: must be a whole number from 1 to 64"),
    ("workers", 1.5, "--workers 1.5: must be a whole number"),
    ("port", 70000, "--port 70000: must be a whole number from 1 to 65535"),
    ("max_upload_bytes", -1, "--max-upload-mb -9.53674e-07: must be a number from 0.001 to 1048576"),
    ("max_duration_s", float("inf"), "--max-duration inf: must be a number from 0.001 to 604800"),
    ("max_frames", 10**12, "--max-frames 1000000000000: must be a whole number from 1 to 10000000"),
    ("max_pixels", 0, "--max-pixels 0: must be a whole number from 1 to 268435456"),
    ("max_queued", "many", "--max-queued many: must be a whole number"),
    ("min_free_bytes", float("nan"), "--min-free-mb nan: must be a number from 0 to 1048576"),
    ("retention_s", 1e20, "--retention 1e+20: must be a number from 1 to 3153600000")])
def test_the_config_checks_the_same_ranges_in_the_options_units(tmp_path, field, value, message):
    with pytest.raises(RvmkitError, match=re.escape(message)):
        ServeConfig(data_dir=tmp_path, **{field: value}).checked()


def test_the_config_keeps_jobs_forever_without_a_retention_and_takes_fractions_of_a_megabyte(tmp_path):
    config = ServeConfig(data_dir=tmp_path, retention_s=None, max_upload_bytes=MB // 10).checked()
    assert config.retention_s is None and config.max_upload_bytes == MB // 10


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
