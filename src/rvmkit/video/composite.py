"""Turn the network's fgr/pha into output frames, and parse `--background`.

All arithmetic is float32 (no float64 temporaries) and every float -> uint8 conversion rounds half up:
clip(x * 255 + 0.5, 0, 255) then truncate. (The official RVM writer truncates instead, which darkens by
up to 1/255; rounding is unbiased.) The number of dimensions alone fixes the layout, so no image (not even a
3-pixel-wide one) is ambiguous: 4-D is the network's NCHW with N = 1 (fgr 1x3xHxW, pha 1x1xHxW), 3-D is HWC
(fgr HxWx3, pha HxWx1), and pha may also be a plain HxW. NCHW is computed in CHW order, and only the final
uint8 image is transposed, which is the cheapest copy.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from rvmkit.errors import RvmkitError, describe_path

DEFAULT_GREEN = (120, 255, 155)  # RVM's default background
COLOURS: dict[str, tuple[int, int, int]] = {
    "green": DEFAULT_GREEN, "blue": (0, 0, 255), "white": (255, 255, 255), "black": (0, 0, 0),
    "red": (255, 0, 0), "gray": (128, 128, 128), "grey": (128, 128, 128), "yellow": (255, 255, 0),
    "cyan": (0, 255, 255), "magenta": (255, 0, 255),
    "chroma-green": (0, 177, 64), "chroma-blue": (0, 71, 187),
}
_HEX = re.compile(r"#?([0-9a-fA-F]{6})")


def _float_image(fgr: np.ndarray) -> tuple[np.ndarray, bool]:
    """(float32 HxWx3 or 3xHxW view, is_chw) of an HxWx3 (HWC) or 1x3xHxW (NCHW) image."""
    fgr = np.asarray(fgr, dtype=np.float32)
    if fgr.ndim == 4 and fgr.shape[:2] == (1, 3):
        return fgr[0], True
    if fgr.ndim == 3 and fgr.shape[2] == 3:
        return fgr, False
    raise ValueError(f"expected an HxWx3 (HWC) or 1x3xHxW (NCHW) image, got shape {fgr.shape}")


def _float_alpha(pha: np.ndarray, chw: bool) -> np.ndarray:
    """float32 alpha of an HxW, HxWx1 (HWC) or 1x1xHxW (NCHW) array, shaped to broadcast against an HWC
    (HxWx1) or CHW (1xHxW) image."""
    pha = np.asarray(pha, dtype=np.float32)
    if pha.ndim == 4 and pha.shape[:2] == (1, 1):
        pha = pha[0, 0]
    elif pha.ndim == 3 and pha.shape[2] == 1:
        pha = pha[:, :, 0]
    elif pha.ndim != 2:
        raise ValueError(f"expected an HxW, HxWx1 (HWC) or 1x1xHxW (NCHW) alpha, got shape {pha.shape}")
    return pha[None] if chw else pha[:, :, None]


def _to_u8(values: np.ndarray, chw: bool) -> np.ndarray:
    """Round half up (values already scaled to 0..255, modified in place) to contiguous HWC uint8."""
    values += 0.5
    np.clip(values, 0, 255, out=values)
    out = values.astype(np.uint8)
    return np.ascontiguousarray(out.transpose(1, 2, 0) if chw else out)


def composite(fgr: np.ndarray, pha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 round(255 * (fgr * pha + bg * (1 - pha))), bg being the uint8 `background` / 255."""
    image, chw = _float_image(fgr)
    alpha = _float_alpha(pha, chw)
    bg = np.asarray(background)
    if bg.ndim == 1:  # a plain colour
        bg = bg.reshape((3, 1, 1) if chw else (1, 1, 3))
    elif chw:
        bg = bg.transpose(2, 0, 1)
    bg = bg.astype(np.float32)
    out = image * np.float32(255)
    out -= bg
    out *= alpha
    out += bg
    return _to_u8(out, chw)


def rgba(fgr: np.ndarray, pha: np.ndarray) -> np.ndarray:
    """HxWx4 uint8 straight (not premultiplied) RGBA, for transparent outputs."""
    image, chw = _float_image(fgr)
    alpha = _float_alpha(pha, chw)
    stacked = np.concatenate([image, alpha], axis=0 if chw else 2)
    stacked *= np.float32(255)
    return _to_u8(stacked, chw)


