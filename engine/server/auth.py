"""API-key authentication: every ``/v1`` request names its organization by its key.

A key is accepted from the ``Api-Key`` header, an ``Authorization: Bearer`` header (what
the Retab SDK sends) or the ``access_token`` query parameter, in that order. Keys are
compared in constant time. The key's organization scopes everything the request can
see: another organization's runs, steps, reviews and workflows are "not found" (404),
never "forbidden", so their existence does not leak.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import (
    APIKeyHeader,
    APIKeyQuery,
    HTTPAuthorizationCredentials,
    HTTPBearer,
)

from engine.server.errors import ApiError

_header = APIKeyHeader(name="Api-Key", auto_error=False, scheme_name="ApiKey",
                       description="An API key from STEPWELL_API_KEYS (or the one printed "
                                   "by `stepwell serve`).")
_bearer = HTTPBearer(auto_error=False, scheme_name="Bearer",
                     description="The same key as a bearer token (what the Retab SDK sends).")
_query = APIKeyQuery(name="access_token", auto_error=False, scheme_name="AccessToken",
                     description="The same key as a query parameter.")


def organization_for(keys: Mapping[str, str], presented: str | None) -> str | None:
    """The organization of ``presented``, or None when it is not a configured key."""
    if not presented:
        return None
    found = None
    candidate = presented.encode()
    for key, org in keys.items():
        if hmac.compare_digest(candidate, key.encode()):
            found = org
    return found


def current_org(
    request: Request,
    api_key: Annotated[str | None, Depends(_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    access_token: Annotated[str | None, Depends(_query)],
) -> str:
    """FastAPI dependency: the caller's organization id.

    Raises:
        ApiError: 401 when no key, or an unknown key, was presented.
    """
    keys: Mapping[str, str] = request.app.state.stepwell.config.api_keys
    presented = api_key or (bearer.credentials if bearer else None) or access_token
    org = organization_for(keys, presented)
    if org is None:
        reason = "an unknown API key was given" if presented else "no API key was given"
        raise ApiError(401, "UNAUTHORIZED",
                       f"Authentication failed: {reason}. Send a key from STEPWELL_API_KEYS "
                       "(or the one `stepwell serve` printed) as `Api-Key: KEY`, "
                       "`Authorization: Bearer KEY` or `?access_token=KEY`.")
    return org


Org = Annotated[str, Depends(current_org)]
