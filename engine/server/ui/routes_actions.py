"""The forms: sign in and out, cancel, resume and rerun a run, decide a review.

Every form is a POST carrying the CSRF token (:mod:`.session`); a missing or wrong token
changes nothing (403 for the forms of signed-in pages, the login form is shown again).
Each action checks the run or review through the viewer's organization first, so
another organization's run is "not found" here as on the pages, then goes through the
engine's public calls (``cancel``, ``record_decision``, ``rerun`` from a step or of the
failed steps) or the server's run supervisor (resuming, as the HTTP API does), and
answers with a redirect to the page that shows the outcome (Post/Redirect/Get), with a
notice code. A corrected review is stored as a review version first, as the HTTP API
stores one (:mod:`engine.server.review_versions`), and that version is approved.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import Response

from engine.contracts.errors import (
    ConflictError,
    InputError,
    NotFoundError,
    StepwellError,
    UsageError,
)
from engine.contracts.store import ReviewStore
from engine.durable import process_owns
from engine.rerun import prepare_rerun
from engine.server.review_versions import add_correction, decision_data, snapshot_for
from engine.server.ui.common import gate, not_found, redirect, server_state, ui_state
from engine.server.ui.render import page
from engine.server.ui.review_view import (
    ReviewModel,
    build_review_model,
    read_correction,
    schema_problems,
)
from engine.server.ui.routes_pages import review_page, review_response
from engine.server.ui.run_view import LIVE_RUN_STATUSES
from engine.server.ui.session import read_form, safe_next, set_session

router = APIRouter(include_in_schema=False)
log = logging.getLogger("stepwell.server.ui")
CANCEL_WAIT_S = 5.0
UI_CANCEL_REASON = "cancelled from the web UI"
DECISIONS = ("approve", "reject")


# --------------------------------------------------------------------------- login


@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:
    """The sign-in form (servers with configured keys only)."""
    ui = ui_state(request)
    if not ui.sessions.login_required:
        return redirect(safe_next(next))
    viewer = ui.sessions.anonymous_csrf(request)
    return page(ui.env, request, viewer, "login.html",
                {"next": safe_next(next), "error": None, "notice": None})


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the key, open a session, go where the viewer was going."""
    ui = ui_state(request)
    form = await read_form(request)
    target = safe_next(form.get("next"))
    if not ui.sessions.login_required:
        return redirect(target)
    viewer = ui.sessions.anonymous_csrf(request)
    error = None
    if not ui.sessions.csrf_ok(request, form):
        error = "The form expired; enter the key again."
    else:
        session_id = ui.sessions.sign_in(form.get("api_key", ""))
        if session_id is not None:
            response = redirect(target)
            set_session(response, session_id, request)
            return response
        error = "That key is not one of this server's API keys (STEPWELL_API_KEYS)."
    return page(ui.env, request, viewer, "login.html",
                {"next": target, "error": error, "notice": None}, status_code=401)


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session."""
    ui = ui_state(request)
    form = await read_form(request)
    if not ui.sessions.csrf_ok(request, form):
        return redirect("/", "bad_form")
    ui.sessions.sign_out(request.cookies.get("stepwell_session"))
    response = redirect("/login", "signed_out")
    set_session(response, None, request)
    return response


async def _checked(request: Request) -> tuple[Any, dict[str, str]] | Response:
    """The viewer and the form of a POST, or the response refusing it."""
    viewer = gate(request)
    if isinstance(viewer, Response):
        return viewer
    form = await read_form(request)
    if not ui_state(request).sessions.csrf_ok(request, form):
        return page(ui_state(request).env, request, viewer, "refused.html", {},
                    status_code=403)
    return viewer, form


# --------------------------------------------------------------------------- runs


@router.post("/runs/{run_id}/cancel")
async def cancel(request: Request, run_id: str) -> Response:
    """Cancel a run that has not ended (from any process: the engine's ``cancel``)."""
    checked = await _checked(request)
    if isinstance(checked, Response):
        return checked
    viewer, _ = checked
    server = server_state(request)

    def act() -> str:
        api = server.reader(viewer.organization_id)
        run = api.get_run(run_id)
        deadline = time.monotonic() + CANCEL_WAIT_S
        while (run.lifecycle.status == "pending" and run_id in server.supervisor.active()
               and time.monotonic() < deadline):
            time.sleep(0.02)  # its thread is starting it: cancel through its runner
            run = api.get_run(run_id)
        try:
            here = server.engine.cancel(run_id, reason=UI_CANCEL_REASON)
        except UsageError:
            return "already_ended"
        while not here and time.monotonic() < deadline:
            if api.get_run(run_id).lifecycle.status == "cancelled":
                return "cancelled"
            time.sleep(0.05)
        return "cancelled" if here else "cancel_requested"

    try:
        notice = await anyio.to_thread.run_sync(act)
    except NotFoundError:
        return not_found(request, viewer, f"run {run_id}")
    return redirect(f"/runs/{run_id}", notice)


@router.post("/runs/{run_id}/resume")
async def resume(request: Request, run_id: str) -> Response:
    """Continue, in this server, a run whose process is gone."""
    checked = await _checked(request)
    if isinstance(checked, Response):
        return checked
    viewer, _ = checked
    server = server_state(request)

    def act() -> str:
        api = server.reader(viewer.organization_id)
        run = api.get_run(run_id)
        if run.lifecycle.status not in LIVE_RUN_STATUSES:
            return "already_ended" if run.lifecycle.status != "awaiting_review" else "resumed"
        seen = api.reads.run_presence([run_id], organization_id=api.organization_id
                                      ).get(run_id)
        if seen is not None and process_owns(seen.owner_pid, seen.heartbeat_at):
            return "owner_alive"
        return "resumed" if server.supervisor.drive(run_id) == "resumed" else "resume_pending"

    try:
        notice = await anyio.to_thread.run_sync(act)
    except NotFoundError:
        return not_found(request, viewer, f"run {run_id}")
    return redirect(f"/runs/{run_id}", notice)


def _execute_in_background(engine: Any, prepared: Any, what: str) -> None:
    try:
        anyio.run(engine.execute, prepared)
    except StepwellError:
        log.exception("rerun %s stopped on an error", what)
    except Exception:  # a thread must never die silently
        log.exception("rerun %s failed unexpectedly", what)


def _failed_steps(api: Any, run_id: str) -> int:
    """How many steps of the run ended in error (NotFoundError: not visible)."""
    tallies = api.reads.block_tallies(run_id, organization_id=api.organization_id)
    return sum(t.count for t in tallies if t.status == "error")


@router.post("/runs/{run_id}/rerun")
async def rerun(request: Request, run_id: str) -> Response:
    """Start a new run that reuses what the run did well: everything upstream of a
    top-level step (``from_step``), or everything but its failed steps (``failed=1``:
    a for_each runs only its failed items again)."""
    checked = await _checked(request)
    if isinstance(checked, Response):
        return checked
    viewer, form = checked
    server = server_state(request)
    failed = form.get("failed") == "1"
    from_step = None if failed else form.get("from_step", "")

    def act() -> str | None:
        api = server.reader(viewer.organization_id)
        if failed:
            if not _failed_steps(api, run_id):
                return "no_failed"
        else:
            found = api.reads.outline_steps(run_id, [str(from_step)],
                                            organization_id=api.organization_id)
            if not found or found[0].scope:  # only top-level steps can be rerun from
                return None
        # the new run's row is written here, so the redirect always names it; it is
        # executed in the background and its page follows it live
        try:
            prepared = prepare_rerun(server.engine, run_id, from_step, failed=failed)
        except (UsageError, InputError) as exc:
            log.warning("rerun of %s refused: %s", run_id, exc)
            return "rerun_refused"
        what = f"{prepared.run_id} of {run_id}"
        threading.Thread(target=_execute_in_background,
                         args=(server.engine, prepared, what), daemon=True,
                         name=f"stepwell-rerun-{prepared.run_id}").start()
        return prepared.run_id

    try:
        new_id = await anyio.to_thread.run_sync(act)
    except NotFoundError:
        return not_found(request, viewer, f"run {run_id}")
    if new_id is None:
        return not_found(request, viewer, f"top-level step {from_step!r} of run {run_id}")
    if new_id in ("no_failed", "rerun_refused"):
        return redirect(f"/runs/{run_id}", new_id)
    return redirect(f"/runs/{new_id}",
                    "rerun_failed_started" if failed else "rerun_started")


# --------------------------------------------------------------------------- reviews


def corrected_data(store: ReviewStore, model: ReviewModel, corrected: Any,
                   form: dict[str, str], author_id: str) -> tuple[Any, bool]:
    """``(data, has_data)`` of an approval: data that differs from the review's latest
    version is stored as a correction of it first (as the HTTP API stores one); a
    correction's data is approved as corrected data, the proposal's as it is.

    Raises:
        InputError: the corrected data is not bounded JSON.
    """
    chosen = model.latest
    if corrected != model.current:
        chosen = add_correction(store, model.row, parent_id=chosen.id,
                                snapshot=snapshot_for(corrected),
                                note=form.get("note", "")[:2000] or None, author_id=author_id)
    if chosen.parent_id is None:
        return None, False
    return decision_data(model.row, chosen), True


@router.get("/reviews/{review_id}/decide")
def decide_page(request: Request, review_id: str) -> Response:
    """The review page itself (the address a refused decision leaves in the address bar),
    with its sign-in gate and its 404 for a review of another organization."""
    return review_page(request, review_id)


@router.post("/reviews/{review_id}/decide")
async def decide(request: Request, review_id: str) -> Response:
    """Approve (with the corrected data, when it was edited) or reject; the run goes on.

    ``decision`` must be exactly ``approve`` or ``reject`` (anything else: 422, nothing
    decided). Unchanged data approves the latest version as it is, without the schema
    check that corrected data passes first. Sending the form again (a reload of the 422
    page) decides nothing twice: a decided review answers ``already_decided``.
    """
    checked = await _checked(request)
    if isinstance(checked, Response):
        return checked
    viewer, form = checked
    server = server_state(request)
    decision = form.get("decision")
    approved = decision == "approve"

    def act() -> tuple[str, Any, list[str]]:
        api = server.reader(viewer.organization_id)
        model = build_review_model(api, server.store, review_id)
        if model.state != "pending":
            return "already_decided", model, []
        if decision not in DECISIONS:
            return "invalid", model, [
                (f"the form's decision must be 'approve' or 'reject', not {decision!r}: "
                 "use the Approve or Reject button")]
        data, has_data, corrected = None, False, None
        if approved and model.correctable:
            corrected, problems = read_correction(model.fields, form, model.current)
            if not problems and corrected != model.current:  # unchanged: approved as is
                problems = schema_problems(model.schema, corrected)
            if problems:
                return "invalid", model, problems
        try:
            if approved and model.correctable:
                data, has_data = corrected_data(server.store, model, corrected, form,
                                                viewer.organization_id)
            _, changed = server.engine.record_decision(
                review_id, approved=approved, data=data, has_data=has_data,
                reason=form.get("reason", "")[:2000])
        except ConflictError:
            return "already_decided", model, []
        except InputError as exc:
            return "invalid", model, [str(exc)]
        except UsageError:
            return "already_ended", model, []
        if changed and not server.store.load_run(model.row["run_id"]).status.terminal:
            server.supervisor.drive(model.row["run_id"])
        return ("approved" if approved else "rejected"), model, []

    try:
        outcome, model, problems = await anyio.to_thread.run_sync(act)
    except NotFoundError:
        return not_found(request, viewer, f"review {review_id}")
    if outcome == "invalid":
        return review_response(request, viewer, model, problems, form, status_code=422)
    return redirect(f"/reviews/{review_id}", outcome)
