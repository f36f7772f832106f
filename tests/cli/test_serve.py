"""`rvmkit serve` (`rvmkit.cli.serve`): what it refuses before it starts anything."""

from __future__ import annotations

from rvmkit.cli import main


def test_cli_refuses_a_public_address_without_a_token_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("RVMKIT_SERVE_TOKEN", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "--token" in err
    assert not (tmp_path / "d").exists()
