"""Database URLs: the one place a ``--db`` value becomes a store.

A database is named the same way everywhere (``--db``, ``$STEPWELL_DB``,
``Engine(db)``, ``Client(db)``, ``create_app(db)``, the pytest plugin):

=====================================  =============================================
``stepwell.db``, ``./runs/x.db``        a SQLite file (created with its folder)
``sqlite:///x.db``, ``sqlite:////abs``  the same, as a URL (SQLAlchemy's form)
``:memory:``, ``sqlite://``             an in-memory SQLite database
``postgresql://user:pw@host:5432/db``   a PostgreSQL database (``postgres://`` and
                                        ``postgresql+psycopg://`` too); libpq query
                                        parameters pass through (``?sslmode=...``,
                                        ``?options=-csearch_path%3Dstepwell``)
=====================================  =============================================

Anything else of the form ``scheme://...`` is refused with a
:class:`~engine.contracts.errors.UsageError`: a mistyped URL must never become a folder
named ``postgresq:``. So is ``word:...`` without the slashes (``postgresql:foo``,
``file:x.db``; a one-letter Windows drive ``C:`` is a path): write ``./postgresql:foo`` for
a file literally named so. A PostgreSQL port that is not a number from 1 to 65535 is
refused too. :func:`parse_db` only parses (no I/O, no driver import);
:func:`open_store` opens the store the URL names.
"""

from __future__ import annotations

import os
import re
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from engine.contracts.errors import UsageError
from engine.contracts.frozen import record

if TYPE_CHECKING:
    from engine.contracts.store import Store

#: The database used when neither ``--db`` nor ``$STEPWELL_DB`` names one.
DEFAULT_DB = "stepwell.db"
#: The environment variable that names the database.
DB_ENV = "STEPWELL_DB"

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
#: ``word:...`` without ``//``: a URL missing its slashes (``postgresql:foo``) or a
#: ``file:`` URI, never taken as a file name (a Windows drive letter ``C:`` is one letter).
_BARE_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")
_POSTGRES_SCHEMES = frozenset({"postgresql", "postgres", "postgresql+psycopg",
                               "postgresql+psycopg2", "postgres+psycopg"})


class Backend(StrEnum):
    """Which kind of database a URL names."""

    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


@record
class DatabaseURL:
    """A parsed ``--db`` value.

    Attributes:
        backend: SQLite or PostgreSQL.
        target: the SQLite file path (``:memory:`` for an in-memory database), or the
            PostgreSQL connection URL in libpq form (``postgresql://...``).
    """

    backend: Backend
    target: str

    @property
    def in_memory(self) -> bool:
        """True for an in-memory SQLite database."""
        return self.backend is Backend.SQLITE and self.target == ":memory:"

    @property
    def is_file(self) -> bool:
        """True for a SQLite database file."""
        return self.backend is Backend.SQLITE and not self.in_memory

    def display(self) -> str:
        """The URL for messages: a PostgreSQL password is replaced by ``***``."""
        if self.backend is Backend.SQLITE:
            return self.target
        return redact(self.target)


