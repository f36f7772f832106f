"""Numerical verification of an exported model, after Polygraphy's comparator.

Each *runner* is a runtime backend (plain ONNX Runtime on the model and on the reference ONNX, the
torch backend on the PyTorch model) running the same recurrent frames from its own zero state; every
pair of runners is compared output by output (fgr, pha, r1o..r4o, the states read back with
`Backend.states`) frame after frame, and the max abs error per size is kept. Each pair's alpha is
also judged with RVM's own evaluation metrics (MAD, MSE, Grad, dtSSD: `AlphaMetrics`), the units in
which RVM published its error, so that a difference between backends or precisions can be read against
the model's own error. No torch import at module level: the torch runner is optional.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rvmkit.contract import OUTPUT_NAMES, same_ratio, validate_ratio
from rvmkit.errors import RvmkitError, describe_path
from rvmkit.graph.io import baked_ratio, has_ratio_input, precision_of, require_rvm_onnx
from rvmkit.runtime.base import Backend, State, to_input
from rvmkit.runtime.registry import VERIFY_BACKENDS

# (width, height): an odd size, a portrait and a landscape 1080p frame.
SIZES: tuple[tuple[int, int], ...] = ((641, 479), (1080, 1920), (1920, 1080))
TOLERANCE = {"float32": 1e-4, "float16": 3e-2}
# With float16 only the visible outputs are judged: the recurrent states (tanh-bounded hidden
# features) drift by up to ~6e-2 in float16 without changing fgr/pha by more than ~1.2e-2.
FP16_GATED = ("fgr", "pha")

#: RVM MobileNetV3's own alpha error against the ground truth on VideoMatte 512x288 (Lin et al., "Robust
#: High-Resolution Video Matting with Temporal Guidance", WACV 2022, Table 1), in its evaluation's units
PUBLISHED_ERROR = {"MAD": 6.08, "MSE": 1.47, "Grad": 0.88, "dtSSD": 1.36}
#: a reduced precision may differ from fp32 by at most this fraction of PUBLISHED_ERROR, on every metric
PRECISION_BUDGET = 0.10
#: the reduced precisions `verify --backend` can run its runner in (VERIFY_BACKENDS: the registry's)
REDUCED = ("bf16", "fp16")
#: Grad is a sum over pixels; it is scaled to the pixel count of the frames RVM published it on
GRAD_PIXELS = 512 * 288


@dataclass
class Runner:
    """A runtime backend under comparison: its name in the table and the precision it computes in."""

    name: str
    backend: Backend
    precision: str = "float32"

    def run(self, src: np.ndarray, state: State, ratio: float) -> tuple[list[np.ndarray], State]:
        """One frame -> ([fgr, pha, r1o, r2o, r3o, r4o] as float32, the next state)."""
        fgr, pha, state = self.backend.step(src, state, ratio)
        return [fgr, pha, *self.backend.states(state)], state


def onnx_runner(path: str | os.PathLike, name: str) -> Runner:
    """ONNX Runtime (CPU) on an RVM ONNX, official (ratio input) or TRT-ready (ratio baked)."""
    from rvmkit.runtime import load_backend

    precision = precision_of(require_rvm_onnx(path))
    return Runner(name, load_backend("reference", path), precision)


def torch_runner(model: Any, name: str = "torch") -> Runner:
    """The PyTorch model on the torch backend (CPU, float32), refining at every ratio like the graphs."""
    from rvmkit.runtime import load_backend

    return Runner(name, load_backend("torch", model, device="cpu"))


def backend_runner(path: str | os.PathLike, backend: str, precision: str = "fp32") -> Runner:
    """The model on a CPU backend as `rvmkit matte` would run it: `onnxruntime` (the fast path) or
    `openvino`, in `precision` (bf16 / fp16 on OpenVINO only, where the CPU computes it: measured here,
    not offered to `matte`)."""
    from rvmkit.runtime import load_backend

    if backend not in VERIFY_BACKENDS:
        raise RvmkitError(f"--backend {backend}: choose one of {', '.join(VERIFY_BACKENDS)}")
    if precision not in ("fp32", *REDUCED):
        raise RvmkitError(f"--precision {precision}: choose one of fp32, {', '.join(REDUCED)}")
    if precision in REDUCED and backend != "openvino":
        raise RvmkitError(f"--precision {precision}: runs on --backend openvino only "
                          f"(asked: --backend {backend})")
    name = backend if precision == "fp32" else f"{backend}-{precision}"
    label = precision if precision in REDUCED else precision_of(require_rvm_onnx(path))
    loaded = load_backend(backend, path, device="cpu", precision=precision, offered_only=False)
    return Runner(name, loaded, label)


def _reduced(a: Runner, b: Runner) -> bool:
    """Does the pair involve a reduced-precision runner, judged on RVM's metrics, not on max abs?"""
    return bool({a.precision, b.precision} & set(REDUCED))


