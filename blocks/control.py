"""Control blocks: start_json, start_document, note, end, conditional, merge_dicts, reshape.

None of these needs a model. Start blocks read ``ctx.run_inputs[block_id]``; ``end``
and ``merge_dicts`` are joins (they run with whatever arrived); ``conditional`` routes
its unchanged input to the first matching branch's handle and fires nothing else.

The small helpers at the top (:func:`who`, :func:`require_json`, :func:`schema_errors`,
:func:`schema_diagnostics`, :func:`ensure_matches_schema`) are shared with the function
and loop blocks.
"""

from __future__ import annotations

import base64
import binascii
import copy
import logging
import mimetypes
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import json

from pydantic import AliasChoices, Field

from blocks.base import (
    BlockContext,
    BlockResult,
    BlockType,
    EmptyConfig,
    HandleKind,
    JoinMode,
    StrictConfig,
)
from blocks.conditions import (
    MISSING,
    PathSyntaxError,
    evaluate,
    json_type,
    lookup,
    parse_condition_group,
    parse_path,
    validate_condition_group,
)
from blocks.schemas import (  # noqa: F401  (re-exported: shared with other blocks)
    ensure_matches_schema,
    schema_diagnostics,
    schema_errors,
)
from engine.errors import Diagnostic, ErrorStage, PermanentError, TransientError
from engine.values import FileRef, Payload

if TYPE_CHECKING:
    from engine.definition import BlockDef

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- helpers


def who(ctx: BlockContext) -> str:
    """``function block 'price_line'``: how messages name the failing block."""
    return f"{ctx.block_type} block {ctx.block_id!r}"


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


def _named_handle(kind: str, name: str | int | None, index: int) -> str:
    return f"input-{kind}-{index if name is None or name == '' else name}"


def _duplicate_inputs(inputs: list[NamedInput], path: str) -> list[Diagnostic]:
    seen: set[str] = set()
    problems = []
    for n, item in enumerate(inputs):
        handle = _named_handle(item.type, item.name, n)
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
    config_model = StartJsonConfig

    def output_handles(self, config: StartJsonConfig) -> dict[str, HandleKind]:
        return {"output-json-0": "json"}

    def output_schema(self, config: StartJsonConfig, handle: str) -> dict[str, Any] | None:
        return config.json_schema

    def check(self, block: BlockDef, config: StartJsonConfig, path: str) -> list[Diagnostic]:
        return schema_diagnostics(config.json_schema, f"{path}.config.json_schema")

    def runs_inline(self, config: Any) -> bool:
        """Pure CPU logic: runs in the driver loop."""
        return True

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


_DATA_URL = re.compile(r"^data:(?P<mime>[^;,]*)(?P<b64>;base64)?,(?P<data>.*)$", re.S)


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
    config_model = EndConfig
    join = JoinMode.ANY

    def check(self, block: BlockDef, config: EndConfig, path: str) -> list[Diagnostic]:
        return _duplicate_inputs(config.inputs, path)

    def input_handles(self, config: EndConfig) -> dict[str, HandleKind]:
        return {_named_handle(i.type, i.name, n): i.type for n, i in enumerate(config.inputs)}

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


# ----------------------------------------------------------------------------- conditional


