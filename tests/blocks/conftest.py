"""Fixtures for block tests: a file store, a context factory, provider call constants."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from blocks.providers import CallContext, Label
from engine.contracts.blocks import BlockContext
from engine.contracts.values import LoopFrame
from tests.blocks.harness import MemoryFileStore

#: The call context provider tests pass (an extract step).
CALL_CTX = CallContext(run_id="run_1", step_id="read", block_id="read", block_type="extract")
#: The invoice fields the offline and openai extract tests ask for.
INVOICE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "invoice_number": {"type": "string"},
        "issue_date": {"type": "string", "format": "date"},
        "supplier": {"type": "string", "description": "the vendor or seller"},
        "total_amount": {"type": "number"},
        "currency": {"type": "string"},
    },
    "required": ["invoice_number", "total_amount"],
}

#: The categories the classify tests route between.
CATEGORIES = [Label(name="invoice", description="a bill with invoice number and total due"),
              Label(name="receipt", description="proof of payment from a shop or till"),
              Label(name="other", description="anything else")]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def files() -> MemoryFileStore:
    return MemoryFileStore()


MakeCtx = Callable[..., BlockContext]


@pytest.fixture
def make_ctx(files: MemoryFileStore) -> MakeCtx:
    def make(
        block_type: str = "test",
        block_id: str = "blk",
        *,
        iteration: int | None = None,
        **kwargs: Any,
    ) -> BlockContext:
        scope = (
            (LoopFrame(container_id="loop", iteration=iteration),) if iteration is not None else ()
        )
        return BlockContext(
            run_id="run_1",
            step_id=block_id,
            block_id=block_id,
            block_type=block_type,
            label=block_id,
            scope=scope,
            files=files,
            **kwargs,
        )

    return make
