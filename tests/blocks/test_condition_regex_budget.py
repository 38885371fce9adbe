"""``matches_regex`` runs under a time budget: a backtracking pattern fails the step
(``REGEX_TOO_SLOW``) within a fraction of a second instead of holding the server."""

from __future__ import annotations

import threading
import time

import pytest

from blocks.conditional import Conditional
from blocks.conditions import apply_operator, validate_condition_group
from engine.contracts.bounded import (
    MAX_REGEX_PATTERN,
    MAX_REGEX_TEXT,
    REGEX_TIMEOUT_SECONDS,
    RegexBudgetError,
    bounded_search,
)
from engine.contracts.errors import PermanentError
from engine.eval_checks import check_assertion, parse_assertion
from tests.blocks.conftest import MakeCtx
from tests.blocks.harness import run_block

pytestmark = pytest.mark.anyio

EVIL = "^(a|a)+$"
VICTIM = "a" * 40 + "!"


def test_bounded_search_keeps_re_semantics() -> None:
    assert bounded_search(r"^INV-\d+$", "INV-0042")
    assert not bounded_search(r"^INV-\d+$", "INV-x")
    assert bounded_search("^(a+)+$", "a" * 27 + "!") is False  # fast in the regex engine


def test_a_backtracking_pattern_times_out_without_holding_other_threads() -> None:
    ticks: list[float] = []
    stop = threading.Event()

    def tick() -> None:
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.01)

    thread = threading.Thread(target=tick)
    thread.start()
    started = time.monotonic()
    try:
        with pytest.raises(RegexBudgetError) as caught:
            apply_operator("matches_regex", VICTIM, EVIL)
    finally:
        stop.set()
        thread.join()
    assert time.monotonic() - started < REGEX_TIMEOUT_SECONDS + 1.5
    assert caught.value.code == "REGEX_TOO_SLOW" and "Simplify the pattern" in str(caught.value)
    assert "condition matches_regex" in str(caught.value)
    assert len(ticks) >= 5  # the other thread kept running


def test_pattern_and_text_lengths_are_bounded() -> None:
    with pytest.raises(RegexBudgetError, match="limit"):
        bounded_search("a" * (MAX_REGEX_PATTERN + 1), "a")
    with pytest.raises(RegexBudgetError, match="limit"):
        bounded_search("a", "a" * (MAX_REGEX_TEXT + 1))
    group = {"logical_operator": "and", "sub_conditions": [
        {"path_ref": {"input": "default", "path": "x"}, "operator": "matches_regex",
         "value": "a" * (MAX_REGEX_PATTERN + 1)}]}
    assert validate_condition_group(group, "spec.blocks.c.config")


async def test_conditional_fails_the_step_permanently(make_ctx: MakeCtx) -> None:
    config = {"conditions": [{"name": "Evil", "condition": {
        "logical_operator": "and", "sub_conditions": [
            {"path_ref": {"input": "default", "path": "name"}, "operator": "matches_regex",
             "value": EVIL}]}}]}
    with pytest.raises(PermanentError, match="Simplify the pattern"):
        await run_block(Conditional(), make_ctx("conditional"), config,
                        {"input-json-0": {"name": VICTIM}})


def test_eval_assertion_is_blocked_with_the_reason() -> None:
    assertion = parse_assertion({"target": {"output_handle_id": "output-json-0",
                                            "path": "name"},
                                 "condition": {"kind": "matches_regex", "pattern": EVIL}})
    result = check_assertion(assertion, {"output-json-0": {"name": VICTIM}})
    assert result.outcome == "blocked"
    assert "Simplify the pattern" in str(result.failure)
