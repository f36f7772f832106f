"""Pure-PyTorch RobustVideoMatting model (no CLI, no I/O)."""

from rvmkit.model.network import REFINERS, VARIANTS, MattingNetwork

__all__ = ["MattingNetwork", "VARIANTS", "REFINERS"]
