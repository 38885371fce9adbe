"""PostgreSQL specifics: what the server is told (durability), the file store in the
database, several stores on one database, and every bad input refused in one clear
message with nothing written. What every store does is in the contract suite."""

from __future__ import annotations

import pickle
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from engine.contracts.errors import (
    IllegalTransition,
    NotFoundError,
    StorageError,
    UsageError,
)
from engine.contracts.events import RunUpdate, StepEvent
from engine.contracts.values import FileRef, Payload, RunStatus
from store.schema import HEAD_REVISION, VERSION_TABLE
from tests.postgres import pg_url  # noqa: F401 - a fixture
from tests.store.helpers import (
    T0,
    S,
    error_info,
    ev,
    in_row_artifact_id,
    lifecycle,
    new_run,
)

psycopg = pytest.importorskip("psycopg")
from store.pg import PostgresStore


@pytest.fixture
def pg(pg_url: str) -> Iterator[PostgresStore]:  # noqa: F811
    """A PostgreSQL store on a fresh schema."""
    store = PostgresStore(pg_url)
    yield store
    store.close()


def _sql(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql)
        return cursor.fetchall() if cursor.description else []


def _tables(url: str) -> set[str]:
    return {r[0] for r in _sql(url, "SELECT tablename FROM pg_tables "
                                    "WHERE schemaname = current_schema()")}


def test_durability_is_the_sessions_synchronous_commit(pg_url: str) -> None:  # noqa: F811
    for durability, expected in (("process", "off"), ("full", "on"), ("scratch", "off")):
        with PostgresStore(pg_url, durability=durability) as store, \
                store.db.read("test") as conn:
            assert conn.execute("SHOW synchronous_commit").fetchone()[0] == expected
    with pytest.raises(UsageError, match="'full' or 'scratch'"):
        PostgresStore(pg_url, durability="sometimes")


def test_files_live_in_the_database(pg: PostgresStore) -> None:
    ref = pg.files.put_bytes(b"%PDF-1.4 tiny", "invoice.pdf")
    assert ref == FileRef(id=ref.id, filename="invoice.pdf", mime_type="application/pdf")
    assert pg.files.put_bytes(b"%PDF-1.4 tiny", "again.pdf").id == ref.id
    copy = pickle.loads(pickle.dumps(pg.files))  # what a Dask worker receives
    assert copy.read_bytes(ref) == b"%PDF-1.4 tiny"
    with pytest.raises(NotFoundError):
        copy.read_bytes("file_" + "0" * 24)


def test_two_stores_on_one_database_see_each_others_commits(pg_url: str) -> None:  # noqa: F811
    with PostgresStore(pg_url) as one, PostgresStore(pg_url) as two:
        one.create_run(new_run(), now=T0)
        two.apply("run_1", [ev("a", S.PENDING)], now=T0 + 1)
        assert [s.step_id for s in one.load_steps("run_1")] == ["a"]


def test_workers_starting_at_once_create_the_layout_once(pg_url: str) -> None:  # noqa: F811
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            PostgresStore(pg_url).close()
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert _sql(pg_url, f"SELECT version_num FROM {VERSION_TABLE}") == [(HEAD_REVISION,)]


# ------------------------------------------------------------------ bad input


def _with(url: str, **parts: object) -> str:
    split = urlsplit(url)
    user = parts.get("user", split.username)
    password = parts.get("password", split.password)
    host = parts.get("host", split.hostname)
    port = parts.get("port", split.port)
    path = parts.get("path", split.path)
    netloc = f"{user}:{password}@{host}:{port}"
    return urlunsplit(split._replace(netloc=netloc, path=str(path), query=""))


def test_an_unreachable_server(pg_url: str) -> None:  # noqa: F811
    with pytest.raises(StorageError, match=r"cannot reach PostgreSQL at 127\.0\.0\.1:1/"):
        PostgresStore(_with(pg_url, host="127.0.0.1", port=1))


def test_wrong_credentials(pg_url: str) -> None:  # noqa: F811
    with pytest.raises(StorageError, match="refused the credentials") as caught:
        PostgresStore(_with(pg_url, password="not-the-password"))
    assert "not-the-password" not in str(caught.value)


def test_a_missing_database(pg_url: str) -> None:  # noqa: F811
    with pytest.raises(StorageError, match="does not exist.*createdb"):
        PostgresStore(_with(pg_url, path="/no_such_database"))


def test_another_applications_database_is_left_alone(pg_url: str) -> None:  # noqa: F811
    _sql(pg_url, "CREATE TABLE customers (id int primary key)")
    with pytest.raises(StorageError, match=r"not a stepwell database.*\(customers\)"):
        PostgresStore(pg_url)
    assert _tables(pg_url) == {"customers"}


