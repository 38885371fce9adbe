"""Files (``client.files``): the organization's stored files, and uploads.

A file is listed for an organization once it came in through the API: a run's document,
or an upload. Uploads follow Retab's three steps: ``POST /v1/files/upload`` opens a
session and returns an ``uploadUrl`` (this server, with a one-time token in it), the
client ``PUT``s the bytes there, and ``POST /v1/files/upload/{id}/complete`` checks size
and checksum and returns the file's durable reference (``MIMEData``), usable as a run
document. ``GET /v1/files?limit=1`` answers a page, so a client can probe liveness with
it. File blueprints (a Retab cloud analysis) answer 501.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from dataclasses import replace
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from engine.contracts.catalog import FileFilters, UploadSession
from engine.contracts.errors import ConflictError, InputError, NotFoundError
from engine.contracts.values import FileRef
from engine.server.auth import Org
from engine.server.drafts import server
from engine.server.errors import ApiError
from engine.server.file_refs import content_path, owned_file, record
from engine.server.lists import page_json
from engine.server.params import parse_when, reject_unknown_query, with_cursor
from engine.server.schemas import ERRORS, ok
from engine.server.shapes import iso

router = APIRouter(prefix="/v1/files", dependencies=[Depends(reject_unknown_query)],
                   responses=ERRORS)
UPLOAD_TTL_S = 3600.0
LINK_TTL = "1h"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UploadBody(_Strict):
    """An upload to open."""

    filename: str = Field(min_length=1, max_length=512)
    content_type: str | None = Field(default=None, max_length=200)
    size_bytes: int = Field(ge=1, le=2**40)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")


class CompleteBody(_Strict):
    """The checksum to verify, if any."""

    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")


def file_json(entry: Any) -> dict[str, Any]:
    """A file (``File``)."""
    return {"object": "file", "id": entry.id, "filename": entry.filename,
            "mime_type": entry.mime_type, "created_at": iso(entry.created_at),
            "updated_at": iso(entry.created_at), "page_count": None, "size": entry.size}


def _url(request: Request, path: str) -> str:
    return str(request.base_url).rstrip("/") + path


@router.get("", responses=ok(dict[str, Any]), summary="List the organization's files")
def list_files(
    request: Request, org: Org, before: str | None = None, after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10, order: Literal["asc", "desc"] = "desc",
    filename: str | None = None, mime_type: str | None = None, from_date: str | None = None,
    to_date: str | None = None, include_embeddings: bool = False,
    sort_by: Literal["created_at"] = "created_at",
) -> Any:
    """Files the organization brought in, newest first; ``filename`` is a substring."""
    store = server(request).store
    filters = FileFilters(filename=filename, mime_type=mime_type,
                          created_from=parse_when("from_date", from_date),
                          created_to=parse_when("to_date", to_date, end=True))
    found = with_cursor(lambda: store.page_files(org, filters, limit=limit, after=after,
                                                 before=before, descending=order == "desc"),
                        after or before, "a file")
    return page_json(found, lambda e: e.id, file_json)


@router.post("/upload", responses=ok(dict[str, Any]), summary="Open an upload")
def create_upload(request: Request, body: UploadBody, org: Org) -> Any:
    """Reserve an upload; PUT the bytes to ``uploadUrl``, then complete it."""
    now = time.time()
    session = UploadSession(id=f"upl_{os.urandom(12).hex()}", organization_id=org,
                            filename=os.path.basename(body.filename) or "file",
                            content_type=body.content_type, size=body.size_bytes,
                            sha256=body.sha256.lower() if body.sha256 else None,
                            token=secrets.token_urlsafe(24), created_at=now,
                            expires_at=now + UPLOAD_TTL_S)
    server(request).store.save_upload(session)
    headers = {"Content-Type": body.content_type} if body.content_type else {}
    return {"fileId": session.id,
            "uploadUrl": _url(request, f"/v1/files/upload/{session.id}/content"
                                       f"?token={session.token}"),
            "uploadMethod": "PUT", "uploadHeaders": headers, "mimeData": None,
            "expiresAt": iso(session.expires_at)}


def _session(state: Any, upload_id: str) -> UploadSession:
    session: UploadSession = state.store.upload(upload_id)
    if time.time() > session.expires_at and session.completed_at is None:
        raise ApiError(410, "UPLOAD_EXPIRED", f"Upload {upload_id} expired; open a new one.")
    return session


@router.put("/upload/{upload_id}/content", responses=ok(dict[str, Any]),
            summary="Send an upload's bytes (the uploadUrl)")
async def put_upload(request: Request, upload_id: str, token: str = "") -> Any:
    """The bytes of an open upload; the URL's token authorizes it (no API key)."""
    state = server(request)
    try:
        session = _session(state, upload_id)
    except NotFoundError:
        session = None
    if session is None or not secrets.compare_digest(token, session.token):
        raise NotFoundError("upload", upload_id, "Use the uploadUrl create_upload returned.")
    if session.file_id is not None:
        raise ConflictError(f"Upload {upload_id} already received its bytes.")
    data = await request.body()
    if len(data) != session.size:
        raise InputError(f"The upload declared {session.size} bytes but {len(data)} arrived. "
                         "Open a new upload with the right size_bytes.")
    if session.sha256 and hashlib.sha256(data).hexdigest() != session.sha256:
        raise InputError("The bytes do not match the sha256 the upload declared.")
    ref = state.store.files.put_bytes(data, session.filename, session.content_type)
    state.store.save_upload(replace(session, file_id=ref.id, content_type=ref.mime_type))
    return {"file_id": ref.id, "size": len(data)}


