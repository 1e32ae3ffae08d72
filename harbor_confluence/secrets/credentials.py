"""Credentials, attached to a request at send time and only for the bound origin.

A credential object can be passed around freely: its repr, str and pickled form never
contain the secret, and it adds the header only to requests for its own origin, so a
redirect or a mistaken URL cannot carry it elsewhere.

Three kinds, the three ways people reach Confluence Cloud:

- ``basic``: ``email:API token`` (classic or scoped API token);
- ``bearer``: an OAuth 2.0 (3LO) access token, used as is;
- ``oauth``: an access token plus a refresh token and the app's client id and secret.  An
  expired (known expiry) or rejected (401) access token is refreshed once at
  ``POST {auth-url}/oauth/token`` inside the httpx auth flow, the rotated tokens are handed
  to ``on_refresh`` (the store), and the request is retried once.  A refused refresh
  raises :class:`ReconnectRequired`.  Both the sync and the async flow are implemented,
  and concurrent callers share one refresh.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from typing import Any, Literal

import httpx

from harbor_confluence.errors import ConfigError
from harbor_confluence.pipeline.request import origin_of

from .store import SecretRecord

__all__ = ["Credential", "ReconnectRequired", "credential_from_env", "origin_of"]

Kind = Literal["basic", "bearer", "oauth"]
# Atlassian's gateway marks a token that lacks a scope; a refresh cannot add scopes.
_SCOPE_FAILURE = "FAILURE_CLIENT_SCOPE_CHECK"
_MAX_TOKEN_RESPONSE = 64 * 1024


class ReconnectRequired(ConfigError):
    """The stored OAuth grant no longer works: the operator has to connect again."""

    code = "reconnect"


def _request_origin(request: httpx.Request) -> str:
    url = request.url
    return f"{url.scheme}://{url.netloc.decode('ascii').lower()}"


class _OAuthSession:
    """Mutable OAuth state shared by every bound copy of one credential.

    ``generation`` grows with each refresh, so a caller that waited for another caller's
    refresh can tell it needs none of its own.
    """

    def __init__(
        self,
        *,
        access_token: str | None,
        refresh_token: str,
        client_id: str,
        client_secret: str,
        expires_at: float | None,
        token_url: str,
        on_refresh: Callable[[SecretRecord], None] | None,
        reload: Callable[[], SecretRecord | None] | None = None,
    ) -> None:
        self.access_token = access_token
        self.refresh_token = refresh_token
        self.client_id = client_id
        self.client_secret = client_secret
        self.expires_at = expires_at
        self.token_url = token_url
        self.on_refresh = on_refresh
        self.reload = reload
        self.refusal = ""
        self.generation = 0
        self.dead: str | None = None  # why the grant stopped working, once it has
        self.lock = threading.Lock()  # held by a sync refresh across its network round trip
        self._locks_guard = threading.Lock()
        self._async_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def async_lock(self) -> asyncio.Lock:
        """One asyncio lock per running loop (an asyncio.Lock cannot cross loops)."""
        loop = asyncio.get_running_loop()
        with self._locks_guard:
            found = self._async_locks.get(loop)
            if found is None:
                found = self._async_locks[loop] = asyncio.Lock()
            return found

    def needs_refresh(self) -> bool:
        if not self.access_token:
            return True
        return self.expires_at is not None and time.time() >= self.expires_at

    def refresh_request(self, like: httpx.Request) -> httpx.Request:
        """The refresh POST, with the same timeouts as the request it unblocks."""
        body = {
            "grant_type": "refresh_token",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "refresh_token": self.refresh_token,
        }
        return httpx.Request(
            "POST",
            self.token_url,
            content=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            extensions={k: v for k, v in like.extensions.items() if k == "timeout"},
        )

    def accept(self, response: httpx.Response) -> str | None:
        """Take the token endpoint's answer and store the rotated tokens; None if refused."""
        payload: Any = None
        if len(response.content) <= _MAX_TOKEN_RESPONSE:
            try:
                payload = json.loads(response.content)
            except (json.JSONDecodeError, UnicodeDecodeError):
                payload = None
        token = payload.get("access_token") if isinstance(payload, dict) else None
        if response.status_code != 200 or not isinstance(token, str) or not token:
            code = payload.get("error") if isinstance(payload, dict) else None
            why = f"HTTP {response.status_code}"
            if isinstance(code, str) and code.replace("_", "").isalnum() and len(code) < 64:
                why += f" {code}"
            self.refusal = why
            return None
        assert isinstance(payload, dict)
        rotated = payload.get("refresh_token")
        expires_in = payload.get("expires_in")
        self.access_token = token
        if isinstance(rotated, str) and rotated:
            self.refresh_token = rotated  # Atlassian rotates: the old one stops working
        if isinstance(expires_in, int | float) and expires_in > 0:
            self.expires_at = time.time() + expires_in - min(60.0, expires_in * 0.1)
        else:
            self.expires_at = None
        self.generation += 1
        if self.on_refresh is not None:
            self.on_refresh(self.record())
        return token

    def adopt_stored(self) -> bool:
        """After a refusal: take a grant another process rotated into the store since."""
        if self.reload is None:
            return False
        record = self.reload()
        if (
            record is None
            or record.kind != "oauth"
            or record.client_id != self.client_id
            or not record.refresh_token
            or record.refresh_token == self.refresh_token
        ):
            return False
        self.refresh_token = record.refresh_token
        return True

    def give_up(self) -> ReconnectRequired:
        self.dead = (
            f"the OAuth refresh was refused by {origin_of(self.token_url)} ({self.refusal}); "
            "the stored grant no longer works. Reconnect: authorise the app again and store "
            "the new tokens with: harbor-confluence token set --oauth --client-id CLIENT_ID"
        )
        return ReconnectRequired(self.dead)

    def record(self) -> SecretRecord:
        return SecretRecord(
            kind="oauth",
            access_token=self.access_token,
            refresh_token=self.refresh_token,
            client_id=self.client_id,
            client_secret=self.client_secret,
            expires_at=self.expires_at,
        )