def alpha_u8(pha: np.ndarray, channels: int = 3) -> np.ndarray:
    """Alpha as uint8 grey: HxWx3 (channels=3, for video encoders) or HxW (channels=1, for PNG)."""
    alpha = _float_alpha(pha, chw=False)[:, :, 0] * np.float32(255)
    grey = _to_u8(alpha, chw=False)
    if channels == 1:
        return grey
    return np.repeat(grey[:, :, None], channels, axis=2)


def foreground_u8(fgr: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 foreground colours."""
    image, chw = _float_image(fgr)
    return _to_u8(image * np.float32(255), chw)


def parse_colour(spec: str) -> tuple[int, int, int] | None:
    """A colour name, #RRGGBB or R,G,B, or None if `spec` is none of these."""
    text = spec.strip().lower()
    if text in COLOURS:
        return COLOURS[text]
    match = _HEX.fullmatch(text)
    if match:
        value = match.group(1)
        return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)
    parts = text.split(",")
    if len(parts) == 3 and all(part.strip().isdigit() and int(part) <= 255 for part in parts):
        return int(parts[0]), int(parts[1]), int(parts[2])
    return None


class Background:
    """What goes behind the subject: a colour, an image, a looping video, or nothing (transparent)."""

    transparent: bool = False

    def frame(self, index: int) -> np.ndarray | None:
        """HxWx3 uint8 background for output frame `index` (None when transparent)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release any decoder."""

    def __enter__(self) -> Background:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TransparentBackground(Background):
    transparent = True

    def frame(self, index: int) -> None:
        return None


class StillBackground(Background):
    """A colour or an image: the same HxWx3 array (read-only) for every frame."""

    def __init__(self, image: np.ndarray) -> None:
        self.image = np.ascontiguousarray(image, dtype=np.uint8)
        self.image.flags.writeable = False

    def frame(self, index: int) -> np.ndarray:
        return self.image


class VideoBackground(Background):
    """A video resized to the output and looped; sequential access decodes each frame once."""

    def __init__(self, path: Path, width: int, height: int) -> None:
        from rvmkit.video.reader import open_source

        self._open = lambda: open_source(path, resize=(width, height))
        self._source = self._open()
        self.frame_count = self._source.info.frame_count or 1
        self._frames = iter(self._source)
        self._position = -1  # index of the last decoded frame within the loop
        self._current: np.ndarray | None = None

    def frame(self, index: int) -> np.ndarray:
        wanted = index % self.frame_count
        if wanted < self._position:
            self._restart()
        while self._position < wanted:  # the reader raises if the file has fewer frames than counted
            self._current, self._position = next(self._frames).rgb, self._position + 1
        assert self._current is not None
        return self._current

    def _restart(self) -> None:
        self._source.close()
        self._source = self._open()
        self._frames = iter(self._source)
        self._position, self._current = -1, None

    def close(self) -> None:
        self._source.close()


def is_transparent(spec: str | None) -> bool:
    """Whether `--background spec` asks for a transparent composition (checkable before any input)."""
    return spec is not None and spec.strip().lower() in ("transparent", "none", "alpha")


def parse_background(spec: str | None, width: int, height: int) -> Background:
    """None -> RVM's green; a colour name, #RRGGBB or R,G,B; "transparent"; an image or video path."""
    if spec is None:
        return StillBackground(np.broadcast_to(np.array(DEFAULT_GREEN, np.uint8), (height, width, 3)))
    if is_transparent(spec):
        return TransparentBackground()
    colour = parse_colour(spec)
    if colour is not None:
        return StillBackground(np.broadcast_to(np.array(colour, np.uint8), (height, width, 3)))
    path = Path(spec).expanduser()
    if not path.exists():
        names = ", ".join(name for name in COLOURS if name != "grey")
        raise RvmkitError(f"background {spec!r}: not a colour ({names}, #RRGGBB, R,G,B), 'transparent', "
                          "or an existing image/video file")
    from rvmkit.video.reader import IMAGE_SUFFIXES, open_source

    if path.is_dir():
        raise RvmkitError(f"{describe_path(path)}: background is a folder; give an image or a video file")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        with open_source(path, resize=(width, height)) as source:
            if source.info.is_image_sequence:  # not an animated PNG, which loops like any video
                return StillBackground(next(iter(source)).rgb)
    return VideoBackground(path, width, height)

