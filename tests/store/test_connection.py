"""Opening a database file: a new one starts laid out, in WAL mode, owner-only."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from engine.contracts.errors import StorageError
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


def test_a_stale_wal_beside_a_new_path_is_not_taken_for_the_new_layout(tmp_path: Path) -> None:
    # another application's database, its last commit still in its WAL: removing the
    # file without its -wal leaves that WAL where the next database of that name goes
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("CREATE TABLE notes (body TEXT)")
    path = tmp_path / "new.db"
    shutil.copy(f"{other}-wal", f"{path}-wal")
    conn.close()
    # the new file is laid out from the image, but what SQLite reads is the stale WAL's
    # content: it is checked, not assumed, and refused
    with pytest.raises(StorageError, match="notes"):
        open_database(str(path))


def test_a_new_file_laid_out_by_another_opener_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "mine.db"
    open_database(str(path)).conn.close()
    again = open_database(str(path))  # exists: opened, asked for WAL, layout checked
    try:
        assert again.conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert again.conn.execute("PRAGMA busy_timeout").fetchone() == (30000,)
        assert again.conn.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
    finally:
        again.conn.close()
    full = open_database(str(tmp_path / "full.db"), synchronous="FULL", busy_timeout=2.5)
    try:
        assert full.conn.execute("PRAGMA busy_timeout").fetchone() == (2500,)
        assert full.conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
        assert full.conn.execute("PRAGMA cache_size").fetchone() == (-16384,)
    finally:
        full.conn.close()
