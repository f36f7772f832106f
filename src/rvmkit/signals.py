"""The one way rvmkit handles signals: `handling(signals, action)` for a block, `handle` for good.

Every front-end stops through it: `rvmkit` commands turn SIGTERM/SIGHUP into `Terminated` (a
KeyboardInterrupt, so Ctrl-C's cleanup runs: temporary outputs removed, nothing published), `rvmkit live`
turns SIGINT/SIGTERM into a stop event (the recordings are finalized), a serve job process into
`Terminated`, Ray's start-up into an exit status; `alarm` bounds a wait that only Python code can
interrupt (Ray's start-up). Handlers only exist on the main thread (Python's
rule); elsewhere these do nothing.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence

#: the signals that ask a process to end (Ctrl-C aside)
TERMINATING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
Action = Callable[[int], None]


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread like Ctrl-C's KeyboardInterrupt, so the same
    cleanup runs (temporary outputs removed, nothing published)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def interrupt(signum: int) -> None:
    """An action: raise `Terminated` where the main thread is."""
    raise Terminated(signum)


def exit_with_status(signum: int) -> None:
    """An action: exit with 128 + the signal's number (the shell's convention), running `finally` blocks."""
    sys.exit(128 + signum)


def handle(signals: Sequence[int], action: Action, *, replace: bool = False,
           once: bool = False) -> Callable[[], None]:
    """Make `action(signum)` handle `signals`; return what puts the previous handlers back.

    A signal someone else handles, or the process was told to ignore (nohup), keeps its handler unless
    `replace`. With `once`, the first signal makes every one of them ignored, so a second cannot cut the
    cleanup short."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in signals}
    installed = [sig for sig, old in previous.items() if replace or old == signal.SIG_DFL]

    def handler(signum: int, frame: object) -> None:
        if once:
            for sig in installed:
                signal.signal(sig, signal.SIG_IGN)
        action(signum)

    for sig in installed:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig in installed:
            signal.signal(sig, previous[sig])

    return restore


@contextlib.contextmanager
def handling(signals: Sequence[int], action: Action, *, replace: bool = False,
             once: bool = False) -> Iterator[None]:
    """`handle` while the block runs; the previous handlers come back however it ends."""
    restore = handle(signals, action, replace=replace, once=once)
    try:
        yield
    finally:
        restore()


class Expired(Exception):
    """Raised by `alarm` in the main thread when its time is up."""


@contextlib.contextmanager
def alarm(seconds: float) -> Iterator[bool]:
    """Raise `Expired` in the main thread after `seconds` (SIGALRM), then put the alarm back. It is
    armed only where it is free: on the main thread, when the program uses no alarm of its own. Yields
    whether it is armed."""
    armed = (threading.current_thread() is threading.main_thread()
             and not signal.getitimer(signal.ITIMER_REAL)[0]
             and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN))

    def expire(signum: int) -> None:
        raise Expired

    restore = handle((signal.SIGALRM,), expire, replace=True) if armed else (lambda: None)
    if armed:
        signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield armed
    finally:
        if armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
        restore()