@router.post("/upload/{upload_id}/complete", responses=ok(dict[str, Any]),
             summary="Complete an upload")
def complete_upload(request: Request, upload_id: str, org: Org,
                    body: CompleteBody | None = None) -> Any:
    """Check the upload and return the file's durable reference (``MIMEData``)."""
    state = server(request)
    session = _session(state, upload_id)
    if session.organization_id != org:
        raise NotFoundError("upload", upload_id, "Open an upload with create_upload.")
    if session.file_id is None:
        raise ConflictError(f"Upload {upload_id} has no bytes yet: PUT them to its uploadUrl.")
    ref = FileRef(id=session.file_id, filename=session.filename,
                  mime_type=session.content_type or "application/octet-stream")
    wanted = body.sha256.lower() if body and body.sha256 else None
    if wanted and hashlib.sha256(state.store.files.read_bytes(ref)).hexdigest() != wanted:
        raise InputError("The uploaded bytes do not match this sha256.")
    entry = record(state, org, ref, session.size)
    if session.completed_at is None:
        state.store.save_upload(replace(session, completed_at=time.time()))
    return {"filename": entry.filename, "url": _url(request, content_path(entry.id))}


def _not_here(what: str) -> ApiError:
    return ApiError(501, "NOT_IMPLEMENTED",
                    f"{what} is a Retab cloud analysis that stepwell does not run locally. "
                    "See docs/http.md for what stepwell serves.")


@router.post("/blueprints", status_code=501, summary="File blueprints (not served)")
def create_blueprint(org: Org) -> Any:
    """Not served: 501."""
    raise _not_here("Creating a file blueprint")


@router.get("/blueprints/{blueprint_id}", status_code=501, summary="File blueprints (not served)")
def get_blueprint(blueprint_id: str, org: Org, include_output: bool = True) -> Any:
    """Not served: 501."""
    raise _not_here("Reading a file blueprint")


@router.post("/blueprints/{blueprint_id}/cancel", status_code=501,
             summary="File blueprints (not served)")
def cancel_blueprint(blueprint_id: str, org: Org) -> Any:
    """Not served: 501."""
    raise _not_here("Cancelling a file blueprint")


@router.get("/{file_id}", responses=ok(dict[str, Any]), summary="Get a file")
def get_file(request: Request, file_id: str, org: Org) -> Any:
    """A file's metadata (an upload id names the file it completed as)."""
    return file_json(owned_file(server(request), org, file_id))


@router.get("/{file_id}/download-link", responses=ok(dict[str, Any]),
            summary="Get a file's download link")
def download_link(request: Request, file_id: str, org: Org) -> Any:
    """A URL for the file's bytes (it needs the API key), and its durable reference."""
    entry = owned_file(server(request), org, file_id)
    url = _url(request, content_path(entry.id))
    return {"download_url": url, "expires_in": LINK_TTL, "filename": entry.filename,
            "mime_data": {"filename": entry.filename, "url": url}}


@router.get("/{file_id}/content", summary="Download a file")
def file_content(request: Request, file_id: str, org: Org) -> Response:
    """The file's bytes."""
    state = server(request)
    entry = owned_file(state, org, file_id)
    data = state.store.files.read_bytes(FileRef(id=entry.id, filename=entry.filename,
                                                 mime_type=entry.mime_type))
    return Response(content=data, media_type=entry.mime_type, headers={
        "Content-Disposition": f'attachment; filename="{entry.filename}"'})
