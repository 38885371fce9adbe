"""The items of a for_each: array elements, page chunks, and the partition keys.

Pure helpers of :mod:`blocks.for_each` (no block type here):

* :func:`array_items`: the elements of the array ``map_source_path`` names, where a
  leading ``data`` segment names the input itself when it has no ``data`` key (Retab
  writes ``data.line_items``);
* :func:`page_items`: PDFs of N pages each, with their page-range keys (``"3"``,
  ``"3-4"``);
* :func:`partition_keys`: the keys of a split_by_key ``partition`` artifact;
* :func:`check_count`: the ``max_items`` guard.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import anyio

from blocks.condition_forms import flat_path
from blocks.condition_paths import MISSING, json_type, lookup
from blocks.control import who
from engine.contracts.blocks import BlockContext
from engine.contracts.errors import ErrorStage, PermanentError
from engine.contracts.values import FileRef, Payload


def check_count(ctx: BlockContext, count: int, max_items: int) -> None:
    """Refuse more than ``max_items`` items.

    Raises:
        PermanentError: ``TOO_MANY_ITEMS``, saying how to raise the limit.
    """
    if count > max_items:
        raise PermanentError(
            f"{who(ctx)} got {count} items, more than max_items={max_items}. "
            "Raise config.max_items if that many iterations are intended.",
            code="TOO_MANY_ITEMS",
            context={"count": count, "max_items": max_items},
        )


def source_array(data: Any, path: str) -> Any:
    """What ``map_source_path`` names in the input (MISSING when nothing).

    When the input has no ``data`` key of its own, a leading ``data`` segment names the
    input itself (``data.line_items`` is the input's ``line_items``).
    """
    found = lookup(data, path)
    retab_root = path == "data" or path.startswith(("data.", "data["))
    if found is MISSING and retab_root and not (isinstance(data, Mapping) and "data" in data):
        return lookup(data, flat_path(path))
    return found


def _arrays_inside(value: Any) -> list[str]:
    if not isinstance(value, Mapping):
        return []
    return [k for k, v in value.items() if isinstance(v, list)][:10]


def array_items(ctx: BlockContext, path: str, data: Any) -> list[Payload]:
    """One JSON item per element of the array at ``path``.

    Raises:
        PermanentError: the path misses (``MAP_SOURCE_NOT_FOUND``) or holds something
            else than an array (``MAP_SOURCE_NOT_ARRAY``), naming the arrays there.
    """
    found = source_array(data, path)
    if isinstance(found, list):
        return [Payload.json(item) for item in found]
    where = f"config.map_source_path {path!r}" if path else "the fe-left-in input itself"
    kind = json_type(found)
    got = (
        "nothing (the path does not exist)"
        if found is MISSING
        else (f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}")
    )
    arrays = _arrays_inside(data if found is MISSING else found)
    hint = f" Arrays found there: {', '.join(arrays)}." if arrays else ""
    raise PermanentError(
        f"{who(ctx)}: {where} should hold an array but holds {got}.{hint} Set "
        "map_source_path to the dotted path of the array (empty = the input itself).",
        code="MAP_SOURCE_NOT_FOUND" if found is MISSING else "MAP_SOURCE_NOT_ARRAY",
        context={"map_source_path": path, "found_type": json_type(found)},
    )


async def page_items(ctx: BlockContext, payload: Payload, per_item: int, method: str,
                     max_items: int) -> tuple[list[Payload], list[Any]]:
    """PDFs of ``per_item`` pages each (the last may be shorter), and their page ranges.

    Args:
        ctx: the step's context (its file store holds the chunks).
        payload: the document on ``fe-left-in`` (an image is one page).
        per_item: pages per item.
        method: the map method, for messages.
        max_items: the item limit, checked before any chunk is stored.

    Raises:
        PermanentError: JSON instead of a file, an unreadable PDF, too many items.
    """
    ref = file_of(ctx, payload, method)
    if ref.mime_type.startswith("image/"):
        return [payload], ["1"]
    assert ctx.files is not None
    data = ctx.files.read_bytes(ref)
    pages = await anyio.to_thread.run_sync(page_chunks, data, per_item)
    if isinstance(pages, str):
        raise PermanentError(
            f"{who(ctx)}: {method} cannot read {ref.filename!r} as a PDF ({pages}). Feed it "
            "a readable PDF (or an image), or use iterate_array on JSON.",
            stage=ErrorStage.DOCUMENT_FETCH,
            code="NOT_A_PDF",
        )
    check_count(ctx, len(pages), max_items)
    stem = PurePath(ref.filename).stem or "document"
    items, keys = [], []
    for label, chunk in pages:
        name = f"{stem}_pages_{label}.pdf" if "-" in label else f"{stem}_page_{label}.pdf"
        items.append(Payload.file(ctx.files.put_bytes(chunk, name, "application/pdf")))
        keys.append(label)
    return items, keys


def file_of(ctx: BlockContext, payload: Payload, method: str) -> FileRef:
    """The document a page method reads.

    Raises:
        PermanentError: JSON arrived instead (``EXPECTED_FILE``).
    """
    if payload.document is None or ctx.files is None:
        raise PermanentError(
            f"{who(ctx)}: {method} needs a file on 'fe-left-in', got JSON. Connect a "
            "document output (e.g. start_document.output-file-0).",
            stage=ErrorStage.INPUT_COLLECTION,
            code="EXPECTED_FILE",
        )
    return payload.document


def page_chunks(data: bytes, per_item: int = 1) -> list[tuple[str, bytes]] | str:
    """``[(page range, PDF)]`` with ``per_item`` pages each (``"3"`` or ``"3-4"``), or
    what is wrong with the file and how to fix it (empty, not a PDF, corrupt, encrypted:
    see :func:`blocks.pdf.open_pdf`)."""
    from blocks.pdf import DocumentProblem, page_count, page_subset, split_pages

    try:
        if per_item == 1:
            return [(str(n), page) for n, page in enumerate(split_pages(data), start=1)]
        total = page_count(data)
        chunks = []
        for first in range(1, total + 1, per_item):
            last = min(first + per_item - 1, total)
            label = str(first) if first == last else f"{first}-{last}"
            chunks.append((label, page_subset(data, list(range(first, last + 1)))))
        return chunks
    except DocumentProblem as problem:
        return f"{problem.problem}; {problem.fix[0].lower()}{problem.fix[1:]}"


def partition_keys(artifact: Mapping[str, Any] | None) -> list[Any] | None:
    """The partition keys a ``partition`` artifact records, in item order."""
    if not artifact:
        return None
    parts = (artifact.get("output") or {}).get("partitions")
    return [p.get("key") for p in parts] if isinstance(parts, list) else None
