"""Sending: httpx with timeouts, a deadline, a response cap, no redirects, safe retries.

Every request the runner sends is bounded three ways:

- **a deadline** (``Limits.deadline``, default 60 s): wall clock across connecting,
  sending, every byte read and every retry.  The sync path enforces it on each socket
  operation (``bound_by_deadline`` clamps the wait of every read, write and connect to
  what is left); the async path runs each attempt under ``asyncio.timeout``.  Bodies are
  also checked between chunks, so a server dripping one byte at a time cannot hold a
  call past it;
- **a response cap** (``Limits.max_response_bytes``, default 8 MiB) counted on the bytes
  *after* decompression: bodies are streamed raw and inflated here with an output bound,
  so neither a huge body nor a gzip bomb is ever held in memory beyond the cap;
- **retries** that depend on what the answer proves.  A read (GET) is sent again after a
  429 or 503 and after a connection that could not be opened.  A write (every other
  method, PUT and DELETE included) reaches Confluence at most once: it is sent again only
  when the answer proves the first one was not applied — a 429 (Confluence refused it
  unprocessed) or a connection that could not be opened (``httpx.ConnectError``: no byte
  left).  A 500/502/503/504, a timeout, a reset, an oversized or late answer ends it.

Waits honour ``Retry-After`` up to ``RetryPolicy.max_wait`` and never past the deadline.
The sync and async paths share one ``_Exchange``: the arithmetic, the retry decisions,
the body decoding and how a failure is described.
"""

from __future__ import annotations

import asyncio
import email.utils
import select
import time
import zlib
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import httpcore
import httpx

from .request import PreparedRequest

__all__ = [
    "DEFAULT_DEADLINE",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "HttpClients",
    "Limits",
    "RetryPolicy",
    "SendFailure",
    "asend",
    "bound_by_deadline",
    "hold_sockets",
    "send",
]

DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
DEFAULT_DEADLINE = 60.0

_READS = frozenset({"GET", "HEAD"})
# The only answer that proves a write was not applied (besides a connection never opened).
_WRITE_RETRY_STATUSES = frozenset({429})
_ACCEPT_ENCODING = "gzip, deflate"
USER_AGENT = "harbor-confluence"
# A timeout that fires this close to the deadline is the deadline's.
_DEADLINE_SLACK = 0.05

# The deadline (time.monotonic()) of the request this context is sending, if any.
_DEADLINE: ContextVar[float | None] = ContextVar("harbor_send_deadline", default=None)


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
    """How often and how long to wait before sending again (see the module docstring for
    *whether*: writes only ever retry a 429 or a connection never opened)."""

    max_retries: int = 3
    max_wait: float = 30.0
    default_wait: float = 1.0  # doubled per attempt when Retry-After is absent
    statuses: frozenset[int] = frozenset({429, 503})  # for reads; writes: 429 only
    connect_wait: float = 0.25  # doubled per attempt after a connection was refused


@dataclass(frozen=True, slots=True)
class Limits:
    """What one request may cost: its whole answer, and the wall clock it may take."""

    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    deadline: float = DEFAULT_DEADLINE

    def __post_init__(self) -> None:
        if self.max_response_bytes < 1:
            raise ValueError("max_response_bytes must be at least 1")
        if not self.deadline > 0:
            raise ValueError("deadline must be a positive number of seconds")


@dataclass(frozen=True, slots=True)
class SendFailure:
    """No complete answer to summarise: a timeout, a refused or broken connection, an
    answer over the cap or past the deadline.

    ``maybe_sent`` says whether the request may have reached Confluence (an approved
    write then ends ``unknown``); ``status`` is the answer's status when headers came.
    """

    kind: str
    message: str
    maybe_sent: bool
    status: int | None = None


# -- the deadline on every socket operation (sync) ------------------------------------------


