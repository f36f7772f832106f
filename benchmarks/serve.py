"""What `rvmkit serve` costs over `rvmkit matte` on the same clip, end to end.

    .venv/bin/python benchmarks/serve.py          # writes benchmarks/serve.json (and prints a summary)

Input: the 109 frames of ../shared/data/book.mkv (640x480, 30 fps), encoded as H.264 (crf 10) in a
temporary folder; every run writes the composition (H.264 over green) and the contact sheet, at
downsample ratio 0.5, on the CPU (ONNX Runtime fast path).
  (1) overhead: `rvmkit matte CLIP --output-composition --preview` (a new process, as a user runs it)
      vs the service, timed from the start of the upload to the end of the download of the composition
      (multipart upload, probe, queue, worker process, progress, download), both medians of --reps;
  (2) two jobs submitted at once (server with --workers 2) vs two sequential `rvmkit matte` runs;
  (3) the server process's RSS over --jobs small jobs (48 frames 320x240), one after the other.
The server is started once per part and warmed with one job first (a running service is warm).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
RATIO = "0.5"


def _loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def _cpu() -> str:
    text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return f"{fields.get('Model name', platform.processor()).strip()}, {os.cpu_count()} CPUs"


def cli_matte(clip: Path, out: Path) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "rvmkit", "matte", str(clip), "--output-composition",
                    str(out / "c.mp4"), "--preview", str(out / "p.png"), "--downsample-ratio", RATIO,
                    "--overwrite", "--quiet"], check=True)
    return time.monotonic() - started


class Service:
    def __init__(self, data: Path, workers: int) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        live = data.parent / f"{data.name}-live"
        live.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen([sys.executable, "-m", "rvmkit", "serve", "--port", str(self.port),
                                         "--data-dir", str(data), "--workers", str(workers), "--live-dir",
                                         str(live), "--retention", "0"], stdout=subprocess.DEVNULL)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=600)
        for _ in range(600):
            try:
                if self.client.get("/api/health").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def job(self, clip: Path) -> float:
        """Upload, follow the events to the end, download the composition: seconds."""
        started = time.monotonic()
        with open(clip, "rb") as handle:
            job = self.client.post("/api/jobs", files={"file": (clip.name, handle)},
                                   data={"downsample_ratio": RATIO}).json()
        with self.client.stream("GET", f"/api/jobs/{job['id']}/events") as events:
            for _ in events.iter_lines():
                pass
        job = self.client.get(f"/api/jobs/{job['id']}").json()
        assert job["state"] == "done", job
        size = len(self.client.get(job["outputs"]["composition"]).content)
        assert size > 0
        return time.monotonic() - started

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)


def overhead(clip: Path, tmp: Path, reps: int) -> dict:
    service = Service(tmp / "data-overhead", workers=1)
    try:
        service.job(clip)  # warm-up: the fast-graph cache, the spare worker
        cli, served = [], []
        for _ in range(reps):  # interleaved, so a change in machine load hits both alike
            cli.append(cli_matte(clip, tmp))
            time.sleep(2)  # let the spare worker finish importing, as it would between real uploads
            served.append(service.job(clip))
    finally:
        service.stop()
    median_cli, median_served = statistics.median(cli), statistics.median(served)
    return {"cli_s": cli, "service_s": served, "cli_median_s": round(median_cli, 2),
            "service_median_s": round(median_served, 2),
            "overhead_pct": round(100 * (median_served / median_cli - 1), 1)}


def concurrent(clip: Path, tmp: Path) -> dict:
    sequential = [cli_matte(clip, tmp) for _ in range(2)]
    service = Service(tmp / "data-pair", workers=2)
    try:
        service.job(clip)
        time.sleep(2)
        times: list[float] = []
        started = time.monotonic()
        threads = [threading.Thread(target=lambda: times.append(service.job(clip))) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        both = time.monotonic() - started
    finally:
        service.stop()
    return {"two_sequential_matte_s": round(sum(sequential), 2), "two_at_once_service_s": round(both, 2),
            "each_job_s": [round(t, 2) for t in times], "ratio": round(both / sum(sequential), 3)}


def memory(small: Path, tmp: Path, jobs: int) -> dict:
    service = Service(tmp / "data-memory", workers=1)
    try:
        rss = [round(service.rss_mb(), 1)]
        for _ in range(jobs):
            service.job(small)
            rss.append(round(service.rss_mb(), 1))
    finally:
        service.stop()
    return {"rss_mb_after_each_job": rss, "first_job_mb": rss[1], "last_job_mb": rss[-1],
            "growth_after_first_mb": round(rss[-1] - rss[1], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--json", type=Path, default=HERE / "serve.json")
    args = parser.parse_args()
    from rvmkit import bench

    with tempfile.TemporaryDirectory(prefix="rvmkit-serve-bench-") as folder:
        tmp = Path(folder)
        clip = bench.make_clip(DATA / "book.mkv", tmp / "book640.mp4", 640, 480, 109)
        small = bench.make_clip(DATA / "book.mkv", tmp / "book320.mp4", 320, 240, 48)
        result = {"machine": _cpu(), "load_1min_at_start": _loadavg(), "python": platform.python_version(),
                  "clip": "book.mkv, 109 frames 640x480, ratio 0.5, composition mp4 + preview"}
        result["overhead"] = overhead(clip, tmp, args.reps)
        result["two_jobs"] = concurrent(clip, tmp)
        result["memory"] = memory(small, tmp, args.jobs)
        result["load_1min_at_end"] = _loadavg()
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
