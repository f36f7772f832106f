"""The one signal helper (`rvmkit.signals`): a real signal runs the action, handlers come back, an
ignored signal stays ignored."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from rvmkit.signals import Expired, Terminated, alarm, exit_with_status, handling, interrupt


def test_a_real_signal_raises_terminated_once_and_the_old_handler_comes_back():
    before = signal.getsignal(signal.SIGHUP)
    with pytest.raises(Terminated) as raised, handling((signal.SIGHUP,), interrupt, once=True):
        os.kill(os.getpid(), signal.SIGHUP)
    assert raised.value.signum == signal.SIGHUP and isinstance(raised.value, KeyboardInterrupt)
    assert signal.getsignal(signal.SIGHUP) == before


def test_once_ignores_a_second_signal_during_cleanup():
    seen: list[int] = []
    with handling((signal.SIGHUP,), seen.append, once=True):
        os.kill(os.getpid(), signal.SIGHUP)
        os.kill(os.getpid(), signal.SIGHUP)  # ignored: would have been counted again
    assert seen == [signal.SIGHUP]


def test_an_ignored_signal_stays_ignored_unless_replaced():
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


def test_exit_with_status_follows_the_shell_convention():
    with pytest.raises(SystemExit) as raised:
        exit_with_status(signal.SIGTERM)
    assert raised.value.code == 128 + signal.SIGTERM


def test_alarm_interrupts_a_python_wait_and_is_put_back():
    before = signal.getsignal(signal.SIGALRM)
    with pytest.raises(Expired), alarm(0.05) as armed:
        assert armed
        threading.Event().wait(5)  # a wait in Python, as Ray's start-up is
    assert signal.getsignal(signal.SIGALRM) == before and signal.getitimer(signal.ITIMER_REAL)[0] == 0


def test_alarm_is_not_armed_off_the_main_thread():
    seen: list[bool] = []

    def other() -> None:
        with alarm(0.01) as armed:
            seen.append(armed)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert seen == [False]
