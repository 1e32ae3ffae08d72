"""Sending: httpx with timeouts, no redirects, and bounded Retry-After retries.

Only idempotent methods are retried (429/503), so a write is never sent twice by the
runner on its own.  The sync and async paths share the retry arithmetic.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

import httpx

from .request import PreparedRequest

__all__ = ["HttpClients", "RetryPolicy", "SendFailure", "asend", "send"]

_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class HttpClients:
    """A sync and an async httpx client, each made on first use, closed together.

    ``Port`` and ``NodeClient`` both hold one pair; they say how to make them.
    """

    _client: httpx.Client | None = None
    _aclient: httpx.AsyncClient | None = None

    def _new_client(self) -> httpx.Client:
        raise NotImplementedError

    def _new_aclient(self) -> httpx.AsyncClient:
        raise NotImplementedError

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = self._new_client()
        return self._client

    @property
    def aclient(self) -> httpx.AsyncClient:
        if self._aclient is None:
            self._aclient = self._new_aclient()
        return self._aclient

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        if self._aclient is not None:
            await self._aclient.aclose()
            self._aclient = None
        self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = 3
    max_wait: float = 30.0
    default_wait: float = 1.0
    statuses: frozenset[int] = frozenset({429, 503})


@dataclass(frozen=True, slots=True)
class SendFailure:
    """The request could not complete (timeout, refused connection); nothing to summarise."""

    kind: str
    message: str
    maybe_sent: bool


def _wait(response: httpx.Response, retry: RetryPolicy, attempt: int, method: str) -> float | None:
    """Seconds to wait before retrying, or None to stop."""
    if response.status_code not in retry.statuses or method not in _IDEMPOTENT:
        return None
    if attempt >= retry.max_retries:
        return None
    value = response.headers.get("Retry-After")
    wait: float = retry.default_wait * (2**attempt)
    if value:
        value = value.strip()
        if value.isdigit():
            wait = float(value)
        else:
            try:
                when = email.utils.parsedate_to_datetime(value)
                wait = max(0.0, float((when - datetime.now(UTC)).total_seconds()))
            except (TypeError, ValueError):
                pass
    if wait > retry.max_wait:
        return None  # the server asks for longer than we are willing to block
    return wait


def _request(client: httpx.Client | httpx.AsyncClient, prepared: PreparedRequest) -> httpx.Request:
    headers = {"Accept": "application/json", **prepared.headers}
    if prepared.content_type:
        headers["Content-Type"] = prepared.content_type
    return client.build_request(
        prepared.method, prepared.url, content=prepared.body, headers=headers
    )


def _failure(exc: httpx.HTTPError) -> SendFailure:
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return SendFailure("connect", f"could not connect: {type(exc).__name__}", False)
    if isinstance(exc, httpx.TimeoutException):
        name = type(exc).__name__
        return SendFailure("timeout", f"timed out waiting for Confluence ({name})", True)
    return SendFailure("transport", f"transport error: {type(exc).__name__}", True)


def send(
    client: httpx.Client,
    prepared: PreparedRequest,
    auth: httpx.Auth | None,
    retry: RetryPolicy,
) -> httpx.Response | SendFailure:
    attempt = 0
    while True:
        try:
            response = client.send(_request(client, prepared), auth=auth, follow_redirects=False)
            response.read()
        except httpx.HTTPError as exc:
            return _failure(exc)
        wait = _wait(response, retry, attempt, prepared.method)
        if wait is None:
            return response
        response.close()
        time.sleep(wait)
        attempt += 1


async def asend(
    client: httpx.AsyncClient,
    prepared: PreparedRequest,
    auth: httpx.Auth | None,
    retry: RetryPolicy,
) -> httpx.Response | SendFailure:
    attempt = 0
    while True:
        try:
            response = await client.send(
                _request(client, prepared), auth=auth, follow_redirects=False
            )
            await response.aread()
        except httpx.HTTPError as exc:
            return _failure(exc)
        wait = _wait(response, retry, attempt, prepared.method)
        if wait is None:
            return response
        await response.aclose()
        await asyncio.sleep(wait)
        attempt += 1
