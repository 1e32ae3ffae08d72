"""json_summary: the compact result an agent sees instead of the raw response.

Projections are JMESPath expressions from the manifest, compiled once (plain dotted field
paths take a faster route with the same result).  Upstream errors
become summaries carrying Confluence's own message, never a traceback.  A success whose
body is not JSON is an upstream error naming what came instead; search highlight markers
(``@@@hl@@@``/``@@@endhl@@@``, which Confluence puts around matched words) are removed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import httpx
import jmespath

from .editing.truncation import cut
from .manifest import Action
from .transport import SendFailure
from .updates import conflict_error, sent_version

__all__ = ["Result", "Summarizer", "json_answer", "upstream_message"]

Outcome = Literal["sent", "held"]
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
# A JMESPath expression that is only unquoted identifiers joined by dots.
_FIELD_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
# Confluence search wraps matched words in these (titles and excerpts).
_HIGHLIGHT = re.compile("@@@(?:end)?hl@@@")


class _FieldPath:
    """``a.b.c`` evaluated the way JMESPath does (None once a step is not an object),
    without its tree interpreter: most summary fields are plain paths, and this is
    several times faster per field, which adds up over every item of a listing."""

    __slots__ = ("_keys",)

    def __init__(self, expression: str) -> None:
        self._keys = tuple(expression.split("."))

    def search(self, value: Any) -> Any:
        for key in self._keys:
            if not isinstance(value, dict):
                return None
            value = value.get(key)
        return value


def _compile(expression: str) -> Any:
    """A plain field path, else the compiled JMESPath expression."""
    if _FIELD_PATH.match(expression):
        return _FieldPath(expression)
    return jmespath.compile(expression)


@dataclass(slots=True)
class Result:
    """What a call returns: the json_summary plus how it ended."""

    ok: bool
    action: str
    outcome: Outcome = "sent"
    status: int | None = None
    summary: Any = None
    next_cursor: str | None = None
    count: int | None = None
    error: dict[str, Any] | None = None
    ticket: str | None = None
    rule: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok, "action": self.action, "outcome": self.outcome}
        for key in ("status", "summary", "next_cursor", "count", "error", "ticket", "rule"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out.update(self.extra)
        return out

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)


class Summarizer:
    """Compiled projection for one action."""

    __slots__ = ("_action", "_fields", "_items", "_max", "_uncut", "_versioned")

    def __init__(self, action: Action) -> None:
        spec = action.summary
        self._action = action.name
        self._versioned = action.update is not None
        # A bodyView's body is handed out whole or in marked pieces (bodyview.py), never cut.
        self._uncut = action.body_view.field if action.body_view is not None else None
        self._items = _compile(spec.items) if spec.items else None
        self._fields = [(name, _compile(expr)) for name, expr in spec.fields.items()]
        self._max = spec.max_chars

    def project(self, data: Any) -> tuple[Any, int | None]:
        if self._items is not None:
            items = self._items.search(data)
            if not isinstance(items, list):
                items = []
            return [self._one(item) for item in items], len(items)
        return self._one(data), None

    def _one(self, item: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, expr in self._fields:
            value = expr.search(item)
            if value is None:
                continue
            if isinstance(value, str):
                if "@@@" in value:
                    value = _HIGHLIGHT.sub("", value)
                if len(value) > self._max and name != self._uncut:
                    # marked, so that writing the cut copy back is refused (edits.py)
                    value = cut(value, self._max)
            elif isinstance(value, list | dict):
                value = _unmarked(value)
            out[name] = value
        return out

    def result(self, response: httpx.Response | SendFailure) -> Result:
        name = self._action
        if isinstance(response, SendFailure):
            return Result(
                ok=False,
                action=name,
                status=response.status,
                error={"type": response.kind, "message": response.message},
            )
        status = response.status_code
        if 200 <= status < 300:
            data, problem = json_answer(response)
            if problem is not None:
                error = {"type": "upstream", "message": problem}
                content_type = _media_type(response)
                if content_type:
                    error["content_type"] = content_type
                return Result(ok=False, action=name, status=status, error=error)
        else:
            data = _json(response)
        if 300 <= status < 400:
            return Result(
                ok=False,
                action=name,
                status=status,
                error={
                    "type": "redirect",
                    "message": "redirect not followed: the runner only "
                    "talks to the configured tenant origin",
                },
            )
        if status >= 400:
            error = _upstream_error(status, data)
            if status == 409 and self._versioned and _is_version_conflict(data):
                error = _conflict(error, response, data)
            return Result(ok=False, action=name, status=status, error=error)
        summary, count = self.project(data) if data is not None else (None, None)
        result = Result(
            ok=True,
            action=name,
            status=status,
            summary=summary,
            next_cursor=_next_cursor(response, data),
            count=count,
        )
        start = _next_start(data)
        if start is not None and result.next_cursor is None:
            result.extra["next_start"] = start
        return result


def _json(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _media_type(response: httpx.Response) -> str:
    return str(response.headers.get("Content-Type", "")).split(";", 1)[0].strip().lower()[:100]


def json_answer(response: httpx.Response) -> tuple[Any, str | None]:
    """A success's JSON, or why it is not JSON.  An empty body (a 204, a delete) is
    ``(None, None)``: nothing to summarise, nothing wrong."""
    content = response.content
    if not content.strip():
        return None, None
    status = response.status_code
    media = _media_type(response)
    if media != "application/json" and not media.endswith("+json"):
        shown = media or "no Content-Type"
        return None, f"Confluence answered {status} with {shown}, not JSON"
    try:
        return json.loads(content), None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        why = exc.msg if isinstance(exc, json.JSONDecodeError) else "not valid UTF-8"
        return None, f"Confluence answered {status} with {media} that does not parse: {why}"


def _unmarked(value: Any) -> Any:
    """``value`` with highlight markers removed from every string inside it."""
    if isinstance(value, str):
        return _HIGHLIGHT.sub("", value) if "@@@" in value else value
    if isinstance(value, list):
        return [_unmarked(v) for v in value]
    if isinstance(value, dict):
        return {k: _unmarked(v) for k, v in value.items()}
    return value


def _next_link(data: Any) -> str | None:
    links = data.get("_links") if isinstance(data, dict) else None
    value = links.get("next") if isinstance(links, dict) else None
    return value if isinstance(value, str) else None


def _next_start(data: Any) -> int | None:
    """v1 listings that page by offset: the ``start`` of the next link."""
    link = _next_link(data)
    values = parse_qs(urlsplit(link).query).get("start") if link else None
    return int(values[0]) if values and values[0].isdigit() else None


def _is_version_conflict(data: Any) -> bool:
    """A 409 about the version number (not, say, a duplicate title)."""
    return "version" in json.dumps(data).lower()


def _conflict(error: dict[str, Any], response: httpx.Response, data: Any) -> dict[str, Any]:
    """A versioned write's 409, with the version it sent (the executor adds who changed it)."""
    try:
        body = response.request.content
    except (RuntimeError, httpx.RequestNotRead):
        body = None
    details = [
        str(e["detail"])
        for e in (data.get("errors") or [] if isinstance(data, dict) else [])
        if isinstance(e, dict) and e.get("detail")
    ]
    if details:
        error = {**error, "detail": "; ".join(details[:3])}
    return conflict_error(error, None, sent_version(body), None)


