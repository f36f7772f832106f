"""Pure-PyTorch RobustVideoMatting model (no CLI, no I/O).

The constants import without torch (the CLI lists them in --help); `MattingNetwork` loads torch on
first use.
"""

from __future__ import annotations

from typing import Any

from rvmkit.contract import VARIANTS

REFINERS = ("deep_guided_filter", "fast_guided_filter")

__all__ = ["MattingNetwork", "VARIANTS", "REFINERS"]


def __getattr__(name: str) -> Any:
    if name == "MattingNetwork":
        from rvmkit.model.network import MattingNetwork

        return MattingNetwork
    raise AttributeError(f"module 'rvmkit.model' has no attribute {name!r}")
