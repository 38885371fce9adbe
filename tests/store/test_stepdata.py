"""The compact forms of layout 8 (:mod:`store.stepdata`): what a row keeps of an artifact
record and of a transition, and how a read restores them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from store.codec import encode
from store.stepdata import full_artifact, stored_artifact, trail_entry


@pytest.mark.parametrize(("record", "kept"), [
    ({"operation": "function_invocation", "inputs": {"n": 1}, "stdout": None},
     '{"inputs":{"n":1},"stdout":null}'),
    ({"operation": "end"}, "{}"),
    ({"operation": "é", "x": "✓"}, '{"x":"✓"}'),
    # kept whole: the operation is not first, the rest would read as a blob marker
    ({"x": 1, "operation": "end"}, '{"x":1,"operation":"end"}'),
    ({"operation": "end", "blob": "blob_1"}, '{"operation":"end","blob":"blob_1"}'),
])
def test_a_stored_record_leaves_out_its_leading_operation_and_reads_back_whole(
        record: dict[str, Any], kept: str) -> None:
    text = stored_artifact(encode(record), record["operation"])
    assert text == kept
    restored = full_artifact(json.loads(text), record["operation"])
    assert json.dumps(restored) == json.dumps(record)  # members in their order


def test_a_blob_marker_and_another_operations_record_are_kept_as_they_are() -> None:
    marker = encode({"blob": "blob_1"})
    assert stored_artifact(marker, "end") == marker
    assert stored_artifact('{"operation":"end2","x":1}', "end") == '{"operation":"end2","x":1}'
    assert stored_artifact('{"operation":"end"', "end") == '{"operation":"end"'
    assert full_artifact({"operation": "old", "x": 1}, "new") == {"operation": "old", "x": 1}


@pytest.mark.parametrize(("at", "retry", "detail", "entry"), [
    (None, 0, None, '["queued"]'),
    ("1780000000.5", 0, None, '["queued",1780000000.5]'),
    (None, 2, None, '["queued",null,2]'),
    ("1780000000.5", 2, None, '["queued",1780000000.5,2]'),
    (None, 0, '{"reason":"r"}', '["queued",null,0,{"reason":"r"}]'),
    ("1780000000.5", 1, '{"reason":"r"}', '["queued",1780000000.5,1,{"reason":"r"}]'),
])
def test_a_transition_leaves_out_its_trailing_defaults(
        at: str | None, retry: int, detail: str | None, entry: str) -> None:
    assert trail_entry('["queued"', at, retry, detail) == entry
    element = json.loads(entry) + [None, 0, None][len(json.loads(entry)) - 1:]
    assert element == ["queued", None if at is None else float(at), retry,
                       None if detail is None else json.loads(detail)]


def test_the_operation_heads_kept_stay_bounded_and_every_name_still_reads_back() -> None:
    from store import stepdata

    for n in range(stepdata._OPERATION_HEADS_MAX + 50):
        record = {"operation": f"made_up_{n}", "x": n}
        text = stored_artifact(encode(record), record["operation"])
        assert text == encode({"x": n})
        assert full_artifact(json.loads(text), record["operation"]) == record
    assert len(stepdata._OPERATION_HEADS) <= stepdata._OPERATION_HEADS_MAX
