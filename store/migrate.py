"""``stepwell db upgrade``: bring a database to the layout this stepwell reads.

:func:`upgrade` opens the database with SQLAlchemy, finds its revision (the version
table; for a SQLite file from before revisions were recorded, ``PRAGMA user_version``,
which it stamps) and runs the Alembic migrations from there to the head
(:mod:`store.migrations`), all in one transaction: a migration that fails leaves the
database as it was (SQLite and PostgreSQL both roll back schema changes). An empty
database gets every migration from the first. A newer database (a later stepwell) or
another application's is refused, unchanged.

:func:`status` only reads. Neither is on the path of opening a store: a store refuses a
database that is not at the head revision (:mod:`store.schema`) and names this command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.contracts.errors import StorageError
from engine.contracts.frozen import record
from store.connection import mismatched_revisions
from store.schema import (
    HEAD_REVISION,
    REVISIONS,
    VERSION_TABLE,
    foreign_database,
    layout_revision,
    newer_schema,
)
from store.urls import Backend, DatabaseURL, parse_db

MIGRATIONS = Path(__file__).parent / "migrations"


@record
class SchemaStatus:
    """Where a database stands.

    Attributes:
        database: the database as messages name it (password hidden).
        revision: its revision; None for an empty database.
        head: the revision this stepwell reads and writes.
    """

    database: str
    revision: str | None
    head: str = HEAD_REVISION

    @property
    def current(self) -> bool:
        """True when the database is at the head revision."""
        return self.revision == self.head

    @property
    def state(self) -> str:
        """``current``, ``empty``, ``older`` (``stepwell db upgrade`` migrates it),
        ``newer`` (a later stepwell wrote it) or ``unknown`` (no stepwell wrote it)."""
        if self.revision is None:
            return "empty"
        if self.current:
            return "current"
        if self.revision in REVISIONS:
            return "older"
        newer = self.revision.isdigit() and int(self.revision) > int(self.head)
        return "newer" if newer else "unknown"


def status(db: str | DatabaseURL | None) -> SchemaStatus:
    """The revision of a database, without changing it (a missing SQLite file is not
    created).

    Raises:
        StorageError: no database at that path, the database cannot be opened, holds
            another application's tables, or its two SQLite revision markers disagree.
    """
    url = db if isinstance(db, DatabaseURL) else parse_db(db)
    if url.is_file and not Path(url.target).is_file():
        raise StorageError(f"No stepwell database at {url.display()}: nothing to report. "
                           "Point --db (or $STEPWELL_DB) at an existing database; "
                           "`stepwell db upgrade` creates one there.")
    with _connection(url) as conn:
        revision = _revision(conn, url)
        if url.backend is Backend.SQLITE and revision is not None:
            version = conn.exec_driver_sql("PRAGMA user_version").scalar() or 0
            if f"{version:04d}" != revision:
                raise mismatched_revisions(url.display(), revision, version)
        return SchemaStatus(database=url.display(), revision=revision)


def upgrade(db: str | DatabaseURL | None) -> tuple[SchemaStatus, SchemaStatus]:
    """Migrate a database to the head revision, in one transaction.

    Returns:
        The status before and after.

    Raises:
        StorageError: the database cannot be opened, is newer than this stepwell, holds
            another application's tables, or a migration failed (nothing was changed).
    """
    from alembic import command
    from alembic.config import Config

    url = db if isinstance(db, DatabaseURL) else parse_db(db)
    where = url.display()
    with _connection(url) as conn:
        before = _revision(conn, url)
        if before is not None and before not in REVISIONS:
            raise newer_schema(where, before)
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        try:
            if before is not None and not _stamped(conn):
                command.stamp(config, before)
            command.upgrade(config, "head")
            if url.backend is Backend.SQLITE:  # the version table counts: align the copy
                conn.exec_driver_sql(f"PRAGMA user_version = {int(HEAD_REVISION)}")
        except Exception as exc:  # a failed migration is reported; nothing was changed
            raise StorageError(f"upgrading {where} failed ({exc}); nothing was changed. "
                               "Check the database, then run `stepwell db upgrade` again."
                               ) from exc
    return (SchemaStatus(database=where, revision=before),
            SchemaStatus(database=where, revision=HEAD_REVISION))


class _connection:  # used as a context manager, like a function
    """An SQLAlchemy connection in one transaction (committed on success)."""

    def __init__(self, url: DatabaseURL) -> None:
        if url.in_memory:
            raise StorageError("An in-memory database has no schema to upgrade; pass --db.")
        self.url = url
        self._engine: Any = None
        self._tx: Any = None

    def __enter__(self) -> Any:
        from sqlalchemy import create_engine
        from sqlalchemy.exc import SQLAlchemyError

        target = self.url.target
        if self.url.backend is Backend.POSTGRESQL:
            address = "postgresql+psycopg://" + target.removeprefix("postgresql://")
        else:
            address = "sqlite:///" + target
        try:
            self._engine = create_engine(address)
            if self.url.backend is Backend.SQLITE:
                _transactional_ddl(self._engine)
            self._tx = self._engine.begin()
            return self._tx.__enter__()
        except SQLAlchemyError as exc:
            raise _error(self.url, exc) from exc

    def __exit__(self, *exc: object) -> None:
        try:
            self._tx.__exit__(*exc)
        finally:
            self._engine.dispose()


def _transactional_ddl(engine: Any) -> None:
    """Make pysqlite run schema changes inside the transaction (it commits them at once
    by default), so a failed migration rolls back."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _error(url: DatabaseURL, exc: BaseException) -> StorageError:
    cause = getattr(exc, "orig", None) or exc
    if url.backend is Backend.POSTGRESQL:
        from store.pg.connection import pg_storage_error

        return pg_storage_error(url.target, "connecting", cause)
    return StorageError(f"cannot open {url.display()} ({cause}): check the --db path.")


def _stamped(conn: Any) -> bool:
    """True when the version table exists and holds a revision."""
    from sqlalchemy import inspect, text

    if not inspect(conn).has_table(VERSION_TABLE):
        return False
    return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).first() is not None


def _revision(conn: Any, url: DatabaseURL) -> str | None:
    """The database's revision (None when empty).

    Raises:
        StorageError: tables but no stepwell layout.
    """
    from sqlalchemy import inspect, text

    tables = set(inspect(conn).get_table_names())
    if VERSION_TABLE in tables:
        row = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).first()
        if row is not None:
            return str(row[0])
    if url.backend is Backend.SQLITE:
        legacy = layout_revision(conn.exec_driver_sql("PRAGMA user_version").scalar() or 0)
        if legacy is not None and "runs" in tables:
            return legacy
    if tables:
        raise foreign_database(url.display(), tables)
    return None
