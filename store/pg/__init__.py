"""The PostgreSQL backend: the store, its file store and its run queue on psycopg 3.

Open it through :func:`store.urls.open_store` with a ``postgresql://`` URL (what
``--db`` and ``$STEPWELL_DB`` do), or directly as ``PostgresStore(url)``. Importing
``store.pg`` loads psycopg; nothing else in stepwell does until a PostgreSQL URL is used.
"""

from __future__ import annotations

from store.pg.files import PgFileStore
from store.pg.store import PostgresStore

__all__ = ["PgFileStore", "PostgresStore"]
