"""split_by_key review: the proposal, corrected partitions, and approval through the engine."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from blocks.for_each import ForEach
from blocks.partition import corrected_partitions, items_after_review
from blocks.pdf import page_count
from engine import Engine, Workflow
from engine.contracts.blocks import ExpandItems, ReviewDecision
from engine.contracts.errors import InputError, UsageError
from engine.contracts.values import FileRef, Payload, RunStatus
from tests.blocks import pdfs
from tests.blocks.conftest import MakeCtx
from tests.blocks.harness import MemoryFileStore, parse, run_block

REVIEW = {"predicate": {"kind": "split_count_neq", "expected": 2}}
PROPOSED = [("A-100", [1, 2]), ("B-200", [3]), ("C-300", [4, 5])]
CORRECTED = {"partitions": [{"key": "A-100", "pages": [1, 2, 3]},
                            {"key": "C-300", "pages": [4, 5]}]}


def _proposal(files: MemoryFileStore) -> dict[str, Any]:
    source = files.put_bytes(pdfs.invoices_by_number(), "batch.pdf", "application/pdf")
    return {"operation": "partition", "key": "invoice number", "file": source.to_dict(),
            "page_count": 5, "partitions": [
                {"key": "A-100", "pages": [1, 2], "confidence": 1.0,
                 "file": files.put_bytes(b"%PDF-a", "batch_a-100.pdf").to_dict()}]}


@pytest.mark.anyio
async def test_a_fired_review_carries_the_proposal(make_ctx: MakeCtx,
                                                   files: MemoryFileStore) -> None:
    doc = Payload.file(files.put_bytes(pdfs.invoices_by_number(), "batch.pdf"))
    cfg = {"map_method": "split_by_key", "key": "invoice number", "review": REVIEW}
    result = await run_block(ForEach(), make_ctx("for_each", "each"), cfg, {"fe-left-in": doc})
    assert isinstance(result.control, ExpandItems) and result.review is not None
    proposal = result.review["proposal"]
    assert proposal["file"] == doc.to_dict()["document"] and proposal["page_count"] == 5
    assert [(p["key"], p["pages"]) for p in proposal["partitions"]] == PROPOSED
    assert [p["file"] for p in proposal["partitions"]] == [
        i.to_dict()["document"] for i in result.control.items]


@pytest.mark.anyio
async def test_a_text_document_under_review_keeps_its_pdf(make_ctx: MakeCtx,
                                                          files: MemoryFileStore) -> None:
    text = b"Invoice number: X-1\nTotal: 1\f\nInvoice number: Y-2\nTotal: 2"
    doc = Payload.file(files.put_bytes(text, "batch.txt"))
    cfg = {"map_method": "split_by_key", "key": "invoice number",
           "review": {"predicate": {"kind": "always"}}}
    result = await run_block(ForEach(), make_ctx("for_each", "each"), cfg, {"fe-left-in": doc})
    assert result.review is not None
    proposal = result.review["proposal"]
    source = proposal["file"]
    assert source["filename"] == "batch.pdf" and source["mime_type"] == "application/pdf"
    assert files.read_bytes(FileRef(**source)).startswith(b"%PDF")
    assert proposal["page_count"] == 2
    assert [(p["key"], p["pages"]) for p in proposal["partitions"]] == [("X-1", [1]),
                                                                        ("Y-2", [2])]


def test_corrected_partitions_are_checked(files: MemoryFileStore) -> None:
    proposal = _proposal(files)
    assert corrected_partitions(proposal, CORRECTED) == CORRECTED["partitions"]
    assert corrected_partitions(proposal, CORRECTED["partitions"]) == CORRECTED["partitions"]
    with pytest.raises(UsageError, match="must be the partitions"):
        corrected_partitions(proposal, {"amount": 3})
    with pytest.raises(UsageError, match="at least one page"):
        corrected_partitions(proposal, [{"key": "A", "pages": []}])
    with pytest.raises(UsageError, match=r"names page\(s\) \[0, 9\].*from 1 to 5"):
        corrected_partitions(proposal, [{"key": "A", "pages": [0, 1, 9]}])


def test_items_after_review(files: MemoryFileStore) -> None:
    proposal = _proposal(files)
    items, artifact = items_after_review(files, proposal, corrected=False)
    assert [i.to_dict()["document"] for i in items] == [proposal["partitions"][0]["file"]]
    assert artifact is None
    items, artifact = items_after_review(files, proposal, corrected=True, data=CORRECTED)
    assert [i.document.filename for i in items if i.document] == [
        "batch_a-100.pdf", "batch_c-300.pdf"]
    assert [page_count(files.read_bytes(i.document)) for i in items if i.document] == [3, 2]
    assert artifact is not None and artifact["corrected_by_review"]
    assert artifact["unassigned_pages"] == []
    assert artifact["proposed_output"]["partitions"] == proposal["partitions"]


def test_corrected_pages_are_cut_in_the_pdf_subprocess(files: MemoryFileStore,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import blocks.pdf

    def in_process(*args: Any) -> bytes:
        raise AssertionError("the corrected pages were cut in the engine's process")

    monkeypatch.setattr(blocks.pdf, "page_subset", in_process)
    items, _ = items_after_review(files, _proposal(files), corrected=True, data=CORRECTED)
    assert [page_count(files.read_bytes(i.document)) for i in items if i.document] == [3, 2]


def test_the_cut_keeps_to_the_document_budgets(files: MemoryFileStore) -> None:
    from engine.contracts.policy import DocumentLimits

    with pytest.raises(UsageError, match="5 pages, more than the 4 allowed"):
        items_after_review(files, _proposal(files), corrected=True, data=CORRECTED,
                           limits=DocumentLimits(max_pages=4))
    started = time.monotonic()
    with pytest.raises(UsageError, match="over the document budget"):
        items_after_review(files, _proposal(files), corrected=True, data=CORRECTED,
                           limits=DocumentLimits(wall_seconds=0.01))  # killed at once
    assert time.monotonic() - started < 20


def test_for_each_review_hooks(files: MemoryFileStore) -> None:
    impl = ForEach()
    config = parse(impl, {"map_method": "split_by_key", "key": "invoice number",
                          "max_concurrency": 2, "on_item_error": "skip", "review": REVIEW})
    proposal = _proposal(files)
    review = {"triggered_by": "split_count_neq", "evaluations": [], "proposal": proposal}
    impl.validate_decision(config, proposal, CORRECTED)
    with pytest.raises(InputError, match=r"page\(s\) \[7\]"):
        impl.validate_decision(config, proposal, [{"key": "A-100", "pages": [1, 7]}])
    assert impl.result_after_review(config, files, review, ReviewDecision(approved=False)) is None
    kept = impl.result_after_review(config, files, review, ReviewDecision(approved=True))
    assert kept is not None and kept.artifact is None and kept.review == review
    assert kept.control == ExpandItems(items=[Payload.file(FileRef(**proposal["partitions"][0][
        "file"]))], max_concurrency=2, on_item_error="skip", item_keys=["A-100"])
    fixed = impl.result_after_review(config, files, review, ReviewDecision(
        approved=True, data=CORRECTED, has_data=True))
    assert fixed is not None and isinstance(fixed.control, ExpandItems)
    assert len(fixed.control.items) == 2 and fixed.control.on_item_error == "skip"
    assert fixed.control.item_keys == [p["key"] for p in CORRECTED["partitions"]]
    assert fixed.artifact is not None and fixed.artifact["review"] == {
        "triggered_by": "split_count_neq", "evaluations": []}


# ----------------------------------------------------------------------------- engine


def _workflow() -> Workflow:
    return (Workflow.builder("reviewed partitions")
            .block("upload", "start_document")
            .block("each", "for_each", config={"map_method": "split_by_key",
                                               "key": "invoice number", "review": REVIEW})
            .block("read", "parse", parent="each")
            .block("done", "end")
            .edge("upload", "each", source_handle="output-file-0", target_handle="fe-left-in")
            .edge("each", "done", source_handle="fe-right-out", target_handle="input-json-0")
            .build())


def _wait(tmp_path: Path) -> tuple[Path, str, str]:
    document = tmp_path / "batch.pdf"
    document.write_bytes(pdfs.invoices_by_number())
    db = tmp_path / "run.db"
    with Engine(db) as engine:
        waiting = engine.run(_workflow(), {"upload": document})
        assert waiting.status is RunStatus.AWAITING_REVIEW and waiting.waiting_for == ["each"]
        steps = {s.step_id for s in engine.client.workflows.steps.list(waiting.run_id).data}
        assert not any("_iter_" in s for s in steps)  # nothing iterates before the decision
        [review] = engine.store.reviews(run_id=waiting.run_id)
    assert review.step_id == "each"
    assert [(p["key"], p["pages"]) for p in review.data["review"]["proposal"]["partitions"]
            ] == PROPOSED
    return db, waiting.run_id, review.id


def _page_counts(result: Any) -> list[int]:
    return [len(item["pages"]) for item in result.outputs["done"]["input-json-0"]["data"]]


def test_approval_expands_the_proposed_partitions(tmp_path: Path) -> None:
    db, run_id, review_id = _wait(tmp_path)
    with Engine(db) as other:  # another process decides
        done = other.decide(review_id, approved=True)
        assert done is not None and done.ok, done
        each = other.client.workflows.steps.get("each", run_id=run_id)
        assert each.artifact is not None
        record = other.client.api.get_artifact(each.artifact.id)
    assert _page_counts(done) == [2, 1, 2]
    assert each.lifecycle.status == "completed" and each.model == "offline"
    assert [(p["key"], p["pages"]) for p in record["output"]["partitions"]] == PROPOSED
    assert "corrected_by_review" not in record


def test_approval_with_corrected_partitions(tmp_path: Path) -> None:
    db, run_id, review_id = _wait(tmp_path)
    with Engine(db) as other:
        with pytest.raises(UsageError, match=r"page\(s\) \[7\]"):
            other.decide(review_id, approved=True, has_data=True,
                         data=[{"key": "A-100", "pages": [1, 7]}])
        assert other.store.review(review_id).decision is None  # a bad correction is refused
        done = other.decide(review_id, approved=True, data=CORRECTED, has_data=True)
        assert done is not None and done.ok, done
        each = other.client.workflows.steps.get("each", run_id=run_id)
        assert each.artifact is not None
        record = other.client.api.get_artifact(each.artifact.id)
        steps = {s.step_id for s in other.client.workflows.steps.list(run_id, limit=100).data}
    assert _page_counts(done) == [3, 2]
    assert {"each_iter_0_read", "each_iter_1_read"} <= steps and "each_iter_2_read" not in steps
    assert [(p["key"], p["pages"]) for p in record["output"]["partitions"]] == [
        ("A-100", [1, 2, 3]), ("C-300", [4, 5])]
    assert [(p["key"], p["pages"]) for p in record["proposed_output"]["partitions"]] == PROPOSED
    assert record["corrected_by_review"] is True
    assert record["model"] == "offline" and record["usage"]["model"] == "offline"
    assert record["review"]["triggered_by"] == "split_count_neq"


def test_rejection_skips_what_depends_on_the_container(tmp_path: Path) -> None:
    db, run_id, review_id = _wait(tmp_path)
    with Engine(db) as other:
        done = other.decide(review_id, approved=False, reason="wrong key")
        assert done is not None and done.status is RunStatus.COMPLETED, done
        each = other.client.workflows.steps.get("each", run_id=run_id)
        end = other.client.workflows.steps.get("done", run_id=run_id)
        steps = {s.step_id for s in other.client.workflows.steps.list(run_id).data}
    assert each.lifecycle.status == "cancelled"
    assert end.lifecycle.status == "skipped"
    assert end.lifecycle.reason == "review_rejected: each"
    assert not any("_iter_" in s for s in steps)