def _bounded(timeout: float | None, error: type[Exception]) -> float | None:
    """``timeout`` clamped to what is left of the current request's deadline."""
    end = _DEADLINE.get()
    if end is None:
        return timeout
    left = end - time.monotonic()
    if left <= 0:
        raise error("the request's deadline has passed")
    return left if timeout is None or timeout > left else timeout


class _DeadlineStream(httpcore.NetworkStream):
    __slots__ = ("_inner",)

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(
            ssl_context, server_hostname, _bounded(timeout, httpcore.ConnectTimeout)
        )
        return _DeadlineStream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    __slots__ = ("_inner",)

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(
            host, port, _bounded(timeout, httpcore.ConnectTimeout), local_address, socket_options
        )
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_unix_socket(
            path, _bounded(timeout, httpcore.ConnectTimeout), socket_options
        )
        return _DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def bound_by_deadline(client: httpx.Client) -> httpx.Client:
    """Make every socket wait of ``client``'s pools end at the sending request's deadline.

    httpx's timeouts are per operation (a read that gets one byte every 0.5 s never times
    out); this wraps the network backend of each httpcore pool the client holds (its
    transport and any proxy mounts) so that each connect, read and write waits at most
    what is left of the deadline.  Transports without an httpcore pool (a test's
    ``MockTransport``) are left as they are: the deadline is then checked between chunks.
    """
    _wrap_backends(client, httpcore.NetworkBackend, _DeadlineBackend)
    return client


def _wrap_backends(client: httpx.Client | httpx.AsyncClient, kind: type, wrapper: type) -> None:
    """Wrap the network backend of each httpcore pool ``client`` holds (its transport and
    any proxy mounts) in ``wrapper``, once.  Transports without an httpcore pool (a
    test's ``MockTransport``) are left as they are."""
    transports: list[Any] = [getattr(client, "_transport", None)]
    transports += list((getattr(client, "_mounts", None) or {}).values())
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if isinstance(backend, kind) and not isinstance(backend, wrapper):
            pool._network_backend = wrapper(backend)  # type: ignore[union-attr]


# -- the async pool's idle-connection check ------------------------------------------------


def _readable(sock: Any) -> bool:
    """Whether ``sock`` has bytes (or its end) waiting: httpcore's check, on a held socket."""
    fd = -1 if sock is None else sock.fileno()
    if fd < 0:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class _HeldSocketStream(httpcore.AsyncNetworkStream):
    """An anyio stream whose raw socket is looked up once, at connect.

    httpcore's pool asks every idle connection ``is_readable`` each time it assigns or
    releases a request; anyio answers that through its typed-attribute lookup (a dict of
    attribute getters built per ask).  With 64 connections that was most of what the
    event loop spent in the pool; holding the socket makes each ask one ``poll``.
    """

    __slots__ = ("_inner", "_sock")

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._sock = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        return _HeldSocketStream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return _readable(self._sock)
        if info == "socket":
            return self._sock
        return self._inner.get_extra_info(info)


