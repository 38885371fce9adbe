"""Which paths under ``/v1/workflows/`` name a workflow, and which name a collection.

Routes such as ``GET /v1/workflows/{workflow_id}`` would otherwise take any unknown
path for a workflow id: ``GET /v1/workflows/blocks`` (without its required query) or
``DELETE /v1/workflows/edges`` would answer "workflow not found". Every route with a
``{workflow_id}`` path parameter takes it through :data:`WorkflowId`, which answers a
reserved collection name with 404 ``ROUTE_NOT_FOUND``, exactly like a path no route
serves. Collection routes are declared before the ``{workflow_id}`` routes, so a known
path always reaches its own route.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Path, Request

from engine.server.errors import ApiError

#: First path segments under /v1/workflows/ that are collections, never workflow ids.
RESERVED = frozenset({
    "artifacts", "blocks", "edges", "evals", "experiments", "reviews", "runs", "spec",
    "steps", "versions", "files", "projects",
})


def route_not_found() -> ApiError:
    """The 404 of a path no route serves."""
    return ApiError(404, "ROUTE_NOT_FOUND",
                    "No such endpoint. See /docs (or /openapi.json) for the routes served.")


def _served_otherwise(request: Request) -> bool:
    """True when a route without ``{workflow_id}`` serves this path (for other methods)."""
    path = request.url.path
    for template in request.app.openapi().get("paths", {}):
        if "{workflow_id}" in template:
            continue
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            return True
    return False


def workflow_path(request: Request,
                  workflow_id: Annotated[str, Path(description="A workflow id (wf_...).")]
                  ) -> str:
    """FastAPI dependency: the ``{workflow_id}`` path parameter, never a collection name.

    Raises:
        ApiError: 405 when a collection route serves the path for other methods, else
            404 ``ROUTE_NOT_FOUND``, for a reserved collection name.
    """
    if workflow_id in RESERVED:
        if _served_otherwise(request):
            raise ApiError(405, "METHOD_NOT_ALLOWED", "This endpoint does not accept that "
                           "method. See /docs for the routes.")
        raise route_not_found()
    return workflow_id


WorkflowId = Annotated[str, Depends(workflow_path)]
