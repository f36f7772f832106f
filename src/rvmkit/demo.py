"""`python -m rvmkit.demo`: matte a short clip of a real person, made from a photo that a package ships.

scikit-image's `astronaut.png` (public domain, NASA) is panned and zoomed into a 3 s, 30 fps,
640x360 clip, then matted over a generated sunset gradient: ./demo/composition.mp4, ./demo/alpha.mp4
and ./demo/preview.png (input | alpha | composition). Needs only the package index (`make demo`).
"""

from __future__ import annotations

import argparse
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from rvmkit.errors import RvmkitError

WIDTH, HEIGHT, FPS, SECONDS = 640, 360, 30, 3


def astronaut() -> np.ndarray:
    """The 512x512 RGB photo bundled with scikit-image (no download)."""
    try:
        from skimage import data
    except ImportError:
        raise RvmkitError("the demo needs scikit-image: pip install scikit-image (or `make demo`)") from None
    return data.astronaut()


def _smooth(t: float) -> float:
    return t * t * (3 - 2 * t)


def camera_frames(photo: np.ndarray, count: int = FPS * SECONDS, width: int = WIDTH,
                  height: int = HEIGHT) -> list[np.ndarray]:
    """A slow push-in from head-and-shoulders towards the face, with a gentle sideways drift."""
    photo_h, photo_w = photo.shape[:2]
    frames = []
    for i in range(count):
        t = _smooth(i / max(1, count - 1))
        zoom = 1.0 + 0.45 * t
        crop_w = photo_w / zoom
        crop_h = crop_w * height / width
        centre_x = photo_w / 2 + (-30 + 20 * np.sin(2 * np.pi * t)) * t
        centre_y = crop_h / 2 + 10 + 40 * t
        left = int(round(np.clip(centre_x - crop_w / 2, 0, photo_w - crop_w)))
        top = int(round(np.clip(centre_y - crop_h / 2, 0, photo_h - crop_h)))
        crop = np.ascontiguousarray(photo[top:top + int(round(crop_h)), left:left + int(round(crop_w))])
        frame = av.VideoFrame.from_ndarray(crop, format="rgb24")
        frames.append(frame.reformat(width=width, height=height, format="rgb24",
                                     interpolation="BICUBIC").to_ndarray())
    return frames


def gradient_background(width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """A sunset-like vertical gradient with a soft glow: clearly not the photo's backdrop."""
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    x = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :, None]
    top, bottom = np.array([38, 48, 120], np.float32), np.array([250, 150, 70], np.float32)
    image = top + (bottom - top) * y
    glow = np.exp(-((x / 0.6) ** 2 + ((y - 0.8) / 0.3) ** 2))
    image = image + glow * np.array([60, 50, 20], np.float32)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


def write_clip(frames: list[np.ndarray], path: Path) -> Path:
    """Encode frames as H.264 with rvmkit's own writer (temporary name, renamed when complete)."""
    from rvmkit.video.reader import Frame, VideoInfo
    from rvmkit.video.writer import open_sink

    height, width = frames[0].shape[:2]
    info = VideoInfo(path=Path("astronaut.png"), width=width, height=height, frame_count=len(frames),
                     fps=Fraction(FPS), time_base=Fraction(1, FPS), has_audio=False, is_image_sequence=False)
    sink = open_sink(path, info, alpha=False, overwrite=True)
    try:
        for index, rgb in enumerate(frames):
            sink.write(rgb, Frame(index=index, rgb=rgb, pts=index, time_base=info.time_base))
        return sink.commit()
    except BaseException:
        sink.abort()
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rvmkit.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo", help="output folder (default: ./demo)")
    parser.add_argument("--frames", type=int, default=FPS * SECONDS,
                        help="clip length in frames (default: 90)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.frames < 1:
        parser.error(f"--frames {args.frames}: must be at least 1")
    from rvmkit.api import convert_video
    from rvmkit.video.writer import encode_png

    try:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        clip = write_clip(camera_frames(astronaut(), args.frames), out / "input.mp4")
        background = out / "background.png"
        background.write_bytes(encode_png(gradient_background()))
        result = convert_video(clip, out / "composition.mp4", out / "alpha.mp4", background=background,
                               preview=out / "preview.png", overwrite=True, progress=not args.quiet)
    except RvmkitError as exc:
        print(f"rvmkit demo: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"matted {result.frames} frames of {clip} in {result.seconds:.1f} s")
    for role in ("composition", "alpha", "preview"):
        print(f"{role + ':':13} {result.outputs[role].resolve()}")
    print(f"{'input:':13} {clip.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
