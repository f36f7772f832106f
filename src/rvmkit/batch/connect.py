"""Start or join Ray without ever hanging: a short TCP check of a cluster's address, then ray.init
with a time limit (a watchdog thread to join, an alarm to start one), each failing in one line.

Why: ray.init retries a cluster that is gone for many minutes (printing GCS warnings straight to the
terminal every 30 s), and a plain ray.init() joins whatever /tmp/ray/ray_current_cluster names, even a
cluster that died long ago. rvmkit therefore starts a new local cluster (address "local") unless an
address is given (argument or RAY_ADDRESS), and refuses an address nothing answers at.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any

from rvmkit.errors import RvmkitError, first_line
from rvmkit.signals import Expired, alarm, exit_with_status, handle

PROBE_TIMEOUT_S = 5.0  # the TCP check of a cluster's address
JOIN_TIMEOUT_S = 60.0  # ray.init joining an existing cluster
START_TIMEOUT_S = 180.0  # ray.init starting a local cluster (seconds on an idle machine; slow when loaded)
RAY_CLIENT_PORT = 10001

_state: dict[str, Any] = {}


def resolve_address(address: str | None) -> str:
    """The address ray.init gets: the one given, else RAY_ADDRESS, else "local" (a new local cluster,
    never the one /tmp/ray/ray_current_cluster names)."""
    return address or os.environ.get("RAY_ADDRESS") or "local"


def start_or_join(ray: Any, address: str | None, quiet: bool, num_cpus: int | None = None,
                  **init_kwargs: Any) -> str:
    """ray.init a new local cluster (no address given) or the cluster at `address`, bounded in time;
    return the address used ("local" for a new cluster). `quiet` silences Ray's C++ warnings meanwhile."""
    target = resolve_address(address)
    where = "a local Ray cluster" if target == "local" else f"the Ray cluster at {target}"
    kwargs = {**init_kwargs, "address": target}
    if target == "local" and num_cpus:
        kwargs["num_cpus"] = num_cpus
    with native_stderr_silenced(quiet):
        if target != "local":
            probe(target, _origin(address, target))
        if target == "local":
            start_within(ray, kwargs, START_TIMEOUT_S)
        else:
            join_within(ray, kwargs, JOIN_TIMEOUT_S, where)
    return target


def _origin(address: str | None, target: str) -> str:
    if not address and target != "local":
        return " (from RAY_ADDRESS)"
    if target == "auto":
        return " (the last cluster `ray start` recorded; `ray stop` forgets a stale one)"
    return ""


