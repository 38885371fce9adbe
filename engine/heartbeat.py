"""The heartbeat of a running run, kept from a thread of its own.

A running run's owner writes ``runs.heartbeat_at`` every ``heartbeat_s`` seconds, so
other processes can tell a live owner from a dead one (``stepwell runs list``, resume,
orphan recovery). The same thread is the last resort of cancellation: a synchronous
step can hold the runner's event loop for as long as it likes, so when a cancel request
waits more than :data:`ABANDON_AFTER_S` for the driver, the thread cancels the run in
the store itself and the driver drops whatever it does once the step returns.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.runner import Runner

#: How long a cancel request may wait for the driver before the run is cancelled under
#: the step that holds it (the cancel watcher polls every ``cancel_poll_s``).
ABANDON_AFTER_S = 1.0
CANCELLED_BY_REQUEST = "cancelled by request"
log = logging.getLogger("engine.runner")


class Heartbeat:
    """Keeps ``runs.heartbeat_at`` fresh, and cancels a held run, from a thread of its own.

    A thread, not a task: a synchronous step that holds the event loop for a minute must
    not make its run look ownerless to ``stepwell runs list`` and ``runs resume``. The
    same thread looks for cancel requests: when the driver has not taken one in hand
    within :data:`ABANDON_AFTER_S` (a step holds the loop), it cancels the run itself
    (:meth:`Runner.abandon`), so a cancel always ends the run within about two seconds.

    Args:
        runner: the run's runner (its store, settings, and cancel hand-over).
        every_s: seconds between heartbeats.
    """

    def __init__(self, runner: Runner, every_s: float) -> None:
        self._runner = runner
        self._every_s = every_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"stepwell-heartbeat-{runner.settings.run_id}",
            daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        runner = self._runner
        tick = min(self._every_s, runner.settings.cancel_poll_s)
        beat_due = time.monotonic() + self._every_s
        asked_at: float | None = None
        while not self._stopped.wait(tick):
            try:
                if time.monotonic() >= beat_due:
                    runner.store.heartbeat(runner.settings.run_id, time.time())
                    beat_due = time.monotonic() + self._every_s
                if runner.cancel_taken():
                    continue
                reason = runner.store.cancel_requested(runner.settings.run_id)
                if reason and asked_at is None:
                    asked_at = time.monotonic()
                if reason and time.monotonic() - asked_at > ABANDON_AFTER_S:
                    runner.abandon(reason if isinstance(reason, str) else
                                   CANCELLED_BY_REQUEST)
                    return
            except Exception:  # the next commit reports a broken database
                log.debug("heartbeat of %s failed", runner.settings.run_id, exc_info=True)

    def stop(self) -> None:
        """Stop beating (the run's final commit follows)."""
        self._stopped.set()
        self._thread.join()