@pytest.mark.parametrize(("revision", "message"), [
    ("0099", "written by a newer stepwell"),
    ("0003", "stepwell db upgrade"),
    ("nonsense", "no stepwell wrote"),
])
def test_another_schema_revision_is_refused(pg_url: str, revision: str,  # noqa: F811
                                            message: str) -> None:
    PostgresStore(pg_url).close()
    _sql(pg_url, f"UPDATE {VERSION_TABLE} SET version_num = '{revision}'")
    before = _tables(pg_url)
    with pytest.raises(StorageError, match=message):
        PostgresStore(pg_url)
    assert _tables(pg_url) == before
    assert _sql(pg_url, f"SELECT version_num FROM {VERSION_TABLE}") == [(revision,)]


def test_a_reader_never_creates_the_layout(pg_url: str) -> None:  # noqa: F811
    with pytest.raises(NotFoundError, match="holds no stepwell runs"):
        PostgresStore(pg_url, create=False)
    assert _tables(pg_url) == set()


def test_bad_databases_are_one_line_and_exit_2_on_the_cli(pg_url: str,  # noqa: F811
                                                         tmp_path: Path) -> None:
    import json
    import sys

    from tests.postgres import drop, fresh_schema

    script = Path(sys.executable).with_name("stepwell")
    if not script.exists():
        pytest.skip("the stepwell console script is not installed (pip install -e .)")
    flow = tmp_path / "echo.json"
    flow.write_text(json.dumps({
        "apiVersion": "workflows.retab.com/v1alpha2", "kind": "Workflow",
        "metadata": {"name": "Echo"},
        "spec": {"blocks": {"data": {"type": "start_json"}, "done": {"type": "end"}},
                 "edges": [{"source": {"block": "data", "handle": "output-json-0"},
                            "target": {"block": "done", "handle": "input-json-0"}}]}}))
    foreign = pg_url
    _sql(foreign, "CREATE TABLE customers (id int primary key)")
    schema, newer = fresh_schema()
    PostgresStore(newer).close()
    _sql(newer, f"UPDATE {VERSION_TABLE} SET version_num = '0099'")
    newer_tables = _tables(newer)
    cases = {
        "cannot reach PostgreSQL": _with(pg_url, host="127.0.0.1", port=1),
        "refused the credentials": _with(pg_url, password="not-the-password"),
        "not a stepwell database": foreign,
        "written by a newer stepwell": newer,
    }
    try:
        _run_bad_databases(script, flow, cases, tmp_path)
        assert _tables(newer) == newer_tables
        assert _sql(newer, "SELECT count(*) FROM runs") == [(0,)]
        assert _sql(newer, f"SELECT version_num FROM {VERSION_TABLE}") == [("0099",)]
    finally:
        drop(schema)
    assert _tables(foreign) == {"customers"}


def _run_bad_databases(script: Path, flow: Path, cases: dict[str, str],
                       tmp_path: Path) -> None:
    """Every command that opens a database: one line naming ``expected``, exit 2."""
    import os
    import subprocess

    for expected, url in cases.items():
        run = ["run", str(flow), "-i", '{"n": 1}']
        for args in (run, [*run, "--detach"], ["runs", "list"], ["worker"], ["db", "upgrade"]):
            done = subprocess.run([str(script), *args, "--db", url], capture_output=True,
                                  text=True, check=False, cwd=tmp_path,
                                  env={**os.environ, "COLUMNS": "400"})
            assert done.returncode == 2, (args, done.stderr)
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1 and expected in lines[0], (args, lines)
            assert "not-the-password" not in done.stderr


def _batches() -> list[tuple[list[StepEvent], RunUpdate | None]]:
    """Batches touching every kind of row: steps created and moved, an artifact, a review,
    run updates (one naming a failing step)."""
    proposed = {"output-json-0": Payload.json({"amount": 100})}
    return [
        ([ev("a", S.PENDING), ev("b", S.PENDING), ev("gate", S.PENDING, block_type="hil"),
          *(ev(f"item_{n}", S.PENDING, control={"item": n, "text": "tab\there"})
            for n in range(100))],
         RunUpdate(status=RunStatus.RUNNING)),
        (lifecycle("a")[1:3], None),
        ([ev("a", S.COMPLETED, outputs=proposed, artifact={"operation": "function_invocation",
                                                           "output": {"x": 1}}),
          ev("b", S.QUEUED)], None),
        ([ev("gate", S.QUEUED), ev("gate", S.RUNNING),
          ev("gate", S.AWAITING_REVIEW, outputs=proposed, block_type="hil")],
         RunUpdate(status=RunStatus.AWAITING_REVIEW, waiting_for_block_ids=["gate"])),
        ([ev("b", S.RUNNING), ev("b", S.ERROR, error=error_info())],
         RunUpdate(status=RunStatus.ERROR, failing_step_id="b", error=error_info())),
    ]


