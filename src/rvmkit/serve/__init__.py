"""`rvmkit serve`: matting as a web service (the `serve` extra: pip install 'rvmkit[serve]').

`create_app(ServeConfig(data_dir=...))` is the FastAPI application; `rvmkit serve` runs it with uvicorn.
Jobs run in worker processes through `rvmkit.api.convert_video` (or `rvmkit batch`'s code on Ray).
FastAPI is imported only by `rvmkit.serve.app`, so the worker and the store work without it.
"""

from __future__ import annotations

from rvmkit.serve.config import ServeConfig

__all__ = ["ServeConfig", "create_app"]


def __getattr__(name: str) -> object:
    if name == "create_app":
        from rvmkit.serve.app import create_app

        return create_app
    raise AttributeError(f"module 'rvmkit.serve' has no attribute {name!r}")
