"""v1 GET /wiki/rest/api/search: the CQL subset of ``pipeline/cql.py`` over pages, blog posts,
comments and attachments, answered as SearchPageResponseSearchResult.

Semantics, kept close to Confluence's:
- only ``current`` content is searched (no drafts, no trash, no archived pages);
- ``text ~`` matches words in title, body and labels, ``title ~`` words in the title; every
  word of the literal must occur (case and simple plurals folded), ``word*`` is a prefix,
  and a literal wrapped in double quotes is a phrase; ``title =`` is an exact title;
- ``created``/``lastmodified`` compare instants in UTC, a date alone meaning its midnight,
  except ``=`` with a date alone, which means that day;
- ``ancestor`` matches pages below the given page; ``contributor`` any version's author;
- with ``excerpt=highlight`` (the default) matched words in title and excerpt are wrapped
  in ``@@@hl@@@``/``@@@endhl@@@`` as Confluence does.

Every query received (and what it parsed to) is recorded in ``store.cql_history``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import html
import json
import re
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from .cql import And, Clause, CqlError, Node, Not, Query, parse, parse_date
from .routes import Context, Router
from .store import Attachment, Comment, CqlRecord, Page, Space, Store
from .v2_attachments import attachment_links
from .v2_pages import page_links
from .wire import ApiError, SimRequest, SimResponse, bad_request

__all__ = ["MAX_LIMIT", "register"]

API = "/wiki/rest/api"
CONTEXT = "/wiki"
MAX_LIMIT = 100  # Confluence caps search pages silently; the answer carries the real limit
EXCERPT_LENGTH = 200
HL_START, HL_END = "@@@hl@@@", "@@@endhl@@@"
EXCERPTS = ("highlight", "indexed", "none", "highlight_unescaped", "indexed_unescaped")
_TAGS = re.compile(r"<!\[CDATA\[(.*?)\]\]>|<[^>]+>", re.DOTALL)
_WORDS = re.compile(r"\w+")


@functools.lru_cache(maxsize=32_768)
def plain_text(storage: str) -> str:
    """Storage XHTML as searchable text (CDATA kept, tags dropped, entities decoded)."""
    text = _TAGS.sub(lambda m: f" {m.group(1) or ''} ", storage)
    return " ".join(html.unescape(text).split())


def stem(word: str) -> str:
    """Fold case and simple English plurals, so ``runbook`` finds "Runbooks" as in Confluence."""
    word = word.lower()
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


@functools.lru_cache(maxsize=32_768)
def _word_set(text: str) -> frozenset[str]:
    return frozenset(stem(w) for w in _WORDS.findall(text))


def _word_matches(word: str, term: str) -> bool:
    """``term`` is a literal word, or a prefix when it ends in ``*``."""
    if term.endswith("*"):
        return word.lower().startswith(term[:-1])
    return stem(word) == stem(term)


@dataclass
class _Doc:
    """One searchable item; derived fields are computed on first use."""

    kind: str  # "page" | "blogpost" | "comment" | "attachment"
    record: Page | Comment | Attachment
    space: Space | None
    title: str
    body: str  # storage, or plain text for attachments
    labels: tuple[str, ...]
    ancestors: frozenset[int]
    _text: str | None = field(default=None, repr=False)

    @property
    def content_id(self) -> str:
        return f"att{self.record.id}" if self.kind == "attachment" else str(self.record.id)

    @property
    def text(self) -> str:
        if self._text is None:
            body = self.body if self.kind == "attachment" else plain_text(self.body)
            self._text = f"{self.title} {body} {' '.join(self.labels)}"
        return self._text


_CACHE: weakref.WeakKeyDictionary[Store, tuple[int, list[_Doc]]] = weakref.WeakKeyDictionary()


def _documents(ctx: Context) -> list[_Doc]:
    """The searchable documents, rebuilt only when the store's revision has moved."""
    store = ctx.store
    revision = store.revision
    cached = _CACHE.get(store)
    if cached is not None and cached[0] == revision:
        return cached[1]
    docs = _build_documents(ctx)
    if store.revision == revision:  # nothing was written meanwhile: the snapshot is whole
        _CACHE[store] = (revision, docs)
    return docs


