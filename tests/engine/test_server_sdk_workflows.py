"""Workflows, drafts and published versions through the SDK against ``stepwell serve``.

``client.workflows``: list (sort, order, project filter), get, create, update, delete,
spec get/validate, plan, apply (new and to a workflow), publish, list_versions,
get_version, list_diff, discard_draft, create_version_restore; and
``runs.create(version=...)`` running the draft, the published version or a version id.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from retab import Retab

from tests.engine.sdk_server import (
    INVOICE,
    KEY_A,
    KEY_B,
    LABEL,
    ServeProcess,
    error_of,
    transform_spec,
    wait_for,
)


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with ServeProcess(tmp_path_factory.mktemp("workflows")) as process:
        yield process


@pytest.fixture(scope="module")
def a(serve: ServeProcess) -> Retab:
    return serve.client(KEY_A)


@pytest.fixture(scope="module")
def b(serve: ServeProcess) -> Retab:
    return serve.client(KEY_B)


def output_of(client: Retab, run_id: str) -> dict[str, object]:
    step = client.workflows.steps.get("transform", run_id=run_id)
    return dict(step.handle_outputs["output-json-0"].data)


def test_create_update_get_list_delete(a: Retab, b: Retab) -> None:
    created = a.workflows.create(project_id="proj_alpha", name="Empty", description="d1")
    assert created.published is None and created.project_id == "proj_alpha"
    blocks = a.workflows.blocks.list(created.id).data
    assert [(x.type.value, x.label) for x in blocks] == [("start_document", "Document")]
    renamed = a.workflows.update(created.id, name="Renamed", description="d2")
    assert (renamed.name, renamed.description) == ("Renamed", "d2")
    assert a.workflows.get(created.id).name == "Renamed"
    other = a.workflows.create(project_id="proj_beta", name="Other")
    in_alpha = [w.id for w in a.workflows.list(project_id="proj_alpha", limit=100).data]
    assert created.id in in_alpha and other.id not in in_alpha
    by_created = [w.id for w in a.workflows.list(sort_by="created_at", order="asc",
                                                 limit=100).data]
    assert by_created.index(created.id) < by_created.index(other.id)
    a.workflows.update(created.id, name="Touched")  # now the most recently changed
    assert a.workflows.list(sort_by="updated_at", order="desc", limit=1).data[0].id == created.id
    assert error_of(lambda: b.workflows.get(created.id)).status_code == 404
    assert error_of(lambda: b.workflows.update(created.id, name="x")).status_code == 404
    assert error_of(lambda: b.workflows.delete(created.id)).status_code == 404
    a.workflows.delete(created.id)
    assert error_of(lambda: a.workflows.get(created.id)).status_code == 404
    assert created.id not in [w.id for w in a.workflows.list(limit=100).data]


def test_apply_publishes_first_then_changes_the_draft(a: Retab, b: Retab) -> None:
    spec = transform_spec("Drafts")
    plan = a.workflows.plan(spec)
    assert plan.action == "create" and plan.summary.has_changes
    applied = a.workflows.apply(spec, project_id="proj_drafts")
    wid = applied.workflow_id
    first = a.workflows.get(wid)
    assert first.published is not None and first.project_id == "proj_drafts"
    v1 = first.published.version_id
    assert a.workflows.plan(spec, workflow_id=wid).action == "noop"

    changed = spec.replace("* 2", "* 3")
    assert a.workflows.plan(changed, workflow_id=wid).action == "update"
    assert a.workflows.apply(changed, workflow_id=wid).action == "update"
    assert a.workflows.get(wid).published.version_id == v1  # apply changed the draft only
    assert "* 3" in a.workflows.spec.get(wid).yaml_definition

    doubled = a.workflows.runs.create(wid, json_inputs={"invoice_in": INVOICE})
    tripled = a.workflows.runs.create(wid, json_inputs={"invoice_in": INVOICE}, version="draft")
    pinned = a.workflows.runs.create(wid, json_inputs={"invoice_in": INVOICE}, version=v1)
    for run in (doubled, tripled, pinned):
        assert wait_for(a, run.id).lifecycle.status == "completed"
    assert output_of(a, doubled.id) == {"label": LABEL, "doubled_total": 1025.0}
    assert output_of(a, tripled.id) == {"label": LABEL, "doubled_total": 1537.5}
    assert doubled.workflow_version_id == pinned.workflow_version_id == v1
    assert tripled.workflow_version_id != v1

    published = a.workflows.publish(wid, description="triple it")
    assert published.published.version_id == tripled.workflow_version_id
    assert published.published.description == "triple it"
    assert error_of(lambda: b.workflows.publish(wid)).status_code == 404
    assert error_of(lambda: b.workflows.apply(spec, workflow_id=wid)).status_code == 404


def test_versions_diff_restore_and_discard(a: Retab, b: Retab) -> None:
    spec = transform_spec("Versions")
    wid = a.workflows.apply(spec).workflow_id
    v1 = a.workflows.get(wid).published.version_id
    bigger = spec.replace("  edges:", "    memo: {type: note, label: Memo}\n  edges:")
    a.workflows.apply(bigger, workflow_id=wid)
    v2 = a.workflows.get(wid).model_dump()["published"]["version_id"]
    assert v2 == v1  # not published yet
    versions = list(a.workflows.list_versions(wid))
    assert len(versions) == 2 and versions[-1].id == v1
    draft_id = versions[0].id
    one = a.workflows.get_version(draft_id, workflow_id=wid)
    assert {blk.id for blk in one.blocks} == {"invoice_in", "transform", "memo"}
    assert len(one.block_version_ids) == 3 and len(one.edge_version_ids) == 1
    diff = a.workflows.list_diff(wid, v1, draft_id)
    assert diff.added_block_ids == ["memo"] and not diff.removed_block_ids
    assert not diff.changed_block_ids and not diff.added_edge_ids

    restored = a.workflows.create_version_restore(v1, workflow_id=wid)
    assert restored.id == wid
    assert {x.id for x in a.workflows.blocks.list(wid).data} == {"invoice_in", "transform"}
    a.workflows.apply(bigger, workflow_id=wid)
    discarded = a.workflows.discard_draft(wid)
    assert discarded.published.version_id == v1
    assert "memo" not in {x.id for x in a.workflows.blocks.list(wid).data}

    for call in (lambda: b.workflows.list_versions(wid),
                 lambda: b.workflows.get_version(v1, workflow_id=wid),
                 lambda: b.workflows.list_diff(wid, v1, draft_id),
                 lambda: b.workflows.create_version_restore(v1, workflow_id=wid),
                 lambda: b.workflows.discard_draft(wid)):
        assert error_of(call).status_code == 404
    other = a.workflows.apply(transform_spec("Versions elsewhere").replace("* 2", "* 5"))
    foreign = a.workflows.get(other.workflow_id).published.version_id
    missing = error_of(lambda: a.workflows.get_version(foreign, workflow_id=wid))
    assert missing.status_code == 404  # a version id of another workflow
    assert error_of(lambda: a.workflows.create_version_restore(foreign, workflow_id=wid)
                    ).status_code == 404
    assert a.workflows.get(wid).published.version_id == v1  # nothing changed


def test_discarding_a_never_published_draft_is_a_conflict(a: Retab) -> None:
    created = a.workflows.create(project_id="proj_x")
    assert error_of(lambda: a.workflows.discard_draft(created.id)).status_code == 409
    unpublished = error_of(lambda: a.workflows.runs.create(
        created.id, documents={"document": b"%PDF-1.4 nothing"}))
    assert unpublished.status_code == 404 and "publish" in unpublished.message.lower()


def test_spec_validate_get_and_bad_input(a: Retab, b: Retab, serve: ServeProcess) -> None:
    spec = transform_spec("Spec")
    assert a.workflows.spec.validate(spec).is_valid
    wid = a.workflows.apply(spec).workflow_id
    assert a.workflows.spec.get(wid).yaml_definition == spec
    assert error_of(lambda: b.workflows.spec.get(wid)).status_code == 404
    http = serve.http(KEY_A)
    before = [w.id for w in a.workflows.list(limit=1000).data]
    for body in ({"name": "x"}, {"project_id": ""}, {"project_id": "p", "colour": "red"},
                 {"project_id": "p", "name": "n" * 300}):
        assert http.post("/v1/workflows", json=body).status_code == 422, body
    assert http.post("/v1/workflows", content=b"{not json",
                     headers={"content-type": "application/json"}).status_code == 422
    huge = {"project_id": "p", "description": "x" * (40 * 1024 * 1024)}
    assert http.post("/v1/workflows", json=huge).status_code == 413
    assert [w.id for w in a.workflows.list(limit=1000).data] == before
    after = http.get("/v1/workflows", params={"after": "wf_not_in_this_list"})
    assert after.status_code == 422 and after.json()["detail"]["code"] == "INVALID_CURSOR"
