"""Batch matting and long-video segmentation on Ray (the `batch` extra: pip install 'rvmkit[batch]').

Ray is imported only when a run starts, so `import rvmkit.batch` works without it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rvmkit.options import FORMATS as FORMATS  # `rvmkit batch --format` choices

__all__ = ["run_batch", "convert_segmented", "plan_segments", "DEFAULT_WARMUP", "Manifest", "Item"]


def converter(segments: int = 1, warmup: int | None = None) -> Callable[..., Any]:
    """`rvmkit matte`'s engine: `convert_video` for one segment, else the segmented Ray run taking the
    same arguments (`ray_runner.segmented_converter`). Ray and the batch code load only for segments."""
    if segments <= 1:
        from rvmkit.api import convert_video

        return convert_video
    from rvmkit.batch.ray_runner import segmented_converter

    return segmented_converter(segments, *(() if warmup is None else (warmup,)))


def __getattr__(name: str) -> Any:
    if name in ("run_batch", "convert_segmented"):
        from rvmkit.batch import ray_runner

        return getattr(ray_runner, name)
    if name in ("plan_segments", "DEFAULT_WARMUP"):
        from rvmkit.batch import segments

        return getattr(segments, name)
    if name in ("Manifest", "Item"):
        from rvmkit.batch import manifest

        return getattr(manifest, name)
    raise AttributeError(f"module 'rvmkit.batch' has no attribute {name!r}")
