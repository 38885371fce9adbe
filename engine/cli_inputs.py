"""Turn ``stepwell run --input ...`` strings into the engine's ``inputs`` mapping.

Each ``--input`` is ``BLOCK=VALUE``; with a single start block the ``BLOCK=`` prefix may
be left out. What VALUE means depends on the start block's type:

* ``start_json``: inline JSON (``'{"x": 2}'``) or ``@file.json`` (JSON read from a file);
* ``start_document`` (legacy ``start``): the path of the file to run on (``@path`` is
  accepted too).

Every problem raises :class:`~engine.contracts.errors.InputError` naming the ``--input`` at fault
and what to pass instead; nothing here touches the database.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from engine.contracts.blocks import BlockRole
from engine.contracts.bounded import MAX_JSON_DEPTH, check_json
from engine.contracts.errors import InputError
from engine.contracts.frozen import record

_BLOCK_ID = re.compile(r"[A-Za-z0-9_-]+")
_SHOWN_VALUE = 40  # characters of a bad value quoted back in messages


class StartBlock(Protocol):
    """What the parser needs from a compiled start node (``graph.start_blocks()``)."""

    @property
    def id(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def role(self) -> BlockRole: ...


@record
class RawInput:
    """One ``--input`` split into its block id and its value text."""

    block_id: str
    value: str


def parse_inputs(raw: Sequence[str], starts: Iterable[StartBlock]) -> dict[str, Any]:
    """Parse every ``--input`` against the workflow's start blocks.

    Args:
        raw: the ``--input`` strings, in command-line order.
        starts: the workflow's start blocks (``CompiledGraph.start_blocks()``).

    Returns:
        ``{start block id: JSON value or document path}``, ready for ``Engine.run``.

    Raises:
        InputError: an input names no start block, is given twice, is not valid JSON
            for a start_json block, or points at a missing file; or a start block has
            no input.
    """
    by_id = {node.id: node for node in starts}
    inputs: dict[str, Any] = {}
    for text in raw:
        item = split_input(text, by_id)
        if item.block_id in inputs:
            raise InputError(
                f"--input {item.block_id}=... is given twice. Pass one value per start block."
            )
        inputs[item.block_id] = convert_value(item, by_id[item.block_id].role)
    missing = [node for node in by_id.values() if node.id not in inputs]
    if missing:
        raise InputError(
            "No input for start block"
            f"{'s' if len(missing) > 1 else ''} {', '.join(_example(n) for n in missing)}. "
            "Pass one --input per start block."
        )
    return inputs


def _example(node: StartBlock) -> str:
    value = "PATH" if node.role is BlockRole.START_DOCUMENT else "'{...}'"
    return f"{node.id!r} ({node.type}: --input {node.id}={value})"


def split_input(text: str, by_id: dict[str, StartBlock]) -> RawInput:
    """Split ``BLOCK=VALUE`` (or a bare VALUE when there is one start block).

    Raises:
        InputError: the block is not a start block, or the block must be named.
    """
    name, sep, rest = text.partition("=")
    if sep and name in by_id:
        return RawInput(block_id=name, value=rest)
    if sep and _BLOCK_ID.fullmatch(name) and not Path(text).expanduser().exists():
        raise InputError(
            f"--input {name}=...: {name!r} is not a start block of this workflow. "
            f"Start blocks: {_describe(by_id)}."
        )
    if len(by_id) == 1:
        return RawInput(block_id=next(iter(by_id)), value=text)
    if not by_id:
        raise InputError(
            f"--input {_shorten(text)}: this workflow has no start block, so it takes no "
            "input. Remove the --input option."
        )
    raise InputError(
        f"--input {_shorten(text)}: this workflow has {len(by_id)} start blocks, so name "
        f"the one this value is for: --input BLOCK=VALUE. Start blocks: {_describe(by_id)}."
    )


def convert_value(item: RawInput, role: BlockRole) -> Any:
    """The engine value for one input: parsed JSON, or a document path string.

    Raises:
        InputError: bad JSON (NaN, Infinity and nesting deeper than 64 levels included),
            or a file that does not exist.
    """
    if role is BlockRole.START_DOCUMENT:
        return _document_path(item)
    if item.value.startswith("@"):
        return _bounded(item, _json_from_file(item, Path(item.value[1:]).expanduser()))
    try:
        return _bounded(item, json.loads(item.value))
    except json.JSONDecodeError as exc:
        raise InputError(
            f"--input {item.block_id}={_shorten(item.value)}: not valid JSON "
            f"({_json_problem(exc)}). Pass JSON like '{{\"a\": 1}}' or @file.json"
        ) from None
    except RecursionError:
        raise InputError(f"--input {item.block_id}: the JSON is nested too deeply to read. "
                         f"Pass JSON nested at most {MAX_JSON_DEPTH} levels.") from None


def _bounded(item: RawInput, value: Any) -> Any:
    """``value`` when it is bounded JSON (see engine.contracts.bounded); else InputError."""
    check_json(value, what=f"--input {item.block_id}")
    return value


def _document_path(item: RawInput) -> str:
    text = item.value.removeprefix("@")
    path = Path(text).expanduser()
    if not text or not path.exists():
        raise InputError(
            f"--input {item.block_id}={item.value}: file not found: {path}. "
            f"Pass the path of an existing document for start block {item.block_id!r}."
        )
    if not path.is_file():
        raise InputError(
            f"--input {item.block_id}={item.value}: {path} is not a file. "
            "Pass the path of one document (a PDF, image or text file)."
        )
    return str(path)


def _json_from_file(item: RawInput, path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(
            f"--input {item.block_id}=@{path}: file not found: {path}. "
            "Pass @ followed by the path of an existing JSON file."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"--input {item.block_id}=@{path}: cannot read {path} ({exc}). "
            "Pass @ followed by a readable UTF-8 JSON file."
        ) from None
    try:
        return json.loads(text)
    except RecursionError:
        raise InputError(f"--input {item.block_id}=@{path}: the JSON is nested too deeply "
                         f"to read. Pass JSON nested at most {MAX_JSON_DEPTH} levels.") from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"--input {item.block_id}=@{path}: {path} is not valid JSON "
            f"({_json_problem(exc)}). Fix the file, or pass inline JSON like '{{\"a\": 1}}'."
        ) from None


def _json_problem(exc: json.JSONDecodeError) -> str:
    return f"{exc.msg}: line {exc.lineno} column {exc.colno}"


def _describe(by_id: dict[str, StartBlock]) -> str:
    if not by_id:
        return "none"
    return ", ".join(f"{node.id} ({node.type})" for node in by_id.values())


def _shorten(text: str) -> str:
    return text if len(text) <= _SHOWN_VALUE else text[: _SHOWN_VALUE - 3] + "..."
