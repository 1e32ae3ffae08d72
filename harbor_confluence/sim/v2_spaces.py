"""Confluence Cloud v2 space routes: GET /spaces, /spaces/{id} (SpaceBulk / SpaceSingle), and a
space's pages, blog posts and labels. Space properties live in ``v2_properties``.

A space's labels are its categories, which Confluence keeps under the ``team`` prefix.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Any

from .common import label_json
from .paging import SortKey, paginate
from .routes import Context, Router
from .store import Space
from .v2_pages import label_listing, list_containers
from .v2_properties import space_property_json
from .wire import SimRequest, SimResponse, not_found, parse_id

__all__ = ["register", "space_json"]

API = "/wiki/api/v2"
SPACE_SORTS = ("id", "-id", "key", "-key", "name", "-name")
SPACE_TYPES = (
    "global",
    "collaboration",
    "knowledge_base",
    "personal",
    "system",
    "onboarding",
    "xflow_sample_space",
)
DESCRIPTION_FORMATS = ("plain", "view")


def space_json(
    space: Space, *, bulk: bool, description_format: str | None, include_icon: bool
) -> dict[str, Any]:
    """SpaceBulk (``bulk=True``) or the SpaceSingle core; optional parts only when asked."""
    data: dict[str, Any] = {
        "id": str(space.id),
        "key": space.key,
        "name": space.name,
        "type": space.type,
        "status": space.status,
        "authorId": space.author_id,
        "createdAt": space.created_at,
    }
    if space.homepage_id is not None:
        data["homepageId"] = str(space.homepage_id)
    if bulk:
        data["currentActiveAlias"] = space.key
    if description_format is not None:
        value = space.description
        if description_format == "view":
            value = f"<p>{escape(value, quote=False)}</p>"
        data["description"] = {
            description_format: {"representation": description_format, "value": value}
        }
    if include_icon:
        data["icon"] = {
            "path": f"/wiki/aa-avatar/space/{space.key.lower()}.svg",
            "apiDownloadLink": f"/wiki/download/space-icons/{space.id}",
        }
    data["_links"] = {"webui": f"/spaces/{space.key}"}
    return data


def _sort_key(sort: str) -> Callable[[Space], SortKey]:
    field = sort.lstrip("-")
    if field == "key":
        return lambda s: (s.key, s.id)
    if field == "name":
        return lambda s: (s.name.casefold(), s.id)
    return lambda s: (s.id, s.id)


def list_spaces(req: SimRequest, ctx: Context) -> SimResponse:
    """GET /spaces, sorted by id unless ``sort`` says otherwise, as the spec describes."""
    q = req.query
    ids = q.int_array("ids", max_items=250)
    keys = q.array("keys", max_items=250)
    space_type = q.enum("type", SPACE_TYPES)
    status = q.enum("status", ("current", "archived"))
    labels = q.array("labels")
    favorited_by = q.string("favorited-by")
    q.string("not-favorited-by")
    sort = q.enum("sort", SPACE_SORTS) or "id"
    description_format = q.enum("description-format", DESCRIPTION_FORMATS)
    include_icon = q.boolean("include-icon", False)
    limit = q.integer("limit", default=25, minimum=1, maximum=250)

    selected = [
        s
        for s in ctx.store.spaces()
        if (ids is None or s.id in ids)
        and (keys is None or s.key in keys)
        and (space_type is None or s.type == space_type)
        and (status is None or s.status == status)
        and (labels is None or any(label in s.labels for label in labels))
        # Nobody has favourites in the simulator.
        and favorited_by is None
    ]
    paged = paginate(
        selected,
        key=_sort_key(sort),
        descending=sort.startswith("-"),
        sort_name=sort,
        query=q,
        path=f"{API}/spaces",
        limit=limit,
    )
    results = [
        space_json(s, bulk=True, description_format=description_format, include_icon=include_icon)
        for s in paged.items
    ]
    return SimResponse.json(
        {"results": results, "_links": paged.links(ctx.base_url)},
        headers=paged.headers(ctx.base_url),
    )


def _optional_field(results: list[Any], self_link: str) -> dict[str, Any]:
    return {"results": results, "meta": {"hasMore": False}, "_links": {"self": self_link}}


def get_space(req: SimRequest, ctx: Context) -> SimResponse:
    """GET /spaces/{id}: SpaceSingle plus ``_links.base``; 404 for unknown ids."""
    space_id = parse_id("id", req.params["id"])
    q = req.query
    description_format = q.enum("description-format", DESCRIPTION_FORMATS)
    include_icon = q.boolean("include-icon", False)
    include = {
        name: q.boolean(name, False)
        for name in (
            "include-operations",
            "include-properties",
            "include-permissions",
            "include-role-assignments",
            "include-labels",
        )
    }
    space = ctx.store.space(space_id)
    if space is None:
        raise not_found()
    data = space_json(
        space, bulk=False, description_format=description_format, include_icon=include_icon
    )
    base = f"{API}/spaces/{space.id}"
    if include["include-labels"]:
        labels = [label_json(ctx, f"team:{n}") for n in space.labels]
        data["labels"] = _optional_field(labels, f"{base}/labels")
    if include["include-properties"]:
        props = [space_property_json(p) for p in ctx.store.properties("space", space.id)]
        data["properties"] = _optional_field(props, f"{base}/properties")
    if include["include-operations"]:
        ops = [
            {"operation": "read", "targetType": "space"},
            {"operation": "create", "targetType": "page"},
            {"operation": "create", "targetType": "blogpost"},
        ]
        data["operations"] = _optional_field(ops, f"{base}/operations")
    if include["include-permissions"]:
        data["permissions"] = _optional_field([], f"{base}/permissions")
    data["_links"]["base"] = ctx.base_url
    return SimResponse.json(data)


def _space_id(req: SimRequest, ctx: Context) -> int:
    space_id = parse_id("id", req.params["id"])
    if ctx.store.space(space_id) is None:
        raise not_found(detail=f"No space with id {space_id}")
    return space_id


def space_pages(req: SimRequest, ctx: Context) -> SimResponse:
    """GET /spaces/{id}/pages: ``depth=root`` keeps the pages without a parent."""
    space_id = _space_id(req, ctx)
    depth = req.query.enum("depth", ("all", "root")) or "all"
    return list_containers(
        req, ctx, "page", path=req.path, space_id=space_id, depth_root=depth == "root"
    )


def space_blogposts(req: SimRequest, ctx: Context) -> SimResponse:
    """GET /spaces/{id}/blogposts."""
    return list_containers(req, ctx, "blogpost", path=req.path, space_id=_space_id(req, ctx))


def space_labels(req: SimRequest, ctx: Context) -> SimResponse:
    """GET /spaces/{id}/labels: the document allows only the ``my`` and ``team`` prefixes."""
    space_id = _space_id(req, ctx)
    prefix = req.query.enum("prefix", ("my", "team"))
    space = ctx.store.space(space_id)
    labels = [f"team:{n}" for n in space.labels] if space else []
    return label_listing(req, ctx, labels, prefix)


def register(router: Router) -> None:
    one = rf"{API}/spaces/(?P<id>[^/]+)"
    router.add("GET", rf"{API}/spaces", "getSpaces", list_spaces)
    router.add("GET", one, "getSpaceById", get_space)
    router.add("GET", rf"{one}/pages", "getPagesInSpace", space_pages)
    router.add("GET", rf"{one}/blogposts", "getBlogPostsInSpace", space_blogposts)
    router.add("GET", rf"{one}/labels", "getSpaceLabels", space_labels)
