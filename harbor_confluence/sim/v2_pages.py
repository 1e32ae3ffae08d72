"""Confluence Cloud v2 page routes, and the handlers pages share with blog posts.

Shapes follow the v2 document's PageBulk / PageSingle (BlogPostBulk / BlogPostSingle),
ChildrenResponse, Ancestor, PageVersion and DetailedVersion schemas; where the document is
silent (error bodies, 409) the behaviour follows what Confluence Cloud answers.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, quote_plus

from .common import (
    API,
    BULK_BODY_FORMATS,
    SINGLE_BODY_FORMATS,
    body_json,
    content_property_json,
    digits,
    label_json,
    listing,
    now,
    optional_field,
    read_body,
    read_object,
    read_version,
    store_errors,
    version_json,
    visible_container,
)
from .paging import SortKey, paginate
from .routes import Context, Handler, Router
from .store import Page, Space, VersionInfo, label_parts
from .wire import SimRequest, SimResponse, bad_request, not_found, parse_id

__all__ = ["container_single", "page_bulk", "page_links", "register"]

PAGE_SORTS = (
    "id",
    "-id",
    "created-date",
    "-created-date",
    "modified-date",
    "-modified-date",
    "title",
    "-title",
)
LIST_STATUSES = ("current", "archived", "deleted", "trashed")
GET_STATUSES = ("current", "archived", "trashed", "deleted", "historical", "draft")
MAX_TITLE = 255
LABEL_PREFIXES = ("my", "team", "global", "system")
_NAMES = {"page": "Page", "blogpost": "Blog post"}


def tiny_id(page_id: int) -> str:
    """Confluence's tiny-link token: little-endian id bytes in URL-safe base64, unpadded."""
    raw = page_id.to_bytes(8, "little").rstrip(b"\0") or b"\0"
    return base64.b64encode(raw).decode().rstrip("=").replace("/", "-").replace("+", "_")


def page_links(page: Page, space: Space | None) -> dict[str, str]:
    """AbstractPageLinks: relative to ``_links.base`` like on a real site."""
    key = quote(space.key if space else str(page.space_id))
    if page.kind == "blogpost":
        day = page.created_at[:10].replace("-", "/")
        webui = f"/spaces/{key}/blog/{day}/{page.id}/{quote_plus(page.title)}"
    else:
        webui = f"/spaces/{key}/pages/{page.id}/{quote_plus(page.title)}"
    return {
        "editui": f"/pages/resumedraft.action?draftId={page.id}",
        "webui": webui,
        "tinyui": f"/x/{tiny_id(page.id)}",
    }


def _common(page: Page, version: VersionInfo) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(page.id),
        "status": page.status,
        "title": version.title,
        "spaceId": str(page.space_id),
    }
    if page.kind == "blogpost":
        data["authorId"] = page.author_id
        data["createdAt"] = page.created_at
        return data
    # The schema types parentId/parentType as non-nullable strings although the text says
    # "or null": a page without parent omits both rather than send an invalid null.
    if page.parent_id is not None:
        data["parentId"] = str(page.parent_id)
        data["parentType"] = page.parent_type
    data.update(
        {
            "position": page.position,
            "authorId": page.author_id,
            "ownerId": page.owner_id,
            "lastOwnerId": page.last_owner_id,
            "createdAt": page.created_at,
        }
    )
    return data


def page_bulk(page: Page, space: Space | None, body_format: str | None) -> dict[str, Any]:
    """One item of GET /pages (PageBulk) or GET /blogposts (BlogPostBulk)."""
    data = _common(page, page.version)
    if page.kind == "page":
        data["subtype"] = page.subtype
    data["version"] = version_json(page.version)
    data["body"] = body_json(page.body_representation, page.body_value, body_format)
    data["_links"] = page_links(page, space)
    return data


