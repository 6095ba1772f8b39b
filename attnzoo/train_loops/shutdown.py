"""Graceful stop on SIGINT / SIGTERM: the training loop finishes its step, saves a
checkpoint and raises `TrainingInterrupted` (the CLI prints one line and exits 128+signal).

A second signal of the same kind while stopping falls back to the default behaviour.
"""

import contextlib
import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(Exception):
    """Training stopped on a signal after saving; `signum` is the signal's number."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


class StopRequest:
    """`signum` of the first SIGINT/SIGTERM received inside `catch_signals()`, else None."""

    def __init__(self):
        self.signum: int | None = None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""


@contextlib.contextmanager
def catch_signals():
    """Yields a `StopRequest`; outside the main thread (no handlers allowed) it stays unset."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}

    def handle(signum, frame):
        request.signum = signum
        signal.signal(signum, previous[signum])  # a second one stops at once

    for s in SIGNALS:
        signal.signal(s, handle)
    try:
        yield request
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
