"""The PostgreSQL layout stepwell creates is what the models say (no ORM on the open path,
so the rendered DDL is pasted into :mod:`store.pg.layout`; this keeps the two equal)."""

from __future__ import annotations

from store.pg.layout import PG_DDL, PG_TABLE_NAMES, render_pg_ddl


def test_the_pasted_ddl_is_what_the_models_render() -> None:
    rendered = render_pg_ddl()
    assert PG_DDL == rendered, ("store/pg/layout.py is stale: run `python -m store.pg.layout` "
                                "and paste what it prints over PG_DDL")


def test_every_table_is_named() -> None:
    assert len(PG_TABLE_NAMES) == len(set(PG_TABLE_NAMES))
    assert {"runs", "steps", "artifacts", "reviews", "files", "blobs"} <= set(PG_TABLE_NAMES)
