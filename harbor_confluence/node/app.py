"""The node's HTTP API: a thin Starlette layer over :class:`NodeService`.

Every route but ``/healthz`` needs ``Authorization: Bearer <token>``; the identity comes
from the token alone.  Bodies are JSON and capped; answers are JSON.  A refusal is
``{"ok": false, "error": {...}, "exit_code": N}`` with the error's own code, so a client
raises the same exception (and the CLI exits the same way) as it would embedded.
The blocking work (SQLite, the upstream request) runs in worker threads.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from harbor_confluence import __version__
from harbor_confluence.errors import HarborError, InputError, Violation
from harbor_confluence.pipeline.documents import MAX_REQUEST_DEPTH, loads_json
from harbor_confluence.pipeline.pagination import (
    DEFAULT_MAX_ITEMS,
    DEFAULT_MAX_REQUESTS,
    HARD_MAX_ITEMS,
    HARD_MAX_REQUESTS,
)

from .identities import Identity
from .service import NodeService, error_status
from .wire import ticket_to_wire

if TYPE_CHECKING:
    from harbor_confluence.adapters.tools import Shape

__all__ = ["MAX_BODY_BYTES", "bearer", "build_app"]

MAX_BODY_BYTES = 16 * 1024 * 1024
log = logging.getLogger("harbor_confluence.node")

Handler = Callable[[Request, Identity, dict[str, Any]], Awaitable[Any]]


def _error(exc: HarborError) -> JSONResponse:
    headers = (
        {"WWW-Authenticate": 'Bearer realm="harbor-node"'}
        if exc.code == "unauthenticated"
        else None
    )
    return JSONResponse(
        {"ok": False, "error": exc.to_dict(), "exit_code": exc.exit_code},
        status_code=error_status(exc),
        headers=headers,
    )


def _bad(field: str, rule: str, message: str) -> InputError:
    return InputError("request", [Violation(field, rule, message)])


async def _json_body(request: Request) -> dict[str, Any]:
    if request.method in ("GET", "DELETE"):
        return {}
    size = 0
    chunks: list[bytes] = []
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _bad("body", "maxLength", f"is larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    data = loads_json(raw, "request", MAX_REQUEST_DEPTH, field="body")  # depth-capped
    if not isinstance(data, dict):
        raise _bad("body", "type", "must be a JSON object")
    return data


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _int(params: Any, name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise _bad(name, "type", "must be a whole number") from None
    if not low <= value <= high:
        raise _bad(name, "range", f"must be {low}..{high}")
    return value


def _text(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None or isinstance(value, str):
        return value
    raise _bad(name, "type", "must be a string")


def build_app(service: NodeService, *, mcp: bool = True) -> Starlette:
    """The node's ASGI app; with ``mcp`` (and the SDK installed) also MCP at ``/mcp``."""

    def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                ident = await run_in_threadpool(
                    service.authenticate,
                    bearer(request),
                    where=f"{request.method} {request.url.path}",
                )
                data = await _json_body(request)
                payload = await handler(request, ident, data)
            except HarborError as exc:
                return _error(exc)
            except Exception:
                log.exception("node: %s %s failed", request.method, request.url.path)
                internal = {"code": "internal", "message": "internal error; see the node log"}
                return JSONResponse(
                    {"ok": False, "error": internal, "exit_code": 1}, status_code=500
                )
            return JSONResponse(payload)

        return run

    def threaded(fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            return await run_in_threadpool(fn, *args, **kwargs)

        return call

    # -- agent-facing -----------------------------------------------------------------

    async def whoami(request: Request, ident: Identity, data: dict[str, Any]) -> Any:
        return service.whoami(ident)

    async def actions(request: Request, ident: Identity, data: dict[str, Any]) -> Any:
        return await threaded(service.actions)(ident)

    async def describe(request: Request, ident: Identity, data: dict[str, Any]) -> Any:
        return await threaded(service.describe)(ident, request.path_params["name"])

    async def call(request: Request, ident: Identity, data: dict[str, Any]) -> Any:
        result = await threaded(service.call)(ident, request.path_params["name"], data.get("input"))
        return result.to_dict()

    async def paginate(request: Request, ident: Identity, data: dict[str, Any]) -> Any:
        max_items = _int(data, "max_items", DEFAULT_MAX_ITEMS, 1, HARD_MAX_ITEMS)
        max_requests = _int(data, "max_requests", DEFAULT_MAX_REQUESTS, 1, HARD_MAX_REQUESTS)
        return await threaded(service.paginate)(
            ident, request.path_params["name"], data.get("input"), max_items, max_requests
        )

    async def tickets(request: Request, ident: Identity, data: dict[str, Any]) -> Any:
        q = request.query_params
        limit = _int(q, "limit", 50, 1, 1000)
        found = await threaded(service.tickets)(ident, q.get("state"), limit, q.get("after"))
        return [ticket_to_wire(t) for t in found]

    async def ticket(request: Request, ident: Identity, data: dict[str, Any]) -> Any:
        return ticket_to_wire(await threaded(service.ticket)(ident, request.path_params["id"]))

    async def status(request: Request, ident: Identity, data: dict[str, Any]) -> Any:
        return await threaded(service.status)(ident, request.path_params["id"])

    async def wait(request: Request, ident: Identity, data: dict[str, Any]) -> Any:
        q = request.query_params
        timeout = _int(q, "timeout", 30, 0, 60)
        return await threaded(service.wait)(
            ident, request.path_params["id"], timeout, q.get("state")
        )

    async def cancel(request: Request, ident: Identity, data: dict[str, Any]) -> Any:
        t = await threaded(service.cancel)(ident, request.path_params["id"], _text(data, "reason"))
        return ticket_to_wire(t)

    # -- operator-facing --------------------------------------------------------------

    async def approve(request: Request, ident: Identity, data: dict[str, Any]) -> Any:
        t = await threaded(service.approve)(
            ident,
            request.path_params["id"],
            reason=_text(data, "reason"),
            fingerprint=_text(data, "fingerprint"),
            run=data.get("run", True) is not False,
        )
        return ticket_to_wire(t)

    async def reject(request: Request, ident: Identity, data: dict[str, Any]) -> Any:
        reason = _text(data, "reason") or ""
        return ticket_to_wire(
            await threaded(service.reject)(ident, request.path_params["id"], reason)
        )

    async def run_ticket(request: Request, ident: Identity, data: dict[str, Any]) -> Any:
        return ticket_to_wire(await threaded(service.execute)(ident, request.path_params["id"]))

    async def resolve(request: Request, ident: Identity, data: dict[str, Any]) -> Any:
        t = await threaded(service.resolve)(
            ident, request.path_params["id"], _text(data, "outcome") or "", _text(data, "note")
        )
        return ticket_to_wire(t)

    async def audit_verify(request: Request, ident: Identity, data: dict[str, Any]) -> Any:
        return await threaded(service.audit_verify)(ident)

    async def audit_records(request: Request, ident: Identity, data: dict[str, Any]) -> Any:
        raw = request.query_params.get("tail")
        tail = None if raw is None else _int(request.query_params, "tail", 20, 0, 100_000)
        return await threaded(service.audit_records)(ident, tail)

    async def policy_get(request: Request, ident: Identity, data: dict[str, Any]) -> Any:
        return {"text": await threaded(service.policy_text)(ident)}

    async def policy_put(request: Request, ident: Identity, data: dict[str, Any]) -> Any:
        text = _text(data, "text")
        if not text:
            raise _bad("text", "required", "the policy document is required")
        return await threaded(service.set_policy)(ident, text)

    # -- tools (the stdio MCP bridge and `tools` in client mode) ----------------------

    def _kit(ident: Identity, data: dict[str, Any]) -> Any:
        shape = data.get("shape") or "per-action"
        if shape not in ("per-action", "compact"):
            raise _bad("shape", "enum", "must be per-action or compact")
        if shape not in ("per-action", "compact"):
            raise _bad("shape", "enum", "must be per-action or compact")
        lists = {}
        for name in ("include", "exclude", "toolsets"):
            value = data.get(name)
            if value is not None and not (
                isinstance(value, list) and all(isinstance(v, str) for v in value)
            ):
                raise _bad(name, "type", "must be a list of strings")
            lists[name] = value
        drafts = data.get("drafts", False) is True  # the draft tools (node/drafts.py)
        return service.toolkit(
            ident, cast("Shape", shape), kind=_text(data, "kind"), drafts=drafts, **lists
        )

    async def tools(request: Request, ident: Identity, data: dict[str, Any]) -> Any:
        fmt = _text(data, "format") or "mcp"
        kit = await threaded(_kit)(ident, data)
        return {"tools": kit.definitions(fmt), "actions": kit.actions}

    async def tool_call(request: Request, ident: Identity, data: dict[str, Any]) -> Any:
        name = _text(data, "name")
        if not name:
            raise _bad("name", "required", "the tool name is required")
        arguments = data.get("arguments") or {}
        if not isinstance(arguments, dict):
            raise _bad("arguments", "type", "must be a JSON object")
        kit = await threaded(_kit)(ident, data)
        reply = await kit.acall(name, arguments)
        return {"payload": reply.payload, "headline": reply.headline, "is_error": reply.is_error}

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True, "service": "harbor-node", "version": __version__})

    def r(path: str, handler: Handler, method: str = "GET") -> Route:
        return Route(path, endpoint(handler), methods=[method])

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        r("/v1/whoami", whoami),
        r("/v1/actions", actions),
        r("/v1/actions/{name}", describe),
        r("/v1/actions/{name}/call", call, "POST"),
        r("/v1/actions/{name}/paginate", paginate, "POST"),
        r("/v1/tickets", tickets),
        r("/v1/tickets/{id}", ticket),
        r("/v1/tickets/{id}/status", status),
        r("/v1/tickets/{id}/wait", wait),
        r("/v1/tickets/{id}/cancel", cancel, "POST"),
        r("/v1/tickets/{id}/approve", approve, "POST"),
        r("/v1/tickets/{id}/reject", reject, "POST"),
        r("/v1/tickets/{id}/run", run_ticket, "POST"),
        r("/v1/tickets/{id}/resolve", resolve, "POST"),
        r("/v1/audit/verify", audit_verify),
        r("/v1/audit/records", audit_records),
        r("/v1/policy", policy_get),
        r("/v1/policy", policy_put, "PUT"),
        r("/v1/tools", tools, "POST"),
        r("/v1/tools/call", tool_call, "POST"),
    ]
    # -- drafts: agents propose, validate, test, ask for publication (node/drafts_api.py) --
    from .drafts_api import draft_routes

    routes.extend(draft_routes(service, endpoint))
    # The review page (/review, node/review/) and webhooks (node/webhooks.py) both follow
    # the service's ticket changes.
    from .webhooks import attach_webhooks

    attach_webhooks(service)
    service.follow_shared_queue()
    try:
        from .review import review_routes
    except ImportError:  # Jinja2 is not installed: the API still serves
        log.warning("node: jinja2 is not installed; the review page (/review) is not served")
    else:
        routes.extend(review_routes(service))
    lifespan = None
    if mcp:
        try:
            from .mcp import mount_mcp
        except ImportError:  # the [mcp] extra is not installed: the rest still serves
            log.warning("node: the mcp SDK is not installed; /mcp is not served")
        else:
            mounted, lifespan = mount_mcp(service)
            routes.append(Route("/mcp", mounted))
    return Starlette(routes=routes, lifespan=lifespan)
