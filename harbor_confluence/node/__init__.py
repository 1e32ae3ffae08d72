"""The Harbor node: one service that alone holds the credential, policy, queue and audit.

Agents and operators reach it only with bearer tokens (``node add-agent``,
``node add-operator``); the identity on every ticket and approval is the token's.

- ``identities``: tokens (stored as hashes), roles and agent grants
- ``service``: what each identity may do, independent of HTTP
- ``app``: the HTTP API (Starlette) and ``mcp``: MCP at ``/mcp``
- ``server``: the state directory, the unix socket and TCP/TLS listeners, uvicorn
- ``client``: ``NodeClient``, what agents and operators hold instead of a ``Port``

Only ``client`` and ``identities`` are light: the server side imports Starlette and
uvicorn (the ``[node]`` extra) when it is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import NodeAudit, NodeClient, NodeReviews, client_mode, connect
    from .identities import Grant, Identity, IdentityStore

__all__ = [
    "Grant",
    "Identity",
    "IdentityStore",
    "NodeAudit",
    "NodeClient",
    "NodeReviews",
    "client_mode",
    "connect",
]

_WHERE = {
    "Grant": "identities",
    "Identity": "identities",
    "IdentityStore": "identities",
    "NodeAudit": "client",
    "NodeClient": "client",
    "NodeReviews": "client",
    "client_mode": "client",
    "connect": "client",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'harbor_confluence.node' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
