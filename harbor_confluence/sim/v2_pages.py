"""Confluence Cloud v2 page routes: GET /pages, GET /pages/{id}, POST /pages.

Shapes follow the v2 document's PageBulk / PageSingle schemas; where the document is
silent (error bodies, 409) the behaviour follows what Confluence Cloud answers.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, quote_plus

from .bodies import BodyFormatError, adf_to_storage, render, wiki_to_storage
from .paging import SortKey, paginate
from .routes import Context, Router
from .seed import format_time
from .store import DuplicateTitle, Page, Space, UnknownParent, UnknownSpace, VersionInfo
from .wire import ApiError, SimRequest, SimResponse, bad_request, not_found, parse_id

__all__ = ["page_bulk", "page_single", "register"]

API = "/wiki/api/v2"
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
BULK_BODY_FORMATS = ("storage", "atlas_doc_format")
SINGLE_BODY_FORMATS = (
    "storage",
    "atlas_doc_format",
    "view",
    "export_view",
    "anonymous_export_view",
    "styled_view",
    "editor",
)
WRITE_REPRESENTATIONS = ("storage", "atlas_doc_format", "wiki")
MAX_TITLE = 255
INCLUDE_LIMIT = 50


def tiny_id(page_id: int) -> str:
    """Confluence's tiny-link token: little-endian id bytes in URL-safe base64, unpadded."""
    raw = page_id.to_bytes(8, "little").rstrip(b"\0") or b"\0"
    return base64.b64encode(raw).decode().rstrip("=").replace("/", "-").replace("+", "_")


def page_links(page: Page, space: Space | None) -> dict[str, str]:
    """AbstractPageLinks: relative to ``_links.base`` like on a real site."""
    key = space.key if space else str(page.space_id)
    return {
        "editui": f"/pages/resumedraft.action?draftId={page.id}",
        "webui": f"/spaces/{quote(key)}/pages/{page.id}/{quote_plus(page.title)}",
        "tinyui": f"/x/{tiny_id(page.id)}",
    }


def version_json(version: VersionInfo) -> dict[str, Any]:
    return {
        "createdAt": version.created_at,
        "message": version.message,
        "number": version.number,
        "minorEdit": version.minor_edit,
        "authorId": version.author_id,
    }


def _body(page: Page, body_format: str | None) -> dict[str, Any]:
    if body_format is None:
        return {}
    value = render(page.body_representation, page.body_value, body_format)
    return {body_format: {"representation": body_format, "value": value}}


def _common(page: Page, space: Space | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(page.id),
        "status": page.status,
        "title": page.title,
        "spaceId": str(page.space_id),
    }
    # The schema types parentId/parentType as non-nullable strings although the text says
    # "or null": a page without parent omits both rather than send an invalid null.
    if page.parent_id is not None:
        data["parentId"] = str(page.parent_id)
        data["parentType"] = "page"
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
    """One item of GET /pages (PageBulk)."""
    data = _common(page, space)
    data["subtype"] = page.subtype
    data["version"] = version_json(page.version)
    data["body"] = _body(page, body_format)
    data["_links"] = page_links(page, space)
    return data


def _optional_field(results: list[Any], self_link: str) -> dict[str, Any]:
    """The ``{results, meta, _links}`` block that every ``include-*`` flag adds."""
    return {
        "results": results[:INCLUDE_LIMIT],
        "meta": {"hasMore": len(results) > INCLUDE_LIMIT},
        "_links": {"self": self_link},
    }


def page_single(
    page: Page,
    ctx: Context,
    *,
    body_format: str | None = None,
    include_version: bool = True,
    include_labels: bool = False,
    include_properties: bool = False,
    include_operations: bool = False,
    include_likes: bool = False,
    include_versions: bool = False,
    include_favorited: bool = False,
) -> dict[str, Any]:
    """GET /pages/{id} and POST /pages answer (PageSingle plus ``_links.base``)."""
    space = ctx.store.space(page.space_id)
    data = _common(page, space)
    base = f"{API}/pages/{page.id}"
    if include_version:
        data["version"] = version_json(page.version)
    data["body"] = _body(page, body_format)
    if include_labels:
        labels = [{"id": ctx.store.label_id(n), "name": n, "prefix": "global"} for n in page.labels]
        data["labels"] = _optional_field(labels, f"{base}/labels")
    if include_properties:
        data["properties"] = _optional_field([], f"{base}/properties")
    if include_operations:
        ops = [{"operation": op, "targetType": "page"} for op in ("read", "update", "delete")]
        data["operations"] = _optional_field(ops, f"{base}/operations")
    if include_likes:
        data["likes"] = _optional_field([], f"{base}/likes/users")
    if include_versions:
        history = [version_json(v) for v in reversed(page.versions)]
        data["versions"] = _optional_field(history, f"{base}/versions")
    if include_favorited:
        data["isFavoritedByCurrentUser"] = False
    data["_links"] = {**page_links(page, space), "base": ctx.base_url}
    return data


