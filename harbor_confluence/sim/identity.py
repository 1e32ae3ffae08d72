"""Atlassian's identity side, simulated: accessible-resources, the token endpoint, the gateway.

- ``GET /oauth/token/accessible-resources`` (Bearer): the sites the token reaches, each
  ``{id, name, url, scopes, avatarUrl}``, ``scopes`` being what the token was granted.
- ``POST /oauth/token`` (``grant_type=refresh_token``, JSON or form body): checks the
  client id and secret, rotates the refresh token (the old one stops working at once),
  and issues an access token that expires after ``access_ttl`` seconds, so refresh is
  exercised.  Revoked or unknown refresh tokens get ``403 invalid_grant``.
- ``/ex/confluence/{cloudId}/wiki/...``: the gateway.  It accepts Basic (scoped API
  tokens), the simulator's static access token, and issued access tokens; an issued
  token must hold every scope the operation declares (``scopes.py``), else the answer is
  Atlassian's ``401 Unauthorized; scope does not match`` with the
  ``X-Failure-Category: FAILURE_CLIENT_SCOPE_CHECK`` header, naming the missing scope.

Issued access tokens work only through the gateway, as on Atlassian's cloud: a 3LO
token sent to the site itself is refused.  Tokens are compared in constant time and never
appear in repr, logs or error bodies.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from .scopes import ALL_SCOPES, required_scopes
from .wire import SimResponse

__all__ = ["RESOURCES_PATH", "TOKEN_PATH", "Gateway", "Grant", "Identity"]

RESOURCES_PATH = "/oauth/token/accessible-resources"
TOKEN_PATH = "/oauth/token"  # noqa: S105 - a path, not a secret
GATEWAY_PREFIX = "/ex/confluence/"
SCOPE_FAILURE = "FAILURE_CLIENT_SCOPE_CHECK"
_AVATAR = "https://site-admin-avatar-cdn.prod.public.atl-paas.net/avatars/240/rocket.png"


@dataclass(frozen=True, slots=True, repr=False)
class Grant:
    """Tokens handed to a test (the other side of ``token set``)."""

    access_token: str
    refresh_token: str | None
    scopes: tuple[str, ...]

    def __repr__(self) -> str:
        return f"Grant(scopes={list(self.scopes)}, tokens=***)"


@dataclass(slots=True)
class _Access:
    scopes: frozenset[str]
    expires_at: float | None  # time.monotonic(); None never expires
    client_id: str | None


@dataclass(slots=True)
class _Refresh:
    client_id: str
    scopes: frozenset[str]


@dataclass(frozen=True, slots=True)
class _Site:
    cloud_id: str
    name: str
    url: str | None  # None: the simulator itself


@dataclass(frozen=True, slots=True)
class Gateway:
    """A request that came through ``/ex/confluence/{cloudId}``: the inner path to route."""

    path: str
    scopes: frozenset[str] | None  # None: Basic or the static token, no scope limits

    def check(self, operation_id: str) -> SimResponse | None:
        """Atlassian's scope-check answer when the token lacks a scope, else None."""
        if self.scopes is None:
            return None
        needed = required_scopes(operation_id, self.path) or ()
        missing = [s for s in needed if s not in self.scopes]
        if not missing:
            return None
        return _json(
            401,
            {
                "code": 401,
                "message": "Unauthorized; scope does not match. Missing scope: "
                + ", ".join(missing),
            },
            (("X-Failure-Category", SCOPE_FAILURE),),
        )


@dataclass
class _State:
    static_tokens: list[str] = field(default_factory=list)
    clients: dict[str, str] = field(default_factory=dict)
    access: dict[str, _Access] = field(default_factory=dict)
    refresh: dict[str, _Refresh] = field(default_factory=dict)
    refreshes: int = 0