def container_single(
    page: Page,
    ctx: Context,
    *,
    version: VersionInfo | None = None,
    body_format: str | None = None,
    include_version: bool = True,
    include_labels: bool = False,
    include_properties: bool = False,
    include_operations: bool = False,
    include_likes: bool = False,
    include_versions: bool = False,
    include_favorited: bool = False,
) -> dict[str, Any]:
    """PageSingle / BlogPostSingle plus ``_links.base``, at ``version`` (default: current)."""
    shown = version or page.version
    space = ctx.store.space(page.space_id)
    data = _common(page, shown)
    base = f"{API}/{'blogposts' if page.kind == 'blogpost' else 'pages'}/{page.id}"
    if include_version:
        data["version"] = version_json(shown)
    data["body"] = body_json(shown.body_representation, shown.body_value, body_format)
    if include_labels:
        labels = [label_json(ctx, text) for text in page.labels]
        data["labels"] = optional_field(labels, f"{base}/labels")
    if include_properties:
        props = [content_property_json(p) for p in ctx.store.properties(page.kind, page.id)]
        data["properties"] = optional_field(props, f"{base}/properties")
    if include_operations:
        ops = [{"operation": op, "targetType": page.kind} for op in ("read", "update", "delete")]
        data["operations"] = optional_field(ops, f"{base}/operations")
    if include_likes:
        data["likes"] = optional_field([], f"{base}/likes/users")
    if include_versions:
        history = [version_json(v) for v in reversed(page.versions)]
        data["versions"] = optional_field(history, f"{base}/versions")
    if include_favorited:
        data["isFavoritedByCurrentUser"] = False
    data["_links"] = {**page_links(page, space), "base": ctx.base_url}
    return data


def sort_key(sort: str) -> Callable[[Page], SortKey]:
    field = sort.lstrip("-")
    if field == "created-date":
        return lambda p: (p.created_at, p.id)
    if field == "modified-date":
        return lambda p: (p.modified_at, p.id)
    if field == "title":
        return lambda p: (p.title.casefold(), p.id)
    return lambda p: (p.id, p.id)


def list_containers(
    req: SimRequest,
    ctx: Context,
    kind: str,
    *,
    path: str,
    space_id: int | None = None,
    depth_root: bool = False,
) -> SimResponse:
    """GET /pages, /blogposts and the space-scoped variants: filters, sort, cursor paging."""
    q = req.query
    blog = kind == "blogpost"
    sorts = tuple(s for s in PAGE_SORTS if not (blog and s.lstrip("-") == "title"))
    statuses_allowed = ("current", "deleted", "trashed") if blog else LIST_STATUSES
    ids = q.int_array("id", max_items=250) if space_id is None else None
    space_ids = q.int_array("space-id", max_items=100) if space_id is None else [space_id]
    sort = q.enum("sort", sorts) or "id"
    default_statuses = ("current",) if blog else ("current", "archived")
    statuses = set(q.enum_array("status", statuses_allowed) or default_statuses)
    title = q.string("title")
    body_format = q.enum("body-format", BULK_BODY_FORMATS)
    subtype = q.enum("subtype", ("live", "page")) if not blog and space_id is None else None
    limit = q.integer("limit", default=25, minimum=1, maximum=250)

    id_set = set(ids) if ids is not None else None
    space_set = set(space_ids) if space_ids is not None else None
    wanted_subtype = None if subtype in (None, "page") else subtype
    source = ctx.store.blogposts() if blog else ctx.store.pages()
    selected = [
        p
        for p in source
        if p.status in statuses
        and (id_set is None or p.id in id_set)
        and (space_set is None or p.space_id in space_set)
        and (title is None or p.title == title)
        and (subtype is None or p.subtype == wanted_subtype)
        and (not depth_root or p.parent_id is None)
    ]
    paged = paginate(
        selected,
        key=sort_key(sort),
        descending=sort.startswith("-"),
        sort_name=sort,
        query=q,
        path=path,
        limit=limit,
    )
    spaces = {s.id: s for s in ctx.store.spaces()}
    results = [page_bulk(p, spaces.get(p.space_id), body_format) for p in paged.items]
    return SimResponse.json(
        {"results": results, "_links": paged.links(ctx.base_url)},
        headers=paged.headers(ctx.base_url),
    )


