"""The Python read client, shaped like the Retab SDK.

    client = Client("stepwell.db")
    run = client.workflows.runs.get("run_...")
    page = client.workflows.steps.list(run.id, status=["error"], limit=50)
    step = client.workflows.steps.get("extract", run_id=run.id)
    legacy = client.workflows.runs.steps.list(run.id)

On a SQLite file the client opens its own read-only connection (``PRAGMA query_only``);
in WAL mode readers never block, and are never blocked by, the processes running
workflows. On PostgreSQL (``Client("postgresql://...")``) it opens a store that never
creates anything. It can
also read an open store instead (``Client(store=...)``: any
:class:`~engine.contracts.store.ReadStore`, the in-memory store included).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from engine.contracts.errors import NotFoundError
from engine.contracts.store import ReadStore
from store.connection import Database, check_layout, storage_error
from store.files import LocalFileStore
from store.sqlite_reads import SQLiteReads
from store.urls import Backend, parse_db

if TYPE_CHECKING:  # the read models are built on first use: `run_json` needs none of them
    from store.api import LegacyStep, Page, ReadAPI, Step, WorkflowRun
    from store.log_shapes import StepLogLine


class RunStepsResource:
    """``client.workflows.runs.steps``: the older full step list."""

    def __init__(self, api: ReadAPI) -> None:
        self._api = api

    def list(self, run_id: str) -> list[LegacyStep]:
        """Every step of the run in the legacy flat shape (``node_id``, ``status``...).

        Raises:
            NotFoundError: unknown run.
        """
        return self._api.list_legacy_steps(run_id)


class RunsResource:
    """``client.workflows.runs``."""

    def __init__(self, api: ReadAPI) -> None:
        self._api = api
        self.steps = RunStepsResource(api)

    def get(self, run_id: str) -> WorkflowRun:
        """One run. Raises NotFoundError."""
        return self._api.get_run(run_id)

    def list(
        self,
        *,
        status: str | Sequence[str] | None = None,
        workflow_id: str | None = None,
        limit: int = 20,
        after: str | None = None,
        before: str | None = None,
    ) -> Page[WorkflowRun]:
        """Runs, newest first; ``after``/``before`` are run ids from ``list_metadata``."""
        return self._api.list_runs(
            status=status, workflow_id=workflow_id, limit=limit, after=after, before=before
        )


class StepsResource:
    """``client.workflows.steps``."""

    def __init__(self, api: ReadAPI) -> None:
        self._api = api

    def list(
        self,
        run_id: str,
        *,
        block_id: str | None = None,
        step_id: str | None = None,
        block_type: str | Sequence[str] | None = None,
        status: str | Sequence[str] | None = None,
        limit: int = 100,
        after: str | None = None,
        before: str | None = None,
    ) -> Page[Step]:
        """A run's steps in creation order; ``after``/``before`` are step ids from
        ``list_metadata`` (``after`` is None on the last page).

        Raises:
            NotFoundError: unknown run or cursor.
            UsageError: both cursors given, or limit outside 1..1000.
        """
        return self._api.list_steps(
            run_id, block_id=block_id, step_id=step_id, block_type=block_type,
            status=status, limit=limit, after=after, before=before,
        )

    def get(self, step_id: str, run_id: str | None = None) -> Step:
        """One step.

        Raises:
            NotFoundError: unknown step.
            ConflictError: several runs share ``step_id`` and ``run_id`` was not given.
        """
        return self._api.get_step(step_id, run_id=run_id)

    def logs(self, step_id: str, *, run_id: str, attempt: int | None = None,
             after: int | str | None = None, limit: int = 500) -> Page[StepLogLine]:
        """What the step's attempts wrote (stdout, stderr, logging, HTTP summaries), in
        order; ``after`` is ``list_metadata.after`` of the previous page.

        Raises:
            NotFoundError: unknown run or step.
            UsageError: a bad cursor or limit.
        """
        return self._api.list_step_logs(step_id, run_id=run_id, attempt=attempt,
                                        after=after, limit=limit)


class WorkflowsResource:
    """``client.workflows``."""

    def __init__(self, api: ReadAPI) -> None:
        self.runs = RunsResource(api)
        self.steps = StepsResource(api)


class Client:
    """Read runs and steps of a stepwell database.

    Args:
        db_path: the database (a SQLite file or a ``postgresql://`` URL, see
            :mod:`store.urls`); defaults to ``$STEPWELL_DB`` or ``./stepwell.db``.
        organization_id: when set, only that organization's runs are visible.
        store: read an open store instead (needed for ``:memory:`` and the memory store).

    Raises:
        NotFoundError: the database file does not exist (or the PostgreSQL database
            holds no stepwell runs).
        StorageError: it cannot be opened.
        UsageError: ``db_path`` is a URL of an unknown scheme.
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str] | None = None,
        organization_id: str | None = None,
        *,
        store: ReadStore | None = None,
    ) -> None:
        self._conn: sqlite3.Connection | None = None
        self._owned: Any = None
        if store is None:
            url = parse_db(db_path or None)
            if url.backend is Backend.POSTGRESQL:
                from store.pg import PostgresStore

                store = self._owned = PostgresStore(url.target, create=False)
            else:
                path = url.target
                self._conn = _open_readonly(path)
                store = SQLiteReads(Database(self._conn, path), LocalFileStore.beside(path))
        self._reads: ReadStore = store
        self._organization_id = organization_id

    @cached_property
    def api(self) -> ReadAPI:
        """The read API over this client's store."""
        from store.api import ReadAPI

        return ReadAPI(self._reads, organization_id=self._organization_id)

    @cached_property
    def workflows(self) -> WorkflowsResource:
        """``client.workflows``: runs and steps."""
        return WorkflowsResource(self.api)

    def run_json(self, run_id: str) -> dict[str, Any]:
        """One run as the JSON data of ``workflows.runs.get(run_id)`` (its
        ``model_dump(mode="json")``), built without the read models when the stored run
        allows (:func:`store.shapes_json.run_json`).

        Raises:
            NotFoundError: unknown run (or another organization's).
        """
        from store.shapes_json import run_json

        record = self._reads.read_run(run_id, organization_id=self._organization_id)
        data = run_json(record)
        if data is None:
            from store.convert import run_model

            data = run_model(record).model_dump(mode="json")
        return data

    def close(self) -> None:
        """Close the client's connection (not a borrowed store's)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._owned is not None:
            self._owned.close()
            self._owned = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_readonly(path: str) -> sqlite3.Connection:
    if not Path(path).exists():
        raise NotFoundError(
            "database", path,
            "Run a workflow first (`stepwell run ...`), or pass the path of an existing "
            "database (--db / STEPWELL_DB).",
        )
    try:
        conn = sqlite3.connect(path, timeout=30.0, isolation_level=None,
                               check_same_thread=False)
    except sqlite3.Error as exc:
        raise storage_error(path, "opening the database for reading", exc) from exc
    try:
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA query_only = 1")
        if check_layout(conn, path):
            raise NotFoundError("database", path, "It holds no stepwell runs yet: run a "
                                "workflow on it first (`stepwell run ...`).")
    except sqlite3.Error as exc:
        conn.close()
        raise storage_error(path, "opening the database for reading", exc) from exc
    except BaseException:
        conn.close()
        raise
    return conn