@dataclass
class Comparison:
    size: str
    output: str
    pair: str
    max_abs: float
    tolerance: float
    gating: bool = True  # float16 recurrent states are reported, not judged (see FP16_GATED)

    @property
    def ok(self) -> bool:
        return not self.gating or (bool(np.isfinite(self.max_abs)) and self.max_abs <= self.tolerance)


@dataclass
class AlphaRow:
    """One pair's alpha difference at one size, in RVM's evaluation units (`AlphaMetrics.result`)."""

    size: str
    pair: str
    frames: int
    metrics: dict[str, float]
    judged: bool = False  # a reduced-precision (bf16/fp16) runner's pair: within PRECISION_BUDGET or fail

    @property
    def within_budget(self) -> bool:
        return all(within_budget(self.metrics).values())

    @property
    def ok(self) -> bool:
        return not self.judged or self.within_budget


@dataclass
class VerifyReport:
    model: str
    ratio: float
    frames_source: str
    rows: list[Comparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    alpha: list[AlphaRow] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.rows) and all(row.ok for row in self.rows) and all(row.ok for row in self.alpha)

    def failure(self) -> str:
        """Why the report fails, in a few words ('' when it passes)."""
        if self.ok:
            return ""
        if not all(row.ok for row in self.rows):
            return f"max abs error {self.max_error():.2e}"
        pairs = ", ".join(dict.fromkeys(row.pair for row in self.alpha if not row.ok))
        return f"alpha difference above {PRECISION_BUDGET:.0%} of RVM's own error ({pairs})"

    def max_error(self, pair: str | None = None, size: str | None = None, gated_only: bool = True) -> float:
        values = [r.max_abs for r in self.rows if (pair is None or r.pair == pair)
                  and (size is None or r.size == size) and (r.gating or not gated_only)]
        return max(values) if values else float("nan")

    def table(self) -> str:
        """One line per size and output, one column (max abs error) per runner pair."""
        pairs = list(dict.fromkeys(r.pair for r in self.rows))
        cells = {(r.size, r.output, r.pair): r for r in self.rows}
        width = max([len(p) for p in pairs] + [10])
        lines = [f"verify {self.model} (downsample ratio {self.ratio:g}, {self.frames_source})",
                 f"{'size':<10} {'output':<6} " + " ".join(f"{p:>{width}}" for p in pairs)]
        for size, output in dict.fromkeys((r.size, r.output) for r in self.rows):
            row = [cells.get((size, output, p)) for p in pairs]
            text = [f"{c.max_abs:.2e}{'' if c.ok else ' !'}{'' if c.gating else ' i'}" if c else "-"
                    for c in row]
            lines.append(f"{size:<10} {output:<6} " + " ".join(f"{t:>{width}}" for t in text))
        tolerances = sorted({r.tolerance for r in self.rows})
        verdict = "PASS" if self.ok else "FAIL"
        lines.append(f"{verdict}: max abs error {self.max_error():.2e} "
                     f"(tolerance {', '.join(f'{t:g}' for t in tolerances)})")
        if not all(r.gating for r in self.rows):
            lines.append("i: informational (float16 recurrent state; a bf16/fp16 runner's pair, judged on "
                         "the alpha difference below), not judged")
        lines += self.alpha_table()
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def alpha_table(self) -> list[str]:
        """The pairs' alpha differences in RVM's evaluation units, against RVM's own error (reported, not
        judged: the max abs error above is the stricter test of an exact export)."""
        if not self.alpha:
            return []
        own = ", ".join(f"{name} {value:g}" for name, value in PUBLISHED_ERROR.items())
        width = max(len(r.pair) for r in self.alpha)
        lines = [f"alpha difference in RVM's evaluation units (mean over the frames; RVM MobileNetV3's own "
                 f"error on VideoMatte 512x288: {own}; Grad scaled to 512x288's pixels)",
                 f"{'size':<10} {'pair':<{width}} " + " ".join(f"{n:>9}" for n in AlphaMetrics.NAMES)]
        for row in self.alpha:
            budget = within_budget(row.metrics)
            cells = [f"{row.metrics[n]:.4f}{'' if budget[n] else '>'}" for n in AlphaMetrics.NAMES]
            verdict = ("PASS" if row.ok else "FAIL") if row.judged else ""
            lines.append(f"{row.size:<10} {row.pair:<{width}} " + " ".join(f"{c:>9}" for c in cells)
                         + f" {verdict}".rstrip())
        if not all(r.within_budget for r in self.alpha):
            lines.append(f">: above {PRECISION_BUDGET:.0%} of RVM's own error (a reduced precision's budget; "
                         "judged only for a bf16/fp16 runner)")
        return lines


