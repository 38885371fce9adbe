"""The overview queries (:class:`~engine.contracts.outline.OutlineStore`) in SQL.

:class:`SQLOutline` is mixed into :class:`store.sqlite_reads.SQLiteReads`, so the SQLite
store, the server's read-only SQLite connections and the PostgreSQL store (whose
connection takes the same ``?``-placeholder SQL, :mod:`store.pg.connection`) all answer
them. Two things differ by backend and are chosen here: the number of the iteration in
a step id (SQLite casts a prefix of digits, PostgreSQL splits at ``_`` first), and the
commit counter of :meth:`SQLOutline.data_version`.

Counts are grouped in SQL. A container's iterations are found by step id range on the
``(step_id, run_id)`` index (SQLite's ``+run_id`` keeps the planner on it), so counting
the iterations of one loop never reads the rest of the run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from engine.contracts.bounded import clean_text
from engine.contracts.errors import NotFoundError
from engine.contracts.logs import LOOP_LOGGER
from store.connection import Database
from store.layout import EXCEPTIONAL_STATUSES_SQL

if TYPE_CHECKING:  # the outline records are imported by the queries that build them
    from engine.contracts.outline import (
        BlockTally,
        LoopSize,
        OutlineStep,
        RunCounts,
        RunPresence,
        StepMove,
        WorkflowChoice,
    )

#: Ids per ``IN (...)`` list.
CHUNK = 500
OUTLINE_SELECT = (
    "SELECT seq, step_id, block_id, block_type, label, status, scope, retry_count, reason, "
    "CASE WHEN status = 'error' THEN error END, created_at, started_at, completed_at "
    "FROM steps")
_ITERATION = {
    "sqlite": "CAST(substr(step_id, ?) AS INTEGER)",
    "postgresql": ("CASE WHEN split_part(substr(step_id, ?), '_', 1) ~ '^[0-9]+$' THEN "
                   "CAST(split_part(substr(step_id, ?), '_', 1) AS INTEGER) END"),
}
_RUN_HINT = {"sqlite": "+run_id", "postgresql": "run_id"}
_TALLY_COUNTS = ("SELECT block_id, status, count(*), max(seq) FROM steps WHERE run_id = ? "
                 "GROUP BY block_id, status")
#: The statuses of ``ix_steps_run_exceptional`` (reasons and errors live there).
_TALLY_NOTES = ("SELECT block_id, status, min(reason), min(CASE WHEN status = 'error' THEN "
                "json_extract(error, '$.message') END) FROM steps WHERE run_id = ? AND "
                f"{EXCEPTIONAL_STATUSES_SQL} GROUP BY block_id, status")
_PG_VERSION = ("SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
               "ELSE pg_current_wal_insert_lsn() END - '0/0'::pg_lsn)::bigint")


def _scope(raw: str | None) -> tuple[tuple[str, int], ...]:
    if not raw:
        return ()
    return tuple((f["container_id"], int(f["iteration"])) for f in json.loads(raw))


def _message(raw: str | None) -> str | None:
    data = json.loads(raw) if raw else None
    return data.get("message") if isinstance(data, dict) else None


def outline_rows(rows: Sequence[Sequence[Any]]) -> list[OutlineStep]:
    """Rows of :data:`OUTLINE_SELECT` as :class:`OutlineStep`."""
    from engine.contracts.outline import OutlineStep

    return [OutlineStep(seq=r[0], step_id=r[1], block_id=r[2], block_type=r[3],
                        label=r[4] or "", status=r[5], scope=_scope(r[6]), retry_count=r[7],
                        reason=r[8], error=_message(r[9]), created_at=r[10],
                        started_at=r[11], completed_at=r[12]) for r in rows]


def _chunks(ids: Sequence[str]) -> list[list[str]]:
    items = list(dict.fromkeys(ids))
    return [items[i:i + CHUNK] for i in range(0, len(items), CHUNK)]


def _marks(ids: Sequence[str]) -> str:
    return ",".join("?" * len(ids))


class SQLOutline:
    """The overview queries over ``self.db`` (a SQLite or PostgreSQL database)."""

    db: Any

    @property
    def _dialect(self) -> str:
        return "sqlite" if isinstance(self.db, Database) else "postgresql"

    def _visible(self, conn: Any, run_id: str, organization_id: str | None) -> str:
        sql, params = "SELECT status FROM runs WHERE id = ?", [run_id]
        if organization_id is not None:
            sql += " AND organization_id = ?"
            params.append(organization_id)
        found = conn.execute(sql, params).fetchone()
        if found is None:
            raise NotFoundError("run", run_id)
        return str(found[0])

    def _runs_where(self, run_ids: Sequence[str], organization_id: str | None,
                    column: str = "run_id") -> tuple[str, list[Any]]:
        """SQL keeping ``column`` among the given runs of the organization."""
        if organization_id is None:
            return f"{column} IN ({_marks(run_ids)})", list(run_ids)
        return ((f"{column} IN (SELECT id FROM runs WHERE id IN ({_marks(run_ids)}) "
                "AND organization_id = ?)"), [*run_ids, organization_id])

    def outline_steps(self, run_id: str, step_ids: Sequence[str] | None = None, *,
                      organization_id: str | None = None) -> list[OutlineStep]:
        """Steps of a run without payloads, in creation order. Raises NotFoundError."""
        with self.db.read(f"outlining run {run_id}") as conn:
            self._visible(conn, run_id, organization_id)
            if step_ids is None:
                rows = conn.execute(f"{OUTLINE_SELECT} WHERE run_id = ? ORDER BY seq",
                                    (run_id,)).fetchall()
                return outline_rows(rows)
            rows = []
            for chunk in _chunks(step_ids):
                rows += conn.execute(f"{OUTLINE_SELECT} WHERE step_id IN ({_marks(chunk)}) "
                                     "AND run_id = ?", (*chunk, run_id)).fetchall()
        return outline_rows(sorted(rows, key=lambda r: r[0]))

    def block_tallies(self, run_id: str, *, organization_id: str | None = None
                      ) -> list[BlockTally]:
        """Steps per block and status. Raises NotFoundError.

        Three small queries instead of one wide one: the counts (and the last step of
        each group, whose type and label stand for the group), the reasons and errors of
        the exceptional steps only (on their partial index), and those last steps.
        """
        from engine.contracts.outline import BlockTally

        with self.db.read(f"counting steps of run {run_id}") as conn:
            self._visible(conn, run_id, organization_id)
            counts = conn.execute(_TALLY_COUNTS, (run_id,)).fetchall()
            notes = {(r[0], r[1]): (r[2], r[3])
                     for r in conn.execute(_TALLY_NOTES, (run_id,))}
            kinds: dict[int, tuple[str, str]] = {}
            for chunk in _chunks([r[3] for r in counts]):
                sql = f"SELECT seq, block_type, label FROM steps WHERE seq IN ({_marks(chunk)})"
                kinds.update({r[0]: (r[1], r[2] or "") for r in conn.execute(sql, chunk)})
        out = []
        for block_id, status, count, last in counts:
            block_type, label = kinds.get(last, ("", ""))
            reason, error = notes.get((block_id, status), (None, None))
            out.append(BlockTally(block_id=block_id, block_type=block_type, label=label,
                                  status=status, count=int(count), reason=reason,
                                  error=error))
        return out

    def iteration_tallies(self, run_id: str, container_step_id: str, *,
                          organization_id: str | None = None) -> dict[int, dict[str, int]]:
        """Iteration -> ``{status: steps}`` of a container step. Raises NotFoundError."""
        from engine.contracts.outline import iteration_bounds

        low, high = iteration_bounds(container_step_id)
        dialect = self._dialect
        number = _ITERATION[dialect]
        sql = (f"SELECT {number} AS it, status, count(*) FROM steps WHERE step_id >= ? "
               f"AND step_id < ? AND {_RUN_HINT[dialect]} = ? GROUP BY it, status")
        starts = [len(low) + 1] * number.count("?")
        out: dict[int, dict[str, int]] = {}
        with self.db.read(f"counting iterations of {container_step_id}") as conn:
            self._visible(conn, run_id, organization_id)
            for it, status, count in conn.execute(sql, (*starts, low, high, run_id)):
                if it is not None:
                    out.setdefault(int(it), {})[status] = int(count)
        return out

    def iteration_steps(self, run_id: str, container_step_id: str,
                        iterations: Sequence[int], *, organization_id: str | None = None
                        ) -> dict[int, list[OutlineStep]]:
        """The steps directly inside some iterations. Raises NotFoundError."""
        hint = _RUN_HINT[self._dialect]
        sql = (f"{OUTLINE_SELECT} WHERE step_id >= ? AND step_id < ? AND {hint} = ? "
               "AND substr(step_id, ?) = block_id ORDER BY seq")
        out: dict[int, list[OutlineStep]] = {}
        with self.db.read(f"reading iterations of {container_step_id}") as conn:
            self._visible(conn, run_id, organization_id)
            for it in iterations:
                prefix = f"{container_step_id}_iter_{it}_"
                high = prefix[:-1] + chr(ord("_") + 1)
                out[it] = outline_rows(conn.execute(
                    sql, (prefix, high, run_id, len(prefix) + 1)).fetchall())
        return out

    def run_counts(self, run_ids: Sequence[str], *, organization_id: str | None = None
                   ) -> dict[str, RunCounts]:
        """Steps per status and loop items of each visible run with steps."""
        from engine.contracts.outline import SENTINEL_END, SENTINEL_START, RunCounts

        raw: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(run_ids):
            where, params = self._runs_where(chunk, organization_id)
            sql = ("SELECT run_id, status, "
                   f"CASE WHEN block_type LIKE '%{SENTINEL_START}' THEN 1 "
                   f"WHEN block_type LIKE '%{SENTINEL_END}' THEN 2 ELSE 0 END AS kind, "
                   f"count(*) FROM steps WHERE {where} GROUP BY run_id, status, kind")
            with self.db.read("counting steps") as conn:
                rows = conn.execute(sql, params).fetchall()
            for run_id, status, kind, count in rows:
                fold_count(raw.setdefault(run_id, new_count()), status, int(kind), int(count))
        return {run_id: RunCounts(**counts) for run_id, counts in raw.items()}

    def run_presence(self, run_ids: Sequence[str], *, organization_id: str | None = None
                     ) -> dict[str, RunPresence]:
        """Workflow, status, owner, heartbeat and oldest open review of each visible run."""
        from engine.contracts.outline import RunPresence

        out: dict[str, RunPresence] = {}
        for chunk in _chunks(run_ids):
            where, params = self._runs_where(chunk, organization_id, "r.id")
            sql = ("SELECT r.id, r.workflow_id, r.workflow_name, r.status, r.owner_pid, "
                   "r.heartbeat_at, (SELECT min(v.created_at) FROM reviews v WHERE "
                   f"v.run_id = r.id AND v.decision IS NULL) FROM runs r WHERE {where}")
            with self.db.read("reading run owners") as conn:
                for run_id, wid, name, status, pid, beat, since in conn.execute(sql, params):
                    out[run_id] = RunPresence(
                        run_id=run_id, workflow_id=wid,
                        workflow_name=clean_text(str(name or ""), limit=200), status=status,
                        owner_pid=pid, heartbeat_at=beat, waiting_since=since)
        return out

    def step_moves(self, run_id: str, step_ids: Sequence[str], *,
                   organization_id: str | None = None) -> dict[str, list[StepMove]]:
        """Step id -> its lifecycle moves, oldest first. Raises NotFoundError."""
        from engine.contracts.outline import StepMove

        out: dict[str, list[StepMove]] = {s: [] for s in step_ids}
        with self.db.read(f"reading transitions of run {run_id}") as conn:
            self._visible(conn, run_id, organization_id)
            for chunk in _chunks(step_ids):
                sql = ("SELECT step_id, status, at, retry_count, detail FROM transitions "
                       f"WHERE run_id = ? AND step_id IN ({_marks(chunk)}) "
                       "ORDER BY step_id, seq")
                for step_id, status, at, retry, detail in conn.execute(sql, (run_id, *chunk)):
                    parsed = json.loads(detail) if isinstance(detail, str) and detail else None
                    out[step_id].append(StepMove(status=status, at=float(at),
                                                 retry_count=int(retry or 0), detail=parsed))
        return out

    def loop_sizes(self, run_ids: Sequence[str], *, organization_id: str | None = None
                   ) -> list[LoopSize]:
        """The size each loop container step of the visible runs noted when it opened."""
        from engine.contracts.outline import LoopSize, parse_loop_note

        found: dict[tuple[str, str], LoopSize] = {}
        for chunk in _chunks(run_ids):
            where, params = self._runs_where(chunk, organization_id, "l.run_id")
            sql = ("SELECT l.run_id, l.step_id, s.block_id, l.message FROM step_logs l "
                   "JOIN steps s ON s.step_id = l.step_id AND s.run_id = l.run_id "
                   f"WHERE {where} AND l.logger = ? ORDER BY l.seq")
            with self.db.read("reading loop sizes") as conn:
                rows = conn.execute(sql, (*params, LOOP_LOGGER)).fetchall()
            for run_id, step_id, block_id, message in rows:
                parsed = parse_loop_note(message)
                if parsed is not None:
                    found[(run_id, step_id)] = LoopSize(run_id=run_id, step_id=step_id,
                                                        block_id=block_id, items=parsed[0],
                                                        bound=parsed[1])
        return list(found.values())

    def workflow_choices(self, *, organization_id: str | None = None
                         ) -> list[WorkflowChoice]:
        """The workflows with visible runs, by latest name, then id."""
        from engine.contracts.outline import WorkflowChoice

        sql = ("SELECT workflow_id, max(workflow_name), count(*) FROM runs"
               + (" WHERE organization_id = ?" if organization_id is not None else "")
               + " GROUP BY workflow_id ORDER BY 2, 1")
        params = [organization_id] if organization_id is not None else []
        with self.db.read("listing workflows of runs") as conn:
            return [WorkflowChoice(workflow_id=r[0], name=r[1] or r[0], runs=int(r[2]))
                    for r in conn.execute(sql, params)]

    def data_version(self) -> int:
        """SQLite: ``PRAGMA data_version`` (other connections' commits) plus this
        connection's own changes. PostgreSQL: the server's WAL position (any write)."""
        with self.db.read("reading the commit counter") as conn:
            if self._dialect == "sqlite":
                version = conn.execute("PRAGMA data_version").fetchone()[0]
                return int(version) + int(conn.total_changes)
            return int(conn.execute(_PG_VERSION).fetchone()[0])


def new_count() -> dict[str, Any]:
    """The fields of an empty :class:`RunCounts`, to fold counts into."""
    return {"steps": 0, "by_status": {}, "items": 0, "items_done": 0, "items_failed": 0}


def fold_count(counts: dict[str, Any], status: str, kind: int, count: int) -> None:
    """Add ``count`` steps in ``status`` of one kind (0 block step, 1 sentinel start,
    2 sentinel end) to the fields of a :class:`RunCounts`."""
    if kind == 1:
        counts["items"] += count
    elif kind == 2:
        counts["items_done"] += count if status == "completed" else 0
        counts["items_failed"] += count if status in ("skipped", "error") else 0
    else:
        counts["steps"] += count
        counts["by_status"][status] = counts["by_status"].get(status, 0) + count