def _sort_key(sort: str) -> Callable[[Page], SortKey]:
    field = sort.lstrip("-")
    if field == "created-date":
        return lambda p: (p.created_at, p.id)
    if field == "modified-date":
        return lambda p: (p.modified_at, p.id)
    if field == "title":
        return lambda p: (p.title.casefold(), p.id)
    return lambda p: (p.id, p.id)


def list_pages(req: SimRequest, ctx: Context) -> SimResponse:
    """GET /pages: filters, sort and cursor paging; no body unless ``body-format`` is given."""
    q = req.query
    ids = q.int_array("id", max_items=250)
    space_ids = q.int_array("space-id", max_items=100)
    sort = q.enum("sort", PAGE_SORTS) or "id"
    statuses = set(q.enum_array("status", LIST_STATUSES) or ("current", "archived"))
    title = q.string("title")
    body_format = q.enum("body-format", BULK_BODY_FORMATS)
    subtype = q.enum("subtype", ("live", "page"))
    limit = q.integer("limit", default=25, minimum=1, maximum=250)

    id_set = set(ids) if ids is not None else None
    space_set = set(space_ids) if space_ids is not None else None
    wanted_subtype = None if subtype in (None, "page") else subtype
    selected = [
        p
        for p in ctx.store.pages()
        if p.status in statuses
        and (id_set is None or p.id in id_set)
        and (space_set is None or p.space_id in space_set)
        and (title is None or p.title == title)
        and (subtype is None or p.subtype == wanted_subtype)
    ]
    paged = paginate(
        selected,
        key=_sort_key(sort),
        descending=sort.startswith("-"),
        sort_name=sort,
        query=q,
        path=f"{API}/pages",
        limit=limit,
    )
    spaces = {s.id: s for s in ctx.store.spaces()}
    results = [page_bulk(p, spaces.get(p.space_id), body_format) for p in paged.items]
    return SimResponse.json(
        {"results": results, "_links": paged.links(ctx.base_url)},
        headers=paged.headers(ctx.base_url),
    )


