"""Validation of a loaded workflow: every problem at once.

Theory of operation
-------------------
:func:`analyse` walks the workflow in phases and never stops at the first problem:

1. header: ``apiVersion`` pin (declarative input only; builder and graph forms carry
   None) and ``kind``;
2. blocks: id syntax, unique ids (children included), known and authorable type,
   ``review`` only on reviewable types, config parsed by the type's pydantic model, the
   type's own ``check()``; handles are derived from the parsed config;
3. structure: parents exist and are containers, no start block inside a container, at
   most one start block of each start role, no user id equal to a generated sentinel id;
4. edges (engine.edge_rules): endpoints exist and are not notes, handles resolve (target
   aliases, empty handle = the only fitting one), kinds match, one edge per input handle,
   and the edge stays in one scope (see engine.containers for the handles that cross a
   boundary);
5. container boundary edges the author did not write are generated (engine.graph);
6. cycles (engine.edge_rules): after the sentinel rewrite every legal loop goes through a
   while_loop, so any cycle left is an error.

What a block is to these rules (a start block, a container of which kind, a note) comes
from its block type's attributes (``role``, ``container``, ``executes``), never from the
type's name. A phase skips what an earlier phase already reported (an edge to a block
whose config is invalid is not checked again), so one mistake gives one diagnostic.
"""

from __future__ import annotations

import re
import typing
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from engine.analysis import Analysis, BlockInfo
from engine.containers import CONTAINERS, sentinel_type
from engine.contracts.blocks import BlockRole, SentinelRole, sentinel_id
from engine.contracts.definition import API_VERSION
from engine.edge_rules import check_edges

if TYPE_CHECKING:
    from blocks.registry import BlockRegistry
    from engine.definition import Workflow

ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")
#: The start roles, in the order their counts are checked.
START_ROLES = (BlockRole.START_DOCUMENT, BlockRole.START_JSON)


def analyse(workflow: Workflow, registry: BlockRegistry) -> Analysis:
    """Run phases 1-4 (see the module docstring) on ``workflow``.

    engine.graph then generates boundary edges (phase 5) and calls
    :func:`check_cycles` (phase 6).

    Args:
        workflow: a loaded workflow (its ``load_diagnostics`` are included).
        registry: the block types available.

    Returns:
        The analysis; ``analysis.diagnostics`` lists every problem found.
    """
    analysis = Analysis(workflow=workflow, registry=registry,
                        diagnostics=list(workflow.load_diagnostics))
    _check_header(analysis)
    _check_blocks(analysis)
    _check_structure(analysis)
    check_edges(analysis)
    return analysis


# ------------------------------------------------------------------ header


def _check_header(a: Analysis) -> None:
    wf = a.workflow
    if wf.api_version is not None and wf.api_version != API_VERSION:
        a.report("INVALID_API_VERSION", "apiVersion",
                 f"apiVersion is {wf.api_version!r}; stepwell reads {API_VERSION!r}.",
                 f"Write `apiVersion: {API_VERSION}`.", api_version=wf.api_version)
    if wf.kind is not None and wf.kind != "Workflow":
        a.report("INVALID_KIND", "kind", f"kind is {wf.kind!r}, not 'Workflow'.",
                 "Write `kind: Workflow`.")


# ------------------------------------------------------------------ blocks


def _check_blocks(a: Analysis) -> None:
    loaded = {d.path for d in a.workflow.load_diagnostics}
    for index, block in enumerate(a.workflow.blocks):
        info = BlockInfo(block=block, index=index)
        if not ID_PATTERN.match(block.id):
            a.report("INVALID_BLOCK_ID", block.path,
                     f"Block id {block.id!r} has characters other than letters, digits, "
                     "'_' and '-'.", "Rename it, e.g. "
                     f"{re.sub(r'[^A-Za-z0-9_-]+', '_', block.id) or 'block_1'!r}.")
        first = a.blocks.get(block.id)
        if first is not None:
            a.report("DUPLICATE_BLOCK_ID", block.path,
                     f"Block id {block.id!r} is already used at {first.block.path}; ids must "
                     "be unique across the whole workflow, children included.",
                     "Rename one of them.", block_id=block.id, first_path=first.block.path)
        else:
            a.blocks[block.id] = info
        if _resolve_type(a, info, loaded):
            _parse_config(a, info)


