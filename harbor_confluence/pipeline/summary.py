"""json_summary: the compact result an agent sees instead of the raw response.

Projections are JMESPath expressions from the manifest, compiled once per action into
plain Python callables where the expression only selects (field paths, ``||``, ``[]``
and ``[*]`` projections: every expression of the packaged manifest); anything else runs
on JMESPath's own interpreter.  Upstream errors become summaries carrying Confluence's
own message, never a traceback.  A success whose body is not JSON is an upstream error
naming what came instead; search highlight markers (``@@@hl@@@``/``@@@endhl@@@``, which
Confluence puts around matched words) are removed.

Successful answers are parsed with orjson (about twice as fast as the standard library)
wherever that gives the same summary.  orjson refuses some of what the standard library
accepts (``NaN``, a BOM, UTF-16, lone surrogates, nesting past 1024 levels): the standard
library then parses the answer and gives its own value or verdict.  orjson reads an
integer beyond 64 bits as a float: a summary that would carry such a float is made again
from the standard library's parse, and an action with an expression that computes
(functions, filters, comparisons) always uses the standard library.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import httpx
import jmespath
import orjson

from harbor_confluence.editing.truncation import cut

from .manifest import Action
from .transport import SendFailure
from .updates import conflict_error, sent_version

__all__ = ["Result", "Summarizer", "json_answer", "parse_answer", "upstream_message"]

Outcome = Literal["sent", "held"]
Getter = Callable[[Any], Any]

_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
# A JMESPath expression that is only unquoted identifiers joined by dots.
_FIELD_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
# Confluence search wraps matched words in these (titles and excerpts).
_HIGHLIGHT = re.compile("@@@(?:end)?hl@@@")
# orjson keeps integers in [-2**63, 2**64) exact and reads any other integer as a float of
# at least this magnitude (an actual float that large only costs a second parse).
_INEXACT = 2.0**63
_NO_EXTRA: Mapping[str, Any] = MappingProxyType({})


# -- Result ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Result:
    """What a call returns: the json_summary plus how it ended.

    Immutable, so a result handed to the caller, the audit log and a ticket is the same
    everywhere: later stages derive new results with :meth:`evolve` and
    :meth:`with_extra`.  ``extra`` is a read-only mapping (a copy of what was given).
    ``summary`` and ``error`` are plain JSON values, not frozen: treat them as read-only.
    """

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
    extra: Mapping[str, Any] = field(default_factory=lambda: _NO_EXTRA)

    def __post_init__(self) -> None:
        extra = self.extra
        if extra is not _NO_EXTRA:  # a private copy: the caller's dict may change later
            object.__setattr__(self, "extra", MappingProxyType(dict(extra)) if extra else _NO_EXTRA)

    def evolve(self, **changes: Any) -> Result:
        """A copy with ``changes`` applied (``dataclasses.replace``)."""
        return replace(self, **changes)

    def with_extra(self, **items: Any) -> Result:
        """A copy whose ``extra`` also holds ``items`` (they replace keys already there)."""
        return replace(self, extra={**self.extra, **items})

    def __reduce__(self) -> tuple[Any, ...]:
        # pickle and copy cannot take a mappingproxy: rebuild from plain values
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["extra"] = dict(self.extra)
        return (_rebuild, (values,))

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


def _rebuild(values: dict[str, Any]) -> Result:
    return Result(**values)


# -- compiled projections -----------------------------------------------------------------


class _FieldPath:
    """``a.b.c`` evaluated the way JMESPath does (None once a step is not an object),
    as nested ``dict.get``s: most summary fields are plain paths."""

    __slots__ = ("keys", "search")
    selects = True

    def __init__(self, expression: str) -> None:
        self.keys = tuple(expression.split("."))
        self.search: Getter = _path(self.keys)


class _Expression:
    """Any other expression: a selector built from its syntax tree, else JMESPath's own
    interpreter.  ``selects``: its answer is made of parts of the input, never computed."""

    __slots__ = ("search", "selects")

    def __init__(self, expression: str) -> None:
        parsed = jmespath.compile(expression)
        selector = _selector(parsed.parsed)
        self.selects = selector is not None
        self.search: Getter = parsed.search if selector is None else selector


def _compile(expression: str) -> _FieldPath | _Expression:
    """The cheapest callable (``.search``) with JMESPath's answer for ``expression``."""
    if _FIELD_PATH.match(expression):
        return _FieldPath(expression)
    return _Expression(expression)


