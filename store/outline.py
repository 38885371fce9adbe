"""Light read models for overviews: a run's steps without payloads, counts per run.

The web UI draws a run of 10,000 loop items from these, not from :class:`store.api.Step`
(whose inputs and outputs are resolved and validated per row): an outline row is the
identity, status, loop scope and timing of a step, read in one query.

* :func:`step_outline`: every step of a run in creation order (small runs);
  :func:`steps_by_id`: some of them.
* :func:`block_tallies`: steps per block and status, in one grouped query.
* :func:`iteration_tallies` / :func:`iteration_steps`: a loop container step's
  iterations, counted in one query, and the steps of a few of them.
* :func:`run_counts`: steps per status and loop items done / failed, for many runs.
* :func:`run_presence`: owner process, heartbeat and "waiting since" of many runs.
* :func:`step_transitions`: the lifecycle trail of some steps of a run.
* :func:`workflow_choices`: the workflows that have runs, for a filter.

Every function takes :class:`OutlineReads` (:func:`outline_reads` makes it from a
:class:`~store.api.ReadAPI` over SQLite) and is scoped like it: another organization's
run is not found, and its ids are left out of counts. The SQL is SQLite's and uses the
layout of :mod:`store.models` directly (the ``transitions`` view included).

Loop items are counted on the sentinels of loop containers (types
``<kind>_sentinel_start`` / ``<kind>_sentinel_end``): one start per item; an item is
done when its end completed, failed when its end was skipped or failed (an end is
skipped only when something of its item died of an error).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from engine.contracts.errors import NotFoundError, UsageError
from store.api import ReadAPI
from store.connection import Database
from store.sqlite_reads import SQLiteReads

SENTINEL_START = "_sentinel_start"
SENTINEL_END = "_sentinel_end"
_CHUNK = 500


class OutlineReads:
    """The connection and organization scope the outline queries run with.

    Args:
        db: a connection to a stepwell SQLite database.
        organization_id: when set, other organizations' runs do not exist.
    """

    def __init__(self, db: Database, organization_id: str | None = None) -> None:
        self.db = db
        self.organization_id = organization_id

    def reading(self, action: str) -> AbstractContextManager[sqlite3.Connection]:
        """The connection under its lock, SQLite errors raised as StorageError."""
        return self.db.read(action)


def outline_reads(api: ReadAPI) -> OutlineReads:
    """The outline queries over the same connection and scope as a read API.

    Raises:
        UsageError: the read API does not read a SQLite database.
    """
    reads = api.reads
    if not isinstance(reads, SQLiteReads):
        raise UsageError("Run outlines are read from SQLite databases; this read API "
                         f"reads a {type(reads).__name__}.")
    return OutlineReads(reads.db, api.organization_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class OutlineStep:
    """One step without its payloads.

    Attributes:
        scope: loop frames outermost first, as ``(container_id, iteration)`` pairs.
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


@dataclass(slots=True, kw_only=True)
class RunCounts:
    """Steps and loop items of one run."""

    steps: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    items: int = 0
    items_done: int = 0
    items_failed: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class RunPresence:
    """Who executes a run, and since when it waits.

    Attributes:
        owner_pid / heartbeat_at: the process that owns the run and its last heartbeat.
        waiting_since: creation time of the oldest undecided review (epoch seconds).
    """

    owner_pid: int | None
    heartbeat_at: float | None
    waiting_since: float | None


def _scope(raw: str | None) -> tuple[tuple[str, int], ...]:
    if not raw:
        return ()
    return tuple((f["container_id"], int(f["iteration"])) for f in json.loads(raw))


def _error_message(raw: str | None) -> str | None:
    if not raw:
        return None
    data = json.loads(raw)
    return data.get("message") if isinstance(data, dict) else None


_OUTLINE_SELECT = (
    "SELECT seq, step_id, block_id, block_type, label, status, scope, retry_count, reason, "
    "CASE WHEN status = 'error' THEN error END, created_at, started_at, completed_at "
    "FROM steps")


def _outline_rows(rows: list[tuple[Any, ...]]) -> list[OutlineStep]:
    return [OutlineStep(seq=r[0], step_id=r[1], block_id=r[2], block_type=r[3], label=r[4],
                        status=r[5], scope=_scope(r[6]), retry_count=r[7], reason=r[8],
                        error=_error_message(r[9]), created_at=r[10], started_at=r[11],
                        completed_at=r[12]) for r in rows]


def check_run(api: OutlineReads, run_id: str) -> None:
    """Raise NotFoundError unless ``run_id`` is visible to the API's organization (without
    decoding the run's inputs and outputs, as ``get_run`` does)."""
    run_status(api, run_id)


