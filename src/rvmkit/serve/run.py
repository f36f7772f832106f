"""`rvmkit serve`'s work, from a checked `ServeConfig` to a running server: the server-wide model checked
once, its default weights fetched once (not by the first jobs at the same time), then uvicorn until
stopped. The CLI only parses the options into the config and prints what this announces."""

from __future__ import annotations

from collections.abc import Callable

from rvmkit.errors import RvmkitError
from rvmkit.serve.config import ServeConfig


def check_server_model(config: ServeConfig, model: str | None) -> None:
    """The model options every job shares, refused in one line before the server starts; the default
    weights fetched. `model`: the --model as given (errors name it so)."""
    from dataclasses import replace

    from rvmkit.runtime import resolve_model

    checked = replace(config.matte, model=model).checked()
    if model is None:
        from rvmkit.weights import fetch_pretrained

        fetch_pretrained(resolve_model(None, checked.backend).kind)


def serve(config: ServeConfig, model: str | None, announce: Callable[[str], None]) -> None:
    """Serve until stopped (Ctrl+C, SIGTERM); `announce` gets the address once it is about to listen."""
    try:
        import uvicorn

        from rvmkit.serve.app import create_app
    except ImportError as exc:
        raise RvmkitError(f"rvmkit serve needs the 'serve' extra ({exc.name} is missing): "
                          "pip install 'rvmkit[serve]'") from None
    check_server_model(config, model)
    app = create_app(config)
    announce(f"rvmkit serve: http://{_shown(config.host)}:{config.port}/ (data in {config.data_dir})")
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning", timeout_graceful_shutdown=10)


def _shown(host: str) -> str:
    return f"[{host}]" if ":" in host else host
