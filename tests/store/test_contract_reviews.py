"""The store contract suite, continued: reviews and their versions, the workflow registry,
the review queue and run queries. Every implementation, through the protocols only."""

from __future__ import annotations

import pytest

from engine.contracts.errors import ConflictError, InputError, NotFoundError, UsageError
from engine.contracts.events import RunUpdate
from engine.contracts.reads import ReviewFilters, RunFilters
from engine.contracts.records import review_id_for, version_id_for
from engine.contracts.store import Store
from engine.contracts.values import Payload, RunStatus
from store.api import ReadAPI
from tests.store.helpers import T0, S, ev, lifecycle, new_run


def _await_review(store: Store, run_id: str = "run_1", step_id: str = "gate",
                  now: float = T0) -> str:
    proposed = {"output-json-0": Payload.json({"amount": 100})}
    store.apply(run_id, lifecycle(step_id, block_type="extract")[:3] + [ev(
        step_id, S.AWAITING_REVIEW, outputs=proposed, control={"review": {"why": "amount"}},
        block_type="extract")],
        RunUpdate(status=RunStatus.AWAITING_REVIEW, waiting_for_block_ids=[step_id]), now=now)
    return review_id_for(run_id, step_id)


# ------------------------------------------------------------------ reviews


def test_awaiting_review_opens_a_review(store: Store) -> None:
    store.create_run(new_run(), now=T0)
    rid = _await_review(store)
    [review] = store.reviews(run_id="run_1")
    assert review.id == rid
    assert (review.step_id, review.block_id, review.status) == ("gate", "gate", "pending")
    assert review.data == {"outputs": {"output-json-0": {"type": "json", "data": {"amount": 100}}},
                           "review": {"why": "amount"}}
    decided, changed = store.decide_review(review.id, approved=True, data={"amount": 90},
                                           has_data=True, now=T0 + 5)
    assert changed and decided.decision == "approved" and decided.decided_at == T0 + 5
    assert store.review(review.id).decision_data == {"data": {"amount": 90}}
    assert store.reviews(status="approved")[0].id == review.id
    assert store.reviews(status="pending") == []
    store.apply("run_1", [ev("gate", S.COMPLETED)], now=T0 + 6)
    [legacy] = ReadAPI(store).list_legacy_steps("run_1")
    assert legacy.requires_human_review and legacy.human_review_approved is True
    assert legacy.human_reviewed_at is not None
    with pytest.raises(NotFoundError):
        store.review("rev_missing")


def test_decisions_are_final(store: Store) -> None:
    store.create_run(new_run(), now=T0)
    rid = _await_review(store)
    with pytest.raises(InputError, match="rejection carries no data"):
        store.decide_review(rid, approved=False, data={"x": 1}, has_data=True, now=T0)
    with pytest.raises(NotFoundError):
        store.decide_review("rev_missing", approved=True, now=T0)
    review, changed = store.decide_review(rid, approved=False, reason="wrong", now=T0 + 1)
    assert changed and review.reason == "wrong" and review.status == "rejected"
    again, changed = store.decide_review(rid, approved=False, now=T0 + 2)
    assert not changed and again.decided_at == T0 + 1
    with pytest.raises(ConflictError, match="already rejected.*rerun"):
        store.decide_review(rid, approved=True, now=T0 + 3)


def test_reviews_are_listed_newest_first(store: Store) -> None:
    for n in range(3):
        store.create_run(new_run(f"run_{n}"), now=T0)
        _await_review(store, f"run_{n}", now=T0 + n)
    assert [r.run_id for r in store.reviews()] == ["run_2", "run_1", "run_0"]
    assert [r.run_id for r in store.reviews(limit=2)] == ["run_2", "run_1"]
    assert len(store.reviews(limit=None)) == 3


def test_review_versions(store: Store) -> None:
    store.create_run(new_run(), now=T0)
    rid = _await_review(store)
    proposal_id = version_id_for(rid, None, {"amount": 100})
    first = store.add_review_version(review_id=rid, parent_id=proposal_id,
                                     snapshot={"amount": 90}, note="typo", author_id="ann",
                                     now=T0 + 1)
    assert first.id == version_id_for(rid, proposal_id, {"amount": 90})
    assert (first.parent_id, first.snapshot, first.author_kind) == (
        proposal_id, {"amount": 90}, "human")
    same = store.add_review_version(review_id=rid, parent_id=proposal_id,
                                    snapshot={"amount": 90}, note="again", author_id="bob",
                                    now=T0 + 2)
    assert same == first                                   # idempotent: the first one stays
    second = store.add_review_version(review_id=rid, parent_id=first.id,
                                      snapshot={"amount": 80}, note=None, author_id="ann",
                                      now=T0 + 3)
    assert [v.id for v in store.review_versions(rid)] == [first.id, second.id]
    assert store.review_version(second.id) == second
    assert store.review_versions("rev_other") == []
    with pytest.raises(NotFoundError, match="review version"):
        store.review_version("rvv_missing")


