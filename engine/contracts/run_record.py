"""The run record a read returns: :class:`RunRecord` (see :mod:`engine.contracts.reads`).

It is the one read shape every ``stepwell run`` needs (the run is read back for its
report), so it lives apart from the other records, filters and pages, which a run never
builds. :mod:`engine.contracts.reads` exports it with them.
"""

from __future__ import annotations

from typing import Any

from engine.contracts.frozen import record


@record
class RunRecord:
    """A run as stored, JSON columns decoded (``outputs`` with large payloads inlined)."""

    id: str
    workflow_id: str
    workflow_name: str
    workflow_digest: str
    inputs: dict[str, Any]
    metadata: dict[str, Any]
    organization_id: str
    trigger: str
    status: str
    failing_step_id: str | None
    error: dict[str, Any] | None
    reason: str | None
    waiting_for: list[str] | None
    outputs: dict[str, Any] | None
    parent_run_id: str | None
    owner_pid: int | None
    heartbeat_at: float | None
    created_at: float
    started_at: float | None
    completed_at: float | None
    #: The machine ``owner_pid`` is a process of (None: this one).
    owner_host: str | None = None