def slugify(name: str) -> str:
    """Handle key from a label: lower-case, runs of non ``[a-z0-9]`` become one ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


class Branch(StrictConfig):
    """One branch: ``{id, name, handle_key?, condition}`` (condition checked in check())."""

    id: str | None = None
    name: str = ""
    handle_key: str | None = None
    condition: dict[str, Any] = Field(default_factory=dict)


class ConditionalConfig(StrictConfig):
    """``conditions`` (alias ``branches``) in priority order, and ``has_else``."""

    conditions: list[Branch] = Field(
        default_factory=list, validation_alias=AliasChoices("conditions", "branches")
    )
    has_else: bool = False

    def resolved(self) -> list[tuple[str, str, str, dict[str, Any]]]:
        """``[(id, name, handle_key, raw condition)]`` with defaults filled in."""
        out = []
        for i, b in enumerate(self.conditions):
            ident = b.id or f"condition_{i}"
            name = b.name or ident
            out.append((ident, name, b.handle_key or slugify(name), b.condition))
        return out


_HANDLE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


class Conditional(BlockType):
    """Routes ``input-json-0`` unchanged to the first matching branch (or ``else``)."""

    type_name = "conditional"
    config_model = ConditionalConfig
    operation = "conditional_evaluation"
    unfired_reason = "branch_not_selected"

    def input_handles(self, config: ConditionalConfig) -> dict[str, HandleKind]:
        return {"input-json-0": "json"}

    def output_handles(self, config: ConditionalConfig) -> dict[str, HandleKind]:
        handles: dict[str, HandleKind] = {
            f"output-json-{key}": "json" for _, _, key, _ in config.resolved()
        }
        if config.has_else:
            handles["output-json-else"] = "json"
        return handles

    def check(self, block: BlockDef, config: ConditionalConfig, path: str) -> list[Diagnostic]:
        field = "branches" if "branches" in block.config else "conditions"
        problems: list[Diagnostic] = []
        seen_keys: dict[str, int] = {}
        seen_ids: set[str] = set()
        for i, (ident, _name, key, raw) in enumerate(config.resolved()):
            where = f"{path}.config.{field}[{i}]"
            problems += validate_condition_group(raw, f"{where}.condition", inputs=["input-json-0"])
            problems += self._key_problems(key, where, seen_keys, i)
            if ident in seen_ids:
                problems.append(
                    Diagnostic(
                        code="DUPLICATE_CONDITION_ID",
                        message=f"condition id {ident!r} is used twice",
                        path=f"{where}.id",
                        fix="give every branch its own id",
                    )
                )
            seen_ids.add(ident)
        if config.has_else and "else" in seen_keys:
            problems.append(
                Diagnostic(
                    code="DUPLICATE_HANDLE_KEY",
                    message="handle key 'else' clashes with has_else",
                    path=f"{path}.config.{field}[{seen_keys['else']}].handle_key",
                    fix="rename the branch or its handle_key",
                )
            )
        return problems

    @staticmethod
    def _key_problems(key: str, where: str, seen: dict[str, int], i: int) -> list[Diagnostic]:
        if not key or not _HANDLE_KEY.match(key):
            return [
                Diagnostic(
                    code="INVALID_HANDLE_KEY",
                    message=f"branch handle key {key!r} is empty or has characters other than "
                    "letters, digits, '-' and '_'",
                    path=f"{where}.handle_key",
                    fix="set handle_key, e.g. `needs-approval`",
                )
            ]
        if key in seen:
            return [
                Diagnostic(
                    code="DUPLICATE_HANDLE_KEY",
                    message=f"handle key {key!r} is also used by branch {seen[key]}",
                    path=f"{where}.handle_key",
                    fix="give the branch a distinct name or an explicit handle_key",
                )
            ]
        seen[key] = i
        return []

    def runs_inline(self, config: Any) -> bool:
        """Pure CPU logic: runs in the driver loop."""
        return True

    async def run(
        self, ctx: BlockContext, config: ConditionalConfig, inputs: Mapping[str, Payload]
    ) -> BlockResult:
        """Evaluate every branch; fire the first match (or else) with the input payload.

        Raises:
            PermanentError: no input, or a condition that does not parse.
        """
        data = require_json(ctx, inputs, "input-json-0")
        evaluations: list[dict[str, Any]] = []
        for i, (ident, name, key, raw) in enumerate(config.resolved()):
            group = self._group(ctx, raw, i)
            result = evaluate(group, data, inputs={"input-json-0": data})
            evaluations.append(
                {
                    "condition_id": ident,
                    "branch_name": name,
                    "output_handle_id": f"output-json-{key}",
                    **result.to_dict(),
                }
            )
        matched = [e for e in evaluations if e["matched"]]
        if matched:
            selected = [matched[0]["output_handle_id"]]
        else:
            selected = ["output-json-else"] if config.has_else else []
        artifact = {
            "operation": self.operation,
            "evaluations": evaluations,
            "selected_handles": selected,
            "matched_branch_id": matched[0]["condition_id"] if matched else None,
            "matched_condition_ids": [e["condition_id"] for e in matched],
        }
        return BlockResult(outputs={h: inputs["input-json-0"] for h in selected}, artifact=artifact)

    def _group(self, ctx: BlockContext, raw: dict[str, Any], index: int) -> Any:
        problems = validate_condition_group(raw, f"conditions[{index}].condition")
        if problems:
            raise PermanentError(
                f"{who(ctx)}: {problems[0].render()}",
                code=problems[0].code,
                context={"problems": [p.to_dict() for p in problems]},
            )
        return parse_condition_group(raw)


# ----------------------------------------------------------------------------- merge_dicts


class MergeDictsConfig(StrictConfig):
    """Declared ``inputs`` (merge order) and the ``collision`` policy."""

    inputs: list[NamedInput] = Field(default_factory=lambda: [NamedInput()])
    collision: Literal["last_wins", "first_wins", "error"] = "last_wins"


class MergeDicts(BlockType):
    """Shallow-merges the JSON objects that arrived, in declared order."""

    type_name = "merge_dicts"
    config_model = MergeDictsConfig
    join = JoinMode.ANY_NO_FAIL

    def input_handles(self, config: MergeDictsConfig) -> dict[str, HandleKind]:
        return {_named_handle("json", i.name, n): "json" for n, i in enumerate(config.inputs)}

    def output_handles(self, config: MergeDictsConfig) -> dict[str, HandleKind]:
        return {"output-json-0": "json"}

    def check(self, block: BlockDef, config: MergeDictsConfig, path: str) -> list[Diagnostic]:
        problems = _duplicate_inputs(config.inputs, path)
        for n, item in enumerate(config.inputs):
            if item.type != "json":
                problems.append(
                    Diagnostic(
                        code="INVALID_INPUT_TYPE",
                        message="merge_dicts merges JSON objects only",
                        path=f"{path}.config.inputs[{n}].type",
                        fix="use `type: json` or drop it",
                    )
                )
        return problems

    def runs_inline(self, config: Any) -> bool:
        """Pure CPU logic: runs in the driver loop."""
        return True

    async def run(
        self, ctx: BlockContext, config: MergeDictsConfig, inputs: Mapping[str, Payload]
    ) -> BlockResult:
        """Merge the arrived objects.

        Raises:
            PermanentError: a payload is not an object, or a key collides under
                ``collision: error``.
        """
        merged: dict[str, Any] = {}
        owner: dict[str, str] = {}
        for handle in self.input_handles(config):
            if handle not in inputs:
                continue
            data = inputs[handle].data
            if not isinstance(data, Mapping):
                raise PermanentError(
                    f"{who(ctx)}: {handle!r} carries a JSON {json_type(data)}, not an object; "
                    "merge_dicts merges objects. Wrap it upstream (e.g. reshape).",
                    code="MERGE_INPUT_NOT_OBJECT",
                    context={"handle": handle},
                )
            self._merge_into(ctx, config, merged, owner, handle, data)
        return BlockResult(outputs={"output-json-0": Payload.json(merged)})

    @staticmethod
    def _merge_into(
        ctx: BlockContext,
        config: MergeDictsConfig,
        merged: dict[str, Any],
        owner: dict[str, str],
        handle: str,
        data: Mapping[str, Any],
    ) -> None:
        for key, value in data.items():
            if key in merged:
                if config.collision == "error":
                    raise PermanentError(
                        f"{who(ctx)}: key {key!r} comes from both {owner[key]!r} and "
                        f"{handle!r}. Rename it upstream or set collision: last_wins|first_wins.",
                        code="MERGE_KEY_COLLISION",
                        context={"key": key, "handles": [owner[key], handle]},
                    )
                if config.collision == "first_wins":
                    continue
                log.debug("%s: %r from %s overwrites %s", who(ctx), key, handle, owner[key])
            merged[key] = value
            owner[key] = handle


# ----------------------------------------------------------------------------- reshape

_TARGET = re.compile(r"^[^.\[\]*]+(\.[^.\[\]*]+)*$")


class ReshapeConfig(StrictConfig):
    """``mappings`` ``{target: source path}``, optional ``output_schema``, ``missing``."""

    mappings: dict[str, str] = Field(default_factory=dict)
    output_schema: dict[str, Any] | None = None
    missing: Literal["error", "null"] = "error"


class Reshape(BlockType):
    """Builds a new object from paths into ``input-json-0``."""

    type_name = "reshape"
    config_model = ReshapeConfig

    def input_handles(self, config: ReshapeConfig) -> dict[str, HandleKind]:
        return {"input-json-0": "json"}

    def output_handles(self, config: ReshapeConfig) -> dict[str, HandleKind]:
        return {"output-json-0": "json"}

    def output_schema(self, config: ReshapeConfig, handle: str) -> dict[str, Any] | None:
        return config.output_schema

    def check(self, block: BlockDef, config: ReshapeConfig, path: str) -> list[Diagnostic]:
        problems = schema_diagnostics(config.output_schema, f"{path}.config.output_schema")
        targets: list[tuple[str, ...]] = []
        for target, source in config.mappings.items():
            where = f"{path}.config.mappings.{target}"
            try:
                parse_path(source)
            except PathSyntaxError as exc:
                problems.append(
                    Diagnostic(
                        code="INVALID_PATH", message=str(exc), path=where, fix="fix the source path"
                    )
                )
            if not _TARGET.match(target):
                problems.append(
                    Diagnostic(
                        code="INVALID_RESHAPE_TARGET",
                        message=f"target {target!r} must be dotted keys (no brackets, no '*')",
                        path=where,
                        fix="write targets like `customer.name`",
                    )
                )
                continue
            parts = tuple(target.split("."))
            for other in targets:
                shorter, longer = sorted((parts, other), key=len)
                if longer[: len(shorter)] == shorter:
                    problems.append(
                        Diagnostic(
                            code="RESHAPE_TARGET_CONFLICT",
                            message=f"targets {'.'.join(other)!r} and {target!r} overlap",
                            path=where,
                            fix="map to a target that neither holds nor is held by another",
                        )
                    )
            targets.append(parts)
        return problems

    def runs_inline(self, config: Any) -> bool:
        """Pure CPU logic: runs in the driver loop."""
        return True

    async def run(
        self, ctx: BlockContext, config: ReshapeConfig, inputs: Mapping[str, Payload]
    ) -> BlockResult:
        """Build the output object.

        Raises:
            PermanentError: a source path is missing (unless ``missing: null``), targets
                overlap, or the result breaks ``output_schema``.
        """
        data = require_json(ctx, inputs, "input-json-0")
        out: dict[str, Any] = {}
        for target, source in config.mappings.items():
            value = lookup(data, source)
            if value is MISSING:
                if config.missing == "error":
                    raise PermanentError(
                        f"{who(ctx)}: path {source!r} (for {target!r}) is not in the input. "
                        "Fix config.mappings, or set `missing: null` to map absent paths to null.",
                        code="RESHAPE_PATH_MISSING",
                        context={"target": target, "path": source},
                    )
                value = None
            self._assign(ctx, out, target, copy.deepcopy(value))
        ensure_matches_schema(ctx, out, config.output_schema, "the reshaped output")
        return BlockResult(outputs={"output-json-0": Payload.json(out)})

    @staticmethod
    def _assign(ctx: BlockContext, out: dict[str, Any], target: str, value: Any) -> None:
        *parents, last = target.split(".")
        node: Any = out
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        if not isinstance(node, dict) or last in node:
            raise PermanentError(
                f"{who(ctx)}: mapping target {target!r} overlaps another target. "
                "Give each mapping its own place in the output.",
                code="RESHAPE_TARGET_CONFLICT",
                context={"target": target},
            )
        node[last] = value
