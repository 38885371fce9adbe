"""Control blocks: start_json, start_document, note, end.

None of these needs a model. Start blocks read ``ctx.run_inputs[block_id]``; ``end`` is
a join (it runs with whatever arrived). The other model-free blocks have their own
modules: ``conditional`` (:mod:`blocks.conditional`), ``merge_dicts`` and ``reshape``
(:mod:`blocks.dicts`).

The small helpers at the top (:func:`who`, :func:`require_json`, :func:`schema_errors`,
:func:`schema_diagnostics`, :func:`ensure_matches_schema`) are shared with the
conditional, data, function and loop blocks.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from blocks.base import BlockType, EmptyConfig, StrictConfig
from blocks.schemas import (  # noqa: F401  (re-exported: shared with other blocks)
    ensure_matches_schema,
    schema_diagnostics,
    schema_errors,
)
from engine.contracts.blocks import (
    BlockContext,
    BlockResult,
    BlockRole,
    HandleKind,
    JoinMode,
)
from engine.contracts.errors import (
    Diagnostic,
    ErrorStage,
    PermanentError,
    TransientError,
)
from engine.contracts.values import FileRef, Payload

if TYPE_CHECKING:
    from engine.contracts.definition import BlockDef

# ----------------------------------------------------------------------------- helpers


def who(ctx: BlockContext) -> str:
    """``function block 'price_line'``: how messages name the failing block."""
    return f"{ctx.block_type} block {ctx.block_id!r}"


#: Parsed condition groups by ``id`` of the config's raw group, with the raw object kept
#: so the id cannot be reused: a while_loop tests the same condition every iteration and
#: a conditional in a loop body routes every item with the same groups.
_PARSED: dict[int, tuple[Any, Any]] = {}
_PARSED_MAX = 512


def parse_group(ctx: BlockContext, raw: Any, path: str) -> Any:
    """Parse a condition group of the block's config at ``path`` (for step errors).

    A group that parsed once is not parsed again while its config lives (the config is
    shared by every step of the block and never changed in place).

    Raises:
        PermanentError: the group does not validate (its first problem, all in context).
    """
    cached = _PARSED.get(id(raw))
    if cached is not None and cached[0] is raw:
        return cached[1]
    # imported here: the start and note blocks never parse a condition
    from blocks.conditions import parse_condition_group, validate_condition_group

    problems = validate_condition_group(raw, path)
    if problems:
        raise PermanentError(
            f"{who(ctx)}: {problems[0].render()}",
            code=problems[0].code,
            context={"problems": [p.to_dict() for p in problems]},
        )
    group = parse_condition_group(raw)
    if len(_PARSED) >= _PARSED_MAX:
        _PARSED.clear()
    _PARSED[id(raw)] = (raw, group)
    return group


def require_json(ctx: BlockContext, inputs: Mapping[str, Payload], handle: str) -> Any:
    """The JSON data that arrived on ``handle``.

    Raises:
        PermanentError: nothing arrived there (stage ``input_collection``).
    """
    payload = inputs.get(handle)
    if payload is None:
        raise PermanentError(
            f"{who(ctx)} received nothing on {handle!r}; connect an edge to {handle!r}.",
            stage=ErrorStage.INPUT_COLLECTION,
            code="MISSING_INPUT",
            context={"handle": handle, "arrived": sorted(inputs)},
        )
    return payload.data


def named_handle(kind: str, name: str | int | None, index: int) -> str:
    """The handle id of a declared input: ``input-<kind>-<name>``, or its index if unnamed.

    Args:
        kind: ``json`` or ``file``.
        name: the declared name (None or empty: unnamed).
        index: its position in ``config.inputs``.
    """
    return f"input-{kind}-{index if name is None or name == '' else name}"


def no_inputs(block: BlockDef, path: str, effect: str, default: str, example: str, *,
              severity: Literal["error", "warning"] = "error") -> Diagnostic:
    """``MISSING_INPUTS`` for a block written with ``inputs: []``.

    Args:
        block: the block as written (its type and id name it).
        path: YAML path of the block.
        effect: what an empty list does (``so nothing can reach it ...``).
        default: the handles the block has when ``inputs`` is left out.
        example: what to write instead (``what to merge: `inputs: [...]```).
        severity: ``warning`` where Retab accepts the empty list.
    """
    return Diagnostic(
        code="MISSING_INPUTS", severity=severity, path=f"{path}.config.inputs",
        message=f"{block.type} block {block.id!r} declares no inputs (inputs: []), {effect}",
        fix=f"remove inputs to use the default {default}, or name {example}")


def duplicate_inputs(inputs: list[NamedInput], path: str) -> list[Diagnostic]:
    """``DUPLICATE_INPUT_HANDLE`` for every declared input whose handle id repeats.

    Args:
        inputs: ``config.inputs`` of an ``end`` or ``merge_dicts`` block.
        path: YAML path of the block.
    """
    seen: set[str] = set()
    problems = []
    for n, item in enumerate(inputs):
        handle = named_handle(item.type, item.name, n)
        if handle in seen:
            problems.append(
                Diagnostic(
                    code="DUPLICATE_INPUT_HANDLE",
                    message=f"input handle {handle!r} is declared twice",
                    path=f"{path}.config.inputs[{n}].name",
                    fix="give every input its own name",
                )
            )
        seen.add(handle)
    return problems


# ----------------------------------------------------------------------------- start


class StartJsonConfig(StrictConfig):
    """``json_schema``: the shape the run input must have (optional)."""

    json_schema: dict[str, Any] | None = None


class StartJson(BlockType):
    """Emits the run's JSON input for this block on ``output-json-0``."""

    type_name = "start_json"
    role = BlockRole.START_JSON
    config_model = StartJsonConfig
    inline = True

    def output_handles(self, config: StartJsonConfig) -> dict[str, HandleKind]:
        return {"output-json-0": "json"}

    def output_schema(self, config: StartJsonConfig, handle: str) -> dict[str, Any] | None:
        return config.json_schema

    def check(self, block: BlockDef, config: StartJsonConfig, path: str) -> list[Diagnostic]:
        return schema_diagnostics(config.json_schema, f"{path}.config.json_schema")

    async def run(
        self, ctx: BlockContext, config: StartJsonConfig, inputs: Mapping[str, Payload]
    ) -> BlockResult:
        """Validate and emit the run input.

        Raises:
            PermanentError: no input was given, or it breaks ``json_schema``
                (stage ``input_collection``).
        """
        if ctx.block_id not in ctx.run_inputs:
            raise PermanentError(
                f"{who(ctx)} has no run input. Pass one with "
                f"`--input {ctx.block_id}=<json>` (or `@file.json`), or json_inputs="
                f"{{{ctx.block_id!r}: ...}} through the API.",
                stage=ErrorStage.INPUT_COLLECTION,
                code="MISSING_RUN_INPUT",
            )
        data = ctx.run_inputs[ctx.block_id]
        data = data.data if isinstance(data, Payload) else data
        ensure_matches_schema(
            ctx,
            data,
            config.json_schema,
            "the run input",
            code="INPUT_SCHEMA_MISMATCH",
            stage=ErrorStage.INPUT_COLLECTION,
        )
        return BlockResult(outputs={"output-json-0": Payload.json(data)})


