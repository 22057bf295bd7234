"""One call at a time, first come first served: for model backends that are not thread-safe
(llama.cpp's context, a torch generation loop holding its own cache), shared by a server's requests."""

from __future__ import annotations

import threading
from collections import deque


class FairLock:
    """A lock granted in arrival order, so a burst of requests cannot starve an earlier one."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._waiting: deque[object] = deque()
        self._held = False

    def acquire(self) -> None:
        ticket = object()
        with self._changed:
            self._waiting.append(ticket)
            while self._held or self._waiting[0] is not ticket:
                self._changed.wait()
            self._waiting.popleft()
            self._held = True

    def release(self) -> None:
        with self._changed:
            self._held = False
            self._changed.notify_all()

    def __enter__(self) -> FairLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    @property
    def queued(self) -> int:
        """Callers waiting now (for /healthz and load tests)."""
        return len(self._waiting)
