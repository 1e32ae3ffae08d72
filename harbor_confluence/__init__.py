"""harbor_confluence: a policy-governed action runner for the Confluence Cloud REST API.

Agents call named actions from a manifest; every input is validated, every call is
decided by policy before anything leaves, and results come back as compact summaries.

    from harbor_confluence import Port, Toolkit
    with Port.load() as port:
        result = port.call("get-page", {"path": {"id": "98391"}})
        if result.outcome == "held":
            port.status(result.ticket)           # pending, rejected (reason), result
        kit = Toolkit(port, toolsets=["pages"])  # the tools an agent is offered
        kit.definitions("openai")                # denied actions are left out
        kit.call("get-page", {"id": "98391"})    # flat arguments; a ToolReply back

On a node (an agent with a shell must not own the policy or the queue) the same calls go
through an authenticated client; operators use its ``reviews`` and ``audit`` services:

    from harbor_confluence import connect
    client = connect()                 # NodeClient when HARBOR_NODE_URL/_SOCKET is set
    client.call("get-page", {"path": {"id": "98391"}})
    client.reviews.approve("t_...")    # an operator token; an agent token gets Forbidden

Every refusal is a ``HarborError`` with a stable ``code`` and ``exit_code``.

Names are imported on first use (PEP 562) so that the CLI, which agents spawn as a
subprocess, does not pay for modules a command does not need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .adapters.tools import Toolkit, ToolReply, ToolSpec
    from .catalog.dock import CatalogRefused
    from .catalog.drafts import DraftDenied, DraftError
    from .errors import (
        EXIT_DENIED,
        EXIT_ERROR,
        EXIT_HELD,
        EXIT_INVALID,
        EXIT_OK,
        EXIT_UPSTREAM,
        AuthError,
        Busy,
        ConfigError,
        Forbidden,
        HarborError,
        InputError,
        ManifestError,
        NodeUnavailable,
        PolicyDenied,
        ReadFailed,
        RemoteError,
        Violation,
    )
    from .node.client import NodeAudit, NodeClient, NodeReviews, connect
    from .paths import default_manifest_path, default_policy_path, live_port_paths
    from .pipeline.executor import ActionInfo, Port
    from .pipeline.manifest import Action, Manifest, load_manifest
    from .pipeline.pagination import Pagination
    from .pipeline.policy import Decision, Policy, load_policy
    from .pipeline.request import PreparedRequest
    from .pipeline.summary import Result
    from .review.audit import AuditError, AuditLog
    from .review.queue import (
        QueueError,
        QueueInputError,
        QueueRefused,
        ReviewQueue,
        Ticket,
        TicketNotFound,
    )
    from .review.service import Reviews
    from .secrets.credentials import Credential, ReconnectRequired

__version__ = "0.1.0"

_WHERE = {
    "AuditLog": "review.audit",
    "ReadFailed": "errors",
    "Pagination": "pipeline.pagination",
    "live_port_paths": "paths",
    "Credential": "secrets.credentials",
    "EXIT_DENIED": "errors",
    "EXIT_ERROR": "errors",
    "EXIT_HELD": "errors",
    "EXIT_INVALID": "errors",
    "EXIT_OK": "errors",
    "EXIT_UPSTREAM": "errors",
    "AuthError": "errors",
    "Busy": "errors",
    "ConfigError": "errors",
    "Forbidden": "errors",
    "NodeUnavailable": "errors",
    "RemoteError": "errors",
    "NodeAudit": "node.client",
    "NodeClient": "node.client",
    "NodeReviews": "node.client",
    "connect": "node.client",
    "QueueError": "review.queue",
    "QueueInputError": "review.queue",
    "AuditError": "review.audit",
    "CatalogRefused": "catalog.dock",
    "DraftError": "catalog.drafts",
    "DraftDenied": "catalog.drafts",
    "ReconnectRequired": "secrets.credentials",
    "QueueRefused": "review.queue",
    "TicketNotFound": "review.queue",
    "Reviews": "review.service",
    "HarborError": "errors",
    "InputError": "errors",
    "ManifestError": "errors",
    "PolicyDenied": "errors",
    "Violation": "errors",
    "ActionInfo": "pipeline.executor",
    "Port": "pipeline.executor",
    "default_manifest_path": "paths",
    "default_policy_path": "paths",
    "Action": "pipeline.manifest",
    "Manifest": "pipeline.manifest",
    "load_manifest": "pipeline.manifest",
    "Decision": "pipeline.policy",
    "Policy": "pipeline.policy",
    "load_policy": "pipeline.policy",
    "ReviewQueue": "review.queue",
    "Ticket": "review.queue",
    "PreparedRequest": "pipeline.request",
    "Result": "pipeline.summary",
    "ToolReply": "adapters.tools",
    "ToolSpec": "adapters.tools",
    "Toolkit": "adapters.tools",
}

__all__ = [
    "EXIT_DENIED",
    "EXIT_ERROR",
    "EXIT_HELD",
    "EXIT_INVALID",
    "EXIT_OK",
    "EXIT_UPSTREAM",
    "Action",
    "ActionInfo",
    "AuditError",
    "AuditLog",
    "AuthError",
    "Busy",
    "CatalogRefused",
    "ConfigError",
    "Credential",
    "Decision",
    "DraftDenied",
    "DraftError",
    "Forbidden",
    "HarborError",
    "InputError",
    "Manifest",
    "ManifestError",
    "NodeAudit",
    "NodeClient",
    "NodeReviews",
    "NodeUnavailable",
    "Pagination",
    "Policy",
    "PolicyDenied",
    "Port",
    "PreparedRequest",
    "QueueError",
    "QueueInputError",
    "QueueRefused",
    "ReadFailed",
    "ReconnectRequired",
    "RemoteError",
    "Result",
    "ReviewQueue",
    "Reviews",
    "Ticket",
    "TicketNotFound",
    "ToolReply",
    "ToolSpec",
    "Toolkit",
    "Violation",
    "connect",
    "default_manifest_path",
    "default_policy_path",
    "live_port_paths",
    "load_manifest",
    "load_policy",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'harbor_confluence' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return [*__all__, "__version__"]
