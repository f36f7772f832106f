"""Turn the network's fgr/pha into output frames (`rvmkit.runtime.pixels`), and parse `--background`."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from rvmkit.errors import RvmkitError, describe_path
from rvmkit.runtime.pixels import alpha_u8, composite, foreground_u8, rgba

__all__ = ["alpha_u8", "composite", "foreground_u8", "rgba", "parse_background", "parse_colour",
           "is_transparent", "Background", "DEFAULT_GREEN", "COLOURS"]

DEFAULT_GREEN = (120, 255, 155)  # RVM's default background
COLOURS: dict[str, tuple[int, int, int]] = {
    "green": DEFAULT_GREEN, "blue": (0, 0, 255), "white": (255, 255, 255), "black": (0, 0, 0),
    "red": (255, 0, 0), "gray": (128, 128, 128), "grey": (128, 128, 128), "yellow": (255, 255, 0),
    "cyan": (0, 255, 255), "magenta": (255, 0, 255),
    "chroma-green": (0, 177, 64), "chroma-blue": (0, 71, 187),
}
_HEX = re.compile(r"#?([0-9a-fA-F]{6})")


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

