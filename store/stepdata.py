"""What a step event stores, whatever the backend: errors, review data, artifact ids,
and the compact forms the SQL stores keep of artifacts and transitions.

Both stores (:mod:`store.sqlite`, :mod:`store.memory`) build these values from a
:class:`~engine.contracts.events.StepEvent` the same way, so a step reads back
identically from either.

Layout 8 stores two things without what the row already says, and reads put it back:

- an in-row artifact record without its ``operation`` member when that comes first
  (``artifact_operation`` holds it): :func:`stored_artifact`, :func:`full_artifact`;
- a transition (an element of ``steps.trail``, ``[status, at, retry_count, detail]``)
  without its trailing defaults (no detail, retry count 0) and without a time that one of
  the row's time columns holds: :func:`trail_entry`, read by the ``transitions`` view
  (:data:`store.layout.TRANSITIONS_VIEW`).
"""

from __future__ import annotations

from typing import Any

from engine.contracts.artifacts import artifact_digest, artifact_id, artifact_prefix
from engine.contracts.errors import StorageError
from engine.contracts.events import StepErrorInfo, StepEvent
from store.codec import encode


def error_json(info: StepErrorInfo, block_id: str, label: str) -> dict[str, Any]:
    """The stored ``error`` of a step or run: ``{message, stage, category, details}``."""
    return {
        "message": info.message,
        "stage": str(info.stage),
        "category": str(info.category),
        "details": info.details(block_id, label),
    }


def review_data(ev: StepEvent) -> dict[str, Any]:
    """What a reviewer decides on: the proposed outputs and why review was asked."""
    outputs = {h: p.to_dict() for h, p in (ev.outputs or {}).items()}
    return {"outputs": outputs, "review": (ev.control or {}).get("review")}


#: Hex digits of an in-row artifact id after its ``seq``: a hash of run, step and attempt.
TAG_DIGITS = 6


def in_row_id(stub: str, seq: int) -> str:
    """An in-row artifact id from ``stub`` (``<prefix>_<tag>``, as :func:`artifact_stub`
    makes it) and the row's ``seq``: the prefix, the ``seq`` in 6 hex digits (more past
    2**24), then the tag (what SQLite stores wrote in SQL before: ids stay the same)."""
    return f"{stub[:-TAG_DIGITS]}{seq:06x}{stub[-TAG_DIGITS:]}"


def artifact_stub(run_id: str, ev: StepEvent) -> tuple[str, str]:
    """The id stub (``fninv_3f9a0c``: the prefix, then the first 6 hex digits of the
    hash :func:`~engine.contracts.artifacts.artifact_id` takes of run, step and attempt)
    and the operation of the artifact ``ev`` carries, for a store that puts the row's
    ``seq`` in the middle (:func:`in_row_id`, or in SQL).

    The ``seq`` lets a reader find the row without an index; the tag tells the attempts
    of one step apart, and a row that took the ``seq`` of a deleted one (SQLite reuses
    the highest) from the row it replaced.

    Raises:
        StorageError: the artifact names no ``operation``.
    """
    operation = _operation(ev)
    tag = artifact_digest(run_id, ev.step_id, ev.retry_count)[:TAG_DIGITS]
    return f"{artifact_prefix(operation)}_{tag}", operation


def locate_artifact(artifact_id_: str) -> int | None:
    """The ``seq`` of the step row an in-row artifact id names, or None when the id
    has no such shape (an id from before layout 6: look it up in ``artifacts``). The
    caller checks that the row's ``artifact_id`` equals the id."""
    _, sep, digits = artifact_id_.partition("_")
    if not sep or len(digits) < 12 or len(digits) > 22:
        return None
    try:
        seq = int(digits[:-TAG_DIGITS], 16)
    except ValueError:
        return None
    return seq if seq < 2**63 else None  # past a 64-bit rowid: no such row


def _operation(ev: StepEvent) -> str:
    assert ev.artifact is not None
    operation = ev.artifact.get("operation")
    if not isinstance(operation, str) or not operation:
        raise StorageError(
            f"the artifact of step {ev.step_id!r} has no 'operation': block handlers "
            "must return artifact={'operation': <name>, ...}."
        )
    return operation


def artifact_key(run_id: str, ev: StepEvent) -> tuple[str, str]:
    """The id and operation of the artifact ``ev`` carries.

    The id is deterministic (Retab's prefix for the operation, then 12 hex of sha256
    over run, step and attempt: :func:`engine.contracts.artifacts.artifact_id`), so a
    resumed attempt overwrites its own record.

    Raises:
        StorageError: the artifact names no ``operation``.
    """
    operation = _operation(ev)
    return artifact_id(operation, run_id, ev.step_id, ev.retry_count), operation


# --------------------------------------------------------------------------- layout 8

#: ``{"operation":<name>,`` per operation name: how an encoded record starts when its
#: ``operation`` comes first (built once per name; names are a block type's few).
_OPERATION_HEADS: dict[str, str] = {}
#: Names kept in :data:`_OPERATION_HEADS` at most: a custom block that makes up a new
#: operation name per step must not grow it for the life of the process.
_OPERATION_HEADS_MAX = 256
_BLOB_KEY = '"blob":'


def stored_artifact(text: str, operation: str) -> str:
    """The text a step row keeps of an artifact encoded as ``text`` (compact JSON, or a
    blob marker), whose ``operation`` is ``operation``.

    When the record starts with its ``operation`` member, that member is left out: the
    row's ``artifact_operation`` holds the same name, and :func:`full_artifact` puts it
    back first, so the record reads back as the block returned it. Anything else is kept
    as it is: a record whose ``operation`` is not its first member, a blob marker (the
    blob holds the whole record), and a record whose next member is ``blob`` (what is
    left would read as a blob marker).
    """
    head = _OPERATION_HEADS.get(operation)
    if head is None:
        head = '{"operation":' + encode(operation) + ","
        if len(_OPERATION_HEADS) < _OPERATION_HEADS_MAX:
            _OPERATION_HEADS[operation] = head
    if text.startswith(head):
        if text.startswith(_BLOB_KEY, len(head)):
            return text
        return "{" + text[len(head):]
    if len(text) == len(head) and text.endswith("}") and text.startswith(head[:-1]):
        return "{}"  # the operation alone
    return text


def full_artifact(record: Any, operation: str) -> Any:
    """An in-row artifact ``record`` as read (blobs inlined) with its ``operation`` back:
    first, as :func:`stored_artifact` found it. A record that names its operation (every
    one written before layout 8, and those kept whole) is returned as it is."""
    if isinstance(record, dict) and "operation" not in record:
        return {"operation": operation, **record}
    return record


def trail_entry(head: str, at: str | None, retry_count: int, detail: str | None) -> str:
    """One transition as ``steps.trail`` keeps it (layout 8): ``[status, at, retry_count,
    detail]`` without its trailing defaults, so most transitions are ``["queued"]``.

    Args:
        head: ``["<status>"``, the element up to its time.
        at: the time as JSON (``repr`` of the float), or None when the row's column for
            this move holds it exactly: ``created_at`` (``pending``), ``queued_at`` (the
            first ``queued``), ``started_at`` (the first ``running``), ``completed_at`` (a
            final status). The ``transitions`` view reads a missing or null time there.
        retry_count: the step's retry count at this move (0 is left out when last).
        detail: the move's detail as JSON (error and/or reason), or None.
    """
    if detail is not None:
        return f"{head},{'null' if at is None else at},{retry_count},{detail}]"
    if retry_count:
        return f"{head},{'null' if at is None else at},{retry_count}]"
    return f"{head}]" if at is None else f"{head},{at}]"