class Identity:
    """OAuth clients, tokens and sites of one simulator; tests drive it directly."""

    def __init__(
        self,
        *,
        site_name: str = "harbor-sim",
        access_ttl: float = 3600.0,
        token_prefix: str = "sim-oauth-",  # noqa: S107 - a prefix, not a secret
    ) -> None:
        self.cloud_id = str(uuid.uuid4())
        self.access_ttl = access_ttl
        self.token_prefix = token_prefix
        self._sites = [_Site(self.cloud_id, site_name, None)]
        self._lock = threading.Lock()
        self._state = _State()

    def __repr__(self) -> str:
        with self._lock:
            return (
                f"Identity(cloud_id={self.cloud_id!r}, clients={len(self._state.clients)}, "
                f"access_tokens={len(self._state.access)})"
            )

    # -- set up by tests -------------------------------------------------------------------

    def add_static_token(self, token: str) -> None:
        """A never-expiring token with every scope (the simulator's ``access_token``)."""
        with self._lock:
            self._state.static_tokens.append(token)

    def register_client(self, client_id: str, client_secret: str) -> None:
        with self._lock:
            self._state.clients[client_id] = client_secret

    def add_site(self, name: str, url: str) -> str:
        """Another site the tokens can list (not routable here); returns its cloudId."""
        site = _Site(str(uuid.uuid4()), name, url)
        with self._lock:
            self._sites.append(site)
        return site.cloud_id

    def grant(
        self,
        *,
        client_id: str,
        scopes: Iterable[str] = ALL_SCOPES,
        access_token: str | None = None,
        refresh_token: str | None = None,
        expires_in: float | None = None,
    ) -> Grant:
        """What a finished 3LO consent gives the app: an access and a refresh token."""
        granted = frozenset(scopes)
        access = access_token or self._new_token("access")
        refresh = refresh_token or self._new_token("refresh")
        ttl = self.access_ttl if expires_in is None else expires_in
        with self._lock:
            if client_id not in self._state.clients:
                raise ValueError(f"register client {client_id!r} first")
            self._state.access[access] = _Access(granted, time.monotonic() + ttl, client_id)
            self._state.refresh[refresh] = _Refresh(client_id, granted)
        return Grant(access, refresh, tuple(sorted(granted)))

    def expire_access_tokens(self) -> None:
        """Every issued access token expires now (the static token does not)."""
        with self._lock:
            for entry in self._state.access.values():
                entry.expires_at = 0.0

    def revoke_refresh_tokens(self) -> int:
        """The user revoked the app: every refresh token stops working."""
        with self._lock:
            count = len(self._state.refresh)
            self._state.refresh.clear()
            return count

    @property
    def refresh_count(self) -> int:
        """Successful refresh_token grants so far."""
        with self._lock:
            return self._state.refreshes

    def _new_token(self, kind: str) -> str:
        return f"{self.token_prefix}{kind}-{secrets.token_urlsafe(24)}"

    # -- the wire (called by the server for every request) ----------------------------------

    def answer(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        site_url: str,
        basic_ok: Callable[[str | None], bool],
    ) -> SimResponse | Gateway | None:
        """An identity answer, a gateway request to route, or None (a plain site request)."""
        if path == RESOURCES_PATH:
            if method not in ("GET", "HEAD"):
                return _json(405, {"code": 405, "message": "Method Not Allowed"})
            return self._resources(headers.get("authorization"), site_url)
        if path == TOKEN_PATH:
            if method != "POST":
                return _json(405, {"code": 405, "message": "Method Not Allowed"})
            return self._token(headers.get("content-type", ""), body)
        if path.startswith(GATEWAY_PREFIX):
            return self._gateway(path, headers.get("authorization"), basic_ok)
        return None

    def _bearer(self, header: str | None) -> frozenset[str] | None:
        """The scopes of a valid Bearer token (static: all), or None."""
        if not header:
            return None
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        now = time.monotonic()
        with self._lock:
            static = self._state.static_tokens
            if any(hmac.compare_digest(token.encode(), t.encode()) for t in static):
                return frozenset(ALL_SCOPES)
            entry = self._state.access.get(token)
            if entry is None or (entry.expires_at is not None and now >= entry.expires_at):
                return None
            return entry.scopes

    def _resources(self, header: str | None, site_url: str) -> SimResponse:
        scopes = self._bearer(header)
        if scopes is None:
            return _unauthorized()
        with self._lock:
            sites = list(self._sites)
        return _json(
            200,
            [
                {
                    "id": site.cloud_id,
                    "name": site.name,
                    "url": site.url or site_url,
                    "scopes": sorted(scopes),
                    "avatarUrl": _AVATAR,
                }
                for site in sites
            ],
        )

    def _token(self, content_type: str, body: bytes) -> SimResponse:
        params = _form(content_type, body)
        if params is None:
            return _oauth_error(400, "invalid_request", "The request body is malformed.")
        if params.get("grant_type") != "refresh_token":
            return _oauth_error(400, "unsupported_grant_type", "Unsupported grant type.")
        client_id = params.get("client_id", "")
        client_secret = params.get("client_secret", "")
        presented = params.get("refresh_token", "")
        with self._lock:
            known = self._state.clients.get(client_id)
            if known is None or not hmac.compare_digest(client_secret.encode(), known.encode()):
                return _oauth_error(401, "access_denied", "Unauthorized")
            grant = self._state.refresh.get(presented)
            if grant is None or grant.client_id != client_id:
                return _oauth_error(403, "invalid_grant", "Unknown or invalid refresh token.")
            del self._state.refresh[presented]  # rotation: the old token stops working
            access = self._new_token("access")
            rotated = self._new_token("refresh")
            self._state.access[access] = _Access(
                grant.scopes, time.monotonic() + self.access_ttl, client_id
            )
            self._state.refresh[rotated] = _Refresh(client_id, grant.scopes)
            self._state.refreshes += 1
        return _json(
            200,
            {
                "access_token": access,
                "refresh_token": rotated,
                "expires_in": int(self.access_ttl) if self.access_ttl >= 1 else self.access_ttl,
                "scope": " ".join(sorted(grant.scopes)),
                "token_type": "Bearer",
            },
            (("Cache-Control", "no-store"),),
        )

    def _gateway(
        self, path: str, header: str | None, basic_ok: Callable[[str | None], bool]
    ) -> SimResponse | Gateway:
        cloud_id, _, rest = path[len(GATEWAY_PREFIX) :].partition("/")
        if cloud_id != self.cloud_id or not rest.startswith("wiki/"):
            return _json(404, {"code": 404, "message": "Not Found"})
        inner = "/" + rest
        if basic_ok(header):
            return Gateway(inner, None)
        scopes = self._bearer(header)
        if scopes is None:
            return _unauthorized()
        return Gateway(inner, scopes)


def _form(content_type: str, body: bytes) -> dict[str, str] | None:
    try:
        if "json" in content_type.lower():
            data: Any = json.loads(body or b"{}")
            if not isinstance(data, dict):
                return None
            return {str(k): v for k, v in data.items() if isinstance(v, str)}
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except (ValueError, UnicodeDecodeError):
        return None


def _json(status: int, payload: Any, headers: Iterable[tuple[str, str]] = ()) -> SimResponse:
    return SimResponse.json(payload, status, headers)


def _unauthorized() -> SimResponse:
    return _json(
        401,
        {"code": 401, "message": "Unauthorized"},
        (("WWW-Authenticate", 'Bearer realm="api.atlassian.com", error="invalid_token"'),),
    )


def _oauth_error(status: int, error: str, description: str) -> SimResponse:
    return SimResponse(
        status,
        json.dumps({"error": error, "error_description": description}).encode(),
        (("Content-Type", "application/json"), ("Cache-Control", "no-store")),
    )
