"""v1 people and activity routes: users by account id (one, bulk, CQL search), content
watches, page analytics, and page templates.

Written from the v1 document (``getUser``, ``getBulkUserLookup``, ``searchUser``,
``getContentWatchStatus``, ``addContentWatcher``, ``removeContentWatcher``, ``getViews``,
``getViewers``, ``getContentTemplates``, ``getContentTemplate``; schemas User,
BulkUserLookupArray, SearchPageResponseSearchResult, UserWatch, ContentTemplateArray,
ContentTemplate). Errors use the v1 envelope.

User search takes ``type = user``, ``user.fullname ~ "text"`` (case-insensitive, part of
the name), ``user.accountid`` / ``user`` (``=``, ``!=``, ``IN``), with AND, OR, NOT and
parentheses. Removing a watch needs ``X-Atlassian-Token: no-check`` (a required header in
the document), as Confluence's XSRF filter does.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from .cql import And, Clause, CqlError, Node, Not, Or, parse_user_query
from .routes import Context, Router
from .store import Template, User, label_parts
from .v1_content import XSRF_VALUES, user_json
from .wire import ApiError, Query, SimRequest, SimResponse, bad_request, not_found

__all__ = ["register"]

API = "/wiki/rest/api"
CONTEXT = "/wiki"
USER_EXPANDS = ("operations", "personalSpace", "isExternalCollaborator")
MAX_LIMIT = 200
MAX_BULK = 100  # Confluence caps a bulk lookup; the runner's action allows 1..100
USERS_SINCE = "2022-01-10T10:00:00.000Z"  # the site's oldest seed date: users predate content
_DATE = re.compile(r"\d{4}-\d\d-\d\d(?:T\d\d:\d\d(?::\d\d(?:\.\d{1,3})?)?Z?)?")


def _paging(q: Query, default: int = 25) -> tuple[int, int]:
    start = q.integer("start", default=0, minimum=0, maximum=2**31 - 1)
    limit = min(q.integer("limit", default=default, minimum=0, maximum=2**31 - 1), MAX_LIMIT)
    return start, limit


def _account_param(q: Query) -> str | None:
    """``accountId``; the GDPR-retired ``key`` and ``username`` lookups are refused."""
    for retired in ("key", "username"):
        if q.one(retired) is not None:
            raise bad_request(f"The '{retired}' parameter is no longer supported: use 'accountId'")
    return q.one("accountId")


# -- users -----------------------------------------------------------------------------------


def get_user(req: SimRequest, ctx: Context) -> SimResponse:
    """GET /user?accountId=: one user, 404 for an unknown account."""
    q = req.query
    q.enum_array("expand", USER_EXPANDS)
    account_id = _account_param(q)
    if not account_id:
        raise bad_request("The 'accountId' query parameter is required")
    if ctx.store.user(account_id) is None:
        raise not_found(f"No user with accountId {account_id}")
    data = user_json(ctx, account_id)
    data["_links"].update(base=ctx.base_url, context=CONTEXT)
    return SimResponse.json(data)


def bulk_users(req: SimRequest, ctx: Context) -> SimResponse:
    """GET /user/bulk?accountId=a&accountId=b (or ``a,b``): the known ones, in order."""
    q = req.query
    q.enum_array("expand", ("operations", "personalSpace"))
    limit = q.integer("limit", default=MAX_LIMIT, minimum=1, maximum=MAX_LIMIT)
    wanted = q.array("accountId", max_items=MAX_BULK)
    if not wanted:
        raise bad_request("The 'accountId' query parameter is required")
    seen: list[str] = []
    for account_id in wanted:
        if account_id not in seen and ctx.store.user(account_id) is not None:
            seen.append(account_id)
    results = [user_json(ctx, a) for a in seen[:limit]]
    return SimResponse.json(
        {
            "results": results,
            "start": 0,
            "limit": limit,
            "size": len(results),
            "_links": {
                "self": f"{ctx.base_url}/rest/api/user/bulk",
                "base": ctx.base_url,
                "context": CONTEXT,
            },
        }
    )


UserPredicate = Callable[[User], bool]


def _user_clause(clause: Clause) -> UserPredicate:
    texts = [v.text for v in clause.values]
    if clause.field == "type":
        hit = "user" in texts
        return lambda _u: hit if clause.op in ("=", "in") else not hit
    if clause.field == "user.fullname":
        needle = texts[0].casefold()
        found: UserPredicate = lambda u: needle in u.display_name.casefold()  # noqa: E731
        return found if clause.op == "~" else (lambda u: not found(u))
    ids = set(texts)
    if clause.op in ("=", "in"):
        return lambda u: u.account_id in ids
    return lambda u: u.account_id not in ids


def _user_predicate(node: Node) -> UserPredicate:
    if isinstance(node, Clause):
        return _user_clause(node)
    if isinstance(node, Not):
        inner = _user_predicate(node.item)
        return lambda u: not inner(u)
    parts = [_user_predicate(item) for item in node.items]
    if isinstance(node, And):
        return lambda u: all(p(u) for p in parts)
    assert isinstance(node, Or)
    return lambda u: any(p(u) for p in parts)


def search_users(req: SimRequest, ctx: Context) -> SimResponse:
    """GET /search/user?cql=: users as SearchResult items (``user`` holds the User)."""
    started = time.monotonic()
    q = req.query
    cql = q.string("cql")
    if not cql:
        raise bad_request("The 'cql' query parameter is required")
    q.array("expand")
    q.string("sitePermissionTypeFilter")
    start, limit = _paging(q)
    try:
        query = parse_user_query(cql)
    except CqlError as exc:
        raise ApiError(
            400,
            "com.atlassian.confluence.api.service.exceptions.BadRequestException: "
            f"Could not parse cql : {cql} ({exc})",
        ) from exc
    if query.order_by:
        raise bad_request("User search does not take ORDER BY")
    matches = _user_predicate(query.where)
    hits = sorted(
        (u for u in ctx.store.users() if matches(u)), key=lambda u: u.display_name.casefold()
    )
    window = hits[start : start + limit]
    results = [
        {
            "user": user_json(ctx, u.account_id),
            "title": u.display_name,
            "excerpt": "",
            "url": f"/people/{u.account_id}",
            "breadcrumbs": [],
            "entityType": "user",
            "iconCssClass": "aui-icon content-type-profile",
            "lastModified": USERS_SINCE,
            "friendlyLastModified": USERS_SINCE[:10],
            "score": 0.0,
        }
        for u in window
    ]
    pairs = [(k, v) for k, v in q.pairs if k not in ("start", "limit")]
    links = {
        "self": f"{ctx.base_url}/rest/api/search/user?{urlencode(q.pairs)}",
        "base": ctx.base_url,
        "context": CONTEXT,
    }
    if limit and start + limit < len(hits):
        links["next"] = "/rest/api/search/user?" + urlencode(
            [*pairs, ("start", str(start + limit)), ("limit", str(limit))]
        )
    return SimResponse.json(
        {
            "results": results,
            "start": start,
            "limit": limit,
            "size": len(results),
            "totalSize": len(hits),
            "cqlQuery": cql,
            "searchDuration": int((time.monotonic() - started) * 1000),
            "_links": links,
        }
    )


# -- watches -----------------------------------------------------------------------------------


def _content_id(raw: str) -> int:
    bare = raw[3:] if raw.startswith("att") else raw
    if not bare.isascii() or not bare.isdigit():
        raise bad_request(f"Invalid content id: {raw}")
    return int(bare)


def _live_content(ctx: Context, raw: str) -> int:
    content_id = _content_id(raw)
    record = ctx.store.content(content_id)
    if record is None or record.status not in ("current", "archived", "draft"):
        raise not_found(f"There is no content with id {content_id}")
    return content_id


def _watcher(req: SimRequest, ctx: Context) -> str:
    account_id = _account_param(req.query)
    if account_id is None:
        return ctx.account_id
    if ctx.store.user(account_id) is None:
        raise not_found(f"No user with accountId {account_id}")
    return account_id


def watch_status(req: SimRequest, ctx: Context) -> SimResponse:
    """GET /user/watch/content/{contentId}: ``{"watching": bool}`` for the caller (or user)."""
    content_id = _live_content(ctx, req.params["contentId"])
    watcher = _watcher(req, ctx)
    return SimResponse.json({"watching": ctx.store.watching(watcher, content_id)})


def add_watch(req: SimRequest, ctx: Context) -> SimResponse:
    """POST /user/watch/content/{contentId}: 204, also when already watching."""
    content_id = _live_content(ctx, req.params["contentId"])
    ctx.store.set_watch(_watcher(req, ctx), content_id, True)
    return SimResponse(204)


def remove_watch(req: SimRequest, ctx: Context) -> SimResponse:
    """DELETE /user/watch/content/{contentId}: 204; needs ``X-Atlassian-Token: no-check``."""
    token = (req.header("x-atlassian-token") or "").strip().lower()
    if token not in XSRF_VALUES:
        raise ApiError(403, "XSRF check failed")
    content_id = _live_content(ctx, req.params["contentId"])
    ctx.store.set_watch(_watcher(req, ctx), content_id, False)
    return SimResponse(204)


# -- analytics ---------------------------------------------------------------------------------


def _views(req: SimRequest, ctx: Context) -> tuple[int, list[tuple[str, str]]]:
    content_id = _live_content(ctx, req.params["contentId"])
    since = req.query.string("fromDate")
    views = ctx.store.views(content_id)
    if since is not None:
        if _DATE.fullmatch(since) is None:
            raise bad_request(f"'fromDate' must be a date (yyyy-MM-dd), got '{since}'")
        views = [v for v in views if v[1] >= since]
    return content_id, views


def get_views(req: SimRequest, ctx: Context) -> SimResponse:
    """GET /analytics/content/{contentId}/views: ``{id, count}`` of every view."""
    content_id, views = _views(req, ctx)
    return SimResponse.json({"id": content_id, "count": len(views)})


def get_viewers(req: SimRequest, ctx: Context) -> SimResponse:
    """GET /analytics/content/{contentId}/viewers: ``{id, count}`` of distinct viewers."""
    content_id, views = _views(req, ctx)
    return SimResponse.json({"id": content_id, "count": len({who for who, _ in views})})


# -- templates ---------------------------------------------------------------------------------


def _template_json(template: Template, ctx: Context, with_body: bool) -> dict[str, Any]:
    labels = []
    for text in template.labels:
        prefix, name = label_parts(text)
        labels.append(
            {"prefix": prefix, "name": name, "id": ctx.store.label_id(text), "label": name}
        )
    data: dict[str, Any] = {
        "templateId": str(template.id),
        "name": template.name,
        "description": template.description,
        "labels": labels,
        "templateType": "page",
        "editorVersion": "v2",
    }
    space = ctx.store.space(template.space_id) if template.space_id is not None else None
    if space is not None:
        data["space"] = {
            "id": space.id,
            "key": space.key,
            "name": space.name,
            "_links": {"webui": f"/spaces/{space.key}"},
        }
    if with_body:
        data["body"] = {
            "storage": {"value": template.body, "representation": "storage", "embeddedContent": []}
        }
    else:
        data["_expandable"] = {"body": ""}
    data["_links"] = {
        "self": f"{ctx.base_url}/rest/api/template/{template.id}",
        "base": ctx.base_url,
        "context": CONTEXT,
    }
    return data


def list_templates(req: SimRequest, ctx: Context) -> SimResponse:
    """GET /template/page?spaceKey=: that space's page templates, else the global ones."""
    q = req.query
    space_key = q.string("spaceKey")
    start, limit = _paging(q)
    with_body = "body" in (q.enum_array("expand", ("body",)) or [])
    space_id = None
    if space_key is not None:
        space = ctx.store.space_by_key(space_key)
        if space is None:
            raise not_found(f"No space with key {space_key}")
        space_id = space.id
    found = [t for t in ctx.store.templates() if t.space_id == space_id]
    window = found[start : start + limit]
    links = {
        "self": f"{ctx.base_url}/rest/api/template/page",
        "base": ctx.base_url,
        "context": CONTEXT,
    }
    if limit and start + limit < len(found):
        pairs = [(k, v) for k, v in q.pairs if k not in ("start", "limit")]
        links["next"] = "/rest/api/template/page?" + urlencode(
            [*pairs, ("start", str(start + limit)), ("limit", str(limit))]
        )
    return SimResponse.json(
        {
            "results": [_template_json(t, ctx, with_body) for t in window],
            "start": start,
            "limit": limit,
            "size": len(window),
            "_links": links,
        }
    )


