"""Schema versions: which database layout this stepwell reads, and what to say otherwise.

Every stepwell database records the Alembic revision of its layout in the table
:data:`VERSION_TABLE` (SQLite also keeps the layout number in ``PRAGMA user_version``,
the cheap check on open). Opening a database compares that revision with
:data:`HEAD_REVISION`:

- an empty database gets the current layout at once (no migration runs);
- the same revision: open;
- an older one: refused with :func:`older_schema`, which says to run
  ``stepwell db upgrade`` (:mod:`store.migrate`);
- a newer one (a later stepwell wrote it): refused with :func:`newer_schema`;
- tables but no stepwell layout (another application's database): refused with
  :func:`foreign_database`.

Nothing is written before the check passes, so a refused database is left as it was.
The migrations themselves are in ``store/migrations/versions`` (one file per revision,
named by :data:`REVISIONS`).
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.contracts.errors import StorageError

#: Every revision, oldest first; the last is the layout this code reads and writes.
REVISIONS: tuple[str, ...] = ("0003", "0004", "0005", "0006", "0007", "0008")
#: The revision of the current layout.
HEAD_REVISION = REVISIONS[-1]
#: The layout number of the head revision (SQLite's ``PRAGMA user_version``).
HEAD_LAYOUT = int(HEAD_REVISION)
#: The table that holds the revision (Alembic's version table, renamed so that an
#: application sharing the database with its own Alembic history keeps its own).
VERSION_TABLE = "stepwell_version"


def layout_revision(user_version: int) -> str | None:
    """The revision of a SQLite layout number (None for 0 or an unknown number)."""
    text = f"{user_version:04d}"
    return text if text in REVISIONS else None


def check_revision(found: str, where: str) -> None:
    """Refuse a database whose revision is not :data:`HEAD_REVISION`.

    Args:
        found: the revision recorded in the database.
        where: the database as messages name it (file path or redacted URL).

    Raises:
        StorageError: an older revision (upgrade it), a newer one (upgrade stepwell)
            or one stepwell never wrote.
    """
    if found == HEAD_REVISION:
        return
    if found in REVISIONS:
        raise older_schema(where, found)
    if found.isdigit() and int(found) > HEAD_LAYOUT:
        raise newer_schema(where, found)
    raise StorageError(
        f"{where} records schema revision {found!r}, which no stepwell wrote. Point --db "
        "(or STEPWELL_DB) at a stepwell database, or at an empty one.")


def older_schema(where: str, found: str) -> StorageError:
    """The error for a database written with an older layout."""
    return StorageError(
        f"{where} has stepwell schema {found}; this stepwell needs {HEAD_REVISION}. Back it "
        f"up, then run `stepwell db upgrade --db {where}`.")


def newer_schema(where: str, found: str) -> StorageError:
    """The error for a database a later stepwell wrote."""
    return StorageError(
        f"{where} was written by a newer stepwell (schema {found}; this one reads "
        f"{HEAD_REVISION}). Upgrade stepwell (pip install -U stepwell), or point --db at "
        "another database.")


def foreign_database(where: str, tables: Iterable[str]) -> StorageError:
    """The error for a database that holds another application's tables."""
    names = sorted(tables)
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return StorageError(
        f"{where} is not a stepwell database: it holds other tables ({shown}). Point --db "
        "at an empty database (on PostgreSQL, or at a schema of its own: "
        "?options=-csearch_path%3Dstepwell).")