def _rows(url: str) -> dict[str, list[tuple[object, ...]]]:
    queries = {
        "steps": "SELECT * FROM steps ORDER BY seq",
        "artifacts": "SELECT seq, artifact_id, artifact_operation, artifact, artifact_at "
                     "FROM steps WHERE artifact IS NOT NULL ORDER BY seq",
        "reviews": "SELECT * FROM reviews ORDER BY id",
        "runs": "SELECT * FROM runs",
    }
    return {table: _sql(url, sql) for table, sql in queries.items()}


def test_one_statement_and_pipelined_batches_write_the_same_rows(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from store.pg import writes
    from store.pg.connection import PgDatabase
    from tests.postgres import drop, fresh_schema

    single: list[str] = []
    write_statement = PgDatabase.write_statement
    monkeypatch.setattr(PgDatabase, "write_statement", lambda db, sql, params: (
        single.append(sql), write_statement(db, sql, params)))
    copied: list[str] = []
    copy = psycopg.Cursor.copy
    monkeypatch.setattr(psycopg.Cursor, "copy", lambda cursor, statement, *a, **kw: (
        copied.append(str(statement)), copy(cursor, statement, *a, **kw))[1])
    written = []
    # By default: the batch of 103 new steps copies them in, the one naming a failing
    # step is pipelined, the others are one statement each. Then: all pipelined.
    for max_params, copy_inserts in ((writes.MAX_PARAMS, writes.COPY_INSERTS), (-1, 10**6)):
        monkeypatch.setattr(writes, "MAX_PARAMS", max_params)
        monkeypatch.setattr(writes, "COPY_INSERTS", copy_inserts)
        schema, url = fresh_schema()
        try:
            with PostgresStore(url) as store:
                store.create_run(new_run(), now=T0)
                for n, (events, update) in enumerate(_batches(), 1):
                    store.apply("run_1", events, update, now=T0 + n)
            written.append(_rows(url))
        finally:
            drop(schema)
    assert written[0] == written[1]
    assert len(single) == 3
    assert len(copied) == 1 and copied[0].startswith("COPY steps")  # only the first run
    assert [len(rows) for rows in written[0].values()] == [103, 1, 1, 1]
    [(seq, artifact_id, *_)] = written[0]["artifacts"]
    # the same ids as on SQLite
    assert artifact_id == in_row_artifact_id("function_invocation", seq, "run_1", "a", 0)


def test_a_connection_knows_when_it_is_in_a_pipeline(pg: PostgresStore) -> None:
    with pg.db.lock:
        conn = pg.db.conn
        assert not conn.pipelined
        with conn.raw.pipeline():
            assert conn.pipelined
        assert not conn.pipelined


def test_steps_copied_in_that_another_store_created_first_are_planned_again(
        pg_url: str) -> None:  # noqa: F811
    from store.pg.writes import COPY_INSERTS

    many = [f"s{i}" for i in range(COPY_INSERTS + 1)]
    with PostgresStore(pg_url) as one, PostgresStore(pg_url) as two:
        one.create_run(new_run(), now=T0)
        one.load_steps("run_1")  # `one` knows the run has no steps yet
        two.apply("run_1", [ev(many[-1], S.PENDING)], now=T0 + 1)
        # `one` copies the batch in, the server refuses the duplicate, and the batch
        # is planned again from the database: the step exists, the move is illegal
        with pytest.raises(IllegalTransition, match="when state='pending'"):
            one.apply("run_1", [ev(step, S.PENDING) for step in many], now=T0 + 2)
        assert [s.step_id for s in one.load_steps("run_1")] == [many[-1]]
        one.apply("run_1", [ev(step, S.PENDING) for step in many[:-1]], now=T0 + 3)
        assert len(two.load_steps("run_1")) == len(many)


def test_a_step_moved_by_another_store_is_planned_again(pg_url: str) -> None:  # noqa: F811
    with PostgresStore(pg_url) as one, PostgresStore(pg_url) as two:
        one.create_run(new_run(), now=T0)
        one.apply("run_1", [ev("a", S.PENDING)], now=T0)
        two.apply("run_1", lifecycle("a")[1:], now=T0 + 1)
        with pytest.raises(IllegalTransition, match="completed"):
            one.apply("run_1", [ev("a", S.QUEUED), ev("b", S.PENDING)], now=T0 + 2)
        assert [(s.step_id, s.status) for s in one.load_steps("run_1")] == [("a", S.COMPLETED)]
        one.apply("run_1", [ev("b", S.PENDING)], now=T0 + 3)
        with pytest.raises(IllegalTransition, match="'b' to 'pending' when state='pending'"):
            two.apply("run_1", [ev("b", S.PENDING)], now=T0 + 4)  # created by `one` first
        assert len(two.load_steps("run_1")) == 2

