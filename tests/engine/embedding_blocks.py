"""Block logic shared by the testing and embedding tests: python functions and custom types."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import anyio

from blocks.base import BlockType, StrictConfig
from engine.contracts.blocks import BlockContext, BlockResult
from engine.contracts.values import FileRef, Payload
from engine.definition import Workflow

MODULE = "tests.engine.embedding_blocks"
OBJECT = {"type": "object"}


def add_vat(invoice: Any) -> dict[str, Any]:
    """Net amount plus 20% VAT, rounded to cents."""
    return {"net": invoice.net, "gross": round(invoice.net * 1.2, 2)}


async def slow_echo(data: Any) -> dict[str, Any]:
    """Waits far longer than any test; only cancellation ends it."""
    await anyio.sleep(60)
    return {"echo": True}


class RiskConfig(StrictConfig):
    """Config of the custom ``risk_score`` type."""

    weight: float = 1.0
    threshold: float = 100.0


class RiskScore(BlockType):
    """A custom block type: scores an invoice, fires ``output-json-high`` or ``-low``."""

    type_name = "risk_score"
    config_model = RiskConfig
    operation = "risk_scoring"

    def input_handles(self, config: RiskConfig) -> dict[str, Any]:
        return {"input-json-invoice": "json", "input-json-history": "json"}

    def output_handles(self, config: RiskConfig) -> dict[str, Any]:
        return {"output-json-high": "json", "output-json-low": "json"}

    def runs_inline(self, config: RiskConfig) -> bool:
        return True

    async def run(self, ctx: BlockContext, config: RiskConfig,
                  inputs: Mapping[str, Payload]) -> BlockResult:
        invoice = inputs["input-json-invoice"].data
        if invoice.get("bad") == "decimal":
            return BlockResult(outputs={"output-json-low": Payload.json({"score": Decimal(1)})})
        if invoice.get("bad") == "file":
            ref = FileRef(id="file_x", filename="x.pdf", mime_type="application/pdf")
            return BlockResult(outputs={"output-json-low": Payload.file(ref)})
        score = invoice["amount"] * config.weight
        handle = "output-json-high" if score >= config.threshold else "output-json-low"
        return BlockResult(outputs={handle: Payload.json({**invoice, "score": score})},
                           artifact={"operation": "risk_scoring", "score": score})


def vat_workflow() -> Workflow:
    """start -> vat (python function) -> done."""
    return (Workflow.builder("vat")
            .block("invoice", "start_json")
            .block("vat", "function", config={"python": f"{MODULE}:add_vat",
                                              "output_schema": OBJECT})
            .block("done", "end")
            .edge("invoice", "vat").edge("vat", "done")
            .build())


def slow_workflow() -> Workflow:
    """start -> wait (an async function that sleeps a minute) -> done."""
    return (Workflow.builder("slow")
            .block("start", "start_json")
            .block("wait", "function", config={"python": f"{MODULE}:slow_echo",
                                               "output_schema": OBJECT})
            .block("done", "end")
            .edge("start", "wait").edge("wait", "done")
            .build())


def risk_workflow(target_handle: str = "invoice") -> Workflow:
    """start -> risk_score (custom) -> high/low ends."""
    return (Workflow.builder("risk")
            .block("invoice", "start_json")
            .block("risk", "risk_score", config={"weight": 2, "threshold": 100})
            .block("escalate", "end").block("file", "end")
            .edge("invoice", "risk", target_handle=target_handle)
            .edge("risk", "escalate", source_handle="output-json-high")
            .edge("risk", "file", source_handle="output-json-low")
            .build())


def loop_workflow() -> Workflow:
    """A for_each over ``items`` whose body doubles each value with a python function."""
    return (Workflow.builder("loop")
            .block("start", "start_json")
            .block("each", "for_each", config={"map_method": "iterate_array",
                                               "map_source_path": "items"})
            .block("double", "function", parent="each", config={
                "python": f"{MODULE}:double", "output_schema": OBJECT})
            .block("done", "end")
            .edge("start", "each", target_handle="fe-left-in")
            .edge("each", "done", source_handle="fe-right-out")
            .build())


def double(item: Any) -> dict[str, Any]:
    """``{"value": 2 * item.value}``."""
    return {"value": item.value * 2}
