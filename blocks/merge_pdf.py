"""The ``merge_pdf`` block (legacy): concatenates documents into one PDF.

``input-file-<name>`` per ``config.inputs`` (default two: ``input-file-0`` and
``input-file-1``) ``-> output-file-0``: every page of every input, in the declared input
order, as ``<first input's stem>_merged.pdf``. PNG/JPEG inputs become one page each and
text files plain pages.

Join decision: *all* connected inputs must arrive (``JoinMode.ALL``). A merge that
silently leaves out a document that was never produced would hand downstream blocks an
incomplete file; when an input is skipped, the merge is skipped too. Artifact
``merge_pdf``: the inputs with their page counts, and the merged file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import Field

from blocks.base import BlockType, StrictConfig
from blocks.control import no_inputs, who
from blocks.documents import load_document, pdf_job, store_pdf, to_pdf
from blocks.pdf import merge_pdfs, page_count
from engine.contracts.blocks import BlockContext, BlockResult, HandleKind, JoinMode
from engine.contracts.errors import Diagnostic, ErrorStage, PermanentError
from engine.contracts.values import Payload

if TYPE_CHECKING:
    from engine.contracts.definition import BlockDef


class MergeInput(StrictConfig):
    """One input: ``input-file-<name>`` (an unnamed one uses its index)."""

    name: str | int | None = None
    type: str = "file"


def _default_inputs() -> list[MergeInput]:
    return [MergeInput(name=0), MergeInput(name=1)]


class MergePdfConfig(StrictConfig):
    """``inputs`` in merge order (default ``0`` and ``1``)."""

    inputs: list[MergeInput] = Field(default_factory=_default_inputs)

    def handles(self) -> list[str]:
        """Input handle ids in merge order."""
        return [f"input-file-{i.name if i.name not in (None, '') else n}"
                for n, i in enumerate(self.inputs)]


class MergePdf(BlockType):
    """Concatenates its input documents (see the module docstring)."""

    type_name = "merge_pdf"
    config_model = MergePdfConfig
    operation = "merge_pdf"
    join = JoinMode.ALL

    def input_handles(self, config: MergePdfConfig) -> dict[str, HandleKind]:
        return {h: "file" for h in config.handles()}

    def output_handles(self, config: MergePdfConfig) -> dict[str, HandleKind]:
        return {"output-file-0": "file"}

    def check(self, block: BlockDef, config: MergePdfConfig, path: str) -> list[Diagnostic]:
        problems = []
        if not config.inputs:
            problems.append(no_inputs(
                block, path, "so no document can reach it and every run of it fails",
                "input-file-0 and input-file-1", "the documents in merge order: "
                "`inputs: [{name: invoice}, {name: receipt}]`"))
        handles = config.handles()
        if len(set(handles)) != len(handles):
            problems.append(Diagnostic(code="DUPLICATE_INPUT_HANDLE", path=f"{path}.config.inputs",
                                       message="two inputs have the same name",
                                       fix="give every input its own name"))
        for n, item in enumerate(config.inputs):
            if item.type != "file":
                problems.append(Diagnostic(code="INVALID_INPUT_TYPE",
                                           path=f"{path}.config.inputs[{n}].type",
                                           message="merge_pdf merges files only",
                                           fix="use `type: file` or drop it"))
        return problems

    async def run(
        self, ctx: BlockContext, config: MergePdfConfig, inputs: Mapping[str, Payload]
    ) -> BlockResult:
        """Concatenate the inputs that arrived, in declared order.

        Raises:
            PermanentError: no input, or an unreadable one (stage ``document_fetch``).
        """
        present = [h for h in config.handles() if h in inputs]
        if not present:
            raise PermanentError(
                f"{who(ctx)} received no document; connect edges to "
                f"{', '.join(config.handles())}.",
                stage=ErrorStage.INPUT_COLLECTION, code="MISSING_INPUT")
        parts: list[bytes] = []
        record: list[dict[str, Any]] = []
        stem = ""
        for handle in present:
            doc = load_document(ctx, inputs, handle)
            pdf = await to_pdf(ctx, doc)
            pages = await pdf_job(ctx, doc, page_count, pdf)
            parts.append(pdf)
            record.append({"handle": handle, "file": doc.ref.to_dict(), "pages": pages})
            stem = stem or doc.stem
        merged = await pdf_job(ctx, doc, merge_pdfs, parts)
        ref = store_pdf(ctx, merged, f"{stem}_merged.pdf")
        artifact = {"operation": self.operation, "inputs": record,
                    "page_count": sum(r["pages"] for r in record), "output": ref.to_dict()}
        return BlockResult(outputs={"output-file-0": Payload.file(ref)}, artifact=artifact)
