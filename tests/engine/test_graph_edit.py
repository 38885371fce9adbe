"""One-block and one-edge edits (engine.graph_edit) and versions derived from content
(engine.graph_versions): pure functions, no store."""

from __future__ import annotations

import pytest

from engine.contracts.definition import EdgeDef
from engine.contracts.errors import ConflictError, NotFoundError
from engine.definition import Workflow
from engine.graph_edit import (
    BlockChange,
    add_block,
    add_edge,
    change_block,
    edge_id,
    merge_config,
    name_edges,
    new_block,
    put_block,
    remove_block,
    remove_edge,
    stamps_after,
)
from engine.graph_versions import (
    StoredVersion,
    block_version_id,
    block_versions,
    edge_versions,
    field_changes,
    graph_diff,
)


def base() -> Workflow:
    return (Workflow.builder("edit me")
            .block("start", "start_json")
            .block("loop", "for_each", config={"map_method": "iterate_array"})
            .block("inner", "note", parent="loop")
            .block("fn", "function", config={"code": "x", "output_schema": {"type": "object",
                                                                          "title": "T"}})
            .edge("start", "fn")
            .edge("start", "loop")
            .build())


def test_merge_config_combines_and_deletes() -> None:
    merged = merge_config({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"c": None, "e": 4}, "d": None})
    assert merged == {"a": {"b": 1, "e": 4}}


def test_block_edits() -> None:
    wf = base()
    added = add_block(wf, new_block(block_id="memo", block_type="note", label="Memo",
                                    position_x=5))
    assert added.block("memo").position == {"x": 5.0, "y": 0.0}
    with pytest.raises(ConflictError):
        add_block(added, new_block(block_id="memo", block_type="note"))
    changed = change_block(wf, "fn", BlockChange(label="F", position_y=9,
                                                  config={"output_schema": {"title": None}}))
    fn = changed.block("fn")
    assert fn.label == "F" and fn.position == {"x": 0.0, "y": 9.0}
    assert fn.config == {"code": "x", "output_schema": {"type": "object"}}
    replaced = change_block(wf, "fn", BlockChange(config={"code": "y"}, config_mode="replace"))
    assert replaced.block("fn").config == {"code": "y"}
    assert wf.block("fn").config["code"] == "x"  # edits never change their input
    with pytest.raises(NotFoundError):
        change_block(wf, "ghost", BlockChange(label="x"))


def test_removing_a_container_takes_its_children_and_edges() -> None:
    gone = remove_block(base(), "loop")
    assert [b.id for b in gone.blocks] == ["start", "fn"]
    assert [(e.source_block, e.target_block) for e in gone.edges] == [("start", "fn")]
    assert put_block(gone, base().block("loop")).block("loop") is not None


def test_edge_ids_and_edits() -> None:
    wf = name_edges(base(), "wf_one")
    other = name_edges(base(), "wf_two")
    assert {edge_id(e) for e in wf.edges}.isdisjoint({edge_id(e) for e in other.edges})
    assert name_edges(wf, "wf_one") == wf  # written ids are kept
    first = edge_id(wf.edges[0])
    assert [edge_id(e) for e in remove_edge(wf, first).edges] == [edge_id(wf.edges[1])]
    with pytest.raises(NotFoundError):
        remove_edge(wf, "edge_missing")
    new = EdgeDef(source_block="loop", target_block="fn", id="edge_mine")
    assert edge_id(add_edge(wf, new).edges[-1]) == "edge_mine"
    with pytest.raises(ConflictError):
        add_edge(add_edge(wf, new), new)


def test_stamps_follow_what_changed() -> None:
    wf = name_edges(base(), "wf")
    first = stamps_after(None, wf, {}, 10.0)
    assert set(first.values()) == {10.0} and "block:fn" in first
    moved = change_block(wf, "fn", BlockChange(label="moved"))
    second = stamps_after(wf, moved, first, 20.0)
    assert second["block:fn"] == 20.0 and second["block:start"] == 10.0
    assert stamps_after(wf, wf, {}, 30.0, since=1.0)["block:start"] == 1.0


def test_versions_are_derived_from_content() -> None:
    v1 = name_edges(base(), "wf")
    v2 = change_block(v1, "fn", BlockChange(config={"code": "y"}))
    v3 = change_block(v2, "fn", BlockChange(label="only a label"))
    assert v3.digest() == v2.digest() != v1.digest()
    versions = [StoredVersion(id=v.digest(), workflow=v, created_at=t)
                for v, t in ((v1, 1.0), (v2, 2.0))]
    found = block_versions("wf", versions)
    fn = [b for b in found if b.block.id == "fn"]
    assert [b.workflow_version_id for b in fn] == [v1.digest(), v2.digest()]
    assert len([b for b in found if b.block.id == "start"]) == 1  # unchanged: one version
    assert block_version_id("wf", v1.block("fn")) != block_version_id("other", v1.block("fn"))
    assert len(edge_versions("wf", versions)) == 2
    diff = graph_diff(v1, remove_block(v2, "inner"))
    assert (diff.changed_block_ids, diff.removed_block_ids) == (["fn"], ["inner"])
    assert field_changes({"a": 1, "b": {"c": 1}}, {"a": 1, "b": {"c": 2}}, ("a", "b")) == [
        {"field": "b", "from_value": {"c": 1}, "to_value": {"c": 2}}]
