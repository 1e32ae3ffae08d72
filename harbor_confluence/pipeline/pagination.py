"""Following a listing across pages, with hard caps on items and requests.

v2 listings hand out an opaque ``cursor`` (``_links.next`` / ``Link``); v1 listings
either do the same (search) or page by ``start``.  Every page is an ordinary call, so
the policy decides each one.  The walk stops at the caps and says so: an agent must
know whether it saw everything.
"""

from __future__ import annotations

import collections
import copy
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from harbor_confluence.errors import ConfigError

if TYPE_CHECKING:  # kept light: the CLI reads the caps at start-up
    from .manifest import Action
    from .summary import Result

__all__ = [
    "DEFAULT_MAX_ITEMS",
    "DEFAULT_MAX_REQUESTS",
    "HARD_MAX_ITEMS",
    "HARD_MAX_REQUESTS",
    "PageReport",
    "Pagination",
    "paging_mode",
]

DEFAULT_MAX_ITEMS = 1_000
DEFAULT_MAX_REQUESTS = 50
HARD_MAX_ITEMS = 10_000
HARD_MAX_REQUESTS = 200
Mode = Literal["cursor", "start"]
Call = Callable[[str, dict[str, Any]], "Result"]
ACall = Callable[[str, dict[str, Any]], Awaitable["Result"]]


def paging_mode(action: Action) -> Mode | None:
    """How this action pages, read off its query parameters (None: it does not)."""
    props = (action.parameters.query or {}).get("properties", {})
    if not action.is_read:
        return None
    if "cursor" in props:
        return "cursor"
    if "start" in props:
        return "start"
    return None


@dataclass(slots=True)
class PageReport:
    """How a walk ended: complete, stopped at a cap, or stopped by an error."""

    action: str
    items: int = 0
    requests: int = 0
    complete: bool = False
    stopped_at: Literal["max_items", "max_requests"] | None = None
    next_cursor: str | None = None
    next_start: int | None = None
    error: dict[str, Any] | None = None
    status: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ok": self.ok,
            "action": self.action,
            "count": self.items,
            "requests": self.requests,
            "complete": self.complete,
        }
        for key in ("stopped_at", "next_cursor", "next_start", "error", "status"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out

    def message(self) -> str:
        if self.error is not None:
            return f"stopped after {self.requests} requests: {self.error.get('message')}"
        if self.stopped_at is not None:
            more = f"; continue with cursor {self.next_cursor}" if self.next_cursor else ""
            return (
                f"stopped at the cap ({self.stopped_at}) after {self.items} items and "
                f"{self.requests} requests: more results remain{more}"
            )
        return f"complete: {self.items} items in {self.requests} requests"


class Pagination(Iterator[Any], AsyncIterator[Any]):
    """Iterate the summary items of every page; ``report`` says how the walk ended.

    Iterate with ``for`` (each page a ``call``) or, given ``acall``, with ``async for``
    (each page awaited): the walk's logic is the same, only the call differs.
    """

    def __init__(
        self,
        call: Call,
        action: Action | str,
        data: Any,
        *,
        max_items: int = DEFAULT_MAX_ITEMS,
        max_requests: int = DEFAULT_MAX_REQUESTS,
        mode: Mode | None = None,
        acall: ACall | None = None,
    ) -> None:
        """``action`` is the manifest action, or its name with ``mode`` (as a node
        client knows it from ``describe``)."""
        name = action if isinstance(action, str) else action.name
        if not isinstance(action, str):
            mode = paging_mode(action)
        if mode is None:
            raise ConfigError(
                f"{name!r} is not a paged listing (no cursor or start parameter); "
                "call it once instead"
            )
        if not 1 <= max_items <= HARD_MAX_ITEMS:
            raise ConfigError(f"max_items must be 1..{HARD_MAX_ITEMS}, got {max_items}")
        if not 1 <= max_requests <= HARD_MAX_REQUESTS:
            raise ConfigError(f"max_requests must be 1..{HARD_MAX_REQUESTS}, got {max_requests}")
        self._call = call
        self._acall = acall
        self._mode: Mode = mode
        self._input: dict[str, Any] = copy.deepcopy(data) if isinstance(data, dict) else {}
        self._max_items = max_items
        self._max_requests = max_requests
        self._buffer: collections.deque[Any] = collections.deque()
        self._done = False
        self._last_cursor: str | None = None  # a repeated cursor ends the walk
        self.report = PageReport(name)
        # Only the last page's result is kept: memory must not grow with the walk.
        self.last_result: Result | None = None

    def __iter__(self) -> Pagination:
        return self

    def __next__(self) -> Any:
        while not self._buffer:
            page = self._next_page()
            if page is None:
                raise StopIteration
            self._accept(self._call(self.report.action, page))
        return self._take()

    def __aiter__(self) -> Pagination:
        return self

    async def __anext__(self) -> Any:
        if self._acall is None:
            raise TypeError("this walk has no async call: iterate it with a plain for")
        while not self._buffer:
            page = self._next_page()
            if page is None:
                raise StopAsyncIteration
            self._accept(await self._acall(self.report.action, page))
        return self._take()

    def _take(self) -> Any:
        self.report.items += 1
        item = self._buffer.popleft()
        if self.report.items >= self._max_items and (self._buffer or not self._done):
            self.report.stopped_at = "max_items"
            self.report.complete = False
            if self._buffer:  # part of a page is left: no cursor resumes exactly there
                self.report.next_cursor = self.report.next_start = None
            self._buffer.clear()
            self._done = True
        return item

    def items(self) -> list[Any]:
        """Every item (within the caps), then ``report`` is final."""
        return list(self)

    def _next_page(self) -> dict[str, Any] | None:
        """The next page's input, or None when the walk is over (a cap says so)."""
        if self._done:
            return None
        if self.report.requests >= self._max_requests:
            self.report.stopped_at = "max_requests"
            self._done = True
            return None
        self._input.setdefault("query", {})
        return self._input

    def _accept(self, result: Result) -> None:
        """Take one page's result: its items, and where the next page starts."""
        query = self._input["query"]
        self.report.requests += 1
        self.last_result = result
        self.report.status = result.status
        if not result.ok:
            self._done = True
            if result.outcome == "held":
                self.report.error = {"type": "held", "message": f"held as ticket {result.ticket}"}
            else:
                self.report.error = result.error or {"type": "upstream", "message": "failed"}
            return
        items = result.summary if isinstance(result.summary, list) else []
        self._buffer.extend(items)
        self.report.next_cursor = self.report.next_start = None
        if self._mode == "cursor":
            cursor = result.next_cursor
            if cursor and cursor != self._last_cursor:  # longer cycles hit max_requests
                self._last_cursor = cursor
                query["cursor"] = cursor
                self.report.next_cursor = cursor
                return
        else:
            start = result.extra.get("next_start")
            if isinstance(start, int) and items and start > int(query.get("start", 0)):
                query["start"] = start
                self.report.next_start = start
                return
        self._done = True
        self.report.complete = True
