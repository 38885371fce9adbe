"""Opening a database file: a new one starts laid out, in WAL mode, owner-only."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from pathlib import Path

from store.connection import open_database
from store.layout import SCHEMA_VERSION
from store.schema import VERSION_TABLE


def _schema(path: Path) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    finally:
        conn.close()


def test_a_new_file_starts_laid_out_in_wal_mode_for_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "new.db"
    db = open_database(str(path))
    try:
        conn = db.conn
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert conn.execute(f"SELECT count(*) FROM {VERSION_TABLE}").fetchone() == (1,)
        db.execute("INSERT INTO definitions (id, definition, created_at) VALUES ('d', '{}', 1)")
    finally:
        db.conn.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["new.db"]  # nothing aside
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT id FROM definitions").fetchall() == [("d",)]
    conn.close()


def test_the_laid_out_file_is_the_layout_the_statements_create(tmp_path: Path) -> None:
    full = open_database(str(tmp_path / "full.db"), synchronous="FULL")  # no image
    normal = open_database(str(tmp_path / "normal.db"))
    full.conn.close()
    normal.conn.close()
    assert _schema(tmp_path / "normal.db") == _schema(tmp_path / "full.db")


def test_threads_opening_one_new_file_at_once_share_one_layout(tmp_path: Path) -> None:
    path = tmp_path / "race.db"
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_it() -> None:
        start.wait()
        try:
            open_database(str(path)).conn.close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    conn = sqlite3.connect(path)
    assert conn.execute(f"SELECT count(*) FROM {VERSION_TABLE}").fetchone() == (1,)
    conn.close()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".new")] == []