RefreshSteps = Generator[httpx.Request, httpx.Response, str]


class Credential(httpx.Auth):
    """An httpx auth flow that holds the secret privately."""

    requires_request_body = True  # a 401 retry re-sends the same body
    requires_response_body = True  # the token endpoint's answer is read inside the flow
    __slots__ = ("__header", "__oauth", "_origin", "kind", "source")

    def __init__(
        self,
        kind: Kind,
        header_value: str | None,
        source: str,
        oauth: _OAuthSession | None = None,
    ) -> None:
        self.kind: Kind = kind
        self.source = source
        self.__header = header_value
        self.__oauth = oauth
        self._origin: str | None = None

    @classmethod
    def basic(cls, email: str, token: str, source: str) -> Credential:
        raw = base64.b64encode(f"{email}:{token}".encode()).decode("ascii")
        return cls("basic", f"Basic {raw}", source)

    @classmethod
    def bearer(cls, token: str, source: str) -> Credential:
        return cls("bearer", f"Bearer {token}", source)

    @classmethod
    def oauth(
        cls,
        *,
        refresh_token: str,
        client_id: str,
        client_secret: str,
        token_url: str,
        source: str,
        access_token: str | None = None,
        expires_at: float | None = None,
        on_refresh: Callable[[SecretRecord], None] | None = None,
        reload: Callable[[], SecretRecord | None] | None = None,
    ) -> Credential:
        """A refreshing credential.

        ``on_refresh`` receives each rotated record to store; ``reload`` reads the store
        again when a refresh is refused, in case another process rotated the grant first.
        """
        session = _OAuthSession(
            access_token=access_token,
            refresh_token=refresh_token,
            client_id=client_id,
            client_secret=client_secret,
            expires_at=expires_at,
            token_url=token_url,
            on_refresh=on_refresh,
            reload=reload,
        )
        return cls("oauth", None, source, session)

    @classmethod
    def from_record(
        cls,
        record: SecretRecord,
        source: str,
        *,
        token_url: str,
        on_refresh: Callable[[SecretRecord], None] | None = None,
        reload: Callable[[], SecretRecord | None] | None = None,
    ) -> Credential:
        if record.kind == "basic":
            assert record.email is not None
            assert record.api_token is not None
            return cls.basic(record.email, record.api_token, source)
        if record.kind == "bearer":
            assert record.access_token is not None
            return cls.bearer(record.access_token, source)
        assert record.refresh_token is not None
        assert record.client_id is not None
        assert record.client_secret is not None
        return cls.oauth(
            refresh_token=record.refresh_token,
            client_id=record.client_id,
            client_secret=record.client_secret,
            token_url=token_url,
            source=source,
            access_token=record.access_token,
            expires_at=record.expires_at,
            on_refresh=on_refresh,
            reload=reload,
        )

    @property
    def mode(self) -> Literal["basic", "bearer"]:
        """How the header looks on the wire (``oauth`` sends Bearer tokens)."""
        return "basic" if self.kind == "basic" else "bearer"

    def bind(self, origin: str) -> Credential:
        """Return a copy that only ever signs requests to ``origin`` (OAuth state is shared)."""
        bound = Credential(self.kind, self.__header, self.source, self.__oauth)
        bound._origin = origin
        return bound

    def _signs(self, request: httpx.Request) -> bool:
        return self._origin is not None and _request_origin(request) == self._origin

    # -- the auth flows ---------------------------------------------------------------

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Attach the current header (no refresh: that needs :meth:`sync_auth_flow`)."""
        if self._signs(request):
            if self.__oauth is None:
                assert self.__header is not None
                request.headers["Authorization"] = self.__header
            elif self.__oauth.access_token:
                request.headers["Authorization"] = f"Bearer {self.__oauth.access_token}"
        yield request

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        session = self.__oauth
        if session is None or not self._signs(request):
            yield from self.auth_flow(request)
            return
        request.read()
        seen = session.generation
        if session.dead or session.needs_refresh():
            with session.lock:
                yield from _drive_sync(self._refresh(session, seen, request))
        seen = session.generation
        request.headers["Authorization"] = f"Bearer {session.access_token}"
        response = yield request
        if not _should_refresh(response):
            return
        with session.lock:
            yield from _drive_sync(self._refresh(session, seen, request))
        request.headers["Authorization"] = f"Bearer {session.access_token}"
        yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        session = self.__oauth
        if session is None or not self._signs(request):
            for step in self.auth_flow(request):
                yield step
            return
        await request.aread()
        seen = session.generation
        refresh = session.dead or session.needs_refresh()
        # Up to two sends: a stale token is refreshed first; a 401 a new token could fix
        # refreshes once more and sends again.
        for again in (False, True):
            if refresh:
                async with session.async_lock():
                    steps = self._refresh(session, seen, request)
                    outgoing = _first(steps)
                    while outgoing is not None:
                        answer = yield outgoing
                        await answer.aread()
                        outgoing = _next(steps, answer)
                seen = session.generation
            request.headers["Authorization"] = f"Bearer {session.access_token}"
            response = yield request
            refresh = _should_refresh(response)
            if again or not refresh:
                return

    @staticmethod
    def _refresh(session: _OAuthSession, seen: int, like: httpx.Request) -> RefreshSteps:
        """Yield the token request (unless someone refreshed since ``seen``); return the token."""
        if session.dead:
            raise ReconnectRequired(session.dead)
        if session.generation != seen and session.access_token:
            return session.access_token
        response = yield session.refresh_request(like)
        token = session.accept(response)
        if token is None and session.adopt_stored():
            # Another process refreshed first and rotated the token we held: use its one.
            response = yield session.refresh_request(like)
            token = session.accept(response)
        if token is None:
            raise session.give_up()
        return token

    # -- never show the secret --------------------------------------------------------

    def __repr__(self) -> str:
        return f"<Credential kind={self.kind} source={self.source} secret=***>"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("credentials cannot be pickled")


def _should_refresh(response: httpx.Response) -> bool:
    """A 401 that a new access token could fix (not a missing scope)."""
    if response.status_code != 401:
        return False
    category = str(response.headers.get("X-Failure-Category", ""))
    return category.upper() != _SCOPE_FAILURE


def _drive_sync(steps: RefreshSteps) -> Generator[httpx.Request, httpx.Response, None]:
    outgoing = _first(steps)
    while outgoing is not None:
        answer = yield outgoing
        answer.read()
        outgoing = _next(steps, answer)


def _first(steps: RefreshSteps) -> httpx.Request | None:
    try:
        return next(steps)
    except StopIteration:
        return None


def _next(steps: RefreshSteps, answer: httpx.Response) -> httpx.Request | None:
    try:
        return steps.send(answer)
    except StopIteration:
        return None


def credential_from_env(env: Mapping[str, str] | None = None) -> Credential | None:
    """``CONFLUENCE_EMAIL`` + ``CONFLUENCE_API_TOKEN`` (Basic) or ``CONFLUENCE_ACCESS_TOKEN``."""
    env = os.environ if env is None else env
    access = env.get("CONFLUENCE_ACCESS_TOKEN", "").strip()
    token = env.get("CONFLUENCE_API_TOKEN", "").strip()
    email = env.get("CONFLUENCE_EMAIL", "").strip()
    if access:
        return Credential.bearer(access, "env:CONFLUENCE_ACCESS_TOKEN")
    if token:
        if not email:
            raise ConfigError("CONFLUENCE_API_TOKEN is set but CONFLUENCE_EMAIL is not")
        return Credential.basic(email, token, "env:CONFLUENCE_EMAIL+CONFLUENCE_API_TOKEN")
    return None
