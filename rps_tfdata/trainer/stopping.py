"""Stopping a run cleanly on SIGTERM or Ctrl-C: at the next step, with the state of the
last finished epoch already on disk, instead of dying in the middle of a write."""

import contextlib
import signal
import threading
from typing import Callable, Iterator

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def stop_requests() -> Iterator[Callable[[], str]]:
    """Yields a function that returns the name of a signal received so far, or "".

    Outside the main thread (where handlers cannot be set) it never reports one.
    """
    received: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: ""
        return
    previous = {s: signal.getsignal(s) for s in _SIGNALS}

    def handler(signum, frame):
        received.append(signal.Signals(signum).name)

    for s in _SIGNALS:
        signal.signal(s, handler)
    try:
        yield lambda: received[0] if received else ""
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
