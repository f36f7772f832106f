"""Settings checked at start-up: binding beyond loopback needs a token; durations and sizes parse."""

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


def test_another_address_needs_a_token(tmp_path):
    with pytest.raises(RvmkitError, match="needs --token"):
        ServeConfig(data_dir=tmp_path, host="0.0.0.0").checked()
    assert ServeConfig(data_dir=tmp_path, host="0.0.0.0", token="t").checked().token == "t"


def test_cli_refuses_a_public_address_without_a_token_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("RVMKIT_SERVE_TOKEN", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "--token" in err
    assert not (tmp_path / "d").exists()


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
