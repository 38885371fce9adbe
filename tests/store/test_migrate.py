"""Schema revisions and ``stepwell db upgrade`` on both backends.

A database of an older layout is refused until it is upgraded, and keeps its runs
through the upgrade; every migration from the first one builds the same layout a new
database gets at once; a newer or foreign database is refused unchanged.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.contracts.artifacts import artifact_id
from engine.contracts.errors import StorageError
from store import migrate
from store.migrate import MIGRATIONS
from store.schema import HEAD_LAYOUT, HEAD_REVISION, REVISIONS, VERSION_TABLE
from store.sqlite import SQLiteStore
from tests.postgres import pg_url  # noqa: F401 - a fixture
from tests.store.helpers import T0, S, error_info, ev, lifecycle, new_run


def _baseline() -> Any:
    """The first migration (its frozen layout-3 statements)."""
    path = next((MIGRATIONS / "versions").glob("r0003_*.py"))
    spec = importlib.util.spec_from_file_location("baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_layout_number_and_the_revisions_agree() -> None:
    from store.layout import SCHEMA_VERSION

    assert HEAD_LAYOUT == SCHEMA_VERSION, (
        "store/layout.py SCHEMA_VERSION changed: add a migration under "
        "store/migrations/versions and its revision to store.schema.REVISIONS")
    files = sorted(p.name[1:5] for p in (MIGRATIONS / "versions").glob("r0*.py"))
    assert tuple(files) == REVISIONS


# ------------------------------------------------------------------ SQLite


def _layout_3_sqlite(path: Path) -> None:
    """A database as stepwell wrote it before revisions were recorded, with one run."""
    base = _baseline()
    conn = sqlite3.connect(path)
    for statement in (*base.SQLITE_DDL, base.SQLITE_VIEW):
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 3")
    conn.execute(
        "INSERT INTO runs (id, workflow_id, workflow_name, workflow_digest, definition_id, "
        "inputs, metadata, organization_id, \"trigger\", status, cancel_requested, "
        "created_at, updated_at) VALUES ('run_old', 'wf', 'Old', 'sha', '', '{}', '{}', "
        "'org_local', 'manual', 'completed', 0, ?, ?)", (T0, T0))
    conn.commit()
    conn.close()


@pytest.mark.parametrize(("revision", "state"), [
    (None, "empty"), (HEAD_REVISION, "current"), ("0003", "older"), ("0099", "newer"),
    ("nonsense", "unknown"), ("0001", "unknown"),
])
def test_a_status_names_where_the_database_stands(revision: str | None, state: str) -> None:
    assert migrate.SchemaStatus(database="x", revision=revision).state == state


def test_an_older_sqlite_database_is_refused_until_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _layout_3_sqlite(path)
    with pytest.raises(StorageError, match="schema 0003.*stepwell db upgrade"):
        SQLiteStore(path)
    assert migrate.status(str(path)).revision == "0003"
    before, after = migrate.upgrade(str(path))
    assert (before.revision, after.revision) == ("0003", HEAD_REVISION)
    with SQLiteStore(path) as store:
        assert store.read_run("run_old").workflow_name == "Old"
        store.create_run(new_run(), now=T0)
        assert store.load_run("run_1").owner_host is not None
    assert migrate.upgrade(str(path))[0].revision == HEAD_REVISION  # a no-op now


def test_artifacts_of_an_upgraded_database_keep_their_ids_and_new_ones_go_in_the_row(
        tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _layout_3_sqlite(path)
    old_id = artifact_id("function_invocation", "run_old", "f", 0)
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO steps (run_id, step_id, block_id, block_type, label, status, scope, "
        "retry_count, artifact_id, artifact_operation, created_at, updated_at) VALUES "
        "('run_old', 'f', 'f', 'function', 'F', 'completed', '[]', 0, ?, "
        "'function_invocation', ?, ?)", (old_id, T0, T0))
    conn.execute("INSERT INTO artifacts VALUES (?, 'run_old', 'f', 'function_invocation', "
                 "'{\"operation\":\"function_invocation\",\"output\":1}', ?)", (old_id, T0))
    conn.commit()
    conn.close()
    migrate.upgrade(str(path))
    with SQLiteStore(path) as store:
        assert store.read_artifact(old_id).record == {"operation": "function_invocation",
                                                      "output": 1}
        store.create_run(new_run(), now=T0)
        store.apply("run_1", lifecycle("a")[:3] + [
            ev("a", S.COMPLETED, artifact={"operation": "extraction", "output": 2})], now=T0)
        new_id = store.reader().get_step("a").artifact
        assert new_id is not None and new_id.id.startswith("extr_")
        assert store.read_artifact(new_id.id).record["output"] == 2


def _sqlite_shape(path: Path) -> dict[str, Any]:
    conn = sqlite3.connect(path)
    try:
        names = conn.execute("SELECT type, name FROM sqlite_master "
                             "WHERE name NOT LIKE 'sqlite_%'").fetchall()
        columns = {table: sorted((r[1], r[2], r[3]) for r in
                                 conn.execute(f"PRAGMA table_info('{table}')"))
                   for kind, table in names if kind == "table"}
        indexes = dict(conn.execute("SELECT name, sql FROM sqlite_master "
                                    "WHERE type = 'index' AND sql IS NOT NULL"))
        views = dict(conn.execute("SELECT name, trim(sql) FROM sqlite_master "
                                  "WHERE type = 'view'"))
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        stamped = conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall()
    finally:
        conn.close()
    return {"names": sorted(names), "columns": columns, "indexes": indexes, "views": views,
            "version": version, "stamped": stamped}


def test_sqlite_migrations_build_the_layout_of_a_new_database(tmp_path: Path) -> None:
    migrated, fresh = tmp_path / "migrated.db", tmp_path / "fresh.db"
    migrate.upgrade(str(migrated))  # every migration, from an empty file
    SQLiteStore(migrated).close()   # opening adds tables without a revision of their own
    SQLiteStore(fresh).close()
    assert _sqlite_shape(migrated) == _sqlite_shape(fresh)


def _downgrade(address: str, revision: str) -> None:
    """Migrate the database at SQLAlchemy ``address`` down to ``revision``."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    engine = create_engine(address)
    try:
        with engine.begin() as conn:
            config = Config()
            config.set_main_option("script_location", str(migrate.MIGRATIONS))
            config.attributes["connection"] = conn
            command.downgrade(config, revision)
    finally:
        engine.dispose()


