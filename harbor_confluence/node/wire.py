"""The node's JSON forms of tickets and results, so clients get the same types back.

A :class:`~harbor_confluence.review.queue.Ticket` travels with every field (the body as
base64, times as epoch seconds) and is rebuilt as a ``Ticket`` on the client, so the
CLI and Python callers format and branch on it exactly as they do embedded.  Never a
credential: tickets hold none.
"""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

from harbor_confluence.pipeline.summary import Result
from harbor_confluence.review.queue import Approval, Ticket

__all__ = ["result_from_wire", "ticket_from_wire", "ticket_to_wire"]

_RESULT_KEYS = ("status", "summary", "next_cursor", "count", "error", "ticket", "rule")


def ticket_to_wire(ticket: Ticket) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(ticket):
        value = getattr(ticket, f.name)
        if f.name == "body":
            value = None if value is None else base64.b64encode(value).decode()
        elif f.name == "approvals":
            value = [dataclasses.asdict(a) for a in value]
        out[f.name] = value
    return out


def ticket_from_wire(data: dict[str, Any]) -> Ticket:
    names = {f.name for f in dataclasses.fields(Ticket)}
    fields = {k: v for k, v in data.items() if k in names}
    body = fields.get("body")
    fields["body"] = None if body is None else base64.b64decode(body)
    fields["approvals"] = tuple(
        Approval(
            **{k: v for k, v in a.items() if k in {f.name for f in dataclasses.fields(Approval)}}
        )
        for a in fields.get("approvals") or ()
    )
    fields["headers"] = dict(fields.get("headers") or {})
    fields["review"] = dict(fields.get("review") or {})
    return Ticket(**fields)


def result_from_wire(data: dict[str, Any]) -> Result:
    known = {"ok", "action", "outcome", *_RESULT_KEYS}
    return Result(
        ok=bool(data.get("ok")),
        action=str(data.get("action", "")),
        outcome=data.get("outcome", "sent"),
        **{k: data[k] for k in _RESULT_KEYS if k in data},
        extra={k: v for k, v in data.items() if k not in known},
    )
