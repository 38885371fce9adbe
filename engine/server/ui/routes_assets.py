"""What pages load besides themselves: live-update streams, documents and page images.

A file is served only through a step (or review) that references it and that the viewer
can see: ``/runs/{run}/steps/{step}/files/{file_id}`` (the file) and ``.../pages/{n}.png``
(a PDF page rendered by :mod:`.documents`). Knowing a file id is not enough.
"""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Path, Request
from fastapi.responses import Response, StreamingResponse

from engine.contracts.errors import NotFoundError
from engine.server.ui.common import gate, not_found, server_state, ui_state
from engine.server.ui.documents import file_ref
from engine.server.ui.feed import event_stream
from engine.server.ui.render import secure_headers
from engine.server.ui.run_view import TERMINAL
from engine.server.ui.step_view import Document, documents_of

router = APIRouter(include_in_schema=False)


@router.get("/ui/events")
async def events(request: Request, run: str | None = None) -> Response:
    """``text/event-stream`` of ``change`` events (and ``end`` when ``run`` has ended)."""
    viewer = gate(request)
    if isinstance(viewer, Response):
        return viewer
    server = server_state(request)
    ended = None
    if run is not None:
        run_id, org = run, viewer.organization_id

        def ended() -> bool:
            found = server.reader(org).reads.run_presence([run_id], organization_id=org)
            return run_id not in found or found[run_id].status in TERMINAL

    stream = event_stream(ui_state(request).feed, request.is_disconnected, ended)
    response = StreamingResponse(stream, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store",
                                          "X-Accel-Buffering": "no"})
    return response


def _file_of_step(request: Request, org: str, run_id: str, step_id: str, file_id: str
                  ) -> Document | None:
    """The file when the step (visible to ``org``) references it, else None."""
    api = server_state(request).reader(org)
    step = api.get_step(step_id, run_id=run_id)
    artifact = api.get_artifact(step.artifact.id) if step.artifact is not None else None
    found = [d for d in documents_of(step.model_dump(mode="json"), artifact)
             if d.file_id == file_id]
    return found[0] if found else None


@router.get("/runs/{run_id}/steps/{step_id}/files/{file_id}")
async def step_file(request: Request, run_id: str, step_id: str, file_id: str) -> Response:
    """A document a step read or wrote, as it is stored."""
    viewer = gate(request)
    if isinstance(viewer, Response):
        return viewer
    try:
        doc = await anyio.to_thread.run_sync(
            _file_of_step, request, viewer.organization_id, run_id, step_id, file_id)
        if doc is None:
            raise NotFoundError("file", file_id)
        data = await anyio.to_thread.run_sync(
            server_state(request).store.files.read_bytes,
            file_ref(file_id, doc.filename, doc.mime_type))
    except NotFoundError:
        return not_found(request, viewer, f"file {file_id} of step {step_id}")
    safe_name = "".join(c if c.isalnum() or c in "._-" else "_" for c in doc.filename)
    response = Response(data, media_type=doc.mime_type or "application/octet-stream",
                        headers={"Content-Disposition": f'inline; filename="{safe_name}"'})
    secure_headers(response)
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@router.get("/runs/{run_id}/steps/{step_id}/files/{file_id}/pages/{number}.png")
async def page_image(request: Request, run_id: str, step_id: str, file_id: str,
                     number: Annotated[int, Path(ge=1, le=100_000)]) -> Response:
    """Page ``number`` (1-based) of a PDF the step references, as PNG."""
    viewer = gate(request)
    if isinstance(viewer, Response):
        return viewer
    try:
        ref = await anyio.to_thread.run_sync(
            _file_of_step, request, viewer.organization_id, run_id, step_id, file_id)
    except NotFoundError:
        ref = None
    png = None
    if ref is not None:
        png = await anyio.to_thread.run_sync(ui_state(request).pages.page_png, file_id,
                                             number - 1)
    if png is None:
        return not_found(request, viewer, f"page {number} of file {file_id}")
    response = Response(png, media_type="image/png",
                        headers={"Cache-Control": "private, max-age=3600"})
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
