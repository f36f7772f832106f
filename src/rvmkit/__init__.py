"""rvmkit: RobustVideoMatting from checkpoint to production.

`convert_video` and `MatteResult` are imported on first use, so `import rvmkit` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["convert_video", "MatteResult", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("rvmkit")
        except PackageNotFoundError:  # a source tree that was not installed
            return "0+unknown"
    if name in __all__:
        from rvmkit import api

        return getattr(api, name)
    raise AttributeError(f"module 'rvmkit' has no attribute {name!r}")