def test_layout_7_downgrades_to_the_in_list_and_upgrades_back(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    SQLiteStore(path).close()
    _downgrade(f"sqlite:///{path}", "0006")
    conn6 = sqlite3.connect(path)
    try:
        sql = conn6.execute("SELECT sql FROM sqlite_master "
                            "WHERE name = 'ix_steps_run_exceptional'").fetchone()[0]
        assert sql.endswith("WHERE status IN ('error', 'skipped', 'cancelled', "
                            "'awaiting_review')")
        assert conn6.execute("PRAGMA user_version").fetchone()[0] == 6
    finally:
        conn6.close()
    migrate.upgrade(str(path))
    fresh = tmp_path / "fresh.db"
    SQLiteStore(fresh).close()
    assert _sqlite_shape(path) == _sqlite_shape(fresh)


# Layout 8: the compact transitions and artifact records, both ways. Times that are no
# round number, so that a time read from the wrong column, or rounded, shows.
_TIMES = [T0 + i + 0.1234567 * (i + 1) for i in range(6)]
_ARTIFACTS: dict[str, dict[str, Any]] = {
    "a": {"operation": "function_invocation", "inputs": {"n": 1}, "error": None},
    "b": {"output": 2, "operation": "extraction"},      # its operation is not first
    "c": {"operation": "classification"},               # the operation alone
}


def _write_steps_of_every_kind(store: Any) -> None:
    """A run whose steps cover each compact form: a lifecycle in one batch with an
    artifact (a), a start in a later batch and a retry with an error (b), a review (c),
    a skip with a reason (d)."""
    t = _TIMES
    store.create_run(new_run(), now=t[0])
    store.apply("run_1", [ev(s, S.PENDING) for s in "abcd"], now=t[0])
    store.apply("run_1", [ev("a", S.QUEUED), ev("a", S.RUNNING),
                          ev("a", S.COMPLETED, artifact=_ARTIFACTS["a"])], now=t[1])
    store.apply("run_1", [ev("b", S.QUEUED)], now=t[1])
    store.apply("run_1", [ev("b", S.RUNNING)], now=t[2])
    store.apply("run_1", [ev("b", S.QUEUED, retry_count=1, error=error_info("flaky"))],
                now=t[3])
    store.apply("run_1", [ev("b", S.RUNNING, retry_count=1),
                          ev("b", S.COMPLETED, retry_count=1, artifact=_ARTIFACTS["b"])],
                now=t[4])
    store.apply("run_1", [ev("c", S.QUEUED), ev("c", S.RUNNING),
                          ev("c", S.AWAITING_REVIEW, outputs={}, artifact=_ARTIFACTS["c"])],
                now=t[2])
    store.apply("run_1", [ev("d", S.SKIPPED, reason="branch_not_selected: x")], now=t[5])


def _layout_7_rows() -> dict[str, tuple[str, str | None]]:
    """Step id -> (trail, artifact) as a layout-7 stepwell wrote them for that run."""
    from store.codec import dumps, encode
    from store.stepdata import error_json

    t = _TIMES

    def move(status: str, at: float, retry: int = 0, detail: str = "null") -> str:
        return f'["{status}",{at!r},{retry},{detail}]'

    flaky = '{"error":' + dumps(error_json(error_info("flaky"), "b", "B"), "error", "b") + "}"
    return {
        "a": (",".join([move("pending", t[0]), move("queued", t[1]), move("running", t[1]),
                        move("completed", t[1])]), encode(_ARTIFACTS["a"])),
        "b": (",".join([move("pending", t[0]), move("queued", t[1]), move("running", t[2]),
                        move("queued", t[3], 1, flaky), move("running", t[4], 1),
                        move("completed", t[4], 1)]), encode(_ARTIFACTS["b"])),
        "c": (",".join([move("pending", t[0]), move("queued", t[2]), move("running", t[2]),
                        move("awaiting_review", t[2])]), encode(_ARTIFACTS["c"])),
        "d": (",".join([move("pending", t[0]), move("skipped", t[5], 0,
                                                    encode({"reason": "branch_not_selected: x"}))]),
              None),
    }


def _everything_read(store: Any) -> dict[str, Any]:
    """What readers get of that run: transitions, steps, artifacts (as JSON text, so
    that member order counts)."""
    reader = store.reader()
    artifacts = {step_id: json.dumps(reader.get_artifact(str(
        store.read_step(step_id, run_id="run_1").artifact_id)))
        for step_id in _ARTIFACTS}
    return {"transitions": store.transitions("run_1"), "steps": store.run_steps("run_1"),
            "artifacts": artifacts}


def test_layout_8_downgrades_to_full_transitions_and_records_and_reads_them_upgraded(
        tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    with SQLiteStore(path) as store:
        _write_steps_of_every_kind(store)
        read = _everything_read(store)

    def rows() -> dict[str, tuple[str, str | None]]:
        conn = sqlite3.connect(path)
        try:
            return {r[0]: (r[1], r[2]) for r in conn.execute(
                "SELECT step_id, trail, artifact FROM steps")}
        finally:
            conn.close()

    compact = rows()
    assert compact["a"] == ('["pending"],["queued"],["running"],["completed"]',
                            '{"inputs":{"n":1},"error":null}')
    assert compact["c"][1] == "{}" and compact["b"][1] == _layout_7_rows()["b"][1]
    _downgrade(f"sqlite:///{path}", "0007")
    assert rows() == _layout_7_rows()
    conn = sqlite3.connect(path)
    try:  # the layout-7 view reads the rewritten rows as layout 8 read the compact ones
        view = conn.execute("SELECT t.step_id, t.status, t.at, t.retry_count, t.detail "
                            "FROM transitions t JOIN steps s ON s.step_id = t.step_id "
                            "ORDER BY t.at, s.seq, t.seq").fetchall()
    finally:
        conn.close()
    assert [(*v[:4], json.loads(v[4]) if v[4] else None) for v in view] == [
        tuple(t.values()) for t in read["transitions"]]
    with pytest.raises(StorageError, match="schema 0007.*stepwell db upgrade"):
        SQLiteStore(path)  # as a database the previous stepwell wrote
    assert migrate.upgrade(str(path))[0].revision == "0007"
    assert rows() == _layout_7_rows()  # the upgrade rewrites nothing
    with SQLiteStore(path) as store:
        assert _everything_read(store) == read
    fresh = tmp_path / "fresh.db"
    SQLiteStore(fresh).close()
    assert _sqlite_shape(path) == _sqlite_shape(fresh)


def test_a_newer_or_foreign_sqlite_database_is_left_alone(tmp_path: Path) -> None:
    newer = tmp_path / "newer.db"
    SQLiteStore(newer).close()
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version = {HEAD_LAYOUT + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StorageError, match="newer stepwell"):
        SQLiteStore(newer)
    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    for call in (SQLiteStore, lambda p: migrate.upgrade(str(p))):
        with pytest.raises(StorageError, match=r"not a stepwell database.*customers"):
            call(foreign)
    assert _sqlite_shape_names(foreign) == [("table", "customers")]


def _sqlite_shape_names(path: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT type, name FROM sqlite_master").fetchall()
    finally:
        conn.close()


def test_the_db_commands(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("stepwell")
    if not script.exists():
        pytest.skip("the stepwell console script is not installed (pip install -e .)")
    path = tmp_path / "old.db"
    _layout_3_sqlite(path)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(script), *args, "--db", str(path)], capture_output=True,
                              text=True, check=False, env={**os.environ, "COLUMNS": "300"})

    status = run("db", "status", "--json")
    assert json.loads(status.stdout)["revision"] == "0003"
    assert json.loads(status.stdout)["state"] == "older"
    assert "needs `stepwell db upgrade`" in run("db", "status").stdout
    refused = run("runs", "list")
    assert refused.returncode == 2 and "stepwell db upgrade" in refused.stderr
    upgraded = run("db", "upgrade")
    assert upgraded.returncode == 0 and f"to {HEAD_REVISION}" in upgraded.stdout
    assert run("runs", "list").returncode == 0


# ------------------------------------------------------------------ PostgreSQL


def _pg_sql(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def _pg_shape(url: str) -> dict[str, Any]:
    columns = _pg_sql(url, "SELECT table_name, column_name, data_type, is_nullable, "
                           "collation_name, column_default IS NOT NULL "
                           "FROM information_schema.columns WHERE table_schema = "
                           "current_schema() ORDER BY 1, 2")
    indexes = _pg_sql(url, "SELECT indexname, regexp_replace(indexdef, ' ON [^ ]+\\.', ' ON ')"
                           " FROM pg_indexes WHERE schemaname = current_schema() ORDER BY 1")
    functions = _pg_sql(url, "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON "
                             "n.oid = p.pronamespace WHERE n.nspname = current_schema()")
    views = _pg_sql(url, "SELECT viewname, definition FROM pg_views "
                         "WHERE schemaname = current_schema() ORDER BY 1")
    return {"columns": columns, "indexes": indexes, "functions": sorted(functions),
            "views": views,
            "stamped": _pg_sql(url, f"SELECT version_num FROM {VERSION_TABLE}")}


@pytest.fixture
def two_schemas(pg_url: str) -> Callable[[], str]:  # noqa: F811
    """A second fresh schema beside ``pg_url``'s (dropped after the test)."""
    from tests.postgres import drop, fresh_schema

    made: list[str] = []

    def another() -> str:
        schema, url = fresh_schema()
        made.append(schema)
        return url

    yield another  # type: ignore[misc]
    for schema in made:
        drop(schema)


def test_postgresql_migrations_build_the_layout_of_a_new_database(
        pg_url: str, two_schemas: Callable[[], str]) -> None:  # noqa: F811
    from store.pg import PostgresStore

    fresh = two_schemas()
    migrate.upgrade(pg_url)
    PostgresStore(pg_url).close()
    PostgresStore(fresh).close()
    assert _pg_shape(pg_url) == _pg_shape(fresh)


def test_an_older_postgresql_database_is_upgraded_in_place(pg_url: str) -> None:  # noqa: F811
    from store.pg import PostgresStore

    base = _baseline()
    for statement in (*base.POSTGRES_DDL, base.POSTGRES_VIEW):
        _pg_sql(pg_url, statement)
    _pg_sql(pg_url, f"CREATE TABLE {VERSION_TABLE} (version_num VARCHAR(32) PRIMARY KEY)")
    _pg_sql(pg_url, f"INSERT INTO {VERSION_TABLE} VALUES ('0003')")
    _pg_sql(pg_url, "INSERT INTO runs (id, workflow_id, workflow_name, workflow_digest, "
                    "definition_id, inputs, metadata, organization_id, \"trigger\", status, "
                    "cancel_requested, created_at, updated_at) VALUES ('run_old', 'wf', "
                    "'Old', 'sha', '', '{}', '{}', 'org_local', 'manual', 'completed', FALSE, "
                    "%s, %s)", (T0, T0))
    with pytest.raises(StorageError, match="stepwell db upgrade"):
        PostgresStore(pg_url)
    before, after = migrate.upgrade(pg_url)
    assert (before.revision, after.revision) == ("0003", HEAD_REVISION)
    with PostgresStore(pg_url) as store:
        assert store.read_run("run_old").workflow_name == "Old"


def test_postgresql_layout_8_downgrades_to_full_rows_and_reads_them_upgraded(
        pg_url: str, two_schemas: Callable[[], str]) -> None:  # noqa: F811
    from store.pg import PostgresStore

    with PostgresStore(pg_url) as store:
        _write_steps_of_every_kind(store)
        read = _everything_read(store)

    def rows() -> dict[str, tuple[str, str | None]]:
        return {r[0]: (r[1], r[2]) for r in _pg_sql(
            pg_url, "SELECT step_id, trail, artifact FROM steps")}

    assert rows()["a"] == ('["pending"],["queued"],["running"],["completed"]',
                           '{"inputs":{"n":1},"error":null}')
    _downgrade("postgresql+psycopg://" + pg_url.removeprefix("postgresql://"), "0007")
    assert rows() == _layout_7_rows()
    view = _pg_sql(pg_url, "SELECT t.step_id, t.status, t.at, t.retry_count, t.detail "
                           "FROM transitions t JOIN steps s ON s.step_id = t.step_id "
                           "ORDER BY t.at, s.seq, t.seq")
    assert [(*v[:4], json.loads(v[4]) if v[4] else None) for v in view] == [
        tuple(t.values()) for t in read["transitions"]]
    with pytest.raises(StorageError, match="schema 0007.*stepwell db upgrade"):
        PostgresStore(pg_url)
    assert migrate.upgrade(pg_url)[0].revision == "0007"
    assert rows() == _layout_7_rows()
    with PostgresStore(pg_url) as store:
        assert _everything_read(store) == read
    fresh = two_schemas()
    PostgresStore(fresh).close()
    assert _pg_shape(pg_url) == _pg_shape(fresh)


def test_a_newer_postgresql_database_is_not_upgraded(pg_url: str) -> None:  # noqa: F811
    from store.pg import PostgresStore

    PostgresStore(pg_url).close()
    _pg_sql(pg_url, f"UPDATE {VERSION_TABLE} SET version_num = '0099'")
    assert migrate.status(pg_url).state == "newer"
    with pytest.raises(StorageError, match="newer stepwell"):
        migrate.upgrade(pg_url)
    assert _pg_sql(pg_url, f"SELECT version_num FROM {VERSION_TABLE}") == [("0099",)]


def test_db_status_of_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("stepwell")
    if not script.exists():
        pytest.skip("the stepwell console script is not installed (pip install -e .)")
    with pytest.raises(StorageError, match="No stepwell database at"):
        migrate.status(str(tmp_path / "nonexist.db"))
    done = subprocess.run([str(script), "db", "status", "--db", "nonexist.db"],
                          capture_output=True, text=True, check=False, cwd=tmp_path,
                          env={**os.environ, "COLUMNS": "300"})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "No stepwell database at nonexist.db" in lines[0], lines
    assert list(tmp_path.iterdir()) == []


def _set_markers(path: Path, *, table: str | None = None, user_version: int | None = None
                 ) -> None:
    conn = sqlite3.connect(path)
    try:
        if table is not None:
            conn.execute(f"UPDATE {VERSION_TABLE} SET version_num = ?", (table,))
        if user_version is not None:
            conn.execute(f"PRAGMA user_version = {user_version}")
        conn.commit()
    finally:
        conn.close()


def test_disagreeing_sqlite_revision_markers_are_named_and_upgrade_aligns_them(
        tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    SQLiteStore(str(path)).close()
    _set_markers(path, user_version=HEAD_LAYOUT - 1)  # the table still says the head
    for check in (lambda: SQLiteStore(str(path)), lambda: migrate.status(str(path))):
        with pytest.raises(StorageError) as caught:
            check()
        message = str(caught.value)
        assert HEAD_REVISION in message and f"{HEAD_LAYOUT - 1:04d}" in message
        assert "stepwell db upgrade" in message and VERSION_TABLE in message
    before, after = migrate.upgrade(str(path))
    assert before.revision == after.revision == HEAD_REVISION
    assert migrate.status(str(path)).current
    SQLiteStore(str(path)).close()
