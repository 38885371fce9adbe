"""The workflow draft and version contract (``WorkflowStore``), on every store: drafts,
publishing, compare-and-set saves, projects, ordering, deletion, run deletion."""

from __future__ import annotations

import pytest

from engine.contracts.errors import ConflictError, NotFoundError
from engine.contracts.evals import EvalDefinition
from engine.contracts.store import Store
from tests.store.helpers import T0, S, ev, new_run


def definition(n: int) -> dict[str, object]:
    return {"name": f"wf {n}", "blocks": [{"id": "a", "type": "note", "config": {"n": n}}],
            "edges": []}


def create(store: Store, wid: str, *, org: str = "org_a", publish: bool = True,
           project: str | None = "proj_1", at: float = T0) -> None:
    store.create_workflow(workflow_id=wid, name=f"name {wid}", description="about",
                          project_id=project, definition=definition(1), yaml="y1",
                          version_id="v1", organization_id=org, publish=publish, now=at)


def test_create_publish_and_draft(store: Store) -> None:
    create(store, "wf_1")
    first = store.get_workflow("wf_1", "org_a")
    assert (first.version_id, first.published_version_id, first.published_at) == ("v1", "v1", T0)
    assert (first.project_id, first.description, first.revision) == ("proj_1", "about", 0)
    saved = store.save_draft("wf_1", "org_a", definition=definition(2), yaml="", version_id="v2",
                             stamps={"block:a": T0 + 1}, expected_revision=0, now=T0 + 1)
    assert (saved.version_id, saved.published_version_id) == ("v2", "v1")
    assert saved.revision == 1 and saved.stamps == {"block:a": T0 + 1}
    assert saved.updated_at == T0 + 1 and saved.definition == definition(2)
    assert store.workflow_version("wf_1", "org_a", "production").id == "v1"
    assert store.workflow_version("wf_1", "org_a", None).id == "v1"
    assert store.workflow_version("wf_1", "org_a", "draft").id == "v2"
    assert store.workflow_version("wf_1", "org_a", "latest").id == "v2"
    assert store.workflow_version("wf_1", "org_a", "ver_v1").definition == definition(1)
    with pytest.raises(ConflictError):
        store.save_draft("wf_1", "org_a", definition=definition(3), yaml="", version_id="v3",
                         stamps={}, expected_revision=0, now=T0 + 2)
    published = store.publish_workflow("wf_1", "org_a", description="note", now=T0 + 3)
    assert (published.published_version_id, published.published_description) == ("v2", "note")
    assert published.published_at == T0 + 3
    assert [v.id for v in store.workflow_versions("wf_1", "org_a")] == ["v2", "v1"]
    with pytest.raises(NotFoundError):
        store.workflow_versions("wf_1", "org_b")


def test_an_unpublished_workflow_has_no_production(store: Store) -> None:
    create(store, "wf_1", publish=False)
    assert store.get_workflow("wf_1", "org_a").published_version_id is None
    with pytest.raises(NotFoundError, match="publish"):
        store.workflow_version("wf_1", "org_a", "production")
    assert store.workflow_version("wf_1", "org_a", "draft").id == "v1"


def test_update_delete_and_other_organizations(store: Store) -> None:
    create(store, "wf_1")
    create(store, "wf_2", org="org_b")
    renamed = store.update_workflow("wf_1", "org_a", name="New", description=None, now=T0 + 4)
    assert (renamed.name, renamed.description, renamed.updated_at) == ("New", "about", T0 + 4)
    for call in (lambda: store.get_workflow("wf_2", "org_a"),
                 lambda: store.update_workflow("wf_2", "org_a", name="x", now=T0),
                 lambda: store.publish_workflow("wf_2", "org_a", description="", now=T0),
                 lambda: store.save_draft("wf_2", "org_a", definition={}, yaml="",
                                          version_id="v9", stamps={}, expected_revision=None,
                                          now=T0),
                 lambda: store.workflow_versions("wf_2", "org_a"),
                 lambda: store.delete_workflow("wf_2", "org_a")):
        with pytest.raises(NotFoundError):
            call()
    store.save_eval(EvalDefinition(id="wfeval_1", workflow_id="wf_1", organization_id="org_a",
                                   name=None, block_id="a", source={}, handle_inputs={},
                                   assertion={}, created_at=T0, updated_at=T0))
    store.delete_workflow("wf_1", "org_a")
    with pytest.raises(NotFoundError):
        store.get_workflow("wf_1", "org_a")
    with pytest.raises(NotFoundError):
        store.get_eval("wfeval_1", "org_a")
    assert store.get_workflow("wf_2", "org_b").id == "wf_2"
    with pytest.raises(ConflictError):
        create(store, "wf_2", org="org_b")


def test_listing_by_project_and_sort(store: Store) -> None:
    create(store, "wf_1", project="p1", at=T0)
    create(store, "wf_2", project="p2", at=T0 + 1)
    create(store, "wf_3", project="p1", at=T0 + 2)
    store.update_workflow("wf_1", "org_a", name="touched", now=T0 + 9)

    def ids(**kw: object) -> list[str]:
        return [w.id for w in store.list_workflows("org_a", limit=10, **kw).items]  # type: ignore[arg-type]
    assert ids() == ["wf_3", "wf_2", "wf_1"]  # created_at by default
    assert ids(sort_by="updated_at") == ["wf_1", "wf_3", "wf_2"]
    assert ids(sort_by="updated_at", descending=False) == ["wf_2", "wf_3", "wf_1"]
    assert ids(project_id="p1") == ["wf_3", "wf_1"]
    with pytest.raises(NotFoundError):
        store.list_workflows("org_a", after="wf_2", project_id="p1")


def test_delete_run(store: Store) -> None:
    store.create_run(new_run(), now=T0)
    store.apply("run_1", [ev("a", S.PENDING)], now=T0)
    store.delete_run("run_1")
    with pytest.raises(NotFoundError):
        store.load_run("run_1")
    with pytest.raises(NotFoundError):
        store.read_run("run_1")
    assert store.load_steps("run_1") == []
    with pytest.raises(NotFoundError):
        store.delete_run("run_1")