def _build_documents(ctx: Context) -> list[_Doc]:
    store = ctx.store
    spaces = {s.id: s for s in store.spaces()}
    pages = {p.id: p for p in store.pages()}
    docs: list[_Doc] = []
    for page in pages.values():
        if page.status != "current":
            continue
        chain: list[int] = []
        parent = page.parent_id
        while parent is not None and parent in pages and len(chain) < 100:
            chain.append(parent)
            parent = pages[parent].parent_id
        docs.append(
            _Doc(
                "page",
                page,
                spaces.get(page.space_id),
                page.title,
                page.body_value,
                page.labels,
                frozenset(chain),
            )
        )
    posts = {p.id: p for p in store.blogposts()}
    for post in posts.values():
        if post.status == "current":
            docs.append(
                _Doc(
                    "blogpost",
                    post,
                    spaces.get(post.space_id),
                    post.title,
                    post.body_value,
                    post.labels,
                    frozenset(),
                )
            )

    def container_space(kind: str, content_id: int) -> tuple[bool, Space | None]:
        """(searchable, space): comments and attachments follow their container."""
        holder = (pages if kind == "page" else posts).get(content_id)
        if holder is None or holder.status != "current":
            return False, None
        return True, spaces.get(holder.space_id)

    for comment in store.comments():
        live, where = container_space(comment.container_type, comment.container_id)
        if comment.status == "current" and live:
            docs.append(
                _Doc(
                    "comment",
                    comment,
                    where,
                    comment.title,
                    comment.body_value,
                    (),
                    frozenset(),
                )
            )
    for attachment in store.attachments():
        live, where = container_space(attachment.container_type, attachment.container_id)
        if attachment.status == "current" and live:
            docs.append(
                _Doc(
                    "attachment",
                    attachment,
                    where,
                    attachment.title,
                    f"{attachment.title} {attachment.comment}",
                    attachment.labels,
                    frozenset(),
                )
            )
    return docs


# -- matching ------------------------------------------------------------------------------------


def _terms(literal: str) -> tuple[str | None, list[str]]:
    """(phrase, words): a literal wrapped in double quotes is a phrase."""
    stripped = literal.strip()
    if len(stripped) > 1 and stripped[0] == stripped[-1] == '"':
        phrase = " ".join(stripped[1:-1].split()).lower()
        return phrase, _WORDS.findall(phrase)
    return None, [t.lower() for t in re.findall(r"\w+\*?", literal)]


Predicate = Callable[[_Doc], bool]


def _text_predicate(literal: str, title_only: bool) -> Predicate:
    """Words (stemmed, or prefixes for ``word*``) or a phrase, prepared once per query."""
    phrase, words = _terms(literal)
    if phrase is not None:
        wanted = phrase

        def has_phrase(doc: _Doc) -> bool:
            text = doc.title if title_only else doc.text
            return bool(wanted) and wanted in " ".join(text.lower().split())

        return has_phrase
    exact = {stem(w) for w in words if not w.endswith("*")}
    prefixes = tuple(w[:-1] for w in words if w.endswith("*"))
    if not words:
        return lambda doc: False

    def has_words(doc: _Doc) -> bool:
        have = _word_set(doc.title if title_only else doc.text)
        return exact <= have and all(any(w.startswith(p) for w in have) for p in prefixes)

    return has_words


def _moment_predicate(name: str, op: str, literal: str) -> Predicate:
    bound, has_time = parse_date(literal)
    day = bound[:10]

    def value(doc: _Doc) -> str:
        return doc.record.created_at if name == "created" else doc.record.modified_at

    if op in ("=", "!=") and not has_time:
        same = op == "="
        return lambda doc: (value(doc)[:10] == day) is same
    compare: dict[str, Callable[[str], bool]] = {
        "=": lambda v: v == bound,
        "!=": lambda v: v != bound,
        ">": lambda v: v > bound,
        ">=": lambda v: v >= bound,
        "<": lambda v: v < bound,
        "<=": lambda v: v <= bound,
    }
    test = compare[op]
    return lambda doc: test(value(doc))


