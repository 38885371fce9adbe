"""Step logs over HTTP: ``GET /v1/workflows/runs/{run_id}/steps/{step_id}/logs``.

What a step's attempts wrote (function stdout, stderr and ``logging`` records, the
request/response summaries of ``api_call``, engine notes), oldest first, in pages of
``{"data": [...], "list_metadata": {"before", "after"}}``; ``after`` is the ``seq`` of
the last entry seen (a client following a running step polls with it). Another
organization's run, an unknown run or step: 404. A cursor or limit out of range: 422.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from engine.server.auth import Org
from engine.server.params import reject_unknown_query
from engine.server.schemas import ERRORS

router = APIRouter(prefix="/v1/workflows", dependencies=[Depends(reject_unknown_query)],
                   responses=ERRORS)
Id = Annotated[str, Path(min_length=1, max_length=512)]


@router.get("/runs/{run_id}/steps/{step_id}/logs", summary="A step's log")
def list_step_logs(
    request: Request, run_id: Id, step_id: Id, org: Org,
    after: Annotated[int | None, Query(ge=0, le=2**62, description="seq of the last entry "
                                       "seen; the page starts after it.")] = None,
    attempt: Annotated[int | None, Query(ge=0, le=10_000,
                                         description="Only this attempt (0 is the first).")]
    = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size (1..1000).")] = 500,
) -> Any:
    """A step's log entries in the order written, every attempt (or one)."""
    api = request.app.state.stepwell.reader(org)
    page = api.list_step_logs(step_id, run_id=run_id, attempt=attempt, after=after,
                              limit=limit)
    return page.model_dump(mode="json")
