"""Per frame size, the faster of the CPU fast path and a plain ONNX Runtime session: measured once per CPU,
model and size, and cached beside the fast path's optimised graph.

Why: the fast path is not faster everywhere. On an AMD Zen 4 it lost to a plain session at 640x480
(58.6 vs 56.3 ms a frame), while on the Zen 1 and the AVX-512 Xeon it wins at every size; which one wins
depends on the CPU and the size, so it is measured where it runs rather than guessed.

The first frame of a size with no cached choice times both paths on that frame (the recurrent state
carried, as a stream runs), unless the machine is busy (`machine_busy`): WARMUP_RUNS each untimed, then
rounds alternating the order, at least MIN_ROUNDS and at most MAX_ROUNDS, none started once BUDGET_S
has passed. The median of each path's rounds decides; a tie keeps the fast path. Both paths give the
official model's outputs (within 1e-4), so the choice changes the speed only.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import onnxruntime as ort

from rvmkit.errors import RvmkitError
from rvmkit.fileio import write_atomically
from rvmkit.runtime.cpu import cpu_signature

PATHS = ("fast", "staged", "plain")  # a tie goes to the first
#: bump when what is measured changes, so earlier choices are measured again
CHOICE_VERSION = 2  # 2: the fast path's two stages are a third path
WARMUP_RUNS = 1
MIN_ROUNDS = 3
MAX_ROUNDS = 7
#: seconds of timed rounds after which no new round starts (MIN_ROUNDS always run)
BUDGET_S = 0.4


def time_call(path: str, run: Callable[[], object]) -> float:
    """Seconds one run of `path` takes. The one clock of the measurement (tests inject their own)."""
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


@dataclass(frozen=True)
class Choice:
    """The path a frame size runs on and what it was chosen from (median ms a frame, rounds timed)."""

    size: str
    use: str
    fast_ms: float
    plain_ms: float
    rounds: int
    #: the whole measurement, the plain session's loading included
    seconds: float = 0.0
    version: int = CHOICE_VERSION
    #: the fast path's two stages side by side, where they were measured
    staged_ms: float | None = None


def size_key(width: int, height: int, small: tuple[int, int]) -> str:
    """The frame size and the network's input size (`small`: height, width), e.g. 640x480-320x240."""
    return f"{width}x{height}-{small[1]}x{small[0]}"


def choice_file(graph: Path, key: str) -> Path:
    """Beside the cached low-res graph and named like its optimised form (ORT version, CPU signature): a
    re-exported model, a rewrite change, another ONNX Runtime or another CPU is measured again."""
    return graph.with_name(f"{graph.stem}.ort{ort.__version__}.{cpu_signature()}.{key}.choice.json")


def read_choice(path: Path, key: str) -> Choice | None:
    """The cached choice, or None when there is none or it is unreadable, damaged or foreign (measured
    again then, and rewritten)."""
    try:
        data = json.loads(path.read_text())
        choice = Choice(**data)
    except (OSError, ValueError, TypeError):
        return None
    if choice.size != key or choice.use not in PATHS or choice.version != CHOICE_VERSION:
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # last used: what the cache's age limit counts from
    return choice


def write_choice(path: Path, choice: Choice) -> None:
    """Atomically; a cache that cannot be written is left as it is (the choice holds for this run)."""
    with contextlib.suppress(RvmkitError, OSError):
        write_atomically(path, lambda temp: temp.write_text(json.dumps(asdict(choice)) + "\n"))


def machine_busy() -> bool:
    """Whether other work holds the cores (1-minute load average at or above the core count): a
    measurement then times the neighbours as much as the paths, and a choice is kept for good, so none is
    made (the fast path runs, and the size is measured on a later, quieter run)."""
    try:
        return os.getloadavg()[0] >= (os.cpu_count() or 1)
    except OSError:  # no load average on this platform
        return False


def can_cache(graph: Path) -> bool:
    """Whether a choice could be kept: without that every run would measure again, so none measures."""
    return os.access(graph.parent, os.W_OK)


def measure(runs: dict[str, Callable[[], object]], timer: Callable[[str, Callable[[], object]], float] | None
            = None) -> tuple[dict[str, float], int]:
    """({path: median seconds a run}, rounds): WARMUP_RUNS untimed runs of each, then rounds alternating
    the order, MIN_ROUNDS to MAX_ROUNDS, none started after BUDGET_S."""
    timer = timer or time_call
    for run in runs.values():
        for _ in range(WARMUP_RUNS):
            run()
    names = list(runs)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    started = time.monotonic()
    rounds = 0
    while rounds < MAX_ROUNDS and (rounds < MIN_ROUNDS or time.monotonic() - started < BUDGET_S):
        for name in (names if rounds % 2 == 0 else names[::-1]):
            seconds[name].append(timer(name, runs[name]))
        rounds += 1
    return {name: statistics.median(values) for name, values in seconds.items()}, rounds


def decide(key: str, medians: dict[str, float], rounds: int, seconds: float = 0.0) -> Choice:
    """The fastest path by median (on a tie, the first in PATHS)."""
    use = min(medians, key=lambda path: (medians[path], PATHS.index(path)))

    def ms(path: str) -> float:
        return round(1000 * medians[path], 2)

    return Choice(key, use, ms("fast"), ms("plain"), rounds, round(seconds, 3),
                  staged_ms=ms("staged") if "staged" in medians else None)
