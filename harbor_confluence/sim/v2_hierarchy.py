"""The content tree: direct children and descendants of pages, folders, whiteboards and
databases, and the folder, whiteboard and database records themselves.

Written from the v2 document (``getPageDescendants``, ``getPageDirectChildren``,
``getFolderById``, ``createFolder``, ``deleteFolder``, ``getFolderDirectChildren``,
``getFolderDescendants``, and the whiteboard and database equivalents; schemas
ChildrenResponse, DescendantsResponse, FolderSingle, WhiteboardSingle, DatabaseSingle).

``depth`` counts levels below the requested content (its children are depth 1), 1 to 10,
default 2, as documented. Descendants come top to bottom: every item of depth 1 in child
position order, then depth 2, and so on. Whiteboards and databases are read-only here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from .common import API, LIVE, digits, listing, now, read_object, store_errors, version_json
from .paging import SortKey
from .routes import Context, Handler, Router
from .store import Node, TreeItem
from .wire import SimRequest, SimResponse, bad_request, not_found, parse_id

__all__ = ["node_json", "register"]

TREE_STATUSES = ("current", "archived")
MAX_DEPTH = 10
MAX_TITLE = 255
_SORTS: dict[str, Callable[[TreeItem], SortKey]] = {
    "created-date": lambda i: (i.created_at, i.id),
    "id": lambda i: (i.id, i.id),
    "modified-date": lambda i: (i.modified_at, i.id),
    "child-position": lambda i: (i.position, i.id),
    "title": lambda i: (i.title.casefold(), i.id),
}


def _type(item: TreeItem) -> str:
    return item.kind if isinstance(item, Node) else "page"


def _root(ctx: Context, kind: str, raw: str) -> TreeItem:
    """The content a tree listing starts from; 404 when absent, of another type or gone."""
    item_id = parse_id("id", raw)
    item: TreeItem | None
    if kind == "page":
        item = ctx.store.page(item_id)
        visible = item is not None and item.status in LIVE
    else:
        item = ctx.store.node(item_id, kind)
        visible = item is not None and item.status in TREE_STATUSES
    if item is None or not visible:
        raise not_found(detail=f"No {kind} with id {item_id}")
    return item


def direct_children(kind: str) -> Handler:
    """GET /{pages|folders|whiteboards|databases}/{id}/direct-children (ChildrenResponse)."""

    def handler(req: SimRequest, ctx: Context) -> SimResponse:
        root = _root(ctx, kind, req.params["id"])
        return listing(
            req,
            ctx,
            ctx.store.tree_children(root.id),
            sorts=_SORTS,
            default_sort="child-position",
            path=req.path,
            render_item=lambda c: {
                "id": str(c.id),
                "status": c.status,
                "title": c.title,
                "type": _type(c),
                "spaceId": str(c.space_id),
                "childPosition": c.position,
            },
        )

    return handler


def descendants(kind: str) -> Handler:
    """GET /{...}/{id}/descendants: ``depth`` levels, top to bottom, cursor-paged."""

    def handler(req: SimRequest, ctx: Context) -> SimResponse:
        depth = req.query.integer("depth", default=2, minimum=1, maximum=MAX_DEPTH)
        root = _root(ctx, kind, req.params["id"])
        found = ctx.store.descendants(root.id, depth)
        ranked = [(item, level, rank) for rank, (item, level) in enumerate(found)]
        return listing(
            req,
            ctx,
            ranked,
            sorts={"tree": lambda entry: (entry[2], entry[0].id)},
            default_sort="tree",
            path=req.path,
            sortable=False,
            render_item=lambda entry: {
                "id": str(entry[0].id),
                "status": entry[0].status,
                "title": entry[0].title,
                "type": _type(entry[0]),
                "parentId": str(entry[0].parent_id),
                "depth": entry[1],
                "childPosition": entry[0].position,
            },
        )

    return handler


def node_json(node: Node, ctx: Context) -> dict[str, Any]:
    """FolderSingle / WhiteboardSingle / DatabaseSingle plus ``_links.base``."""
    space = ctx.store.space(node.space_id)
    key = quote(space.key if space else str(node.space_id))
    data: dict[str, Any] = {
        "id": str(node.id),
        "type": node.kind,
        "status": node.status,
        "title": node.title,
    }
    if node.parent_id is not None:
        data["parentId"] = str(node.parent_id)
        data["parentType"] = node.parent_type or "page"
    data.update(
        {
            "position": node.position,
            "authorId": node.author_id,
            "ownerId": node.owner_id,
            "createdAt": node.created_at,
            "spaceId": str(node.space_id),
            "version": version_json(node.version),
        }
    )
    links = {"webui": f"/spaces/{key}/{node.kind}/{node.id}", "base": ctx.base_url}
    if node.kind == "whiteboard":
        links["editui"] = f"/spaces/{key}/whiteboard/{node.id}/edit"
    data["_links"] = links
    return data


def get_node(kind: str) -> Handler:
    """GET /folders/{id} (and whiteboards, databases); the include-* flags are accepted."""

    def handler(req: SimRequest, ctx: Context) -> SimResponse:
        for flag in (
            "include-collaborators",
            "include-direct-children",
            "include-operations",
            "include-properties",
        ):
            req.query.boolean(flag, False)
        node = _root(ctx, kind, req.params["id"])
        if not isinstance(node, Node):  # pragma: no cover - _root looked up a node
            raise not_found()
        return SimResponse.json(node_json(node, ctx))

    return handler


def create_folder(req: SimRequest, ctx: Context) -> SimResponse:
    """POST /folders: ``spaceId`` required; under ``parentId`` (a page or folder) if given."""
    payload = read_object(req)
    if "spaceId" not in payload:
        raise bad_request("'spaceId' is required")
    space_id = digits("spaceId", payload["spaceId"])
    title = payload.get("title")
    if not isinstance(title, str) or not title.strip():
        raise bad_request("'title' is required: a folder needs a name")
    if len(title) > MAX_TITLE:
        raise bad_request(f"'title' must be at most {MAX_TITLE} characters")
    parent_id = None
    if payload.get("parentId") is not None:
        parent_id = digits("parentId", payload["parentId"])
    with store_errors(ctx, f"space {space_id}"):
        folder = ctx.store.create_folder(
            space_id=space_id,
            title=title.strip(),
            parent_id=parent_id,
            author_id=ctx.account_id,
            now=now(),
        )
    return SimResponse.json(node_json(folder, ctx))


def delete_folder(req: SimRequest, ctx: Context) -> SimResponse:
    """DELETE /folders/{id}: to the trash; what it held moves up a level."""
    folder = _root(ctx, "folder", req.params["id"])
    with store_errors(ctx, f"Folder {folder.id}"):
        ctx.store.trash_node(folder.id, "folder")
    return SimResponse(204)


def register(router: Router) -> None:
    for kind, plural, name in (
        ("page", "pages", "Page"),
        ("folder", "folders", "Folder"),
        ("whiteboard", "whiteboards", "Whiteboard"),
        ("database", "databases", "Database"),
    ):
        one = rf"{API}/{plural}/(?P<id>[^/]+)"
        router.add(
            "GET", rf"{one}/direct-children", f"get{name}DirectChildren", direct_children(kind)
        )
        router.add("GET", rf"{one}/descendants", f"get{name}Descendants", descendants(kind))
        if kind != "page":
            router.add("GET", one, f"get{name}ById", get_node(kind))
    router.add("POST", rf"{API}/folders", "createFolder", create_folder)
    router.add("DELETE", rf"{API}/folders/(?P<id>[^/]+)", "deleteFolder", delete_folder)
