"""`rvmkit live`: real-time matting of a camera or a stream, newest frame only, latency measured.

`capture` (sources, the newest-frame capture thread), `loop` (the matting loop on the engine's
`FrameMatter`), `outputs` (streams, recordings, virtual camera), `stats` (fps, drops, latency).
"""

from rvmkit.live.loop import LiveConfig, LiveReport, run_live

__all__ = ["LiveConfig", "LiveReport", "run_live"]
