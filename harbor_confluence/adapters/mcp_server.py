"""The MCP server: a port's tools over stdio, or streamable HTTP bound to loopback.

Built on the official SDK's low-level ``Server`` (mcp 2.x; ``FastMCP`` became
``MCPServer`` there), because the tools come from the manifest and the policy at run
time, not from decorated Python functions.  Everything an agent sees is decided by
:class:`~harbor_confluence.adapters.tools.Toolkit`; this module only speaks the protocol.

Start-up: a client spawns the server and asks for ``tools/list`` at once, but loading
the port (manifest, policy, JSON Schema validators) costs more than importing the SDK.
So the stdio server answers ``tools/list`` from the listing the previous run saved in
the state directory, and loads the port in a worker thread meanwhile.  Calls wait for
the real port, which enforces the real policy, so a stale listing can never let a call
through; when the real listing differs, it replaces the saved one and connected clients
get ``notifications/tools/list_changed``.  Without a saved listing the port is loaded
before serving.

Importing the SDK itself costs more than a client should wait for its first answers, so
the server also saves the SDK's own answers to ``initialize``, ``tools/list``, ``ping``
and ``server/discover`` (for every protocol version it negotiates, captured by running
the same server over memory streams) and ``mcp_front`` serves them, with the standard
library only, while this module is imported; then it hands the stream over to
:meth:`ToolServer.serve_stdio`.

Only ``harbor-confluence mcp`` imports this module, so the rest of the CLI never pays
for the SDK.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import anyio.to_thread
from mcp import types
from mcp.server import NotificationOptions, Server, ServerRequestContext
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from mcp.types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS

from harbor_confluence import __version__
from harbor_confluence.config import atomic_write

from . import mcp_front
from .tools import APPROVAL_TOOL, ToolReply

if TYPE_CHECKING:
    from anyio.abc import ObjectReceiveStream, ObjectSendStream
    from mcp.server.session import ServerSession


class Toolkit(Protocol):
    """What the server needs of its tools: a :class:`~harbor_confluence.adapters.tools.Toolkit`,
    or a node client's bridge to the node's tools (``NodeToolkit``)."""

    def definitions(self, format: Any = "mcp") -> list[dict[str, Any]]: ...

    async def acall(
        self, name: str, arguments: Any = None, *, requester: str | None = None
    ) -> ToolReply: ...

    async def aclose(self) -> None: ...


__all__ = [
    "DEFAULT_HTTP_PORT",
    "INSTRUCTIONS",
    "LOOPBACK",
    "ToolServer",
    "client_requester",
    "reply_result",
]

DEFAULT_HTTP_PORT = 8765
LOOPBACK = "127.0.0.1"
_UNSAFE = re.compile(r"[^A-Za-z0-9 ._@/+-]")
log = logging.getLogger(__name__)

INSTRUCTIONS = (
    "Confluence actions run under an operator's policy. A write may come back held for "
    f"approval with a ticket: nothing was sent yet; check it with {APPROVAL_TOOL}."
)


def client_requester(ctx: ServerRequestContext[Any]) -> str:
    """``mcp:<client name>`` from the client's ``clientInfo`` (handshake or envelope)."""
    params = ctx.session.client_params
    name = params.client_info.name if params is not None else ""
    name = _UNSAFE.sub("", name).strip()[:64]
    return f"mcp:{name}" if name else "mcp:unnamed-client"


def reply_result(reply: ToolReply) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(text=reply.text)],
        structured_content=reply.payload,
        is_error=reply.is_error,
    )


def _read_listing(path: Path | None) -> list[dict[str, Any]] | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if isinstance(data, list) and all(isinstance(d, dict) for d in data):
        return data
    return None


SETTLE_SECONDS = 15.0  # at the end of input: how long loading and saving may still take
_UNKNOWN_VERSION = "0000-00-00"  # stands for any version the SDK does not negotiate
# Two 2026-era envelopes: answers saved for that era must not depend on the client's.
_ENVELOPES: tuple[tuple[dict[str, str], dict[str, Any]], ...] = (
    ({"name": "harbor-front", "version": "0"}, {}),
    ({"name": "other", "version": "1", "title": "t"}, {"roots": {}, "sampling": {}}),
)


def _make_server(
    list_tools: Callable[..., Awaitable[types.ListToolsResult]],
    call_tool: Callable[..., Awaitable[types.CallToolResult]],
    initialized: Callable[..., Awaitable[None]],
) -> Server[Any]:
    """The one server shape, for serving and for capturing its answers."""
    server: Server[Any] = Server(
        "harbor-confluence",
        version=__version__,
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )
    server.add_notification_handler(
        "notifications/initialized", types.NotificationParams, initialized
    )
    return server


