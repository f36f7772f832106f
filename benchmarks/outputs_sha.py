"""The bytes of every deterministic output, for a given checkout: matte outputs, live recordings and serve
downloads on the shared clips, as sha256 per file (a PNG folder or zip: per member). Issue 21's check that
a restructure changes no output byte.

    python benchmarks/outputs_sha.py CHECKOUT OUT.json          # runs CHECKOUT/src's rvmkit
    python benchmarks/outputs_sha.py --compare A.json B.json     # names every file that differs

Matroska and WebM files differ in every run (FFmpeg writes the date and a random segment UID), so they
are compared by their packets. A live recording is deterministic only when no frame was dropped: the live
source is the clip slowed to 5 fps (so a loaded machine keeps up), its stats' `dropped` is stored beside
its hashes, and `--compare` reports a live difference as meaningful only when both runs dropped none.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

DATA = Path(os.environ.get("RVMKIT_DATA", "/work/shared/data"))
CLIP = DATA / "milk.mkv"
#: name -> rvmkit arguments after the input (outputs relative to the run's folder)
MATTE_RUNS = {
    "bitrate": ["--output-composition", "c.mp4", "--output-alpha", "a.mp4", "--output-foreground", "f.mkv",
                "--output-video-mbps", "2"],
    "quality": ["--output-composition", "c.mkv", "--output-alpha", "a.mkv", "--input-resize", "161", "121",
                "--crf", "20"],
    "png": ["--output-composition", "c", "--output-alpha", "a", "--input-resize", "160", "120"],
    "transparent_vp9": ["--output-composition", "c.webm", "--background", "transparent",
                        "--input-resize", "160", "120"],
    "transparent_prores": ["--output-composition", "c.mov", "--output-alpha", "a.mov", "--background",
                           "transparent", "--input-resize", "160", "120", "--output-video-mbps", "3"],
    "image": ["--output-composition", "c.png", "--output-alpha", "a.jpg"],
}
LIVE_RUN = ["--realtime", "--record", "r.mp4", "--record-alpha", "ra.mkv", "--input-resize", "160", "120",
            "--stats", "stats.json", "--quiet"]
#: the live source runs at 30 / LIVE_SLOWDOWN fps
LIVE_SLOWDOWN = 6
#: serve job formats: the worker's run_job, exactly as the service runs a job (no server)
SERVE_FORMATS = ("mp4", "webm", "png")


def packets(path: Path) -> str:
    """sha256 of every packet (stream, pts, dts, keyframe flag, bytes) and each stream's extradata: a
    Matroska/WebM file's content, which its bytes are not (FFmpeg writes the date and a random segment
    UID into every file)."""
    import av

    hasher = hashlib.sha256()
    with av.open(str(path)) as container:
        for stream in container.streams:
            hasher.update(bytes(stream.codec_context.extradata or b""))
        for packet in container.demux():
            hasher.update(repr((packet.stream.index, packet.pts, packet.dts, packet.is_keyframe)).encode())
            hasher.update(bytes(packet))
    return hasher.hexdigest()


def digest(path: Path) -> dict[str, str]:
    """{name: sha256} of a file, a folder's files, or a zip's members (not its dates); a Matroska/WebM
    file by its packets."""
    if path.suffix in (".mkv", ".webm"):
        return {f"{path.name} (packets)": packets(path)}
    if path.is_dir():
        return {f"{path.name}/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(path.iterdir())}
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            return {n: hashlib.sha256(archive.read(n)).hexdigest() for n in sorted(archive.namelist())}
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()}


def slowed(source: Path, dest: Path, factor: int) -> Path:
    """`source`'s video packets remuxed with every timestamp `factor` times later: the same frames at a
    rate a loaded machine keeps up with in real time, so a live run drops nothing."""
    import av

    with av.open(str(source)) as inp, av.open(str(dest), "w") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if not packet.size:
                continue  # the demuxer's final empty packet
            if packet.pts is not None:
                packet.pts *= factor
            if packet.dts is not None:
                packet.dts *= factor
            packet.stream = stream
            out.mux(packet)
    return dest


def run(checkout: Path, args: list[str], cwd: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(checkout / "src")}
    subprocess.run([sys.executable, *args], cwd=cwd, env=env, check=True, timeout=600)


def collect(checkout: Path) -> dict[str, object]:
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="rvmkit-sha-") as tmp:
        root = Path(tmp)
        for name, args in MATTE_RUNS.items():
            folder = root / name
            folder.mkdir()
            source = CLIP if name != "image" else root / "still.png"
            if name == "image":
                run(checkout, ["-c", "import av,sys; c=av.open(sys.argv[1]); f=next(c.decode(video=0));"
                               "f.to_image().save(sys.argv[2])", str(CLIP), str(source)], folder)
            run(checkout, ["-m", "rvmkit", "matte", str(source), *args, "--quiet"], folder)
            results[f"matte/{name}"] = {k: v for p in sorted(folder.iterdir()) for k, v in digest(p).items()}
        folder = root / "live"
        folder.mkdir()
        source = slowed(CLIP, root / "slow.mkv", LIVE_SLOWDOWN)
        run(checkout, ["-m", "rvmkit", "live", str(source), *LIVE_RUN], folder)
        stats = json.loads((folder / "stats.json").read_text())
        results["live"] = {"dropped": stats["totals"]["dropped"],
                           **digest(folder / "r.mp4"), **digest(folder / "ra.mkv")}
        for fmt in SERVE_FORMATS:
            folder = root / f"serve_{fmt}"
            (folder / "outputs").mkdir(parents=True)
            spec = {"input": str(CLIP), "outputs_dir": str(folder / "outputs"), "format": fmt,
                    "preview": str(folder / "outputs" / "preview.png"), "address": None, "max_frames": 1000,
                    "outputs": {r: str(folder / "outputs" / (r if fmt == "png" else f"{r}.{fmt}"))
                                for r in ("composition", "alpha")},
                    "matte": {"downsample_ratio": None, "background": None,
                              "output_type": "png_sequence" if fmt == "png" else "video"}}
            code = ("import json,sys; from rvmkit.serve.worker import run_job; "
                    "print(json.dumps(run_job(json.loads(sys.argv[1]), lambda d, t: None)))")
            run(checkout, ["-c", code, json.dumps(spec)], folder)
            results[f"serve/{fmt}"] = {k: v for p in sorted((folder / "outputs").iterdir())
                                       for k, v in digest(p).items()}
    return results


def compare(a: dict, b: dict) -> int:
    differ = 0
    for group in sorted(set(a) | set(b)):
        left, right = a.get(group, {}), b.get(group, {})
        for name in sorted(set(left) | set(right)):
            if name == "dropped":
                continue
            if left.get(name) != right.get(name):
                note = ""
                if group == "live" and (left.get("dropped") or right.get("dropped")):
                    dropped = f"{left.get('dropped')} / {right.get('dropped')}"
                    note = f" (frames dropped: {dropped}, not comparable)"
                else:
                    differ += 1
                print(f"DIFFERS {group}/{name}{note}")
    total = sum(len([k for k in v if k != "dropped"]) for v in a.values())
    print(f"{total} files compared, {differ} differ")
    return 1 if differ else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs=2, type=Path)
    parser.add_argument("--compare", action="store_true")
    args = parser.parse_args()
    if args.compare:
        return compare(*(json.loads(p.read_text()) for p in args.paths))
    checkout, out = args.paths
    out.write_text(json.dumps(collect(checkout.resolve()), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