def _clause_predicate(clause: Clause, account_id: str) -> Predicate:
    """One clause as a function of a document; literals are digested here, once."""
    name, op = clause.field, clause.op
    texts = [v.text for v in clause.values]
    if name in ("created", "lastmodified"):
        return _moment_predicate(name, op, texts[0])
    hit: Predicate
    if name in ("text", "title") and op in ("~", "!~"):
        hit = _text_predicate(texts[0], title_only=name == "title")
    elif name == "type":
        kinds = set(texts)
        hit = lambda doc: doc.kind in kinds  # noqa: E731
    elif name == "space":
        keys = {t.casefold() for t in texts}
        hit = lambda doc: doc.space is not None and doc.space.key.casefold() in keys  # noqa: E731
    elif name == "label":
        labels = set(texts)
        hit = lambda doc: not labels.isdisjoint(doc.labels)  # noqa: E731
    elif name == "title":
        titles = set(texts)
        hit = lambda doc: doc.title in titles  # noqa: E731
    elif name in ("contributor", "creator"):
        people = {account_id if v.kind == "function" else v.text for v in clause.values}
        if name == "creator":
            hit = lambda doc: doc.record.author_id in people  # noqa: E731
        else:
            hit = lambda doc: any(v.author_id in people for v in doc.record.versions)  # noqa: E731
    elif name == "ancestor":
        wanted = {int(t) for t in texts}
        hit = lambda doc: not wanted.isdisjoint(doc.ancestors)  # noqa: E731
    else:  # id
        content_ids = set(texts)
        hit = lambda doc: doc.content_id in content_ids or str(doc.record.id) in content_ids  # noqa: E731
    if op in ("!=", "not in", "!~"):
        return lambda doc: not hit(doc)
    return hit


def compile_query(node: Node, account_id: str) -> Predicate:
    """The WHERE part of a query as one predicate over documents."""
    if isinstance(node, Clause):
        return _clause_predicate(node, account_id)
    if isinstance(node, Not):
        inner = compile_query(node.item, account_id)
        return lambda doc: not inner(doc)
    parts = [compile_query(item, account_id) for item in node.items]
    if isinstance(node, And):
        return lambda doc: all(part(doc) for part in parts)
    return lambda doc: any(part(doc) for part in parts)


# -- rendering -----------------------------------------------------------------------------------


def _highlight_terms(query: Query) -> list[str]:
    words: list[str] = []
    for clause in query.clauses():
        if clause.field in ("text", "title") and clause.op == "~":
            words.extend(_terms(clause.values[0].text)[1])
    return words


def _highlight(text: str, words: list[str], escape: bool) -> str:
    """Wrap each word matching a search term in Confluence's highlight markers."""
    out: list[str] = []
    last = 0
    if words:
        for match in _WORDS.finditer(text):
            if any(_word_matches(match.group(0), term) for term in words):
                out.append(text[last : match.start()])
                out.append(f"{HL_START}{match.group(0)}{HL_END}")
                last = match.end()
    out.append(text[last:])
    if not escape:
        return "".join(out)
    return "".join(
        part if part.startswith(HL_START) else html.escape(part, quote=False) for part in out
    )


def _excerpt(doc: _Doc, words: list[str], mode: str) -> str:
    if mode == "none":
        return ""
    body = doc.body if doc.kind == "attachment" else plain_text(doc.body)
    start = 0
    if words:
        first = next(
            (
                m.start()
                for m in _WORDS.finditer(body)
                if any(_word_matches(m.group(0), term) for term in words)
            ),
            0,
        )
        start = max(0, first - 40)
    snippet = body[start : start + EXCERPT_LENGTH]
    if start > 0:
        snippet = "..." + snippet
    if start + EXCERPT_LENGTH < len(body):
        snippet += "..."
    escape = not mode.endswith("_unescaped")
    return _highlight(snippet, words if mode.startswith("highlight") else [], escape)


def _friendly(timestamp: str) -> str:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).strftime("%b %d, %Y")