def _split_host_port(text: str, default_port: int | None, target: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or "]" in port:  # no port given (an IPv6 literal keeps its colons inside brackets)
        host, port = text, str(default_port) if default_port else ""
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RvmkitError(f"Ray address {target!r}: expected host:port (e.g. 10.0.0.5:6379), "
                          "ray://host:10001 or auto")
    return host, int(port)


def endpoint(target: str) -> tuple[str, int]:
    """(host, port) that ray.init(address=target) dials first: the Ray Client server for ray://...,
    else the cluster's GCS as Ray itself resolves it (localhost becomes this node's IP; "auto" reads
    the address `ray start` recorded)."""
    if "://" in target:
        return _split_host_port(target.split("://", 1)[1].split("/", 1)[0], RAY_CLIENT_PORT, target)
    from ray._private import services

    try:
        canonical = services.canonicalize_bootstrap_address(target)
    except ConnectionError:  # "auto" and no cluster recorded or running here
        raise RvmkitError(f"Ray address {target!r}: no Ray cluster is running on this machine; start one "
                          "(ray start --head) or leave --address out to start a local one") from None
    except ValueError:
        canonical = None
    return _split_host_port(canonical or target, None, target)


def probe(target: str, origin: str = "") -> None:
    """One-line error, within PROBE_TIMEOUT_S, when nothing accepts connections at the cluster's address."""
    host, port = endpoint(target)
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            pass
    except TimeoutError:
        reason = f"no answer within {PROBE_TIMEOUT_S:.0f} s"
    except socket.gaierror:
        reason = "unknown host"
    except OSError as exc:
        reason = (exc.strerror or first_line(exc)).lower()
    else:
        return
    raise RvmkitError(f"cannot join the Ray cluster at {target}{origin}: nothing answers at {host}:{port} "
                      f"({reason}); check the "
                      "address, or leave --address out to start a local cluster")


@contextlib.contextmanager
def native_stderr_silenced(enabled: bool) -> Iterator[None]:
    """Point file descriptor 2 at /dev/null: Ray's C++ core writes its connection warnings there
    directly, past Python's logging (so ray.init's logging_level cannot quiet them)."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


class _DropThreadNotice(logging.Filter):
    """ray.init off the main thread logs that it set no SIGTERM handler; rvmkit sets its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("SIGTERM handler is not set")


def join_within(ray: Any, kwargs: dict[str, Any], timeout: float, where: str) -> None:
    """ray.init(**kwargs) joining a cluster, on a daemon thread: a one-line RvmkitError when it fails or
    outlasts `timeout` (the thread is left behind: Ray cannot cancel a connection attempt). Joining
    starts no processes, so the thread may end (a local start may not: Ray's processes are killed when
    the thread that started them ends, PR_SET_PDEATHSIG)."""
    stuck = _state.get("thread")
    if stuck is not None and stuck.is_alive():
        raise RvmkitError(f"an earlier attempt to reach {where} is still hanging in this process; "
                          "restart Python to try again")
    errors: list[BaseException] = []

    def connect() -> None:
        try:
            ray.init(**kwargs)
        except BaseException as exc:  # noqa: BLE001 - reported by the waiting thread
            errors.append(exc)

    notice = _DropThreadNotice()
    logging.getLogger("ray._private.worker").addFilter(notice)
    thread = _state["thread"] = threading.Thread(target=connect, name="rvmkit-ray-init", daemon=True)
    try:
        thread.start()
        thread.join(timeout)
    finally:
        logging.getLogger("ray._private.worker").removeFilter(notice)
    if thread.is_alive():
        raise RvmkitError(f"cannot join {where}: Ray did not connect within {timeout:.0f} s")
    if errors:
        raise RvmkitError(f"cannot join {where}: {first_line(errors[0])}{_auth_hint(errors[0])}") from None
    _exit_on_sigterm()


def _auth_hint(error: BaseException) -> str:
    """Ray >= 2.59 clusters want a token that an explicit address does not send unless asked to."""
    chain = []
    while error is not None and len(chain) < 5:
        chain.append(str(error))
        error = error.__cause__ or error.__context__
    if any("InvalidAuthToken" in text or "Unauthenticated" in text for text in chain):
        return (" (the cluster wants its authentication token: set RAY_AUTH_MODE=token, and RAY_AUTH_TOKEN "
                "if this machine has no ~/.ray/auth_token)")
    return ""


def start_within(ray: Any, kwargs: dict[str, Any], timeout: float) -> None:
    """ray.init(**kwargs) starting a local cluster on this thread (see join_within), bounded by SIGALRM
    on the main thread: Ray's start-up waits in Python, where the alarm's exception lands."""
    try:
        with alarm(timeout):
            ray.init(**kwargs)
    except Expired:
        raise RvmkitError(f"cannot start a local Ray cluster: not up within {timeout:.0f} s") from None
    except Exception as exc:  # noqa: BLE001 - Ray raises many types; the user gets one line
        raise RvmkitError(f"cannot start a local Ray cluster: {first_line(exc)}") from None


def _exit_on_sigterm() -> None:
    """What ray.init does on the main thread (SIGTERM -> SystemExit, so `finally` blocks clean up),
    unless someone already handles SIGTERM."""
    handle((signal.SIGTERM,), exit_with_status)