def redact(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def default_db(env: Any = None) -> str:
    """``$STEPWELL_DB`` when set, else ``stepwell.db``."""
    return (env if env is not None else os.environ).get(DB_ENV) or DEFAULT_DB


def parse_db(db: str | os.PathLike[str] | None, env: Any = None) -> DatabaseURL:
    """Parse a ``--db`` value (None: :func:`default_db`).

    Args:
        db: a path, a ``sqlite://`` URL or a ``postgresql://`` URL.
        env: where ``STEPWELL_DB`` is read (default ``os.environ``).

    Returns:
        The :class:`DatabaseURL`.

    Raises:
        UsageError: a URL whose scheme is neither ``sqlite`` nor ``postgresql``, or a
            PostgreSQL URL without a host or database name.
    """
    text = default_db(env) if db is None else os.fspath(db)
    if text in (":memory:", "sqlite://", "sqlite:///:memory:"):
        return DatabaseURL(backend=Backend.SQLITE, target=":memory:")
    match = _SCHEME.match(text)
    if match is None:
        _refuse_bare_scheme(text)
        return DatabaseURL(backend=Backend.SQLITE, target=text)
    scheme = match.group(1).lower()
    if scheme == "sqlite":
        path = text[len("sqlite:///"):] if text.startswith("sqlite:///") else ""
        if not path:
            raise UsageError(f"{text!r} names no SQLite file. Write sqlite:///PATH "
                             "(relative) or sqlite:////ABSOLUTE/PATH.")
        return DatabaseURL(backend=Backend.SQLITE, target=path)
    if scheme in _POSTGRES_SCHEMES:
        return DatabaseURL(backend=Backend.POSTGRESQL, target=_postgres_target(text, scheme))
    raise UsageError(
        f"--db {redact(text)!r} has the unknown scheme {scheme!r}. Use a SQLite file path "
        "(stepwell.db, sqlite:///PATH) or a PostgreSQL URL "
        "(postgresql://USER:PASSWORD@HOST:5432/DATABASE).")


def _refuse_bare_scheme(text: str) -> None:
    """Refuse ``scheme:rest`` (no ``//``): an unknown scheme is an error, never a file name."""
    bare = _BARE_SCHEME.match(text)
    if bare is None:
        return
    scheme = bare.group(1)
    raise UsageError(
        f"--db {redact(text)!r} starts with {scheme + ':'!r}, which looks like a URL scheme, "
        "not a file name. Write a PostgreSQL database as "
        "postgresql://USER:PASSWORD@HOST:5432/DATABASE, a SQLite file as sqlite:///PATH, or "
        f"a file literally named so as ./{text}.")


def _postgres_target(text: str, scheme: str) -> str:
    url = "postgresql://" + text[len(scheme) + 3:]
    parts = urlsplit(url)
    hosts = parts.netloc.rsplit("@", 1)[-1]
    try:
        # a libpq multi-host list (h1:5432,h2:5433) is left to libpq
        bad = "," not in hosts and parts.port == 0
    except ValueError:
        bad = True
    if bad:
        port = hosts.rpartition(":")[2]
        raise UsageError(f"{redact(text)!r} has the port {port!r}, which is not a number "
                         "from 1 to 65535. Write postgresql://USER:PASSWORD@HOST:5432/DATABASE "
                         "(or leave the port out for 5432).") from None
    if not parts.path.strip("/"):
        raise UsageError(f"{redact(text)!r} names no database. Write "
                         "postgresql://USER:PASSWORD@HOST:5432/DATABASE.")
    return url


def open_store(db: str | os.PathLike[str] | DatabaseURL | None, *,
               durability: str = "process", env: Any = None) -> Store:
    """Open the store a ``--db`` value names.

    Args:
        db: a path or URL (see the module docstring), or a parsed :class:`DatabaseURL`.
        durability: ``process`` (survives a crash of this process), ``full`` (also
            survives power loss / a database server crash) or ``scratch`` (survives a
            crash of this process; no fsync, for a database thrown away afterwards).
        env: where ``STEPWELL_DB`` is read when ``db`` is None.

    Returns:
        A :class:`~store.sqlite.SQLiteStore` or :class:`~store.pg.PostgresStore`.

    Raises:
        UsageError: an unknown scheme.
        StorageError: the database cannot be opened, or holds another schema version
            or another application's tables; the message says what to do.
    """
    url = db if isinstance(db, DatabaseURL) else parse_db(db, env)
    if url.backend is Backend.POSTGRESQL:
        try:
            from store.pg import PostgresStore
        except ImportError:
            raise UsageError("A postgresql:// database needs psycopg: "
                             "pip install 'stepwell[postgres]'.") from None
        return PostgresStore(url.target, durability=durability)
    from store.sqlite import SQLiteStore

    return SQLiteStore(url.target, durability=durability)
