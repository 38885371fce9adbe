"""The ``edit`` block: fills a PDF form's fields from JSON.

``input-file-0`` (the PDF form), ``input-json-0`` and ``input-json-1`` (data; objects are
merged, the second wins) ``-> output-file-0`` (the filled PDF, ``<stem>_filled.pdf``).
The model provider maps data keys to the form's AcroForm field names
(``map_form_fields``; offline: label-word matching); pypdf writes the values (text,
checkbox on/off, choice options) and asks viewers to regenerate appearances.

``use_template: true`` fills a local template instead of an input file: the input
handles become ``input-json-0`` only and ``template_id`` is the path of the PDF form
(relative to the working directory). Retab's template ids name server-side templates;
stepwell has no template store, so a path is the local equivalent.

Only real form fields are filled: a PDF without an AcroForm (a scan, a flat print)
fails with ``NO_FORM_FIELDS``. Artifact ``edit``: the file, model, instructions,
``template_id``, ``output{form_data[{key, type, description, value}], filled_count,
total_fields}``, ``filled_document_ref`` and usage.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blocks.base import BlockType, StrictConfig
from blocks.control import who
from blocks.documents import (
    Document,
    call_model,
    load_document,
    pdf_job,
    store_pdf,
    to_pdf,
)
from blocks.pdf import fill_form, form_fields
from blocks.providers import CallContext, provider_for, step_usage
from blocks.providers.offline import form_value
from engine.contracts.blocks import BlockContext, BlockResult, HandleKind
from engine.contracts.errors import Diagnostic, ErrorStage, PermanentError
from engine.contracts.values import Payload

if TYPE_CHECKING:
    from engine.contracts.definition import BlockDef


class EditConfig(StrictConfig):
    """``instructions``, ``model``, ``use_template`` and ``template_id`` (a PDF path)."""

    instructions: str | None = None
    model: str | None = None
    use_template: bool = False
    template_id: str | None = None


def merged_data(inputs: Mapping[str, Payload]) -> dict[str, Any]:
    """``input-json-0`` then ``input-json-1``, merged (a non-object becomes ``{value}``)."""
    data: dict[str, Any] = {}
    for handle in ("input-json-0", "input-json-1"):
        if handle in inputs:
            value = inputs[handle].data
            data.update(value if isinstance(value, Mapping) else {"value": value})
    return data


class Edit(BlockType):
    """Fills a PDF form from JSON (see the module docstring)."""

    type_name = "edit"
    config_model = EditConfig
    operation = "edit"

    def input_handles(self, config: EditConfig) -> dict[str, HandleKind]:
        if config.use_template:
            return {"input-json-0": "json"}
        return {"input-file-0": "file", "input-json-0": "json", "input-json-1": "json"}

    def output_handles(self, config: EditConfig) -> dict[str, HandleKind]:
        return {"output-file-0": "file"}

    def input_aliases(self, config: EditConfig) -> dict[str, str]:
        aliases = super().input_aliases(config)
        if not config.use_template:
            aliases.update({"0": "input-file-0", "document": "input-file-0"})
        return aliases

    def check(self, block: BlockDef, config: EditConfig, path: str) -> list[Diagnostic]:
        if config.use_template and not config.template_id:
            return [Diagnostic(code="MISSING_TEMPLATE", path=f"{path}.config.template_id",
                               message="use_template needs template_id",
                               fix="set template_id to the path of a PDF form")]
        return []

    def _template(self, ctx: BlockContext, config: EditConfig) -> Document:
        path = Path(str(config.template_id)).expanduser()
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise PermanentError(
                f"{who(ctx)}: cannot read the template {str(path)!r} ({exc.strerror or exc}). "
                "Set config.template_id to the path of a PDF form.",
                stage=ErrorStage.DOCUMENT_FETCH, code="TEMPLATE_UNAVAILABLE") from exc
        assert ctx.files is not None
        ref = ctx.files.put_bytes(data, path.name, "application/pdf")
        return Document(ref=ref, data=data, mime="application/pdf")

    async def run(
        self, ctx: BlockContext, config: EditConfig, inputs: Mapping[str, Payload]
    ) -> BlockResult:
        """Map the data onto the form fields and write them.

        Raises:
            PermanentError: no or unreadable document/template (``document_fetch``), or
                a PDF without form fields.
            TransientError, QuotaError: the model endpoint failed (retried).
        """
        doc = self._template(ctx, config) if config.use_template else \
            load_document(ctx, inputs, "input-file-0")
        pdf = await to_pdf(ctx, doc)
        fields = await pdf_job(ctx, doc, form_fields, pdf)
        if not fields:
            raise PermanentError(
                f"{who(ctx)}: {doc.ref.filename!r} has no fillable form fields (AcroForm). "
                "edit fills form fields only; pass a PDF form.", code="NO_FORM_FIELDS")
        provider, model = provider_for(ctx, config.model)
        data = merged_data(inputs)
        mapping = await call_model(ctx, provider.map_form_fields(
            fields, data, model=model, context=CallContext.of(ctx, config.instructions)))
        by_name = {f.name: f for f in fields}
        values = {name: text for name, raw in mapping.values.items() if name in by_name
                  and (text := form_value(by_name[name], raw)) is not None}
        filled = await pdf_job(ctx, doc, fill_form, pdf, values)
        ref = store_pdf(ctx, filled, f"{doc.stem}_filled.pdf")
        form_data = [{"key": f.name, "type": f.kind, "description": f.description,
                      "value": values.get(f.name, f.value)} for f in fields]
        artifact = {
            "operation": self.operation, "file": doc.ref.to_dict(),
            "model": mapping.usage.model, "instructions": config.instructions,
            "template_id": config.template_id, "config": {"use_template": config.use_template},
            "output": {"form_data": form_data, "filled_count": len(values),
                       "total_fields": len(fields), "filled_document": ref.to_dict()},
            "filled_document_ref": ref.to_dict(), "usage": mapping.usage.to_dict(),
        }
        return BlockResult(outputs={"output-file-0": Payload.file(ref)}, artifact=artifact,
                           **step_usage(mapping.usage))
