"""The heartbeat of a running run, kept from a thread (one for all runs of a process).

A running run's owner writes ``runs.heartbeat_at`` every ``heartbeat_s`` seconds, so
other processes can tell a live owner from a dead one (``stepwell runs list``, resume,
orphan recovery). The same thread looks for cancel requests made elsewhere (every
``cancel_poll_s``) and tells the driver at once (:func:`watch_cancel`), and stores
what running steps have logged so far every :data:`LOGS_EVERY_S` (so ``steps logs
--follow`` sees lines as they are written, even while a synchronous step holds the
driver). It is
also the last resort of cancellation: a synchronous step can hold the runner's event
loop for as long as it likes, so when a cancel request waits more than
:data:`ABANDON_AFTER_S` for the driver, the thread cancels the run in the store itself
and the driver drops whatever it does once the step returns.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectSendStream

    from engine.runner import Runner

#: How long a cancel request may wait for the driver before the run is cancelled under
#: the step that holds it.
ABANDON_AFTER_S = 1.0
CANCELLED_BY_REQUEST = "cancelled by request"
#: How often the cancel watcher looks at the flag the heartbeat thread raises, and how
#: often it reads the store itself (a heartbeat thread held up by another run's
#: database must not hold up this cancel for long).
NOTICE_EVERY_S = 0.1
LOOK_ANYWAY_S = 2.0
#: How often the lines running steps wrote are stored (:meth:`Runner.drain_logs`).
LOGS_EVERY_S = 0.5
log = logging.getLogger("engine.runner")


class Heartbeat:
    """Keeps ``runs.heartbeat_at`` fresh, and cancels a held run, from a thread.

    A thread, not a task: a synchronous step that holds the event loop for a minute must
    not make its run look ownerless to ``stepwell runs list`` and ``runs resume``. The
    same thread looks for cancel requests: when the driver has not taken one in hand
    within :data:`ABANDON_AFTER_S` (a step holds the loop), it cancels the run itself
    (:meth:`Runner.abandon`), so a cancel always ends the run within about two seconds.

    One thread serves every run of the process (:class:`_Beats`): starting and joining
    a thread per run costs more than a short run does.

    Args:
        runner: the run's runner (its store, settings, and cancel hand-over).
        every_s: seconds between heartbeats.
    """

    def __init__(self, runner: Runner, every_s: float) -> None:
        self._runner = runner
        self._every_s = every_s
        self._tick = min(every_s, runner.settings.cancel_poll_s, LOGS_EVERY_S)
        now = time.monotonic()
        self._beat_due = now + every_s
        self._logs_due = now + LOGS_EVERY_S
        #: When the shared thread looks at this run next.
        self.due = now + self._tick
        self._asked_at: float | None = None
        self._stopped = False
        #: Held while the shared thread works for this run, so stop() waits for it.
        self._turn = threading.Lock()
        _BEATS.add(self)

    def turn(self) -> bool:
        """Beat and look for a cancel request; False once this run needs no more turns."""
        runner = self._runner
        with self._turn:
            if self._stopped:
                return False
            now = time.monotonic()
            self.due = now + self._tick
            try:
                if now >= self._beat_due:
                    runner.store.heartbeat(runner.settings.run_id, time.time())
                    self._beat_due = time.monotonic() + self._every_s
                if now >= self._logs_due:
                    self._logs_due = now + LOGS_EVERY_S
                    runner.drain_logs()
                if runner.cancel_taken():
                    return True
                reason = runner.store.cancel_requested(runner.settings.run_id)
                asked_at = self._asked_at
                if reason and asked_at is None:
                    asked_at = self._asked_at = time.monotonic()
                    runner.cancel_noticed.set()
                if reason and asked_at is not None and (
                        time.monotonic() - asked_at > ABANDON_AFTER_S):
                    runner.abandon(reason if isinstance(reason, str) else
                                   CANCELLED_BY_REQUEST)
                    self._stopped = True
                    return False
            except Exception:  # the next commit reports a broken database
                log.debug("heartbeat of %s failed", runner.settings.run_id, exc_info=True)
            return True

    def stop(self) -> None:
        """Stop beating (the run's final commit follows): waits out a turn in progress."""
        with self._turn:
            self._stopped = True
        _BEATS.discard(self)


async def watch_cancel(runner: Runner, send: MemoryObjectSendStream[tuple[Any, ...]]) -> None:
    """The run's cancel watcher (a task of its driver): hands the driver a cancel request
    the heartbeat thread found in the store, or one announced by ``cancel_wakeup``."""
    wakeup = runner.settings.cancel_wakeup
    looked = time.monotonic()
    while True:
        with anyio.move_on_after(NOTICE_EVERY_S):
            await (anyio.sleep_forever() if wakeup is None else wakeup.wait())
        if (runner.cancel_noticed.is_set() or (wakeup is not None and wakeup.is_set())
                or time.monotonic() - looked > LOOK_ANYWAY_S):
            looked = time.monotonic()
            requested = runner.store.cancel_requested(runner.settings.run_id)
            if requested:
                await send.send(("cancel", None, requested))
                return


class _Beats:
    """The thread that gives every registered :class:`Heartbeat` its turns, each when due.

    Started with the first run and kept (idle, a daemon) for the next; started again in
    a forked child, where it does not exist.
    """

    def __init__(self) -> None:
        self._members: set[Heartbeat] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        #: When the thread wakes up next (a new run due earlier wakes it sooner).
        self._wake_at = 0.0

    def forked(self) -> None:
        """In a forked child: no thread, no runs of the parent's, fresh locks."""
        self.__init__()  # type: ignore[misc]

    def add(self, beat: Heartbeat) -> None:
        with self._lock:
            self._members.add(beat)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="stepwell-heartbeat",
                                                daemon=True)
                self._thread.start()
            elif beat.due < self._wake_at:
                self._wake.set()

    def discard(self, beat: Heartbeat) -> None:
        with self._lock:
            self._members.discard(beat)

    def _loop(self) -> None:
        while True:
            with self._lock:
                members = list(self._members)
            for beat in members:
                if beat.due <= time.monotonic() and not beat.turn():
                    self.discard(beat)
            with self._lock:  # a run added from here on sees the wake-up time it must beat
                now = time.monotonic()
                wait = min([_IDLE_S, *(beat.due - now for beat in self._members)])
                self._wake_at = now + wait
                self._wake.clear()
            self._wake.wait(max(wait, 0.0))


#: How long the shared thread sleeps at most (with no run to look after).
_IDLE_S = 1.0
_BEATS = _Beats()
os.register_at_fork(after_in_child=_BEATS.forked)
