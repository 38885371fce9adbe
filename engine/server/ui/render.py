"""HTML rendering: the Jinja2 environment, its filters, and page responses.

Autoescaping is on for every template, so user content (workflow names, block labels,
payloads, error messages) is always text; data handed to scripts goes through ``tojson``
inside ``<script type="application/json">``, which escapes ``<``, ``>`` and ``&``. Pages
are sent with a Content-Security-Policy that allows scripts and styles from this server
only, so an injected tag could not run even if escaping were missed.

A request with the header ``X-Stepwell-Fragment: 1`` (what the live-update script
sends) gets only the page's live region (the template's ``live`` block).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from engine.server.ui.session import Viewer, set_cookies

TEMPLATES = Path(__file__).parent / "templates"
FRAGMENT_HEADER = "x-stepwell-fragment"
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
JSON_PREVIEW_CHARS = 20_000

#: Status -> (symbol, word): status is never shown by colour alone.
STATUS_SIGNS = {
    "pending": ("○", "pending"), "queued": ("◔", "queued"), "running": ("▶", "running"),
    "awaiting_review": ("‖", "awaiting review"), "completed": ("✓", "completed"),
    "skipped": ("↷", "skipped"), "error": ("✗", "error"), "cancelled": ("⊘", "cancelled"),
    "owner_lost": ("⚠", "owner lost"),
    # review decisions: a rejection is not a success, whatever the step's status
    "approved": ("✓", "approved"), "rejected": ("✗", "rejected"),
}


def _when(value: Any) -> str:
    """Epoch seconds or a datetime as ``2026-03-12 09:00:01`` (UTC)."""
    moment = _moment(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "–"


def _iso(value: Any) -> str:
    moment = _moment(value)
    return moment.isoformat().replace("+00:00", "Z") if moment else ""


def _moment(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromtimestamp(float(value), UTC)


def duration(ms: float | None) -> str:
    """``850 ms``, ``12.3 s``, ``4 min 05 s``, ``2 h 03 min``; ``–`` when unknown."""
    if ms is None or (isinstance(ms, float) and math.isnan(ms)):
        return "–"
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


_PRETTY = json.JSONEncoder(indent=2, ensure_ascii=False, default=str)


def pretty_json(value: Any, limit: int = JSON_PREVIEW_CHARS) -> str:
    """Indented JSON, cut at ``limit`` characters with a marker saying so.

    Indented encoding is pure Python, so a large value is encoded only up to the cut.
    """
    chunks: list[str] = []
    size = 0
    for chunk in _PRETTY.iterencode(value):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    else:
        return "".join(chunks)
    return "".join(chunks)[:limit] + f"\n… (cut at {limit:,} characters)"


def detail_text(detail: Any, limit: int = 300) -> str:
    """A transition's detail as one line: the error message or reason when it has one."""
    if isinstance(detail, dict):
        error = detail.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        for key in ("message", "reason"):
            if detail.get(key):
                return str(detail[key])
    if detail is None or detail == "":
        return ""
    text = detail if isinstance(detail, str) else json.dumps(detail, default=str)
    return text if len(text) <= limit else text[:limit] + "…"


def _sign(status: str) -> str:
    return STATUS_SIGNS.get(status, ("•", status))[0]


def _word(status: str) -> str:
    return STATUS_SIGNS.get(status, ("•", status.replace("_", " ")))[1]


def make_environment() -> Environment:
    """The template environment (autoescaping on, UI filters registered)."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(
        enabled_extensions=("html",), default_for_string=True, default=True),
        trim_blocks=True, lstrip_blocks=True)
    env.filters.update(when=_when, iso=_iso, duration=duration, pretty=pretty_json,
                       sign=_sign, word=_word, detail=detail_text)
    env.globals["status_signs"] = STATUS_SIGNS
    macros = env.get_template("macros.html").module
    # Globals, not imports: a live-region render runs one block, without the template's
    # top-level imports.
    env.globals.update({name: getattr(macros, name)
                        for name in ("badge", "json_block", "bar", "doc_pages")})
    return env


def wants_fragment(request: Request) -> bool:
    """True when only the live region of the page is asked for."""
    return request.headers.get(FRAGMENT_HEADER) == "1"


def page(env: Environment, request: Request, viewer: Viewer | None, template: str,
         context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    """Render ``template`` (or its ``live`` block for a fragment request) as a response.

    Args:
        env: the environment from :func:`make_environment`.
        request: the request (its path is the page's stable URL).
        viewer: who asked (their CSRF token goes into forms); None on the login page.
        template: a file under ``templates/``.
        context: the template's variables.
        status_code: the HTTP status.
    """
    tpl = env.get_template(template)
    values = {"request": request, "viewer": viewer, **context}
    if wants_fragment(request) and "live" in tpl.blocks:
        ctx = tpl.new_context(values)
        html = "".join(tpl.blocks["live"](ctx))
    else:
        html = tpl.render(values)
    response = HTMLResponse(html, status_code=status_code)
    secure_headers(response)
    if viewer is not None:
        set_cookies(response, viewer, request)
    return response


def secure_headers(response: Any) -> None:
    """Headers every UI response carries (CSP, no sniffing, no framing, no caching)."""
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers.setdefault("Cache-Control", "no-store")
