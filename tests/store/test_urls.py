"""``--db`` values: paths, SQLite URLs, PostgreSQL URLs, and unknown schemes refused
(never a folder named after the scheme)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.contracts.errors import UsageError
from engine.options import db_path
from store.urls import Backend, DatabaseURL, open_store, parse_db, redact

PG = Backend.POSTGRESQL


@pytest.mark.parametrize(("value", "expected"), [
    ("stepwell.db", DatabaseURL(backend=Backend.SQLITE, target="stepwell.db")),
    ("runs/x.db", DatabaseURL(backend=Backend.SQLITE, target="runs/x.db")),
    ("sqlite:///x.db", DatabaseURL(backend=Backend.SQLITE, target="x.db")),
    ("sqlite:////abs/x.db", DatabaseURL(backend=Backend.SQLITE, target="/abs/x.db")),
    (":memory:", DatabaseURL(backend=Backend.SQLITE, target=":memory:")),
    ("sqlite://", DatabaseURL(backend=Backend.SQLITE, target=":memory:")),
    ("postgresql://u:p@h:5432/db", DatabaseURL(backend=PG, target="postgresql://u:p@h:5432/db")),
    ("postgres://u@h/db", DatabaseURL(backend=PG, target="postgresql://u@h/db")),
    ("postgresql+psycopg://u@h/db?sslmode=require",
     DatabaseURL(backend=PG, target="postgresql://u@h/db?sslmode=require")),
])
def test_parse(value: str, expected: DatabaseURL) -> None:
    assert parse_db(value) == expected


def test_the_environment_names_the_default() -> None:
    assert parse_db(None, env={}).target == "stepwell.db"
    url = parse_db(None, env={"STEPWELL_DB": "postgresql://h/db"})
    assert url.backend is PG and url.target == "postgresql://h/db"


@pytest.mark.parametrize("value", ["postgresq://u@h/db", "mysql://u@h/db", "s3://bucket/x"])
def test_an_unknown_scheme_is_refused(value: str) -> None:
    with pytest.raises(UsageError, match="unknown scheme"):
        parse_db(value)
    with pytest.raises(UsageError, match="unknown scheme"):
        db_path(value)


def test_a_postgresql_url_without_a_database_is_refused() -> None:
    with pytest.raises(UsageError, match="names no database"):
        parse_db("postgresql://u:secret@h:5432")


def test_messages_hide_the_password() -> None:
    assert redact("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact("postgresql://h/db") == "postgresql://h/db"
    with pytest.raises(UsageError) as caught:
        parse_db("postgresq://u:secret@h/db")
    assert "secret" not in str(caught.value)


def test_opening_an_unknown_scheme_creates_nothing(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError):
        open_store("postgresq://u@h/db")
    assert list(tmp_path.iterdir()) == []


def test_the_cli_refuses_an_unknown_scheme_in_one_line(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("stepwell")
    if not script.exists():
        pytest.skip("the stepwell console script is not installed (pip install -e .)")
    for args in (["runs", "list"], ["db", "status"], ["worker", "--idle-exit", "0"]):
        done = subprocess.run([str(script), *args, "--db", "postgresq://u:hunter2@h/db"],
                              capture_output=True, text=True, check=False, cwd=tmp_path,
                              env={**os.environ, "COLUMNS": "300"})
        assert done.returncode == 2, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "unknown scheme 'postgresq'" in lines[0]
        assert "hunter2" not in done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["postgresql:foo", "mysql:foo", "file:foo.db", "sqlite:x.db"])
def test_a_scheme_without_slashes_is_refused_not_taken_as_a_file(
        value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=r"looks like a URL scheme.*\./"):
        open_store(value)
    assert list(tmp_path.iterdir()) == []
    assert parse_db(f"./{value}").target == f"./{value}"
    assert parse_db("C:/runs/x.db").target == "C:/runs/x.db"  # a Windows drive letter


@pytest.mark.parametrize("port", ["notaport", "70000", "0"])
def test_a_malformed_postgresql_port_is_refused(port: str) -> None:
    with pytest.raises(UsageError, match=f"port '{port}'") as caught:
        parse_db(f"postgresql://u:secret@127.0.0.1:{port}/x")
    assert "secret" not in str(caught.value)


def test_the_cli_refuses_a_bad_port_or_a_bare_scheme_in_one_line(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("stepwell")
    if not script.exists():
        pytest.skip("the stepwell console script is not installed (pip install -e .)")
    for db, says in (("postgresql://u:p@127.0.0.1:notaport/x", "port 'notaport'"),
                     ("postgresql:foo", "./postgresql:foo")):
        for args in (["db", "status"], ["worker", "--idle-exit", "0"]):
            done = subprocess.run([str(script), *args, "--db", db], capture_output=True,
                                  text=True, check=False, cwd=tmp_path,
                                  env={**os.environ, "COLUMNS": "300"})
            assert done.returncode == 2, (args, done.stderr)
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1 and says in lines[0], done.stderr
    assert list(tmp_path.iterdir()) == []
