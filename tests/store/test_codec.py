"""The store's JSON codec: compact text, and long documents packed."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from engine.contracts.errors import StorageError
from engine.contracts.values import Payload
from store.codec import PACK_MIN_CHARS, dumps, encode, encoded_definition, loads, pack
from store.sqlite import SQLiteStore
from tests.store.helpers import T0, new_run


def test_short_documents_stay_text() -> None:
    text = encode({"blocks": [{"id": "a"}]})
    assert pack(text) == text
    assert loads(pack(text)) == {"blocks": [{"id": "a"}]}


def test_long_repetitive_documents_are_compressed_and_read_back() -> None:
    doc = {"blocks": [{"id": f"f{i}", "type": "function", "config": {"code": "x = 1\n" * 5}}
                      for i in range(500)]}
    text = encode(doc)
    packed = pack(text)
    assert isinstance(packed, bytes) and len(packed) * 10 < len(text)
    assert loads(packed) == doc


def test_any_long_document_reads_back() -> None:
    text = json.dumps([f"{i * 7919 % 104729:x}{i ** 3 % 99991}" for i in range(2000)])
    assert len(text) >= PACK_MIN_CHARS
    assert loads(pack(text)) == json.loads(text)


def test_sqlite_stores_a_big_definition_compressed_once(tmp_path: Path) -> None:
    big = {"blocks": [{"id": f"b{i}", "type": "function", "config": {"x": "y" * 200}}
                      for i in range(200)]}
    with SQLiteStore(tmp_path / "d.db") as store:
        store.create_run(new_run("run_a", definition=big), now=T0)
        store.create_run(new_run("run_b", definition=big), now=T0)
        (raw, size), = store.db.conn.execute(
            "SELECT definition, length(definition) FROM definitions").fetchall()
        assert isinstance(raw, bytes) and size < len(encode(big)) / 10
        assert store.load_run("run_a").definition == big
        assert store.load_run("run_b").definition == big


def test_a_definition_is_encoded_once_per_dict_and_anew_for_another() -> None:
    definition = {"blocks": [{"id": f"b{i}", "type": "function"} for i in range(300)]}
    first = encoded_definition(definition, "run_a")
    assert encoded_definition(definition, "run_b") is first
    assert loads(first.packed()) == definition and first.packed() is first.packed()
    equal = {"blocks": list(definition["blocks"])}
    again = encoded_definition(equal, "run_c")
    assert again is not first and (again.text, again.id) == (first.text, first.id)
    other = encoded_definition({"blocks": []}, "run_d")
    assert other.id != first.id and loads(other.text) == {"blocks": []}


def test_fresh_stores_share_the_encoding_of_one_definition(tmp_path: Path) -> None:
    big = {"blocks": [{"id": f"b{i}", "type": "function", "config": {"x": "y" * 200}}
                      for i in range(200)]}
    for name in ("one", "two"):
        with SQLiteStore(tmp_path / f"{name}.db") as store:
            store.create_run(new_run("run_a", definition=big), now=T0)
            assert store.load_run("run_a").definition == big
    assert encoded_definition(big, "run_x").source is big


def test_definitions_alternating_stay_encoded_each_once() -> None:
    # a test suite or a server alternates between workflows: each keeps its encoding
    a = {"blocks": [{"id": "a", "type": "function"}]}
    b = {"blocks": [{"id": "b", "type": "function"}]}
    first_a, first_b = encoded_definition(a, "run_a"), encoded_definition(b, "run_b")
    assert encoded_definition(a, "run_c") is first_a
    assert encoded_definition(b, "run_d") is first_b
    assert first_a.id != first_b.id and loads(first_b.text) == b


def test_the_recent_definitions_are_bounded_and_never_mistaken() -> None:
    kept = [{"blocks": [{"id": f"b{i}"}]} for i in range(100)]
    encoded = [encoded_definition(d, f"run_{i}") for i, d in enumerate(kept)]
    for d, e in zip(kept, encoded, strict=True):
        again = encoded_definition(d, "run_x")  # the oldest are encoded anew
        assert again.source is d and (again.text, again.id) == (e.text, e.id)
    from store import codec

    assert len(codec._RECENT_DEFINITIONS) <= codec._RECENT_LIMIT


def test_encode_writes_what_the_standard_library_reads_back() -> None:
    """orjson's text, with the standard library's forms for dataclasses and dates, and
    its fallback for what orjson refuses: every value reads back as it was written."""
    when = dt.datetime(2026, 12, 2, 11, 41, 15, 123456, tzinfo=dt.UTC)
    values: list[Any] = [
        {"n": 1, "x": 0.1, "big": 1e300, "tiny": 5e-324, "s": "é ✓ \u2028 \n \"", "l": [None, True]},
        {"over64": 2**70, "under": -(2**63)},  # beyond 64 bits: the standard library's text
    ]
    for value in values:
        assert json.loads(encode(value)) == value
    # a lone surrogate (no UTF-8 text holds one) is stored as U+FFFD, so it reads back
    assert json.loads(encode({"lone": "a\ud800b"})) == {"lone": "a\ufffdb"}
    assert encode({"s": "é"}) == '{"s":"é"}'  # UTF-8, not escapes
    assert encode({"when": when, "day": dt.date(2026, 12, 2)}) == (
        '{"when":"2026-12-02T11:41:15.123456+00:00","day":"2026-12-02"}')  # isoformat
    assert encode(Payload.json({"a": 1})) == '{"type":"json","data":{"a":1}}'  # to_dict
    assert encode({"t": (1, 2), "set": {3}}) == '{"t":[1,2],"set":[3]}'


def test_encode_writes_keys_as_strings_and_non_finite_numbers_as_null() -> None:
    assert encode({1: "a", 2.5: "b", False: "c", None: "d"}) == (
        '{"1":"a","2.5":"b","false":"c","null":"d"}')
    assert encode({"x": float("nan"), "y": [float("inf"), -float("inf")]}) == (
        '{"x":null,"y":[null,null]}')
    assert encode({1: float("nan")}) == '{"1":null}'  # both at once
    # what orjson refuses goes to the standard library, which writes them alike
    assert encode({"big": 2**70, "x": float("nan"), "l": (float("inf"),)}) == (
        '{"big":1180591620717411303424,"x":null,"l":[null]}')
    assert encode({"s": "\ud800", "p": Payload.json([float("nan")])}) == (
        '{"s":"\\ufffd","p":{"type":"json","data":[null]}}')


def test_encode_refuses_what_no_encoder_can_write() -> None:
    with pytest.raises(TypeError, match="a value of type object is not JSON"):
        encode({"x": object()})
    with pytest.raises(StorageError, match="cannot store the outputs of 's1'"):
        dumps({"x": [object()]}, "outputs", "s1")


def test_definition_ids_keep_the_standard_library_text() -> None:
    """A definition's id is the sha256 of its text: it must not change with the
    encoder, or a stored workflow would get a second definition row."""
    definition = {"name": "Reçu", "blocks": [{"id": "b", "config": {"x": 1e-7}}]}
    encoded = encoded_definition(definition, "run_x")
    assert encoded.text == json.dumps(definition, separators=(",", ":"))
    assert encoded.id == hashlib.sha256(encoded.text.encode()).hexdigest()[:32]
    with pytest.raises(StorageError, match="cannot store the definition of 'run_y'"):
        encoded_definition({"blocks": [object()]}, "run_y")


def test_lone_surrogates_are_stored_as_text_that_reads_back() -> None:
    text = encode({"k\ud83e": ["\ud83e\uddfe", 2**70, float("nan")],
                   "p": Payload.json({"x": "a\udc00"})})
    assert json.loads(text) == {"k\ufffd": ["\U0001f9fe", 2**70, None],
                                "p": {"type": "json", "data": {"x": "a\ufffd"}}}
    text.encode()  # valid UTF-8 once decoded: no surrogate left
    assert "\\ud83e\\uddfe" in text or "\U0001f9fe" in text
