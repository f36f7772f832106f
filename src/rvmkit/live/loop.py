"""`rvmkit live`: a page that picks a source, a policy and sinks for the streaming core (`pipeline.run`).

    source thread     Capture: demux -> decode -> NewestFrame (one slot; an untaken frame is replaced and
                      counted dropped)
    calling thread    the newest frame -> prepare, infer (the recurrent state carries on)
    write thread      FrameResult -> composition / alpha (fused on the CPU fast path) -> every sink

The same core as `rvmkit matte`, with live's choices: the `NewestFrame` policy, a one-frame output queue
(at most one frame waits between inference and output: when output is the bottleneck, inference waits
and capture drops, so latency stays about one frame time per stage, whatever the run's length),
`--max-fps` pacing, live's auto ratio per source size (the core restarts the state, and derives the
ratio again, when the source changes size or is reopened), the status line ticking per frame.

Ending: a stop event (Ctrl-C / SIGTERM in the CLI), the end of a file, or an error. However it ends,
every output is finalized: streams flushed and closed, recordings committed (a recording without frames
is removed), the stats written.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from rvmkit import pipeline
from rvmkit.contract import LIMITS, check_limit, live_auto_ratio
from rvmkit.contract import LIVE_AUTO_LONG_SIDE as LIVE_AUTO_LONG_SIDE  # `--downsample-ratio auto` here
from rvmkit.errors import RvmkitError, describe_path
from rvmkit.fileio import require_distinct_outputs, require_writable_output
from rvmkit.live.capture import Capture, CapturedFrame, SourceSpec, name_os_thread, parse_source
from rvmkit.live.outputs import OutputPlan, Outputs, open_outputs, plan_outputs
from rvmkit.live.stats import LiveStats
from rvmkit.options import MatteOptions, check_model_fit
from rvmkit.policy import NewestFrame
from rvmkit.progress import Console
from rvmkit.runtime import parse_ratio, resolve_ratio
from rvmkit.runtime.base import Backend, FrameMatter, FrameResult
from rvmkit.video.composite import Background, alpha_u8, is_transparent, parse_background, rgba

WARMUP_SIZE = (640, 480)
DEFAULT_FPS = Fraction(30)
#: backgrounds kept open, one per frame size (an image scaled, or a video's decoder): the oldest is closed
#: when a new size comes, so a source whose size keeps changing holds no more than this
BACKGROUND_SIZES = 2
_STATUS_S = 0.5


@dataclass
class LiveConfig:
    """Everything `rvmkit live` takes (the CLI's options, by the same names)."""

    source: str
    outputs: Sequence[str] = ()
    alpha_outputs: Sequence[str] = ()
    records: Sequence[str] = ()
    alpha_records: Sequence[str] = ()
    virtual_camera: str | None = None  # "" = the first free loopback device
    background: str | None = None
    downsample_ratio: str | float | None = "auto"
    model: str | None = None
    variant: str | None = None
    backend: str | None = None
    device: str = "cpu"
    fp16: bool = False
    precision: str = "fp32"
    input_resize: tuple[int, int] | None = None
    mbps: float | None = None
    crf: int | None = None
    source_format: str | None = None
    source_size: tuple[int, int] | None = None
    source_fps: float | None = None
    source_options: dict[str, str] = field(default_factory=dict)
    realtime: bool = False
    loop: bool = False
    max_fps: float | None = None
    timeout: float = 10.0
    reconnect: bool = False
    stats: str | None = None
    overwrite: bool = False
    quiet: bool = False

    def matte_options(self) -> MatteOptions:
        """The options live shares with `rvmkit matte`, under their common names (checked by one rule)."""
        return MatteOptions(model=self.model, variant=self.variant, backend=self.backend, device=self.device,
                            downsample_ratio=self.downsample_ratio, input_resize=self.input_resize,
                            background=self.background, output_video_mbps=self.mbps, crf=self.crf,
                            fp16=self.fp16, precision=self.precision)


@dataclass
class LiveReport:
    """How a run went: `LiveStats.totals()`, the published recordings, the notes printed."""

    totals: dict[str, Any]
    recordings: list[Path]
    notes: list[str]


def run_live(config: LiveConfig, *, stop: threading.Event | None = None, backend: Backend | None = None,
             console: Console | None = None) -> LiveReport:
    """Run until `stop` is set, the file ends or an error; see the module docstring.

    `backend` replaces the one `config` names (tests use slow doubles); it is not closed here.
    Raises RvmkitError (one line) for a wrong option, a source or sink that fails; outputs are
    finalized first."""
    stop = stop if stop is not None else threading.Event()
    console = console if console is not None else Console(quiet=config.quiet)
    spec, plans = check_config(config)
    engine = backend if backend is not None else _load_engine(config)
    try:
        return _Session(config, spec, plans, engine, stop, console).run()
    finally:
        if backend is None:
            engine.close()


def check_config(config: LiveConfig) -> tuple[SourceSpec, list[OutputPlan]]:
    """Every option that can be checked before a model is loaded or a source opened."""
    config.matte_options().check_values()
    check_ranges(config)
    spec = parse_source(config.source, fmt=config.source_format, size=config.source_size,
                        fps=config.source_fps, options=config.source_options, realtime=config.realtime,
                        loop=config.loop)
    with parse_background(config.background, *WARMUP_SIZE):
        pass  # a missing image or a bad colour fails now, not at the first frame
    plans = plan_outputs(streams=list(config.outputs), alpha_streams=list(config.alpha_outputs),
                         records=list(config.records), alpha_records=list(config.alpha_records),
                         virtual_camera=config.virtual_camera, transparent=is_transparent(config.background),
                         source_label=config.source, overwrite=config.overwrite, mbps=config.mbps,
                         crf=config.crf)
    if not plans:
        raise RvmkitError("no output: give --output URL, --output-alpha URL, --record PATH, "
                          "--record-alpha PATH and/or --virtual-camera")
    if config.stats is not None:
        path = require_writable_output(Path(config.stats).expanduser())
        if path.exists() and not config.overwrite:
            raise RvmkitError(f"{describe_path(path)}: already exists; use --overwrite to replace it")
    require_distinct_outputs(written_paths(config), read_paths(config, spec))
    return spec, plans


def check_ranges(config: LiveConfig) -> None:
    """The numbers only live takes against their ranges (`rvmkit.contract.LIMITS`), one line naming it."""
    for name in ("source_fps", "max_fps", "timeout"):
        if getattr(config, name) is not None:
            check_limit(name, getattr(config, name))
    if config.source_size is not None:
        try:
            for side in config.source_size:
                check_limit("source_size", side)
        except RvmkitError:
            width, height = config.source_size
            raise RvmkitError(f"--source-size {width}x{height}: width and height must be from 1 to "
                              f"{LIMITS['source_size'][2]:g}") from None


def written_paths(config: LiveConfig) -> list[tuple[str, str]]:
    """Every file or folder a run writes, with the option that names it."""
    paths = [("--record", path) for path in config.records]
    paths += [("--record-alpha", path) for path in config.alpha_records]
    return paths + ([("--stats", config.stats)] if config.stats is not None else [])


def read_paths(config: LiveConfig, spec: SourceSpec) -> list[str]:
    """The files a run reads, which no output may replace: a source file, a background image or
    video, the model."""
    paths = [spec.url[len("file://"):] if spec.url.startswith("file://") else spec.url] \
        if spec.kind == "file" else []
    return paths + [path for path in (config.background, config.model) if path and Path(path).is_file()]


def live_ratio(request: float | None, width: int, height: int, engine: Backend, label: str) -> float:
    """The ratio a width x height source runs at: the one asked for, the model's baked one, or (auto) the
    ratio that gives the network a fixed size (`rvmkit.contract.live_auto_ratio`)."""
    if request is None and engine.baked_ratio is None:
        request = live_auto_ratio(width, height)
    return resolve_ratio(request, width, height, engine.baked_ratio, getattr(engine, "name", "model"), label)


def _load_engine(config: LiveConfig) -> Backend:
    from rvmkit.runtime import load_backend

    spec, name = check_model_fit(config.model, config.backend, config.device, config.fp16, config.variant,
                                 config.precision)
    options: dict[str, Any] = {"fp16": True} if config.fp16 else {}
    engine = load_backend(name, spec, device=config.device, variant=config.variant,
                          precision=config.precision, **options)
    if engine.baked_ratio is None and spec.baked_ratio is not None:
        engine.baked_ratio = spec.baked_ratio
    engine.warm_up()  # before the stream: no frame waits for a kernel, nor runs on a slower stand-in
    return engine


class _Session:
    """One run: capture, the streaming core, outputs, stats."""

    def __init__(self, config: LiveConfig, spec: SourceSpec, plans: list[OutputPlan], engine: Backend,
                 stop: threading.Event, console: Console) -> None:
        self.config, self.spec, self.plans, self.engine = config, spec, plans, engine
        self.stop, self.console = stop, console
        self.ratio_request = parse_ratio(config.downsample_ratio)
        self.transparent = is_transparent(config.background)
        self.stats = LiveStats()
        self.outputs: Outputs | None = None
        self.recordings: list[Path] = []
        self._backgrounds: dict[tuple[int, int], Background] = {}
        self._next_status = 0.0
        self.capture: Capture | None = None

    def ratio_for(self, width: int, height: int) -> float:
        return live_ratio(self.ratio_request, width, height, self.engine, self.spec.label)

    def warm_up(self) -> None:
        """Two frames at the expected size before the source opens, so the first real frames do not
        wait for one-time work (kernel compilation, allocations) while the source keeps sending."""
        width, height = self.config.input_resize or self.config.source_size or WARMUP_SIZE
        matter = FrameMatter(self.engine, self.ratio_for(width, height), overlapped=True)
        grey = np.full((height, width, 3), 128, np.uint8)
        for _ in range(2):
            matter(grey).composite(grey, want_alpha=True)

    def run(self) -> LiveReport:
        """The capture through `pipeline.run` (newest frame, one frame waiting for output at most), the
        outputs opened at the first frame; finalized however it ends."""
        self.warm_up()
        self.stats = LiveStats()  # the clock starts when the source is opened
        capture = Capture(self.spec, resize=self.config.input_resize, timeout=self.config.timeout,
                          reconnect=self.config.reconnect, on_frame=self._counted, note=self.console.note,
                          stop=self.stop)
        self.capture = capture
        self.console.say(f"rvmkit live: waiting for {self.spec.label}")
        try:
            try:
                pipeline.run(capture, self.engine, self.ratio_for, self._consume, queue_size=1,
                             policy=NewestFrame(on_drop=self._dropped), halt=self.stop,
                             max_fps=self.config.max_fps, on_frame=self._tick, on_restart=self._restarted)
            except KeyboardInterrupt:
                pass  # in-process use without the CLI's signal handlers: stop as Ctrl-C does
            if capture.error is not None:
                raise capture.error
        except BaseException:
            self._finish(failed=True)
            raise
        self._finish(failed=False)
        return LiveReport(self.stats.totals(), self.recordings, list(self.console.notes))

    def _counted(self, dropped: bool) -> None:
        """Source thread: one frame in (and dropped, when capture skipped it undecoded)."""
        self.stats.frame_in()
        if dropped:
            self.stats.drop()

    def _dropped(self, frame: CapturedFrame) -> None:
        """A frame the engine had no time for (replaced by a newer one, or left when the run stopped)."""
        self.stats.drop()

    def _tick(self, written: int) -> None:
        if time.monotonic() >= self._next_status:
            self.console.status(self.stats.status_line())
            self._next_status = time.monotonic() + _STATUS_S

    def _open_outputs(self, first: CapturedFrame) -> Outputs:
        height, width = first.rgb.shape[:2]
        fps = Fraction(self.capture.fps) if self.capture is not None and self.capture.fps else DEFAULT_FPS
        outputs = open_outputs(self.plans, source_label=self.spec.label, width=width, height=height, fps=fps,
                               time_base=first.time_base, mbps=self.config.mbps, crf=self.config.crf,
                               overwrite=self.config.overwrite, timeout=self.config.timeout)
        names = ", ".join(sink.label for sink in outputs.sinks)
        self.console.note(f"{self.spec.label}: {first.native[0]}x{first.native[1]} at {float(fps):.4g} fps "
                          f"-> {names}; Ctrl-C to stop")
        return outputs

    def _restarted(self, last: CapturedFrame, frame: CapturedFrame) -> None:
        """The core restarted the recurrent state (a new size or a reopened source): say why, count it."""
        if frame.native != last.native:
            old, new = last.native, frame.native
            note = f"{self.spec.label}: size changed {old[0]}x{old[1]} -> {new[0]}x{new[1]}; " \
                   "recurrent state restarted"
            if self.outputs is not None and _size(frame.rgb) != (self.outputs.width, self.outputs.height):
                note += f"; outputs stay {self.outputs.width}x{self.outputs.height} (scaled)"
            self.console.note(note)
        self.stats.resets += 1

    def _consume(self, frame: CapturedFrame, result: FrameResult) -> None:
        """Write thread: one matted frame -> composition and/or alpha -> every sink (opened at the first)."""
        if self.outputs is None:
            name_os_thread("rvmkit-output")
            self.outputs = self._open_outputs(frame)
        outputs = self.outputs
        if self.transparent:
            fgr, pha = result.arrays()
            composition = rgba(fgr[None], pha[None]) if outputs.wants_composition else None
            alpha = alpha_u8(pha[None], channels=1) if outputs.wants_alpha else None
        else:
            background = self._background(*_size(frame.rgb)).frame(frame.index)
            composition, alpha = result.composite(background, want_alpha=outputs.wants_alpha)
        outputs.write(composition, alpha, frame)
        self.stats.frame_out(frame.captured_at)

    def _background(self, width: int, height: int) -> Background:
        if (width, height) not in self._backgrounds:
            if len(self._backgrounds) >= BACKGROUND_SIZES:  # a source whose size keeps changing
                self._backgrounds.pop(next(iter(self._backgrounds))).close()
            self._backgrounds[(width, height)] = parse_background(self.config.background, width, height)
        return self._backgrounds[(width, height)]

    def _finish(self, failed: bool) -> None:
        """Finalize outputs, close backgrounds, write the stats (also after an error, which then stays
        the one reported)."""
        self.stats.reconnects = self.capture.reconnects if self.capture is not None else 0
        self.console.clear()
        try:
            if self.outputs is not None:
                self.recordings = self.outputs.close()
        except Exception:
            if not failed:
                raise
        finally:
            for background in self._backgrounds.values():
                background.close()
            if self.config.stats is not None:
                self.stats.write(self.config.stats, self.config.overwrite, source=self.spec.label,
                                 outputs=[plan.target for plan in self.plans], notes=list(self.console.notes))
            self.console.say(f"rvmkit {self.stats.summary()}")


def _size(rgb: np.ndarray) -> tuple[int, int]:
    return rgb.shape[1], rgb.shape[0]
