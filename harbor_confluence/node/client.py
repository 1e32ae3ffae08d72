"""The client side of a node: what agents and operators hold instead of a ``Port``.

``NodeClient`` offers the agent-facing calls of a port (``call``/``acall``,
``paginate``, ``describe``, ``actions``, ``status``, ``cancel``) and, as services,
the operator's ``reviews`` and ``audit`` — with the same types and the same exceptions as
embedded.  It holds only the node's address and a bearer token: no credential, no
policy, no queue.  The identity on every ticket and approval is the token's.

    client = NodeClient.from_env()   # HARBOR_NODE_URL or HARBOR_NODE_SOCKET, HARBOR_NODE_TOKEN
    client.call("get-page", {"path": {"id": "98305"}})
    client.reviews.approve("t_...")  # an operator token; an agent token gets Forbidden
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import httpx

from harbor_confluence.errors import (
    EXIT_ERROR,
    ConfigError,
    HarborError,
    NodeUnavailable,
    error_from_dict,
)
from harbor_confluence.pipeline.transport import HttpClients

if TYPE_CHECKING:
    from harbor_confluence.adapters.tools import ToolReply
    from harbor_confluence.pipeline.executor import ActionInfo
    from harbor_confluence.pipeline.pagination import Pagination
    from harbor_confluence.pipeline.summary import Result
    from harbor_confluence.review.audit import VerifyResult
    from harbor_confluence.review.queue import Ticket

__all__ = [
    "NODE_CA_ENV",
    "NODE_SOCKET_ENV",
    "NODE_TOKEN_ENV",
    "NODE_URL_ENV",
    "NodeAudit",
    "NodeClient",
    "NodeDrafts",
    "NodeReviews",
    "NodeToolkit",
    "client_mode",
    "connect",
]

NODE_URL_ENV = "HARBOR_NODE_URL"
NODE_SOCKET_ENV = "HARBOR_NODE_SOCKET"
NODE_TOKEN_ENV = "HARBOR_NODE_TOKEN"  # noqa: S105 - a variable name
NODE_CA_ENV = "HARBOR_NODE_CA"
_SOCKET_BASE = "http://harbor-node"


def client_mode() -> bool:
    """Whether this process talks to a node (``HARBOR_NODE_URL`` or ``_SOCKET`` is set)."""
    return bool(os.environ.get(NODE_URL_ENV) or os.environ.get(NODE_SOCKET_ENV))


def _seg(value: str) -> str:
    return quote(value, safe="")


class NodeClient(HttpClients):
    """An authenticated connection to a node (unix socket or HTTP(S))."""

    def __init__(
        self,
        url: str | None = None,
        *,
        socket: str | Path | None = None,
        token: str | None = None,
        timeout: float = 120.0,
        verify: str | bool = True,
    ) -> None:
        if (url is None) == (socket is None):
            raise ConfigError(
                f"give the node's URL or its socket ({NODE_URL_ENV} or {NODE_SOCKET_ENV})"
            )
        # No token still asks the node, which refuses it (exit 3) and audits the attempt.
        self._token = token or None
        if socket is not None:
            self.where = f"unix:{socket}"
            base = _SOCKET_BASE
            transport: httpx.BaseTransport | None = httpx.HTTPTransport(uds=str(socket))
            atransport: httpx.AsyncBaseTransport | None = httpx.AsyncHTTPTransport(uds=str(socket))
        else:
            assert url is not None
            parts = urlsplit(url)
            loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
            if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
                raise ConfigError(f"{NODE_URL_ENV} must be https://, or http:// on loopback")
            self.where = base = url.rstrip("/")
            transport = atransport = None
        self._settings: dict[str, Any] = {
            "base_url": base,
            "timeout": httpx.Timeout(timeout, connect=10.0),
            "follow_redirects": False,
            "verify": verify,
        }
        self._transport = transport
        self._atransport = atransport
        self.reviews = NodeReviews(self)
        self.audit = NodeAudit(self)
        self.drafts = NodeDrafts(self)

    @classmethod
    def from_env(cls, **kwargs: Any) -> NodeClient:
        """From ``HARBOR_NODE_URL``/``HARBOR_NODE_SOCKET``, ``HARBOR_NODE_TOKEN`` and
        ``HARBOR_NODE_CA`` (a CA bundle for a node behind TLS)."""
        url = os.environ.get(NODE_URL_ENV) or None
        sock = os.environ.get(NODE_SOCKET_ENV) or None
        if url and sock:
            raise ConfigError(f"set {NODE_URL_ENV} or {NODE_SOCKET_ENV}, not both")
        ca = os.environ.get(NODE_CA_ENV)
        if ca:
            kwargs.setdefault("verify", ca)
        return cls(url, socket=sock, token=os.environ.get(NODE_TOKEN_ENV), **kwargs)

    def __repr__(self) -> str:
        return f"<NodeClient {self.where}>"  # never the token

    # -- HTTP -------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        if self._token is None:
            return {"Accept": "application/json"}
        return {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}

    def _new_client(self) -> httpx.Client:
        return httpx.Client(transport=self._transport, **self._settings)

    def _new_aclient(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self._atransport, **self._settings)

    def _answer(self, response: httpx.Response) -> Any:
        try:
            data = response.json()
        except ValueError:
            raise NodeUnavailable(
                f"the node at {self.where} answered HTTP {response.status_code} without JSON"
            ) from None
        if response.is_success:
            return data
        error = data.get("error") if isinstance(data, dict) else None
        if not isinstance(error, dict):
            raise NodeUnavailable(f"the node at {self.where} answered HTTP {response.status_code}")
        raise error_from_dict(error, int(data.get("exit_code") or EXIT_ERROR))

    def request(self, method: str, path: str, json: Any = None, params: Any = None) -> Any:
        with self._reaching():
            response = self.client.request(
                method, path, json=json, params=params, headers=self._headers()
            )
        return self._answer(response)

    async def arequest(self, method: str, path: str, json: Any = None, params: Any = None) -> Any:
        with self._reaching():
            response = await self.aclient.request(
                method, path, json=json, params=params, headers=self._headers()
            )
        return self._answer(response)

    @contextlib.contextmanager
    def _reaching(self) -> Iterator[None]:
        """A node that cannot be reached is one error, whichever client tried."""
        try:
            yield
        except httpx.HTTPError as exc:
            raise NodeUnavailable(
                f"cannot reach the node at {self.where}: {type(exc).__name__}"
            ) from None

    # -- agent-facing -----------------------------------------------------------------

    def whoami(self) -> dict[str, Any]:
        return dict(self.request("GET", "/v1/whoami"))

    def actions(self) -> list[ActionInfo]:
        from harbor_confluence.pipeline.executor import ActionInfo

        rows = self.request("GET", "/v1/actions")
        return [
            ActionInfo(
                r["name"], r["description"], r["method"], r["route"], r["kind"], r["toolset"],
                r["decision"], r["rule"], tuple(r.get("conditional_rules", ())),
            )
            for r in rows
        ]  # fmt: skip

    def describe(self, name: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/v1/actions/{_seg(name)}"))

    def call(self, name: str, data: Any = None, *, requester: str | None = None) -> Result:
        """Run one action on the node; the requester is the token's identity."""
        from .wire import result_from_wire

        _no_requester(requester)
        return result_from_wire(
            self.request("POST", f"/v1/actions/{_seg(name)}/call", json={"input": data})
        )

    async def acall(self, name: str, data: Any = None, *, requester: str | None = None) -> Result:
        from .wire import result_from_wire

        _no_requester(requester)
        return result_from_wire(
            await self.arequest("POST", f"/v1/actions/{_seg(name)}/call", json={"input": data})
        )

    def paginate(
        self,
        name: str,
        data: Any = None,
        *,
        max_items: int | None = None,
        max_requests: int | None = None,
        requester: str | None = None,
    ) -> Pagination:
        """Every item of a paged listing, one node call per page (each one decided)."""
        from harbor_confluence.pipeline.pagination import (
            DEFAULT_MAX_ITEMS,
            DEFAULT_MAX_REQUESTS,
            Pagination,
        )

        _no_requester(requester)
        mode = self.describe(name).get("paging")
        return Pagination(
            lambda action, page: self.call(action, page),
            name,
            data,
            max_items=max_items or DEFAULT_MAX_ITEMS,
            max_requests=max_requests or DEFAULT_MAX_REQUESTS,
            mode=mode,
            acall=lambda action, page: self.acall(action, page),
        )

    def status(self, ticket_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/v1/tickets/{_seg(ticket_id)}/status"))

    def wait(
        self, ticket_id: str, timeout: float = 30, *, state: str | None = None
    ) -> dict[str, Any]:
        """Block (at most ``timeout`` s, up to 60) until the ticket leaves ``state`` (default:
        the one it is in), then its status: an agent waits for approval without polling."""
        params: dict[str, Any] = {"timeout": int(min(max(timeout, 0), 60))}
        if state is not None:
            params["state"] = state
        return dict(self.request("GET", f"/v1/tickets/{_seg(ticket_id)}/wait", params=params))

    def ticket(self, ticket_id: str) -> Ticket:
        from .wire import ticket_from_wire

        return ticket_from_wire(self.request("GET", f"/v1/tickets/{_seg(ticket_id)}"))

    def cancel(self, ticket_id: str, *, reason: str | None = None) -> Ticket:
        from .wire import ticket_from_wire

        return ticket_from_wire(
            self.request("POST", f"/v1/tickets/{_seg(ticket_id)}/cancel", json={"reason": reason})
        )

    # -- tools ------------------------------------------------------------------------

    def tools(self, format: str = "mcp", **selection: Any) -> dict[str, Any]:
        """Tool definitions for this token's grant (``shape``, ``include``, ...)."""
        return dict(self.request("POST", "/v1/tools", json={"format": format, **selection}))

    async def atool_call(
        self, name: str, arguments: Mapping[str, Any] | None, **selection: Any
    ) -> dict[str, Any]:
        body = {"name": name, "arguments": dict(arguments or {}), **selection}
        return dict(await self.arequest("POST", "/v1/tools/call", json=body))

    # -- the live policy (operators) -----------------------------------------------------

    def policy(self) -> str:
        return str(self.request("GET", "/v1/policy")["text"])

    def set_policy(self, text: str) -> dict[str, Any]:
        return dict(self.request("PUT", "/v1/policy", json={"text": text}))


def _no_requester(requester: str | None) -> None:
    if requester is not None:
        raise ConfigError("on a node the requester is your token's identity; do not pass one")


class NodeToolkit:
    """The node's tools for this token, for a local MCP server (``mcp`` in client mode).

    Definitions and calls are the node's (its grant, its policy); this only carries them.
    """

    def __init__(self, client: NodeClient, **selection: Any) -> None:
        self._client = client
        self._selection = selection

    def definitions(self, format: Any = "mcp") -> list[dict[str, Any]]:
        return list(self._client.tools(format, **self._selection)["tools"])

    async def acall(
        self, name: str, arguments: Any = None, *, requester: str | None = None
    ) -> ToolReply:
        from harbor_confluence.adapters.tools import ToolReply

        try:
            d = await self._client.atool_call(name, arguments, **self._selection)
        except HarborError as exc:  # the node is gone, or the token was revoked
            payload = {"ok": False, "outcome": "refused", "action": name, "error": exc.to_dict()}
            return ToolReply(payload, f"{name}: {exc}", is_error=True)
        return ToolReply(dict(d["payload"]), str(d["headline"]), is_error=bool(d["is_error"]))

    async def aclose(self) -> None:
        await self._client.aclose()


class NodeReviews:
    """The review queue over a node (see :class:`harbor_confluence.review.service.Reviews`)."""

    def __init__(self, client: NodeClient) -> None:
        self._client = client

    def _ticket(self, method: str, path: str, body: Any = None) -> Ticket:
        from .wire import ticket_from_wire

        return ticket_from_wire(self._client.request(method, path, json=body))

    def list(
        self, state: str | None = None, limit: int = 50, after: str | None = None
    ) -> list[Ticket]:
        from .wire import ticket_from_wire

        params = {
            k: v
            for k, v in {"state": state, "limit": limit, "after": after}.items()
            if v is not None
        }
        return [
            ticket_from_wire(t) for t in self._client.request("GET", "/v1/tickets", params=params)
        ]

    def show(self, ticket_id: str) -> Ticket:
        return self._client.ticket(ticket_id)

    def status(self, ticket_id: str) -> dict[str, Any]:
        return self._client.status(ticket_id)

    def approve(
        self,
        ticket_id: str,
        *,
        reason: str | None = None,
        fingerprint: str | None = None,
        run: bool = True,
    ) -> Ticket:
        body = {"reason": reason, "fingerprint": fingerprint, "run": run}
        return self._ticket("POST", f"/v1/tickets/{_seg(ticket_id)}/approve", body)

    def reject(self, ticket_id: str, reason: str) -> Ticket:
        return self._ticket("POST", f"/v1/tickets/{_seg(ticket_id)}/reject", {"reason": reason})

    def run(self, ticket_id: str) -> Ticket:
        return self._ticket("POST", f"/v1/tickets/{_seg(ticket_id)}/run")

    def cancel(self, ticket_id: str, reason: str | None = None) -> Ticket:
        return self._client.cancel(ticket_id, reason=reason)

    def resolve(self, ticket_id: str, outcome: str, note: str | None = None) -> Ticket:
        body = {"outcome": outcome, "note": note}
        return self._ticket("POST", f"/v1/tickets/{_seg(ticket_id)}/resolve", body)


class NodeDrafts:
    """Drafts over a node, as the token's identity (``client.drafts``): the agent's side —
    ``overview``, ``show``, ``propose``, ``validate``, ``test``, ``request_publication``.
    Publishing is the node operator's act on the node host (``drafts publish``).

    The same methods as the draft tools' desk (``tools.DraftDesk``); ``who`` is refused
    like a requester: the identity is the token's.
    """

    def __init__(self, client: NodeClient) -> None:
        self._client = client

    def overview(self, example: str | None = None) -> dict[str, Any]:
        """The live actions (name, method, route) and your drafts; ``example`` adds one live
        action's definition, the shape a proposal takes."""
        params = {"example": example} if example else None
        return dict(self._client.request("GET", "/v1/drafts", params=params))

    def list(self) -> list[dict[str, Any]]:
        return list(self.overview()["drafts"])

    def show(self, name: str) -> dict[str, Any]:
        return dict(self._client.request("GET", f"/v1/drafts/{_seg(name)}"))

    def propose(
        self, definition: Mapping[str, Any], *, replace: bool = False, who: str | None = None
    ) -> dict[str, Any]:
        _no_requester(who)
        body = {"definition": dict(definition), "replace": replace}
        return dict(self._client.request("POST", "/v1/drafts", json=body))

    def validate(self, name: str) -> dict[str, Any]:
        return dict(self._client.request("POST", f"/v1/drafts/{_seg(name)}/validate"))

    def test(
        self, name: str, data: Any = None, *, send: bool = False, who: str | None = None
    ) -> dict[str, Any]:
        _no_requester(who)
        body = {"input": data, "send": send}
        return dict(self._client.request("POST", f"/v1/drafts/{_seg(name)}/test", json=body))

    def request_publication(self, name: str, *, who: str | None = None) -> dict[str, Any]:
        _no_requester(who)
        path = f"/v1/drafts/{_seg(name)}/request-publication"
        return dict(self._client.request("POST", path))


class NodeAudit:
    """The node's audit log, read by an operator token (``verify``, ``tail``, ``records``)."""

    def __init__(self, client: NodeClient) -> None:
        self._client = client
        self.path = self.location = client.where

    def verify(self) -> VerifyResult:
        from harbor_confluence.review.audit import VerifyResult

        d = self._client.request("GET", "/v1/audit/verify")
        return VerifyResult(
            bool(d["ok"]),
            int(d["count"]),
            d.get("first_bad"),
            d.get("first_bad_seq"),
            d.get("reason"),
        )

    def tail(self, n: int = 20) -> list[dict[str, Any]]:
        return list(self._client.request("GET", "/v1/audit/records", params={"tail": n}))

    def records(self) -> list[dict[str, Any]]:
        return list(self._client.request("GET", "/v1/audit/records"))


def connect(**kwargs: Any) -> Any:
    """A node client when ``HARBOR_NODE_URL``/``_SOCKET`` is set, else the embedded port."""
    if client_mode():
        return NodeClient.from_env(**kwargs)
    from harbor_confluence.pipeline.executor import Port

    return Port.load(**kwargs)
