"""What a function's code prints, writes to stderr and logs lands in the step's log."""

from __future__ import annotations

from typing import Any

import pytest

from blocks.function import Function
from engine.contracts.errors import PermanentError
from engine.contracts.logs import StepLog
from tests.blocks.conftest import MakeCtx
from tests.blocks.harness import run_block

pytestmark = pytest.mark.anyio

CHATTY = """
import logging, sys
def transform(data):
    print("pricing", data["sku"])
    print("second line")
    sys.stderr.write("no discount table\\n")
    logging.getLogger("pricing").info("sku %s priced", data["sku"])
    if data["fail"]:
        raise ValueError("no price")
    return {"total": 10}
"""


def lines(log: StepLog) -> list[tuple[str, str, Any]]:
    return [(e.stream, e.message, e.level) for e in log.entries()]


async def test_code_mode_keeps_stdout_stderr_and_logging(make_ctx: MakeCtx) -> None:
    log = StepLog()
    ctx = make_ctx("function", "price", log=log)
    config = {"code": CHATTY, "output_schema": {"type": "object"}}
    result = await run_block(Function(), ctx, config, {"input-json-0": {"sku": "A1", "fail": False}})
    assert result.outputs["output-json-0"].data == {"total": 10}
    assert lines(log) == [
        ("stdout", "pricing A1", None), ("stdout", "second line", None),
        ("stderr", "no discount table", None), ("logging", "sku A1 priced", "INFO")]
    assert result.artifact is not None and result.artifact["stdout"].startswith("pricing A1")


async def test_code_mode_keeps_the_log_of_a_failed_attempt(make_ctx: MakeCtx) -> None:
    log = StepLog()
    ctx = make_ctx("function", "price", log=log)
    config = {"code": CHATTY, "output_schema": {"type": "object"}}
    with pytest.raises(PermanentError, match="no price"):
        await run_block(Function(), ctx, config, {"input-json-0": {"sku": "B2", "fail": True}})
    assert ("stdout", "pricing B2", None) in lines(log)


async def test_python_mode_is_captured_per_step(make_ctx: MakeCtx) -> None:
    log = StepLog()
    ctx = make_ctx("function", "price", log=log)
    config = {"python": "tests.blocks.log_targets:chatty", "output_schema": {"type": "object"}}
    await run_block(Function(), ctx, config, {"input-json-0": {"sku": "C3"}})
    assert lines(log) == [
        ("stdout", "pricing C3", None),
        ("stderr", "no discount table, using list price", None),
        ("logging", "sku C3 has no discount", "WARNING")]


async def test_python_mode_keeps_the_log_of_a_failed_call(make_ctx: MakeCtx) -> None:
    log = StepLog()
    ctx = make_ctx("function", "price", log=log)
    config = {"python": "tests.blocks.log_targets:chatty_then_fails",
              "output_schema": {"type": "object"}}
    with pytest.raises(PermanentError, match="no price for D4"):
        await run_block(Function(), ctx, config, {"input-json-0": {"sku": "D4"}})
    assert lines(log) == [("stdout", "about to fail", None)]


async def test_a_block_without_a_log_still_runs(make_ctx: MakeCtx) -> None:
    ctx = make_ctx("function", "price")
    config = {"code": CHATTY, "output_schema": {"type": "object"}}
    result = await run_block(Function(), ctx, config, {"input-json-0": {"sku": "E5", "fail": False}})
    assert result.outputs["output-json-0"].data == {"total": 10}


def test_run_block_shows_what_the_block_wrote() -> None:
    from engine.testing import run_block as run_one

    run = run_one("function", {"python": "tests.blocks.log_targets:chatty",
                               "output_schema": {"type": "object"}},
                  inputs={"input-json-0": {"sku": "F6"}})
    assert run.ok, run.error
    assert run.logs[:2] == ["stdout: pricing F6",
                            "stderr: no discount table, using list price"]


HANGS = """
import sys, time
def transform(data):
    print("tick 0")
    sys.stdout.flush()
    time.sleep(30)
    return {}
"""


async def test_code_mode_keeps_what_a_timed_out_worker_printed(make_ctx: MakeCtx) -> None:
    from engine.contracts.errors import TransientError

    log = StepLog()
    ctx = make_ctx("function", "price", log=log)
    config = {"code": HANGS, "output_schema": {"type": "object"}, "timeout_seconds": 2}
    with pytest.raises(TransientError, match="timeout_seconds"):
        await run_block(Function(), ctx, config, {"input-json-0": {}})
    assert ("stdout", "tick 0", None) in lines(log)


async def test_python_mode_artifact_holds_what_it_printed(make_ctx: MakeCtx) -> None:
    ctx = make_ctx("function", "price", log=StepLog())
    config = {"python": "tests.blocks.log_targets:chatty", "output_schema": {"type": "object"}}
    result = await run_block(Function(), ctx, config, {"input-json-0": {"sku": "G7"}})
    assert result.artifact is not None and result.artifact["stdout"] == "pricing G7\n"


HANGS_ON_STDERR = """
import sys, time
def transform(data):
    sys.stderr.write("warming up\\n")
    sys.stderr.flush()
    time.sleep(30)
    return {}
"""


async def test_a_timed_out_workers_stderr_is_logged_once(make_ctx: MakeCtx) -> None:
    from engine.contracts.errors import TransientError

    log = StepLog()
    ctx = make_ctx("function", "price", log=log)
    config = {"code": HANGS_ON_STDERR, "output_schema": {"type": "object"},
              "timeout_seconds": 2}
    with pytest.raises(TransientError, match="timeout_seconds"):
        await run_block(Function(), ctx, config, {"input-json-0": {}})
    assert lines(log).count(("stderr", "warming up", None)) == 1