def _next_cursor(response: httpx.Response, data: Any) -> str | None:
    link = None
    if isinstance(data, dict):
        links = data.get("_links")
        if isinstance(links, dict) and isinstance(links.get("next"), str):
            link = links["next"]
    if link is None:
        header = response.headers.get("Link")
        if header:
            m = _LINK_NEXT.search(header)
            link = m.group(1) if m else None
    if not link:
        return None
    values = parse_qs(urlsplit(link).query).get("cursor")
    return values[0] if values else None


def upstream_message(response: httpx.Response) -> str:
    """Confluence's own message for an error answer."""
    return str(_upstream_error(response.status_code, _json(response))["message"])


def _upstream_error(status: int, data: Any) -> dict[str, Any]:
    """Confluence's own message, from whichever error shape it used."""
    message = None
    if isinstance(data, dict):
        errors = data.get("errors")
        if isinstance(errors, list) and errors:
            parts = []
            for e in errors[:5]:
                if isinstance(e, dict):
                    parts.append(str(e.get("title") or e.get("detail") or e.get("message") or e))
                else:
                    parts.append(str(e))
            message = "; ".join(parts)
        elif isinstance(data.get("message"), str):
            message = data["message"]
    if not message:
        message = httpx.codes.get_reason_phrase(status) or "error"
    out: dict[str, Any] = {"type": "upstream", "message": message}
    if isinstance(data, dict) and isinstance(data.get("code"), (int | str)):
        out["code"] = data["code"]
    return out