# ------------------------------------------------------------------ review queue


def test_review_queue_entries(store: Store) -> None:
    store.create_run(new_run("run_a", organization_id="org_a"), now=T0)
    store.create_run(new_run("run_b", organization_id="org_b"), now=T0)
    ra = _await_review(store, "run_a", now=T0 + 1)
    rb = _await_review(store, "run_b", now=T0 + 2)
    entry = store.read_review_entry(ra, organization_id="org_a")
    assert (entry.run_id, entry.block_type, entry.workflow_id, entry.run_status) == (
        "run_a", "extract", "wf_1", "awaiting_review")
    assert entry.definition == {"blocks": []} and entry.data["review"] == {"why": "amount"}
    assert entry.to_dict()["note"] is None
    with pytest.raises(NotFoundError, match="GET /v1/workflows/reviews"):
        store.read_review_entry(rb, organization_id="org_a")
    page = store.page_review_entries(ReviewFilters())
    assert [e.id for e in page.items] == [ra, rb] and not page.more_after
    assert [e.id for e in store.page_review_entries(ReviewFilters(), descending=True).items] == [
        rb, ra]
    first = store.page_review_entries(ReviewFilters(), limit=1)
    assert [e.id for e in first.items] == [ra] and first.more_after and not first.more_before
    nxt = store.page_review_entries(ReviewFilters(), limit=1, after=ra)
    assert [e.id for e in nxt.items] == [rb] and nxt.more_before and not nxt.more_after
    back = store.page_review_entries(ReviewFilters(), limit=1, before=rb)
    assert [e.id for e in back.items] == [ra] and back.more_after
    assert store.page_review_entries(ReviewFilters(run_id="run_b")).items[0].id == rb
    assert store.page_review_entries(ReviewFilters(), organization_id="org_b").items[0].id == rb
    with pytest.raises(NotFoundError):
        store.page_review_entries(ReviewFilters(), after="rev_garbage")
    with pytest.raises(UsageError):
        store.page_review_entries(ReviewFilters(), limit=0)


def test_review_queue_decision_statuses(store: Store) -> None:
    for run_id in ("r_ok", "r_no", "r_open", "r_gone"):
        store.create_run(new_run(run_id), now=T0)
        _await_review(store, run_id)
    store.decide_review(review_id_for("r_ok", "gate"), approved=True, now=T0 + 1)
    store.decide_review(review_id_for("r_no", "gate"), approved=False, now=T0 + 1)
    store.apply("r_gone", [ev("gate", S.CANCELLED)],
                RunUpdate(status=RunStatus.CANCELLED, reason="stop"), now=T0 + 1)

    def runs(status: str) -> list[str]:
        page = store.page_review_entries(ReviewFilters(decision_status=status))
        return sorted(e.run_id for e in page.items)

    assert runs("pending") == ["r_open"]
    assert runs("approved") == ["r_ok"] and runs("rejected") == ["r_no"]
    assert runs("decided") == ["r_no", "r_ok"]
    assert runs("cancelled") == ["r_gone"]
    assert runs("all") == ["r_gone", "r_no", "r_ok", "r_open"]


# ------------------------------------------------------------------ run queries