def _resolve_type(a: Analysis, info: BlockInfo, loaded: set[str]) -> bool:
    block = info.block
    if not block.type:
        if block.path not in loaded and f"{block.path}.type" not in loaded:
            a.report("MISSING_BLOCK_TYPE", f"{block.path}.type",
                     f"Block {block.id!r} has no type.", "Set its type.")
        return False
    if block.type not in a.registry:
        known = a.registry.names()
        import difflib  # here: only an unknown type needs suggestions

        close = difflib.get_close_matches(block.type, known, n=1)
        hint = f"Did you mean {close[0]!r}? " if close else ""
        a.report("UNKNOWN_BLOCK_TYPE", f"{block.path}.type",
                 f"Block {block.id!r} has unknown type {block.type!r}.",
                 f"{hint}Known types: {', '.join(known)}.", type=block.type,
                 known_types=known)
        return False
    impl = a.registry.get(block.type)
    if not impl.authorable:
        a.report("BLOCK_TYPE_NOT_AUTHORABLE", f"{block.path}.type",
                 f"Block {block.id!r} has type {block.type!r}, which the engine generates "
                 "itself (loop sentinels are added for every container).",
                 "Remove the block; containers get their sentinels automatically.")
        return False
    info.impl = impl
    return True


def _parse_config(a: Analysis, info: BlockInfo) -> None:
    block, impl = info.block, info.impl
    assert impl is not None
    raw = dict(block.config)
    if "review" in raw and not impl.reviewable:
        a.report("REVIEW_NOT_SUPPORTED", f"{block.path}.config.review",
                 f"Block {block.id!r} ({block.type}) cannot be reviewed.",
                 "Remove config.review; review is available on extract, split, classifier "
                 "and split_by_key for_each blocks (or add a hil block after this one).")
        raw.pop("review")
    try:
        config = impl.parse_config(raw)
    except ValidationError as exc:
        _config_errors(a, info, exc)
        return
    info.config = config
    a.diagnostics.extend(impl.check(block, config, block.path))
    info.inputs = dict(impl.input_handles(config))
    info.outputs = dict(impl.output_handles(config))
    info.aliases = dict(impl.input_aliases(config))
    spec = info.spec
    if spec is not None:
        left_out = impl.iteration_kind(config)  # a for_each over pages hands out files
        info.inputs.setdefault(spec.left_in, left_out)
        for handle in spec.feedback:
            info.inputs.setdefault(handle, "json")
        info.outputs.setdefault(spec.right_out, "json")
        info.outputs[spec.left_out] = left_out
    info.ok = True


def _config_errors(a: Analysis, info: BlockInfo, exc: ValidationError) -> None:
    block, impl = info.block, info.impl
    assert impl is not None
    extras: dict[tuple[Any, ...], list[str]] = {}
    for error in exc.errors():
        loc = tuple(error["loc"])
        if error["type"] == "extra_forbidden":
            extras.setdefault(loc[:-1], []).append(str(loc[-1]))
            continue
        dotted = ".".join(str(p) for p in loc)
        where = f"config.{dotted}" if dotted else "config"
        a.report("INVALID_CONFIG", f"{block.path}.{where}",
                 f"Invalid config for {block.type!r} block {block.id!r}: {where}: "
                 f"{error['msg']}.", f"Correct {where} (see the {block.type} block "
                 "reference).", field=dotted, error_type=error["type"])
    for parent, keys in extras.items():
        valid = _valid_fields(impl.config_model, parent)
        inside = f"config.{'.'.join(map(str, parent))}" if parent else "config"
        a.report("INVALID_CONFIG_FIELD", f"{block.path}.{inside}.{keys[0]}",
                 f"Invalid config fields for {block.type!r} block {block.id!r}"
                 f"{'' if not parent else ' in ' + inside}: {', '.join(keys)}. "
                 f"Valid fields: {', '.join(valid) or '(none)'}.",
                 "Remove or rename the unknown fields.", fields=keys, valid_fields=valid)


