"""Graceful stop on SIGINT / SIGTERM: the training loop finishes its step, saves a
checkpoint and raises `TrainingInterrupted` (the CLI prints one line and exits 128+signal).

A second signal of the same kind while stopping falls back to the default behaviour.
"""

import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(Exception):
    """Training stopped on a signal after saving; `signum` is the signal's number."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


class StopRequest:
    """From creation until `close()`, records the first SIGINT/SIGTERM in `signum` instead of
    dying. Outside the main thread (where handlers cannot be set) it stays unset."""

    def __init__(self):
        self.signum: int | None = None
        self._previous = {}
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.getsignal(s) for s in SIGNALS}
            for s in SIGNALS:
                signal.signal(s, self._handle)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def _handle(self, signum, frame) -> None:
        self.signum = signum
        signal.signal(signum, self._previous[signum])  # a second one acts at once

    def close(self) -> None:
        """Restores the handlers that were in place before."""
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}
