"""The stdio MCP server's front: the first answers, before the SDK is imported.

A client spawns ``harbor-confluence mcp`` and waits for ``initialize`` and ``tools/list``;
importing the MCP SDK (pydantic models for the whole protocol) takes most of a second.
This module answers those first requests with the standard library only, from answers
the SDK itself produced on an earlier run (saved next to the tool listing, see
``ToolServer`` in ``mcp_server``), while a thread imports the SDK.  On the first message
it cannot answer, at end of input, or as soon as the SDK is ready, it hands over: the
SDK server is fed the requests that put it in the state the client believes it is in
(the ``initialize`` and ``notifications/initialized``, or the first 2026-era request),
its answers to those are dropped (the client has them), then every further line from
the same reader, so no byte of input is lost.

Only exact, plain requests are answered here (a known protocol version, plain client
capabilities and info, no extra parameters); anything else goes to the SDK, which then
answers it itself.  Calls never reach the front: they run on the real port, under the
real policy.

Imports: json, os, sys, threading, queue.  Nothing else (see ``python -X importtime``).
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
from typing import Any

__all__ = ["FORMAT", "READY", "Handover", "StdioPipe", "file_stamp", "read_saved", "serve"]

FORMAT = 1
"""Version of the saved-answers file; a different one is ignored."""

PROTOCOL_VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
CLIENT_INFO_KEY = "io.modelcontextprotocol/clientInfo"
CLIENT_CAPABILITIES_KEY = "io.modelcontextprotocol/clientCapabilities"

_INFO_KEYS = frozenset({"name", "version", "title", "description", "websiteUrl"})
_CAPABILITY_KEYS = frozenset({"experimental", "sampling", "elicitation", "roots", "extensions"})


class _Ready:
    """Marker put in the input queue when the SDK has been imported."""

    def __repr__(self) -> str:
        return "READY"


READY = _Ready()

Line = bytes | None  # None: end of input


def file_stamp(path: str | os.PathLike[str] | None) -> list[Any] | None:
    """``[path, mtime_ns, size]`` of a file, or None when it is missing."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [os.fspath(path), st.st_mtime_ns, st.st_size]


def package_stamp(name: str) -> list[Any] | None:
    """Stamp of an installed package's ``__init__.py``, found on ``sys.path`` without
    importing anything (``importlib.util.find_spec`` alone costs ~20 ms)."""
    for entry in sys.path:
        stamp = file_stamp(os.path.join(entry or ".", name, "__init__.py"))
        if stamp is not None:
            return stamp
    return None


def read_saved(path: str | os.PathLike[str], stamp: Any) -> dict[str, Any] | None:
    """The saved answers at ``path`` when they were made for ``stamp``, else None."""
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("stamp") != stamp:
        return None
    blobs, legacy, modern = data.get("blobs"), data.get("legacy"), data.get("modern")
    if not (
        isinstance(blobs, list)
        and isinstance(legacy, dict)
        and "*" in legacy
        and isinstance(modern, dict)
        and isinstance(data.get("tools"), list)
    ):
        return None
    return data


class StdioPipe:
    """The wire: the process's stdin and stdout, claimed for the protocol.

    Like the SDK's ``stdio_server``, descriptors 0 and 1 are pointed at the null device
    and at stderr while serving, so a stray read or print elsewhere in the process cannot
    corrupt the wire; the wire itself is kept on private duplicates.  One thread reads
    lines into a queue for the whole life of the process, front first, then the SDK.
    """

    def __init__(self) -> None:
        self._in_fd = os.dup(0)
        self._out_fd = os.dup(1)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(2, 1)
        self._reader = os.fdopen(self._in_fd, "rb")
        self._writer = os.fdopen(self._out_fd, "wb")
        self._queue: queue.SimpleQueue[Line | _Ready] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self.broken = False
        threading.Thread(target=self._pump, name="mcp-stdin", daemon=True).start()

    def _pump(self) -> None:
        try:
            for line in self._reader:
                self._queue.put(line)
        except (OSError, ValueError):
            pass
        self._queue.put(None)

    def signal_ready(self) -> None:
        self._queue.put(READY)

    def get(self) -> Line | _Ready:
        """The next line, None at end of input, or READY (front side)."""
        return self._queue.get()

    def next_line(self) -> Line:
        """The next line or None at end of input, skipping READY (SDK side)."""
        while True:
            item = self._queue.get()
            if not isinstance(item, _Ready):
                return item

    def write(self, data: bytes) -> None:
        """One whole message, flushed; a client that has gone away is not an error."""
        if self.broken:
            return
        with self._lock:
            try:
                self._writer.write(data)
                self._writer.flush()
            except (OSError, ValueError):
                self.broken = True

    def restore(self) -> None:
        """Point descriptors 0 and 1 back at the wire (the process is leaving)."""
        try:
            os.dup2(self._in_fd, 0)
            os.dup2(self._out_fd, 1)
        except OSError:
            pass


class Handover:
    """What the SDK server needs to take over where the front stopped.

    ``replay``: lines fed first, already answered by the front (the answers to them are
    in ``drop``, keyed by request id, to be discarded and compared); ``pending``: lines
    the front did not answer, in order (None: the input had ended); ``served``: the tool
    definitions the client was given, if any.
    """

    def __init__(self, served: list[dict[str, Any]] | None) -> None:
        self.replay: list[bytes] = []
        self.drop: dict[int | str, bytes] = {}
        self.pending: list[Line] = []
        self.served = served
        self.answered = 0


