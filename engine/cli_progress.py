"""Loop progress for the CLI: items done out of total per container, sentinels hidden.

Everything here reads plain step dicts (a live board row, or ``to_jsonable`` of a read
API step: ``step_id``, ``block_id``, ``loop_containers``, ``lifecycle.status``), so the
live view of ``stepwell run`` and ``stepwell runs watch`` share it.

* An iteration belongs to the container step whose loop opened it: the step id of the
  container in the scope one level up (``orders_iter_0_lines`` for the frames
  ``orders[0] › lines[j]``). It is *finished* once its sentinel end is terminal, and
  *failed* when one of its steps ended in error.
* Sentinel steps (``<container>_sentinel_start`` / ``_end``) are bookkeeping: tables
  leave them out unless asked for all rows.
* A container's item total comes from its caller (the count the runner noted when the
  loop opened, or the length of a finished loop's list).

:class:`ProgressLines` turns the same figures into plain lines for a stdout that is not a
terminal: ``each: 12/30 items, 1 failed``, at most one line every few seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from engine.cli_render import STATUS_ORDER
from engine.contracts.blocks import SentinelRole, sentinel_id
from engine.contracts.frozen import record
from engine.contracts.values import LoopFrame, step_id_for

_TERMINAL = frozenset({"completed", "skipped", "error", "cancelled"})
#: Seconds between two plain progress lines.
PLAIN_INTERVAL_S = 3.0


@record
class LoopProgress:
    """How far one container's loop is.

    Attributes:
        step_id: the container step.
        total: items of a for_each (None while unknown, and for while loops).
        started: iterations opened so far.
        finished: iterations whose every step ended.
        failed: finished iterations with a step in error.
    """

    step_id: str
    total: int | None
    started: int
    finished: int
    failed: int

    def text(self) -> str:
        """``each: 12/30 items, 1 failed`` (``3 iterations`` when the total is unknown)."""
        if self.total is not None:
            head = f"{self.step_id}: {self.finished}/{self.total} items"
        else:
            head = f"{self.step_id}: {self.finished} iteration{'' if self.finished == 1 else 's'}"
        return head + (f", {self.failed} failed" if self.failed else "")


def _status(step: Mapping[str, Any]) -> str:
    lifecycle = step.get("lifecycle") or {}
    return str(lifecycle.get("status") or step.get("status") or "")


def _frames(step: Mapping[str, Any]) -> list[LoopFrame]:
    return [LoopFrame(container_id=str(f.get("container_id")), iteration=int(f.get("iteration")))
            for f in step.get("loop_containers") or []]


def is_sentinel(step: Mapping[str, Any]) -> bool:
    """True for a loop's generated start or end step."""
    frames = step.get("loop_containers") or []
    if not frames:
        return False
    container = str(frames[-1].get("container_id"))
    return step.get("block_id") in {sentinel_id(container, role) for role in SentinelRole}


def shown_steps(steps: Iterable[Mapping[str, Any]], *, show_all: bool) -> list[Any]:
    """The steps a table shows: all of them, or all but the sentinels."""
    return [s for s in steps if show_all or not is_sentinel(s)]


def loop_progress(steps: Sequence[Mapping[str, Any]],
                  total_of: Callable[[str], int | None] = lambda _step_id: None
                  ) -> list[LoopProgress]:
    """The progress of every container that opened iterations, in first-seen order.

    Args:
        steps: the run's steps (any order; creation order gives a stable result).
        total_of: the item total of a container step, when known.
    """
    iterations: dict[str, dict[int, list[str]]] = {}
    ends: dict[tuple[str, int], str] = {}
    for step in steps:
        frames = _frames(step)
        if not frames:
            continue
        inner = frames[-1]
        container = step_id_for(inner.container_id, tuple(frames[:-1]))
        statuses = iterations.setdefault(container, {}).setdefault(inner.iteration, [])
        statuses.append(_status(step))
        if step.get("block_id") == sentinel_id(inner.container_id, SentinelRole.END):
            ends[(container, inner.iteration)] = _status(step)
    out: list[LoopProgress] = []
    for container, by_index in iterations.items():
        finished = failed = 0
        for index, statuses in by_index.items():
            end = ends.get((container, index), "")
            done = end in _TERMINAL or (bool(statuses) and all(s in _TERMINAL for s in statuses))
            if done:
                finished += 1
                failed += "error" in statuses
        out.append(LoopProgress(step_id=container, total=total_of(container),
                                started=len(by_index), finished=finished, failed=failed))
    return out


def finished_items(step: Mapping[str, Any]) -> int | None:
    """The item count of a finished for_each step (its ``fe-right-out`` list), else None."""
    outputs = step.get("handle_outputs") or step.get("outputs") or {}
    payload = outputs.get("fe-right-out")
    data = payload.get("data") if isinstance(payload, Mapping) else None
    return len(data) if isinstance(data, list) else None


def progress_summary(progress: Sequence[LoopProgress]) -> str:
    """Every loop's progress on one line (``each: 12/30 items; lines: 4/4 items``)."""
    return "; ".join(p.text() for p in progress)


class ProgressLines:
    """Plain progress lines for a stdout that is not a terminal.

    Call :meth:`line` as often as convenient; it answers a line at most every
    ``interval_s`` seconds (the first one ``interval_s`` after it was made, so a short
    run prints none), and only when something changed since the last one.
    """

    def __init__(self, interval_s: float = PLAIN_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._interval_s = interval_s
        self._clock = clock
        self._last_at = clock()
        self._last = ""

    def line(self, steps: Sequence[Mapping[str, Any]],
             total_of: Callable[[str], int | None] = lambda _step_id: None) -> str | None:
        """The line to print now, or None.

        Args:
            steps: the run's steps so far.
            total_of: item totals of container steps, when known.
        """
        now = self._clock()
        if now - self._last_at < self._interval_s:
            return None
        loops = progress_summary(loop_progress(steps, total_of))
        counts: dict[str, int] = {}
        for step in shown_steps(steps, show_all=False):
            status = _status(step)
            counts[status] = counts.get(status, 0) + 1
        shown = ", ".join(f"{counts[s]} {s}" for s in STATUS_ORDER
                          if counts.get(s) and s != "pending")
        text = "; ".join(part for part in (loops, f"steps: {shown}" if shown else "") if part)
        if not text or text == self._last:
            return None
        self._last, self._last_at = text, now
        return text
