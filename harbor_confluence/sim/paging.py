"""Cursor pagination the way Confluence v2 does it: opaque cursor, ``Link: <...>; rel="next"``.

The cursor carries the sort and the last item's sort key, so paging stays stable while
pages are created in between, and a cursor from another listing or sort is refused.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import urlencode

from .wire import Query, bad_request

__all__ = ["Paged", "paginate"]

T = TypeVar("T")
SortKey = tuple[int | str, int]


@dataclass(frozen=True, slots=True)
class Paged(Generic[T]):
    items: list[T]
    next_link: str | None  # relative, e.g. "/wiki/api/v2/pages?limit=25&cursor=..."

    def links(self, base_url: str) -> dict[str, str]:
        """The body's ``_links`` (MultiEntityLinks): ``next`` only when more remain."""
        links = {"base": base_url}
        if self.next_link is not None:
            links["next"] = self.next_link
        return links

    def headers(self, base_url: str) -> tuple[tuple[str, str], ...]:
        """The ``Link`` header in the format the spec's description shows."""
        if self.next_link is None:
            return ()
        return (("Link", f'<{self.next_link}>; rel="next", <{base_url}>; rel="base"'),)


def _encode(listing: str, sort: str, key: SortKey) -> str:
    raw = json.dumps({"l": listing, "s": sort, "k": list(key)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str, listing: str, sort: str) -> SortKey:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if data["l"] != listing or data["s"] != sort:
            raise ValueError("cursor belongs to another listing or sort")
        primary, last_id = data["k"]
        if not isinstance(primary, int | str) or not isinstance(last_id, int):
            raise ValueError("cursor key has the wrong types")
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise bad_request(
            f"Provided value {{{cursor}}} for 'cursor' is not valid", "Invalid cursor"
        ) from exc
    return (primary, last_id)


def paginate(
    items: Sequence[T],
    *,
    key: Callable[[T], SortKey],
    descending: bool,
    sort_name: str,
    query: Query,
    path: str,
    limit: int,
) -> Paged[T]:
    """Sort, skip past the cursor, cut ``limit`` items and build the next link.

    The next link repeats the request's other filters so a client that just follows it
    gets the same listing, as Confluence does.
    """
    ordered = sorted(items, key=key)
    cursor = query.string("cursor")
    if descending:
        if cursor is not None:
            last = _decode(cursor, path, sort_name)
            ordered = ordered[: bisect.bisect_left(ordered, last, key=key)]
        ordered.reverse()
    elif cursor is not None:
        last = _decode(cursor, path, sort_name)
        ordered = ordered[bisect.bisect_right(ordered, last, key=key) :]
    page = ordered[:limit]
    next_link = None
    if len(ordered) > limit:
        token = _encode(path, sort_name, key(page[-1]))
        pairs = [(k, v) for k, v in query.pairs if k not in ("cursor", "limit")]
        pairs += [("limit", str(limit)), ("cursor", token)]
        # Commas are percent-encoded so clients that split Link headers on "," stay safe.
        next_link = f"{path}?{urlencode(pairs)}"
    return Paged(page, next_link)