def _selector(node: Mapping[str, Any]) -> Getter | None:
    """A callable for a JMESPath node that only selects, else None.

    Each mirrors jmespath's ``TreeInterpreter.visit_*`` for its node type exactly
    (``tests/test_summary_fast.py`` compares them over many inputs).
    """
    kind = node["type"]
    children = node["children"]
    if kind == "field":
        return _path((node["value"],))
    if kind == "subexpression":
        if all(c["type"] == "field" for c in children):
            return _path(tuple(c["value"] for c in children))
        parts = [_selector(c) for c in children]
        steps = [part for part in parts if part is not None]
        return _chain(steps) if len(steps) == len(parts) else None
    if kind in ("identity", "current"):
        return _identity
    if kind in ("or_expression", "projection"):
        left, right = _selector(children[0]), _selector(children[1])
        if left is None or right is None:
            return None
        return _either(left, right) if kind == "or_expression" else _projection(left, right)
    if kind == "flatten":
        inner = _selector(children[0])
        return None if inner is None else _flatten(inner)
    return None


def _identity(value: Any) -> Any:
    return value


def _path(keys: tuple[str, ...]) -> Getter:
    """``a.b.c``: None once a step is not an object; nested ``dict.get`` for short paths."""
    if len(keys) == 1:
        (k1,) = keys

        def get1(value: Any) -> Any:
            return value.get(k1) if isinstance(value, dict) else None

        return get1
    if len(keys) == 2:
        k1, k2 = keys

        def get2(value: Any) -> Any:
            if isinstance(value, dict):
                value = value.get(k1)
                if isinstance(value, dict):
                    return value.get(k2)
            return None

        return get2
    if len(keys) == 3:
        k1, k2, k3 = keys

        def get3(value: Any) -> Any:
            if isinstance(value, dict):
                value = value.get(k1)
                if isinstance(value, dict):
                    value = value.get(k2)
                    if isinstance(value, dict):
                        return value.get(k3)
            return None

        return get3

    def get(value: Any) -> Any:
        for key in keys:
            if not isinstance(value, dict):
                return None
            value = value.get(key)
        return value

    return get


def _chain(parts: list[Getter]) -> Getter:
    def chained(value: Any) -> Any:
        for part in parts:
            value = part(value)
        return value

    return chained


def _falsy(value: Any) -> bool:
    """JMESPath's false: null, false, and empty strings, arrays and objects (not 0)."""
    return value == "" or value == [] or value == {} or value is None or value is False


def _either(left: Getter, right: Getter) -> Getter:
    def either(value: Any) -> Any:
        matched = left(value)
        return right(value) if _falsy(matched) else matched

    return either


def _flatten(inner: Getter) -> Getter:
    def flatten(value: Any) -> Any:
        base = inner(value)
        if not isinstance(base, list):
            return None
        merged: list[Any] = []
        for element in base:
            if isinstance(element, list):
                merged.extend(element)
            else:
                merged.append(element)
        return merged

    return flatten


def _projection(left: Getter, right: Getter) -> Getter:
    def projection(value: Any) -> Any:
        base = left(value)
        if not isinstance(base, list):
            return None
        return [v for v in map(right, base) if v is not None]

    return projection


class _Inexact(Exception):
    """A summary would carry a float orjson may have made of a big integer."""


def _plain(value: Any, guard: bool) -> Any:
    """``value`` with highlight markers removed from every string inside it."""
    if isinstance(value, str):
        return _HIGHLIGHT.sub("", value) if "@@@" in value else value
    if isinstance(value, list):
        return [_plain(v, guard) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v, guard) for k, v in value.items()}
    if guard and isinstance(value, float) and abs(value) >= _INEXACT:
        raise _Inexact
    return value


