"""Draining on SIGTERM, so a replica behind a proxy goes away without failing a request.

Without it, uvicorn stops accepting connections the moment SIGTERM arrives, while the proxy still believes
the replica is up: a request already on its way is refused or reset. With `drain_seconds` > 0 the first
SIGTERM only starts a drain: `/health/ready` answers 503 at once (the proxy's health check takes the replica
out of rotation) while every route keeps serving; when the drain ends the signal goes on to uvicorn, which
stops accepting and lets the requests in flight finish (`shutdown_grace_seconds`). A second SIGTERM ends
the drain early; SIGINT (Ctrl-C) never waits.

The handler is installed from the app's lifespan, after uvicorn has installed its own, which it keeps and
calls when the drain ends (uvicorn installs its handlers with `signal.signal` precisely so that they can be
chained and restored).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)


class Drain:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.since: float | None = None  # monotonic time of the SIGTERM that started the drain
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: Any = None
        self._forwarded = False

    @property
    def draining(self) -> bool:
        return self.since is not None

    def install(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Take over SIGTERM (only with a drain configured, and only from the main thread, where signal
        handlers live); whether it did."""
        if self.seconds <= 0 or threading.current_thread() is not threading.main_thread():
            return False
        self._loop = loop
        self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        return True

    def uninstall(self) -> None:
        """Give SIGTERM back to the handler it had before `install`."""
        if self._loop is not None and signal.getsignal(signal.SIGTERM) == self._on_sigterm:
            signal.signal(signal.SIGTERM, self._previous)

    def status(self) -> tuple[bool, str]:
        """Readiness: not ready once draining."""
        if self.since is None:
            return True, ""
        left = max(0.0, self.seconds - (time.monotonic() - self.since))
        return False, f"shutting down: draining, stops accepting requests in {left:.1f} s"

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        # runs in the main thread between two bytecodes of whatever the event loop was doing: only
        # call_soon_threadsafe is safe to use on the loop from here
        if self.since is not None:
            self._forward(signum, frame)  # a second SIGTERM: stop now
            return
        self.since = time.monotonic()
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._start, signum, frame)

    def _start(self, signum: int, frame: FrameType | None) -> None:
        log.warning("SIGTERM: draining for %.1f s (readiness answers 503, requests are still served), then "
                    "shutting down", self.seconds)
        assert self._loop is not None
        self._loop.call_later(self.seconds, self._forward, signum, frame)

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        if self._forwarded:
            return
        self._forwarded = True
        previous = self._previous
        if callable(previous):
            previous(signum, frame)  # uvicorn's handle_exit: stop accepting, finish what is in flight
        else:  # SIG_DFL (no server installed one): terminate as SIGTERM would have
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.raise_signal(signal.SIGTERM)