def _content_json(doc: _Doc, ctx: Context) -> dict[str, Any]:
    """The v1 Content of a search hit: as compact as Confluence's own."""
    record = doc.record
    self_link = f"{ctx.base_url}/rest/api/content/{doc.content_id}"
    links: dict[str, str] = {"self": self_link}
    if isinstance(record, Page):
        page_web = page_links(record, doc.space)
        links.update(webui=page_web["webui"], tinyui=page_web["tinyui"])
    elif isinstance(record, Attachment):
        webui, download = attachment_links(record)
        links.update(webui=webui, download=download)
    else:
        links["webui"] = _url(doc, ctx)
    space_key = doc.space.key if doc.space else ""
    return {
        "id": doc.content_id,
        "type": doc.kind,
        "status": record.status,
        "title": doc.title,
        "childTypes": {},
        "macroRenderedOutput": {},
        "restrictions": {},
        "_expandable": {
            "container": "",
            "metadata": "",
            "extensions": "",
            "operations": "",
            "children": "",
            "history": f"/rest/api/content/{doc.content_id}/history",
            "ancestors": "",
            "body": "",
            "version": "",
            "descendants": "",
            "space": f"/rest/api/space/{quote(space_key)}" if space_key else "",
        },
        "_links": links,
    }


def _url(doc: _Doc, ctx: Context) -> str:
    record = doc.record
    if isinstance(record, Page):
        return page_links(record, doc.space)["webui"]
    if isinstance(record, Attachment):
        return attachment_links(record)[0]
    assert isinstance(record, Comment)
    container = ctx.store.container(record.container_type, record.container_id)
    base = page_links(container, doc.space)["webui"] if container else "/"
    return f"{base}?focusedCommentId={record.id}#comment-{record.id}"


_ICONS = {
    "page": "aui-icon content-type-page",
    "blogpost": "aui-icon content-type-blogpost",
    "comment": "aui-icon content-type-comment",
    "attachment": "aui-icon content-type-attachment-image",
}


def _result_json(
    doc: _Doc, ctx: Context, words: list[str], mode: str, score: float
) -> dict[str, Any]:
    modified = doc.record.modified_at
    title = doc.title
    if mode.startswith("highlight"):
        title = _highlight(title, words, escape=mode == "highlight")
    data: dict[str, Any] = {
        "content": _content_json(doc, ctx),
        "title": title,
        "excerpt": _excerpt(doc, words, mode),
        "url": _url(doc, ctx),
    }
    if doc.space is not None:
        data["resultGlobalContainer"] = {
            "title": doc.space.name,
            "displayUrl": f"/spaces/{quote(doc.space.key)}",
        }
    data.update(
        {
            "breadcrumbs": [],
            "entityType": "content",
            "iconCssClass": _ICONS[doc.kind],
            "lastModified": modified,
            "friendlyLastModified": _friendly(modified),
            "score": score,
        }
    )
    return data


# -- paging ------------------------------------------------------------------------------------


def _fingerprint(cql: str) -> str:
    return hashlib.sha256(cql.encode()).hexdigest()[:16]


