"""The SQL layout executed on open is exactly what the SQLModel tables declare."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from store.layout import DDL, EXCEPTIONAL_STATUSES_SQL, render_ddl
from store.sqlite import SQLiteStore


def test_ddl_matches_the_models() -> None:
    assert render_ddl() == DDL, (
        "store/layout.py is out of date with store/models.py: run `python -m store.layout` "
        "and paste its output over DDL")


def test_opening_a_database_does_not_import_the_orm(tmp_path: object) -> None:
    code = (
        "import sys; from store.sqlite import SQLiteStore; "
        f"SQLiteStore(r'{tmp_path}/x.db').close(); "
        "print(sorted(m for m in ('sqlalchemy', 'sqlmodel') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_moving_a_step_builds_no_temporary_btree(tmp_path: Path) -> None:
    """Every status change checks the partial index's condition for the old and the new
    row; an IN list there would fill two temporary b-trees per statement (layout 7)."""
    store = SQLiteStore(str(tmp_path / "x.db"))
    try:
        program = store.db.conn.execute(
            "EXPLAIN UPDATE steps SET status = ?1 WHERE seq = ?2", ("error", 1)).fetchall()
    finally:
        store.close()
    opcodes = [row[1] for row in program]
    assert "OpenEphemeral" not in opcodes, opcodes
    assert "IdxInsert" in opcodes  # the partial index is still maintained


def test_queries_for_exceptional_steps_use_the_partial_index(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "x.db"))
    try:
        plan = store.db.conn.execute(
            "EXPLAIN QUERY PLAN SELECT seq FROM steps WHERE run_id = ? AND "
            f"{EXCEPTIONAL_STATUSES_SQL} ORDER BY seq", ("run_x",)).fetchall()
    finally:
        store.close()
    assert "ix_steps_run_exceptional" in " ".join(str(row[-1]) for row in plan)
