"""Running an approved ticket: vet the stored request, then classify how sending ended.

The queue guarantees a ticket is claimed once and that its request is the one approved.
This module adds the checks that need the port: the stored request must still be a request
this port's manifest could have built for the tenant (a forged row cannot aim elsewhere),
and the answer decides ``succeeded``, ``failed`` or ``unknown`` — unknown whenever the
request may have reached Confluence without us learning the outcome.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from .transport import RetryPolicy, SendFailure

if TYPE_CHECKING:
    from .manifest import Manifest
    from .queue import Ticket
    from .request import Target

__all__ = ["lease_seconds", "outcome_of", "vet_stored_request"]

# A gateway gave up waiting for Confluence: the write may or may not have landed.
_MAYBE_APPLIED = frozenset({502, 504})


def _route_pattern(route: str) -> re.Pattern[str]:
    regex = "".join(
        "[^/]+" if part.startswith("{") else re.escape(part)
        for part in re.split(r"(\{[^}]+\})", route)
        if part
    )
    return re.compile(rf"\A{regex}\Z")


def vet_stored_request(ticket: Ticket, manifest: Manifest, target: Target) -> str | None:
    """Why this port must not send the stored request, or None when it may."""
    if ticket.port != manifest.port.name:
        return f"ticket {ticket.id} belongs to port {ticket.port!r}, not {manifest.port.name!r}"
    action = manifest.by_name.get(ticket.action)
    if action is None:
        return f"ticket {ticket.id}'s action {ticket.action!r} is not in the loaded manifest"
    if ticket.method != action.method:
        return f"ticket {ticket.id} says {ticket.method} but {action.name} is {action.method}"
    if not target.owns(ticket.url):
        return f"ticket {ticket.id}'s URL is not on the configured tenant origin {target.origin}"
    path = urlsplit(ticket.url).path
    if not path.startswith(target.prefix) or not _route_pattern(action.route).match(
        path[len(target.prefix) :]
    ):
        return f"ticket {ticket.id}'s URL does not fit {action.name}'s route {action.route}"
    content_type = ticket.content_type or ""
    mode = action.request_body_mode
    if mode == "none" and (ticket.body is not None or content_type):
        return f"ticket {ticket.id} carries a body but {action.name} takes none"
    if mode == "json" and content_type != "application/json":
        return f"ticket {ticket.id}'s content type is not JSON as {action.name} requires"
    if mode == "multipart" and not content_type.startswith("multipart/form-data"):
        return f"ticket {ticket.id}'s content type is not multipart as {action.name} requires"
    allowed = {k.lower(): v for k, v in action.headers.items()}
    for name, value in ticket.headers.items():
        if allowed.get(name.lower()) != value:
            return f"ticket {ticket.id} carries header {name!r}, which {action.name} does not set"
    return None


def outcome_of(response: httpx.Response | SendFailure) -> str:
    """``succeeded``, ``failed`` (Confluence said no, or nothing left) or ``unknown``."""
    if isinstance(response, SendFailure):
        return "unknown" if response.maybe_sent else "failed"
    if 200 <= response.status_code < 300:
        return "succeeded"
    if response.status_code in _MAYBE_APPLIED:
        return "unknown"
    return "failed"


def lease_seconds(timeout: httpx.Timeout, retry: RetryPolicy) -> float:
    """How long an execution may take before another process may call it abandoned."""
    per_try = (timeout.read or 30.0) + (timeout.connect or 10.0) + (timeout.write or 0.0)
    return per_try * (retry.max_retries + 1) + retry.max_wait * retry.max_retries + 60.0


def stored_result(
    response: httpx.Response | SendFailure, summary: dict[str, Any], state: str, ticket_id: str
) -> dict[str, Any]:
    """The json_summary kept on the ticket, with how the execution ended."""
    out = dict(summary)
    out["ticket"] = ticket_id
    out["state"] = state
    if isinstance(response, SendFailure):
        out["message"] = (
            "the request may have reached Confluence but no answer arrived; it will not be "
            "retried. An operator reconciles it (harbor-confluence queue resolve)"
            if response.maybe_sent
            else "the request could not be sent; nothing reached Confluence"
        )
    elif state == "unknown":
        out["message"] = (
            f"a gateway answered {response.status_code}: the request may have been applied; "
            "an operator reconciles it (harbor-confluence queue resolve)"
        )
    return out
