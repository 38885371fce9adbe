"""The SQL layout executed on open is exactly what the SQLModel tables declare."""

from __future__ import annotations

import subprocess
import sys

from store.layout import DDL, render_ddl


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
