"""The ``extract`` block: an object that matches ``json_schema``, read from documents.

Inputs come from ``config.inputs`` (``[{name, type: file|json, is_primary}]``, handle
``input-<type>-<name>``), by default one file, ``input-file-document``. File inputs are
read page by page (primary first) and given to the model; JSON inputs are extra context,
except a primary JSON input, which is itself the source (rendered as ``key: value``
lines).

The model provider answers (``n_consensus`` > 1: that many answers, voted per leaf).
Values the document does not hold are ``null``; the output is validated against the
schema with every property allowed to be null (as structured-output extraction does):
another violation fails the step with ``OUTPUT_SCHEMA_MISMATCH`` unless the review
predicate sends it to a human. ``config.review`` predicates run on the output and the
likelihoods (:mod:`blocks.review`).

Artifact ``extraction``: the file(s), model, schema, ``n_consensus``, the output,
``consensus{choices, likelihoods}``, usage and the review evaluation.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from blocks.base import BlockType, StrictConfig
from blocks.control import schema_diagnostics, schema_errors, who
from blocks.documents import (
    add_usage,
    call_model,
    load_document,
    read_pages,
    structured_text,
)
from blocks.providers import CallContext, Usage, json_as_text, provider_for, step_usage
from blocks.review import evaluate_review, review_diagnostics, review_record
from engine.contracts.blocks import BlockContext, BlockResult, HandleKind
from engine.contracts.errors import Diagnostic, PermanentError
from engine.contracts.values import Payload

if TYPE_CHECKING:
    from engine.contracts.definition import BlockDef


class ExtractInput(StrictConfig):
    """One declared input: ``input-<type>-<name>`` (an unnamed one uses its index)."""

    name: str | int | None = None
    type: Literal["file", "json"] = "file"
    is_primary: bool = False


def _default_inputs() -> list[ExtractInput]:
    return [ExtractInput(name="document", type="file", is_primary=True)]


#: The schema of an extract block written without one (Retab's CLI minimum spec has
#: none; its docs give ``{}`` as the default): an object with whatever the model finds.
EMPTY_SCHEMA: dict[str, Any] = {"type": "object"}


class ExtractConfig(StrictConfig):
    """``inputs``, ``json_schema`` (default an empty object schema), ``model``,
    ``n_consensus``, ``review``."""

    inputs: list[ExtractInput] = Field(default_factory=_default_inputs)
    json_schema: dict[str, Any] = Field(default_factory=lambda: dict(EMPTY_SCHEMA))
    model: str | None = None
    n_consensus: int = Field(1, ge=1, le=16)
    review: dict[str, Any] | None = None

    def handles(self) -> list[tuple[str, ExtractInput]]:
        """``[(handle, input)]`` with the primary input first."""
        named = [(f"input-{i.type}-{i.name if i.name not in (None, '') else n}", i)
                 for n, i in enumerate(self.inputs)]
        if not named:  # ``inputs: []``: check() reports MISSING_INPUTS
            return []
        primary = next((h for h, i in named if i.is_primary),
                       next((h for h, i in named if i.type == "file"), named[0][0]))
        return sorted(named, key=lambda hi: hi[0] != primary)


def allow_null(schema: Any) -> Any:
    """A copy of ``schema`` whose properties and items may also be ``null``."""
    node = copy.deepcopy(schema)
    if not isinstance(node, dict):
        return node
    for key in ("properties", "$defs", "definitions"):
        if isinstance(node.get(key), dict):
            node[key] = {k: _nullable(allow_null(v)) if key == "properties" else allow_null(v)
                         for k, v in node[key].items()}
    if isinstance(node.get("items"), dict):
        node["items"] = _nullable(allow_null(node["items"]))
    return node


def _nullable(schema: Any) -> Any:
    return {"anyOf": [schema, {"type": "null"}]} if isinstance(schema, dict) else schema


class Extract(BlockType):
    """Extracts a JSON object from documents (see the module docstring)."""

    type_name = "extract"
    config_model = ExtractConfig
    operation = "extraction"
    reviewable = True

    def input_handles(self, config: ExtractConfig) -> dict[str, HandleKind]:
        return {h: i.type for h, i in config.handles()}

    def output_handles(self, config: ExtractConfig) -> dict[str, HandleKind]:
        return {"output-json-0": "json"}

    def input_aliases(self, config: ExtractConfig) -> dict[str, str]:
        """Short names, plus ``input-file-0`` and ``0`` for the primary file input (the
        API reference's edge examples wire an extract's document there)."""
        aliases = super().input_aliases(config)
        files = [h for h, i in config.handles() if i.type == "file"]
        if files:
            aliases.setdefault("input-file-0", files[0])
            aliases.setdefault("0", files[0])
        return aliases

    def output_schema(self, config: ExtractConfig, handle: str) -> dict[str, Any] | None:
        return config.json_schema

    def check(self, block: BlockDef, config: ExtractConfig, path: str) -> list[Diagnostic]:
        where = f"{path}.config.json_schema"
        problems = schema_diagnostics(config.json_schema, where)
        if "json_schema" not in block.config:
            problems.append(Diagnostic(
                code="MISSING_JSON_SCHEMA", path=where, severity="warning",
                message=f"extract block {block.id!r} has no json_schema; it extracts an empty "
                "object ({type: object})",
                fix="add `json_schema: {type: object, properties: {...}}` naming the fields "
                "to extract"))
        if not problems and config.json_schema.get("type", "object") != "object":
            problems.append(Diagnostic(
                code="INVALID_JSON_SCHEMA", path=f"{where}.type",
                message="extract produces an object; json_schema.type must be 'object'",
                fix="wrap the fields in {type: object, properties: {...}}"))
        if not config.inputs:
            problems.append(Diagnostic(code="MISSING_INPUTS", path=f"{path}.config.inputs",
                                       message="extract needs at least one input",
                                       fix="remove inputs to use the default document input"))
        handles = [h for h, _ in config.handles()] if config.inputs else []
        if len(set(handles)) != len(handles):
            problems.append(Diagnostic(code="DUPLICATE_INPUT_HANDLE",
                                       path=f"{path}.config.inputs",
                                       message="two inputs have the same type and name",
                                       fix="give every input its own name"))
        return problems + review_diagnostics(config.review, "extract", f"{path}.config.review",
                                             owner=f"extract block {block.id!r}")

    async def _sources(self, ctx: BlockContext, config: ExtractConfig,
                       inputs: Mapping[str, Payload], provider: Any, model: str | None
                       ) -> tuple[list[str], dict[str, Any], list[dict[str, str]], Usage | None]:
        pages: list[str] = []
        extra: dict[str, Any] = {}
        files: list[dict[str, str]] = []
        usage: Usage | None = None
        for n, (handle, item) in enumerate(config.handles()):
            if item.type == "file":
                doc = load_document(ctx, inputs, handle)
                read, used = await read_pages(ctx, doc, provider, model)
                pages += structured_text(doc, read)
                files.append(doc.ref.to_dict())
                usage = used if usage is None else (usage + used if used else usage)
            elif handle in inputs and n == 0:
                pages.append(json_as_text(inputs[handle].data))
            elif handle in inputs:
                extra[str(item.name if item.name is not None else handle)] = inputs[handle].data
        return pages, extra, files, usage

    async def run(
        self, ctx: BlockContext, config: ExtractConfig, inputs: Mapping[str, Payload]
    ) -> BlockResult:
        """Extract, vote, validate, evaluate the review predicate.

        Raises:
            PermanentError: unreadable inputs, a model answer that is not an object, or
                an output that breaks the schema (and no review was triggered).
            TransientError, QuotaError: the model endpoint failed (retried).
        """
        provider, model = provider_for(ctx, config.model)
        pages, extra, files, read_usage = await self._sources(ctx, config, inputs, provider, model)
        result = await call_model(ctx, provider.extract(
            pages, config.json_schema, model=model, n_consensus=config.n_consensus,
            context=CallContext.of(ctx), extra=extra or None))
        data = result.data
        if not isinstance(data, dict):
            raise PermanentError(f"{who(ctx)}: the model returned a JSON {type(data).__name__}, "
                                 "not an object. Check json_schema and the model.",
                                 code="EXTRACTION_NOT_OBJECT")
        errors = schema_errors(data, allow_null(config.json_schema))
        facts = {"validation_errors": errors}
        review_args: dict[str, Any] = {"output": data, "likelihoods": result.likelihoods,
                                       "schema": config.json_schema, "kind": "extract",
                                       "extra": facts}
        review = evaluate_review(config.review, **review_args)
        if errors and review is None:
            first = errors[0]
            raise PermanentError(
                f"{who(ctx)}: the extracted object does not match json_schema at "
                f"{first['path']}: {first['message']}. Fix the schema, or add "
                "`review: {predicate: {kind: validation_failed}}` to have a human correct it.",
                code="OUTPUT_SCHEMA_MISMATCH", context={"errors": errors[:20], "output": data})
        usage = add_usage(result.usage, read_usage)
        artifact = {
            "operation": self.operation, "file": files[0] if files else None, "files": files,
            "model": usage.model, "json_schema": config.json_schema,
            "n_consensus": config.n_consensus, "output": data,
            "consensus": {"choices": result.choices, "likelihoods": result.likelihoods},
            "usage": usage.to_dict(), "validation_errors": errors,
            "review": review_record(config.review, **review_args),
        }
        return BlockResult(outputs={"output-json-0": Payload.json(data)}, artifact=artifact,
                           review=review, **step_usage(usage))
