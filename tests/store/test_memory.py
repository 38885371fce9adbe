"""The memory store as a test utility: the engine, the durable operations and the read
client work on it exactly as on SQLite."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from engine import Engine
from engine.contracts.errors import NotFoundError
from engine.contracts.store import Store
from engine.contracts.values import RunStatus
from engine.definition import Workflow
from store import Client, MemoryFileStore, MemoryStore, SQLiteStore

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _review_workflow() -> Workflow:
    return (Workflow.builder("review")
            .block("start", "start_json")
            .block("gate", "hil", config={"instructions": "check the amount"})
            .block("book", "function", config={"output_schema": {"type": "object"},
                                               "code": textwrap.dedent("""
                def transform(data):
                    return {"booked": data.amount}
                """)})
            .edge("start", "gate", target_handle="input-json-0")
            .edge("gate", "book", source_handle="output-json-0")
            .build())


def _story(store: Store) -> list[Any]:
    """Run an example and a reviewed workflow on ``store``; what a reader sees of them."""
    seen: list[Any] = []
    with Engine(store=store) as engine:
        folder = EXAMPLES / "order_pricing"
        result = engine.run(folder / "workflow.yaml",
                            {"order_in": json.loads((folder / "orders.json").read_text())})
        client = Client(store=engine.store)
        steps = client.workflows.steps.list(result.run_id, limit=1000).data
        seen.append((result.ok, result.outputs, sorted(
            (s.step_id, s.lifecycle.status, json.dumps(
                s.model_dump(mode="json")["handle_outputs"], sort_keys=True)) for s in steps)))
        waiting = engine.run(_review_workflow(), {"start": {"amount": 100}})
        seen.append(waiting.status)
        [review] = engine.store.reviews(run_id=waiting.run_id)
        done = engine.decide(review.id, approved=True, data={"amount": 90}, has_data=True)
        assert done is not None
        book = client.workflows.steps.get("book", run_id=waiting.run_id)
        legacy = client.workflows.runs.steps.list(waiting.run_id)
        seen.append((done.status, book.handle_outputs["output-json-0"].data,
                     [(s.node_id, s.status, s.human_review_approved) for s in legacy],
                     [t["status"] for t in engine.store.transitions(waiting.run_id)]))
    return seen


def test_the_engine_runs_on_the_memory_store_as_on_sqlite() -> None:
    memory = _story(MemoryStore())
    assert memory[0][0] is True and memory[1] is RunStatus.AWAITING_REVIEW
    assert memory[2][:2] == (RunStatus.COMPLETED, {"booked": 90})
    assert memory == _story(SQLiteStore(":memory:"))


def test_memory_files() -> None:
    files = MemoryFileStore()
    ref = files.put_bytes(b"%PDF-1.4 x", "a.pdf")
    assert ref.mime_type == "application/pdf"
    assert files.read_bytes(ref) == files.read_bytes(ref.id) == b"%PDF-1.4 x"
    with pytest.raises(NotFoundError, match="memory store"):
        files.read_bytes("file_" + "0" * 24)
