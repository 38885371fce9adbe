"""The read model of step logs: what ``client.workflows.steps.logs`` and
``GET /v1/workflows/runs/{run_id}/steps/{step_id}/logs`` return.

A page is ``{"data": [StepLogLine, ...], "list_metadata": {"before", "after"}}`` like every
list; its cursors are entry ``seq`` numbers (as strings, like other cursors). Times are
ISO 8601 UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict

from engine.contracts.logs import LogRecord
from engine.contracts.reads import RecordPage
from store.shapes import ListMetadata, Page


class StepLogLine(BaseModel):
    """One entry of a step's log.

    Attributes:
        seq: its position among the step's entries (every attempt), from 1.
        attempt: 0 for the first attempt, +1 per retry.
        stream: ``stdout``, ``stderr``, ``logging``, ``http`` or ``stepwell``.
        level, logger: of a ``logging`` record.
        message: the text (a cut one ends with ``… [N more characters]``).
        at: when it was written.
        truncated: the message was cut, or (stream ``stepwell``) entries were dropped.
    """

    model_config = ConfigDict(populate_by_name=True)

    seq: int
    run_id: str
    step_id: str
    attempt: int
    stream: str
    level: str | None = None
    logger: str | None = None
    message: str
    at: datetime
    truncated: bool = False


def log_page(records: RecordPage[LogRecord]) -> Page[StepLogLine]:
    """A read API page of log lines from a store's page of records."""
    lines = [StepLogLine(seq=r.seq, run_id=r.run_id, step_id=r.step_id, attempt=r.attempt,
                         stream=r.stream, level=r.level, logger=r.logger, message=r.message,
                         at=datetime.fromtimestamp(r.at, UTC), truncated=r.truncated)
             for r in records.items]
    meta = ListMetadata(
        before=str(lines[0].seq) if lines and records.more_before else None,
        after=str(lines[-1].seq) if lines and records.more_after else None)
    return Page[StepLogLine](data=lines, list_metadata=meta)
