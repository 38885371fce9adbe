"""The pytest plugin on PostgreSQL: with ``$STEPWELL_DB`` naming a PostgreSQL database,
each test of a user's suite gets a schema of its own in it, dropped afterwards."""

from __future__ import annotations

import pytest

from tests.postgres import server_url

pytest_plugins = ["pytester"]

USER_TESTS = '''
import os

from engine import Workflow

SEEN = []


def remember(url):
    with open(os.environ["SCHEMAS_FILE"], "a") as fh:
        fh.write(str(url) + "\\n")


def workflow():
    return (Workflow.builder("echo").block("data", "start_json").block("done", "end")
            .edge("data", "done").build())


def test_one(stepwell_engine, stepwell_db):
    assert str(stepwell_db).startswith("postgresql://") and "search_path" in str(stepwell_db)
    assert stepwell_engine.run(workflow(), {"data": {"n": 1}}).ok
    SEEN.append(stepwell_db)
    remember(stepwell_db)


def test_two_starts_empty(stepwell_engine, stepwell_client, stepwell_db):
    assert stepwell_db not in SEEN
    assert stepwell_client.workflows.runs.list().data == []
    assert stepwell_engine.run(workflow(), {"data": {"n": 2}}).ok
    remember(stepwell_db)
'''


def test_each_test_gets_a_fresh_schema(pytester: pytest.Pytester,
                                       request: pytest.FixtureRequest,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import re
    from urllib.parse import unquote

    import psycopg

    url = server_url()
    schemas_file = pytester.path / "schemas.txt"
    monkeypatch.setenv("STEPWELL_DB", url)
    monkeypatch.setenv("SCHEMAS_FILE", str(schemas_file))
    pytester.makepyfile(test_user=USER_TESTS)
    root = str(request.config.rootpath)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q",
                                           "-o", f"pythonpath={root}")
    result.assert_outcomes(passed=2)
    schemas = [re.search(r"search_path=(\w+)", unquote(line)).group(1)  # type: ignore[union-attr]
               for line in schemas_file.read_text().splitlines()]
    assert len(set(schemas)) == 2
    with psycopg.connect(url, autocommit=True) as conn:
        left = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)",
                            (schemas,)).fetchall()
    assert left == []  # dropped after each test