_DATA_URL = re.compile(r"^data:(?P<mime>[^;,]*)(?P<b64>;base64)?,(?P<data>.*)$", re.DOTALL)


def _fetch_error(ctx: BlockContext, problem: str, fix: str) -> PermanentError:
    return PermanentError(
        f"{who(ctx)}: {problem}. {fix}",
        stage=ErrorStage.DOCUMENT_FETCH,
        code="DOCUMENT_UNAVAILABLE",
    )


def _guess_mime(filename: str) -> str:
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def _from_data_url(ctx: BlockContext, url: str, filename: str | None) -> tuple[bytes, str, str]:
    m = _DATA_URL.match(url)
    if m is None:
        raise _fetch_error(
            ctx, "the run input is not a valid data URL", "Use data:<mime>;base64,..."
        )
    mime = m["mime"] or "application/octet-stream"
    try:
        raw = base64.b64decode(m["data"], validate=True) if m["b64"] else m["data"].encode()
    except binascii.Error as exc:
        raise _fetch_error(
            ctx, f"bad base64 in the data URL ({exc})", "Re-encode the file."
        ) from exc
    name = filename or f"document{mimetypes.guess_extension(mime) or ''}"
    return raw, name, mime


def _from_path(ctx: BlockContext, raw: str | Path) -> tuple[bytes, str, str]:
    path = Path(raw).expanduser()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _fetch_error(
            ctx,
            f"cannot read the document {str(path)!r} ({exc.strerror or exc})",
            f"Check the path given with `--input {ctx.block_id}=PATH`.",
        ) from exc
    return data, path.name, _guess_mime(path.name)


