"""MCP on the node: streamable HTTP at ``/mcp``, for agent (and operator) tokens.

Each HTTP request is authenticated before the SDK sees it, and each handler resolves
the caller again from its own request's token, so the tool list and every call are the
caller's grant and the held tickets carry its name.  Stateless mode: no session is
shared between tokens, nothing about a caller outlives its request.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from mcp import types
from mcp.server import Server, ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from harbor_confluence import __version__
from harbor_confluence.adapters.mcp_server import INSTRUCTIONS, reply_result
from harbor_confluence.errors import HarborError

from .identities import Identity
from .service import NodeService, error_status

__all__ = ["mount_mcp"]


def _caller(service: NodeService, ctx: ServerRequestContext[Any]) -> Identity:
    request = ctx.request
    header = request.headers.get("authorization", "") if isinstance(request, Request) else ""
    scheme, _, token = header.partition(" ")
    return service.authenticate(token.strip() if scheme.lower() == "bearer" else None, where="mcp")


def _drafts(ctx: ServerRequestContext[Any]) -> bool:
    """``/mcp?drafts=1``: the client asked for the draft tools too (node/drafts.py)."""
    request = ctx.request
    if not isinstance(request, Request):
        return False
    return request.query_params.get("drafts", "").lower() in ("1", "true", "yes")


def mount_mcp(service: NodeService) -> tuple[Any, Callable[[Any], Any]]:
    """The ASGI app to mount at ``/mcp`` and the lifespan that runs its session manager."""

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        kit = service.toolkit(_caller(service, ctx), drafts=_drafts(ctx))
        return types.ListToolsResult(
            tools=[types.Tool.model_validate(d) for d in kit.definitions("mcp")]
        )

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        kit = service.toolkit(_caller(service, ctx), drafts=_drafts(ctx))
        return reply_result(await kit.acall(params.name, params.arguments or {}))

    server: Server[Any] = Server(
        "harbor-confluence-node",
        version=__version__,
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )
    manager = StreamableHTTPSessionManager(app=server, stateless=True, json_response=True)

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            header = request.headers.get("authorization", "")
            scheme, _, token = header.partition(" ")
            try:
                service.authenticate(
                    token.strip() if scheme.lower() == "bearer" else None, where="mcp"
                )
            except HarborError as exc:
                response = JSONResponse(
                    {"ok": False, "error": exc.to_dict(), "exit_code": exc.exit_code},
                    status_code=error_status(exc),
                    headers={"WWW-Authenticate": 'Bearer realm="harbor-node"'},
                )
                await response(scope, receive, send)
                return
        await manager.handle_request(scope, receive, send)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        async with manager.run():
            yield

    return _ASGI(handle), lifespan


class _ASGI:
    """A plain ASGI callable (a Starlette ``Route`` wraps bare functions as endpoints)."""

    def __init__(self, handle: Callable[[Scope, Receive, Send], Any]) -> None:
        self._handle = handle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._handle(scope, receive, send)