def _options(server: Server[Any]) -> Any:
    return server.create_initialization_options(NotificationOptions(tools_changed=True))


def _wire_line(message: types.JSONRPCMessage) -> str:
    """A message as the stdio transport writes it."""
    return message.model_dump_json(by_alias=True, exclude_unset=True)


def _parse_line(line: bytes) -> SessionMessage | Exception:
    """A line as the stdio transport reads it (UTF-8 with replacement, then validated)."""
    try:
        text = line.decode("utf-8", errors="replace")
        return SessionMessage(types.jsonrpc_message_adapter.validate_json(text, by_name=False))
    except Exception as exc:
        return exc


async def _exchange(server: Server[Any], messages: list[dict[str, Any]]) -> dict[int, str]:
    """Run ``server`` over memory streams; each request's raw ``result`` JSON by id."""
    wanted = sum(1 for m in messages if "id" in m)
    send_in, recv_in = anyio.create_memory_object_stream[SessionMessage | Exception](len(messages))
    send_out, recv_out = anyio.create_memory_object_stream[SessionMessage](wanted + 4)
    results: dict[int, str] = {}
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.run, recv_in, send_out, _options(server))
            for m in messages:
                parsed = _parse_line(json.dumps(m).encode())
                assert isinstance(parsed, SessionMessage)
                await send_in.send(parsed)
            while len(results) < wanted:
                line = _wire_line((await recv_out.receive()).message)
                data = json.loads(line)
                rid = data.get("id")
                prefix = f'{{"jsonrpc":"2.0","id":{rid},"result":'
                if not isinstance(rid, int) or not line.startswith(prefix) or "error" in data:
                    raise RuntimeError(f"unexpected answer while saving: {line[:200]}")
                results[rid] = line[len(prefix) : -1]
            await send_in.aclose()
    return results


