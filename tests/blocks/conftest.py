"""Fixtures for block tests: a file store and a context factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from engine.contracts.blocks import BlockContext
from engine.contracts.values import LoopFrame
from tests.blocks.harness import MemoryFileStore


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
