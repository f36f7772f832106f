"""The one signal helper (`rvmkit.signals`): a real signal runs the action, handlers come back, an
ignored signal stays ignored.

Each check sends real signals in a fresh interpreter: the test process holds what earlier tests left
(native thread pools, event loops' wakeup fds), and a signal sent to it there crashed the whole run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable

import pytest

from rvmkit.signals import Expired, Terminated, alarm, exit_with_status, handling, interrupt


def _a_real_signal_raises_terminated_once_and_the_old_handler_comes_back() -> None:
    before = signal.getsignal(signal.SIGHUP)
    with pytest.raises(Terminated) as raised, handling((signal.SIGHUP,), interrupt, once=True):
        os.kill(os.getpid(), signal.SIGHUP)
    assert raised.value.signum == signal.SIGHUP and isinstance(raised.value, KeyboardInterrupt)
    assert signal.getsignal(signal.SIGHUP) == before


def _once_ignores_a_second_signal_during_cleanup() -> None:
    seen: list[int] = []
    with handling((signal.SIGHUP,), seen.append, once=True):
        os.kill(os.getpid(), signal.SIGHUP)
        os.kill(os.getpid(), signal.SIGHUP)  # ignored: would have been counted again
    assert seen == [signal.SIGHUP]


def _an_ignored_signal_stays_ignored_unless_replaced() -> None:
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        seen: list[int] = []
        with handling((signal.SIGHUP,), seen.append):
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)
        with handling((signal.SIGHUP,), seen.append, replace=True):
            os.kill(os.getpid(), signal.SIGHUP)
        assert seen == [signal.SIGHUP] and signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


def _exit_with_status_follows_the_shell_convention() -> None:
    with pytest.raises(SystemExit) as raised:
        exit_with_status(signal.SIGTERM)
    assert raised.value.code == 128 + signal.SIGTERM


def _alarm_interrupts_a_python_wait_and_is_put_back() -> None:
    before = signal.getsignal(signal.SIGALRM)
    with pytest.raises(Expired), alarm(0.05) as armed:
        assert armed
        threading.Event().wait(5)  # a wait in Python, as Ray's start-up is
    assert signal.getsignal(signal.SIGALRM) == before and signal.getitimer(signal.ITIMER_REAL)[0] == 0


def _alarm_is_not_armed_off_the_main_thread() -> None:
    seen: list[bool] = []

    def other() -> None:
        with alarm(0.01) as armed:
            seen.append(armed)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert seen == [False]


def _in_fresh_process(check: Callable[[], None]) -> None:
    code = f"import runpy; runpy.run_path({__file__!r})[{check.__name__!r}]()"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]


def test_a_real_signal_raises_terminated_once_and_the_old_handler_comes_back() -> None:
    _in_fresh_process(_a_real_signal_raises_terminated_once_and_the_old_handler_comes_back)

def test_once_ignores_a_second_signal_during_cleanup() -> None:
    _in_fresh_process(_once_ignores_a_second_signal_during_cleanup)

def test_an_ignored_signal_stays_ignored_unless_replaced() -> None:
    _in_fresh_process(_an_ignored_signal_stays_ignored_unless_replaced)

def test_exit_with_status_follows_the_shell_convention() -> None:
    _in_fresh_process(_exit_with_status_follows_the_shell_convention)

def test_alarm_interrupts_a_python_wait_and_is_put_back() -> None:
    _in_fresh_process(_alarm_interrupts_a_python_wait_and_is_put_back)

def test_alarm_is_not_armed_off_the_main_thread() -> None:
    _in_fresh_process(_alarm_is_not_armed_off_the_main_thread)
