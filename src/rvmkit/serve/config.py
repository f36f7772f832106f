"""The service's settings, checked once at start-up (one-line RvmkitError for anything wrong)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rvmkit.errors import RvmkitError

MB = 1024 * 1024
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class ServeConfig:
    """Everything `rvmkit serve` takes. `matte` holds the server-wide model options of `rvmkit matte`
    (model, variant, backend, device, fp16, seq_chunk) and the default downsample ratio; jobs choose
    outputs, background, ratio and format."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    token: str | None = None
    address: str | None = None
    max_upload_bytes: int = 2048 * MB
    max_duration_s: float = 600.0
    max_frames: int = 36_000
    max_pixels: int = 3840 * 2160
    max_queued: int = 32
    retention_s: float | None = 7 * 86400.0
    min_free_bytes: int = 256 * MB
    cors_origins: tuple[str, ...] = ()
    live_dir: Path | None = None  # serve this folder at /live; None: build <data-dir>/live with rvmkit.web
    matte: dict[str, Any] = field(default_factory=dict)

    def checked(self) -> ServeConfig:
        if self.workers < 1:
            raise RvmkitError(f"workers {self.workers}: must be at least 1")
        if self.max_queued < 1:
            raise RvmkitError(f"max queued {self.max_queued}: must be at least 1")
        for name in ("max_upload_bytes", "max_duration_s", "max_frames", "max_pixels"):
            if getattr(self, name) <= 0:
                raise RvmkitError(f"{name.replace('_', ' ')} {getattr(self, name)}: must be more than 0")
        if not is_loopback(self.host) and not self.token:
            raise RvmkitError(f"--host {self.host}: binding an address other than loopback needs --token "
                              "(every API call must then present it as a bearer token)")
        if self.live_dir is not None and not Path(self.live_dir).is_dir():
            raise RvmkitError(f"'{self.live_dir}': --live-dir must be an existing folder")
        return self


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_duration(text: str) -> float | None:
    """'30m', '12h', '7d', '90' (seconds) -> seconds; '0' or 'never' -> None (keep forever)."""
    text = text.strip().lower()
    if text in ("0", "never", "forever", "none"):
        return None
    match = _DURATION.fullmatch(text)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"{text!r}: expected a duration such as 90s, 30m, 12h or 7d (0 keeps jobs forever)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_pixels(text: str) -> int:
    """'3840x2160' or a pixel count -> pixels per frame."""
    text = text.strip().lower()
    try:
        if "x" in text:
            width, height = text.split("x")
            value = int(width) * int(height)
        else:
            value = int(text)
    except ValueError:
        raise ValueError(f"{text!r}: expected WxH (3840x2160) or a pixel count") from None
    if value <= 0:
        raise ValueError(f"{text!r}: must be more than 0 pixels")
    return value