class ToolServer:
    """The SDK server and the toolkit behind it, which may still be loading.

    ``load`` builds the toolkit (it loads the port).  ``listing`` is a previously saved
    ``tools/list`` answer, kept at ``listing_path``; with one, serving starts before
    ``load`` has run.  ``requester`` overrides the client's own name on held tickets.
    ``answers_path`` is where the SDK's own answers are saved for ``mcp_front``, made
    for ``answers_stamp`` (what they depend on: the manifest, the policy, the code);
    ``served`` is the listing the front already gave the client.
    """

    def __init__(
        self,
        load: Callable[[], Toolkit],
        *,
        requester: str | None = None,
        listing_path: Path | None = None,
        answers_path: Path | None = None,
        answers_stamp: Any = None,
        served: list[dict[str, Any]] | None = None,
    ) -> None:
        self._load = load
        self.requester = requester
        self._listing_path = listing_path
        self._answers_path = answers_path
        self._answers_stamp = answers_stamp
        self._definitions = served if served is not None else _read_listing(listing_path)
        self._tools: list[types.Tool] | None = None
        self._toolkit: Toolkit | None = None
        self._failure: str | None = None
        self._ready: anyio.Event | None = None
        # The stdio client's session, to tell it when the listing changes (one per process).
        self._session: ServerSession | None = None
        self.server = _make_server(self._list_tools, self._call_tool, self._initialized)

    @property
    def preloaded(self) -> bool:
        """Whether ``tools/list`` can be answered before the port is loaded."""
        return self._definitions is not None

    # -- the toolkit ----------------------------------------------------------------------

    def load_now(self) -> None:
        """Load the port in this thread (no saved listing, or HTTP serving)."""
        self._adopt(self._load())

    def _adopt(self, toolkit: Toolkit) -> bool:
        """Use ``toolkit``; True when its listing differs from the one being served."""
        fresh = toolkit.definitions("mcp")
        changed = self._definitions is not None and fresh != self._definitions
        self._toolkit = toolkit
        if fresh != self._definitions or self._tools is None:
            self._definitions = fresh
            self._tools = [types.Tool.model_validate(d) for d in fresh]
        if self._listing_path is not None and fresh != _read_listing(self._listing_path):
            with contextlib.suppress(OSError):
                data = json.dumps(fresh, separators=(",", ":")).encode()
                atomic_write(self._listing_path, data)
        return changed

    async def _warm(self) -> None:
        """Load the port off the event loop, then tell clients if the listing changed."""
        assert self._ready is not None
        try:
            toolkit = await anyio.to_thread.run_sync(self._load, abandon_on_cancel=True)
            changed = self._adopt(toolkit)
        except Exception as exc:
            log.exception("cannot load the port")
            # the details (file paths) are for the operator's stderr, not the agent
            self._failure = (
                f"the port could not be loaded ({type(exc).__name__}); see the server log"
            )
            self._ready.set()
            return
        self._ready.set()
        if changed and self._session is not None:
            with contextlib.suppress(Exception):  # the client may be gone, or not listen
                await self._session.send_tool_list_changed()
        await self.save_answers()

    async def toolkit(self) -> Toolkit | None:
        if self._toolkit is None and self._ready is not None:
            await self._ready.wait()
        return self._toolkit

    # -- the front's answers --------------------------------------------------------------

    async def capture_answers(self, definitions: list[dict[str, Any]]) -> dict[str, Any]:
        """This server's answers for ``mcp_front``, by the SDK itself, per protocol version.

        A twin of the serving server (same identity, capabilities, handlers' shape) with
        ``definitions`` as its listing is run over memory streams, so what is saved is
        what the SDK would write.
        """
        tools = [types.Tool.model_validate(d) for d in definitions]

        async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
            return types.ListToolsResult(tools=list(tools))

        async def nothing(ctx: Any, params: Any) -> None:
            return None

        twin = _make_server(list_tools, self._call_tool, nothing)
        blobs: list[str] = []

        def blob(raw: str) -> int:
            if raw not in blobs:
                blobs.append(raw)
            return blobs.index(raw)

        legacy: dict[str, dict[str, int]] = {}
        for version in (*HANDSHAKE_PROTOCOL_VERSIONS, _UNKNOWN_VERSION):
            init = {
                "protocolVersion": version,
                "capabilities": {},
                "clientInfo": {"name": "harbor-front", "version": "0"},
            }
            got = await _exchange(
                twin,
                [
                    {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init},
                    {"jsonrpc": "2.0", "method": "notifications/initialized"},
                    {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
                    {"jsonrpc": "2.0", "id": 3, "method": "ping"},
                ],
            )
            key = "*" if version == _UNKNOWN_VERSION else version
            legacy[key] = {
                "initialize": blob(got[1]),
                "tools/list": blob(got[2]),
                "ping": blob(got[3]),
            }
        modern: dict[str, dict[str, int]] = {}
        for version in MODERN_PROTOCOL_VERSIONS:
            seen = []
            for info, caps in _ENVELOPES:
                meta = {
                    mcp_front.PROTOCOL_VERSION_KEY: version,
                    mcp_front.CLIENT_INFO_KEY: info,
                    mcp_front.CLIENT_CAPABILITIES_KEY: caps,
                }
                seen.append(
                    await _exchange(
                        twin,
                        [
                            {"jsonrpc": "2.0", "id": 1, "method": "server/discover",
                             "params": {"_meta": meta}},
                            {"jsonrpc": "2.0", "id": 2, "method": "tools/list",
                             "params": {"_meta": meta}},
                        ],
                    )
                )  # fmt: skip
            if all(s == seen[0] for s in seen):  # else that era is always the SDK's
                modern[version] = {
                    "server/discover": blob(seen[0][1]),
                    "tools/list": blob(seen[0][2]),
                }
        return {
            "format": mcp_front.FORMAT,
            "stamp": self._answers_stamp,
            "tools": definitions,
            "blobs": blobs,
            "legacy": legacy,
            "modern": modern,
        }

    async def save_answers(self) -> None:
        """Save the answers for the next start, when the listing or its inputs changed."""
        path, definitions = self._answers_path, self._definitions
        if path is None or self._toolkit is None or definitions is None:
            return
        saved = mcp_front.read_saved(path, self._answers_stamp)
        if saved is not None and saved["tools"] == definitions:
            return
        try:
            data = await self.capture_answers(definitions)
            atomic_write(path, json.dumps(data, separators=(",", ":")).encode())
        except Exception:  # a missed save only costs the next start its speed
            log.warning("could not save the MCP answers for the next start", exc_info=True)

    def _forget_answers(self, why: str) -> None:
        log.warning("the saved MCP answers differ from the SDK's (%s); they are discarded", why)
        if self._answers_path is not None:
            with contextlib.suppress(OSError):
                self._answers_path.unlink()

    # -- handlers -------------------------------------------------------------------------

    async def _initialized(self, ctx: ServerRequestContext[Any], params: Any) -> None:
        self._session = ctx.session  # a handover replays this: tools/list may not come

    async def _list_tools(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        self._session = ctx.session
        if self._tools is None and self._definitions is not None:
            self._tools = [types.Tool.model_validate(d) for d in self._definitions]
        if self._tools is None:
            await self.toolkit()
        return types.ListToolsResult(tools=list(self._tools or []))

    async def _call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        who = self.requester or client_requester(ctx)
        toolkit = await self.toolkit()
        if toolkit is None:
            message = self._failure or "the port is not loaded"
            error = {"code": "config", "message": message}
            payload = {"ok": False, "outcome": "failed", "error": error}
            return reply_result(ToolReply(payload, message, is_error=True))
        try:
            reply = await toolkit.acall(params.name, params.arguments or {}, requester=who)
        except Exception as exc:  # a bug must reach the agent as an error, not a hang
            log.exception("tool %s failed", params.name)
            kind = type(exc).__name__
            error = {"code": "internal", "type": kind}
            payload = {"ok": False, "outcome": "failed", "action": params.name, "error": error}
            reply = ToolReply(payload, f"{params.name}: internal error ({kind})", is_error=True)
        return reply_result(reply)

    # -- transports -----------------------------------------------------------------------

    async def aclose(self) -> None:
        if self._toolkit is not None:
            await self._toolkit.aclose()

    async def serve_stdio(
        self,
        handover: mcp_front.Handover | None = None,
        pipe: mcp_front.StdioPipe | None = None,
    ) -> None:
        """Serve over stdio: the SDK's transport, or with ``pipe`` the stream the front
        began (``handover`` says where it stopped)."""
        try:
            await self._serve_stdio(handover, pipe)
        finally:
            await self.aclose()

    async def _serve_stdio(
        self, handover: mcp_front.Handover | None, pipe: mcp_front.StdioPipe | None
    ) -> None:
        self._ready = anyio.Event()
        settled = anyio.Event()  # the port is loaded and the answers saved (or that failed)
        if self._toolkit is not None:
            self._ready.set()

        async def settle() -> None:
            try:
                await (self._warm() if self._toolkit is None else self.save_answers())
            finally:
                settled.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(settle)
            if pipe is None:
                async with stdio_server() as (read_stream, write_stream):
                    await self.server.run(read_stream, write_stream, _options(self.server))
            else:
                async with self._pipe_streams(handover or mcp_front.Handover(None), pipe) as (
                    read_stream,
                    write_stream,
                ):
                    await self.server.run(read_stream, write_stream, _options(self.server))
            # A short session still leaves its answers for the next start to serve.
            with anyio.move_on_after(SETTLE_SECONDS):
                await settled.wait()
            tg.cancel_scope.cancel()

    @contextlib.asynccontextmanager
    async def _pipe_streams(
        self, handover: mcp_front.Handover, pipe: mcp_front.StdioPipe
    ) -> AsyncIterator[
        tuple[ObjectReceiveStream[SessionMessage | Exception], ObjectSendStream[SessionMessage]]
    ]:
        """The SDK's read and write streams over the front's pipe, after its replay.

        Framing as the SDK's stdio transport: one JSON message per line, each write
        flushed.  The SDK's answers to the replayed requests are dropped (the client has
        the front's) after checking they are the same bytes.
        """
        read_send, read_recv = anyio.create_memory_object_stream[SessionMessage | Exception](0)
        write_send, write_recv = anyio.create_memory_object_stream[SessionMessage](0)
        drop = dict(handover.drop)

        written = anyio.Event()

        async def lines() -> AsyncIterator[bytes]:
            for line in [*handover.replay, *handover.pending]:
                if line is None:
                    return
                yield line
            while (
                line := await anyio.to_thread.run_sync(pipe.next_line, abandon_on_cancel=True)
            ) is not None:
                yield line

        async def reader() -> None:
            async with read_send:
                with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                    async for line in lines():
                        await read_send.send(_parse_line(line))

        async def writer() -> None:
            async with write_recv:
                try:
                    await write_all()
                finally:
                    written.set()

        async def write_all() -> None:
            async for session_message in write_recv:
                message = session_message.message
                data = (_wire_line(message) + "\n").encode()
                rid = getattr(message, "id", None)
                if rid is not None and rid in drop and not hasattr(message, "method"):
                    if drop.pop(rid) != data:
                        self._forget_answers(f"request {rid!r}")
                    continue
                await anyio.to_thread.run_sync(pipe.write, data)

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            tg.start_soon(writer)
            yield read_recv, write_send
            await written.wait()  # the server closes its write stream when it ends
            tg.cancel_scope.cancel()  # the reader may be waiting for a line

    async def serve_http(self, port: int = DEFAULT_HTTP_PORT) -> None:
        """Streamable HTTP on 127.0.0.1 only, with the SDK's DNS-rebinding protection."""
        import uvicorn

        if self._toolkit is None:
            self.load_now()
        self._ready = anyio.Event()
        self._ready.set()
        app = self.server.streamable_http_app(host=LOOPBACK)
        config = uvicorn.Config(app, host=LOOPBACK, port=port, log_level="warning")
        try:
            await uvicorn.Server(config).serve()
        finally:
            await self.aclose()
