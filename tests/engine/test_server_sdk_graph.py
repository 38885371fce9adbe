"""Graph editing through the SDK against ``stepwell serve``: blocks and edges one at a time,
their versions, diffs and restores, and the edits the server refuses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from retab import Retab

from tests.engine.sdk_server import (
    INVOICE,
    KEY_A,
    KEY_B,
    LABEL,
    TRANSFORM_CODE,
    ServeProcess,
    error_of,
    transform_spec,
    wait_for,
)

SCHEMA = {"type": "object", "properties": {"label": {"type": "string"},
                                           "doubled_total": {"type": "number"}}}
START_SCHEMA = {"type": "object", "properties": {"invoice_number": {"type": "string"},
                                                 "total_due": {"type": "number"},
                                                 "vendor": {"type": "string"}}}


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with ServeProcess(tmp_path_factory.mktemp("graph")) as process:
        yield process


@pytest.fixture(scope="module")
def a(serve: ServeProcess) -> Retab:
    return serve.client(KEY_A)


@pytest.fixture(scope="module")
def b(serve: ServeProcess) -> Retab:
    return serve.client(KEY_B)


def test_build_a_workflow_block_by_block_and_run_it(a: Retab) -> None:
    wid = a.workflows.create(project_id="proj_graph", name="Built by hand").id
    a.workflows.blocks.delete("document", workflow_id=wid)
    start = a.workflows.blocks.create(wid, "start_json", id="facts", label="Facts",
                                      config={"json_schema": START_SCHEMA})
    fn = a.workflows.blocks.create(wid, "function", label="Label", position_x=300,
                                   config={"code": TRANSFORM_CODE, "output_schema": SCHEMA})
    assert fn.id.startswith("function_") and fn.position_x == 300
    edge = a.workflows.edges.create(wid, start.id, fn.id, source_handle="output-json-0",
                                    target_handle="input-json-0")
    assert a.workflows.edges.get(edge.id, workflow_id=wid).target_block == fn.id
    assert [e.id for e in a.workflows.edges.list(wid, source_block="facts").data] == [edge.id]
    assert a.workflows.edges.list(wid, target_block="facts").data == []
    listed = a.workflows.blocks.list(wid).data
    assert [x.id for x in listed] == [fn.id, "facts"]  # most recently changed first
    got = a.workflows.blocks.get(fn.id, workflow_id=wid)
    assert got.resolved_schemas["input_schemas"]["input-json-0"]["properties"]["vendor"]
    run = a.workflows.runs.create(wid, json_inputs={"facts": INVOICE}, version="draft")
    assert wait_for(a, run.id).lifecycle.status == "completed"
    out = a.workflows.steps.get(fn.id, run_id=run.id).handle_outputs["output-json-0"].data
    assert out == {"label": LABEL, "doubled_total": 1025.0}


def test_update_merges_config_and_validate_config_changes_nothing(a: Retab) -> None:
    wid = a.workflows.apply(transform_spec("Update blocks")).workflow_id
    moved = a.workflows.blocks.update("transform", workflow_id=wid, label="Renamed",
                                      position_x=10, position_y=20)
    assert (moved.label, moved.position_x, moved.position_y) == ("Renamed", 10, 20)
    merged = a.workflows.blocks.update("transform", workflow_id=wid,
                                       config={"output_schema": {"required": ["label"]}})
    assert merged.config["output_schema"]["required"] == ["label"]
    assert merged.config["output_schema"]["properties"]["label"] == {"type": "string"}
    assert "code" in merged.config
    checked = a.workflows.blocks.create_block_validate_config(
        "transform", {"language": "python"}, config_mode="merge", workflow_id=wid)
    assert checked.ok and checked.block_type == "function" and len(checked.config_hash) == 64
    bad = error_of(lambda: a.workflows.blocks.create_block_validate_config(
        "transform", {"code": "def transform(x):\n    return x\n"}, workflow_id=wid))
    assert bad.status_code == 422 and bad.code == "INVALID_WORKFLOW"
    assert a.workflows.blocks.get("transform", workflow_id=wid).label == "Renamed"


def test_edits_that_break_the_graph_are_refused_and_change_nothing(a: Retab,
                                                                   serve: ServeProcess) -> None:
    wid = a.workflows.apply(transform_spec("Refusals")).workflow_id
    before = a.workflows.get_version(
        next(iter(a.workflows.list_versions(wid))).id, workflow_id=wid).model_dump()
    bad_handle = error_of(lambda: a.workflows.edges.create(
        wid, "invoice_in", "transform", source_handle="output-json-9",
        target_handle="input-json-0"))
    assert bad_handle.status_code == 422 and bad_handle.code == "INVALID_WORKFLOW"
    assert bad_handle.details["diagnostics"][0]["code"] in ("UNKNOWN_OUTPUT_HANDLE",
                                                            "INVALID_EDGE_HANDLE")
    missing_block = error_of(lambda: a.workflows.edges.create(wid, "invoice_in", "ghost"))
    assert missing_block.status_code == 422
    duplicate = error_of(lambda: a.workflows.blocks.create(wid, "note", id="transform"))
    assert duplicate.status_code == 409
    unknown_type = serve.http(KEY_A).post("/v1/workflows/blocks",  # the SDK checks its enum
                                          json={"workflow_id": wid, "type": "teleport"})
    assert unknown_type.status_code == 422
    bad_config = error_of(lambda: a.workflows.blocks.update(
        "transform", workflow_id=wid, config={"output_schema": "not a schema"},
        config_mode="replace"))
    assert bad_config.status_code == 422
    after = a.workflows.get_version(next(iter(a.workflows.list_versions(wid))).id,
                                    workflow_id=wid).model_dump()
    assert after == before
    assert len(list(a.workflows.list_versions(wid))) == 1


def test_ids_of_other_workflows_and_organizations(a: Retab, b: Retab) -> None:
    one = a.workflows.apply(transform_spec("First")).workflow_id
    two = a.workflows.apply(transform_spec("Second")).workflow_id
    a.workflows.blocks.create(two, "note", id="only_in_two", label="Note")
    gone = error_of(lambda: a.workflows.blocks.get("only_in_two", workflow_id=one))
    assert gone.status_code == 404  # a block id of another workflow
    assert a.workflows.blocks.get("only_in_two").workflow_id == two  # unique: found
    ambiguous = error_of(lambda: a.workflows.blocks.get("transform"))
    assert ambiguous.status_code == 400 and ambiguous.code == "AMBIGUOUS_ID"
    edge_one = a.workflows.edges.list(one).data[0].id
    assert error_of(lambda: a.workflows.edges.get(edge_one, workflow_id=two)).status_code == 404
    for call in (lambda: b.workflows.blocks.list(one),
                 lambda: b.workflows.blocks.get("transform", workflow_id=one),
                 lambda: b.workflows.blocks.get("only_in_two"),
                 lambda: b.workflows.blocks.update("transform", workflow_id=one, label="x"),
                 lambda: b.workflows.blocks.delete("transform", workflow_id=one),
                 lambda: b.workflows.blocks.create(one, "note"),
                 lambda: b.workflows.blocks.create_block_validate_config(
                     "transform", {}, workflow_id=one),
                 lambda: b.workflows.edges.list(one),
                 lambda: b.workflows.edges.get(edge_one),
                 lambda: b.workflows.edges.delete(edge_one),
                 lambda: b.workflows.edges.create(one, "invoice_in", "transform"),
                 lambda: b.workflows.blocks.list_versions(one),
                 lambda: b.workflows.edges.list_versions(one)):
        assert error_of(call).status_code == 404
    cursor = a.workflows.blocks.list(two, limit=1).list_metadata.after
    wrong = error_of(lambda: a.workflows.blocks.list(one, after=cursor))
    assert wrong.status_code == 422 and wrong.code == "INVALID_CURSOR"


def test_block_and_edge_versions(a: Retab, b: Retab) -> None:
    wid = a.workflows.apply(transform_spec("Block versions")).workflow_id
    first = list(a.workflows.blocks.list_versions(wid, block_id="transform"))
    assert len(first) == 1 and first[0].config_hash
    a.workflows.blocks.update("transform", workflow_id=wid,
                              config={"output_schema": {"required": ["label"]}})
    both = list(a.workflows.blocks.list_versions(wid, block_id="transform"))
    assert [v.id for v in both][1] == first[0].id  # newest first
    diff = a.workflows.blocks.list_diff(first[0].id, both[0].id)
    assert [c.field for c in diff.changes] == ["config"]
    assert a.workflows.blocks.get_version(first[0].id).block_id == "transform"
    by_version = list(a.workflows.blocks.list_versions(
        wid, workflow_version_id=first[0].workflow_version_id))
    assert {v.block_id for v in by_version} == {"invoice_in", "transform"}
    restored = a.workflows.blocks.create_version_restore(first[0].id)
    assert restored.config["output_schema"]["required"] == ["label", "doubled_total"]

    edge = a.workflows.edges.list(wid).data[0]
    edge_versions = list(a.workflows.edges.list_versions(wid, edge_id=edge.id))
    assert len(edge_versions) == 1
    assert a.workflows.edges.get_version(edge_versions[0].id).edge_id == edge.id
    a.workflows.edges.delete(edge.id, workflow_id=wid)
    assert a.workflows.edges.list(wid).data == []
    back = a.workflows.edges.create_version_restore(edge_versions[0].id)
    assert back.id == edge.id and a.workflows.edges.list(wid).data[0].id == edge.id
    same = a.workflows.edges.list_diff(edge_versions[0].id, edge_versions[0].id)
    assert same.changes == []
    for call in (lambda: b.workflows.blocks.get_version(first[0].id),
                 lambda: b.workflows.blocks.list_diff(first[0].id, both[0].id),
                 lambda: b.workflows.blocks.create_version_restore(first[0].id),
                 lambda: b.workflows.edges.get_version(edge_versions[0].id),
                 lambda: b.workflows.edges.list_diff(edge_versions[0].id, edge_versions[0].id),
                 lambda: b.workflows.edges.create_version_restore(edge_versions[0].id)):
        assert error_of(call).status_code == 404
    mixed = error_of(lambda: a.workflows.blocks.list_diff(
        first[0].id, next(v for v in by_version if v.block_id == "invoice_in").id))
    assert mixed.status_code == 422


def test_deleting_a_block_takes_its_edges(a: Retab) -> None:
    wid = a.workflows.apply(transform_spec("Delete block")).workflow_id
    a.workflows.blocks.delete("transform", workflow_id=wid)
    assert [x.id for x in a.workflows.blocks.list(wid).data] == ["invoice_in"]
    assert a.workflows.edges.list(wid).data == []
    assert error_of(lambda: a.workflows.blocks.delete("transform", workflow_id=wid)
                    ).status_code == 404


def test_a_draft_whose_block_lost_its_feed_is_not_published_or_run(a: Retab) -> None:
    """Deleting the start block leaves the function unfed: the edit is kept as a draft (a
    graph is built one block at a time), but publish and a run of the draft refuse it."""
    wid = a.workflows.apply(transform_spec("Unfed draft")).workflow_id
    a.workflows.publish(wid)
    a.workflows.blocks.delete("invoice_in", workflow_id=wid)
    refused = error_of(lambda: a.workflows.publish(wid))
    assert refused.status_code == 422 and "BLOCK_NOT_CONNECTED" in str(refused)
    refused = error_of(lambda: a.workflows.runs.create(wid, version="draft"))
    assert refused.status_code == 422 and "transform" in str(refused)
