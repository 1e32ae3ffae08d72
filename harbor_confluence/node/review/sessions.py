"""Signed-in operators of the review page: server-side sessions, CSRF tokens, sign-in limits.

Why it is built this way:

- The cookie holds only a random id (256 bits); everything else stays in the node's
  memory, keyed by the id's SHA-256 (a memory dump does not hand out live cookies).  A
  restart signs everyone out, which is fine for a handful of operators.
- Sessions end after ``idle`` seconds without a request and ``lifetime`` seconds in any
  case; each request re-checks that the operator's token is still on file, so
  ``node revoke`` signs them out too.
- Each session has its own CSRF token that every form carries, compared with
  ``hmac.compare_digest``.  The cookie is also ``SameSite=Strict``; both have to fail for
  a forged form to count.
- Sign-in failures are limited per name (and overall), so a password cannot be guessed
  at the speed of the network; argon2id makes each guess slow on top.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["COOKIE", "LOGIN_COOKIE", "Session", "SessionStore", "SignInLimiter", "same_token"]

COOKIE = "harbor_review"
LOGIN_COOKIE = "harbor_review_login"  # the sign-in form's CSRF token (double submit)
COOKIE_PATH = "/review"


def cookie_name(base: str, secure: bool) -> str:
    """``__Secure-`` names over TLS: a browser refuses them without the Secure flag."""
    return f"__Secure-{base}" if secure else base


def same_token(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a CSRF token (a missing one never matches)."""
    if not given or not expected:
        return False
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


def _key(cookie: str) -> str:
    return hashlib.sha256(cookie.encode("utf-8", "replace")).hexdigest()


@dataclass
class Session:
    """One signed-in operator: who (name and token id), the CSRF token, timestamps."""

    name: str
    token_id: str
    csrf: str
    created: float
    seen: float
    flashes: list[tuple[str, str]] = field(default_factory=list)

    def flash(self, kind: str, text: str) -> None:
        """A message for the next page (post/redirect/get)."""
        self.flashes = [*self.flashes[-4:], (kind, text)]

    def take_flashes(self) -> list[tuple[str, str]]:
        out, self.flashes = self.flashes, []
        return out


class SessionStore:
    """Sessions in memory, bounded in number, with idle and absolute expiry."""

    def __init__(
        self,
        *,
        idle: float = 30 * 60,
        lifetime: float = 12 * 3600,
        limit: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.idle = idle
        self.lifetime = lifetime
        self.limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, name: str, token_id: str) -> tuple[str, Session]:
        """A new session (a new id at every sign-in: no fixation); returns the cookie value."""
        cookie = secrets.token_urlsafe(32)
        now = self._clock()
        session = Session(name, token_id, secrets.token_urlsafe(32), now, now)
        with self._lock:
            self._purge(now)
            if len(self._sessions) >= self.limit:  # drop the least recently used
                oldest = min(self._sessions, key=lambda k: self._sessions[k].seen)
                del self._sessions[oldest]
            self._sessions[_key(cookie)] = session
        return cookie, session

    def get(self, cookie: str | None, *, touch: bool = True) -> Session | None:
        """The live session for a cookie value, or None (unknown, idle or too old)."""
        if not cookie or len(cookie) > 200:
            return None
        key = _key(cookie)
        now = self._clock()
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None
            if now - session.seen > self.idle or now - session.created > self.lifetime:
                del self._sessions[key]
                return None
            if touch:
                session.seen = now
            return session

    def drop(self, cookie: str | None) -> None:
        if cookie:
            with self._lock:
                self._sessions.pop(_key(cookie), None)

    def drop_token(self, token_id: str) -> None:
        """End every session of one token (revoked or no longer an operator)."""
        with self._lock:
            for key in [k for k, s in self._sessions.items() if s.token_id == token_id]:
                del self._sessions[key]

    def _purge(self, now: float) -> None:
        dead = [
            k
            for k, s in self._sessions.items()
            if now - s.seen > self.idle or now - s.created > self.lifetime
        ]
        for key in dead:
            del self._sessions[key]


class SignInLimiter:
    """At most ``per_name`` failed sign-ins per name, and ``overall`` in all, per window."""

    def __init__(
        self,
        *,
        per_name: int = 5,
        overall: int = 100,
        window: float = 15 * 60,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_name = per_name
        self.overall = overall
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()

    def _trim(self, times: deque[float], now: float) -> None:
        while times and now - times[0] > self.window:
            times.popleft()

    def blocked(self, name: str) -> bool:
        """Whether a sign-in for ``name`` is refused before it is even checked."""
        now = self._clock()
        with self._lock:
            self._trim(self._all, now)
            times = self._failures.get(name)
            if times is not None:
                self._trim(times, now)
            return len(self._all) >= self.overall or (
                times is not None and len(times) >= self.per_name
            )

    def failed(self, name: str) -> None:
        now = self._clock()
        with self._lock:
            if len(self._failures) > 10_000:
                self._failures.clear()
            self._failures.setdefault(name, deque()).append(now)
            self._all.append(now)

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(name, None)
