"""engine.server.background: periodic chores keep their turns through failures and stop."""

from __future__ import annotations

import threading
import time

from engine.server.background import Every


def test_a_chore_is_called_again_after_it_failed_and_stops_when_asked() -> None:
    calls: list[float] = []
    third = threading.Event()

    def chore() -> None:
        calls.append(time.monotonic())
        if len(calls) >= 3:
            third.set()
        if len(calls) == 1:
            raise RuntimeError("the first turn fails")

    every = Every("test-chore", 0.02, chore)
    every.start()
    assert third.wait(30), calls
    every.stop()
    stopped = len(calls)
    time.sleep(0.1)
    assert len(calls) == stopped  # no turn after stop()
