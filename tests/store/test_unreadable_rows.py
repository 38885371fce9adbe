"""One run row that cannot be read back never breaks a listing; new databases are private."""

from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path

from engine import Engine, Workflow
from tests.engine.security_server import one_block

ECHO = Workflow.from_yaml(one_block("echo", "reshape", {"mappings": {"x": "x"}}))


def test_a_row_too_deep_to_read_is_listed_without_its_data(tmp_path: Path) -> None:
    db = tmp_path / "u.db"
    with Engine(db) as engine:
        bad = engine.run(ECHO, {"data": {"x": 1}}).run_id
        good = engine.run(ECHO, {"data": {"x": 2}}).run_id
    deep: object = 1
    for _ in range(900):
        deep = [deep]
    with sqlite3.connect(db) as conn:  # what an older version could store
        conn.execute("UPDATE runs SET inputs = ? WHERE id = ?",
                     (json.dumps({"data": deep}), bad))
    with Engine(db) as engine:
        runs = {r.id: r for r in engine.client.workflows.runs.list(limit=10).data}
        assert set(runs) == {bad, good}
        assert "stepwell_unreadable" in runs[bad].metadata
        assert runs[good].metadata == {}
        json.dumps([r.model_dump(mode="json") for r in runs.values()])
        assert engine.client.workflows.runs.get(bad).lifecycle.status == "completed"


def test_new_databases_and_file_stores_are_private(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    with Engine(db) as engine:
        engine.run(ECHO, {"data": {"x": 1}})
        engine.store.files.put_bytes(b"%PDF-1.7 x", "in\x1b[2Jvoice.pdf", "text/x\r\nY: 1")
        ref = engine.store.files.put_bytes(b"other", "a.txt", "Text/Plain; charset=utf-8")
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(f"{db}.files").stat().st_mode) == 0o700
    assert ref.mime_type == "text/plain"
    with Engine(db) as engine:
        stored = engine.store.files.put_bytes(b"%PDF-1.7 x", "in\x1b[2Jvoice.pdf")
    assert stored.filename == "in[2Jvoice.pdf"