def _encode_cursor(start: int, cql: str) -> str:
    raw = json.dumps({"s": start, "q": _fingerprint(cql)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, cql: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        start = data["s"]
        if data["q"] != _fingerprint(cql) or not isinstance(start, int) or start < 0:
            raise ValueError("cursor belongs to another query")
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise bad_request(f"Invalid cursor: {cursor}") from exc
    return start


def _sort(hits: list[_Doc], query: Query, scores: dict[int, float]) -> None:
    """ORDER BY as given; else relevance for text searches, else most recently modified.

    Stable sorts, last key first, so each key can have its own direction without
    building inverted keys; the content id breaks ties.
    """
    hits.sort(key=lambda d: d.record.id)
    if not query.order_by:
        if any(c.field in ("text", "title") and c.op == "~" for c in query.clauses()):
            hits.sort(key=lambda d: scores[id(d)], reverse=True)
        else:
            hits.sort(key=lambda d: d.record.modified_at, reverse=True)
        return
    keys: dict[str, Callable[[_Doc], Any]] = {
        "created": lambda d: d.record.created_at,
        "lastmodified": lambda d: d.record.modified_at,
        "title": lambda d: d.title.casefold(),
        "id": lambda d: d.record.id,
    }
    for item in reversed(query.order_by):
        hits.sort(key=keys[item.field], reverse=item.descending)


def _scorer(words: list[str]) -> Callable[[_Doc], float]:
    """Relevance: 3 per term found in the title, 1 per term found anywhere."""
    if not words:
        return lambda doc: 1.0
    exact = [stem(w) for w in words if not w.endswith("*")]
    prefixes = [w[:-1] for w in words if w.endswith("*")]

    def score(doc: _Doc) -> float:
        title = _word_set(doc.title)
        body = _word_set(doc.text)
        total = 0
        for term in exact:
            total += (3 if term in title else 0) + (1 if term in body else 0)
        for prefix in prefixes:
            total += 3 if any(w.startswith(prefix) for w in title) else 0
            total += 1 if any(w.startswith(prefix) for w in body) else 0
        return float(total)

    return score


# -- handler -----------------------------------------------------------------------------------


def search(req: SimRequest, ctx: Context) -> SimResponse:
    """GET /wiki/rest/api/search: 400 with Confluence's message for CQL it cannot parse."""
    started = time.monotonic()
    q = req.query
    cql = q.string("cql")
    if cql is None:
        raise bad_request("The 'cql' query parameter is required")
    q.string("cqlcontext")
    q.boolean("next", False)
    q.boolean("prev", False)
    q.boolean("includeArchivedSpaces", False)
    q.boolean("excludeCurrentSpaces", False)
    q.enum("sitePermissionTypeFilter", ("externalCollaborator", "none"))
    q.optional_integer("_")
    q.array("expand")
    mode = q.enum("excerpt", EXCERPTS) or "highlight"
    limit = min(q.integer("limit", default=25, minimum=0, maximum=2**31 - 1), MAX_LIMIT)
    start = q.integer("start", default=0, minimum=0, maximum=2**31 - 1)
    cursor = q.string("cursor")
    try:
        query = parse(cql)
    except CqlError as exc:
        ctx.store.record_cql(CqlRecord(cql, None, str(exc)))
        raise ApiError(
            400,
            "com.atlassian.confluence.api.service.exceptions.BadRequestException: "
            f"Could not parse cql : {cql} ({exc})",
        ) from exc
    ctx.store.record_cql(CqlRecord(cql, query, None))
    if cursor is not None:
        start = _decode_cursor(cursor, cql)

    matches = compile_query(query.where, ctx.account_id)
    hits = [doc for doc in _documents(ctx) if matches(doc)]
    words = _highlight_terms(query)
    score = _scorer(words)
    scores = {id(doc): score(doc) for doc in hits}
    _sort(hits, query, scores)
    window = hits[start : start + limit]
    results = [_result_json(d, ctx, words, mode, scores[id(d)]) for d in window]

    pairs = [(k, v) for k, v in q.pairs if k not in ("start", "limit", "cursor", "next", "prev")]
    links: dict[str, str] = {
        "base": ctx.base_url,
        "context": CONTEXT,
        "self": f"{ctx.base_url}/rest/api/search?{urlencode(q.pairs)}",
    }
    if limit and start + limit < len(hits):
        token = _encode_cursor(start + limit, cql)
        links["next"] = "/rest/api/search?" + urlencode(
            [*pairs, ("limit", str(limit)), ("cursor", token), ("next", "true")]
        )
    if start > 0:
        token = _encode_cursor(max(0, start - limit), cql)
        links["prev"] = "/rest/api/search?" + urlencode(
            [*pairs, ("limit", str(limit)), ("cursor", token), ("prev", "true")]
        )
    payload = {
        "results": results,
        "start": start,
        "limit": limit,
        "size": len(results),
        "totalSize": len(hits),
        "cqlQuery": cql,
        "searchDuration": int((time.monotonic() - started) * 1000),
        "_links": links,
    }
    return SimResponse.json(payload)


def register(router: Router) -> None:
    router.add("GET", rf"{API}/search", "searchByCQL", search)