class StartDocument(BlockType):
    """Emits the run's document for this block on ``output-file-0`` (legacy ``start``)."""

    type_name = "start_document"
    role = BlockRole.START_DOCUMENT
    config_model = EmptyConfig

    def output_handles(self, config: EmptyConfig) -> dict[str, HandleKind]:
        return {"output-file-0": "file"}

    async def run(
        self, ctx: BlockContext, config: EmptyConfig, inputs: Mapping[str, Payload]
    ) -> BlockResult:
        """Store (if needed) and emit the run document.

        Accepted run inputs: a FileRef (or its ``{id, filename, mime_type}`` dict, which
        must already be in the file store), a local path, a ``data:`` URL, Retab's
        MIMEData ``{filename, url}``, or raw bytes.

        Raises:
            PermanentError: missing or unreadable document (stage ``document_fetch``).
        """
        if ctx.files is None:
            raise _fetch_error(ctx, "no file store is configured", "Run it through the engine.")
        if ctx.block_id not in ctx.run_inputs:
            raise _fetch_error(
                ctx,
                "no document was given",
                f"Pass one with `--input {ctx.block_id}=path/to/file.pdf`.",
            )
        ref = self._store(ctx, ctx.run_inputs[ctx.block_id])
        return BlockResult(outputs={"output-file-0": Payload.file(ref)})

    def _store(self, ctx: BlockContext, raw: Any) -> FileRef:
        assert ctx.files is not None
        if isinstance(raw, Payload) and raw.document is not None:
            raw = raw.document
        if isinstance(raw, Mapping) and {"id", "filename", "mime_type"} <= raw.keys():
            raw = FileRef(id=raw["id"], filename=raw["filename"], mime_type=raw["mime_type"])
        if isinstance(raw, FileRef):
            return self._check_stored(ctx, raw)
        if isinstance(raw, Mapping) and isinstance(raw.get("url"), str):
            data, name, mime = _from_data_url(ctx, raw["url"], raw.get("filename"))
        elif isinstance(raw, str) and raw.startswith("data:"):
            data, name, mime = _from_data_url(ctx, raw, None)
        elif isinstance(raw, str | Path):
            data, name, mime = _from_path(ctx, raw)
        elif isinstance(raw, bytes):
            data, name, mime = raw, f"{ctx.block_id}.bin", "application/octet-stream"
        else:
            raise _fetch_error(
                ctx,
                f"cannot use a run input of type {type(raw).__name__} as a document",
                "Pass a file path, a data URL or a stored {id, filename, mime_type}.",
            )
        return ctx.files.put_bytes(data, name, mime)

    def _check_stored(self, ctx: BlockContext, ref: FileRef) -> FileRef:
        assert ctx.files is not None
        try:
            ctx.files.read_bytes(ref)
        except Exception as exc:  # any store failure means the document is unusable
            raise _fetch_error(
                ctx,
                f"file {ref.id!r} ({ref.filename}) is not in the file store "
                f"({type(exc).__name__}: {exc})",
                "Pass the document again by path.",
            ) from exc
        return ref


