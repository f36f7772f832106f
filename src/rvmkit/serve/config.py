"""The service's settings, checked once at start-up (one-line RvmkitError for anything wrong)."""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from rvmkit.errors import RvmkitError
from rvmkit.options import MatteOptions

MB = 1024 * 1024
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_TOKEN = 16  # characters a token needs when the server is reachable beyond loopback

# The range of every number the service takes, in its own units, with the option that sets it: far
# beyond any real use, but bounded (each worker is a process, each queued job a folder).
RANGES: dict[str, tuple[float, float, str]] = {
    "port": (1, 65535, "--port"),
    "workers": (1, 64, "--workers"),
    "max_queued": (1, 10_000, "--max-queued"),
    "max_upload_bytes": (1, 1024 * 1024 * MB, "--max-upload-mb"),
    "max_duration_s": (0.001, 7 * 86400.0, "--max-duration"),
    "max_frames": (1, 10_000_000, "--max-frames"),
    "max_pixels": (1, 16384 * 16384, "--max-pixels"),
    "min_free_bytes": (0, 1024 * 1024 * MB, "--min-free-mb"),
    "retention_s": (1.0, 100 * 365 * 86400.0, "--retention"),
}


@dataclass(frozen=True)
class ServeConfig:
    """Everything `rvmkit serve` takes. `matte` holds the server-wide options of `rvmkit matte` (model,
    variant, backend, device, fp16, precision, seq_chunk) and the default downsample ratio; each job
    overrides the ratio, background and output type, and chooses the outputs and format."""

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
    allowed_hosts: tuple[str, ...] = ()  # Host names served besides the bound address and localhost
    live_dir: Path | None = None  # serve this folder at /live; None: build <data-dir>/live with rvmkit.web
    matte: MatteOptions = field(default_factory=MatteOptions)

    def checked(self) -> ServeConfig:
        for name, (low, high, option) in RANGES.items():
            value = getattr(self, name)
            if value is None and name == "retention_s":
                continue
            if not isinstance(value, (int, float)) or not math.isfinite(value) or not low <= value <= high:
                raise RvmkitError(f"{option} {_shown_value(name, value)}: must be between "
                                  f"{_shown_value(name, low)} and {_shown_value(name, high)}")
        self._check_token()
        if self.live_dir is not None and not Path(self.live_dir).is_dir():
            raise RvmkitError(f"'{self.live_dir}': --live-dir must be an existing folder")
        return self

    def _check_token(self) -> None:
        if self.token is not None and not self.token.strip():
            raise RvmkitError("--token: is only whitespace; give a random one, e.g. $(openssl rand -hex 16)")
        if is_loopback(self.host):
            return
        if not self.token:
            raise RvmkitError(f"--host {self.host}: binding an address other than loopback needs --token "
                              "(every API call must then present it as a bearer token)")
        if len(self.token.strip()) < MIN_TOKEN:
            raise RvmkitError(f"--token: {len(self.token.strip())} characters is too short to guard "
                              f"--host {self.host}; use at least {MIN_TOKEN}, e.g. $(openssl rand -hex 16)")


def _shown_value(name: str, value: object) -> str:
    """A number as its option takes it (megabytes for the byte sizes)."""
    if name.endswith("_bytes") and isinstance(value, (int, float)) and math.isfinite(value):
        return f"{value / MB:g}"
    return f"{value:g}" if isinstance(value, float) else str(value)


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
