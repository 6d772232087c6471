"""Signals that stop a command: Ctrl-C (SIGINT), SIGTERM (``kill``, a service manager, a CI timeout)
and SIGHUP (the terminal closed).

Python turns SIGINT into a :class:`KeyboardInterrupt`; :func:`stop_on_signals` (the CLI holds it while
a command runs) turns SIGTERM and SIGHUP into :class:`Stopped`, a KeyboardInterrupt too, so they unwind
the same way: ``finally`` blocks and context managers run (a notebook's kernel is shut down, a run's
manifest says it was interrupted and why, the run lock's session is closed), and the CLI prints one
line saying what was kept and exits with 128 + the signal's number (130, 143, 129), as a shell does. A
signal the caller ignores (``nohup`` ignores SIGHUP) stays ignored.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from ibcbench.errors import Interrupted

#: the signals :func:`stop_on_signals` turns into :class:`Stopped` (SIGINT is Python's own)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Stopped(Interrupted):
    """A signal other than Ctrl-C stopped a command; the message says what was kept."""

    def __init__(self, signum: int, detail: str = "") -> None:
        super().__init__(detail)
        self.signum = signum


def signal_number(exc: BaseException) -> int:
    """The signal behind an interrupt: a :class:`Stopped`'s own, else SIGINT (Ctrl-C)."""
    return exc.signum if isinstance(exc, Stopped) else int(signal.SIGINT)


def stop_reason(exc: BaseException) -> str:
    """``stopped by SIGTERM``, ``stopped by SIGHUP``, ``interrupted by SIGINT (Ctrl-C)``."""
    signum = signal_number(exc)
    if signum == signal.SIGINT:
        return "interrupted by SIGINT (Ctrl-C)"
    return f"stopped by {signal.Signals(signum).name}"


def exit_code(exc: BaseException) -> int:
    """128 + the signal's number, as a shell reports a command a signal ended."""
    return 128 + signal_number(exc)


def restopped(exc: BaseException, detail: str) -> Interrupted:
    """The same interrupt with ``detail`` (what was kept) as its message."""
    return Stopped(exc.signum, detail) if isinstance(exc, Stopped) else Interrupted(detail)


def default_sigint() -> None:
    """SIGINT back to its default in a child about to exec (a ``preexec_fn``): a shell without job
    control starts background commands with SIGINT ignored, and Python keeps an ignored SIGINT, so a
    child meant to answer Ctrl-C as at a terminal (the fault suite's, the tests') gets it back."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise Stopped(signum)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Stopped` in the main thread (a signal whose
    handler is not the default, an ignored SIGHUP under ``nohup`` say, is left alone); the previous
    handlers come back after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    replaced: list[signal.Signals] = []
    try:
        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) is signal.SIG_DFL:
                signal.signal(signum, _raise_stopped)
                replaced.append(signum)
        yield
    finally:
        for signum in replaced:
            signal.signal(signum, signal.SIG_DFL)
