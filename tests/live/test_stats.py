"""Live counters: totals, percentiles, the per-second series, the status line and the --stats file."""

from __future__ import annotations

import json
from pathlib import Path

from rvmkit.live.stats import LiveStats


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_totals_series_and_percentiles() -> None:
    clock = FakeClock()
    stats = LiveStats(clock)
    for second in range(3):
        for frame in range(10):
            clock.now = 100.0 + second + frame / 10
            stats.frame_in()
            if frame % 2:
                stats.drop()
            else:
                stats.frame_out(clock.now - (0.040 if second < 2 else 0.100))
    clock.now = 103.5  # second 3 has no frames: an empty row, not a gap in the series
    data = stats.as_dict(source="cam")
    assert data["source"] == "cam"
    totals = data["totals"]
    assert (totals["frames_in"], totals["frames_out"], totals["dropped"]) == (30, 15, 15)
    assert 40 <= totals["latency_p50_ms"] <= 41 and 100 <= totals["latency_p95_ms"] <= 101
    assert totals["latency_max_ms"] == 100.0
    rows = data["series"]
    assert [row["second"] for row in rows] == [0, 1, 2, 3]
    assert [(row["fps_in"], row["fps_out"], row["dropped"]) for row in rows] == \
        [(10, 5, 5), (10, 5, 5), (10, 5, 5), (0, 0, 0)]
    assert rows[0]["latency_p95_ms"] == 40.0 and rows[2]["latency_p50_ms"] == 100.0
    assert rows[3]["latency_p50_ms"] is None


def test_status_line_and_summary() -> None:
    clock = FakeClock()
    stats = LiveStats(clock)
    assert stats.status_line().startswith("live  starting")
    for index in range(30):
        clock.now = 100.0 + index / 30
        stats.frame_in()
        stats.frame_out(clock.now - 0.05)
    clock.now = 101.2
    assert stats.status_line() == \
        "live  in 30 fps  out 30 fps  dropped 0  latency p50 50 ms  p95 50 ms  0:00:01"
    assert stats.summary().startswith("live: 30 frames in, 30 out, 0 dropped (0%) in 1.2 s; out 25.0 fps; "
                                      "latency capture->output p50 50 ms")


def test_stats_file_is_json(tmp_path: Path) -> None:
    stats = LiveStats()
    stats.frame_in()
    stats.frame_out(stats.clock())
    stats.write(tmp_path / "s.json", notes=["n"])
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["notes"] == ["n"] and data["totals"]["frames_out"] == 1 and len(data["series"]) == 1
    assert [path.name for path in tmp_path.iterdir()] == ["s.json"]