class _HeldSocketBackend(httpcore.AsyncNetworkBackend):
    """Connects as ``inner`` does; each stream holds its socket (:class:`_HeldSocketStream`)."""

    __slots__ = ("_inner",)

    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        return _HeldSocketStream(await self._inner.connect_tcp(*args, **kwargs))

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        return _HeldSocketStream(await self._inner.connect_unix_socket(*args, **kwargs))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def hold_sockets(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """Give ``client``'s httpcore pools streams that answer ``is_readable`` with one poll
    (see :class:`_HeldSocketStream`); other transports are left as they are."""
    _wrap_backends(client, httpcore.AsyncNetworkBackend, _HeldSocketBackend)
    return client


# -- one request, its attempts and its answer -----------------------------------------------


class _Refused(Exception):
    """The answer cannot be accepted (too large, undecodable, too late)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class _Sent:
    """httpcore's trace hook: did this attempt start putting the request on the wire?"""

    __slots__ = ("sent", "traced")

    def __init__(self) -> None:
        self.sent = False
        self.traced = False

    def note(self, name: str) -> None:
        self.traced = True
        if name.endswith(".send_request_headers.started"):
            self.sent = True

    def __call__(self, name: str, info: dict[str, Any]) -> None:
        self.note(name)

    async def atrace(self, name: str, info: dict[str, Any]) -> None:
        self.note(name)


class _Body:
    """The answer's bytes, decoded here with a bound on the decoded size.

    Only ``gzip`` and ``deflate`` are asked for (``Accept-Encoding``); zlib inflates at
    most what is left under the cap per call, so a bomb never expands past it.
    """

    __slots__ = ("_cap", "_encoding", "_inflate", "_parts", "size")

    def __init__(self, response: httpx.Response, cap: int) -> None:
        self._cap = cap
        self._parts: list[bytes] = []
        self.size = 0
        encoding = response.headers.get("Content-Encoding", "").strip().lower()
        self._encoding = "" if encoding == "identity" else encoding
        self._inflate: Any = None
        if self._encoding in ("gzip", "x-gzip"):
            self._inflate = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif self._encoding == "deflate":
            self._inflate = zlib.decompressobj()
        elif self._encoding:
            raise _Refused("decoding", f"unsupported Content-Encoding {encoding[:40]!r}")
        length = response.headers.get("Content-Length", "")
        if not self._encoding and length.isdigit() and int(length) > cap:
            raise _Refused("too_large", _too_large(cap))

    @property
    def encoded(self) -> bool:
        return bool(self._encoding)

    def feed(self, raw: bytes) -> None:
        if self._inflate is None:
            self._keep(raw)
            return
        try:
            self._expand(raw)
        except zlib.error as exc:
            if self._encoding != "deflate" or self.size:
                raise _Refused("decoding", f"the compressed answer is corrupt: {exc}") from None
            # "deflate" means zlib-wrapped, but some servers send it raw (httpx accepts both).
            self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
            self._encoding = "deflate-raw"
            self.feed(raw)

    def _expand(self, data: bytes) -> None:
        while True:
            self._keep(self._inflate.decompress(data, self._cap - self.size + 1))
            data = self._inflate.unconsumed_tail
            if not data:
                return

    def _keep(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.size += len(chunk)
        if self.size > self._cap:
            raise _Refused("too_large", _too_large(self._cap))
        self._parts.append(chunk)

    def finish(self) -> bytes:
        if self._inflate is not None:
            try:
                while out := self._inflate.decompress(b"", self._cap - self.size + 1):
                    self._keep(out)
                self._keep(self._inflate.flush())
            except zlib.error as exc:
                raise _Refused("decoding", f"the compressed answer is corrupt: {exc}") from None
        return b"".join(self._parts)


def _too_large(cap: int) -> str:
    return f"response larger than {cap} bytes after decompression; not read further"


def _seconds(value: float) -> str:
    return f"{value:g}"


class _Exchange:
    """One request: its deadline, its attempts, and the decisions both paths share."""

    __slots__ = ("attempt", "end", "limits", "prepared", "read", "retry")

    def __init__(self, prepared: PreparedRequest, retry: RetryPolicy, limits: Limits) -> None:
        self.prepared = prepared
        self.retry = retry
        self.limits = limits
        self.read = prepared.method in _READS
        self.end = time.monotonic() + limits.deadline
        self.attempt = 0

    def left(self) -> float:
        return self.end - time.monotonic()

    def request(self, client: httpx.Client | httpx.AsyncClient, sent: _Sent) -> httpx.Request:
        """The request as it goes on the wire: built here, not by ``client.build_request``
        (the URL is already absolute and final; there are no cookies or default headers to
        merge), with per-operation timeouts that never reach past the deadline."""
        prepared = self.prepared
        headers = {
            "Accept": "application/json",
            "Accept-Encoding": _ACCEPT_ENCODING,
            "User-Agent": USER_AGENT,
        }
        headers.update(prepared.headers)
        if prepared.content_type:
            headers["Content-Type"] = prepared.content_type
        left = max(self.left(), 0.001)
        timeouts = {
            k: left if v is None or v > left else v for k, v in client.timeout.as_dict().items()
        }
        trace = sent.atrace if isinstance(client, httpx.AsyncClient) else sent
        return httpx.Request(
            prepared.method,
            prepared.url,
            content=prepared.body,
            headers=headers,
            extensions={"timeout": timeouts, "trace": trace},
        )

    # -- retry decisions ---------------------------------------------------------------------

    def _backoff(self, wait: float) -> float | None:
        """``wait`` if another attempt fits the retry budget and the deadline."""
        if self.attempt >= self.retry.max_retries or wait > self.retry.max_wait:
            return None
        if wait >= self.left():
            return None  # the next attempt would start past the deadline
        return wait

    def wait_after(self, response: httpx.Response) -> float | None:
        """Seconds to wait before sending again after this answer, or None to keep it."""
        status = response.status_code
        if status not in self.retry.statuses:
            return None
        if not self.read and status not in _WRITE_RETRY_STATUSES:
            return None
        return self._backoff(_retry_after(response, self.retry, self.attempt))

    def wait_after_failure(self, failure: SendFailure, exc: BaseException | None) -> float | None:
        """A connection that could not be opened is the one failure worth another try."""
        if not isinstance(exc, httpx.ConnectError) or failure.maybe_sent:
            return None
        return self._backoff(self.retry.connect_wait * 2.0**self.attempt)

    # -- how it ended --------------------------------------------------------------------

    def answer(self, response: httpx.Response, body: bytes, decoded: bool) -> httpx.Response:
        """The complete answer, decoded, as an ordinary (closed, read) response."""
        headers = response.headers
        if decoded:
            headers = httpx.Headers(
                [
                    (k, v)
                    for k, v in response.headers.multi_items()
                    if k.lower() not in ("content-encoding", "content-length")
                ]
            )
        extensions = {
            k: v for k, v in response.extensions.items() if k in ("http_version", "reason_phrase")
        }
        return httpx.Response(
            response.status_code,
            headers=headers,
            content=body,
            request=response.request,
            extensions=extensions,
        )

    def ended(
        self, exc: _Refused | httpx.HTTPError, status: int | None, sent: _Sent
    ) -> tuple[SendFailure, float | None]:
        """How an attempt that raised ended, and the wait before another (None: none)."""
        if isinstance(exc, _Refused):
            return self.refused(exc, status, sent), None
        failure = self.failure(exc, sent, status)
        return failure, self.wait_after_failure(failure, exc)

    def refused(self, exc: _Refused, status: int | None, sent: _Sent) -> SendFailure:
        maybe = status is not None or sent.sent or not sent.traced
        return SendFailure(exc.kind, exc.message, maybe, status)

    def late_message(self, nothing_sent: bool = False) -> str:
        note = " (nothing was sent)" if nothing_sent else ""
        return f"no complete answer within {_seconds(self.limits.deadline)} s{note}"

    def late(self, sent: _Sent, status: int | None) -> SendFailure:
        maybe = sent.sent or status is not None or not sent.traced
        return SendFailure("deadline", self.late_message(not maybe), maybe, status)

    def failure(self, exc: httpx.HTTPError, sent: _Sent, status: int | None) -> SendFailure:
        name = type(exc).__name__
        if isinstance(exc, httpx.TimeoutException) and self.left() <= _DEADLINE_SLACK:
            return self.late(sent, status)
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
            return SendFailure("connect", f"could not connect: {name}", False)
        if isinstance(exc, httpx.TimeoutException):
            return SendFailure(
                "timeout", f"timed out waiting for Confluence ({name})", True, status
            )
        if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
            return SendFailure("transport", f"transport error: {name}", sent.sent, status)
        if isinstance(exc, httpx.DecodingError):
            return SendFailure("decoding", f"could not decode the answer: {name}", True, status)
        when = "while reading the answer" if status is not None else "before an answer came"
        return SendFailure("transport", f"the connection failed {when} ({name})", True, status)


def _retry_after(response: httpx.Response, retry: RetryPolicy, attempt: int) -> float:
    """The wait Confluence asks for, else exponential backoff."""
    value = (response.headers.get("Retry-After") or "").strip()
    if value.isdigit():
        return float(value)
    if value:
        try:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, float((when - datetime.now(UTC)).total_seconds()))
        except (TypeError, ValueError):
            pass
    return retry.default_wait * 2.0**attempt


def _transport(client: httpx.Client | httpx.AsyncClient, request: httpx.Request) -> Any:
    """The transport ``client`` would use for ``request`` (its pool, or a proxy mount)."""
    if client.is_closed:
        raise RuntimeError("Cannot send a request, as the client has been closed.")
    return client._transport_for_url(request.url)


def _exchange(client: httpx.Client, request: httpx.Request) -> httpx.Response:
    """One request through ``client``'s transport, its answer's body left unread.

    Not ``client.send``: the runner follows no redirects, keeps no cookies, drives its own
    auth flow and has no event hooks, and what ``Client.send`` does for those (a cookie
    jar pass, a redirect loop, an auth flow, stream wrapping) measured about 90 µs per
    request on loopback, more than the rest of the runner.  The pool, its limits, the
    proxy mounts, the timeouts and the event hooks are still the client's.
    """
    hooks = client.event_hooks
    for hook in hooks["request"]:
        hook(request)
    response: httpx.Response = _transport(client, request).handle_request(request)
    response.request = request
    for hook in hooks["response"]:
        hook(response)
    return response


async def _aexchange(client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    """Async twin of :func:`_exchange`."""
    hooks = client.event_hooks
    for hook in hooks["request"]:
        await hook(request)
    response: httpx.Response = await _transport(client, request).handle_async_request(request)
    response.request = request
    for hook in hooks["response"]:
        await hook(response)
    return response


def send(
    client: httpx.Client,
    prepared: PreparedRequest,
    auth: httpx.Auth | None,
    retry: RetryPolicy,
    limits: Limits | None = None,
) -> httpx.Response | SendFailure:
    """Send ``prepared`` (again only where the module docstring allows) and read its
    answer within ``limits``.  Whatever the network or the server does, the result is a
    complete, decoded response or a ``SendFailure``."""
    ex = _Exchange(prepared, retry, limits or Limits())
    while True:
        token = _DEADLINE.set(ex.end)
        try:
            outcome, wait = _attempt(client, ex, auth, _Sent())
        finally:
            _DEADLINE.reset(token)
        if wait is None:
            return outcome
        time.sleep(wait)
        ex.attempt += 1


def _attempt(
    client: httpx.Client, ex: _Exchange, auth: httpx.Auth | None, sent: _Sent
) -> tuple[httpx.Response | SendFailure, float | None]:
    status: int | None = None
    response: httpx.Response | None = None
    try:
        response = _open(client, ex, auth, sent)
        status = response.status_code
        wait = ex.wait_after(response)
        return (response, wait) if wait is not None else (_read(response, ex), None)
    except (_Refused, httpx.HTTPError) as exc:
        return ex.ended(exc, status, sent)
    finally:
        if response is not None:
            response.close()


def _in_memory(response: httpx.Response, ex: _Exchange) -> bool:
    """A transport that answered with its body already read (``httpx.MockTransport``):
    nothing to stream, only the cap to check."""
    if not response.is_stream_consumed:
        return False
    if len(response.content) > ex.limits.max_response_bytes:
        raise _Refused("too_large", _too_large(ex.limits.max_response_bytes))
    return True


def _plain_and_small(response: httpx.Response, cap: int) -> bool:
    """No encoding, no chunking, a Content-Length within the cap: httpx's own read holds
    no more than that length (h11 stops there), so the answer needs no copy."""
    headers = response.headers
    if headers.get("Content-Encoding", "identity").strip().lower() not in ("identity", ""):
        return False
    length = headers.get("Content-Length", "")
    return "Transfer-Encoding" not in headers and length.isdigit() and int(length) <= cap


def _read(response: httpx.Response, ex: _Exchange) -> httpx.Response:
    if _in_memory(response, ex):
        return response
    if _plain_and_small(response, ex.limits.max_response_bytes):
        response.read()  # each socket wait is bounded by the deadline (bound_by_deadline)
        if ex.left() <= 0:
            raise _Refused("deadline", ex.late_message())
        return response
    body = _Body(response, ex.limits.max_response_bytes)
    for chunk in response.iter_raw():
        body.feed(chunk)
        if ex.left() <= 0:
            raise _Refused("deadline", ex.late_message())
    return ex.answer(response, body.finish(), body.encoded)


def _open(
    client: httpx.Client, ex: _Exchange, auth: httpx.Auth | None, sent: _Sent
) -> httpx.Response:
    """The answer's headers (its body still unread), driving ``auth``'s flow here rather
    than in httpx, which reads every intermediate answer whole: a refresh's token answer
    is read under the cap, a 401 before a retry is closed unread."""
    original = ex.request(client, sent)
    if auth is None:
        return _exchange(client, original)
    flow = auth.sync_auth_flow(original)
    try:
        request = next(flow)
        while True:
            raw = _exchange(client, request)
            try:
                response = raw if request is original else _read(raw, ex)
                request = flow.send(response)
            except StopIteration:
                return response
            except BaseException:
                raw.close()
                raise
            raw.close()
    finally:
        flow.close()


async def asend(
    client: httpx.AsyncClient,
    prepared: PreparedRequest,
    auth: httpx.Auth | None,
    retry: RetryPolicy,
    limits: Limits | None = None,
) -> httpx.Response | SendFailure:
    """Async twin of :func:`send`: each attempt runs under ``asyncio.timeout``."""
    ex = _Exchange(prepared, retry, limits or Limits())
    while True:
        token = _DEADLINE.set(ex.end)
        try:
            outcome, wait = await _aattempt(client, ex, auth, _Sent())
        finally:
            _DEADLINE.reset(token)
        if wait is None:
            return outcome
        await asyncio.sleep(wait)
        ex.attempt += 1


async def _aattempt(
    client: httpx.AsyncClient, ex: _Exchange, auth: httpx.Auth | None, sent: _Sent
) -> tuple[httpx.Response | SendFailure, float | None]:
    status: int | None = None
    response: httpx.Response | None = None
    try:
        async with asyncio.timeout(max(ex.left(), 0.0)):
            response = await _aopen(client, ex, auth, sent)
            status = response.status_code
            if (wait := ex.wait_after(response)) is not None:
                return response, wait
            return await _aread(response, ex), None
    except TimeoutError:
        return ex.late(sent, status), None
    except (_Refused, httpx.HTTPError) as exc:
        return ex.ended(exc, status, sent)
    finally:
        if response is not None:
            await response.aclose()


async def _aread(response: httpx.Response, ex: _Exchange) -> httpx.Response:
    if _in_memory(response, ex):
        return response
    if _plain_and_small(response, ex.limits.max_response_bytes):
        await response.aread()
        return response
    body = _Body(response, ex.limits.max_response_bytes)
    async for chunk in response.aiter_raw():
        body.feed(chunk)
    return ex.answer(response, body.finish(), body.encoded)


async def _aopen(
    client: httpx.AsyncClient, ex: _Exchange, auth: httpx.Auth | None, sent: _Sent
) -> httpx.Response:
    """Async twin of :func:`_open`."""
    original = ex.request(client, sent)
    if auth is None:
        return await _aexchange(client, original)
    flow = auth.async_auth_flow(original)
    try:
        request = await flow.__anext__()
        while True:
            raw = await _aexchange(client, request)
            try:
                response = raw if request is original else await _aread(raw, ex)
                request = await flow.asend(response)
            except StopAsyncIteration:
                return response
            except BaseException:
                await raw.aclose()
                raise
            await raw.aclose()
    finally:
        await flow.aclose()
