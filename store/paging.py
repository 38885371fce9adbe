"""Keyset pagination for the read API's lists.

Lists are keyset-paginated: steps on their per-run creation ``seq``, runs on
``(created_at, id)`` newest first. Cursors are the id of the boundary row.
:func:`_keyset` fetches one page past (or before) a key and probes for rows on either
side; :func:`_page` turns the boundary ids into ``list_metadata`` cursors.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, TypeVar

from engine.contracts.errors import UsageError
from store.shapes import ListMetadata, Page

T = TypeVar("T")


def _check_page(limit: int, after: str | None, before: str | None) -> None:
    if not 1 <= limit <= 1000:
        raise UsageError(f"limit must be between 1 and 1000 (got {limit}).")
    if after is not None and before is not None:
        raise UsageError("Pass either after= or before=, not both.")


def _add_in(where: list[str], params: list[Any], column: str, values: list[str] | None) -> None:
    if not values:
        return
    if len(values) == 1:
        where.append(f"{column} = ?")
    else:
        where.append(f"{column} IN ({','.join('?' * len(values))})")
    params.extend(values)


def _keyset(
    conn: sqlite3.Connection, table: str, columns: Sequence[str], where: list[str],
    params: list[Any], key_cols: tuple[str, ...], key: tuple[Any, ...] | None, *,
    forward: bool, limit: int, descending: bool,
) -> tuple[list[dict[str, Any]], bool, bool]:
    """Fetch one page past ``key`` in list order (or before it when not ``forward``).

    Returns the rows in list order and whether rows exist before and after the page.
    """
    # "Later in list order" is ">" ascending, "<" descending.
    later, earlier = (">", "<") if not descending else ("<", ">")
    direction = "ASC" if forward != descending else "DESC"
    key_sql = "(" + ", ".join(key_cols) + ")"
    clauses = list(where)
    if key is not None:
        clauses.append(f"{key_sql} {later if forward else earlier} {_marks(key)}")
    order = ", ".join(f"{c} {direction}" for c in key_cols)
    select = ", ".join(f'"{c}"' for c in columns)
    sql = f"SELECT {select} FROM {table} WHERE {' AND '.join(clauses)} ORDER BY {order} LIMIT ?"
    found = conn.execute(sql, (*params, *(key or ()), limit + 1)).fetchall()
    extra = len(found) > limit
    rows = [dict(zip(columns, r, strict=True)) for r in found[:limit]]
    if not forward:
        rows.reverse()
    if not rows:
        return rows, False, False
    first = tuple(rows[0][c] for c in key_cols)
    last = tuple(rows[-1][c] for c in key_cols)
    probe = f"SELECT 1 FROM {table} WHERE {' AND '.join(where)} AND {key_sql} "
    tail = f" {_marks(first)} LIMIT 1"
    if forward:
        before = conn.execute(probe + earlier + tail, (*params, *first)).fetchone() is not None
        return rows, before, extra
    after = conn.execute(probe + later + tail, (*params, *last)).fetchone() is not None
    return rows, extra, after


def _marks(key: tuple[Any, ...]) -> str:
    return "(" + ", ".join("?" * len(key)) + ")"


def _page(data: list[T], ids: list[str], more_before: bool, more_after: bool) -> Page[T]:
    meta = ListMetadata(
        before=ids[0] if ids and more_before else None,
        after=ids[-1] if ids and more_after else None,
    )
    return Page[Any](data=data, list_metadata=meta)
