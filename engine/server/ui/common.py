"""What every UI route shares: the UI's state on the app, the login gate, notices, 404s.

:class:`UiState` lives on ``app.state.stepwell_ui`` beside the API's
:class:`~engine.server.state.ServerState` (``app.state.stepwell``), whose engine, run
supervisor and per-thread readers the UI uses as the API does.

Notices after an action travel as a code in the query string (``?notice=cancelled``),
looked up in :data:`NOTICES`; no text from the URL is ever shown.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from jinja2 import Environment

from engine.contracts.errors import StepwellError
from engine.definition import Workflow
from engine.server.ui.documents import PageRenderer
from engine.server.ui.feed import ChangeFeed
from engine.server.ui.render import make_environment, page, secure_headers
from engine.server.ui.session import Sessions, Viewer

NOTICES = {
    "cancelled": "The run was cancelled.",
    "cancel_requested": "Cancellation was requested; the process running it stops it "
                        "within a second or two.",
    "already_ended": "The run had already ended; there was nothing to do.",
    "resumed": "The run is being resumed by this server.",
    "resume_pending": "The run is busy in this server; it continues when its current "
                      "execution finishes.",
    "owner_alive": "Another live process is executing this run; it was not resumed.",
    "approved": "Approved. The run continues with the approved data.",
    "rejected": "Rejected. What depends on the step is skipped and the run continues.",
    "already_decided": "This review was already decided; decisions are final.",
    "rerun_started": "A new run was started from the chosen step.",
    "rerun_failed_started": "A new run was started: it reuses every completed step and "
                            "runs only the failed steps (and failed items) again.",
    "no_failed": "The run has no failed steps; there was nothing to run again.",
    "rerun_refused": "This run cannot be rerun that way (its stored workflow no longer "
                     "fits); nothing was started. The server's log says why.",
    "bad_form": "The form was stale or came from another site; nothing was done. "
                "Try again from this page.",
    "signed_out": "You are signed out.",
}
GRAPH_CACHE = 64


@dataclass(kw_only=True)
class UiState:
    """The web UI's own state (one per app).

    Attributes:
        sessions: logins and CSRF.
        env: the template environment.
        feed: the change feed of live updates.
        pages: the PDF page renderer.
    """

    sessions: Sessions
    env: Environment
    feed: ChangeFeed
    pages: PageRenderer
    _graphs: OrderedDict[str, Workflow] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def workflow(self, server: Any, digest: str, run_id: str) -> Workflow:
        """The workflow a run used, compiled when the server's registry knows its block
        types (so generated edges are drawn); cached by digest."""
        with self._lock:
            cached = self._graphs.get(digest)
        if cached is not None:
            return cached
        workflow = Workflow.from_dict(server.engine.store.load_run(run_id).definition)
        try:
            workflow = server.engine.compile(workflow).workflow
        except StepwellError:
            pass  # an unknown block type or an old definition: draw the edges as written
        with self._lock:
            self._graphs[digest] = workflow
            while len(self._graphs) > GRAPH_CACHE:
                self._graphs.popitem(last=False)
        return workflow


def make_ui_state(server: Any) -> UiState:
    """The UI state for a server state (same store, configuration and files)."""
    return UiState(sessions=Sessions(config=server.config), env=make_environment(),
                   feed=ChangeFeed(server.readers.open_reads),
                   pages=PageRenderer(server.store.files, server.config.policy))


def ui_state(request: Request) -> UiState:
    """The :class:`UiState` of the request's app."""
    state: UiState = request.app.state.stepwell_ui
    return state


def server_state(request: Request) -> Any:
    """The API's server state (engine, readers, supervisor)."""
    return request.app.state.stepwell


def gate(request: Request) -> Viewer | Response:
    """The viewer, or the response to send instead (login redirect, refused host)."""
    ui = ui_state(request)
    if not ui.sessions.host_allowed(request):
        response = Response("This server answers to loopback host names only "
                            "(127.0.0.1, localhost).", status_code=421,
                            media_type="text/plain")
        secure_headers(response)
        return response
    viewer = ui.sessions.viewer(request)
    if viewer is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return redirect(f"/login?next={quote(target, safe='')}")
    return viewer


def redirect(location: str, notice: str | None = None) -> RedirectResponse:
    """A 303 to ``location`` (a local path), with a notice code."""
    if notice is not None:
        location += ("&" if "?" in location else "?") + f"notice={notice}"
    response = RedirectResponse(location, status_code=303)
    secure_headers(response)
    return response


def notice_of(request: Request) -> str | None:
    """The text of the notice named in the query string, if any."""
    return NOTICES.get(request.query_params.get("notice", ""))


def not_found(request: Request, viewer: Viewer, what: str) -> Response:
    """The HTML 404 page (another organization's things are not found either)."""
    return page(ui_state(request).env, request, viewer, "not_found.html", {"what": what},
                status_code=404)
