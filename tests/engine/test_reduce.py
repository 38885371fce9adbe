"""The for_each reduce phase (engine/reduce.py)."""

from __future__ import annotations

from typing import Any

import pytest

from engine.reduce import REDUCE_STRATEGIES, reduce_results

RESULTS: list[Any] = [{"n": 1}, None, {"n": 3}]


@pytest.mark.parametrize(("strategy", "expected"), [
    ("concat_array", (True, RESULTS)),
    ("first", (True, {"n": 1})),
    ("last", (True, {"n": 3})),
    ("none", (False, None)),
])
def test_strategies(strategy: str, expected: tuple[bool, Any]) -> None:
    assert strategy in REDUCE_STRATEGIES
    assert reduce_results(RESULTS, strategy) == expected


def test_no_iterations() -> None:
    assert reduce_results([], "first") == (True, None)
    assert reduce_results([], "last") == (True, None)
    assert reduce_results([], "concat_array", data_key="items") == (True, {"items": []})


def test_concat_keys() -> None:
    fires, value = reduce_results(RESULTS, data_key="items", item_key="page",
                                  keys=["1-2", "3-4", "5"])
    assert fires
    assert value == {"items": [{"page": "1-2", "n": 1}, {"page": "3-4", "value": None},
                               {"page": "5", "n": 3}]}
    assert reduce_results([{"k": "own", "x": 1}], item_key="k")[1] == [{"k": 0, "x": 1}]


def test_unknown_strategy() -> None:
    with pytest.raises(ValueError, match="concat_array, first, last, none"):
        reduce_results([], "sum")
