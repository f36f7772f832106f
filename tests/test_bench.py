"""`rvmkit bench`: prints a per-frame table for each variant and writes it as JSON; bad input is one line."""

from __future__ import annotations

import json

from rvmkit.bench import parse_size
from rvmkit.cli import main


def test_bench_prints_a_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--sizes", "96x64@0.5", "--frames", "2", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "official ONNX (ORT)" in table and "onnxruntime (fast)" in table and "onnxruntime (plain)" in table
    data = json.loads(out.read_text())
    assert data["machine"]["cores"] >= 1 and "onnxruntime" in data["machine"]
    rows = {row["variant"]: row for row in data["rows"]}
    assert rows["onnxruntime (fast)"]["size"] == "96x64" and rows["onnxruntime (fast)"]["ms/frame"] > 0


def test_bench_refuses_bad_sizes_and_frame_counts(capsys):
    assert parse_size("1920x1080@0.25") == (1920, 1080, 0.25) and parse_size("640x480") == (640, 480, None)
    assert main(["bench", "--sizes", "big", "--frames", "2"]) == 2
    assert "size 'big'" in capsys.readouterr().err
    assert main(["bench", "--frames", "0"]) == 2