def get_page(req: SimRequest, ctx: Context) -> SimResponse:
    """GET /pages/{id}: 400 for a non-numeric id, 404 when absent or filtered out by status."""
    page_id = parse_id("id", req.params["id"])
    q = req.query
    body_format = q.enum("body-format", SINGLE_BODY_FORMATS)
    get_draft = q.boolean("get-draft", False)
    statuses = q.enum_array("status", GET_STATUSES)
    version = q.optional_integer("version")
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
            # Accepted for compatibility; PageSingle has no field for these.
            ("include-webresources", False),
            ("include-collaborators", False),
            ("include-direct-children", False),
        )
    }
    page = ctx.store.page(page_id)
    allowed = set(statuses) if statuses else {"current", "archived"}
    if get_draft:
        allowed.add("draft")
    if page is None or page.status not in allowed:
        raise not_found()
    if version is not None and version != page.version.number:
        # Older bodies are not kept, so an old version cannot be answered truthfully.
        raise not_found(detail=f"version {version} of page {page_id} is not held by the simulator")
    payload = page_single(
        page,
        ctx,
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


def _digits(field: str, value: Any) -> int:
    """Ids in request bodies are strings of digits (the spec types them as string)."""
    if not isinstance(value, str):
        raise bad_request(f"'{field}' must be a string, got {type(value).__name__}")
    if not value.isascii() or not value.isdigit():
        raise bad_request(f"'{field}' must be a numeric id, got '{value}'")
    return int(value)


def _read_body(body: Any) -> tuple[str, str]:
    """Accept the flat PageBodyWrite or the nested PageNestedBodyWrite form of ``body``."""
    if body is None:
        return "storage", ""
    if not isinstance(body, dict):
        raise bad_request("'body' must be an object")
    if "representation" in body or "value" in body:
        representation, value = body.get("representation"), body.get("value")
        where = "body"
    else:
        nested = [k for k in body if k in WRITE_REPRESENTATIONS]
        if len(nested) != 1 or len(body) != 1:
            raise bad_request(
                "'body' must be {representation, value} or hold exactly one of "
                + ", ".join(WRITE_REPRESENTATIONS)
            )
        inner = body[nested[0]]
        if not isinstance(inner, dict):
            raise bad_request(f"'body.{nested[0]}' must be an object")
        representation, value = inner.get("representation", nested[0]), inner.get("value")
        where = f"body.{nested[0]}"
    if representation not in WRITE_REPRESENTATIONS:
        raise bad_request(
            f"'{where}.representation' must be one of {', '.join(WRITE_REPRESENTATIONS)}"
        )
    if not isinstance(value, str):
        raise bad_request(f"'{where}.value' must be a string")
    try:
        if representation == "wiki":
            return "storage", wiki_to_storage(value)
        if representation == "atlas_doc_format":
            adf_to_storage(value)  # validates
    except BodyFormatError as exc:
        raise bad_request(str(exc)) from exc
    return representation, value


def create_page(req: SimRequest, ctx: Context) -> SimResponse:
    """POST /pages: validate like Confluence, then store; the answer is 200 as the spec says."""
    q = req.query
    q.boolean("embedded", False)
    q.boolean("private", False)
    root_level = q.boolean("root-level", False)
    content_type = (req.header("content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise ApiError(
            415, f"Content type '{content_type or 'none'}' is not supported; send application/json"
        )
    try:
        payload = json.loads(req.body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad_request("Request body is not valid JSON", str(exc)) from exc
    if not isinstance(payload, dict):
        raise bad_request("Request body must be a JSON object")
    if "spaceId" not in payload:
        raise bad_request("'spaceId' is required")
    space_id = _digits("spaceId", payload["spaceId"])
    status = payload.get("status", "current")
    if status not in ("current", "draft"):
        raise bad_request("'status' must be 'current' or 'draft'")
    title = payload.get("title")
    if title is not None and not isinstance(title, str):
        raise bad_request(f"'title' must be a string, got {type(title).__name__}")
    if status == "current" and not (title or "").strip():
        raise bad_request("'title' is required for a page that is not a draft")
    if title is not None and len(title) > MAX_TITLE:
        raise bad_request(f"'title' must be at most {MAX_TITLE} characters")
    parent_id = (
        None if payload.get("parentId") is None else _digits("parentId", payload["parentId"])
    )
    if root_level and parent_id is not None:
        raise bad_request("'parentId' may not be given together with root-level=true")
    subtype = payload.get("subtype")
    if subtype not in (None, "live"):
        raise bad_request("'subtype' must be 'live' when given")
    representation, value = _read_body(payload.get("body"))
    try:
        page = ctx.store.create_page(
            space_id=space_id,
            title=(title or "").strip(),
            status=status,
            parent_id=parent_id,
            root_level=root_level,
            body_representation=representation,
            body_value=value,
            author_id=ctx.account_id,
            subtype=subtype,
            now=format_time(datetime.now(UTC)),
        )
    except UnknownSpace as exc:
        raise not_found(detail=f"No space with id {space_id}") from exc
    except UnknownParent as exc:
        raise bad_request(f"Parent page {parent_id} does not exist in space {space_id}") from exc
    except DuplicateTitle as exc:
        raise ApiError(
            409,
            "A page with this title already exists: A page already exists with the same "
            "TITLE in this space",
            f"Title '{exc.title}' is used by page {exc.existing_id} in space {exc.space_key}",
        ) from exc
    return SimResponse.json(page_single(page, ctx, body_format=page.body_representation))


def register(router: Router) -> None:
    router.add("GET", rf"{API}/pages", "getPages", list_pages)
    router.add("POST", rf"{API}/pages", "createPage", create_page)
    router.add("GET", rf"{API}/pages/(?P<id>[^/]+)", "getPageById", get_page)