# ----------------------------------------------------------------------------- note / end


class NoteConfig(StrictConfig):
    """``text``: the note shown on the canvas."""

    text: str = ""


class Note(BlockType):
    """A canvas annotation: never executes, writes no step."""

    type_name = "note"
    config_model = NoteConfig
    executes = False


class NamedInput(StrictConfig):
    """One declared input: ``input-<type>-<name>`` (an unnamed one uses its index)."""

    name: str | int | None = None
    type: Literal["json", "file"] = "json"


class EndConfig(StrictConfig):
    """``inputs`` to record (default one JSON input) and an optional ``webhook_url``."""

    inputs: list[NamedInput] = Field(default_factory=lambda: [NamedInput()])
    webhook_url: str | None = None


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class End(BlockType):
    """Records the run's final outputs; optionally POSTs them to ``webhook_url``."""

    type_name = "end"
    role = BlockRole.END
    config_model = EndConfig
    join = JoinMode.ANY

    def check(self, block: BlockDef, config: EndConfig, path: str) -> list[Diagnostic]:
        problems = duplicate_inputs(config.inputs, path)
        if not config.inputs:
            problems.append(no_inputs(
                block, path, "so nothing can reach it and it records no output",
                "input-json-0", "what to record: `inputs: [{name: invoice, type: json}]`"))
        return problems

    def input_handles(self, config: EndConfig) -> dict[str, HandleKind]:
        return {named_handle(i.type, i.name, n): i.type for n, i in enumerate(config.inputs)}

    def runs_inline(self, config: EndConfig) -> bool:
        """Inline unless a webhook must be called."""
        return not config.webhook_url

    async def run(
        self, ctx: BlockContext, config: EndConfig, inputs: Mapping[str, Payload]
    ) -> BlockResult:
        """Record what arrived (artifact ``outputs``) and call the webhook.

        Raises:
            TransientError: the webhook is unreachable or answered 429/5xx.
            PermanentError: the webhook answered another 4xx.
        """
        outputs = {h: p.to_dict() for h, p in inputs.items()}
        artifact: dict[str, Any] = {"operation": "end", "outputs": outputs}
        if config.webhook_url:
            status = await self._post(ctx, config.webhook_url, outputs)
            artifact["webhook"] = {"url": config.webhook_url, "status_code": status}
        return BlockResult(artifact=artifact)

    async def _post(self, ctx: BlockContext, url: str, outputs: dict[str, Any]) -> int:
        url = _ENV_REF.sub(lambda m: ctx.env.get(m[1], m[0]), url)
        body = {"run_id": ctx.run_id, "block_id": ctx.block_id, "outputs": outputs}
        import httpx  # lazily: only webhooks need it

        try:
            async with httpx.AsyncClient(timeout=30.0) as client:
                response = await client.post(url, json=body)
        except httpx.HTTPError as exc:
            raise TransientError(
                f"{who(ctx)}: webhook POST failed ({type(exc).__name__}: {exc}); it will "
                "be retried. Check that the webhook_url is reachable.",
                code="WEBHOOK_FAILED",
            ) from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(
                f"{who(ctx)}: webhook answered HTTP {response.status_code}; retrying.",
                code=f"HTTP_{response.status_code}",
            )
        if response.status_code >= 400:
            raise PermanentError(
                f"{who(ctx)}: webhook answered HTTP {response.status_code}. Check "
                "config.webhook_url and what the receiver expects.",
                code=f"HTTP_{response.status_code}",
                context={"response": response.text[:2000]},
            )
        return response.status_code
