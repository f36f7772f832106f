"""One job in its own process: `python -m rvmkit.serve.worker`, given the path of its JOB.json on stdin.

A process per job is the isolation the service promises: a job that crashes, runs out of memory or is
cancelled (killed) takes nothing else with it. The job runs through rvmkit's own entry points:
`rvmkit.api.convert_video` (the same code and options as `rvmkit matte`) on this machine, or
`rvmkit.batch.run_batch` (the code of `rvmkit batch`) on a Ray cluster when the spec has an address.

The server keeps one such process started ahead ("spare"): it imports the engine (numpy, PyAV, ONNX
Runtime, numba: seconds of a short job) while it waits, then reads its job's spec path as one line
on stdin (EOF: nothing to do, it exits). It reports to the server as JSON lines on its original
stdout: `{"done": n, "total": t}` as frames are written, then one `{"ok": true, "frames": n,
"outputs": {...}}` or `{"ok": false, "error": "..."}`. Anything else printed goes to the job's
worker.log. A broken pipe (the server died) ends the job, whose partial outputs the engine aborts.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
import traceback
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from rvmkit.errors import RvmkitError, first_line
from rvmkit.options import ROLES as ROLES  # the job spec's output roles
from rvmkit.options import output_paths as output_paths  # <role>.<fmt> in the job's outputs folder
from rvmkit.signals import handle, interrupt

REPORT_EVERY_S = 0.2
Report = Callable[[int, "int | None"], None]


class Channel:
    """The JSON-lines pipe to the server; progress is throttled to a few lines a second."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self._sent = 0.0

    def send(self, message: dict[str, Any]) -> None:
        self.stream.write(json.dumps(message) + "\n")
        self.stream.flush()

    def progress(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - self._sent >= REPORT_EVERY_S or done == total:
            self._sent = now
            self.send({"done": done, "total": total})


def run_local(spec: dict[str, Any], report: Report) -> tuple[int, dict[str, Path]]:
    """The job through `convert_video`, exactly as `rvmkit matte` runs it."""
    from rvmkit.api import convert_video

    outputs = {role: Path(path) for role, path in spec["outputs"].items()}
    result = convert_video(spec["input"], outputs.get("composition"), outputs.get("alpha"),
                           outputs.get("foreground"), preview=spec.get("preview"), progress=False,
                           on_progress=report, **spec["matte"])
    return result.frames, dict(result.outputs)


def run_on_ray(spec: dict[str, Any], report: Report) -> tuple[int, dict[str, Path]]:
    """The job through `rvmkit batch`'s code on the Ray cluster at spec['address'] (one item, one worker).

    Ray reports an item when it is done, so progress jumps from 0 to the total; there is no preview."""
    from rvmkit.batch import run_batch

    outputs = {role: Path(path) for role, path in spec["outputs"].items()}
    folder = Path(spec["outputs_dir"]) / "ray"
    matte = {key: value for key, value in spec["matte"].items() if key != "output_type"}
    [item] = run_batch([spec["input"]], folder, outputs=list(outputs), fmt=spec["format"],
                       address=spec["address"], num_workers=1, **matte)
    if item.status != "done":
        raise RvmkitError(item.error or "the Ray job failed")
    for role, produced in item.outputs.items():
        os.replace(produced, outputs[role])
    shutil.rmtree(folder, ignore_errors=True)
    report(item.frames or 0, item.frames)
    return item.frames or 0, outputs


def zip_folder(folder: Path) -> Path:
    """A folder of PNGs as one stored (uncompressed: PNG is compressed already) zip beside it, written
    under a temporary name and renamed when complete; the folder is removed."""
    target = folder.with_name(folder.name + ".zip")
    temp = folder.with_name(f".{folder.name}.zip.part")
    try:
        with zipfile.ZipFile(temp, "w", zipfile.ZIP_STORED) as archive:
            for path in sorted(folder.iterdir()):
                archive.write(path, f"{folder.name}/{path.name}")
        os.replace(temp, target)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise RvmkitError(f"'{target.name}': cannot write the output ({exc.strerror or exc})") from None
    shutil.rmtree(folder)
    return target


def bounded(report: Report, max_frames: int | None) -> Report:
    """`report`, stopping the job (its outputs are aborted) once it decodes more than `max_frames`: the
    limit holds on the frames really decoded, whatever the upload's check counted."""
    def check(done: int, total: int | None) -> None:
        if max_frames is not None and done > max_frames:
            raise RvmkitError(f"the video holds more than {max_frames} frames, this server's limit")
        report(done, total)

    return check


def run_job(spec: dict[str, Any], report: Report) -> dict[str, Any]:
    run = run_on_ray if spec.get("address") else run_local
    frames, produced = run(spec, bounded(report, spec.get("max_frames")))
    outputs: dict[str, str] = {}
    for role, path in produced.items():
        path = Path(path)
        if path.is_dir():
            path = zip_folder(path)
        outputs[role] = path.name
    return {"ok": True, "frames": frames, "outputs": outputs}


def preload(backend: str | None = None, device: str = "cpu") -> None:
    """Import what every job needs and the server's backend (None: onnxruntime, with the fast path's
    compiled kernels from numba's disk cache on the CPU), before there is a job: together about two
    seconds a fresh process would otherwise spend on its first frame."""
    import rvmkit.api  # noqa: F401
    import rvmkit.pipeline  # noqa: F401
    from rvmkit.runtime import preload as preload_backend

    preload_backend(backend, device)


def _backend_args(argv: list[str]) -> tuple[str | None, str]:
    """(--backend, --device) from the worker's command line (the server's model options)."""
    options = dict(zip(argv[::2], argv[1::2], strict=False))
    return options.get("--backend"), options.get("--device", "cpu")


def _log_to(path: Path) -> None:
    """From now on stderr (and stray prints) go to the job's log."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    os.dup2(fd, 1)
    os.close(fd)


def main(argv: list[str] | None = None) -> int:
    channel = Channel(os.fdopen(os.dup(1), "w"))
    os.dup2(2, 1)  # stray prints from libraries go to the log, not into the protocol
    handle((signal.SIGTERM,), interrupt, replace=True)  # the engine aborts its outputs and re-raises
    try:
        preload(*_backend_args(sys.argv[1:] if argv is None else argv))
        line = sys.stdin.readline().strip()
        if not line:
            return 0  # the server let this spare go
        _log_to(Path(line).with_name("worker.log"))
        spec = json.loads(Path(line).read_text())
        message = run_job(spec, channel.progress)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1  # the server is gone: nothing to report to
    except RvmkitError as exc:
        message = {"ok": False, "error": str(exc)}
    except MemoryError:
        message = {"ok": False, "error": "out of memory"}
    except Exception as exc:  # noqa: BLE001 - reported as the job's error; the traceback goes to the log
        traceback.print_exc()
        message = {"ok": False, "error": f"{type(exc).__name__}: {first_line(exc)}"}
    try:
        channel.send(message)
    except BrokenPipeError:
        return 1
    return 0


if __name__ == "__main__":
    status = main()
    sys.stderr.flush()
    os._exit(status)  # the outputs are closed and reported: skip the interpreter's slow teardown
