"""The review page: operators work the node's queue in a browser, under ``/review``.

Why it is built this way:

- Plain server-rendered HTML (Jinja2, autoescaped) and plain forms, so approving and
  rejecting work without JavaScript; one small script (no inline code) adds live updates.
- The page is a client of :class:`NodeService` like the HTTP API: approvals go through
  ``NodeService.approve`` with the fingerprint of the request the operator was shown, so
  the queue's rules (N of M, no self-approval, exactly once, seals) decide, and its
  refusals are shown as they are worded.
- Only operators: sign-in takes an operator token or an operator's name and password;
  agent tokens are refused at sign-in and, as a ``Bearer`` header, on every route (403,
  audited).  An operator's ``Bearer`` token is accepted without a session or CSRF token
  (a browser never sends that header on its own, so it cannot be forged across sites).
- Browser sessions: a random id in an ``HttpOnly``, ``SameSite=Strict`` cookie
  (``Secure`` and ``__Secure-`` over TLS) scoped to ``/review``; a per-session CSRF token
  in every form; cross-site ``Origin``/``Sec-Fetch-Site`` refused; and on every response a
  strict Content-Security-Policy (``default-src 'self'``, no inline script or style,
  ``frame-ancestors 'none'``), ``nosniff``, ``no-referrer`` and ``no-store``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from harbor_confluence.errors import AuthError, ConfigError, HarborError
from harbor_confluence.node.app import bearer
from harbor_confluence.node.service import error_status
from harbor_confluence.review.queue import MAX_REASON_CHARS, OPEN_STATES, STATES, Ticket

from .events import ChangeBroker
from .listing import STATE_ORDER, CursorError, Filters, list_tickets, ticket_space, ticket_title
from .sessions import (
    COOKIE,
    COOKIE_PATH,
    LOGIN_COOKIE,
    Session,
    SessionStore,
    SignInLimiter,
    cookie_name,
    same_token,
)
from .views import ago, duration, iso, progress, request_view, review_view

if TYPE_CHECKING:
    from harbor_confluence.node.identities import Identity
    from harbor_confluence.node.service import NodeService

__all__ = ["CSP", "PREFIX", "ReviewApp", "review_routes"]

PREFIX = "/review"
HERE = Path(__file__).parent
PAGE_SIZE = 50
MAX_FORM_BYTES = 64 * 1024
SSE_HEARTBEAT = 10.0
SSE_LIFETIME = 15.0  # then the browser reconnects (and a stopping node is not held up)
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
_TICKET_ID = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_NEXT = re.compile(r"^/review/[A-Za-z0-9_./?=&%+-]*$")
log = logging.getLogger("harbor_confluence.node.review")

Endpoint = Callable[[Request], Awaitable[Response]]


class _SecurityHeaders:
    """Every response under /review (pages, redirects, static files, errors) gets the
    security headers; pages and redirects are never cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope.get("path", "").startswith(f"{PREFIX}/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    headers[key] = value
                headers["cache-control"] = "no-cache" if static else "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


@dataclass(slots=True)
class Viewer:
    """Who is looking: an operator, by session (browser) or by Bearer token (no session)."""

    ident: Identity
    session: Session | None
    live: bool = False  # the page's own script refreshing it: no flash taken, idle not reset

    @property
    def csrf(self) -> str:
        return self.session.csrf if self.session is not None else ""


class _BadForm(Exception):
    pass


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _safe_next(value: str | None) -> str:
    if value and _NEXT.match(value) and "//" not in value and "/../" not in value:
        return value
    return f"{PREFIX}/"


class ReviewApp:
    """The routes, the sessions and the live-update broker of one node's review page."""

    def __init__(
        self,
        service: NodeService,
        *,
        sessions: SessionStore | None = None,
        limiter: SignInLimiter | None = None,
        broker: ChangeBroker | None = None,
    ) -> None:
        self.service = service
        self.sessions = sessions if sessions is not None else SessionStore()
        self.limiter = limiter if limiter is not None else SignInLimiter()
        self.broker = broker if broker is not None else ChangeBroker()
        service.subscribe(self.broker.publish)
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        digest = hashlib.sha256()
        for name in sorted((HERE / "static").iterdir()):
            digest.update(name.read_bytes())
        self._asset_version = digest.hexdigest()[:12]
        self._csrf_refusals = 0.0

    # -- plumbing -----------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        inner = Router(
            routes=[
                Route("/", self._page(self.queue_page), methods=["GET"]),
                Route("/login", self.login_page, methods=["GET"]),
                Route("/login", self.login, methods=["POST"]),
                Route("/logout", self._form(self.logout), methods=["POST"]),
                Route("/audit", self._page(self.audit_page), methods=["GET"]),
                Route("/events", self.events, methods=["GET"]),
                Route("/tickets/{id}", self._page(self.ticket_page), methods=["GET"]),
                Route("/tickets/{id}/{decision}", self._form(self.decide), methods=["POST"]),
                Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
            ]
        )

        async def bare(request: Request) -> Response:
            return RedirectResponse(f"{PREFIX}/", status_code=307)

        return [
            Route(PREFIX, bare, methods=["GET"]),
            Mount(PREFIX, app=_SecurityHeaders(self._operators_only(inner))),
        ]

    def _operators_only(self, app: ASGIApp) -> ASGIApp:
        """A request that carries a bearer token must carry an operator's: an agent token
        is refused (403, audited) on every path here, static files and sign-in included."""

        async def guard(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                request = Request(scope)
                if "authorization" in request.headers:
                    try:
                        await run_in_threadpool(
                            self._bearer_identity,
                            bearer(request),
                            f"{request.method} {request.url.path}",
                        )
                    except HarborError as exc:
                        status = 401 if isinstance(exc, AuthError) else 403
                        refusal = self._message(request, None, status, "Not allowed", str(exc))
                        await refusal(scope, receive, send)
                        return
            await app(scope, receive, send)

        return guard

    def _render(
        self,
        request: Request,
        template: str,
        viewer: Viewer | None,
        *,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        flashes: list[tuple[str, str]] = []
        if viewer is not None and viewer.session is not None and not viewer.live:
            flashes = viewer.session.take_flashes()
        context.setdefault("page", template.removesuffix(".html"))
        context.setdefault("ticket_id", None)
        context.setdefault("live", False)
        html = self.env.get_template(template).render(
            prefix=PREFIX,
            me=viewer.ident.name if viewer is not None else None,
            csrf=viewer.csrf if viewer is not None else "",
            flashes=flashes,
            static=lambda name: f"{PREFIX}/static/{name}?v={self._asset_version}",
            events_url=(f"{PREFIX}/events?since={self.broker.epoch}.{self.broker.seq}"),
            **context,
        )
        return HTMLResponse(html, status_code=status)

    def _message(
        self, request: Request, viewer: Viewer | None, status: int, title: str, text: str
    ) -> HTMLResponse:
        return self._render(request, "message.html", viewer, status=status, title=title, text=text)

    def _audit(self, event: str, **fields: Any) -> None:
        try:
            self.service.port.audit.append(event, durable=False, **fields)
        except Exception:
            log.exception("review: cannot append %s to the audit log", event)

    def _session_identity(self, session: Session) -> Identity | None:
        """The session's operator, if its token is still on file as an operator's."""
        self.service.refresh()
        ident = self.service.identities.by_token_id(session.token_id)
        if ident is None or not ident.is_operator:
            self.sessions.drop_token(session.token_id)
            return None
        return ident

    def _bearer_identity(self, token: str | None, where: str) -> Identity:
        ident = self.service.authenticate(token, where=where)
        self.service.require_operator(ident, "review page")  # agents: Forbidden, audited
        return ident

    async def _viewer(self, request: Request) -> Viewer | Response | None:
        """The operator behind this request; a Response to refuse it; None: not signed in."""
        if "authorization" in request.headers:
            try:
                ident = await run_in_threadpool(
                    self._bearer_identity,
                    bearer(request),
                    f"{request.method} {request.url.path}",
                )
            except HarborError as exc:
                status = 401 if isinstance(exc, AuthError) else 403
                return self._message(request, None, status, "Not allowed", str(exc))
            return Viewer(ident, None)
        live = request.headers.get("x-harbor-live") == "1"
        cookie = request.cookies.get(cookie_name(COOKIE, _secure(request)))
        session = self.sessions.get(cookie, touch=not live)
        if session is None:
            return None
        operator: Identity | None = await run_in_threadpool(self._session_identity, session)
        if operator is None:
            return None
        return Viewer(operator, session, live=live)

    def _to_login(self, request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(
            f"{PREFIX}/login?{urlencode({'next': _safe_next(target)})}", status_code=303
        )

    def _page(self, handler: Callable[[Request, Viewer], Awaitable[Response]]) -> Endpoint:
        async def run(request: Request) -> Response:
            viewer = await self._viewer(request)
            if isinstance(viewer, Response):
                return viewer
            if viewer is None:
                return self._to_login(request)
            try:
                return await handler(request, viewer)
            except HarborError as exc:
                return self._message(request, viewer, error_status(exc), "Refused", str(exc))
            except Exception:
                log.exception("review: GET %s failed", request.url.path)
                return self._message(
                    request, viewer, 500, "Internal error", "Internal error; see the node log."
                )

        return run

    def _cross_site(self, request: Request) -> bool:
        """A form posted from another site (Origin or Sec-Fetch-Site says so)."""
        if request.headers.get("sec-fetch-site") in ("cross-site", "same-site"):
            return True
        origin = request.headers.get("origin")
        if origin is None or origin == "null":
            # Under ``Referrer-Policy: no-referrer`` browsers send "null" for their own
            # forms too; the CSRF token and the SameSite cookie decide then.
            return False
        host = request.headers.get("host", "")
        return origin != f"{request.url.scheme}://{host}"

    async def _read_form(self, request: Request) -> dict[str, str]:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            raise _BadForm("expected an HTML form (application/x-www-form-urlencoded)")
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_FORM_BYTES:
                raise _BadForm(f"the form is larger than {MAX_FORM_BYTES} bytes")
        try:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
        except (UnicodeDecodeError, ValueError):
            raise _BadForm("the form could not be read") from None
        return dict(pairs)

    def _refuse_forged(self, request: Request, viewer: Viewer, why: str) -> Response:
        now = time.monotonic()
        if now - self._csrf_refusals > 1.0:  # at most one audit record a second
            self._csrf_refusals = now
            self._audit(
                "forbidden",
                identity=viewer.ident.name,
                role=viewer.ident.role,
                operation=f"POST {request.url.path}",
                reason=why,
            )
        return self._message(
            request,
            viewer,
            403,
            "Form refused",
            "This form could not be verified (its security token is missing or stale, or it "
            "came from another site). Nothing was changed. Reload the page and try again.",
        )

    def _form(
        self, handler: Callable[[Request, Viewer, dict[str, str]], Awaitable[Response]]
    ) -> Endpoint:
        async def run(request: Request) -> Response:
            viewer = await self._viewer(request)
            if isinstance(viewer, Response):
                return viewer
            if viewer is None:
                return self._message(
                    request,
                    None,
                    403,
                    "Signed out",
                    "Your session has ended, so nothing was changed. Sign in again.",
                )
            try:
                form = await self._read_form(request)
            except _BadForm as exc:
                return self._message(request, viewer, 400, "Bad form", str(exc))
            if viewer.session is not None:
                if self._cross_site(request):
                    return self._refuse_forged(request, viewer, "cross-site form")
                if not same_token(viewer.session.csrf, form.get("csrf")):
                    return self._refuse_forged(request, viewer, "missing or wrong CSRF token")
            try:
                return await handler(request, viewer, form)
            except Exception:
                log.exception("review: POST %s failed", request.url.path)
                return self._message(
                    request, viewer, 500, "Internal error", "Internal error; see the node log."
                )

        return run

    # -- signing in and out -------------------------------------------------------------

    def _login_response(
        self,
        request: Request,
        *,
        status: int = 200,
        error: str | None = None,
        notice: str | None = None,
        name: str = "",
        next_url: str | None = None,
    ) -> Response:
        """The sign-in page with a fresh double-submit CSRF cookie."""
        token = secrets.token_urlsafe(32)
        response = self._render(
            request,
            "login.html",
            None,
            status=status,
            error=error,
            notice=notice,
            name=name,
            login_csrf=token,
            next_url=_safe_next(next_url),
        )
        response.set_cookie(
            cookie_name(LOGIN_COOKIE, _secure(request)),
            token,
            max_age=3600,
            path=COOKIE_PATH,
            secure=_secure(request),
            httponly=True,
            samesite="strict",
        )
        return response

    async def login_page(self, request: Request) -> Response:
        viewer = await self._viewer(request)
        if isinstance(viewer, Viewer):
            return RedirectResponse(_safe_next(request.query_params.get("next")), 303)
        notice = "You are signed out." if request.query_params.get("out") else None
        return self._login_response(
            request, notice=notice, next_url=request.query_params.get("next")
        )

    def _password_sign_in(self, name: str, password: str) -> Identity:
        return self.service.authenticate_password(name, password, where="review sign-in")

    def _token_sign_in(self, token: str) -> Identity:
        ident = self.service.authenticate(token, where="review sign-in")
        if not ident.is_operator:
            self.service.require_operator(ident, "review sign-in")  # raises, audited
        return ident

    async def login(self, request: Request) -> Response:
        secure = _secure(request)
        try:
            form = await self._read_form(request)
        except _BadForm as exc:
            return self._login_response(request, status=400, error=str(exc))
        next_url = form.get("next")
        expected = request.cookies.get(cookie_name(LOGIN_COOKIE, secure), "")
        if self._cross_site(request) or not same_token(expected, form.get("csrf")):
            return self._login_response(
                request,
                status=403,
                next_url=next_url,
                error="The sign-in form had expired or came from another site. Try again.",
            )
        method = "token" if form.get("method") == "token" else "password"
        name = form.get("name", "").strip()
        # Passwords are limited per name; tokens (256 random bits) need no limit, and a
        # shared one would let anybody lock every operator out.
        key = f"name:{name.casefold()}" if method == "password" else ""
        if key and self.limiter.blocked(key):
            return self._login_response(
                request,
                status=429,
                name=name,
                next_url=next_url,
                error="Too many failed sign-ins. Wait a few minutes and try again.",
            )
        try:
            if method == "token":
                ident = await run_in_threadpool(self._token_sign_in, form.get("token", "").strip())
            else:
                ident = await run_in_threadpool(
                    self._password_sign_in, name, form.get("password", "")
                )
        except HarborError as exc:
            if isinstance(exc, AuthError):
                if key:
                    self.limiter.failed(key)
                error = (
                    "That token is not valid."
                    if method == "token"
                    else "Wrong operator name or password."
                )
                status = 401
            elif isinstance(exc, ConfigError):
                error, status = str(exc), 503
            else:  # Forbidden: an agent token
                error = "Agent tokens cannot open the review page: only operators review tickets."
                status = 403
            return self._login_response(
                request, status=status, error=error, name=name, next_url=next_url
            )
        if key:
            self.limiter.succeeded(key)
        cookie, _session = self.sessions.create(ident.name, ident.token_id)
        self._audit("signed-in", operator=ident.name, via=method, where="review page")
        response = RedirectResponse(_safe_next(next_url), status_code=303)
        response.set_cookie(
            cookie_name(COOKIE, secure),
            cookie,
            path=COOKIE_PATH,
            secure=secure,
            httponly=True,
            samesite="strict",
        )
        response.delete_cookie(
            cookie_name(LOGIN_COOKIE, secure),
            path=COOKIE_PATH,
            secure=secure,
            httponly=True,
            samesite="strict",
        )
        return response

    async def logout(self, request: Request, viewer: Viewer, form: dict[str, str]) -> Response:
        secure = _secure(request)
        self.sessions.drop(request.cookies.get(cookie_name(COOKIE, secure)))
        response = RedirectResponse(f"{PREFIX}/login?out=1", status_code=303)
        response.delete_cookie(
            cookie_name(COOKIE, secure),
            path=COOKIE_PATH,
            secure=secure,
            httponly=True,
            samesite="strict",
        )
        return response

    # -- the queue ----------------------------------------------------------------------

    def _row(self, t: Ticket, now: float) -> dict[str, Any]:
        return {
            "id": t.id,
            "action": t.action,
            "state": t.state,
            "requester": t.requester,
            "title": ticket_title(t) or _subject(t),
            "space": ticket_space(t),
            "rule": t.rule,
            "have": len(t.approvals),
            "need": t.approvals_required,
            "created": iso(t.created_at),
            "ago": ago(t.created_at, now),
            "left": duration(t.expires_at - now) if t.state in OPEN_STATES else None,
        }

    async def queue_page(self, request: Request, viewer: Viewer) -> Response:
        q = request.query_params
        notes: list[str] = []
        actions = sorted(a.name for a in self.service.port.manifest.actions)
        state = q.get("state", "")
        if state and state not in STATES:
            notes.append(f"Unknown state {state[:40]!r}; showing every state.")
            state = ""
        action = q.get("action", "")
        if action and action not in actions:
            notes.append(f"Unknown action {action[:60]!r}; showing every action.")
            action = ""
        filters = Filters(
            state=state,
            action=action,
            requester=q.get("requester", "").strip()[:128],
            space=q.get("space", "").strip()[:128],
        )
        after = q.get("after") or None
        queue = self.service.port.queue

        def load() -> tuple[Any, int]:
            found = list_tickets(queue, filters, after, limit=PAGE_SIZE)
            return found, len(queue.store.ids_in_state("pending"))

        try:
            found, pending = await run_in_threadpool(load)
        except CursorError as exc:
            return self._message(request, viewer, 400, "Bad page link", f"{exc}.")
        now = time.time()
        base = filters.query()

        def link(**extra: str) -> str:
            query = urlencode({**base, **extra})
            return f"{PREFIX}/" + (f"?{query}" if query else "")

        return self._render(
            request,
            "queue.html",
            viewer,
            live=True,
            rows=[self._row(t, now) for t in found.tickets],
            pending=pending,
            filters=filters,
            states=STATE_ORDER,
            actions=actions,
            notes=notes,
            after=after,
            first_url=link(),
            next_url=link(after=found.next_cursor) if found.next_cursor else None,
            budget_spent=found.budget_spent,
            scanned=found.scanned,
        )

    # -- one ticket ---------------------------------------------------------------------

    async def ticket_page(self, request: Request, viewer: Viewer) -> Response:
        ticket_id = request.path_params["id"]
        if not _TICKET_ID.match(ticket_id):
            return self._message(request, viewer, 404, "No such ticket", "No such ticket.")
        t: Ticket = await run_in_threadpool(self.service.ticket, viewer.ident, ticket_id)
        route = None
        try:
            route = self.service.port.action(t.action).route
        except HarborError:
            route = None  # the action left the catalog since; the stored request still shows
        me = viewer.ident.name.casefold()
        mine = t.requester.strip().casefold() == me
        approved_by_me = any(a.operator.strip().casefold() == me for a in t.approvals)
        result = json.dumps(t.result, indent=2, ensure_ascii=False) if t.result else None
        return self._render(
            request,
            "ticket.html",
            viewer,
            live=True,
            ticket_id=t.id,
            t=t,
            title=ticket_title(t) or _subject(t),
            space=ticket_space(t),
            message=t.status()["message"],
            req=request_view(t, route),
            rv=review_view(t.review),
            p=progress(t),
            created=iso(t.created_at),
            finished=iso(t.finished_at) if t.finished_at else None,
            result=result,
            mine=mine,
            approved_by_me=approved_by_me,
            can_approve=t.state == "pending" and not approved_by_me,
            can_reject=t.state in OPEN_STATES,
            can_run=t.state == "approved",
            max_reason=MAX_REASON_CHARS,
        )

    async def decide(self, request: Request, viewer: Viewer, form: dict[str, str]) -> Response:
        ticket_id = request.path_params["id"]
        decision = request.path_params["decision"]
        if not _TICKET_ID.match(ticket_id) or decision not in (
            "approve",
            "reject",
            "cancel",
            "run",
        ):
            return self._message(request, viewer, 404, "Not found", "No such form.")
        back = RedirectResponse(f"{PREFIX}/tickets/{quote(ticket_id)}", status_code=303)
        reason = form.get("reason", "").strip() or None
        service, ident = self.service, viewer.ident

        def flash(kind: str, text: str) -> Response:
            if viewer.session is not None:
                viewer.session.flash(kind, text)
                return back
            status = 200 if kind != "error" else 409
            return self._message(request, viewer, status, kind.title(), text)

        try:
            if decision == "approve":
                fingerprint = form.get("fingerprint", "").strip()
                if not fingerprint:
                    return flash(
                        "error",
                        "The form did not say which request you approved "
                        "(its fingerprint); reload the page and approve again.",
                    )
                t = await run_in_threadpool(
                    lambda: service.approve(
                        ident, ticket_id, reason=reason, fingerprint=fingerprint, run=True
                    )
                )
                return flash("ok", _approved_text(t))
            if decision == "reject":
                if reason is None:
                    return flash("error", "A rejection needs a reason: the agent is shown it.")
                t = await run_in_threadpool(service.reject, ident, ticket_id, reason)
                return flash("ok", f"Rejected. The agent sees your reason: {t.reason}")
            if decision == "cancel":
                t = await run_in_threadpool(service.cancel, ident, ticket_id, reason)
                return flash("ok", "Cancelled; nothing was sent.")
            t = await run_in_threadpool(service.execute, ident, ticket_id)
            return flash("ok", _approved_text(t))
        except HarborError as exc:
            return flash("error", f"Refused: {exc}")

    # -- the audit log ------------------------------------------------------------------

    async def audit_page(self, request: Request, viewer: Viewer) -> Response:
        raw = request.query_params.get("n", "50")
        n = int(raw) if raw.isdigit() else 50
        n = max(1, min(n, 500))

        def load() -> tuple[dict[str, Any], list[dict[str, Any]]]:
            verified = self.service.audit_verify(viewer.ident)
            records = self.service.audit_records(viewer.ident, n)
            return verified, records

        verified, records = await run_in_threadpool(load)
        rows = []
        for record in reversed(records):
            known = ("seq", "ts", "event", "prev", "hash")
            details = {k: v for k, v in record.items() if k not in known}
            ts = record.get("ts")
            rows.append(
                {
                    "seq": record.get("seq"),
                    "ts": iso(ts) if isinstance(ts, int | float) else str(ts or ""),
                    "event": record.get("event"),
                    "who": next(
                        (
                            str(details[k])
                            for k in ("operator", "identity", "requester", "by")
                            if details.get(k)
                        ),
                        "",
                    ),
                    "ticket": details.get("ticket"),
                    "details": json.dumps(details, ensure_ascii=False, sort_keys=True)[:2000],
                }
            )
        return self._render(request, "audit.html", viewer, verified=verified, records=rows, n=n)

    # -- live updates -------------------------------------------------------------------

    async def events(self, request: Request) -> Response:
        viewer = await self._viewer(request)
        if isinstance(viewer, Response):
            return viewer
        if viewer is None:
            return Response("sign in first\n", status_code=401, media_type="text/plain")
        last = request.headers.get("last-event-id") or request.query_params.get("since")
        session = viewer.session
        cookie = request.cookies.get(cookie_name(COOKIE, _secure(request)))

        def alive() -> bool:
            return session is None or self.sessions.get(cookie, touch=False) is not None

        broker = self.broker

        async def stream() -> Any:
            with broker.subscribe(last) as sub:
                async for chunk in broker.stream(
                    sub, heartbeat=SSE_HEARTBEAT, lifetime=SSE_LIFETIME, alive=alive
                ):
                    yield chunk

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"x-accel-buffering": "no"},
        )


def _subject(t: Ticket) -> str:
    """A label for a request without a title: its action and the id it acts on."""
    last = t.url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return f"{t.action} {last}" if last.isdigit() else t.action


def _approved_text(t: Ticket) -> str:
    if t.state == "pending":
        missing = t.approvals_required - len(t.approvals)
        return (
            f"Approved ({len(t.approvals)} of {t.approvals_required}); waiting for {missing} more."
        )
    if t.state == "approved":
        return "Approved; it has not been sent yet (Run sends it)."
    status = (t.result or {}).get("status")
    code = f" (HTTP {status})" if status else ""
    if t.state == "succeeded":
        return f"Approved and sent: Confluence accepted it{code}."
    if t.state == "failed":
        return f"Approved and sent, but it failed{code}; see the result below."
    if t.state == "unknown":
        return (
            "Approved and sent, but the outcome is unknown (it will not be retried); "
            "check Confluence, then resolve it with harbor-confluence queue resolve."
        )
    return f"The ticket is now {t.state}."


def review_routes(service: NodeService) -> list[BaseRoute]:
    """The review page's routes for ``build_app``: ``/review`` and everything under it."""
    return ReviewApp(service).routes()