def list_pages(req: SimRequest, ctx: Context) -> SimResponse:
    """GET /pages: no body unless ``body-format`` is given."""
    return list_containers(req, ctx, "page", path=f"{API}/pages")


def get_container(kind: str) -> Handler:
    """GET /pages/{id} or /blogposts/{id}; ``version=N`` answers with version N's content."""
    statuses_allowed = (
        GET_STATUSES if kind == "page" else tuple(s for s in GET_STATUSES if s != "archived")
    )

    def handler(req: SimRequest, ctx: Context) -> SimResponse:
        content_id = parse_id("id", req.params["id"])
        q = req.query
        body_format = q.enum("body-format", SINGLE_BODY_FORMATS)
        get_draft = q.boolean("get-draft", False)
        statuses = q.enum_array("status", statuses_allowed)
        wanted = q.optional_integer("version")
        flags = {
            name: q.boolean(name, default)
            for name, default in (
                ("include-version", True),
                ("include-labels", False),
                ("include-properties", False),
                ("include-operations", False),
                ("include-likes", False),
                ("include-versions", False),
                ("include-favorited-by-current-user-status", False),
                # Accepted for compatibility; the single schemas have no field for these.
                ("include-webresources", False),
                ("include-collaborators", False),
                ("include-direct-children", False),
            )
        }
        page = ctx.store.container(kind, content_id)
        default = {"current", "archived"} if kind == "page" else {"current"}
        allowed = set(statuses) if statuses else default
        if get_draft:
            allowed.add("draft")
        if page is None or page.status not in allowed:
            raise not_found(detail=f"No {kind} with id {content_id} and status {sorted(allowed)}")
        version = None
        if wanted is not None:
            version = next((v for v in page.versions if v.number == wanted), None)
            if version is None:
                raise not_found(detail=f"{_NAMES[kind]} {content_id} has no version {wanted}")
        payload = container_single(
            page,
            ctx,
            version=version,
            body_format=body_format,
            include_version=flags["include-version"],
            include_labels=flags["include-labels"],
            include_properties=flags["include-properties"],
            include_operations=flags["include-operations"],
            include_likes=flags["include-likes"],
            include_versions=flags["include-versions"],
            include_favorited=flags["include-favorited-by-current-user-status"],
        )
        return SimResponse.json(payload)

    return handler


def _read_title(payload: dict[str, Any], status: str) -> str:
    title = payload.get("title")
    if title is not None and not isinstance(title, str):
        raise bad_request(f"'title' must be a string, got {type(title).__name__}")
    if status == "current" and not (title or "").strip():
        raise bad_request("'title' is required for content that is not a draft")
    if title is not None and len(title) > MAX_TITLE:
        raise bad_request(f"'title' must be at most {MAX_TITLE} characters")
    return (title or "").strip()


def create_container(kind: str) -> Handler:
    """POST /pages or /blogposts: validate like Confluence, then store; the answer is 200."""

    def handler(req: SimRequest, ctx: Context) -> SimResponse:
        q = req.query
        q.boolean("private", False)
        root_level = False
        if kind == "page":
            q.boolean("embedded", False)
            root_level = q.boolean("root-level", False)
        payload = read_object(req)
        if "spaceId" not in payload:
            raise bad_request("'spaceId' is required")
        space_id = digits("spaceId", payload["spaceId"])
        status = payload.get("status", "current")
        if status not in ("current", "draft"):
            raise bad_request("'status' must be 'current' or 'draft'")
        title = _read_title(payload, status)
        parent_id = None
        subtype = None
        if kind == "page":
            if payload.get("parentId") is not None:
                parent_id = digits("parentId", payload["parentId"])
            if root_level and parent_id is not None:
                raise bad_request("'parentId' may not be given together with root-level=true")
            subtype = payload.get("subtype")
            if subtype not in (None, "live"):
                raise bad_request("'subtype' must be 'live' when given")
        representation, value = read_body(payload.get("body"))
        with store_errors(ctx, f"space {space_id}"):
            page = ctx.store.create_page(
                space_id=space_id,
                title=title,
                status=status,
                parent_id=parent_id,
                root_level=root_level,
                body_representation=representation,
                body_value=value,
                author_id=ctx.account_id,
                subtype=subtype,
                now=now(),
                kind=kind,
            )
        return SimResponse.json(container_single(page, ctx, body_format=page.body_representation))

    return handler