def _text(value: str, cuttable: bool, limit: int) -> str:
    """A string field as the summary carries it: highlights removed, cut when too long."""
    if "@@@" in value:
        value = _HIGHLIGHT.sub("", value)
    if cuttable and len(value) > limit:
        value = cut(value, limit)  # marked, so writing the cut copy back is refused
    return value


def _other(value: Any, guard: bool) -> Any:
    """Any other non-null field: lists and objects cleaned, a mangled big integer caught."""
    if isinstance(value, list | dict):
        return _plain(value, guard)
    if guard and isinstance(value, float) and abs(value) >= _INEXACT:
        raise _Inexact
    return value


def _generated_one(
    fields: tuple[tuple[str, tuple[str, ...] | None, Getter, bool], ...], limit: int
) -> Callable[[Any, bool], dict[str, Any]]:
    """One item's summary as one function: plain-path fields as inline ``dict.get``s, any
    other field as one call of its compiled getter, and no loop over the fields (half the
    time of a 25-item listing's summary, against a getter call per field).  Only ``repr``s
    of strings go into the source, and path keys are identifiers (``_FIELD_PATH``);
    ``tests/test_summary_fast.py`` holds it to a field-by-field reference and JMESPath."""
    lines = [
        "def one(item, guard, _text=_text, _other=_other, LIMIT=LIMIT):",
        "    out = {}",
        "    isdict = isinstance(item, dict)",
    ]
    namespace: dict[str, Any] = {"_text": _text, "_other": _other, "LIMIT": int(limit)}
    for number, (name, keys, getter, cuttable) in enumerate(fields):
        if keys is None:
            namespace[f"_get{number}"] = getter
            lines.append(f"    v = _get{number}(item)")
        else:
            lines.append(f"    v = item.get({str(keys[0])!r}) if isdict else None")
            lines += [
                f"    v = v.get({str(k)!r}) if isinstance(v, dict) else None" for k in keys[1:]
            ]
        long = "len(v) > LIMIT" if cuttable else "False"
        lines += [
            "    if v is not None:",
            "        if isinstance(v, str):",
            f"            if '@@@' in v or {long}:",
            f"                v = _text(v, {bool(cuttable)!r}, LIMIT)",
            "        elif type(v) is not int:",
            "            v = _other(v, guard)",
            f"        out[{str(name)!r}] = v",
        ]
    lines.append("    return out")
    exec(compile("\n".join(lines), "<summary projection>", "exec"), namespace)  # noqa: S102
    one: Callable[[Any, bool], dict[str, Any]] = namespace["one"]
    return one


