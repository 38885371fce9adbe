"""Small immutable values shared by the engine, the blocks and the store.

Handle payloads travel between steps as :class:`Payload` (JSON data or a
:class:`FileRef` to the content-addressed file store). A step's place inside loop
containers is a tuple of :class:`LoopFrame`, outermost first; the step id is derived
from it once, at creation (:func:`step_id_for`).

The step lifecycle is a table (:data:`LEGAL_MOVES`), checked by :func:`check_move`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from engine.contracts.errors import IllegalTransition
from engine.contracts.frozen import builder, record


@record
class FileRef:
    """A file in the content-addressed store: ``id`` is ``file_<sha256 prefix>``."""

    id: str
    filename: str
    mime_type: str

    def to_dict(self) -> dict[str, str]:
        """Wire form ``{id, filename, mime_type}``."""
        return {"id": self.id, "filename": self.filename, "mime_type": self.mime_type}


@record
class Payload:
    """What one handle carries: ``kind='json'`` with ``data``, or ``kind='file'``."""

    kind: Literal["json", "file"]
    data: Any = None
    document: FileRef | None = None

    @classmethod
    def json(cls, data: Any) -> Payload:
        """A JSON payload."""
        if cls is Payload:  # every block output: the builder is about twice as fast
            return _build_payload(kind="json", data=data)
        return cls(kind="json", data=data)

    @classmethod
    def file(cls, document: FileRef) -> Payload:
        """A file payload."""
        return cls(kind="file", document=document)

    def to_dict(self) -> dict[str, Any]:
        """Wire form: ``{type: json, data}`` or ``{type: file, document: {...}}``."""
        if self.kind == "file":
            assert self.document is not None
            return {"type": "file", "document": self.document.to_dict()}
        return {"type": "json", "data": self.data}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Payload:
        """Inverse of :meth:`to_dict`."""
        if raw.get("type") == "file":
            doc = raw["document"]
            return cls.file(
                FileRef(id=doc["id"], filename=doc["filename"], mime_type=doc["mime_type"])
            )
        return cls.json(raw.get("data"))


_build_payload = builder(Payload)


@record
class LoopFrame:
    """One level of loop nesting of a step (``loop_containers`` entry)."""

    container_id: str
    iteration: int
    is_parallel: bool = False
    parallel_item_index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Wire form used in ``loop_containers``."""
        return {
            "container_id": self.container_id,
            "iteration": self.iteration,
            "is_parallel": self.is_parallel,
            "parallel_item_index": self.parallel_item_index,
        }


def scope_prefix(scope: tuple[LoopFrame, ...]) -> str:
    """``outer_iter_0_inner_iter_2_`` for a nested scope, ``''`` at top level."""
    return "".join(f"{f.container_id}_iter_{f.iteration}_" for f in scope)


def step_id_for(block_id: str, scope: tuple[LoopFrame, ...]) -> str:
    """The step id of ``block_id`` executed in ``scope`` (assigned once, never recomputed)."""
    return scope_prefix(scope) + block_id if scope else block_id


class StepStatus(StrEnum):
    """Stored step lifecycle names."""

    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    SKIPPED = "skipped"
    ERROR = "error"
    AWAITING_REVIEW = "awaiting_review"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """Completed, skipped, error and cancelled are final."""
        return self in TERMINAL


class RunStatus(StrEnum):
    """Stored run lifecycle names."""

    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    AWAITING_REVIEW = "awaiting_review"
    COMPLETED = "completed"
    ERROR = "error"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """Completed, error and cancelled runs never change again."""
        return self in (RunStatus.COMPLETED, RunStatus.ERROR, RunStatus.CANCELLED)


S = StepStatus
TERMINAL = frozenset({S.COMPLETED, S.SKIPPED, S.ERROR, S.CANCELLED})

#: Legal step moves. ``running -> queued`` is a retry.
LEGAL_MOVES: dict[StepStatus, frozenset[StepStatus]] = {
    S.PENDING: frozenset({S.QUEUED, S.SKIPPED, S.CANCELLED}),
    S.QUEUED: frozenset({S.RUNNING, S.CANCELLED}),
    S.RUNNING: frozenset({S.COMPLETED, S.ERROR, S.AWAITING_REVIEW, S.CANCELLED, S.QUEUED}),
    S.AWAITING_REVIEW: frozenset({S.COMPLETED, S.CANCELLED}),
    S.COMPLETED: frozenset(),
    S.SKIPPED: frozenset(),
    S.ERROR: frozenset(),
    S.CANCELLED: frozenset(),
}


def check_move(step_id: str, current: StepStatus, requested: StepStatus) -> None:
    """Raise :class:`IllegalTransition` unless ``current -> requested`` is in the table."""
    if requested not in LEGAL_MOVES[current]:
        raise IllegalTransition(step_id, current.value, requested.value)
