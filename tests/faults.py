"""A fault-injection HTTP server on 127.0.0.1 that misbehaves at the byte level.

Each request it receives is recorded (method, path, query, headers, body) and answered by
the next scripted :class:`Answer` (``server.script(a, b, ...)``), or by ``server.default``
once the script is used up.  Answers write to the raw socket, so they can be slow, drip
one byte at a time, hang, reset the connection before or after the headers, stream a
1 GB body from a generator, or send a gzip bomb::

    with FaultServer() as fault:
        fault.script(faults.status(503, retry_after="0"), faults.ok({"id": "1"}))
        ...
        assert fault.count("GET") == 2

Nothing here imports the runner: it is the other side of the wire.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

__all__ = [
    "GIB",
    "MIB",
    "Answer",
    "FaultServer",
    "Received",
    "drip",
    "drip_headers",
    "gzip_bomb",
    "hang",
    "huge",
    "ok",
    "raw",
    "redirect",
    "reset_after_headers",
    "reset_before_headers",
    "slow",
    "status",
]

MIB = 1024 * 1024
GIB = 1024 * MIB
_CHUNK = 64 * 1024
_ZEROS = bytes(_CHUNK)


@dataclass(frozen=True)
class Received:
    """One request as it arrived."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _Conn:
    """The server side of one connection, as an answer sees it."""

    def __init__(self, sock: socket.socket, stop: threading.Event) -> None:
        self.sock = sock
        self.stop = stop

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def sleep(self, seconds: float) -> bool:
        """Wait, unless the server stops or the client goes away; False if so."""
        end = time.monotonic() + seconds
        while not self.stop.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return True
            readable, _, _ = select.select([self.sock], [], [], min(left, 0.1))
            if readable and not self.sock.recv(1, socket.MSG_PEEK):
                return False  # the client closed its end
        return False

    def reset(self) -> None:
        """Close with a TCP RST (SO_LINGER 0) instead of a FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


# An answer writes to the connection and says whether it may be kept alive.
Answer = Callable[[_Conn, Received], bool]


def _head(
    code: int,
    headers: Iterable[tuple[str, str]] = (),
    *,
    length: int | None,
    close: bool = False,
) -> bytes:
    lines = [f"HTTP/1.1 {code} {_REASONS.get(code, 'Status')}"]
    lines += [f"{k}: {v}" for k, v in headers]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    301: "Moved Permanently",
    302: "Found",
    307: "Temporary Redirect",
    400: "Bad Request",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def raw(
    code: int,
    body: bytes = b"",
    content_type: str | None = "application/json",
    headers: Iterable[tuple[str, str]] = (),
) -> Answer:
    """A well-formed answer with exactly these bytes."""
    extra = [*([("Content-Type", content_type)] if content_type else []), *headers]

    def answer(conn: _Conn, request: Received) -> bool:
        conn.send(_head(code, extra, length=None if code == 204 else len(body)) + body)
        return True

    return answer


def ok(data: Any = None, code: int = 200) -> Answer:
    """A JSON success (``{"id": "1"}`` unless told otherwise)."""
    payload = {"id": "1", "title": "Fault page", "status": "current"} if data is None else data
    return raw(code, json.dumps(payload).encode(), "application/json;charset=UTF-8")


def status(code: int, retry_after: str | None = None, message: str | None = None) -> Answer:
    """An Atlassian-style error answer, with ``Retry-After`` when given."""
    body = json.dumps(
        {
            "errors": [
                {
                    "status": code,
                    "code": _REASONS.get(code, "ERROR").upper().replace(" ", "_"),
                    "title": message or _REASONS.get(code, "Error"),
                    "detail": None,
                }
            ]
        }
    ).encode()
    headers = [("Retry-After", retry_after)] if retry_after is not None else []
    return raw(code, body, "application/json;charset=UTF-8", headers)


def redirect(code: int, location: str) -> Answer:
    return raw(code, b"", None, [("Location", location)])


def slow(seconds: float, then: Answer) -> Answer:
    """Wait ``seconds`` before answering with ``then``."""

    def answer(conn: _Conn, request: Received) -> bool:
        if not conn.sleep(seconds):
            return False
        return then(conn, request)

    return answer


def hang() -> Answer:
    """Read the request and never answer (until the client or the server gives up)."""

    def answer(conn: _Conn, request: Received) -> bool:
        conn.sleep(3600)
        return False

    return answer


def drip(body: bytes | None = None, interval: float = 0.5) -> Answer:
    """Headers at once (with the full Content-Length), then one body byte per ``interval``."""
    payload = body if body is not None else json.dumps({"id": "1", "pad": "x" * 400}).encode()

    def answer(conn: _Conn, request: Received) -> bool:
        conn.send(_head(200, [("Content-Type", "application/json")], length=len(payload)))
        for i in range(len(payload)):
            conn.send(payload[i : i + 1])
            if not conn.sleep(interval):
                return False
        return True

    return answer


def drip_headers(interval: float = 0.5) -> Answer:
    """The status line and headers themselves, one byte per ``interval``."""

    def answer(conn: _Conn, request: Received) -> bool:
        head = _head(200, [("Content-Type", "application/json"), ("X-Pad", "y" * 400)], length=2)
        for i in range(len(head)):
            conn.send(head[i : i + 1])
            if not conn.sleep(interval):
                return False
        conn.send(b"{}")
        return True

    return answer


def huge(
    size: int = GIB, content_type: str = "application/json", *, chunked: bool = False
) -> Answer:
    """``size`` bytes (spaces) streamed from a generator: the server never holds more than
    one 64 KiB chunk.  With a truthful Content-Length, or ``chunked`` (no length to go by:
    the client must count as it reads)."""

    def answer(conn: _Conn, request: Received) -> bool:
        if not chunked:
            conn.send(_head(200, [("Content-Type", content_type)], length=size))
            for chunk in _spaces(size):
                conn.send(chunk)
            return True
        headers = [("Content-Type", content_type), ("Transfer-Encoding", "chunked")]
        conn.send(_head(200, headers, length=None))
        for chunk in _spaces(size):
            conn.send(b"%x\r\n%b\r\n" % (len(chunk), chunk))
        conn.send(b"0\r\n\r\n")
        return True

    return answer


def _spaces(size: int) -> Iterator[bytes]:
    block = b" " * _CHUNK
    left = size
    while left > 0:
        yield block if left >= _CHUNK else block[:left]
        left -= _CHUNK


@cache
def bomb_bytes(size: int = GIB) -> bytes:
    """A gzip member of ``size`` zero bytes, about 1 KB per MiB (1 GB -> ~1 MB).

    Built without compressing ``size`` bytes: a full flush resets deflate's state, so the
    compressed form of each 1 MiB block of zeros is the same bytes every time.
    """
    if size % MIB:
        raise ValueError("the bomb's size must be a whole number of MiB")
    block = bytes(MIB)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    unit = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
    end = deflate.flush(zlib.Z_FINISH)
    crc = 0
    for _ in range(size // MIB):
        crc = zlib.crc32(block, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + unit * (size // MIB) + end + struct.pack("<II", crc, size & 0xFFFFFFFF)


def gzip_bomb(size: int = GIB) -> Answer:
    """``Content-Encoding: gzip``: ~1 MB on the wire that inflates to ``size`` bytes."""

    def answer(conn: _Conn, request: Received) -> bool:
        data = bomb_bytes(size)
        headers = [("Content-Type", "application/json"), ("Content-Encoding", "gzip")]
        conn.send(_head(200, headers, length=len(data)))
        view = memoryview(data)
        for i in range(0, len(data), _CHUNK):
            conn.send(view[i : i + _CHUNK])
        return True

    return answer


def reset_before_headers() -> Answer:
    """Read the request, then reset the connection without a byte of answer."""

    def answer(conn: _Conn, request: Received) -> bool:
        conn.reset()
        return False

    return answer


def reset_after_headers(sent: int = 10) -> Answer:
    """Send the headers (promising 1,000 bytes) and ``sent`` of them, then reset."""

    def answer(conn: _Conn, request: Received) -> bool:
        conn.send(_head(200, [("Content-Type", "application/json")], length=1000))
        conn.send(b'{"id": "1"'[:sent])
        time.sleep(0.05)  # let the client take the headers before the RST
        conn.reset()
        return False

    return answer


@dataclass
class _Script:
    answers: deque[Answer] = field(default_factory=deque)


class FaultServer:
    """A threaded raw-socket HTTP/1.1 server whose answers the test scripts."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.default: Answer = ok()
        self.requests: list[Received] = []
        self._script = _Script()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._conns: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._accepting = True
        self._paused = threading.Event()
        self._filler: socket.socket | None = None
        self._acceptor = threading.Thread(target=self._accept, name="fault-accept", daemon=True)
        self._acceptor.start()

    # -- what the test sees ------------------------------------------------------------------

    def script(self, *answers: Answer) -> None:
        """Answer the next requests with these, in order (then with ``default``)."""
        with self._lock:
            self._script.answers.extend(answers)

    def count(self, method: str | None = None, path: str | None = None) -> int:
        """How many requests arrived (of this method, on this path)."""
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (method is None or r.method == method) and (path is None or r.path == path)
            )

    def refuse(self) -> None:
        """From now on nothing listens on this port: connecting is refused (no byte of a
        request can leave).  Open connections are closed first."""
        self._pause()
        self._listener.close()
        self._drop_connections()

    def blackhole(self) -> None:
        """From now on a connect to this port times out (the listen backlog is full and
        nothing accepts): the request never leaves.  Open connections are closed first."""
        self._pause()
        self._listener.listen(0)
        self._filler = socket.create_connection(("127.0.0.1", self.port), timeout=1)
        self._drop_connections()

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        if self._filler is not None:
            self._filler.close()
        self._drop_connections()
        for thread in [self._acceptor, *self._threads]:
            thread.join(timeout=5)

    def _pause(self) -> None:
        self._accepting = False
        self._paused.wait(timeout=5)

    def drop_connections(self) -> None:
        """Close every open connection from the server's side (as an idle timeout does)."""
        self._drop_connections()

    def _drop_connections(self) -> None:
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> FaultServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- serving -----------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stop.is_set():
            if not self._accepting:
                self._paused.set()
                return
            try:
                readable, _, _ = select.select([self._listener], [], [], 0.05)
                if not readable:
                    continue
                sock, _ = self._listener.accept()
            except (OSError, ValueError):
                return
            with self._lock:
                self._conns.add(sock)
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _next(self) -> Answer:
        with self._lock:
            return self._script.answers.popleft() if self._script.answers else self.default

    def _serve(self, sock: socket.socket) -> None:
        conn = _Conn(sock, self._stop)
        buffer = b""
        try:
            while not self._stop.is_set():
                request, buffer = _read_request(sock, buffer)
                if request is None:
                    return
                with self._lock:
                    self.requests.append(request)
                if not self._next()(conn, request):
                    return
        except OSError:
            return  # the client went away (reset, timeout): nothing more to do
        finally:
            with self._lock:
                self._conns.discard(sock)
            with contextlib.suppress(OSError):
                sock.close()


def _read_request(sock: socket.socket, buffer: bytes) -> tuple[Received | None, bytes]:
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(_CHUNK)
        if not data:
            return None, b""
        buffer += data
    head, _, buffer = buffer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    while len(buffer) < length:
        data = sock.recv(_CHUNK)
        if not data:
            return None, b""
        buffer += data
    body, buffer = buffer[:length], buffer[length:]
    path, _, query = target.partition("?")
    return Received(method, path, query, headers, body), buffer
