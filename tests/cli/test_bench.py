"""`rvmkit bench` (`rvmkit.cli.bench`): the table it prints and the JSON it writes."""

from __future__ import annotations

import json

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
