"""Speed of two checkouts, alternating on one machine in one run (issue 21: the restructure is no slower).

    python benchmarks/core_speed.py BEFORE_CHECKOUT AFTER_CHECKOUT OUT.json [--rounds 3] [--frames 30]

- whole process, 1080p: `rvmkit matte` (composition + alpha, H.264 at 4 Mbps, ratio 0.25) on the first
  `--frames` frames of book.mkv scaled to 1920x1080, wall time of the process;
- live: `rvmkit live book.mkv --realtime` to a PNG-folder recording, its stats' output frame rate and drops
  (the loop keeps up when it runs at the source's 30 fps with nothing dropped, or at the model's speed);
- the CPU time (user + system) of each process too: on a machine loaded by others, wall times and frame
  rates measure the scheduler as much as the code, CPU time much less so (live: per frame written).

The order alternates (A B B A A B ...) so drifting load falls on both; medians and the 1-minute load
average before each run are recorded, with the CPU's name.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(os.environ.get("RVMKIT_DATA", "/work/shared/data"))


def run(checkout: Path, args: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system of the process and its threads)."""
    env = {**os.environ, "PYTHONPATH": str(checkout / "src")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rvmkit", *args], cwd=cwd, env=env, check=True, timeout=900,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=30)
    args = parser.parse_args()
    checkouts = {"before": args.before.resolve(), "after": args.after.resolve()}
    sys.path.insert(0, str(checkouts["after"] / "src"))
    from rvmkit.bench import make_clip

    keys = ("matte_s", "matte_cpu_s", "live_fps", "live_dropped", "live_cpu_ms_per_frame", "load")
    runs: dict[str, dict[str, list]] = {name: {key: [] for key in keys} for name in checkouts}
    with tempfile.TemporaryDirectory(prefix="rvmkit-speed-") as tmp:
        root = Path(tmp)
        clip = make_clip(DATA / "book.mkv", root / "hd.mkv", 1920, 1080, args.frames)
        for round_ in range(args.rounds):
            order = ["before", "after"] if round_ % 2 == 0 else ["after", "before"]
            for name in order:
                runs[name]["load"].append(os.getloadavg()[0])
                matte = ["matte", str(clip), "--output-composition", "c.mp4", "--output-alpha", "a.mp4",
                         "--output-video-mbps", "4", "--downsample-ratio", "0.25", "--overwrite", "--quiet"]
                wall, cpu = run(checkouts[name], matte, root)
                runs[name]["matte_s"].append(round(wall, 2))
                runs[name]["matte_cpu_s"].append(round(cpu, 2))
                live = ["live", str(DATA / "book.mkv"), "--realtime", "--record", "rec/", "--stats",
                        "stats.json", "--overwrite", "--quiet"]
                _, cpu = run(checkouts[name], live, root)
                totals = json.loads((root / "stats.json").read_text())["totals"]
                per_frame = 1000 * cpu / max(1, totals["frames_out"])
                runs[name]["live_cpu_ms_per_frame"].append(round(per_frame, 1))
                runs[name]["live_fps"].append(totals["fps_out"])
                runs[name]["live_dropped"].append(totals["dropped"])
                subprocess.run(["rm", "-rf", str(root / "rec")], check=True)
    result = {"cpu": cpu_name(), "cores": os.cpu_count(), "frames": args.frames,
              "checkouts": {k: str(v) for k, v in checkouts.items()}, "runs": runs,
              "median": {name: {key: statistics.median(values) for key, values in data.items()}
                         for name, data in runs.items()}}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["median"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
