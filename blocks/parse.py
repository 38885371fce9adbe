"""The ``parse`` block: a document's text, page by page.

``input-file-0 -> output-json-0`` with ``{pages: [str], text: str}`` (``text`` is the
pages joined by a blank line). PDFs are read with pypdf in layout mode, so table
columns stay apart; text-like files (plain text, Markdown, CSV, JSON) are decoded;
PNG/JPEG need a provider with vision (``describe_image``), otherwise the step fails
with a permanent error that says so.

``table_parsing_format`` and ``instructions`` are recorded and passed to vision models;
the pypdf path keeps tables as aligned columns whatever the format. Artifact: ``parse``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from blocks.base import BlockType, StrictConfig
from blocks.documents import load_document, read_pages
from blocks.providers import Usage, provider_for, step_usage
from engine.contracts.blocks import BlockContext, BlockResult, HandleKind
from engine.contracts.values import Payload

OUTPUT_SCHEMA = {
    "type": "object",
    "properties": {"pages": {"type": "array", "items": {"type": "string"}},
                   "text": {"type": "string"}},
    "required": ["pages", "text"],
}


class ParseConfig(StrictConfig):
    """``model``, ``table_parsing_format``, ``instructions`` (plus Retab's
    ``image_resolution_dpi`` and ``browser_canvas``, accepted and recorded)."""

    model: str | None = None
    table_parsing_format: Literal["markdown", "yaml", "html", "json"] = "html"
    instructions: str | None = None
    image_resolution_dpi: int | None = None
    browser_canvas: str | None = None


class Parse(BlockType):
    """Turns a document into text, one string per page."""

    type_name = "parse"
    config_model = ParseConfig
    operation = "parse"

    def input_handles(self, config: ParseConfig) -> dict[str, HandleKind]:
        return {"input-file-0": "file"}

    def output_handles(self, config: ParseConfig) -> dict[str, HandleKind]:
        return {"output-json-0": "json"}

    def input_aliases(self, config: ParseConfig) -> dict[str, str]:
        return {"0": "input-file-0", "document": "input-file-0"}

    def output_schema(self, config: ParseConfig, handle: str) -> dict[str, Any] | None:
        return OUTPUT_SCHEMA

    async def run(
        self, ctx: BlockContext, config: ParseConfig, inputs: Mapping[str, Payload]
    ) -> BlockResult:
        """Read the document's pages.

        Raises:
            PermanentError: no file, an unreadable one (stage ``document_fetch``), or an
                image without a vision-capable provider.
            TransientError, QuotaError: the vision model failed (retried).
        """
        doc = load_document(ctx, inputs, "input-file-0")
        provider, model = provider_for(ctx, config.model)
        pages, usage = await read_pages(ctx, doc, provider, model, config.instructions)
        usage = usage or Usage(model=None, cost=0.0)
        output = {"pages": pages, "text": "\n\n".join(pages)}
        artifact = {
            "operation": self.operation,
            "file": doc.ref.to_dict(),
            "mime_type": doc.mime,
            "model": usage.model,
            "table_parsing_format": config.table_parsing_format,
            "instructions": config.instructions,
            "page_count": len(pages),
            "output": output,
            "status": "completed",
            "usage": usage.to_dict(),
        }
        return BlockResult(outputs={"output-json-0": Payload.json(output)}, artifact=artifact,
                           **step_usage(usage))
