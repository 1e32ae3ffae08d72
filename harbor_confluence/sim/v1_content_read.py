"""Confluence Cloud v1 content reads: GET /wiki/rest/api/content and /content/{id}.

Written from the v1 document (``confluence-cloud-v1.openapi.2021-11.json``, operations
``getContent`` and ``getContentById``; schemas ``Content``, ``ContentArray``, ``Space``,
``ContentHistory``, ``Version``, ``User``, ``ContentBody``). Clients built on the v1 API
(atlassian-python-api before 5, and mcp-atlassian on top of it) read pages through these.

``expand`` follows the document: a multi-value parameter (repeated or comma-separated) of
dotted paths; without it ``space``, ``history`` and ``version`` are expanded. Anything not
expanded is listed in ``_expandable``. Supported expansions: ``space``, ``history`` (and
``history.lastUpdated``), ``version``, ``body.<format>``, ``ancestors``, ``container``,
``children.page|attachment|comment``, ``childTypes.all``, ``metadata.labels``. Paging is
v1's ``start``/``limit`` with ``_links.next``. Only pages are held by the store, so
``type=blogpost`` lists nothing; an old ``version`` is a 404 because old bodies are not kept.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from .bodies import BodyFormatError, render
from .routes import Context, Router
from .store import Page, Space
from .v1_content import attachment_content_json
from .v2_pages import page_links
from .wire import ApiError, Query, SimRequest, SimResponse, bad_request, not_found, parse_id

__all__ = ["Expand", "content_json", "register", "version_json_v1"]

API = "/wiki/rest/api"
CONTEXT = "/wiki"
STATUSES = ("current", "trashed", "deleted", "historical", "draft", "any")
BODY_FORMATS = (
    "view",
    "export_view",
    "styled_view",
    "storage",
    "editor",
    "editor2",
    "anonymous_export_view",
    "atlas_doc_format",
)
DEFAULT_EXPAND = ("space", "history", "version")
CONTENT_EXPANDABLE = (
    "childTypes",
    "container",
    "metadata",
    "operations",
    "children",
    "restrictions",
    "history",
    "ancestors",
    "body",
    "version",
    "descendants",
    "space",
)
MAX_SUB_EXPANSIONS = 8  # "Maximum sub-expansions allowed is 8"
MAX_LIMIT = 200  # "this may be restricted by fixed system limits"


# -- expand ------------------------------------------------------------------------------------


class Expand:
    """The requested expansion tree, e.g. ``{"body": {"storage": {}}, "version": {}}``."""

    def __init__(self, paths: list[str]) -> None:
        self.tree: dict[str, Any] = {}
        for path in paths:
            parts = path.split(".")
            if len(parts) > MAX_SUB_EXPANSIONS:
                raise bad_request(f"Too many sub-expansions in '{path}'")
            node = self.tree
            for part in parts:
                node = node.setdefault(part, {})

    @classmethod
    def from_query(cls, q: Query) -> Expand:
        paths = q.array("expand")
        return cls(list(DEFAULT_EXPAND) if paths is None else paths)

    def has(self, *path: str) -> bool:
        node = self.tree
        for part in path:
            if part not in node:
                return False
            node = node[part]
        return True

    def sub(self, name: str) -> dict[str, Any]:
        value: dict[str, Any] = self.tree.get(name, {})
        return value


# -- JSON shapes -------------------------------------------------------------------------------


def _user_json(ctx: Context, account_id: str | None) -> dict[str, Any]:
    """The v1 ``User`` schema as Cloud sends it (no username or userKey since GDPR)."""
    user = ctx.store.user(account_id) if account_id else None
    name = user.display_name if user else "Unknown user"
    return {
        "type": "known" if user else "unknown",
        "accountId": account_id,
        "accountType": "atlassian",
        "email": user.email if user else "",
        "publicName": name,
        "profilePicture": {
            "path": f"{CONTEXT}/aa-avatar/{quote(account_id or 'unknown', safe='')}",
            "width": 48,
            "height": 48,
            "isDefault": user is None,
        },
        "displayName": name,
        "isExternalCollaborator": False,
        "_expandable": {"operations": "", "personalSpace": ""},
        "_links": {"self": f"{ctx.base_url}/rest/api/user?accountId={quote(account_id or '')}"},
    }


def _space_json(space: Space, ctx: Context) -> dict[str, Any]:
    return {
        "id": space.id,
        "key": space.key,
        "name": space.name,
        "type": space.type,
        "status": space.status,
        "_expandable": {
            "settings": f"/rest/api/space/{space.key}/settings",
            "metadata": "",
            "operations": "",
            "lookAndFeel": f"/rest/api/settings/lookandfeel?spaceKey={space.key}",
            "identifiers": "",
            "permissions": "",
            "icon": "",
            "description": "",
            "theme": f"/rest/api/space/{space.key}/theme",
            "history": "",
            "homepage": f"/rest/api/content/{space.homepage_id}" if space.homepage_id else "",
        },
        "_links": {
            "webui": f"/spaces/{space.key}",
            "self": f"{ctx.base_url}/rest/api/space/{space.key}",
        },
    }


def _version_json(page: Page, ctx: Context) -> dict[str, Any]:
    version = page.version
    return {
        "by": _user_json(ctx, version.author_id),
        "when": version.created_at,
        "friendlyWhen": version.created_at[:10],
        "message": version.message,
        "number": version.number,
        "minorEdit": version.minor_edit,
        "contentTypeModified": False,
        "_expandable": {"collaborators": "", "content": f"/rest/api/content/{page.id}"},
        "_links": {"self": f"{ctx.base_url}/rest/api/content/{page.id}/version/{version.number}"},
    }


version_json_v1 = _version_json  # the v1 ``Version`` of a page's current version


def _history_json(page: Page, ctx: Context, expand: Expand) -> dict[str, Any]:
    data: dict[str, Any] = {
        "latest": True,
        "createdBy": _user_json(ctx, page.author_id),
        "createdDate": page.created_at,
    }
    expandable = {"lastUpdated": "", "previousVersion": "", "contributors": "", "nextVersion": ""}
    if expand.has("lastUpdated"):
        data["lastUpdated"] = _version_json(page, ctx)
        del expandable["lastUpdated"]
    data["_expandable"] = expandable
    data["_links"] = {"self": f"{ctx.base_url}/rest/api/content/{page.id}/history"}
    return data


def _body_json(page: Page, expand: Expand) -> dict[str, Any]:
    data: dict[str, Any] = {}
    expandable = {}
    for fmt in BODY_FORMATS:
        if not expand.has(fmt):
            expandable[fmt] = ""
            continue
        try:
            value = render(page.body_representation, page.body_value, fmt)
        except BodyFormatError as exc:  # pragma: no cover - seed bodies always render
            raise ApiError(500, f"cannot render body as {fmt}: {exc}") from exc
        data[fmt] = {
            "value": value,
            "representation": fmt,
            "embeddedContent": [],
            "_expandable": {
                "content": f"/rest/api/content/{page.id}",
                "mediaToken": "",
                "webresource": "",
            },
        }
    data["_expandable"] = expandable
    return data


def _empty_array(ctx: Context, self_link: str) -> dict[str, Any]:
    return {
        "results": [],
        "start": 0,
        "limit": 25,
        "size": 0,
        "_links": {"self": f"{ctx.base_url}{self_link}"},
    }


def _children_json(page: Page, ctx: Context, expand: Expand) -> dict[str, Any]:
    base = f"/rest/api/content/{page.id}/child"
    data: dict[str, Any] = {}
    expandable = {}
    for kind in ("attachment", "comment", "page"):
        if not expand.has(kind):
            expandable[kind] = f"{base}/{kind}"
            continue
        if kind == "page":
            kids = sorted(ctx.store.children(page.id), key=lambda p: (p.position, p.id))
            kids = [k for k in kids if k.status == "current"]
            data[kind] = {
                "results": [content_json(k, ctx, Expand([])) for k in kids[:25]],
                "start": 0,
                "limit": 25,
                "size": min(len(kids), 25),
                "_links": {"self": f"{ctx.base_url}{base}/page"},
            }
        elif kind == "attachment":
            files = [
                a
                for a in ctx.store.attachments()
                if a.container_type == "page" and a.container_id == page.id
                and a.status == "current"
            ]  # fmt: skip
            data[kind] = {
                "results": [attachment_content_json(ctx, a) for a in files[:25]],
                "start": 0,
                "limit": 25,
                "size": min(len(files), 25),
                "_links": {"self": f"{ctx.base_url}{base}/attachment"},
            }
        else:  # comments are served by the v2 routes only
            data[kind] = _empty_array(ctx, f"{base}/{kind}")
    data["_expandable"] = expandable
    data["_links"] = {"self": f"{ctx.base_url}{base}"}
    return data


def _ancestors(page: Page, ctx: Context) -> list[dict[str, Any]]:
    chain: list[Page] = []
    parent_id = page.parent_id
    while parent_id is not None and len(chain) < 100:
        parent = ctx.store.page(parent_id)
        if parent is None:
            break
        chain.append(parent)
        parent_id = parent.parent_id
    return [content_json(p, ctx, Expand([])) for p in reversed(chain)]


def _labels_json(page: Page, ctx: Context) -> dict[str, Any]:
    labels = [
        {"prefix": "global", "name": n, "id": ctx.store.label_id(n), "label": n}
        for n in page.labels
    ]
    return {
        "results": labels,
        "start": 0,
        "limit": 200,
        "size": len(labels),
        "_links": {"self": f"{ctx.base_url}/rest/api/content/{page.id}/label"},
    }


def content_json(page: Page, ctx: Context, expand: Expand) -> dict[str, Any]:
    """The v1 ``Content`` object for a page, expanded as asked."""
    space = ctx.store.space(page.space_id)
    data: dict[str, Any] = {
        "id": str(page.id),
        "type": "page",
        "status": page.status,
        "title": page.title,
    }
    expandable: dict[str, str] = {}
    self_path = f"/rest/api/content/{page.id}"
    for name in CONTENT_EXPANDABLE:
        if not expand.has(name):
            expandable[name] = ""
    if expand.has("space") and space is not None:
        data["space"] = _space_json(space, ctx)
    if expand.has("history"):
        data["history"] = _history_json(page, ctx, _sub(expand, "history"))
    if expand.has("version"):
        data["version"] = _version_json(page, ctx)
    if expand.has("ancestors"):
        data["ancestors"] = _ancestors(page, ctx)
    if expand.has("container") and space is not None:
        data["container"] = _space_json(space, ctx)
    if expand.has("children"):
        data["children"] = _children_json(page, ctx, _sub(expand, "children"))
    if expand.has("childTypes"):
        link = f"{ctx.base_url}{self_path}/child"
        data["childTypes"] = {
            "attachment": {"value": False, "_links": {"self": f"{link}/attachment"}},
            "comment": {"value": False, "_links": {"self": f"{link}/comment"}},
            "page": {
                "value": any(k.status == "current" for k in ctx.store.children(page.id)),
                "_links": {"self": f"{link}/page"},
            },
        }
    if expand.has("body"):
        data["body"] = _body_json(page, _sub(expand, "body"))
    if expand.has("metadata"):
        metadata: dict[str, Any] = {
            "_expandable": {"currentuser": "", "properties": "", "frontend": ""}
        }
        if expand.has("metadata", "labels"):
            metadata["labels"] = _labels_json(page, ctx)
        else:
            metadata["_expandable"]["labels"] = ""
        data["metadata"] = metadata
    data["extensions"] = {"position": page.position}
    data["_expandable"] = expandable
    links = page_links(page, space)
    data["_links"] = {
        "webui": links["webui"],
        "edit": links["editui"],
        "tinyui": links["tinyui"],
        "self": f"{ctx.base_url}{self_path}",
    }
    return data


def _sub(expand: Expand, name: str) -> Expand:
    nested = Expand([])
    nested.tree = expand.sub(name)
    return nested


# -- handlers ----------------------------------------------------------------------------------


def _statuses(q: Query, default: set[str]) -> set[str] | None:
    """None means any status."""
    values = q.enum_array("status", STATUSES)
    if values is None:
        return default
    if "any" in values:
        return None
    return set(values)


def _top_links(ctx: Context, **extra: str) -> dict[str, str]:
    return {"base": ctx.base_url, "context": CONTEXT, **extra}


def get_content(req: SimRequest, ctx: Context) -> SimResponse:
    """GET /content: pages filtered by space key, title and status, start/limit paging."""
    q = req.query
    content_type = q.string("type") or "page"
    space_key = q.string("spaceKey")
    title = q.string("title")
    statuses = _statuses(q, {"current"})
    q.string("postingDay")
    q.enum("trigger", ("viewed",))
    q.string("orderby")  # accepted; results are in id order
    expand = Expand.from_query(q)
    start = q.integer("start", default=0, minimum=0, maximum=2**31 - 1)
    limit = min(q.integer("limit", default=25, minimum=0, maximum=2**31 - 1), MAX_LIMIT)

    space = ctx.store.space_by_key(space_key) if space_key is not None else None
    selected: list[Page] = []
    if content_type == "page" and (space_key is None or space is not None):
        selected = [
            p
            for p in ctx.store.pages()
            if (space is None or p.space_id == space.id)
            and (title is None or p.title == title)
            and (statuses is None or p.status in statuses)
        ]
    window = selected[start : start + limit]
    results = [content_json(p, ctx, expand) for p in window]
    pairs = [(k, v) for k, v in q.pairs if k not in ("start", "limit")]
    links = _top_links(ctx, self=f"{ctx.base_url}/rest/api/content")
    if start + limit < len(selected) and limit > 0:
        links["next"] = "/rest/api/content?" + urlencode(
            [*pairs, ("limit", str(limit)), ("start", str(start + limit))]
        )
    if start > 0:
        links["prev"] = "/rest/api/content?" + urlencode(
            [*pairs, ("limit", str(limit)), ("start", str(max(0, start - limit)))]
        )
    return SimResponse.json(
        {"results": results, "start": start, "limit": limit, "size": len(results), "_links": links}
    )


def get_content_by_id(req: SimRequest, ctx: Context) -> SimResponse:
    """GET /content/{id}: 404 when absent or filtered out by ``status``."""
    page_id = parse_id("id", req.params["id"])
    q = req.query
    # By id an archived page is still returned, as Confluence does; list filters are strict.
    statuses = _statuses(q, {"current", "archived"})
    version = q.optional_integer("version")
    q.enum("embeddedContentRender", ("current", "version-at-save"))
    q.enum("trigger", ("viewed",))
    expand = Expand.from_query(q)
    page = ctx.store.page(page_id)
    if page is None or (statuses is not None and page.status not in statuses):
        raise not_found(
            "There is no content with the given id, or the calling user does not have "
            "permission to view the content"
        )
    if version is not None and version != page.version.number:
        raise not_found(f"Version {version} of content {page_id} is not held by the simulator")
    data = content_json(page, ctx, expand)
    data["_links"].update(_top_links(ctx, collection="/rest/api/content"))
    return SimResponse.json(data)


def register(router: Router) -> None:
    router.add("GET", rf"{API}/content", "getContent", get_content)
    router.add("GET", rf"{API}/content/(?P<id>[^/]+)", "getContentById", get_content_by_id)
