"""Reading content bodies whole or in pieces, as storage or as Markdown (``bodyView``).

A body cut to fit a summary cannot be written back without deleting what was cut, so a
``bodyView`` read never hands out a silently shortened body.  The agent asks for a
piece (``body-offset``, ``body-limit``: runner-side query parameters, never sent to
Confluence); the piece carries the truncation marker (``editing.truncation``) when more
follows, and beside it the body's format, total length and SHA-256, so pieces can be
joined and checked.  ``body-format: markdown`` asks Confluence for storage and hands out
the Markdown view (``editing.to_markdown``): placeholders stand for what Markdown cannot
say, and an update in Markdown is mapped back onto the stored body (``edits.py``).

Pure functions: the executor hands in the validated input and the summarised answer.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import httpx

from harbor_confluence.editing.truncation import truncate

from .manifest import BODY_FORMAT, BODY_LIMIT, BODY_OFFSET, MARKDOWN, Action
from .summary import parse_answer
from .updates import Composition

if TYPE_CHECKING:
    from harbor_confluence.editing import MarkdownView

__all__ = ["compose_read", "markdown_view", "present", "sent_query"]

_REPRESENTATIONS = ("storage", "atlas_doc_format", "view", "raw")


def sent_query(action: Action, query: dict[str, Any]) -> dict[str, Any]:
    """The query as sent: runner-side parameters dropped, ``markdown`` asked as storage."""
    if action.body_view is None:
        return query
    out = {k: v for k, v in query.items() if k not in (BODY_OFFSET, BODY_LIMIT)}
    if out.get(BODY_FORMAT) == MARKDOWN:
        out[BODY_FORMAT] = "storage"
    return out


def compose_read(action: Action, clean: dict[str, Any]) -> Composition:
    """The request of a ``bodyView`` read, and how to present its body (``local``).

    A piece asked for without a format (only ``body-offset`` or ``body-limit``) is a
    piece of the storage body.
    """
    query = dict(clean.get("query") or {})
    offset, limit = query.get(BODY_OFFSET), query.get(BODY_LIMIT)
    fmt = query.get(BODY_FORMAT)
    declared = ((action.parameters.query or {}).get("properties") or {}).get(BODY_FORMAT)
    if fmt is None and declared and (offset is not None or limit is not None):
        fmt = query[BODY_FORMAT] = "storage"
    request = {k: v for k, v in clean.items() if k != "query"}
    request["query"] = sent_query(action, query)
    local: dict[str, Any] = {}
    if fmt is not None:
        local["body_view"] = {"format": fmt, "offset": int(offset or 0), "limit": limit}
    return Composition(request, local=local)


def present(action: Action, local: dict[str, Any], answer: Any, summary: Any) -> Any:
    """The summary with its body field as the asked-for piece, and the body's facts.

    ``bodyFormat``, ``bodyLength`` (characters), ``bodySha256`` (of the whole body as
    UTF-8, in that format) and, when the piece is not the whole body, ``bodyOffset`` and
    ``bodyNextOffset`` (where the next piece starts; absent at the end).  ``answer`` is the
    response (its JSON is parsed again only to tell a body's format when the request did
    not say it, as for a request run from a held ticket).  Pure: ``summary`` is not
    changed; a new summary is returned (or ``summary`` itself when there is no body).
    """
    spec = action.body_view
    if spec is None or not isinstance(summary, dict):
        return summary
    text = summary.get(spec.field)
    if not isinstance(text, str):
        return summary
    wanted = local.get("body_view") or {}
    fmt = wanted.get("format") or _representation(answer)
    out = dict(summary)
    if fmt == MARKDOWN:
        try:
            text = markdown_view(text).text
        except ValueError as exc:  # the stored body does not parse: hand out storage
            fmt = "storage"
            out["bodyNote"] = f"not shown as Markdown: {exc}"
    offset = int(wanted.get("offset") or 0)
    limit = int(wanted.get("limit") or spec.page_chars)
    out[spec.field] = truncate(text, limit, offset=offset) if offset < len(text) else ""
    out["bodyFormat"] = fmt
    out["bodyLength"] = len(text)
    out["bodySha256"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if offset or offset + limit < len(text):
        out["bodyOffset"] = offset
        if offset + limit < len(text):
            out["bodyNextOffset"] = offset + limit
    if offset > len(text):
        out["bodyNote"] = f"body-offset {offset} is past the end of the body ({len(text)})"
    return out


def _representation(answer: Any) -> str | None:
    """The representation the answer's body holds (only its keys are read)."""
    try:
        if isinstance(answer, httpx.Response):
            data = parse_answer(answer.content)
        else:
            data = answer.json() if hasattr(answer, "json") else answer
    except ValueError:  # orjson's and json's decode errors, UnicodeDecodeError
        return None
    body = data.get("body") if isinstance(data, dict) else None
    if isinstance(body, dict):
        for name in _REPRESENTATIONS:
            if name in body:
                return name
    return None


# -- the Markdown view of a stored body, shared by reads and the writes that follow them --

_VIEWS: OrderedDict[str, MarkdownView] = OrderedDict()
_VIEWS_LOCK = threading.Lock()
_VIEWS_KEPT = 2  # a view of a 1 MB page is a few MB of Python objects


def markdown_view(storage: str) -> MarkdownView:
    """``editing.to_markdown(storage, verify=False)``, remembered for the last few bodies.

    Unverified: the view reads the same, and ``apply_markdown`` proves each block an edit
    replaces before replacing it (a quarter of the time on big pages; see the editing
    package).  A node or MCP server that hands out a page's Markdown and then takes the
    edited Markdown back converts the page once.
    """
    from harbor_confluence.editing import to_markdown

    key = hashlib.sha256(storage.encode("utf-8")).hexdigest()
    with _VIEWS_LOCK:
        view = _VIEWS.get(key)
        if view is not None:
            _VIEWS.move_to_end(key)
            return view
    view = to_markdown(storage, verify=False)
    with _VIEWS_LOCK:
        _VIEWS[key] = view
        while len(_VIEWS) > _VIEWS_KEPT:
            _VIEWS.popitem(last=False)
    return view
