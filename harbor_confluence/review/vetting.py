"""Running an approved ticket: vet the stored request, then classify how sending ended.

The queue guarantees a ticket is claimed once and that its request is the one approved.
This module adds the checks that need the port: the stored request must still be a request
this port's manifest could have built for the tenant (a forged row cannot aim elsewhere),
and the answer decides ``succeeded``, ``failed`` or ``unknown`` — unknown whenever the
request may have reached Confluence without us learning the outcome: no answer (a
timeout, a reset, the deadline), an answer over the size cap, a gateway's 502/504, or a
2xx that is not Confluence's JSON.  ``failed`` is a definite refusal (4xx, 500, 503, a
redirect) or a request that never left.  None of them is sent again (see pipeline/transport.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from harbor_confluence.pipeline.summary import json_answer
from harbor_confluence.pipeline.transport import Limits, SendFailure

if TYPE_CHECKING:
    from harbor_confluence.pipeline.manifest import Manifest
    from harbor_confluence.pipeline.request import Target

    from .queue import Ticket

__all__ = ["lease_seconds", "outcome_of", "vet_stored_request"]

# A gateway gave up waiting for Confluence: the write may or may not have landed.
_MAYBE_APPLIED = frozenset({502, 504})


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
    if not path.startswith(target.prefix) or not action.compiled_route.fits(
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
        # A 2xx that is not JSON came from something other than Confluence's API (a
        # proxy's page, a login form): whether the write landed is not known.
        return "unknown" if json_answer(response)[1] is not None else "succeeded"
    if response.status_code in _MAYBE_APPLIED:
        return "unknown"
    return "failed"


def lease_seconds(limits: Limits) -> float:
    """How long an execution may take before another process may call it abandoned: the
    request's deadline (which bounds its attempts, waits and reads), once more for the
    read a versioned write makes after a 409 to say who changed the page, and a margin."""
    return 2 * limits.deadline + 60.0


def stored_result(
    response: httpx.Response | SendFailure, summary: dict[str, Any], state: str, ticket_id: str
) -> dict[str, Any]:
    """The json_summary kept on the ticket, with how the execution ended."""
    out = dict(summary)
    out["ticket"] = ticket_id
    out["state"] = state
    reconcile = "an operator reconciles it (harbor-confluence queue resolve)"
    if isinstance(response, SendFailure):
        if not response.maybe_sent:
            out["message"] = "the request could not be sent; nothing reached Confluence"
        elif response.kind in ("too_large", "deadline", "decoding"):
            out["message"] = (
                f"the request reached Confluence but its answer was refused ({response.message}); "
                f"it may have been applied and will not be retried. {reconcile.capitalize()}"
            )
        else:
            out["message"] = (
                "the request may have reached Confluence but no answer arrived; it will not be "
                f"retried. {reconcile.capitalize()}"
            )
    elif state == "unknown" and 200 <= response.status_code < 300:
        out["message"] = (
            f"Confluence answered {response.status_code} but not with JSON: the request may "
            f"have been applied; {reconcile}"
        )
    elif state == "unknown":
        out["message"] = (
            f"a gateway answered {response.status_code}: the request may have been applied; "
            f"{reconcile}"
        )
    return out
