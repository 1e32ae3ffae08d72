"""The HTTP side: a keep-alive ThreadingHTTPServer that authenticates, injects faults,
routes, and records every exchange.

Order per request: injected delay, injected failure, authentication, routing. Faults come
first because a real edge (rate limiter, load balancer) answers before Confluence looks
at credentials.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import unquote

from . import (
    v1_content,
    v1_content_read,
    v1_pages,
    v1_search,
    v1_users,
    v2_attachments,
    v2_blogposts,
    v2_comments,
    v2_hierarchy,
    v2_misc,
    v2_pages,
    v2_properties,
    v2_spaces,
)
from .defaults import (
    DEFAULT_ACCESS_TOKEN,
    DEFAULT_API_TOKEN,
    DEFAULT_EMAIL,
    ENV_ACCESS_TOKEN,
    ENV_API_TOKEN,
    ENV_EMAIL,
)
from .exchange import Exchange
from .identity import Gateway, Identity
from .routes import Context, RouteMatch, Router
from .seed import account_id_for, seed_store
from .store import CqlRecord, Store, User
from .wire import JSON_CONTENT_TYPE, ApiError, Query, SimRequest, SimResponse

__all__ = ["MAX_BODY_BYTES", "Simulator", "build_router", "serve"]

_log = logging.getLogger(__name__)

MAX_BODY_BYTES = 5 * 1024 * 1024  # the spec's 413: "over 5 MB"
_UNAUTHORIZED = b'{"code":401,"message":"Unauthorized; scope does not match"}'
_FAULT_TITLES = {
    429: "Rate limit exceeded",
    503: "Service Unavailable",
    500: "Internal Server Error",
}


def build_router() -> Router:
    """Every simulated operation. New API areas register here with one line."""
    router = Router()
    v2_pages.register(router)
    v2_hierarchy.register(router)
    v2_spaces.register(router)
    v2_blogposts.register(router)
    v2_properties.register(router)
    v2_comments.register(router)
    v2_attachments.register(router)
    v2_misc.register(router)
    v1_content_read.register(router)
    v1_content.register(router)
    v1_pages.register(router)
    v1_search.register(router)
    v1_users.register(router)
    return router


def build_file_router() -> Router:
    """Paths outside the REST APIs (attachment download links): no operation, no scope."""
    router = Router()
    v1_pages.file_routes(router)
    return router


class _BodyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # 64 clients connecting at once must not be refused (backlog 5)

    def __init__(self, address: tuple[str, int], simulator: Simulator) -> None:
        self.simulator = simulator
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "confluence-cloud-simulator"
    sys_version = ""
    timeout = 60  # idle keep-alive connections are dropped after a minute
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without TCP_NODELAY the body waits for the
        # client's delayed ACK (~40 ms per request on a kept-alive connection).
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.simulator._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.simulator._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log; `Simulator(log=...)` replaces it."""

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_OPTIONS(self) -> None:
        self._handle()

    def _handle(self) -> None:
        sim = self.server.simulator
        received_at = time.monotonic()
        sim._arrived()
        path, _, query = self.path.partition("?")
        headers = tuple(self.headers.items())
        try:
            body = self._read_body()
        except _BodyError as exc:
            body = b""
            self.close_connection = True
            response = ApiError(exc.status, str(exc)).to_response(path)
        else:
            response = sim._dispatch(self.command, path, query, headers, body)
        wire_headers = self._final_headers(response)
        sent_body = (
            b"" if self.command == "HEAD" or response.status in (204, 304) else response.body
        )
        sim._record(
            Exchange(
                method=self.command,
                path=path,
                query=query,
                request_headers=headers,
                request_body=body,
                status=response.status,
                response_headers=wire_headers,
                response_body=sent_body,
                received_at=received_at,
                duration=time.monotonic() - received_at,
            )
        )
        try:
            self.send_response_only(response.status)
            for name, value in wire_headers:
                self.send_header(name, value)
            self.end_headers()
            if sent_body:
                self.wfile.write(sent_body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            # The client gave up (e.g. its timeout fired during an injected delay).
            self.close_connection = True

    def _final_headers(self, response: SimResponse) -> tuple[tuple[str, str], ...]:
        headers = [
            ("Date", formatdate(usegmt=True)),
            ("Server", self.server_version),
            *response.headers,
            ("ATL-TraceId", uuid.uuid4().hex[:16]),
        ]
        if response.status not in (204, 304):
            headers.append(("Content-Length", str(len(response.body))))
        if self.close_connection:
            headers.append(("Connection", "close"))
        return tuple(headers)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            return b""
        try:
            length = int(raw_length)
        except ValueError:
            raise _BodyError(400, f"Invalid Content-Length: {raw_length!r}") from None
        if length < 0:
            raise _BodyError(400, f"Invalid Content-Length: {raw_length!r}")
        if length > MAX_BODY_BYTES:
            raise _BodyError(413, "Request is too large (over 5 MB)")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size_line = self.rfile.readline(1024).split(b";")[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise _BodyError(400, "Malformed chunked body") from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise _BodyError(413, "Request is too large (over 5 MB)")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(8)  # CRLF after each chunk


class Simulator:
    """A Confluence Cloud site on loopback, written from Atlassian's OpenAPI documents.

    Use as a context manager (or start()/stop()). Credentials are private: they are
    compared in constant time and never appear in repr or logs.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        email: str = DEFAULT_EMAIL,
        api_token: str | None = DEFAULT_API_TOKEN,
        access_token: str | None = DEFAULT_ACCESS_TOKEN,
        seed: bool = True,
        extra_pages: int = 0,
        *,
        log: Callable[[str], None] | None = None,
        long_task_polls: int = 3,
    ) -> None:
        if extra_pages < 0:
            raise ValueError("extra_pages must be >= 0")
        if long_task_polls < 1:
            raise ValueError("long_task_polls must be >= 1")
        self.host = host
        self._requested_port = port
        self.email = email
        self.__api_token = api_token
        self.__access_token = access_token
        self.account_id = account_id_for(email)
        self.store = Store()
        if seed:
            seed_store(self.store, extra_pages, caller=self.account_id)
        elif extra_pages:
            raise ValueError("extra_pages needs seed=True (they go into the ENG space)")
        if self.store.user(self.account_id) is None:
            self.store.add_user(User(self.account_id, "Simulator User", email))
        self.store.long_task_polls = long_task_polls
        self.router = build_router()
        self.files = build_file_router()
        # Atlassian's identity side: accessible-resources, /oauth/token, the gateway.
        self.identity = Identity()
        if access_token is not None:
            self.identity.add_static_token(access_token)
        self._log = log
        self._lock = threading.Lock()
        self._exchanges: list[Exchange] = []
        self._received = 0
        self._fail: tuple[int, int, str | None] | None = None  # (remaining, status, retry_after)
        self._delay: tuple[int, float] | None = None  # (remaining, seconds)
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._port: int | None = None  # kept after stop() so late handlers can still link
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Simulator:
        if self._server is not None or self._stopping.is_set():
            raise RuntimeError("a Simulator can be started once")
        self._server = _Server((self.host, self._requested_port), self)
        self._port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"confluence-sim:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop kept-alive connections so clients see a closed socket."""
        self._stopping.set()
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "not running"
        return f"Simulator({where}, email={self.email!r})"

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the simulator has not been started")
        return self._port

    @property
    def url(self) -> str:
        """Origin to give a client, e.g. ``http://127.0.0.1:8089`` (paths start with /wiki)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """Confluence's ``_links.base``: the site URL including ``/wiki``."""
        return f"{self.url}/wiki"

    # -- recording -----------------------------------------------------------------------

    @property
    def exchanges(self) -> list[Exchange]:
        """A snapshot of every finished exchange, oldest first."""
        with self._lock:
            return list(self._exchanges)

    @property
    def request_count(self) -> int:
        """Requests received since start/clear(), including ones still in progress."""
        with self._lock:
            return self._received

    def clear(self) -> None:
        with self._lock:
            self._exchanges.clear()
            self._received = 0

    @property
    def long_task_polls(self) -> int:
        """Status reads a page-hierarchy copy takes to finish (the copy runs on the last)."""
        return self.store.long_task_polls

    @long_task_polls.setter
    def long_task_polls(self, value: int) -> None:
        if value < 1:
            raise ValueError("long_task_polls must be >= 1")
        self.store.long_task_polls = value

    @property
    def last_cql(self) -> CqlRecord | None:
        """The last CQL query v1 search received: ``raw`` text, parsed ``ast`` or ``error``."""
        return self.store.last_cql

    # -- fault injection -----------------------------------------------------------------

    def fail_next(self, n: int, status: int = 429, retry_after: str | None = "1") -> None:
        """Answer the next ``n`` requests with ``status`` and an Atlassian-style error body.

        ``Retry-After`` is sent for 429 and 503 (pass ``retry_after=None`` to omit it).
        """
        if n < 0 or not 400 <= status <= 599:
            raise ValueError("fail_next needs n >= 0 and a 4xx/5xx status")
        with self._lock:
            self._fail = (n, status, retry_after) if n else None

    def delay_next(self, n: int, seconds: float) -> None:
        """Hold the next ``n`` requests for ``seconds`` before handling them.

        The request is still processed after the delay, like a real server whose client
        timed out: a delayed POST creates its page even if nobody reads the answer.
        """
        if n < 0 or seconds < 0:
            raise ValueError("delay_next needs n >= 0 and seconds >= 0")
        with self._lock:
            self._delay = (n, seconds) if n else None

    def reset_faults(self) -> None:
        with self._lock:
            self._fail = None
            self._delay = None

    # -- request pipeline (called from handler threads) ----------------------------------

    def _arrived(self) -> None:
        with self._lock:
            self._received += 1

    def _record(self, exchange: Exchange) -> None:
        with self._lock:
            self._exchanges.append(exchange)
        if self._log is not None:
            self._log(
                f"{exchange.method} {exchange.target} -> {exchange.status} "
                f"({exchange.duration * 1000:.1f} ms)"
            )

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _take_delay(self) -> float:
        with self._lock:
            if self._delay is None:
                return 0.0
            remaining, seconds = self._delay
            self._delay = (remaining - 1, seconds) if remaining > 1 else None
            return seconds

    def _take_fault(self) -> tuple[int, str | None] | None:
        with self._lock:
            if self._fail is None:
                return None
            remaining, status, retry_after = self._fail
            self._fail = (remaining - 1, status, retry_after) if remaining > 1 else None
            return status, retry_after

    def _authorized(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, credentials = header.strip().partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "basic" and self.__api_token is not None:
            try:
                decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return False
            email, sep, token = decoded.partition(":")
            email_ok = hmac.compare_digest(email.lower().encode(), self.email.lower().encode())
            token_ok = hmac.compare_digest(token.encode(), self.__api_token.encode())
            return bool(sep) and email_ok and token_ok
        if scheme.lower() == "bearer" and self.__access_token is not None:
            return hmac.compare_digest(credentials.encode(), self.__access_token.encode())
        return False

    def _dispatch(
        self,
        method: str,
        path: str,
        query: str,
        headers: tuple[tuple[str, str], ...],
        body: bytes,
    ) -> SimResponse:
        delay = self._take_delay()
        if delay:
            self._stopping.wait(delay)
        fault = self._take_fault()
        if fault is not None:
            status, retry_after = fault
            extra = (("Retry-After", retry_after),) if retry_after and status in (429, 503) else ()
            return ApiError(status, _FAULT_TITLES.get(status), None, extra).to_response(path)
        header_map: dict[str, str] = {}
        for name, value in headers:
            key = name.lower()
            header_map[key] = f"{header_map[key]}, {value}" if key in header_map else value
        front = self.identity.answer(method, path, header_map, body, self.url, self._authorized)
        if isinstance(front, SimResponse):
            return front
        if isinstance(front, Gateway):
            path = front.path  # routed like the site; scopes are checked below
        elif not self._authorized(header_map.get("authorization")):
            return SimResponse(
                401,
                _UNAUTHORIZED,
                (
                    ("Content-Type", JSON_CONTENT_TYPE),
                    ("WWW-Authenticate", 'Basic realm="Confluence"'),
                ),
            )
        route_method = "GET" if method == "HEAD" else method
        match = self.router.match(route_method, unquote(path))
        is_file = False
        if match is None:
            match = self.files.match(route_method, unquote(path))
            is_file = match is not None
        if match is None:
            return ApiError(404, f"No route for {method} {path}").to_response(path)
        if isinstance(match, list):
            allow = ", ".join(sorted(set(match)))
            return ApiError(
                405, f"{method} is not allowed on {path}", None, [("Allow", allow)]
            ).to_response(path)
        if isinstance(front, Gateway) and not is_file:
            denied = front.check(match.route.name)
            if denied is not None:
                return denied
        return self._call(match, route_method, path, query, header_map, body)

    def _call(
        self,
        match: RouteMatch,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
    ) -> SimResponse:
        ctx = Context(self.store, self.base_url, self.account_id)
        try:
            request = SimRequest(method, path, Query(query), headers, body, match.params)
            return match.route.handler(request, ctx)
        except ApiError as exc:
            return exc.to_response(path)
        except Exception:
            _log.exception("simulator handler %s failed", match.route.name)
            return ApiError(500, "Simulator handler failed").to_response(path)


def serve(
    host: str = "127.0.0.1",
    port: int = 8089,
    *,
    email: str | None = None,
    api_token: str | None = None,
    access_token: str | None = None,
    seed: bool = True,
    extra_pages: int = 0,
    on_ready: Callable[[Simulator], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> None:
    """Run a simulator in the foreground until Ctrl-C.

    Credentials left as None come from HARBOR_SIM_EMAIL / HARBOR_SIM_API_TOKEN /
    HARBOR_SIM_ACCESS_TOKEN, else the documented demo defaults.
    """
    simulator = Simulator(
        host=host,
        port=port,
        email=email or os.environ.get(ENV_EMAIL) or DEFAULT_EMAIL,
        api_token=api_token or os.environ.get(ENV_API_TOKEN) or DEFAULT_API_TOKEN,
        access_token=access_token or os.environ.get(ENV_ACCESS_TOKEN) or DEFAULT_ACCESS_TOKEN,
        seed=seed,
        extra_pages=extra_pages,
        log=log if log is not None else _stderr_line,
    )
    with simulator:
        if on_ready is not None:
            on_ready(simulator)
        else:
            _stderr_line(f"Confluence Cloud simulator on {simulator.url} (user {simulator.email})")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


def _stderr_line(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
