"""The review page's queue list: pending tickets first, filtered, paged, with bounded work.

Why it is built this way:

- The store pages by state in (created_at, id) order on its (state, created_at, id)
  index, so the list walks the states in a fixed order (pending first, then approved,
  executing, unknown, failed, succeeded, rejected, cancelled, expired), oldest first
  within each, and a cursor is "state.ticket-id": cheap to resume at any size.
- Filters the store cannot apply (action, requester, space) are applied page by page.
  One request looks at no more than ``budget`` tickets; if that runs out before the page
  is full, the page says how far it got and offers to continue from there.  Memory and
  time per request stay bounded at any queue size; a rare filter costs more clicks.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from harbor_confluence.review.queue import STATES, ReviewQueue, Ticket

__all__ = ["STATE_ORDER", "Filters", "ListPage", "list_tickets", "ticket_space", "ticket_title"]

STATE_ORDER: tuple[str, ...] = (
    "pending",
    "approved",
    "executing",
    "unknown",
    "failed",
    "succeeded",
    "rejected",
    "cancelled",
    "expired",
)
assert set(STATE_ORDER) == set(STATES)
_CURSOR = re.compile(r"^([a-z]+)\.([A-Za-z0-9_-]{0,80})$")  # "state." starts a state
_SPACE_PATH = re.compile(r"/spaces/([^/?#]+)")
_SPACE_QUERY = ("spaceId", "space-id", "spaceKey", "space-key", "space_id")
_MAX_BODY_PARSE = 2 * 1024 * 1024


class CursorError(ValueError):
    """A malformed ``after`` cursor."""


@dataclass(frozen=True, slots=True)
class Filters:
    """What the operator narrowed the list to (empty strings: no narrowing)."""

    state: str = ""
    action: str = ""
    requester: str = ""
    space: str = ""

    @property
    def scan_only(self) -> bool:
        """Filters the store cannot apply, so pages are filtered as they are read."""
        return bool(self.action or self.requester or self.space)

    def matches(self, t: Ticket) -> bool:
        if self.action and t.action != self.action:
            return False
        if self.requester and t.requester.casefold() != self.requester.casefold():
            return False
        return not self.space or ticket_space(t) == self.space

    def query(self) -> dict[str, str]:
        return {
            k: v
            for k, v in (
                ("state", self.state),
                ("action", self.action),
                ("requester", self.requester),
                ("space", self.space),
            )
            if v
        }


@dataclass(slots=True)
class ListPage:
    """One page of the list and how to get the next."""

    tickets: list[Ticket] = field(default_factory=list)
    next_cursor: str | None = None
    scanned: int = 0
    budget_spent: bool = False  # stopped at the scan budget, not at a full page


def _body_json(t: Ticket) -> Any:
    if t.body is None or len(t.body) > _MAX_BODY_PARSE:
        return None
    if not (t.content_type or "").startswith("application/json"):
        return None
    try:
        return json.loads(t.body)
    except (ValueError, UnicodeDecodeError):
        return None


def ticket_space(t: Ticket) -> str | None:
    """The space a request is about: the body's ``spaceId``, else the URL's."""
    body = _body_json(t)
    if isinstance(body, dict):
        value = body.get("spaceId")
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)
    parts = urlsplit(t.url)
    m = _SPACE_PATH.search(parts.path)
    if m:
        return m.group(1)
    for key, value in parse_qsl(parts.query):
        if key in _SPACE_QUERY and value:
            return value
    return None


def ticket_title(t: Ticket) -> str | None:
    """A title the request carries (creates and updates), for the list."""
    body = _body_json(t)
    if isinstance(body, dict):
        title = body.get("title")
        if isinstance(title, str) and title.strip():
            return title.strip()[:200]
    return None


def parse_cursor(cursor: str | None) -> tuple[str, str] | None:
    if not cursor:
        return None
    m = _CURSOR.match(cursor)
    if m is None or m.group(1) not in STATES:
        raise CursorError(f"not a list cursor: {cursor[:40]!r}")
    return m.group(1), m.group(2)


def list_tickets(
    queue: ReviewQueue,
    filters: Filters,
    after: str | None = None,
    *,
    limit: int = 50,
    budget: int = 5000,
    chunk: int = 200,
) -> ListPage:
    """A page of tickets in list order, reading at most ``budget`` tickets from the store
    when a filter must be applied row by row."""
    states = [filters.state] if filters.state else list(STATE_ORDER)
    start = parse_cursor(after)
    if start is not None and start[0] not in states:
        raise CursorError("the cursor does not fit this filter")
    queue.sweep()  # overdue tickets show as expired, lost executions as unknown
    page = ListPage()
    first = states.index(start[0]) if start is not None else 0
    for state in states[first:]:
        cursor: tuple[float, str] | None = None
        if start is not None and state == start[0] and start[1]:
            last = queue.store.get(start[1])
            if last is None:
                raise CursorError("the cursor's ticket is gone")
            cursor = (last.created_at, last.id)
        while True:
            if filters.scan_only:
                room = budget - page.scanned
                if room <= 0:
                    page.budget_spent = True
                    page.next_cursor = f"{state}.{cursor[1] if cursor else ''}"
                    return page
                want = min(chunk, room)
            else:
                want = limit + 1 - len(page.tickets)  # one more says a next page exists
            rows = queue.store.page(state, want, cursor)
            page.scanned += len(rows)
            for t in rows:
                if filters.matches(t):
                    if len(page.tickets) == limit:
                        shown = page.tickets[-1]
                        page.next_cursor = f"{shown.state}.{shown.id}"
                        return page
                    page.tickets.append(t)
                cursor = (t.created_at, t.id)
            if len(rows) < want:
                break  # this state is exhausted
    return page
