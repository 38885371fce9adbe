"""Who is looking: login sessions, organization scoping and CSRF tokens of the web UI.

Two modes, decided by the server configuration:

* **single user on loopback** (``stepwell serve`` with no ``STEPWELL_API_KEYS``): no
  login; every page sees the one organization of the generated key. To keep other web
  sites from reaching this server through DNS rebinding, requests must then name a
  loopback host (``Host: 127.0.0.1:8000``, ``localhost``...).
* **keys configured**: a login form takes an API key; the key's organization is kept in
  a server-side session named by an HttpOnly cookie (``stepwell_session``). Sessions
  live in this process and end with it, on logout, or after :data:`SESSION_TTL_S`.

Every form carries a CSRF token: an HMAC, under a per-process secret, of a random value
kept in its own cookie (``stepwell_csrf``, SameSite=Strict). A cross-site page can
neither read the cookie nor compute the token, so a forged POST is refused (403).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from fastapi import Request, Response

from engine.contracts.frozen import record
from engine.server.auth import organization_for
from engine.server.config import ServerConfig, is_loopback

SESSION_COOKIE = "stepwell_session"
CSRF_COOKIE = "stepwell_csrf"
CSRF_FIELD = "csrf_token"
SESSION_TTL_S = 12 * 3600
MAX_FORM_BYTES = 4 * 1024 * 1024


@record
class Viewer:
    """The person behind a request: their organization, and the CSRF token of their forms.

    Attributes:
        organization_id: what they may see.
        csrf: the token forms must send back in ``csrf_token``.
        csrf_cookie: a fresh CSRF cookie value to set on the response, when there was none.
        signed_in: True when they came through the login form (logout is offered).
    """

    organization_id: str
    csrf: str
    csrf_cookie: str | None = None
    signed_in: bool = False


@dataclass(kw_only=True)
class Sessions:
    """Login sessions and the CSRF secret of one server process.

    Args:
        config: the server configuration (its keys decide whether a login is needed).
    """

    config: ServerConfig
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    _sessions: dict[str, tuple[str, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def login_required(self) -> bool:
        """False for a single-user loopback server (its key was generated at start)."""
        return self.config.generated_key is None

    def local_organization(self) -> str:
        """The organization of the generated key (single-user mode)."""
        return next(iter(self.config.api_keys.values()))

    # ----------------------------------------------------------------- sessions

    def sign_in(self, api_key: str) -> str | None:
        """A new session id for ``api_key``, or None when the key is not configured."""
        org = organization_for(self.config.api_keys, api_key.strip())
        if org is None:
            return None
        session_id = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[session_id] = (org, time.time() + SESSION_TTL_S)
        return session_id

    def sign_out(self, session_id: str | None) -> None:
        """Forget a session (unknown ids are ignored)."""
        if session_id:
            with self._lock:
                self._sessions.pop(session_id, None)

    def session_org(self, session_id: str | None) -> str | None:
        """The organization of a live session, or None."""
        if not session_id:
            return None
        now = time.time()
        with self._lock:
            found = self._sessions.get(session_id)
            if found is not None and found[1] < now:
                del self._sessions[session_id]
                found = None
        return found[0] if found else None

    # ----------------------------------------------------------------- requests

    def host_allowed(self, request: Request) -> bool:
        """In single-user mode, only requests naming a loopback host are served."""
        if self.login_required:
            return True
        host = request.headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return is_loopback(name) if name else False

    def viewer(self, request: Request) -> Viewer | None:
        """Who sent ``request``; None when a login is needed first."""
        cookie = request.cookies.get(CSRF_COOKIE)
        fresh = None
        if not cookie or len(cookie) > 64:
            cookie = fresh = secrets.token_urlsafe(24)
        token = self.csrf_for(cookie)
        if not self.login_required:
            return Viewer(organization_id=self.local_organization(), csrf=token,
                          csrf_cookie=fresh)
        org = self.session_org(request.cookies.get(SESSION_COOKIE))
        if org is None:
            return None
        return Viewer(organization_id=org, csrf=token, csrf_cookie=fresh, signed_in=True)

    def anonymous_csrf(self, request: Request) -> Viewer:
        """A CSRF token for the login form (no organization yet)."""
        cookie = request.cookies.get(CSRF_COOKIE)
        fresh = None
        if not cookie or len(cookie) > 64:
            cookie = fresh = secrets.token_urlsafe(24)
        return Viewer(organization_id="", csrf=self.csrf_for(cookie), csrf_cookie=fresh)

    def csrf_for(self, cookie: str) -> str:
        """The form token that goes with a CSRF cookie value."""
        return hmac.new(self.secret, cookie.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, request: Request, form: Mapping[str, str]) -> bool:
        """True when the form's token matches the request's CSRF cookie."""
        cookie = request.cookies.get(CSRF_COOKIE)
        sent = form.get(CSRF_FIELD, "")
        if not cookie or not sent:
            return False
        return hmac.compare_digest(self.csrf_for(cookie), sent)


def set_cookies(response: Response, viewer: Viewer, request: Request) -> None:
    """Set the CSRF cookie on ``response`` when the viewer got a fresh one."""
    if viewer.csrf_cookie is not None:
        response.set_cookie(CSRF_COOKIE, viewer.csrf_cookie, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path="/")


def set_session(response: Response, session_id: str | None, request: Request) -> None:
    """Set (or clear, with None) the session cookie."""
    if session_id is None:
        response.delete_cookie(SESSION_COOKIE, path="/")
        return
    response.set_cookie(SESSION_COOKIE, session_id, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https", path="/", max_age=SESSION_TTL_S)


async def read_form(request: Request) -> dict[str, str]:
    """The ``application/x-www-form-urlencoded`` body as a dict (last value wins).

    Bodies over :data:`MAX_FORM_BYTES` and other content types give an empty form, which
    fails its CSRF check.
    """
    if not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"):
        return {}
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def safe_next(target: str | None) -> str:
    """A local path to go to after login (anything else becomes ``/``)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
