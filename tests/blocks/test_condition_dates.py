"""ISO 8601 date operators (blocks/condition_dates.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from blocks.condition_dates import compare_dates, date_value_problem, parse_iso
from blocks.condition_operators import apply_operator, canonical_operator, value_problem


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-03-12", dt.date(2026, 3, 12)),
    ("2026-03-12T09:30:00Z", dt.datetime(2026, 3, 12, 9, 30, tzinfo=dt.UTC)),
    ("2026-03-12T11:30:00+02:00", dt.datetime(2026, 3, 12, 9, 30, tzinfo=dt.UTC)),
    ("2026-03-12 09:30", dt.datetime(2026, 3, 12, 9, 30, tzinfo=dt.UTC)),
    ("2026-03-12T09:30:00.250", dt.datetime(2026, 3, 12, 9, 30, 0, 250000,
                                            tzinfo=dt.UTC)),
])
def test_parses_dates_and_date_times(text: str, expected: Any) -> None:
    assert parse_iso(text) == expected


@pytest.mark.parametrize("value", [None, 20260312, "20260312", "12/03/2026", "yesterday",
                                   "2026-13-01", "2026-02-30", "", [], {"d": "2026-01-01"}])
def test_anything_else_is_not_a_date(value: Any) -> None:
    assert parse_iso(value) is None


@pytest.mark.parametrize(("op", "actual", "expected", "matched"), [
    ("is_after", "2026-03-13", "2026-03-12", True),
    ("is_after", "2026-03-12", "2026-03-12", False),
    ("is_after_or_equal_to", "2026-03-12", "2026-03-12", True),
    ("is_before", "2026-03-11T23:59:59Z", "2026-03-12T00:00:00Z", True),
    ("is_before_or_equal_to", "2026-03-12T02:00:00+02:00", "2026-03-12T00:00:00Z", True),
    ("is_before", "2026-03-12T02:00:00+02:00", "2026-03-12T00:00:00Z", False),
    # a plain date compares by calendar day
    ("is_after", "2026-03-12T23:00:00", "2026-03-12", False),
    ("is_before", "2026-03-12T00:00:01", "2026-03-12", False),
    ("is_after_or_equal_to", "2026-03-12T23:00:00", "2026-03-12", True),
    ("is_before", "2026-03-12", "2026-03-13T00:00:00Z", True),
])
def test_comparisons(op: str, actual: str, expected: str, matched: bool) -> None:
    assert compare_dates(op, actual, expected) == (matched, None)
    assert apply_operator(op, actual, expected) == (matched, None)


def test_a_value_that_is_not_a_date_does_not_match_and_says_why() -> None:
    matched, reason = apply_operator("is_after", "12/03/2026", "2026-01-01")
    assert not matched and reason is not None and "ISO 8601" in reason
    assert apply_operator("is_after", 5, "2026-01-01")[0] is False


def test_the_condition_value_must_be_a_date() -> None:
    assert date_value_problem("is_after", "2026-01-01") is None
    for op in ("is_after", "is_before", "is_after_or_equal_to", "is_before_or_equal_to"):
        assert canonical_operator(op) == op
        problem = value_problem(op, "soon")
        assert problem is not None and "ISO 8601" in problem