def update_container(kind: str) -> Handler:
    """PUT /pages/{id} or /blogposts/{id}: a new version, only as current + 1 (else 409)."""

    def handler(req: SimRequest, ctx: Context) -> SimResponse:
        content_id = parse_id("id", req.params["id"])
        payload = read_object(req)
        for field in ("id", "status", "title", "body", "version"):
            if field not in payload:
                raise bad_request(f"'{field}' is required")
        if digits("id", payload["id"]) != content_id:
            raise bad_request(f"'id' in the body ({payload['id']}) does not match the path")
        status = payload["status"]
        if status not in ("current", "draft"):
            raise bad_request("'status' must be 'current' or 'draft'")
        title = _read_title(payload, status)
        number, message = read_version(payload)
        representation, value = read_body(payload["body"], required=True)
        existing = ctx.store.container(kind, content_id)
        if existing is None:
            raise not_found(detail=f"No {kind} with id {content_id}")
        if payload.get("spaceId") is not None:
            space_id = payload["spaceId"]
            if str(space_id) != str(existing.space_id):
                raise bad_request("Moving content to another space is not supported ('spaceId')")
        parent_id = None
        if kind == "page" and payload.get("parentId") is not None:
            parent_id = digits("parentId", payload["parentId"])
        with store_errors(ctx, f"{_NAMES[kind]} {content_id}"):
            page = ctx.store.update_page(
                kind,
                content_id,
                version=number,
                message=message,
                title=title,
                status=status,
                body_representation=representation,
                body_value=value,
                parent_id=parent_id,
                author_id=ctx.account_id,
                now=now(),
            )
        return SimResponse.json(container_single(page, ctx, body_format=page.body_representation))

    return handler


def delete_container(kind: str) -> Handler:
    """DELETE /pages/{id} or /blogposts/{id}: trash, ``purge=true`` a trashed one,
    ``draft=true`` discard a draft."""

    def handler(req: SimRequest, ctx: Context) -> SimResponse:
        content_id = parse_id("id", req.params["id"])
        purge = req.query.boolean("purge", False)
        draft = req.query.boolean("draft", False)
        if purge and draft:
            raise bad_request("'purge' and 'draft' cannot be combined")
        page = ctx.store.container(kind, content_id)
        name = f"{_NAMES[kind]} {content_id}"
        if page is None or page.status == "deleted":
            raise not_found(detail=f"No {kind} with id {content_id}")
        if purge and page.status != "trashed":
            raise bad_request(f"{name} is not in the trash: delete it first, then purge it")
        if draft and page.status != "draft":
            raise bad_request(f"{name} is not a draft ('draft=true' deletes drafts only)")
        if not (purge or draft) and page.status == "draft":
            raise bad_request(f"{name} is a draft: delete it with 'draft=true'")
        with store_errors(ctx, name):
            if purge or draft:
                ctx.store.purge_page(kind, content_id, draft=draft)
            else:
                ctx.store.trash_page(kind, content_id)
        return SimResponse(204)

    return handler


def list_versions(kind: str) -> Handler:
    """GET /{pages|blogposts}/{id}/versions: PageVersion / BlogPostVersion, newest first."""
    entity = "page" if kind == "page" else "blogpost"

    def handler(req: SimRequest, ctx: Context) -> SimResponse:
        content_id = parse_id("id", req.params["id"])
        body_format = req.query.enum("body-format", BULK_BODY_FORMATS)
        page = visible_container(ctx, kind, content_id)

        def render_item(version: VersionInfo) -> dict[str, Any]:
            data = version_json(version)
            data[entity] = {
                "title": version.title,
                "id": str(page.id),
                "body": body_json(version.body_representation, version.body_value, body_format),
            }
            return data

        return listing(
            req,
            ctx,
            page.versions,
            sorts={"modified-date": lambda v: (v.created_at, v.number)},
            default_sort="-modified-date",
            path=req.path,
            render_item=render_item,
        )

    return handler


