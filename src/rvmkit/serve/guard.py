"""Who may talk to the server. A server on loopback is reachable by every web page the user opens, so:

- a request whose `Host` is not an address the server answers to is refused (403): that is what a page
  does after pointing its own name at 127.0.0.1 (DNS rebinding) to read the API as same-origin;
- a state-changing request (POST, DELETE, ...) from another origin is refused (403), as told by its
  `Origin` or, without one, `Sec-Fetch-Site`, unless `--cors-origin` allows that origin: a page can send
  a form or a `no-cors` fetch anywhere without reading the answer, and a job would still run.

Served names: the bound address; on loopback also localhost, 127.0.0.1 and ::1; and every `--allow-host`.
Bound to every address (0.0.0.0, ::), any Host is served: the token (required there) guards the API.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from rvmkit.serve.config import ServeConfig, is_loopback

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
WILDCARDS = ("0.0.0.0", "::", "[::]", "")
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def host_name(host: str) -> str:
    """'Example.test:8000' -> 'example.test', '[::1]:8000' -> '::1' (no port, brackets or final dot)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        host = host.split(":")[0]
    return host.rstrip(".")


def served_hosts(config: ServeConfig) -> frozenset[str] | None:
    """The host names the server answers to; None: any (bound to every address)."""
    if config.host in WILDCARDS:
        return None
    names = {host_name(config.host), *(host_name(name) for name in config.allowed_hosts)}
    if is_loopback(config.host):
        names.update(LOOPBACK_NAMES)
    return frozenset(names)


class Guard:
    """ASGI middleware: the Host and Origin rules above, before anything else sees the request."""

    def __init__(self, app: Any, config: ServeConfig) -> None:
        self.app = app
        self.hosts = served_hosts(config)
        self.origins = frozenset(origin.rstrip("/").lower() for origin in config.cors_origins)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            reason = self.refusal(scope["method"], Headers(scope=scope))
            if reason:
                await JSONResponse({"detail": reason}, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, method: str, headers: Headers) -> str | None:
        """Why the request is refused, or None."""
        host = headers.get("host", "")
        if self.hosts is not None and host_name(host) not in self.hosts:
            return (f"Host {host!r} is not an address this server answers to; start it with "
                    "--allow-host NAME to serve it under that name")
        if method.upper() in SAFE_METHODS:
            return None
        origin = headers.get("origin")
        if origin is not None:
            origin = origin.rstrip("/").lower()
            same = origin.split("://", 1)[-1] == host.strip().lower()
            if same or origin in self.origins or "*" in self.origins:
                return None
            return (f"a {method} from the web page at {origin!r} (another origin) is refused; "
                    "allow that origin with --cors-origin")
        if headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none"):
            return None
        return f"a {method} from another site's web page is refused; allow its origin with --cors-origin"