def _request_id(value: Any) -> int | str | None:
    """An id the front can echo byte for byte as the SDK would, else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if (
        isinstance(value, str)
        and 0 < len(value) <= 200
        and value.isascii()
        and value.isprintable()
        and '"' not in value
        and "\\" not in value
    ):
        return value
    return None


def _empty_tree(value: Any, depth: int = 0) -> bool:
    """Objects of objects, nothing else (e.g. ``{"context": {}, "tools": {}}``)."""
    return (
        isinstance(value, dict)
        and depth < 6
        and all(isinstance(k, str) and _empty_tree(v, depth + 1) for k, v in value.items())
    )


def _plain_capabilities(value: Any) -> bool:
    """Client capabilities in their common shapes, which the SDK accepts as they are."""
    if not isinstance(value, dict):
        return False
    for key, item in value.items():
        if key not in _CAPABILITY_KEYS or not isinstance(item, dict):
            return False
        if key in ("experimental", "extensions"):
            if not all(isinstance(v, dict) for v in item.values()):
                return False
        elif key == "roots":
            if set(item) - {"listChanged"} or not isinstance(item.get("listChanged", True), bool):
                return False
        elif not _empty_tree(item):
            return False
    return True


def _plain_info(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("name"), str)
        and isinstance(value.get("version"), str)
        and set(value) <= _INFO_KEYS
        and all(isinstance(v, str) for v in value.values())
    )


def _no_params(message: dict[str, Any]) -> bool:
    params = message.get("params", {})
    return isinstance(params, dict) and not params


def _modern_version(message: dict[str, Any], saved: dict[str, Any]) -> str | None:
    """The 2026-era protocol version of a plainly enveloped request, else None."""
    params = message.get("params")
    if not isinstance(params, dict) or set(params) != {"_meta"}:
        return None
    meta = params["_meta"]
    if not isinstance(meta, dict) or set(meta) - {
        PROTOCOL_VERSION_KEY,
        CLIENT_INFO_KEY,
        CLIENT_CAPABILITIES_KEY,
    }:
        return None
    version = meta.get(PROTOCOL_VERSION_KEY)
    caps = meta.get(CLIENT_CAPABILITIES_KEY)
    if not isinstance(version, str) or version not in saved["modern"]:
        return None
    if not isinstance(caps, dict) or not _plain_capabilities(caps):
        return None
    if CLIENT_INFO_KEY in meta and not _plain_info(meta[CLIENT_INFO_KEY]):
        return None
    return version


def _legacy_version(message: dict[str, Any], saved: dict[str, Any]) -> str | None:
    """The saved-answers key for a plain ``initialize``, else None."""
    params = message.get("params")
    if not isinstance(params, dict) or set(params) != {
        "protocolVersion",
        "capabilities",
        "clientInfo",
    }:
        return None
    version = params["protocolVersion"]
    if not isinstance(version, str) or not _plain_capabilities(params["capabilities"]):
        return None
    if not _plain_info(params["clientInfo"]):
        return None
    return version if version in saved["legacy"] else "*"


def _parse(line: bytes) -> tuple[dict[str, Any], int | str | None] | None:
    """A single JSON-RPC 2.0 message with nothing unusual, and its request id."""
    try:
        message = json.loads(line)
    except ValueError:
        return None
    if (
        not isinstance(message, dict)
        or message.get("jsonrpc") != "2.0"
        or not isinstance(message.get("method"), str)
        or set(message) - {"jsonrpc", "id", "method", "params"}
    ):
        return None
    if "id" not in message:
        return message, None
    rid = _request_id(message["id"])
    return (message, rid) if rid is not None else None


def serve(pipe: StdioPipe, saved: dict[str, Any]) -> Handover:
    """Answer what the saved answers cover; return at the first line they do not.

    Legacy (handshake) clients: ``initialize``, then ``tools/list`` and ``ping``;
    2026-era clients: ``server/discover`` and ``tools/list`` with a plain envelope.
    """
    blobs: list[str] = saved["blobs"]
    handover = Handover(saved["tools"])
    answers: dict[str, int] | None = None  # the chosen era's answers
    era = ""

    def answer(rid: int | str, blob: int) -> bytes:
        data = (
            b'{"jsonrpc":"2.0","id":'
            + json.dumps(rid).encode()
            + b',"result":'
            + blobs[blob].encode()
            + b"}\n"
        )
        pipe.write(data)
        handover.answered += 1
        return data

    while True:
        item = pipe.get()
        if isinstance(item, _Ready):
            return handover
        if item is None:
            handover.pending.append(None)
            return handover
        parsed = _parse(item)
        if parsed is None:
            handover.pending.append(item)
            return handover
        message, rid = parsed
        method = message["method"]
        if not era:
            if rid is not None and method == "initialize":
                key = _legacy_version(message, saved)
                if key is not None:
                    era, answers = "legacy", saved["legacy"][key]
                    handover.replay.append(item)
                    handover.drop[rid] = answer(rid, answers["initialize"])
                    continue
            elif rid is not None and method in ("server/discover", "tools/list"):
                version = _modern_version(message, saved)
                if version is not None:
                    era, answers = "modern", saved["modern"][version]
                    handover.replay.append(item)
                    handover.drop[rid] = answer(rid, answers[method])
                    continue
            handover.pending.append(item)
            return handover
        assert answers is not None
        if era == "legacy":
            if method == "notifications/initialized" and rid is None and _no_params(message):
                if len(handover.replay) == 1:
                    handover.replay.append(item)
                    continue
            elif rid is not None and method in ("tools/list", "ping") and _no_params(message):
                answer(rid, answers[method])
                continue
        elif rid is not None and method in ("server/discover", "tools/list"):
            version = _modern_version(message, saved)
            if version is not None:
                answer(rid, saved["modern"][version][method])
                continue
        handover.pending.append(item)
        return handover
