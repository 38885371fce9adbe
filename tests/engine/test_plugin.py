"""The pytest plugin, loaded through its ``pytest11`` entry point in a separate pytest run."""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

USER_TESTS = '''
from engine import Workflow
from engine.testing import Attempts, Failure, assert_step

MODULE = "tests.engine.embedding_blocks"


def workflow():
    return (Workflow.builder("vat").block("invoice", "start_json")
            .block("vat", "function", config={"python": MODULE + ":add_vat",
                                              "output_schema": {"type": "object"}})
            .block("done", "end").edge("invoice", "vat").edge("vat", "done").build())


def test_engine_fixture_uses_a_fresh_database(stepwell_engine, stepwell_db, tmp_path):
    assert stepwell_engine.db == str(stepwell_db) and stepwell_db.parent == tmp_path
    result = stepwell_engine.run(workflow(), {"invoice": {"net": 10}})
    assert_step(result, "vat", status="completed", output={"net": 10, "gross": 12.0})
    assert stepwell_db.is_file()
    assert stepwell_engine.retry.initial_interval_s == 0
    # a test's database is thrown away: never fsynced
    assert stepwell_engine.durability == "scratch"
    assert stepwell_engine.store.db.conn.execute("PRAGMA synchronous").fetchone()[0] == 0


def test_client_fixture_reads_the_engine_database(stepwell_engine, stepwell_client):
    stepwell_engine.stubs = {"vat": Attempts(Failure.transient("503"), {"gross": 0})}
    result = stepwell_engine.run(workflow(), {"invoice": {"net": 1}})
    [run] = stepwell_client.workflows.runs.list().data
    assert run.id == result.run_id
    step = stepwell_client.workflows.steps.get("vat", run_id=result.run_id)
    assert step.retry_count == 1


def test_a_failing_assertion_reads_well(stepwell_engine):
    result = stepwell_engine.run(workflow(), {"invoice": {"net": 10}})
    assert_step(result, "vat", output={"net": 10, "gross": 13})
'''


def test_plugin_is_registered_as_a_pytest11_entry_point() -> None:
    names = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert names.get("stepwell") == "engine.pytest_plugin"


def test_fixtures_work_in_a_users_test_suite(pytester: pytest.Pytester,
                                             request: pytest.FixtureRequest) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    root = str(request.config.rootpath)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q",
                                           "-o", f"pythonpath={root}")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "*step 'vat' (function) of run run_* does not match:*",
        "*output differs (- expected, + actual):*",
        '*-  "gross": 13,*',
        '*+  "gross": 12.0,*',
        "*steps of the run: invoice (completed), vat (completed), done (completed)*",
    ])


def test_fixtures_are_listed(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--fixtures", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*fixtures defined from engine.pytest_plugin*",
                                 "stepwell_db*", "*fresh*", "stepwell_engine*",
                                 "*instant retries*", "stepwell_client*"])


def test_the_worked_example_in_docs_testing_md_passes(pytester: pytest.Pytester,
                                                      request: pytest.FixtureRequest) -> None:
    root = Path(request.config.rootpath)
    doc = (root / "docs" / "testing.md").read_text()
    example = re.search(r"```python\n(# test_pricing.py\n.*?)```", doc, re.DOTALL)
    assert example, "docs/testing.md lost its worked example"
    pytester.makepyfile(test_pricing=example[1])
    (pytester.path / "examples").symlink_to(root / "examples")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q",
                                           "-o", f"pythonpath={root}")
    result.assert_outcomes(passed=5)
