"""Credentials, attached to a request at send time and only for the tenant origin.

A credential object can be passed around freely: its repr, str and pickled form never
contain the secret, and it adds the header only to requests for its own origin, so a
redirect or a mistaken URL cannot carry it elsewhere.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Generator, Mapping
from typing import Literal
from urllib.parse import urlsplit

import httpx

from .errors import ConfigError

__all__ = ["Credential", "credential_from_env"]

Kind = Literal["basic", "bearer"]


class Credential(httpx.Auth):
    """An httpx auth flow that holds the secret privately."""

    __slots__ = ("__header", "_origin", "kind", "source")

    def __init__(self, kind: Kind, header_value: str, source: str) -> None:
        self.kind: Kind = kind
        self.source = source
        self.__header = header_value
        self._origin: str | None = None

    @classmethod
    def basic(cls, email: str, token: str, source: str) -> Credential:
        raw = base64.b64encode(f"{email}:{token}".encode()).decode("ascii")
        return cls("basic", f"Basic {raw}", source)

    @classmethod
    def bearer(cls, token: str, source: str) -> Credential:
        return cls("bearer", f"Bearer {token}", source)

    def bind(self, origin: str) -> Credential:
        """Return a copy that only ever signs requests to ``origin``."""
        bound = Credential(self.kind, self.__header, self.source)
        bound._origin = origin
        return bound

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        url = request.url
        origin = f"{url.scheme}://{url.netloc.decode('ascii').lower()}"
        if self._origin is not None and origin == self._origin:
            request.headers["Authorization"] = self.__header
        yield request

    def __repr__(self) -> str:
        return f"<Credential kind={self.kind} source={self.source} secret=***>"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("credentials cannot be pickled")


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


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.lower()}"
