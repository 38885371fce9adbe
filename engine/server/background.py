"""Work the server does beside answering: eval runs, each on its own thread, and
periodic chores (:class:`Every`: the orphan sweep).

A task runs an async function on a fresh event loop in a daemon thread (as runs do, see
:class:`engine.server.state.RunSupervisor`), so a slow block never stalls request
handling. A task's failure is logged, never raised into a request. :meth:`Background.join`
lets the server wait for them at shutdown.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

log = logging.getLogger("stepwell.server")


class Background:
    """Threads running async tasks to completion."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self, name: str, task: Callable[[], Awaitable[Any]]) -> None:
        """Run ``task()`` in a new thread named ``name``."""
        def body() -> None:
            try:
                anyio.run(task)
            except Exception:  # a thread must never die silently
                log.exception("background task %s failed", name)

        thread = threading.Thread(target=body, daemon=True, name=name)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every task; True when none is left."""
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in threads)


class Every:
    """Calls ``chore()`` every ``every_s`` seconds on a daemon thread until :meth:`stop`.

    A chore that raises is logged and called again at its next turn.

    Args:
        name: the thread's name.
        every_s: seconds between the end of one call and the start of the next.
        chore: what to call.
    """

    def __init__(self, name: str, every_s: float, chore: Callable[[], Any]) -> None:
        self._chore = chore
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=name)

    def start(self) -> None:
        """Start calling (the first call comes after ``every_s``)."""
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop calling; waits up to ``timeout`` seconds for a call in progress."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self._every_s):
            try:
                self._chore()
            except Exception:  # a chore that failed once is tried again at its next turn
                log.exception("%s failed", self._thread.name)
