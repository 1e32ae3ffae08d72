"""The MCP server: a port's tools over stdio, or streamable HTTP bound to loopback.

Built on the official SDK's low-level ``Server`` (mcp 2.x; ``FastMCP`` became
``MCPServer`` there), because the tools come from the manifest and the policy at run
time, not from decorated Python functions.  Everything an agent sees is decided by
:class:`~harbor_confluence.tools.Toolkit`; this module only speaks the protocol.

Start-up: a client spawns the server and asks for ``tools/list`` at once, but loading
the port (manifest, policy, JSON Schema validators) costs more than importing the SDK.
So the stdio server answers ``tools/list`` from the listing the previous run saved in
the state directory, and loads the port in a worker thread meanwhile.  Calls wait for
the real port, which enforces the real policy, so a stale listing can never let a call
through; when the real listing differs, it replaces the saved one and connected clients
get ``notifications/tools/list_changed``.  Without a saved listing the port is loaded
before serving.

Only ``harbor-confluence mcp`` imports this module, so the rest of the CLI never pays
for the SDK.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import anyio.to_thread
from mcp import types
from mcp.server import NotificationOptions, Server, ServerRequestContext
from mcp.server.stdio import stdio_server

from . import __version__
from .config import atomic_write
from .tools import APPROVAL_TOOL, ToolReply

if TYPE_CHECKING:
    from mcp.server.session import ServerSession


class Toolkit(Protocol):
    """What the server needs of its tools: a :class:`~harbor_confluence.tools.Toolkit`,
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


class ToolServer:
    """The SDK server and the toolkit behind it, which may still be loading.

    ``load`` builds the toolkit (it loads the port).  ``listing`` is a previously saved
    ``tools/list`` answer, kept at ``listing_path``; with one, serving starts before
    ``load`` has run.  ``requester`` overrides the client's own name on held tickets.
    """

    def __init__(
        self,
        load: Callable[[], Toolkit],
        *,
        requester: str | None = None,
        listing_path: Path | None = None,
    ) -> None:
        self._load = load
        self.requester = requester
        self._listing_path = listing_path
        self._definitions = _read_listing(listing_path)
        self._tools: list[types.Tool] | None = None
        self._toolkit: Toolkit | None = None
        self._failure: str | None = None
        self._ready: anyio.Event | None = None
        # The stdio client's session, to tell it when the listing changes (one per process).
        self._session: ServerSession | None = None
        self.server: Server[Any] = Server(
            "harbor-confluence",
            version=__version__,
            instructions=INSTRUCTIONS,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )

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

    async def toolkit(self) -> Toolkit | None:
        if self._toolkit is None and self._ready is not None:
            await self._ready.wait()
        return self._toolkit

    # -- handlers -------------------------------------------------------------------------

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

    async def serve_stdio(self) -> None:
        try:
            await self._serve_stdio()
        finally:
            await self.aclose()

    async def _serve_stdio(self) -> None:
        self._ready = anyio.Event()
        if self._toolkit is not None:
            self._ready.set()
        options = self.server.create_initialization_options(NotificationOptions(tools_changed=True))
        async with anyio.create_task_group() as tg:
            if self._toolkit is None:
                tg.start_soon(self._warm)
            async with stdio_server() as (read_stream, write_stream):
                await self.server.run(read_stream, write_stream, options)
            tg.cancel_scope.cancel()

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