class Summarizer:
    """Compiled projection for one action: everything that does not depend on the answer
    is worked out here, once."""

    __slots__ = ("_action", "_fast", "_items", "_orjson", "_versioned")

    def __init__(self, action: Action) -> None:
        spec = action.summary
        self._action = action.name
        self._versioned = action.update is not None
        # A bodyView's body is handed out whole or in marked pieces (bodyview.py), never cut.
        uncut = action.body_view.field if action.body_view is not None else None
        items = _compile(spec.items) if spec.items else None
        compiled = {name: _compile(expression) for name, expression in spec.fields.items()}
        self._items: Getter | None = items.search if items is not None else None
        # orjson's parse is only safe where a mangled big integer would show in the output
        self._orjson = all(c.selects for c in [*compiled.values(), *([items] if items else [])])
        self._fast = _generated_one(
            tuple(
                (name, c.keys if isinstance(c, _FieldPath) else None, c.search, name != uncut)
                for name, c in compiled.items()
            ),
            spec.max_chars,
        )

    def project(self, data: Any) -> tuple[Any, int | None]:
        """The summary of parsed JSON ``data`` and, for a listing, its item count."""
        return self._project(data, False)

    def _project(self, data: Any, guard: bool) -> tuple[Any, int | None]:
        one = self._fast
        if self._items is not None:
            items = self._items(data)
            if not isinstance(items, list):
                items = []
            return [one(item, guard) for item in items], len(items)
        return one(data, guard), None

    def _summarise(self, content: bytes) -> tuple[Any, Any, int | None]:
        """The answer's JSON, its summary and item count; raises as ``json.loads`` does."""
        if self._orjson:
            try:
                data = orjson.loads(content)
            except orjson.JSONDecodeError:
                pass  # the standard library's value or verdict, below
            else:
                try:
                    return data, *self._project(data, True)
                except _Inexact:
                    pass
        data = json.loads(content)
        return data, *self._project(data, False)

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
        summary: Any = None
        count: int | None = None
        if 200 <= status < 300:
            data = None
            content = response.content
            if content and not content.isspace():  # else a 204, a delete: nothing wrong
                problem = _not_json(response)
                if problem is None:
                    try:
                        data, summary, count = self._summarise(content)
                    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                        problem = _unparsed(response, exc)
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
            if data is not None:  # 1xx: httpx does not hand these out as answers
                summary, count = self.project(data)
        body_link = _links_next(data)
        cursor = _next_cursor(response, body_link)
        start = _next_start(body_link) if cursor is None else None
        return Result(
            ok=True,
            action=name,
            status=status,
            summary=summary,
            next_cursor=cursor,
            count=count,
            extra=_NO_EXTRA if start is None else {"next_start": start},
        )


# -- answers ----------------------------------------------------------------------------------


def _json(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def parse_answer(content: bytes) -> Any:
    """``json.loads(content)`` for a caller that only reads an answer's keys and strings
    (never its numbers): orjson first, the standard library where orjson refuses."""
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return json.loads(content)


def _media_type(response: httpx.Response) -> str:
    return str(response.headers.get("Content-Type", "")).split(";", 1)[0].strip().lower()[:100]


def _not_json(response: httpx.Response) -> str | None:
    """Why a success with a body is not JSON by its Content-Type, or None."""
    media = _media_type(response)
    if media != "application/json" and not media.endswith("+json"):
        shown = media or "no Content-Type"
        return f"Confluence answered {response.status_code} with {shown}, not JSON"
    return None


def _unparsed(response: httpx.Response, exc: ValueError) -> str:
    why = exc.msg if isinstance(exc, json.JSONDecodeError) else "not valid UTF-8"
    media = _media_type(response)
    return f"Confluence answered {response.status_code} with {media} that does not parse: {why}"


def json_answer(response: httpx.Response) -> tuple[Any, str | None]:
    """A success's JSON, or why it is not JSON.  An empty body (a 204, a delete) is
    ``(None, None)``: nothing to summarise, nothing wrong."""
    content = response.content
    if not content or content.isspace():
        return None, None
    problem = _not_json(response)
    if problem is not None:
        return None, problem
    try:
        return json.loads(content), None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return None, _unparsed(response, exc)


def _links_next(data: Any) -> str | None:
    links = data.get("_links") if isinstance(data, dict) else None
    value = links.get("next") if isinstance(links, dict) else None
    return value if isinstance(value, str) else None


def _next_cursor(response: httpx.Response, body_link: str | None) -> str | None:
    """The next page's cursor: from the body's ``_links.next``, else the ``Link`` header."""
    link = body_link
    if link is None:
        header = response.headers.get("Link")
        if header:
            m = _LINK_NEXT.search(header)
            link = m.group(1) if m else None
    return _query_value(link, "cursor")


def _query_value(link: str | None, key: str) -> str | None:
    if not link:
        return None
    values = parse_qs(urlsplit(link).query).get(key)
    return values[0] if values else None


def _next_start(body_link: str | None) -> int | None:
    """v1 listings that page by offset: the ``start`` of the body's next link."""
    value = _query_value(body_link, "start")
    return int(value) if value is not None and value.isdigit() else None


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
