"""The SDK-shaped Client, and read speed on a large run."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from engine.contracts.errors import ConflictError, NotFoundError
from engine.contracts.values import Payload
from store import Client, SQLiteStore
from store.sqlite_reads import SQLiteReads
from store.writes import INSERT_STEP
from tests.store.helpers import T0, S, ev, lifecycle, new_run


def _conn_of(client: Client) -> sqlite3.Connection:
    """The read-only connection a client opened on a database file."""
    reads = client.api.reads
    assert isinstance(reads, SQLiteReads)
    return reads.db.conn


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "client.db"
    with SQLiteStore(path) as store:
        for run_id in ("run_a", "run_b"):
            store.create_run(new_run(run_id), now=T0)
            store.apply(run_id, lifecycle("extract", {"output-json-0": Payload.json({"n": 1})},
                                          block_type="extract"), now=T0)
            store.apply(run_id, [ev("only_" + run_id, S.PENDING)], now=T0)
    return path


def test_client_mirrors_the_sdk(db: Path) -> None:
    with Client(db) as client:
        run = client.workflows.runs.get("run_a")
        assert run.id == "run_a" and run.lifecycle.status == "pending"
        runs = client.workflows.runs.list(limit=1)
        assert len(runs.data) == 1 and runs.list_metadata.after is not None
        page = client.workflows.steps.list("run_a", status=["completed"])
        assert [s.step_id for s in page.data] == ["extract"]
        assert page.list_metadata.after is None
        step = client.workflows.steps.get("only_run_b")
        assert step.run_id == "run_b"
        with pytest.raises(ConflictError):
            client.workflows.steps.get("extract")
        outputs = client.workflows.steps.get("extract", run_id="run_a").handle_outputs
        assert outputs["output-json-0"].model_dump() == {"type": "json", "data": {"n": 1}}
        legacy = client.workflows.runs.steps.list("run_a")
        assert [(s.node_id, s.status) for s in legacy] == [
            ("extract", "completed"), ("only_run_a", "pending")]


def test_client_is_read_only(db: Path) -> None:
    with Client(db) as client:
        with pytest.raises(Exception, match="readonly"):
            _conn_of(client).execute("DELETE FROM runs")


def test_client_organization_scope(db: Path) -> None:
    with Client(db, organization_id="org_other") as client:
        assert client.workflows.runs.list().data == []
        with pytest.raises(NotFoundError):
            client.workflows.runs.get("run_a")


def test_client_database_from_environment(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEPWELL_DB", str(db))
    with Client() as client:
        assert client.workflows.runs.get("run_b").id == "run_b"


def test_client_missing_database(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="Run a workflow first"):
        Client(tmp_path / "nothing.db")
    assert not (tmp_path / "nothing.db").exists()


def test_client_over_an_open_memory_store() -> None:
    with SQLiteStore(":memory:") as store:
        store.create_run(new_run(), now=T0)
        store.apply("run_1", lifecycle("a"), now=T0)
        client = Client(store=store)
        assert client.workflows.steps.get("a").lifecycle.status == "completed"


# ------------------------------------------------------------------ large runs

N_STEPS = 100_000


@pytest.fixture(scope="module")
def big_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run with 100,000 steps (written in bulk through the store's INSERT), plus a
    second run sharing no step ids."""
    path = tmp_path_factory.mktemp("big") / "big.db"
    with SQLiteStore(path) as store:
        store.create_run(new_run("big"), now=T0)
        store.create_run(new_run("small"), now=T0)
        out = '{"output-json-0":{"type":"json","data":{"total":1}}}'
        rows = (
            ["big", f"each_iter_{i}_leaf", "leaf", "function", "Leaf",
             "error" if i % 1000 == 999 else "completed", "[]", 0, None, out, None, None,
             None, None, None, None, None, None, None, T0, T0, T0, T0 + 1, T0 + 1, 1000, ""]
            for i in range(N_STEPS)
        )
        conn = store.db.conn
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT_STEP, rows)
        conn.execute("COMMIT")
        store.apply("small", lifecycle("lonely"), now=T0)
    return path


def test_reads_on_a_100k_step_run(big_db: Path) -> None:
    """Pages, cursors, filters and gets on a large run (latency: ``python -m bench``, W5)."""
    with Client(big_db) as client:
        steps = client.workflows.steps
        first = steps.list("big")
        assert len(first.data) == 100 and first.list_metadata.after == "each_iter_99_leaf"
        assert steps.get("each_iter_77777_leaf").step_id == "each_iter_77777_leaf"
        assert steps.get("each_iter_77777_leaf", run_id="big").step_id == "each_iter_77777_leaf"
        deep = steps.list("big", after="each_iter_90000_leaf", limit=100)
        assert deep.data[0].step_id == "each_iter_90001_leaf"
        errors = steps.list("big", status="error")
        assert len(errors.data) == 100 and errors.data[0].step_id == "each_iter_999_leaf"


@pytest.mark.parametrize("kwargs", [
    {}, {"after": "each_iter_5_leaf"}, {"before": "each_iter_500_leaf"}, {"block_id": "leaf"},
    {"status": "error"}, {"status": ["error", "skipped"]}, {"step_id": "each_iter_3_leaf"},
])
def test_step_queries_use_indexes(big_db: Path, kwargs: dict[str, object]) -> None:
    """No list query scans the steps table: every one searches an index."""
    with Client(big_db) as client:
        conn = _conn_of(client)
        plans: list[str] = []
        conn.set_trace_callback(plans.append)
        client.workflows.steps.list("big", limit=10, **kwargs)  # type: ignore[arg-type]
        conn.set_trace_callback(None)
        assert any("FROM steps" in sql for sql in plans)
        for sql in plans:
            if sql.lstrip().upper().startswith("SELECT"):
                detail = " ".join(str(r[-1]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql))
                assert "SCAN steps" not in detail, (sql, detail)
