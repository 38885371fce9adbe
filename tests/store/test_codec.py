"""The store's JSON codec: compact text, and long documents packed."""

from __future__ import annotations

import json
from pathlib import Path

from store.codec import PACK_MIN_CHARS, encode, encoded_definition, loads, pack
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
