"""The service's settings, checked once at start-up (one-line RvmkitError for anything wrong)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from rvmkit.contract import MB, check_limit
from rvmkit.errors import RvmkitError
from rvmkit.options import MatteOptions

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_TOKEN = 16  # characters a token needs when the server is reachable beyond loopback

#: each number's field, its range in `rvmkit.contract.LIMITS`, and the field's units per the option's
#: (the byte sizes are typed in MB)
_NUMBERS = (("port", "port", 1), ("workers", "workers", 1), ("max_queued", "max_queued", 1),
            ("max_upload_bytes", "max_upload_mb", MB), ("max_duration_s", "max_duration", 1),
            ("max_frames", "max_frames", 1), ("max_pixels", "max_pixels", 1),
            ("min_free_bytes", "min_free_mb", MB), ("retention_s", "retention", 1))


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
        """Every number within its range (`rvmkit.contract.LIMITS`, in the units the options take), a
        token where one is needed, an existing --live-dir; else a one-line RvmkitError naming the option."""
        self._check_numbers()
        self._check_token()
        if self.live_dir is not None and not Path(self.live_dir).is_dir():
            raise RvmkitError(f"'{self.live_dir}': --live-dir must be an existing folder")
        return self

    def _check_numbers(self) -> None:
        for field_name, limit, scale in _NUMBERS:
            value = getattr(self, field_name)
            if value is None and field_name == "retention_s":  # None: keep ended jobs forever
                continue
            if scale != 1 and isinstance(value, (int, float)):
                check_limit(limit, value / scale, shown=f"{value / scale:g}")
            else:
                check_limit(limit, value)

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
