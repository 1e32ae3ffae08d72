"""The node's draft routes (``/v1/drafts``): the agent's side of proposing actions.

    GET  /v1/drafts                          live actions and your drafts (?example=NAME)
    POST /v1/drafts                          {"definition": {...}, "replace": false}
    GET  /v1/drafts/{name}                   one of your drafts in full
    POST /v1/drafts/{name}/validate          manifest rules + Atlassian's OpenAPI document
    POST /v1/drafts/{name}/test              {"input": {...}, "send": false}
    POST /v1/drafts/{name}/request-publication

Any token may call them, as itself (``drafts.py`` in this package says what each may do);
publishing is an operator's act on the node host, never a route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from harbor_confluence.errors import InputError, Violation

from . import drafts

if TYPE_CHECKING:
    from .identities import Identity
    from .service import NodeService

__all__ = ["draft_routes"]

Handler = Callable[[Request, "Identity", dict[str, Any]], Awaitable[Any]]
Endpoint = Callable[[Handler], Callable[[Request], Awaitable[Response]]]


def _bad(field: str, rule: str, message: str) -> InputError:
    return InputError("request", [Violation(field, rule, message)])


def draft_routes(service: NodeService, endpoint: Endpoint) -> list[Route]:
    """The routes, each wrapped by the app's ``endpoint`` (bearer auth, JSON, refusals)."""

    async def overview(request: Request, ident: Identity, data: dict[str, Any]) -> Any:
        example = request.query_params.get("example") or None
        return await run_in_threadpool(drafts.drafts_overview, service, ident, example)

    async def propose(request: Request, ident: Identity, data: dict[str, Any]) -> Any:
        definition = data.get("definition")
        if not isinstance(definition, dict):
            raise _bad("definition", "type", "must be an action definition (an object)")
        replace = data.get("replace", False)
        if not isinstance(replace, bool):
            raise _bad("replace", "type", "must be true or false")
        return await run_in_threadpool(
            lambda: drafts.draft_propose(service, ident, definition, replace=replace)
        )

    async def show(request: Request, ident: Identity, data: dict[str, Any]) -> Any:
        name = request.path_params["name"]
        return await run_in_threadpool(drafts.draft_show, service, ident, name)

    async def check(request: Request, ident: Identity, data: dict[str, Any]) -> Any:
        name = request.path_params["name"]
        return await run_in_threadpool(drafts.draft_validate, service, ident, name)

    async def test(request: Request, ident: Identity, data: dict[str, Any]) -> Any:
        name = request.path_params["name"]
        send = data.get("send", False)
        if not isinstance(send, bool):
            raise _bad("send", "type", "must be true or false")
        value = data.get("input")
        return await run_in_threadpool(
            lambda: drafts.draft_test(service, ident, name, value, send=send)
        )

    async def ask(request: Request, ident: Identity, data: dict[str, Any]) -> Any:
        name = request.path_params["name"]
        return await run_in_threadpool(drafts.draft_request_publication, service, ident, name)

    def r(path: str, handler: Handler, method: str = "GET") -> Route:
        return Route(path, endpoint(handler), methods=[method])

    return [
        r("/v1/drafts", overview),
        r("/v1/drafts", propose, "POST"),
        r("/v1/drafts/{name}", show),
        r("/v1/drafts/{name}/validate", check, "POST"),
        r("/v1/drafts/{name}/test", test, "POST"),
        r("/v1/drafts/{name}/request-publication", ask, "POST"),
    ]