def get_page_version(req: SimRequest, ctx: Context) -> SimResponse:
    """GET /pages/{page-id}/versions/{version-number}: DetailedVersion."""
    page_id = parse_id("page-id", req.params["page_id"])
    number = parse_id("version-number", req.params["version"])
    page = visible_container(ctx, "page", page_id)
    versions = {v.number: v for v in page.versions}
    version = versions.get(number)
    if version is None:
        raise not_found(detail=f"Page {page_id} has no version {number}")
    data = version_json(version)
    data["contentTypeModified"] = False
    data["collaborators"] = [version.author_id]
    if number - 1 in versions:
        data["prevVersion"] = number - 1
    if number + 1 in versions:
        data["nextVersion"] = number + 1
    return SimResponse.json(data)


def list_labels(kind: str) -> Handler:
    """GET /{pages|blogposts}/{id}/labels: the content's labels, filterable by prefix."""

    def handler(req: SimRequest, ctx: Context) -> SimResponse:
        content_id = parse_id("id", req.params["id"])
        prefix = req.query.enum("prefix", LABEL_PREFIXES)
        page = visible_container(ctx, kind, content_id)
        return label_listing(req, ctx, page.labels, prefix)

    return handler


def label_listing(
    req: SimRequest, ctx: Context, labels: tuple[str, ...] | list[str], prefix: str | None
) -> SimResponse:
    """A cursor-paged Label list (LabelSortOrder: created-date and id follow the label id)."""
    items = [
        (int(ctx.store.label_id(text)), *label_parts(text))
        for text in labels
        if prefix is None or label_parts(text)[0] == prefix
    ]
    return listing(
        req,
        ctx,
        items,
        sorts={
            "created-date": lambda item: (item[0], item[0]),
            "id": lambda item: (item[0], item[0]),
            "name": lambda item: (item[2], item[0]),
        },
        default_sort="id",
        path=req.path,
        render_item=lambda item: {"id": str(item[0]), "name": item[2], "prefix": item[1]},
    )


def ancestors(req: SimRequest, ctx: Context) -> SimResponse:
    """GET /pages/{id}/ancestors: top-to-bottom; ``limit`` keeps the nearest ones, and the
    caller continues from the first (highest) one, as the document describes."""
    page = visible_container(ctx, "page", parse_id("id", req.params["id"]))
    limit = req.query.integer("limit", default=25, minimum=1, maximum=250)
    chain: list[tuple[int, str]] = []
    parent_id = page.parent_id
    while parent_id is not None and len(chain) < limit:
        parent = ctx.store.tree_item(parent_id)
        if parent is None:
            break
        chain.append((parent.id, parent.kind))
        parent_id = parent.parent_id
    results = [{"id": str(i), "type": kind} for i, kind in reversed(chain)]
    return SimResponse.json({"results": results, "_links": {"base": ctx.base_url}})


def register(router: Router) -> None:
    p = rf"{API}/pages/(?P<id>[^/]+)"
    router.add("GET", rf"{API}/pages", "getPages", list_pages)
    router.add("POST", rf"{API}/pages", "createPage", create_container("page"))
    router.add("GET", p, "getPageById", get_container("page"))
    router.add("PUT", p, "updatePage", update_container("page"))
    router.add("DELETE", p, "deletePage", delete_container("page"))
    router.add("GET", rf"{p}/ancestors", "getPageAncestors", ancestors)
    router.add("GET", rf"{p}/versions", "getPageVersions", list_versions("page"))
    router.add(
        "GET",
        rf"{API}/pages/(?P<page_id>[^/]+)/versions/(?P<version>[^/]+)",
        "getPageVersionDetails",
        get_page_version,
    )
    router.add("GET", rf"{p}/labels", "getPageLabels", list_labels("page"))
