"""The ``hil`` block: a human-in-the-loop gate.

Whatever arrives (JSON on ``input-json-0`` or a file on ``input-file-0``) is proposed on
the output of the same kind, and the step waits in ``awaiting_review`` until someone
decides (``stepwell reviews approve|reject``). Approval lets the payload (or the
corrected data given with the approval) flow on; rejection skips everything downstream
with ``review_rejected: <step_id>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from blocks.base import BlockType, StrictConfig
from engine.contracts.blocks import BlockContext, BlockResult, HandleKind, JoinMode
from engine.contracts.errors import PermanentError
from engine.contracts.values import Payload


class HilConfig(StrictConfig):
    """Config of the hil block."""

    instructions: str = ""


class Hil(BlockType):
    """Wait for a human decision on the payload that arrived."""

    type_name = "hil"
    config_model = HilConfig
    join = JoinMode.ANY
    operation = "review_trigger_evaluation"
    inline = True

    def input_handles(self, config: Any) -> dict[str, HandleKind]:
        """JSON or a file."""
        return {"input-json-0": "json", "input-file-0": "file"}

    def output_handles(self, config: Any) -> dict[str, HandleKind]:
        """The same kind as what arrived."""
        return {"output-json-0": "json", "output-file-0": "file"}

    async def run(
        self, ctx: BlockContext, config: HilConfig, inputs: Mapping[str, Payload]
    ) -> BlockResult:
        """Propose the input unchanged and ask for a review.

        Raises:
            PermanentError: nothing arrived on either input.
        """
        outputs = {h.replace("input-", "output-", 1): p for h, p in inputs.items()}
        if not outputs:
            raise PermanentError(
                f"hil block {ctx.block_id!r} received nothing; connect input-json-0 or "
                "input-file-0.", code="HIL_NO_INPUT")
        record = {"triggered_by": "hil", "instructions": config.instructions,
                  "evaluations": [{"kind": "always", "matched": True}]}
        return BlockResult(outputs=outputs,
                           artifact={"operation": self.operation, **record}, review=record)
