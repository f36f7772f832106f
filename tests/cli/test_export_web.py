"""`rvmkit export-web` (`rvmkit.cli.export_web`): numeric options are checked against their ranges first,
in one line. The site it writes is tested in tests/web/test_init.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from rvmkit.cli import main


@pytest.mark.parametrize(("option", "value"), [("--ratio", "0"), ("--ratio", "1.01"), ("--ratio", "nan"),
                                               ("--port", "65536"), ("--port", "-1"), ("--port", "8e3")])
def test_numeric_option_out_of_range_is_one_line_before_any_work(tmp_path: Path, option: str, value: str,
                                                                 capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["export-web", str(tmp_path / "site"), option, value])
    error = capsys.readouterr().err
    assert exit_.value.code == 2 and error.count("\n") == 1 and f"argument {option}: {value!r}" in error
    assert list(tmp_path.iterdir()) == []
