"""Errors on the wire: every failure is ``{"detail": {"code", "message", "details"}}``.

:class:`ApiError` carries a status and a code. Stepwell's own errors map by class
(not found 404, conflict 409, bad input or an invalid workflow 422, storage 503);
request validation problems are 422 ``VALIDATION_ERROR`` listing each field; unknown
routes 404 and wrong methods 405 keep the same body. Anything unexpected is logged and
answered 500 ``INTERNAL_ERROR`` without internals.

:class:`BodyLimitMiddleware` refuses bodies over the configured cap with 413, by
``Content-Length`` when the client sends one and by counting otherwise.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from engine.contracts.bounded import MAX_JSON_DEPTH
from engine.contracts.errors import (
    ConflictError,
    InputError,
    NotFoundError,
    StepwellError,
    StorageError,
    UsageError,
    WorkflowLoadError,
    WorkflowValidationError,
)

if TYPE_CHECKING:
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

log = logging.getLogger("stepwell.server")

#: FastAPI's 400 detail for a body whose parsing raised something other than a JSON error.
_UNPARSABLE_BODY = "There was an error parsing the body"

_STATUS_CODES = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
                 405: "METHOD_NOT_ALLOWED", 409: "CONFLICT", 413: "PAYLOAD_TOO_LARGE",
                 415: "UNSUPPORTED_MEDIA_TYPE", 422: "VALIDATION_ERROR"}


class ApiError(StepwellError):
    """An HTTP error with a machine code, a message saying what to do, and details.

    Args:
        status: the HTTP status.
        code: a stable upper-case code (``WORKFLOW_NOT_FOUND``, ``INVALID_CURSOR``...).
        message: what went wrong and how to fix it.
        details: structured context (the field, the allowed values...).
    """

    def __init__(self, status: int, code: str, message: str,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


def error_body(code: str, message: str, details: dict[str, Any] | None = None
               ) -> dict[str, Any]:
    """The wire form of an error."""
    return {"detail": {"code": code, "message": message, "details": details or {}}}


#: The closing advice of an invalid workflow over HTTP (the CLI's says `stepwell validate`).
HTTP_VALIDATION_FIX = ("Fix these in the workflow or the edit and send it again; "
                       "client.workflows.spec.validate (POST /v1/workflows/spec/validate) "
                       "checks a spec without saving it.")


def api_error_for(exc: StepwellError) -> ApiError:
    """The HTTP form of a stepwell error."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, WorkflowValidationError):
        errors = [d.to_dict() for d in exc.diagnostics if d.severity == "error"]
        return ApiError(422, "INVALID_WORKFLOW", f"{exc.summary}\n{HTTP_VALIDATION_FIX}",
                        {"diagnostics": errors})
    if isinstance(exc, WorkflowLoadError):
        return ApiError(422, "INVALID_YAML", f"{exc.problem}. {exc.fix}",
                        {"source": exc.source})
    if isinstance(exc, NotFoundError):
        return ApiError(404, "NOT_FOUND", str(exc))
    if isinstance(exc, ConflictError):
        return ApiError(409, "CONFLICT", str(exc))
    if isinstance(exc, InputError):
        return ApiError(422, "INVALID_INPUT", str(exc))
    if isinstance(exc, UsageError):
        return ApiError(422, "INVALID_REQUEST", str(exc))
    if isinstance(exc, StorageError):
        return ApiError(503, "STORAGE_ERROR", str(exc))
    return ApiError(422, "REJECTED", str(exc))


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the common body."""
    from fastapi.encoders import jsonable_encoder
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    def respond(err: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
        return JSONResponse(error_body(err.code, err.message, err.details),
                            status_code=err.status, headers=headers)

    async def on_stepwell(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StepwellError)
        return respond(api_error_for(exc))

    async def on_validation(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""),
                   "type": e.get("type", "")} for e in exc.errors()]
        missing = [e["loc"][-1] for e in errors if e["type"] == "missing" and e["loc"][:1] in
                   (["query"], ["path"])]
        if missing and len(missing) == len(errors):  # Retab answers a missing scope 400
            names = ", ".join(map(str, missing))
            return respond(ApiError(400, "MISSING_PARAMETER",
                                    f"Missing query parameter {names}. Pass ?{missing[0]}=...",
                                    {"parameters": missing}))
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:5])
        return respond(ApiError(422, "VALIDATION_ERROR",
                                f"The request is invalid ({where}). Fix these fields and "
                                "send it again.", jsonable_encoder({"errors": errors})))

    async def on_http(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        code = _STATUS_CODES.get(exc.status_code, f"HTTP_{exc.status_code}")
        message = str(exc.detail)
        if exc.status_code == 404:
            code, message = "ROUTE_NOT_FOUND", (
                "No such endpoint. See /docs (or /openapi.json) for the routes served.")
        elif exc.status_code == 405:
            message = "This endpoint does not accept that method. See /docs for the routes."
        elif exc.status_code == 400 and message == _UNPARSABLE_BODY:
            # FastAPI's answer to a body json.loads could not even fail cleanly on (not
            # UTF-8, or nested past the interpreter's stack): bad input like any other
            code, message = "INVALID_INPUT", (
                "The request body could not be read as JSON: it is not UTF-8 or it nests "
                f"too deeply. Send UTF-8 JSON nested at most {MAX_JSON_DEPTH} levels.")
            return respond(ApiError(422, code, message))
        return respond(ApiError(exc.status_code, code, message))

    async def on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error while serving a request", exc_info=exc)
        return respond(ApiError(500, "INTERNAL_ERROR",
                                "The server failed unexpectedly; its log has the traceback. "
                                "Retry, and report it if it persists."))

    app.add_exception_handler(StepwellError, on_stepwell)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


class BodyLimitMiddleware:
    """Pure ASGI middleware refusing request bodies over ``max_bytes`` with 413.

    Args:
        app: the wrapped ASGI app.
        max_bytes: the cap.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Check ``Content-Length`` first, then count the streamed body."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from starlette.exceptions import HTTPException

        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0
        started = False

        async def counting_receive() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, self.message())
            return message

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except HTTPException as exc:
            if exc.status_code != 413 or started:
                raise
            await self._refuse(send)

    def message(self) -> str:
        """The 413 message: the cap, and how to live with it."""
        return (f"The request body is larger than this server accepts ({self.max_bytes} "
                "bytes). Send a smaller document, or restart `stepwell serve` with a larger "
                "--max-body-mb.")

    async def _refuse(self, send: Any) -> None:
        import json

        body = json.dumps(error_body("PAYLOAD_TOO_LARGE", self.message(),
                                     {"max_bytes": self.max_bytes})).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