# ---------------------------------------------------------------------------------------------
# RVM's evaluation metrics (its evaluation/evaluate_lr.py, re-implemented in numpy): alphas in 0..1


def mad(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean absolute difference, x 1e3."""
    return float(np.abs(np.asarray(pred, np.float64) - true).mean() * 1e3)


def mse(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean squared difference, x 1e3."""
    return float(np.square(np.asarray(pred, np.float64) - true).mean() * 1e3)


def gauss_filters(sigma: float = 1.4, epsilon: float = 1e-2) -> tuple[np.ndarray, np.ndarray]:
    """(g, dg): the 1-D factors of RVM's x-gradient filter outer(g, dg) (rows smoothed by a Gaussian,
    columns differentiated by its derivative), normalised so the 2-D filter has unit Frobenius norm; the
    half size is where the Gaussian falls under `epsilon` of a unit peak, as RVM sizes it."""
    half = int(np.ceil(sigma * np.sqrt(-2 * np.log(np.sqrt(2 * np.pi) * sigma * epsilon))))
    x = np.arange(-half, half + 1, dtype=np.float64)
    g = np.exp(-x ** 2 / (2 * sigma ** 2)) / (sigma * np.sqrt(2 * np.pi))
    dg = -x * g / sigma ** 2
    return g / np.linalg.norm(g), dg / np.linalg.norm(dg)


def _correlate(image: np.ndarray, kernel: np.ndarray, axis: int) -> np.ndarray:
    """1-D correlation along `axis` with replicated borders (OpenCV's filter2D, BORDER_REPLICATE)."""
    half = len(kernel) // 2
    pad = [(0, 0), (0, 0)]
    pad[axis] = (half, half)
    padded = np.pad(image, pad, mode="edge")
    size = image.shape[axis]
    out = np.zeros_like(image)
    for k, weight in enumerate(kernel):
        out += weight * (padded[k:k + size] if axis == 0 else padded[:, k:k + size])
    return out


def gauss_gradient(alpha: np.ndarray, sigma: float = 1.4) -> np.ndarray:
    """Gradient magnitude of a 2-D alpha through RVM's derivative-of-Gaussian filters."""
    g, dg = gauss_filters(sigma)
    image = np.asarray(alpha, np.float64)
    gx = _correlate(_correlate(image, g, 0), dg, 1)
    gy = _correlate(_correlate(image, dg, 0), g, 1)
    return np.sqrt(gx ** 2 + gy ** 2)


def _min_max(alpha: np.ndarray) -> np.ndarray:
    """Stretched to 0..1 (OpenCV's NORM_MINMAX; a flat image becomes 0)."""
    image = np.asarray(alpha, np.float64)
    low, high = image.min(), image.max()
    return (image - low) / (high - low) if high - low > np.finfo(np.float64).eps else np.zeros_like(image)


def grad(pred: np.ndarray, true: np.ndarray) -> float:
    """Sum of squared differences of the two gradient magnitudes (each alpha min-max normalised first,
    as RVM's low-resolution evaluation does), / 1e3. A sum: it grows with the pixel count."""
    return float(np.square(gauss_gradient(_min_max(pred)) - gauss_gradient(_min_max(true))).sum() / 1e3)


def dtssd(pred: np.ndarray, pred_prev: np.ndarray, true: np.ndarray, true_prev: np.ndarray) -> float:
    """Temporal coherence: RMS of the difference between the two frame-to-frame changes, x 1e2."""
    change = (np.asarray(pred, np.float64) - pred_prev) - (np.asarray(true, np.float64) - true_prev)
    return float(np.sqrt(np.square(change).sum() / np.size(true)) * 1e2)


class AlphaMetrics:
    """RVM's metrics of one alpha sequence against another, frame by frame, averaged over the frames as
    RVM averages them (dtSSD counts 0 for the first frame). Grad is also reported scaled to the pixels
    of a 512x288 frame (`Grad`; RVM's raw sum is `Grad_raw`), so any size reads against RVM's error."""

    NAMES = ("MAD", "MSE", "Grad", "dtSSD")

    def __init__(self) -> None:
        self.sums = dict.fromkeys(("MAD", "MSE", "Grad", "Grad_raw", "dtSSD"), 0.0)
        self.frames = 0
        self._prev: tuple[np.ndarray, np.ndarray] | None = None

    def add(self, pred: np.ndarray, true: np.ndarray) -> None:
        """One frame's alphas (any shape squeezing to HxW, values 0..1)."""
        pred, true = np.squeeze(np.asarray(pred, np.float32)), np.squeeze(np.asarray(true, np.float32))
        if pred.shape != true.shape or pred.ndim != 2:
            raise ValueError(f"alpha shapes differ or are not 2-D: {pred.shape} vs {true.shape}")
        raw = grad(pred, true)
        self.sums["MAD"] += mad(pred, true)
        self.sums["MSE"] += mse(pred, true)
        self.sums["Grad_raw"] += raw
        self.sums["Grad"] += raw * GRAD_PIXELS / pred.size
        if self._prev is not None:
            self.sums["dtSSD"] += dtssd(pred, self._prev[0], true, self._prev[1])
        self._prev = (pred, true)
        self.frames += 1

    def result(self) -> dict[str, float]:
        return {name: total / max(self.frames, 1) for name, total in self.sums.items()}


def within_budget(metrics: dict[str, float], budget: float = PRECISION_BUDGET) -> dict[str, bool]:
    """Per metric: is it within `budget` of RVM's published error (the gate for a reduced precision)?"""
    return {name: metrics[name] <= budget * PUBLISHED_ERROR[name] for name in AlphaMetrics.NAMES}


# ---------------------------------------------------------------------------------------------
# Frames


def read_clip(video: str | os.PathLike, count: int) -> list[np.ndarray]:
    """Up to `count` HxWx3 uint8 RGB frames of a clip, read as `rvmkit matte` reads its input (so a
    file with no video stream, a damaged or unreadable one, fails with the same one-line error)."""
    from rvmkit.video import open_source

    frames: list[np.ndarray] = []
    with open_source(video) as source:
        for frame in source:
            frames.append(frame.rgb)
            if len(frames) == count:
                break
    if not frames:
        raise RvmkitError(f"{describe_path(video)}: no video frames")
    return frames


def check_clip(video: str | os.PathLike) -> None:
    """Fail early, in one line, on a clip that verification could not read (decodes one frame)."""
    read_clip(video, 1)


def validate_frames(frames: int, flag: str = "--frames") -> int:
    """At least one recurrent frame per size; `flag` is the option the user typed."""
    if frames < 1:
        raise RvmkitError(f"{flag} {frames}: must be at least 1")
    return frames


def resize_rgb(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize through FFmpeg's swscale (PyAV), no extra dependency."""
    import av

    if frame.shape[1] == width and frame.shape[0] == height:
        return frame
    video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
    return video_frame.reformat(width=width, height=height, format="rgb24",
                                interpolation="BILINEAR").to_ndarray()


def generated_frames(count: int, width: int, height: int) -> list[np.ndarray]:
    """Deterministic synthetic frames (gradient background, a moving figure, texture): enough to
    exercise every path numerically when no clip is at hand."""
    rng = np.random.default_rng(1234)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    y, x = y / max(height - 1, 1), x / max(width - 1, 1)
    background = np.stack([0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.5 + 0.3 * np.sin(6 * x * y)], axis=-1)
    texture = rng.random((height, width, 3), dtype=np.float32) * 0.1
    frames = []
    for t in range(count):
        cx, cy = 0.4 + 0.02 * t, 0.55 - 0.01 * t
        body = ((x - cx) / 0.18) ** 2 + ((y - cy) / 0.35) ** 2 < 1
        head = ((x - cx) / 0.08) ** 2 + ((y - cy + 0.38) / 0.1) ** 2 < 1
        mask = (body | head)[..., None]
        image = np.where(mask, np.array([0.8, 0.55, 0.45], np.float32) + texture * 2, background + texture)
        frames.append((np.clip(image, 0, 1) * 255).astype(np.uint8))
    return frames


# ---------------------------------------------------------------------------------------------
# Comparison


def model_ratio(model_path: str | os.PathLike, downsample_ratio: float | None = None) -> float:
    """The ratio to verify at: the baked one, or `downsample_ratio` for a model with a ratio input."""
    model = require_rvm_onnx(model_path)
    baked = baked_ratio(model)
    if baked is not None:
        if downsample_ratio is not None and not same_ratio(downsample_ratio, baked):
            raise RvmkitError(f"{describe_path(model_path)}: ratio {baked:g} is baked into the model; "
                              f"cannot verify at {downsample_ratio:g}")
        return baked
    if has_ratio_input(model):
        return validate_ratio(0.25 if downsample_ratio is None else downsample_ratio)
    raise RvmkitError(f"{describe_path(model_path)}: cannot find the baked downsample ratio; "
                      "pass --downsample-ratio")


def compare_runners(runners: list[Runner], frames: list[np.ndarray], size: tuple[int, int],
                    ratio: float, alpha: list[AlphaRow] | None = None) -> list[Comparison]:
    """Run every runner over `frames` (already at `size`), each from its own zero state, and compare
    all pairs per output; with `alpha`, append each pair's alpha difference in RVM's units to it."""
    label = f"{size[0]}x{size[1]}"
    states: list[State] = [None] * len(runners)
    pairs = list(itertools.combinations(range(len(runners)), 2))
    worst = {(p, o): 0.0 for p in pairs for o in range(len(OUTPUT_NAMES))}
    metrics = {p: AlphaMetrics() for p in pairs}
    pha = OUTPUT_NAMES.index("pha")
    for frame in frames:
        src = to_input(frame)
        outputs = []
        for k, runner in enumerate(runners):
            result, states[k] = runner.run(src, states[k], ratio)
            outputs.append(result)
        for (i, j), o in worst:
            diff = np.abs(outputs[i][o] - outputs[j][o]).max() if outputs[i][o].shape == outputs[j][o].shape \
                else np.inf
            worst[(i, j), o] = max(worst[(i, j), o], float(diff) if np.isfinite(diff) else np.inf)
        if alpha is not None:
            for i, j in pairs:  # a shape mismatch already fails the max abs row (inf)
                if outputs[i][pha].shape == outputs[j][pha].shape:
                    metrics[i, j].add(outputs[i][pha], outputs[j][pha])
    if alpha is not None:
        alpha += [AlphaRow(label, f"{runners[i].name}-{runners[j].name}", metrics[i, j].frames,
                           metrics[i, j].result(), judged=_reduced(runners[i], runners[j]))
                  for i, j in pairs]
    rows = []
    for o, output in enumerate(OUTPUT_NAMES):
        for i, j in pairs:
            precisions = {runners[i].precision, runners[j].precision}
            half = "float16" in precisions
            rows.append(Comparison(label, output, f"{runners[i].name}-{runners[j].name}", worst[(i, j), o],
                                   TOLERANCE["float16" if half else "float32"],
                                   gating=not _reduced(runners[i], runners[j])
                                   and (not half or output in FP16_GATED)))
    return rows


def verify_model(model_path: str | os.PathLike, *, reference: str | os.PathLike | None = None,
                 torch_model: Any = None, video: str | os.PathLike | None = None, frames: int = 3,
                 sizes: tuple[tuple[int, int], ...] = SIZES, downsample_ratio: float | None = None,
                 backend: str | None = None, precision: str = "fp32") -> VerifyReport:
    """Compare ORT on `model_path` with ORT on `reference`, with `torch_model` and with the model on
    `backend` in `precision` (any may be None, not all) over `frames` recurrent frames at each
    (width, height) in `sizes`."""
    validate_frames(frames)
    ratio = model_ratio(model_path, downsample_ratio)
    runners: list[Runner] = []
    try:
        runners += _runners(model_path, reference, torch_model, ratio, backend, precision)
        source = read_clip(video, frames) if video is not None else None
        described = f"{frames} frames of {Path(video).name}" if video is not None \
            else f"{frames} generated frames"
        report = VerifyReport(str(model_path), ratio, described)
        if source is not None and len(source) < frames:
            report.notes.append(f"the clip has only {len(source)} frames; used those")
        for width, height in sizes:
            clip = [resize_rgb(f, width, height) for f in source] if source is not None \
                else generated_frames(frames, width, height)
            report.rows += compare_runners(runners, clip, (width, height), ratio, report.alpha)
    finally:
        _close(runners)
    return report


def _runners(model_path: str | os.PathLike, reference: str | os.PathLike | None, torch_model: Any,
             ratio: float, backend: str | None = None, precision: str = "fp32") -> list[Runner]:
    """The model's runner, then the reference's, the PyTorch model's and the model's on `backend` (at
    least one of them)."""
    runners = [onnx_runner(model_path, "model")]
    try:
        if backend is not None:
            runners.append(backend_runner(model_path, backend, precision))
        if reference is not None:
            ref_baked = baked_ratio(require_rvm_onnx(reference))
            if ref_baked is not None and not same_ratio(ref_baked, ratio):
                raise RvmkitError(f"{describe_path(reference)}: reference has ratio {ref_baked:g} baked in, "
                                  f"the model {ratio:g}")
            runners.append(onnx_runner(reference, "reference"))
        if torch_model is not None:
            runners.append(torch_runner(torch_model))
        if len(runners) < 2:
            raise RvmkitError(f"{describe_path(model_path)}: nothing to compare with (give a reference ONNX, "
                              "a checkpoint or a --backend)")
    except BaseException:
        _close(runners)
        raise
    return runners


def _close(runners: list[Runner]) -> None:
    for runner in runners:
        runner.backend.close()


def torch_matches_reference(torch_model: Any, reference: str | os.PathLike, ratio: float) -> bool:
    """Quick probe (one small frame): are these the reference's weights? Decides whether an
    export from a custom checkpoint should be compared with the official model at all."""
    frame = generated_frames(1, 160, 128)
    runners = [onnx_runner(reference, "reference"), torch_runner(torch_model)]
    try:
        rows = compare_runners(runners, frame, (160, 128), ratio)
    finally:
        _close(runners)
    return all(row.ok for row in rows)
