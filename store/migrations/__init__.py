"""Alembic migrations of the stepwell layout, for SQLite and PostgreSQL alike.

One linear history (``versions/``, revisions named by :data:`store.schema.REVISIONS`);
:func:`store.migrate.upgrade` (``stepwell db upgrade``) runs it on a connection it
opens, so there is no ``alembic.ini``. A migration that differs by backend asks
``op.get_bind().dialect.name``.
"""