def test_run_filters(store: Store) -> None:
    store.create_run(new_run("run_a", workflow_id="wf_x", workflow_name="Invoices",
                             metadata={"team": "ops"}, trigger="api"), now=T0)
    store.create_run(new_run("run_b", workflow_id="wf_y", workflow_name="Receipts_2"), now=T0 + 1)
    store.create_run(new_run("run_c", workflow_id="wf_y", workflow_name="Other",
                             organization_id="org_z"), now=T0 + 2)
    store.apply("run_b", [], RunUpdate(status=RunStatus.RUNNING), now=T0 + 3)
    store.apply("run_b", [], RunUpdate(status=RunStatus.COMPLETED), now=T0 + 5)

    def ids(org: str | None = None, **filters: object) -> list[str]:
        page = store.page_runs(RunFilters(**filters), organization_id=org)  # type: ignore[arg-type]
        return [r.id for r in page.items]

    assert ids() == ["run_c", "run_b", "run_a"]
    assert ids("org_local") == ["run_b", "run_a"]
    assert ids(statuses=["completed"]) == ["run_b"]
    assert ids(exclude_statuses=["completed"]) == ["run_c", "run_a"]
    assert ids(workflow_id="wf_y") == ["run_c", "run_b"]
    assert ids(trigger_types=["api"]) == ["run_a"]
    assert ids(created_from=T0 + 1, created_to=T0 + 2) == ["run_b"]
    assert ids(min_duration_ms=2000, max_duration_ms=2000) == ["run_b"]
    assert ids(min_duration_ms=2001) == []
    assert ids(search="INVOICE") == ["run_a"]
    assert ids(search="s_2") == ["run_b"] and ids(search="%") == []
    assert ids(metadata={"team": "ops"}) == ["run_a"]
    assert ids(metadata={"team": "dev"}) == []
    oldest = store.page_runs(RunFilters(), limit=2, descending=False)
    assert [r.id for r in oldest.items] == ["run_a", "run_b"] and oldest.more_after
    with pytest.raises(NotFoundError):
        store.page_runs(RunFilters(), after="run_c", organization_id="org_local")
    record = store.read_run("run_b")
    assert (record.status, record.started_at, record.completed_at) == ("completed", T0 + 3, T0 + 5)


# ------------------------------------------------------------------ workflows


def test_workflow_registry(store: Store) -> None:
    v1 = {"metadata": {"name": "inv", "description": "Invoices"}, "blocks": []}
    created = store.apply_workflow(name="inv", version_id="d1", definition=v1, yaml="a: 1",
                                   organization_id="org_a", now=T0)
    wf = created.workflow
    assert created.action == "create" and wf.id.startswith("wf_") and len(wf.id) == 23
    assert (wf.name, wf.description, wf.version_id, wf.yaml) == ("inv", "Invoices", "d1", "a: 1")
    assert (wf.created_at, wf.updated_at) == (T0, T0)
    same = store.apply_workflow(name="inv", version_id="d1", definition=v1, yaml="a: 1",
                                organization_id="org_a", workflow_id=wf.id, now=T0 + 1)
    assert same.action == "noop" and same.workflow == wf
    v2 = {**v1, "blocks": [{"id": "x"}]}
    updated = store.apply_workflow(name="inv2", version_id="d2", definition=v2, yaml="a: 2",
                                   organization_id="org_a", workflow_id=wf.id, now=T0 + 2)
    assert updated.action == "update" and updated.workflow.version_id == "d2"
    assert (updated.workflow.created_at, updated.workflow.updated_at) == (T0, T0 + 2)
    assert store.get_workflow(wf.id, "org_a").name == "inv2"
    assert store.workflow_version(wf.id, "org_a", "draft").id == "d2"
    assert store.workflow_version(wf.id, "org_a").id == "d1"  # apply changed the draft only
    assert store.workflow_version(wf.id, "org_a", "production").definition == v1
    assert store.workflow_version(wf.id, "org_a", "ver_d1").definition == v1
    with pytest.raises(NotFoundError, match="version='production'"):
        store.workflow_version(wf.id, "org_a", "d9")
    with pytest.raises(NotFoundError, match="spec/apply"):
        store.get_workflow(wf.id, "org_b")
    with pytest.raises(NotFoundError):
        store.apply_workflow(name="x", version_id="d3", definition=v1, yaml="", now=T0,
                             organization_id="org_b", workflow_id=wf.id)


def test_workflow_listing_pages(store: Store) -> None:
    ids = [store.apply_workflow(name=f"w{i}", version_id=f"d{i}", definition={}, yaml="",
                                organization_id="org_a", now=T0 + i).workflow.id
           for i in range(5)]
    store.apply_workflow(name="other", version_id="d", definition={}, yaml="",
                         organization_id="org_b", now=T0)
    page = store.list_workflows("org_a", limit=2)
    assert [w.id for w in page.items] == ids[::-1][:2]
    assert (page.more_before, page.more_after) == (False, True)
    nxt = store.list_workflows("org_a", limit=2, after=ids[3])
    assert [w.id for w in nxt.items] == [ids[2], ids[1]] and nxt.more_before and nxt.more_after
    back = store.list_workflows("org_a", limit=2, before=ids[2])
    assert [w.id for w in back.items] == [ids[4], ids[3]]
    oldest = store.list_workflows("org_a", limit=10, descending=False)
    assert [w.id for w in oldest.items] == ids and not oldest.more_after
    with pytest.raises(NotFoundError, match="Cursors"):
        store.list_workflows("org_b", after=ids[0])
