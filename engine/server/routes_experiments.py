"""``client.workflows.experiments``: answered 501.

Retab's experiments compare models over document sets on Retab's cloud (consensus
votes, per-document metrics). stepwell runs workflows locally and has no such service,
so every experiments endpoint answers 501 ``NOT_IMPLEMENTED`` with the same message:
what to use instead (evals for block checks, runs with ``metadata`` to compare
configurations yourself).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from engine.server.auth import Org
from engine.server.errors import ApiError
from engine.server.schemas import ERRORS

router = APIRouter(prefix="/v1/workflows/experiments", responses=ERRORS)

MESSAGE = ("Experiments (model comparison over document sets) run on Retab's cloud; stepwell "
           "does not serve them. Check a block's output with evals "
           "(client.workflows.evals), or compare configurations with runs tagged by "
           "metadata (client.workflows.runs.create(..., metadata={...})).")


def _refuse() -> ApiError:
    return ApiError(501, "NOT_IMPLEMENTED", MESSAGE, {"feature": "experiments"})


_ROUTES = (
    ("GET", ""), ("POST", ""), ("GET", "/metrics"), ("GET", "/results"),
    ("GET", "/results/{result_id}"), ("GET", "/runs"), ("POST", "/runs"),
    ("GET", "/runs/{run_id}"), ("POST", "/runs/{run_id}/cancel"),
    ("GET", "/{experiment_id}"), ("PATCH", "/{experiment_id}"), ("DELETE", "/{experiment_id}"),
)


def _add(method: str, path: str) -> None:
    def refuse(org: Org) -> Any:
        raise _refuse()

    refuse.__doc__ = "Not served: 501 NOT_IMPLEMENTED (see docs/http.md)."
    router.add_api_route(path, refuse, methods=[method], status_code=501,
                         summary="Experiments (not served)",
                         name=f"experiments_{method.lower()}_{path or 'root'}")


for _method, _path in _ROUTES:
    _add(_method, _path)