def run_status(api: OutlineReads, run_id: str) -> str:
    """The stored status of a run visible to the API's organization.

    Raises:
        NotFoundError: no such run visible to the API's organization.
    """
    sql = "SELECT status FROM runs WHERE id = ?"
    params: list[Any] = [run_id]
    if api.organization_id is not None:
        sql += " AND organization_id = ?"
        params.append(api.organization_id)
    with api.reading(f"reading run {run_id}") as conn:
        found = conn.execute(sql, params).fetchone()
    if found is None:
        raise NotFoundError("run", run_id)
    return str(found[0])


def step_outline(api: OutlineReads, run_id: str) -> list[OutlineStep]:
    """Every step of ``run_id`` in creation order, without payloads (small runs; big
    ones are read with :func:`block_tallies` and :func:`iteration_tallies`).

    Raises:
        NotFoundError: no such run visible to the API's organization.
    """
    check_run(api, run_id)
    with api.reading(f"outlining run {run_id}") as conn:
        rows = conn.execute(f"{_OUTLINE_SELECT} WHERE run_id = ? ORDER BY seq",
                            (run_id,)).fetchall()
    return _outline_rows(rows)


def steps_by_id(api: OutlineReads, run_id: str, step_ids: Sequence[str]) -> list[OutlineStep]:
    """The outline rows of some steps of a run, in creation order (unknown ids left out).

    Raises:
        NotFoundError: no such run visible to the API's organization.
    """
    check_run(api, run_id)
    rows: list[tuple[Any, ...]] = []
    ids = list(step_ids)
    for i in range(0, len(ids), _CHUNK):
        chunk = ids[i:i + _CHUNK]
        marks = ",".join("?" * len(chunk))
        with api.reading(f"reading steps of run {run_id}") as conn:
            rows += conn.execute(f"{_OUTLINE_SELECT} WHERE step_id IN ({marks}) AND run_id = ?",
                                 (*chunk, run_id)).fetchall()
    return _outline_rows(sorted(rows, key=lambda r: r[0]))


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockTally:
    """How many steps of one block (or loop sentinel) ended in one status.

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


def block_tallies(api: OutlineReads, run_id: str) -> list[BlockTally]:
    """Steps per block and status, in one grouped query (sentinels included: a loop
    container's items are the steps of its sentinels).

    Raises:
        NotFoundError: no such run visible to the API's organization.
    """
    check_run(api, run_id)
    sql = ("SELECT block_id, min(block_type), min(label), status, count(*), min(reason), "
           "min(CASE WHEN status = 'error' THEN json_extract(error, '$.message') END) "
           "FROM steps WHERE run_id = ? GROUP BY block_id, status")
    with api.reading(f"counting steps of run {run_id}") as conn:
        rows = conn.execute(sql, (run_id,)).fetchall()
    return [BlockTally(block_id=r[0], block_type=r[1], label=r[2] or "", status=r[3],
                       count=r[4], reason=r[5], error=r[6]) for r in rows]


def _iteration_range(container_step_id: str) -> tuple[str, str]:
    """Step ids of a container step's iterations sort between these two strings: each is
    ``<container step id>_iter_<n>_<rest>`` (:func:`engine.contracts.values.step_id_for`)."""
    prefix = f"{container_step_id}_iter_"
    return prefix, prefix[:-1] + chr(ord("_") + 1)


def iteration_tallies(api: OutlineReads, run_id: str, container_step_id: str
                      ) -> dict[int, dict[str, int]]:
    """Iteration -> ``{status: steps}`` over every step inside each iteration of a loop
    container step (nested loops included), in one grouped query.

    Raises:
        NotFoundError: no such run visible to the API's organization.
    """
    check_run(api, run_id)
    low, high = _iteration_range(container_step_id)
    # ``+run_id``: search the step id range of ``ux_steps_step_run``, not the whole run.
    sql = ("SELECT CAST(substr(step_id, ?) AS INTEGER) AS it, status, count(*) FROM steps "
           "WHERE step_id >= ? AND step_id < ? AND +run_id = ? GROUP BY it, status")
    out: dict[int, dict[str, int]] = {}
    with api.reading(f"counting iterations of {container_step_id}") as conn:
        for it, status, count in conn.execute(sql, (len(low) + 1, low, high, run_id)):
            out.setdefault(int(it), {})[status] = count
    return out


def iteration_steps(api: OutlineReads, run_id: str, container_step_id: str,
                    iterations: Sequence[int]) -> dict[int, list[OutlineStep]]:
    """The steps directly inside some iterations of a loop container step (sentinels
    included, nested loops' inner steps not), in creation order.

    Raises:
        NotFoundError: no such run visible to the API's organization.
    """
    check_run(api, run_id)
    out: dict[int, list[OutlineStep]] = {}
    for it in iterations:
        prefix = f"{container_step_id}_iter_{it}_"
        sql = (f"{_OUTLINE_SELECT} WHERE step_id >= ? AND step_id < ? AND +run_id = ? "
               "AND substr(step_id, ?) = block_id ORDER BY seq")
        params = (prefix, prefix[:-1] + chr(ord("_") + 1), run_id, len(prefix) + 1)
        with api.reading(f"reading iteration {it} of {container_step_id}") as conn:
            out[it] = _outline_rows(conn.execute(sql, params).fetchall())
    return out


def _visible(api: OutlineReads, run_ids: Sequence[str]) -> tuple[str, list[Any]]:
    """SQL restricting ``run_id`` to the given runs of the API's organization."""
    marks = ",".join("?" * len(run_ids))
    if api.organization_id is None:
        return f"run_id IN ({marks})", list(run_ids)
    return (f"run_id IN (SELECT id FROM runs WHERE id IN ({marks}) AND organization_id = ?)",
            [*run_ids, api.organization_id])


def run_counts(api: OutlineReads, run_ids: Sequence[str]) -> dict[str, RunCounts]:
    """Steps per status and loop items of each run (runs with no steps are absent)."""
    out: dict[str, RunCounts] = {}
    for i in range(0, len(run_ids), _CHUNK):
        where, params = _visible(api, run_ids[i:i + _CHUNK])
        sql = ("SELECT run_id, status, "
               f"CASE WHEN block_type LIKE '%{SENTINEL_START}' THEN 1 "
               f"WHEN block_type LIKE '%{SENTINEL_END}' THEN 2 ELSE 0 END AS kind, count(*) "
               f"FROM steps WHERE {where} GROUP BY run_id, status, kind")
        with api.reading("counting steps") as conn:
            rows = conn.execute(sql, params).fetchall()
        for run_id, status, kind, count in rows:
            counts = out.setdefault(run_id, RunCounts())
            if kind == 1:
                counts.items += count
            elif kind == 2:
                counts.items_done += count if status == "completed" else 0
                counts.items_failed += count if status in ("skipped", "error") else 0
            else:
                counts.steps += count
                counts.by_status[status] = counts.by_status.get(status, 0) + count
    return out


def run_presence(api: OutlineReads, run_ids: Sequence[str]) -> dict[str, RunPresence]:
    """Owner, heartbeat and oldest open review of each visible run."""
    out: dict[str, RunPresence] = {}
    for i in range(0, len(run_ids), _CHUNK):
        chunk = list(run_ids[i:i + _CHUNK])
        marks = ",".join("?" * len(chunk))
        sql = ("SELECT r.id, r.owner_pid, r.heartbeat_at, (SELECT min(v.created_at) FROM "
               "reviews v WHERE v.run_id = r.id AND v.decision IS NULL) FROM runs r "
               f"WHERE r.id IN ({marks})")
        params: list[Any] = chunk
        if api.organization_id is not None:
            sql += " AND r.organization_id = ?"
            params = [*chunk, api.organization_id]
        with api.reading("reading run owners") as conn:
            for run_id, pid, beat, since in conn.execute(sql, params):
                out[run_id] = RunPresence(owner_pid=pid, heartbeat_at=beat, waiting_since=since)
    return out


def step_transitions(api: OutlineReads, run_id: str, step_ids: Sequence[str]
                     ) -> dict[str, list[dict[str, Any]]]:
    """step id -> its transitions ``{status, at, retry_count, detail}``, oldest first.

    Raises:
        NotFoundError: no such run visible to the API's organization.
    """
    check_run(api, run_id)
    out: dict[str, list[dict[str, Any]]] = {s: [] for s in step_ids}
    ids = list(step_ids)
    for i in range(0, len(ids), _CHUNK):
        chunk = ids[i:i + _CHUNK]
        marks = ",".join("?" * len(chunk))
        sql = ("SELECT step_id, status, at, retry_count, detail FROM transitions "
               f"WHERE run_id = ? AND step_id IN ({marks}) ORDER BY step_id, seq")
        with api.reading(f"reading transitions of run {run_id}") as conn:
            for step_id, status, at, retry, detail in conn.execute(sql, (run_id, *chunk)):
                parsed = json.loads(detail) if isinstance(detail, str) and detail else detail
                out[step_id].append({"status": status, "at": at, "retry_count": retry,
                                     "detail": parsed})
    return out


def workflow_choices(api: OutlineReads) -> list[tuple[str, str, int]]:
    """``(workflow_id, latest name, run count)`` of the workflows with runs, by name."""
    sql = ("SELECT workflow_id, max(workflow_name), count(*) FROM runs"
           + (" WHERE organization_id = ?" if api.organization_id is not None else "")
           + " GROUP BY workflow_id ORDER BY 2, 1")
    params = [api.organization_id] if api.organization_id is not None else []
    with api.reading("listing workflows of runs") as conn:
        return [(r[0], r[1] or r[0], r[2]) for r in conn.execute(sql, params)]
