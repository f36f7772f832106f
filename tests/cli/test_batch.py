"""`rvmkit batch` (`rvmkit.cli.batch`): the parser refuses worker counts and numbers out of range in one
line, exit 2, before anything is created or Ray is started. Batch runs are tested in tests/batch/."""

from __future__ import annotations

import pytest

from conftest import one_line_error
from rvmkit.cli import main


@pytest.mark.parametrize("extra", [["--num-workers", "0"], ["--num-workers", "-1"],
                                   ["--cpus-per-worker", "0"], ["--cpus-per-worker", "-1"]],
                         ids=["workers-0", "workers-neg", "cpus-0", "cpus-neg"])
def test_bad_worker_counts_fail_in_one_line_before_creating_anything(tmp_path, capsys, no_ray, extra):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not looked at")
    with pytest.raises(SystemExit) as exit_info:  # argparse refuses them
        main(["batch", str(clip), "--output-dir", str(tmp_path / "o" / "out"), "--quiet", *extra])
    assert exit_info.value.code == 2
    assert extra[0] in one_line_error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


@pytest.mark.parametrize(("extra", "message"), [
    (["--num-workers", str(10**6)], "num workers 1000000: must be a whole number from 1 to 4096"),
    (["--cpus-per-worker", str(10**5)], "cpus per worker 100000: must be a whole number from 1 to 1024"),
    (["--segments", str(10**5)], "segments 100000: must be a whole number from 1 to 4096"),
    (["--warmup", str(10**9)], "warm-up 1000000000"),
], ids=["workers", "cpus", "segments", "warmup"])
def test_numbers_without_bound_are_refused_by_the_parser_in_one_line(tmp_path, capsys, no_ray, extra,
                                                                    message):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not looked at")
    with pytest.raises(SystemExit) as exit_info:
        main(["batch", str(clip), "--output-dir", str(tmp_path / "out"), "--quiet", *extra])
    assert exit_info.value.code == 2 and message in one_line_error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]