def _valid_fields(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:
            return []
        if isinstance(part, int):
            continue
        fields = {(f.alias or n): f for n, f in current.model_fields.items()}
        fields.update(current.model_fields)
        found = fields.get(str(part))
        current = _model_in(found.annotation) if found else None
    if current is None:
        return []
    return sorted(f.alias or n for n, f in current.model_fields.items())


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


# ------------------------------------------------------------------ structure


def _check_structure(a: Analysis) -> None:
    for info in a.blocks.values():
        _check_parent(a, info)
        spec = info.spec
        if info.impl is not None and info.impl.container and spec is None:
            a.report("UNSUPPORTED_CONTAINER", info.block.path,
                     f"Block type {info.block.type!r} declares container kind "
                     f"{info.impl.container!r}, which the engine does not know.",
                     f"Use one of: {', '.join(CONTAINERS)}.")
        if spec is not None:
            _check_sentinels(a, info)
    _check_start_counts(a)


def _check_parent(a: Analysis, info: BlockInfo) -> None:
    block = info.block
    if block.parent_id is None:
        return
    if info.impl is not None and info.impl.role.is_start:
        a.report("START_BLOCK_IN_CONTAINER", block.path,
                 f"Start block {block.id!r} is inside container {block.parent_id!r}.",
                 "Move it to the top level; feed the container through its left-in handle.")
    parent = a.blocks.get(block.parent_id)
    if parent is None:
        a.report("UNKNOWN_PARENT_BLOCK", block.path,
                 f"Block {block.id!r} names parent {block.parent_id!r}, which does not exist.",
                 "Nest the block under an existing for_each or while_loop.")
        return
    if parent.impl is not None and parent.spec is None:
        a.report("PARENT_NOT_CONTAINER", block.path,
                 f"Block {block.id!r} is a child of {parent.id!r} ({parent.block.type}), "
                 "which is not a container.",
                 "Only for_each and while_loop blocks have children; move it out.")
    seen = {block.id}
    current: str | None = block.parent_id
    while current is not None and current in a.blocks:
        if current in seen:
            a.report("PARENT_CYCLE", block.path,
                     f"Block {block.id!r} is (indirectly) its own parent.",
                     "Give the containers a tree shape.")
            return
        seen.add(current)
        current = a.blocks[current].block.parent_id


def _check_sentinels(a: Analysis, info: BlockInfo) -> None:
    kind = info.container_kind or ""
    for role in SentinelRole:
        sid = sentinel_id(info.id, role)
        if sid in a.blocks:
            a.troubled.add(info.id)  # generating its boundary edges would add noise
            a.report("RESERVED_BLOCK_ID", a.blocks[sid].block.path,
                     f"Block id {sid!r} is reserved for the {role.value} sentinel of "
                     f"container {info.id!r}.", "Rename the block.", block_id=sid)
        if sentinel_type(kind, role) not in a.registry:
            a.report("MISSING_SENTINEL_TYPE", info.block.path,
                     f"The registry has no {sentinel_type(kind, role)} type, needed to run "
                     f"container {info.id!r}.",
                     "Use blocks.registry.default_registry(), or register the sentinels.")


def _check_start_counts(a: Analysis) -> None:
    for role in START_ROLES:
        found = [i for i in a.blocks.values() if i.impl is not None and i.impl.role is role]
        start_type = role.value
        if len(found) > 1:
            ids = [i.id for i in found]
            a.report("MULTIPLE_START_BLOCKS", found[1].block.path,
                     f"The workflow has {len(found)} {start_type} blocks ({', '.join(ids)}); "
                     "at most one is allowed.",
                     f"Keep one {start_type} block and connect everything that needs its "
                     "input to it.", block_ids=ids)
