"""ONNX Runtime fast path on the CPU: the low-res graph plus the full-resolution kernels.

    uint8 frame --kernels.downsample--> src_sm --ORT (low-res graph)--> A, b --kernels.tail_*--> outputs

The graph (`rvmkit.graph.lowres.low_res_model`) is built once from the official (or TRT-ready) ONNX
and cached; the two kernels replace the full-resolution Resize/Mul/Add/Clip work the graph did, and the
composition and alpha come out of the tail kernel directly as uint8. The recurrent states stay
OrtValues bound with IO binding, never copied. `step` keeps the plain Backend contract (float src in,
float fgr/pha out) so the fast path is a drop-in; `prepare`/`infer`/`finish` split it into the stages
the pipeline overlaps (decode thread, inference thread, write thread), and `finish` hands back a
`LowResResult` that makes the full-resolution outputs only when asked, in the form asked for.

Given a plain session's factory (`plain=`: the default CPU path), the stages run each frame size on the
faster of the two paths, measured at the size's first frame and cached (`rvmkit.runtime.path_choice`);
`step` always runs the fast path.

With two or more threads the low-res graph is also cut in two stages (`rvmkit.graph.split`), each a
session on half the threads: `infer_first` (encoder and coarse decoder blocks) and `infer_second` (the
finest block and the refiner), which the pipeline runs in two threads one frame apart (`two_stage`) for
a stream that keeps every frame (files): more frames a second, each frame longer in flight. `infer`,
`step` and a live stream (newest frame) run the whole graph: the shortest time per frame. Which of the
three (whole, stages, plain) a size's files run on is measured with the rest of the per-size choice;
RVMKIT_SPLIT=0 never cuts, RVMKIT_SPLIT=1 makes the stages the form run where nothing is measured.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from rvmkit.contract import STATE_INPUTS, STATE_OUTPUTS
from rvmkit.errors import RvmkitError, describe_path, first_line
from rvmkit.fileio import write_atomically
from rvmkit.graph.lowres import COEF_OUTPUTS, SMALL_INPUT
from rvmkit.runtime import kernels, path_choice
from rvmkit.runtime.base import ArrayResult, Backend, FrameResult, State, to_input
from rvmkit.runtime.cpu import cpu_signature
from rvmkit.runtime.ort_session import session_options

_CPU = ["CPUExecutionProvider"]
_Stages = tuple[ort.InferenceSession, ort.InferenceSession]
SPLIT_ENV = "RVMKIT_SPLIT"
_OFF, _ON = ("0", "false", "no", "off"), ("1", "true", "yes", "on")


def stages_by_default(threads: int | None) -> bool:
    """Whether the stages are loaded: where the session has two threads or more to share between them,
    unless RVMKIT_SPLIT=0."""
    if os.environ.get(SPLIT_ENV, "").strip().lower() in _OFF:
        return False
    return (threads or os.cpu_count() or 1) >= 2


def stages_preferred() -> bool:
    """RVMKIT_SPLIT=1: where no choice is measured, files run on the stages (else the whole graph)."""
    return os.environ.get(SPLIT_ENV, "").strip().lower() in _ON


class FastOnnxRuntimeBackend(Backend):
    """Low-res ORT session + kernels. Construct from the official or a TRT-ready RVM ONNX."""

    name = "onnxruntime"

    def __init__(self, model_path: str | os.PathLike, *, device: str = "cpu", threads: int | None = None,
                 spinning: bool = False, pad_channels: int = 0, split_convs: bool = True,
                 blocked: bool = True, opt_level: str = "all", kernel_threads: int | None = None,
                 plain: Callable[[], Backend] | None = None, split: bool | None = None) -> None:
        if device != "cpu":
            raise RvmkitError("the fast onnxruntime path runs on the CPU; use fast=False for --device cuda")
        self.source = Path(model_path)
        kernels.warm_up_later()  # numba loads in the background when the first frame's size says when
        self._settings = (threads, spinning, opt_level)
        rewrites = {"pad_channels": pad_channels, "split_convs": split_convs, "blocked": blocked}
        self.session = self._session(**rewrites)
        if split is None:
            split = stages_by_default(threads) and not pad_channels and opt_level == "all"
        self._split = bool(split)
        # the stages load when first needed (a stream's second frame: the whole graph runs its first)
        self._stage_pair: _Stages | None = None
        self._stages_loaded = False
        self._stage_lock = threading.Lock()
        if kernel_threads:
            kernels.set_threads(kernel_threads)
        self.dtype = np.float16 if self.session.get_inputs()[0].type == "tensor(float16)" else np.float32
        self._geometry: kernels.Geometry | None = None
        # the per-size choice needs a cache to keep it in (the cached graph's folder): without one every
        # run would measure again, so none does and the fast path runs
        self._plain_factory = plain if self.path is not None and path_choice.can_cache(self.path) else None
        self._plain: Backend | None = None
        self._uses: dict[str, str] = {}  # size key -> "fast" | "staged" | "plain", once known

    def _session(self, **rewrites: int | bool) -> ort.InferenceSession:
        """The low-res graph's session; a cached graph that is damaged (disk error, partial copy) is
        built again, once. Sets `path`: the cached graph, or None when it was built in memory (the
        cache could not be written)."""
        from rvmkit.graph.lowres import low_res_model_for_session

        for rebuild in (False, True):
            model = low_res_model_for_session(self.source, rebuild=rebuild, **rewrites)  # type: ignore[arg-type]
            self.path = model if isinstance(model, Path) else None
            self._low_res = model
            try:
                if self.path is None:
                    return ort.InferenceSession(model, session_options(*self._settings), providers=_CPU)
                return self._optimised_session(self.path)
            except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
                if rebuild or self.path is None:
                    raise RvmkitError(f"{describe_path(self.source)}: onnxruntime cannot load its fast form "
                                      f"({first_line(exc)})") from None
        raise AssertionError("unreachable: the second pass returns or raises")

    @property
    def stages(self) -> _Stages | None:
        """The two stages' sessions (files' throughput form), loaded at first use; None where not cut."""
        if not self._split:
            return None
        with self._stage_lock:
            if not self._stages_loaded:
                self._stages_loaded = True
                with contextlib.suppress(Exception):  # any failure: no stages, the whole graph runs
                    self._stage_pair = self._stage_sessions()
        return self._stage_pair

    def _stage_sessions(self) -> _Stages | None:
        """The two stages' sessions, on half the threads each; None where the graph has no known cut or
        its stages cannot be loaded. Damaged cached stages are cut again, once."""
        from rvmkit.graph.lowres import low_res_stages_for_session
        from rvmkit.graph.split import UnsplittableGraph

        whole = self._low_res  # the cached graph's path, or the graph itself where it could not be cached
        for rebuild in (False, True):
            try:
                parts = low_res_stages_for_session(whole, rebuild=rebuild)
                return (self._stage_session(parts[0]), self._stage_session(parts[1]))
            except UnsplittableGraph:
                return None
            except Exception:  # noqa: BLE001 - ORT's own Fail/InvalidGraph: cut again, else run whole
                if rebuild or isinstance(whole, bytes):
                    return None
        return None

    def _stage_session(self, part: Path | bytes) -> ort.InferenceSession:
        threads, spinning, opt_level = self._settings
        half = max(1, (threads or os.cpu_count() or 1) // 2)
        if isinstance(part, bytes):
            return ort.InferenceSession(part, session_options(half, spinning, opt_level), providers=_CPU)
        return self._optimised_session(part, threads=half)

    def _optimised_session(self, path: Path, threads: int | None = None) -> ort.InferenceSession:
        """A session on the cached graph. ORT's optimisation of it (fusions; NCHWc layouts, which depend on
        the CPU's instructions) is saved beside it at first use and loaded as is afterwards: about 0.1 s
        of start-up less (benchmarks/LEVERS.md). Where it cannot be saved or loaded, ORT optimises as
        usual. `threads` overrides the backend's intra-op threads (the stages run on half each)."""
        own_threads, spinning, opt_level = self._settings
        threads = threads or own_threads

        def options() -> ort.SessionOptions:
            return session_options(threads, spinning, opt_level)

        if opt_level != "all":
            return ort.InferenceSession(str(path), options(), providers=_CPU)
        saved = path.with_name(f"{path.stem}.ort{ort.__version__}.{cpu_signature()}.onnx")
        if saved.is_file():
            with contextlib.suppress(OSError):
                os.utime(saved)  # last used: what the cache's age limit counts from
            try:
                return ort.InferenceSession(str(saved), session_options(threads, spinning, "none"),
                                            providers=_CPU)
            except Exception:  # noqa: BLE001 - damaged or foreign: optimise again below
                saved.unlink(missing_ok=True)
        sessions: list[ort.InferenceSession] = []

        def optimise(temp: Path) -> None:
            saving = options()
            saving.optimized_model_filepath = str(temp)
            sessions.append(ort.InferenceSession(str(path), saving, providers=_CPU))

        # the optimised form cannot be written (read-only or full cache, ORT failing to save it): this run
        # optimises in memory; a graph ORT cannot load at all fails again just below, as it should
        with contextlib.suppress(Exception):
            write_atomically(saved, optimise)
        return sessions[0] if sessions else ort.InferenceSession(str(path), options(), providers=_CPU)

    def geometry(self, height: int, width: int, ratio: float) -> kernels.Geometry:
        """Index tables for this frame size and ratio (cached: one video has one size)."""
        g = self._geometry
        if g is None or (g.height, g.width, g.ratio) != (height, width, ratio):
            g = self._geometry = kernels.Geometry(height, width, ratio)
        return g

    def downsample(self, frame: np.ndarray, ratio: float) -> np.ndarray:
        """HxWx3 uint8 (or [1,3,H,W] float) frame -> the graph's src_sm input."""
        height, width = _frame_size(frame)
        return kernels.downsample(frame, self.geometry(height, width, ratio)).astype(self.dtype, copy=False)

    def prepare(self, frame: np.ndarray, ratio: float) -> Any:
        """The graph's src_sm input; where the plain session won at this size, the whole float frame; where
        no choice is known yet, the frame itself (`infer` measures). Thread-safe."""
        if self._plain_factory is not None:
            use = self._use(*_frame_size(frame), ratio)
            if use is None:
                return _Pending(frame)
            return self._prepared(frame, ratio, use)
        return self._prepared(frame, ratio, self._unmeasured())

    def _unmeasured(self) -> str:
        """The form where none is measured: the stages if asked for (RVMKIT_SPLIT=1) and loaded."""
        return "staged" if self._split and stages_preferred() else "fast"

    def _prepared(self, frame: np.ndarray, ratio: float, use: str) -> Any:
        if use == "plain":
            return _Whole(_float_frame(frame))
        small = self.downsample(frame, ratio)
        return _Staged(small) if use == "staged" and self._split else small

    @property
    def two_stage(self) -> bool:  # type: ignore[override]
        """Stages asked for (their loading may still fail: then every frame passes the first stage by)."""
        return self._split

    def infer(self, inputs: Sequence[Any], state: State, downsample_ratio: float) -> tuple[list[Any], State]:
        """Frame by frame on the whole low-res graph: raw outputs the (coef_a, coef_b) pairs; a frame on
        the plain session gives its result whole."""
        raws: list[Any] = []
        for prepared in inputs:
            src = self._resolved(prepared, downsample_ratio)
            if isinstance(src, _Staged):
                src = src.small
            if isinstance(src, _Whole):
                fgr, pha, state = self._plain_backend().step(src.src, state, downsample_ratio)
                raws.append(ArrayResult(fgr[0], pha[0]))
            else:
                coef_a, coef_b, state = self.infer_low_res(src, state)
                raws.append((coef_a, coef_b))
        return raws, state

    def infer_first(self, inputs: Sequence[Any], state: State, downsample_ratio: float
                    ) -> tuple[list[Any], State]:
        """Each frame's form chosen (measured if new); a frame for the stages through the first: what
        `infer_second` takes. The state is the first stage's."""
        middles: list[Any] = []
        for prepared in inputs:
            src = self._resolved(prepared, downsample_ratio)
            if isinstance(src, _Staged) and (state is None or self.stages is None):
                # a stream's first frame (or no stages could be loaded): the whole graph on all threads;
                # its states go on to both stages, which load at the second frame (not before: the first
                # frame's writing has the cores)
                coef_a, coef_b, state = self.infer_low_res(src.small, state)
                src = _Done((coef_a, coef_b), state)
            elif isinstance(src, _Staged):
                src, state = self._run_stage(0, {SMALL_INPUT: np.ascontiguousarray(src.small)}, state)
                src = _Handed(src)
            middles.append(src)
        return middles, state

    def infer_second(self, middles: Sequence[Any], state: State, downsample_ratio: float
                     ) -> tuple[list[Any], State]:
        """The rest: the second stage, or (a frame the first stage passed on) the whole graph or the plain
        session. The state is that form's."""
        raws: list[Any] = []
        for middle in middles:
            if isinstance(middle, _Handed):
                outputs, state = self._run_stage(1, middle.outputs, state)
                raws.append(_coefficients(outputs))
            elif isinstance(middle, _Done):
                raws.append(middle.coefficients)
                state = middle.state
            else:
                more, state = self.infer([middle], state, downsample_ratio)
                raws.extend(more)
        return raws, state

    def _resolved(self, prepared: Any, ratio: float) -> Any:
        return self._chosen(prepared.frame, ratio) if isinstance(prepared, _Pending) else prepared

    def _run_stage(self, index: int, feeds: dict[str, Any], state: State) -> tuple[dict[str, Any], State]:
        """One stage on `feeds` (arrays or OrtValues by name) and its own states (None: zeros): its outputs
        by name, kept as OrtValues, with the feeds (the second stage may read the first's input too: src_sm,
        where the refiner's convs are not split), and its next states."""
        assert self.stages is not None
        session = self.stages[index]
        binding = session.io_binding()
        for item in session.get_inputs():
            name = item.name
            if name in STATE_INPUTS:  # the stage's own states, or the whole graph's four (r1..r4)
                if state is None:
                    value = _zeros(self.dtype)
                else:
                    value = state[name] if isinstance(state, dict) else state[STATE_INPUTS.index(name)]
            elif name in feeds:
                value = feeds[name]
            else:
                raise AssertionError(f"stage {index + 1} input {name} not fed")
            if isinstance(value, np.ndarray):
                binding.bind_cpu_input(name, value)
            else:
                binding.bind_ortvalue_input(name, value)
        names = [item.name for item in session.get_outputs()]
        for name in names:
            binding.bind_output(name, "cpu")
        session.run_with_iobinding(binding)
        outputs = dict(zip(names, binding.get_outputs(), strict=True))
        next_state = {name: outputs[STATE_OUTPUTS[i]] for i, name in enumerate(STATE_INPUTS)
                      if STATE_OUTPUTS[i] in outputs}
        return {**feeds, **outputs}, next_state

    def finish(self, rgb: np.ndarray, raw: Any, downsample_ratio: float, overlapped: bool = False
               ) -> FrameResult:
        """Overlapped (the pipeline's write thread), the kernels run in one thread: inference has the
        cores; otherwise they use them all."""
        if isinstance(raw, FrameResult):  # the plain session's
            return raw
        coef_a, coef_b = raw
        return LowResResult(self, rgb, coef_a, coef_b, downsample_ratio, parallel=not overlapped)

    def _key(self, height: int, width: int, ratio: float) -> str:
        return path_choice.size_key(width, height, self.geometry(height, width, ratio).small)

    def _use(self, height: int, width: int, ratio: float) -> str | None:
        """The path this size runs on: remembered, else cached on disk, else None (not measured yet)."""
        key = self._key(height, width, ratio)
        use = self._uses.get(key)
        if use is None and self.path is not None:
            choice = path_choice.read_choice(path_choice.choice_file(self.path, key), key)
            if choice is not None:
                use = self._uses[key] = choice.use
        return use

    def _chosen(self, frame: np.ndarray, ratio: float) -> Any:
        """`frame` prepared for its size's path, measuring the paths first if no choice is known."""
        use = self._use(*_frame_size(frame), ratio)
        if use is None:
            use = self._measure(frame, ratio)
        return self._prepared(frame, ratio, use)

    def _measure(self, frame: np.ndarray, ratio: float) -> str:
        """Time the paths on `frame` (uint8 or float frame in, float fgr/pha out, each its own state carried;
        the stages as a stream runs them, side by side), cache the fastest and return it. On a busy
        machine, or where a plain session cannot be loaded, the unmeasured form, for this run only."""
        assert self.path is not None  # a plain factory is kept only with a cached graph
        started = time.perf_counter()
        key = self._key(*_frame_size(frame), ratio)
        if path_choice.machine_busy():  # not measured, not cached: a later, quieter run measures
            self._uses[key] = self._unmeasured()
            return self._uses[key]
        kernels.warm_up()  # the fast path timed with its compiled kernels: numba loads beside the session
        try:
            plain = self._plain_backend()
        except RvmkitError:
            self._uses[key] = self._unmeasured()
            return self._uses[key]
        kernels.warm_up(wait=True)
        states: dict[str, State] = {"fast": None, "plain": None}

        def run_fast() -> None:
            coef_a, coef_b, states["fast"] = self.infer_low_res(self.downsample(frame, ratio), states["fast"])
            self.finish_float(frame, coef_a, coef_b, ratio)

        def run_plain() -> None:
            states["plain"] = plain.step(_float_frame(frame), states["plain"], ratio)[2]

        runs = {"fast": run_fast, "plain": run_plain}
        if self.stages is not None:
            runs["staged"] = self._pipelined_runner(frame, ratio)
        medians, rounds = path_choice.measure(runs)
        choice = path_choice.decide(key, medians, rounds, time.perf_counter() - started)
        path_choice.write_choice(path_choice.choice_file(self.path, key), choice)
        self._uses[key] = choice.use
        if "plain" not in self._uses.values():  # not needed at any size seen: its memory back
            self._close_plain()
        return choice.use

    def _pipelined_runner(self, frame: np.ndarray, ratio: float) -> Callable[[], None]:
        """One call = one frame as a stream runs the stages: this frame's first stage beside the last
        frame's second, in two threads; then, as the other runners, the full-resolution tail on all cores
        (the same work for every path, so the paths differ by their inference only)."""
        carried: dict[str, Any] = {"first": None, "second": None, "middle": None, "coefficients": None}

        def second_of_last() -> None:
            if carried["middle"] is not None:
                outputs, carried["second"] = self._run_stage(1, carried["middle"], carried["second"])
                carried["coefficients"] = _coefficients(outputs)

        def run() -> None:
            worker = threading.Thread(target=second_of_last)
            worker.start()
            small = {SMALL_INPUT: self.downsample(frame, ratio)}
            middle, carried["first"] = self._run_stage(0, small, carried["first"])
            worker.join()
            carried["middle"] = middle
            if carried["coefficients"] is not None:
                self.finish_float(frame, *carried["coefficients"], ratio)

        return run

    def _plain_backend(self) -> Backend:
        if self._plain is None:
            assert self._plain_factory is not None
            self._plain = self._plain_factory()
        return self._plain

    def _close_plain(self) -> None:
        if self._plain is not None:
            self._plain.close()
            self._plain = None

    def infer_low_res(self, src_sm: np.ndarray, state: State) -> tuple[np.ndarray, np.ndarray, State]:
        """Run the whole low-res graph: (coef_a, coef_b) [1,4,h,w] float32 and the next state."""
        if state is None:
            zeros = np.zeros((1, 1, 1, 1), dtype=self.dtype)
            state = [ort.OrtValue.ortvalue_from_numpy(zeros) for _ in STATE_INPUTS]
        binding = self.session.io_binding()
        binding.bind_cpu_input("src_sm", np.ascontiguousarray(src_sm))
        for name, value in zip(STATE_INPUTS, state, strict=True):
            binding.bind_ortvalue_input(name, value)
        for name in ("coef_a", "coef_b", *STATE_OUTPUTS):
            binding.bind_output(name, "cpu")
        self.session.run_with_iobinding(binding)
        coef_a, coef_b, *next_state = binding.get_outputs()
        return (coef_a.numpy().astype(np.float32, copy=False), coef_b.numpy().astype(np.float32, copy=False),
                next_state)

    def finish_float(self, frame: np.ndarray, coef_a: np.ndarray, coef_b: np.ndarray,
                     ratio: float, parallel: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """fgr [1,3,H,W], pha [1,1,H,W] float32, as the official graph returns them."""
        height, width = (frame.shape[:2] if frame.dtype == np.uint8 else frame.shape[-2:])
        return kernels.tail_float(frame, coef_a, coef_b, self.geometry(height, width, ratio), parallel)

    def finish_composite(self, frame: np.ndarray, coef_a: np.ndarray, coef_b: np.ndarray, ratio: float,
                         background: np.ndarray, want_alpha: bool = True, parallel: bool = True
                         ) -> tuple[np.ndarray, np.ndarray | None]:
        """Composition HxWx3 uint8 over `background` and alpha HxW uint8, in one pass."""
        height, width = frame.shape[:2]
        return kernels.tail_composite(frame, coef_a, coef_b, self.geometry(height, width, ratio), background,
                                      want_alpha, parallel)

    def step(self, src: np.ndarray, state: State, downsample_ratio: float
             ) -> tuple[np.ndarray, np.ndarray, State]:
        """Also takes an HxWx3 uint8 frame (then no full-size float input is ever made)."""
        coef_a, coef_b, state = self.infer_low_res(self.downsample(src, downsample_ratio), state)
        fgr, pha = self.finish_float(src, coef_a, coef_b, downsample_ratio)
        return fgr, pha, state

    def states(self, state: State) -> list[np.ndarray]:
        return [np.asarray(value.numpy(), np.float32) for value in state]

    def warm_up(self) -> None:
        """The compiled kernels (numba loads in the background otherwise, numpy standing in)."""
        kernels.warm_up(wait=True)

    def close(self) -> None:
        self._close_plain()
        self.session = None  # type: ignore[assignment]
        self._stage_pair = None


def _zeros(dtype: Any) -> ort.OrtValue:
    """A start-of-stream state: zeros [1,1,1,1], broadcast inside the graph."""
    return ort.OrtValue.ortvalue_from_numpy(np.zeros((1, 1, 1, 1), dtype=dtype))


def _coefficients(outputs: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(coef_a, coef_b) float32 arrays from a stage's outputs."""
    return tuple(outputs[name].numpy().astype(np.float32, copy=False)  # type: ignore[return-value]
                 for name in COEF_OUTPUTS)


def _frame_size(frame: np.ndarray) -> tuple[int, int]:
    """(height, width) of an HxWx3 uint8 or a [1,]3xHxW float frame."""
    height, width = frame.shape[:2] if frame.dtype == np.uint8 else frame.shape[-2:]
    return int(height), int(width)


def _float_frame(frame: np.ndarray) -> np.ndarray:
    """The plain session's input: float32 [1,3,H,W] in 0..1."""
    if frame.dtype == np.uint8:
        return to_input(frame)
    return np.ascontiguousarray(frame.reshape(1, *frame.shape[-3:]), dtype=np.float32)


class _Pending:
    """A frame whose size has no choice yet: `infer` measures, in the inference thread."""

    __slots__ = ("frame",)

    def __init__(self, frame: np.ndarray) -> None:
        self.frame = frame


class _Staged:
    """A frame's low-res input, for the stages."""

    __slots__ = ("small",)

    def __init__(self, small: np.ndarray) -> None:
        self.small = small


class _Handed:
    """What the first stage hands the second (its outputs, OrtValues by name)."""

    __slots__ = ("outputs",)

    def __init__(self, outputs: dict[str, Any]) -> None:
        self.outputs = outputs


class _Done:
    """A stream's first frame, run whole by the first stage: its coefficients and the four states."""

    __slots__ = ("coefficients", "state")

    def __init__(self, coefficients: tuple[np.ndarray, np.ndarray], state: State) -> None:
        self.coefficients, self.state = coefficients, state


class _Whole:
    """A frame prepared for the plain session."""

    __slots__ = ("src",)

    def __init__(self, src: np.ndarray) -> None:
        self.src = src


class LowResResult(FrameResult):
    """One frame on the fast path: the refiner's low-resolution coefficients, finished to full resolution
    on demand (in the pipeline's write thread, overlapping the next frame's inference)."""

    def __init__(self, backend: FastOnnxRuntimeBackend, rgb: np.ndarray, coef_a: np.ndarray,
                 coef_b: np.ndarray, ratio: float, parallel: bool = True) -> None:
        self.backend, self.rgb, self.coef_a, self.coef_b, self.ratio = backend, rgb, coef_a, coef_b, ratio
        self.parallel = parallel

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        fgr, pha = self.backend.finish_float(self.rgb, self.coef_a, self.coef_b, self.ratio,
                                             self.parallel)
        return fgr[0], pha[0]

    def composite(self, background: np.ndarray, want_alpha: bool = True
                  ) -> tuple[np.ndarray, np.ndarray | None]:
        """Composition and alpha in one fused pass over the frame."""
        return self.backend.finish_composite(self.rgb, self.coef_a, self.coef_b, self.ratio, background,
                                             want_alpha, self.parallel)
