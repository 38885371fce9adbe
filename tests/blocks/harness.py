"""Block test harness: an in-memory file store and a direct handler runner."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from blocks.base import BlockType
from engine.contracts.blocks import BlockContext, BlockResult
from engine.contracts.values import FileRef, Payload


class MemoryFileStore:
    """A content-addressed FileStore kept in a dict."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def put_bytes(self, data: bytes, filename: str, mime_type: str | None = None) -> FileRef:
        file_id = "file_" + hashlib.sha256(data).hexdigest()[:24]
        self.blobs[file_id] = data
        return FileRef(
            id=file_id, filename=filename, mime_type=mime_type or "application/octet-stream"
        )

    def read_bytes(self, ref: FileRef) -> bytes:
        return self.blobs[ref.id]


def parse(impl: BlockType, raw: Mapping[str, Any]) -> Any:
    """``impl.parse_config(raw)``, typed loosely so tests can read the concrete fields."""
    return impl.parse_config(raw)


async def run_block(
    impl: BlockType,
    ctx: BlockContext,
    config: Mapping[str, Any] | Any = None,
    inputs: Mapping[str, Any] | None = None,
) -> BlockResult:
    """Parse ``config`` (a dict) and run ``impl``; plain input values become JSON payloads."""
    parsed = parse(impl, config or {}) if isinstance(config, Mapping) or config is None else config
    payloads = {
        h: v if isinstance(v, Payload) else Payload.json(v) for h, v in (inputs or {}).items()
    }
    return await impl.run(ctx, parsed, payloads)
