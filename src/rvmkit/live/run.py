"""`rvmkit live` until stopped: Ctrl-C or SIGTERM end the stream cleanly (recordings finalized), not by
an exception in the middle of a frame. The CLI parses the options and prints the report."""

from __future__ import annotations

import signal
import threading

from rvmkit.live.loop import LiveConfig, LiveReport, run_live
from rvmkit.signals import handling


def run_until_stopped(config: LiveConfig) -> LiveReport:
    """`run_live` with SIGINT and SIGTERM setting its stop event (the previous handlers restored after;
    from the main thread only, as Python installs handlers): the recordings are kept."""
    stop = threading.Event()
    with handling((signal.SIGINT, signal.SIGTERM), lambda _: stop.set(), replace=True):
        return run_live(config, stop=stop)
