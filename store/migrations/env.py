"""Alembic's entry point: migrate the connection :func:`store.migrate.upgrade` passes."""

from __future__ import annotations

from alembic import context

from store.schema import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
