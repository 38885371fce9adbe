"""``POST /v1/workflows/runs/export``: one block's outputs (or inputs) over runs, as CSV.

Only completed runs are exported (Retab's "completed-only export scope"); the status,
date and trigger filters narrow that further. Each step of the block in each run is a
row (a block inside a loop gives one row per iteration): the fixed columns ``run_id``,
``step_id`` and ``created_at`` (the run's), then the JSON payloads flattened to dotted
columns (``vendor.name``; lists as JSON text). When the block has several JSON handles
their columns are prefixed with the handle's name; a file handle's column holds the
file's name. ``selected_doc_types`` keeps the handles named after those document types
(``output-file-invoice`` for ``Invoice``). ``preferred_columns`` come first, the others
in order of appearance. A ``block_id`` the workflow does not have is a 404 naming the
workflow's blocks (:func:`check_block`), rather than an empty CSV.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from engine.contracts.reads import RunFilters, StepFilters
from engine.server.errors import ApiError
from engine.server.params import parse_when

if TYPE_CHECKING:
    from engine.definition import Workflow

FIXED = ("run_id", "step_id", "created_at")


def handle_name(handle: str) -> str:
    """``output-json-invoice`` -> ``invoice``."""
    parts = handle.split("-", 2)
    return parts[2] if len(parts) == 3 else handle


def doc_type_key(name: str) -> str:
    """A document type as handles name it: lower case, spaces to hyphens."""
    return name.strip().lower().replace(" ", "-")


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested objects as dotted keys; lists and scalars as cells."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return out
    cell = json.dumps(value, ensure_ascii=False) if isinstance(value, list) else value
    return {prefix or "value": cell}


def _row(payloads: Mapping[str, Any], doc_types: set[str] | None) -> dict[str, Any]:
    chosen = {h: p for h, p in payloads.items()
              if doc_types is None or doc_type_key(handle_name(h)) in doc_types}
    several = len(chosen) > 1
    row: dict[str, Any] = {}
    for handle, payload in chosen.items():
        prefix = handle_name(handle) if several else ""
        if payload.get("type") == "file":
            row[prefix or "file"] = (payload.get("document") or {}).get("filename")
        else:
            row.update(flatten(payload.get("data"), prefix))
    return row


def _runs(api: Any, filters: RunFilters) -> Iterator[Any]:
    after = None
    while True:
        found = api.reads.page_runs(filters, organization_id=api.organization_id, limit=1000,
                                    after=after, descending=False)
        yield from found.items
        if not found.more_after:
            return
        after = found.items[-1].id


def check_block(workflow: Workflow, workflow_id: str, block_id: str) -> None:
    """Refuse an export of a block ``workflow`` (the draft) does not have.

    Raises:
        ApiError: 404 ``BLOCK_NOT_FOUND`` naming the block, the closest block id and
            every block id of the workflow.
    """
    if workflow.block(block_id) is not None:
        return
    known = [b.id for b in workflow.blocks]
    close = difflib.get_close_matches(block_id, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ApiError(404, "BLOCK_NOT_FOUND",
                   f"Workflow {workflow_id} has no block {block_id!r}.{hint} Its blocks: "
                   f"{', '.join(known) or 'none'} (client.workflows.blocks.list).",
                   {"block_id": block_id, "workflow_id": workflow_id, "block_ids": known})


def export_rows(api: Any, body: Any, *, workflow: Workflow | None = None
                ) -> list[dict[str, Any]]:
    """The rows of an export request (see the module docstring).

    Args:
        api: a read API of the caller's organization.
        body: the export request.
        workflow: the workflow's draft; when given, an unknown ``block_id`` is refused
            (:func:`check_block`).
    """
    if workflow is not None:
        check_block(workflow, body.workflow_id, body.block_id)
    if body.status not in (None, "completed") or body.exclude_status == "completed":
        return []  # only completed runs are exported
    filters = RunFilters(statuses=["completed"], workflow_id=body.workflow_id,
                         trigger_types=[body.trigger_type] if body.trigger_type else None,
                         created_from=parse_when("from_date", body.from_date),
                         created_to=parse_when("to_date", body.to_date, end=True))
    selected = set(body.selected_run_ids) if body.selected_run_ids is not None else None
    doc_types = ({doc_type_key(d) for d in body.selected_doc_types}
                 if body.selected_doc_types else None)
    rows: list[dict[str, Any]] = []
    for run in _runs(api, filters):
        if selected is not None and run.id not in selected:
            continue
        steps = api.reads.page_steps(run.id, StepFilters(block_id=body.block_id),
                                     organization_id=api.organization_id, limit=1000)
        for step in steps.items:
            if step.status != "completed":
                continue
            payloads = step.outputs if body.export_source == "outputs" else step.inputs
            row = _row(payloads, doc_types)
            if row:
                rows.append({"run_id": run.id, "step_id": step.step_id,
                             "created_at": run.created_at, **row})
    return rows


def to_csv(rows: list[dict[str, Any]], body: Any) -> dict[str, Any]:
    """``{csv_data, rows, columns}`` of the rows, written with the request's delimiters."""
    from engine.server.shapes import iso

    seen: list[str] = []
    for row in rows:
        seen.extend(k for k in row if k not in seen and k not in FIXED)
    preferred = [c for c in body.preferred_columns if c in seen]
    columns = [*FIXED, *preferred, *(c for c in seen if c not in preferred)]
    out = io.StringIO()
    writer = csv.writer(out, delimiter=body.delimiter, lineterminator=body.line_delimiter,
                        quotechar=body.quote, quoting=csv.QUOTE_MINIMAL)
    writer.writerow(columns)
    for row in rows:
        cells = dict(row, created_at=iso(row["created_at"]))
        writer.writerow(["" if cells.get(c) is None else cells.get(c) for c in columns])
    return {"csv_data": out.getvalue(), "rows": len(rows), "columns": len(columns)}
