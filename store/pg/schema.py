"""Opening a PostgreSQL database: create the layout in an empty one, refuse any other.

:func:`open_schema` looks at the tables of the connection's current schema (the first
existing one on ``search_path``, ``public`` by default):

- the version table (:data:`store.schema.VERSION_TABLE`): its revision must be the head
  one (:func:`store.schema.check_revision`); tables the layout has and the database
  lacks (added without a new revision) are created;
- no table at all: the current layout is created (:data:`~store.pg.layout.PG_DDL`) and
  stamped with the head revision, in one transaction under an advisory lock, so that
  several workers starting at once create it once;
- other tables: another application's database, refused.
"""

from __future__ import annotations

from engine.contracts.errors import NotFoundError, StorageError
from store.pg.connection import PgConnection, PgDatabase
from store.pg.layout import PG_DDL, PG_FUNCTIONS, PG_TABLE_NAMES, PG_TRANSITIONS_VIEW
from store.schema import HEAD_REVISION, VERSION_TABLE, check_revision, foreign_database

#: Alembic's version table, under stepwell's name.
VERSION_DDL = (f"CREATE TABLE {VERSION_TABLE} (version_num VARCHAR(32) NOT NULL, "
               f"CONSTRAINT {VERSION_TABLE}_pkc PRIMARY KEY (version_num))")
#: Serializes creating the layout (any constant shared by every stepwell process).
_CREATE_LOCK = 7_325_004_218


def open_schema(db: PgDatabase, *, create: bool = True) -> None:
    """Check the database's layout, creating it in an empty database.

    Args:
        db: the connection.
        create: create the layout in an empty database (False: refuse it; readers
            never write).

    Raises:
        NotFoundError: the database is empty and ``create`` is False.
        StorageError: no schema to create tables in, another schema revision, or
            another application's tables; nothing was written.
    """
    with db.lock, db.guard("opening the database"):
        conn = db.conn
        (schema,) = conn.execute("SELECT current_schema()").fetchone() or (None,)
        if schema is None:
            raise StorageError(
                f"{db.path}: no schema on the search_path exists. Create it "
                "(CREATE SCHEMA name) or fix the search_path option of --db.")
        tables = table_names(conn)
        if VERSION_TABLE in tables:
            check_revision(stored_revision(conn), db.path)
            if create and not set(PG_TABLE_NAMES) <= tables:
                db.write(_create_missing)
            return
        if tables:
            raise foreign_database(db.path, tables)
        if not create:
            raise NotFoundError("database", db.path, "It holds no stepwell runs yet: run a "
                                "workflow on it first (`stepwell run ... --db URL`).")
        db.write(_create)


def table_names(conn: PgConnection) -> set[str]:
    """The tables of the current schema."""
    rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    return {r[0] for r in rows}


def stored_revision(conn: PgConnection) -> str:
    """The revision recorded in the version table ('' when it is empty)."""
    row = conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()
    return "" if row is None else str(row[0])


def _create(conn: PgConnection) -> None:
    conn.execute(f"SELECT pg_advisory_xact_lock({_CREATE_LOCK})")
    if VERSION_TABLE in table_names(conn):  # another process created it meanwhile
        return
    for statement in (*PG_DDL, PG_TRANSITIONS_VIEW, PG_FUNCTIONS, VERSION_DDL):
        conn.execute(statement)
    conn.execute(f"INSERT INTO {VERSION_TABLE} (version_num) VALUES (?)", (HEAD_REVISION,))


def _create_missing(conn: PgConnection) -> None:
    conn.execute(f"SELECT pg_advisory_xact_lock({_CREATE_LOCK})")
    for statement in PG_DDL:  # every statement is IF NOT EXISTS
        conn.execute(statement)
