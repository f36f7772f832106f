"""rvmkit: RobustVideoMatting from checkpoint to production.

`convert_video` and `MatteResult` are imported on first use, so `import rvmkit` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["convert_video", "MatteResult"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from rvmkit import api

        return getattr(api, name)
    raise AttributeError(f"module 'rvmkit' has no attribute {name!r}")
