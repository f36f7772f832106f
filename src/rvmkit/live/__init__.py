"""`rvmkit live`: real-time matting of a camera or a stream, newest frame only, latency measured.

`capture` (sources, read at their own pace), `loop` (the run: capture through `pipeline.run` with the
newest-frame policy), `outputs` (streams, recordings, virtual camera), `stats` (fps, drops, latency).
"""

from rvmkit.live.loop import LiveConfig, LiveReport, run_live

__all__ = ["LiveConfig", "LiveReport", "run_live"]
