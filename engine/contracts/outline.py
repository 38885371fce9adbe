"""Overviews of runs: light step rows, grouped counts and loop sizes for pages at size.

A page about a run of 10,000 loop items cannot read 30,000 step records (each with its
payloads resolved). :class:`OutlineStore`, part of
:class:`~engine.contracts.store.ReadStore`, answers what an overview needs with a few
typed queries:

* :meth:`~OutlineStore.outline_steps`: steps without payloads (identity, status, loop
  scope, timing), some or all of a run's;
* :meth:`~OutlineStore.block_tallies`: steps per block and status, one grouped count;
* :meth:`~OutlineStore.iteration_tallies` / :meth:`~OutlineStore.iteration_steps`: a loop
  container step's iterations, counted at once, and the steps of a few of them;
* :meth:`~OutlineStore.run_counts` / :meth:`~OutlineStore.run_presence`: steps, items,
  owner and "waiting since" of many runs;
* :meth:`~OutlineStore.step_moves`: the lifecycle trails of some steps;
* :meth:`~OutlineStore.loop_sizes`: how many items each loop container step opened (from
  the note the runner writes to its log, :data:`~engine.contracts.logs.LOOP_LOGGER`);
* :meth:`~OutlineStore.workflow_choices`: the workflows that have runs;
* :meth:`~OutlineStore.data_version`: a number that changes when anything is committed.

Like every read query they take ``organization_id``: another organization's run is not
found, and its rows are left out of answers about many runs.

Loop items are counted on the sentinel steps of loop containers (block types ending in
``_sentinel_start`` / ``_sentinel_end``): one start per item; an item is done when its
end completed, failed when its end was skipped or failed (an end is skipped only when
something of its item died of an error). The steps of iteration ``n`` of container step
``C`` have ids ``C_iter_n_<rest>`` (:func:`~engine.contracts.values.step_id_for`), so
they sort together (:func:`iteration_bounds`).
"""

from __future__ import annotations

import re
from dataclasses import field
from typing import Any

from engine.contracts.blocks import SentinelRole
from engine.contracts.frozen import record

# The protocol lives apart so that composing Store imports no record class.
from engine.contracts.outline_store import OutlineStore  # noqa: F401 - re-exported

#: Block types of loop sentinels end with these (``for_each_sentinel_start``...).
SENTINEL_START = f"_sentinel_{SentinelRole.START.value}"
SENTINEL_END = f"_sentinel_{SentinelRole.END.value}"
_ITEMS_NOTE = re.compile(r"^(\d+) items?\b")
_BOUND_NOTE = re.compile(r"^loop opened: at most (\d+) iterations?\b")


@record
class OutlineStep:
    """One step without its payloads.

    Attributes:
        scope: loop frames outermost first, as ``(container_id, iteration)`` pairs.
        error: the message of its error, for a step in ``error``.
        created_at / started_at / completed_at: epoch seconds (None when not reached).
    """

    seq: int
    step_id: str
    block_id: str
    block_type: str
    label: str
    status: str
    scope: tuple[tuple[str, int], ...]
    retry_count: int
    reason: str | None
    error: str | None
    created_at: float
    started_at: float | None
    completed_at: float | None

    @property
    def sentinel(self) -> str | None:
        """``start`` / ``end`` for a loop sentinel, None for a block step."""
        if self.block_type.endswith(SENTINEL_START):
            return "start"
        if self.block_type.endswith(SENTINEL_END):
            return "end"
        return None


@record
class BlockTally:
    """How many steps of one block (or loop sentinel) are in one status.

    Attributes:
        reason: one skip or cancel reason among them.  error: one error message.
    """

    block_id: str
    block_type: str
    label: str
    status: str
    count: int
    reason: str | None
    error: str | None


@record
class RunCounts:
    """Steps (sentinels left out) and loop items of one run."""

    steps: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    items: int = 0
    items_done: int = 0
    items_failed: int = 0


@record
class RunPresence:
    """A run without its payloads: its workflow, stored status, who executes it, and
    since when it waits.

    Attributes:
        workflow_name: printable (control characters removed), at most 200 characters.
        owner_pid / heartbeat_at: the process that owns the run and its last heartbeat.
        waiting_since: creation time of its oldest undecided review (epoch seconds).
    """

    run_id: str
    workflow_id: str
    workflow_name: str
    status: str
    owner_pid: int | None
    heartbeat_at: float | None
    waiting_since: float | None


@record
class StepMove:
    """One move of a step's lifecycle: ``detail`` holds the error and/or reason given."""

    status: str
    at: float
    retry_count: int
    detail: Any


@record
class WorkflowChoice:
    """A workflow that has runs: its id, latest name and number of runs."""

    workflow_id: str
    name: str
    runs: int


@record
class LoopSize:
    """How many iterations a loop container step opened.

    Attributes:
        items: the item count (for_each), or the most iterations (while_loop).
        bound: True when ``items`` is a while_loop's bound, not a count.
    """

    run_id: str
    step_id: str
    block_id: str
    items: int
    bound: bool = False


def parse_loop_note(message: str) -> tuple[int, bool] | None:
    """``(items, bound)`` from the note a container's log gets when its loop opens
    (``30 items, 4 at a time; ...`` or ``loop opened: at most 10 iterations``)."""
    found = _ITEMS_NOTE.match(message)
    if found:
        return int(found.group(1)), False
    found = _BOUND_NOTE.match(message)
    return (int(found.group(1)), True) if found else None


def iteration_bounds(container_step_id: str) -> tuple[str, str]:
    """Step ids inside iterations of ``container_step_id`` sort in ``[low, high)``."""
    low = f"{container_step_id}_iter_"
    return low, low[:-1] + chr(ord("_") + 1)


def iteration_of(container_step_id: str, step_id: str) -> int | None:
    """The iteration of ``container_step_id`` that ``step_id`` is inside, if any."""
    low, _ = iteration_bounds(container_step_id)
    if not step_id.startswith(low):
        return None
    number = step_id[len(low):].split("_", 1)[0]
    return int(number) if number.isdigit() else None