def get_template(req: SimRequest, ctx: Context) -> SimResponse:
    """GET /template/{contentTemplateId}: with its storage body."""
    raw = req.params["contentTemplateId"]
    if not raw.isascii() or not raw.isdigit():
        raise bad_request(f"Invalid template id: {raw}")
    template = ctx.store.template(int(raw))
    if template is None:
        raise not_found(f"No template with id {raw}")
    return SimResponse.json(_template_json(template, ctx, with_body=True))


def register(router: Router) -> None:
    router.add("GET", rf"{API}/user", "getUser", get_user)
    router.add("GET", rf"{API}/user/bulk", "getBulkUserLookup", bulk_users)
    router.add("GET", rf"{API}/search/user", "searchUser", search_users)
    watch = rf"{API}/user/watch/content/(?P<contentId>[^/]+)"
    router.add("GET", watch, "getContentWatchStatus", watch_status)
    router.add("POST", watch, "addContentWatcher", add_watch)
    router.add("DELETE", watch, "removeContentWatcher", remove_watch)
    analytics = rf"{API}/analytics/content/(?P<contentId>[^/]+)"
    router.add("GET", rf"{analytics}/views", "getViews", get_views)
    router.add("GET", rf"{analytics}/viewers", "getViewers", get_viewers)
    router.add("GET", rf"{API}/template/page", "getContentTemplates", list_templates)
    router.add(
        "GET", rf"{API}/template/(?P<contentTemplateId>[^/]+)", "getContentTemplate", get_template
    )
