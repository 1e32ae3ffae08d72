"""Footer and inline comments: site-wide lists, per page and blog post, replies, and footer
comment create / update (version check) / delete.

Each listing has its own schema in the document (FooterCommentModel, PageCommentModel,
BlogPostCommentModel, ChildrenCommentModel, PageInlineCommentModel, InlineCommentModel);
they differ in which container id they carry, so one renderer takes the field set.
Per-container lists hold top-level comments only; replies come from ``/children``.
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .common import (
    API,
    BULK_BODY_FORMATS,
    LIVE,
    SINGLE_BODY_FORMATS,
    body_json,
    digits,
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
from .paging import SortKey
from .routes import Context, Handler, Router
from .store import Comment
from .v2_pages import page_links
from .wire import SimRequest, SimResponse, bad_request, not_found, parse_id

__all__ = ["FOOTER", "INLINE", "Shape", "comment_json", "register"]

COMMENT_STATUSES = ("current", "archived", "trashed", "deleted", "historical", "draft")
RESOLUTIONS = ("resolved", "open", "dangling", "reopened")
_CONTAINER_FIELDS = {
    "page": "pageId",
    "blogpost": "blogPostId",
    "attachment": "attachmentId",
    "custom": "customContentId",
}
_SORTS: dict[str, Callable[[Comment], SortKey]] = {
    "created-date": lambda c: (c.created_at, c.id),
    "modified-date": lambda c: (c.modified_at, c.id),
}


def _visible(ctx: Context, comment: Comment) -> bool:
    """A comment is visible while what it is on is."""
    if comment.status != "current":
        return False
    if comment.container_type in ("page", "blogpost"):
        container = ctx.store.container(comment.container_type, comment.container_id)
        return container is not None and container.status in LIVE
    if comment.container_type == "attachment":
        attachment = ctx.store.attachment(comment.container_id)
        return attachment is not None and attachment.status == "current"
    custom = ctx.store.custom_content(comment.container_id)
    return custom is not None and custom.status == "current"


def _webui(ctx: Context, comment: Comment) -> str:
    anchor = f"focusedCommentId={comment.id}#comment-{comment.id}"
    if comment.container_type in ("page", "blogpost"):
        container = ctx.store.container(comment.container_type, comment.container_id)
        if container is not None:
            space = ctx.store.space(container.space_id)
            return f"{page_links(container, space)['webui']}?{anchor}"
    return f"/pages/viewpage.action?pageId={comment.container_id}&{anchor}"


@dataclass(frozen=True, slots=True)
class Shape:
    """Which optional fields a comment schema has: container ids, parent, inline extras."""

    containers: tuple[str, ...]
    parent: bool = True
    inline: bool = False
    resolution_meta: bool = False


FOOTER = Shape(("page", "blogpost", "attachment", "custom"))
INLINE = Shape(("page", "blogpost"), inline=True, resolution_meta=True)
CHILD = Shape((), parent=True)


def comment_json(
    ctx: Context,
    comment: Comment,
    *,
    shape: Shape,
    body_format: str | None,
    version: int | None = None,
) -> dict[str, Any]:
    """One comment in the schema ``shape`` describes, at ``version`` (default: current)."""
    shown = comment.version
    if version is not None:
        shown = next((v for v in comment.versions if v.number == version), shown)
    data: dict[str, Any] = {"id": str(comment.id), "status": comment.status, "title": shown.title}
    if comment.container_type in shape.containers:
        value = str(comment.container_id)
        if comment.container_type == "attachment":
            value = f"att{value}"
        data[_CONTAINER_FIELDS[comment.container_type]] = value
    if shape.parent and comment.parent_id is not None:
        data["parentCommentId"] = str(comment.parent_id)
    data["version"] = version_json(shown)
    data["body"] = body_json(shown.body_representation, shown.body_value, body_format)
    if shape.inline:
        if comment.resolution_status is not None:
            data["resolutionStatus"] = comment.resolution_status
        if shape.resolution_meta and comment.resolution_modifier_id:
            data["resolutionLastModifierId"] = comment.resolution_modifier_id
            data["resolutionLastModifiedAt"] = comment.resolution_modified_at
        if comment.marker_ref is not None:
            data["properties"] = {
                "inlineMarkerRef": comment.marker_ref,
                "inlineOriginalSelection": comment.original_selection or "",
            }
    data["_links"] = {"webui": _webui(ctx, comment)}
    return data


def _find(ctx: Context, kind: str, raw: str) -> Comment:
    comment_id = parse_id("comment-id", raw)
    comment = ctx.store.comment(comment_id)
    if comment is None or comment.kind != kind or not _visible(ctx, comment):
        raise not_found(detail=f"No {kind} comment with id {comment_id}")
    return comment


def list_all(kind: str) -> Handler:
    """GET /footer-comments or /inline-comments: every visible comment of that kind."""
    shape = FOOTER if kind == "footer" else INLINE

    def handler(req: SimRequest, ctx: Context) -> SimResponse:
        body_format = req.query.enum("body-format", BULK_BODY_FORMATS)
        items = [c for c in ctx.store.comments() if c.kind == kind and _visible(ctx, c)]
        return listing(
            req,
            ctx,
            items,
            sorts=_SORTS,
            default_sort="created-date",
            path=req.path,
            render_item=lambda c: comment_json(ctx, c, shape=shape, body_format=body_format),
        )

    return handler


def list_for_container(container_type: str, kind: str) -> Handler:
    """GET /{pages|blogposts}/{id}/{footer|inline}-comments: top-level comments only."""
    shape = Shape((container_type,), parent=False, inline=kind == "inline")
    statuses_allowed = (
        COMMENT_STATUSES
        if container_type == "page"
        else ("current", "deleted", "trashed", "historical", "draft")
    )

    def handler(req: SimRequest, ctx: Context) -> SimResponse:
        container_id = parse_id("id", req.params["id"])
        q = req.query
        body_format = q.enum("body-format", BULK_BODY_FORMATS)
        statuses = set(q.enum_array("status", statuses_allowed) or ("current",))
        resolutions = q.enum_array("resolution-status", RESOLUTIONS) if kind == "inline" else None
        visible_container(ctx, container_type, container_id)
        items = [
            c
            for c in ctx.store.comments()
            if c.kind == kind
            and c.container_type == container_type
            and c.container_id == container_id
            and c.parent_id is None
            and c.status in statuses
            and (resolutions is None or c.resolution_status in resolutions)
        ]
        return listing(
            req,
            ctx,
            items,
            sorts=_SORTS,
            default_sort="created-date",
            path=req.path,
            render_item=lambda c: comment_json(ctx, c, shape=shape, body_format=body_format),
        )

    return handler


def list_children(req: SimRequest, ctx: Context) -> SimResponse:
    """GET /footer-comments/{id}/children: direct replies (ChildrenCommentModel)."""
    parent = _find(ctx, "footer", req.params["id"])
    body_format = req.query.enum("body-format", BULK_BODY_FORMATS)
    items = [c for c in ctx.store.comments() if c.parent_id == parent.id and c.status == "current"]
    return listing(
        req,
        ctx,
        items,
        sorts=_SORTS,
        default_sort="created-date",
        path=req.path,
        render_item=lambda c: comment_json(ctx, c, shape=CHILD, body_format=body_format),
    )


def get_comment(kind: str) -> Handler:
    """GET /{footer|inline}-comments/{comment-id}; ``version=N`` shows version N."""
    shape = FOOTER if kind == "footer" else INLINE

    def handler(req: SimRequest, ctx: Context) -> SimResponse:
        q = req.query
        body_format = q.enum("body-format", SINGLE_BODY_FORMATS)
        wanted = q.optional_integer("version")
        flags = {
            name: q.boolean(name, default)
            for name, default in (
                ("include-properties", False),
                ("include-operations", False),
                ("include-likes", False),
                ("include-versions", False),
                ("include-version", True),
            )
        }
        comment = _find(ctx, kind, req.params["comment_id"])
        if wanted is not None and not any(v.number == wanted for v in comment.versions):
            raise not_found(detail=f"Comment {comment.id} has no version {wanted}")
        data = comment_json(ctx, comment, shape=shape, body_format=body_format, version=wanted)
        base = f"{API}/{kind}-comments/{comment.id}"
        if not flags["include-version"]:
            del data["version"]
        if flags["include-properties"]:
            props = data.pop("properties", {})
            data["properties"] = {**optional_field([], f"{base}/properties"), **props}
        if flags["include-operations"]:
            ops = [{"operation": op, "targetType": "comment"} for op in ("read", "update")]
            data["operations"] = optional_field(ops, f"{base}/operations")
        if flags["include-likes"]:
            data["likes"] = optional_field([], f"{base}/likes/users")
        if flags["include-versions"]:
            history = [version_json(v) for v in reversed(comment.versions)]
            data["versions"] = optional_field(history, f"{base}/versions")
        data["_links"]["base"] = ctx.base_url
        return SimResponse.json(data)

    return handler


def create_footer_comment(req: SimRequest, ctx: Context) -> SimResponse:
    """POST /footer-comments: on exactly one of page, blog post, attachment, custom
    content, or as a reply (``parentCommentId``). Answers 201 with ``Location``."""
    payload = read_object(req)
    given = [
        name
        for name in ("pageId", "blogPostId", "attachmentId", "customContentId", "parentCommentId")
        if payload.get(name) is not None
    ]
    if len(given) != 1:
        raise bad_request(
            "Give exactly one of pageId, blogPostId, attachmentId, customContentId or "
            f"parentCommentId (got {', '.join(given) or 'none'})"
        )
    field = given[0]
    raw = payload[field]
    if field == "attachmentId" and isinstance(raw, str) and raw.startswith("att"):
        raw = raw[3:]
    target = digits(field, raw)
    representation, value = read_body(payload.get("body"), required=True)
    if not value.strip():
        raise bad_request("A comment body cannot be empty")
    container_type = {
        "pageId": "page",
        "blogPostId": "blogpost",
        "attachmentId": "attachment",
        "customContentId": "custom",
    }.get(field)
    if container_type in ("page", "blogpost"):
        visible_container(ctx, container_type, target)
    with store_errors(ctx, f"{field} {target}"):
        comment = ctx.store.create_comment(
            kind="footer",
            container_type=container_type,
            container_id=None if container_type is None else target,
            parent_id=target if container_type is None else None,
            body_representation=representation,
            body_value=value,
            author_id=ctx.account_id,
            now=now(),
        )
    data = comment_json(ctx, comment, shape=FOOTER, body_format=representation)
    data["_links"]["base"] = ctx.base_url
    location = f"{ctx.base_url}/api/v2/footer-comments/{comment.id}"
    return SimResponse.json(data, 201, [("Location", location)])


def update_footer_comment(req: SimRequest, ctx: Context) -> SimResponse:
    """PUT /footer-comments/{comment-id}: new body as version current + 1 (else 409)."""
    comment = _find(ctx, "footer", req.params["comment_id"])
    payload = read_object(req)
    number, message = read_version(payload)
    representation, value = read_body(payload.get("body"), required=True)
    with store_errors(ctx, f"Comment {comment.id}"):
        updated = ctx.store.update_comment(
            comment.id,
            kind="footer",
            version=number,
            message=message,
            body_representation=representation,
            body_value=value,
            author_id=ctx.account_id,
            now=now(),
        )
    return SimResponse.json(comment_json(ctx, updated, shape=FOOTER, body_format=representation))


def delete_footer_comment(req: SimRequest, ctx: Context) -> SimResponse:
    """DELETE /footer-comments/{comment-id}: permanent, replies included."""
    comment = _find(ctx, "footer", req.params["comment_id"])
    with store_errors(ctx, f"Comment {comment.id}"):
        ctx.store.delete_comment(comment.id, kind="footer")
    return SimResponse(204)


def register(router: Router) -> None:
    footer = rf"{API}/footer-comments"
    inline = rf"{API}/inline-comments"
    router.add("GET", footer, "getFooterComments", list_all("footer"))
    router.add("POST", footer, "createFooterComment", create_footer_comment)
    one = rf"{footer}/(?P<comment_id>[^/]+)"
    router.add("GET", one, "getFooterCommentById", get_comment("footer"))
    router.add("PUT", one, "updateFooterComment", update_footer_comment)
    router.add("DELETE", one, "deleteFooterComment", delete_footer_comment)
    router.add(
        "GET", rf"{footer}/(?P<id>[^/]+)/children", "getFooterCommentChildren", list_children
    )
    router.add("GET", inline, "getInlineComments", list_all("inline"))
    router.add("POST", inline, "createInlineComment", create_inline_comment)
    router.add(
        "GET", rf"{inline}/(?P<comment_id>[^/]+)", "getInlineCommentById", get_comment("inline")
    )
    router.add(
        "PUT", rf"{inline}/(?P<comment_id>[^/]+)", "updateInlineComment", update_inline_comment
    )
    pages = rf"{API}/pages/(?P<id>[^/]+)"
    posts = rf"{API}/blogposts/(?P<id>[^/]+)"
    router.add(
        "GET",
        rf"{pages}/footer-comments",
        "getPageFooterComments",
        list_for_container("page", "footer"),
    )
    router.add(
        "GET",
        rf"{pages}/inline-comments",
        "getPageInlineComments",
        list_for_container("page", "inline"),
    )
    router.add(
        "GET",
        rf"{posts}/footer-comments",
        "getBlogPostFooterComments",
        list_for_container("blogpost", "footer"),
    )


# -- inline comments: create, reply, update and resolve -----------------------------------------

_TAG_OR_TEXT = re.compile(r"<!\[CDATA\[.*?\]\]>|<[^>]*>|[^<]+", re.DOTALL)


def _text_runs(storage: str) -> list[tuple[int, str]]:
    """(offset in ``storage``, unescaped text) of each text run outside tags and CDATA."""
    runs: list[tuple[int, str]] = []
    for match in _TAG_OR_TEXT.finditer(storage):
        chunk = match.group(0)
        if not chunk.startswith("<"):
            runs.append((match.start(), html.unescape(chunk)))
    return runs


def _marked(storage: str, selection: str, index: int, marker: str) -> tuple[int, str]:
    """How often ``selection`` occurs in the body's text, and the body with occurrence
    ``index`` wrapped in an inline-comment marker (unchanged when it spans elements)."""
    runs = _text_runs(storage)
    text = "".join(chunk for _, chunk in runs)
    starts = [m.start() for m in re.finditer(re.escape(selection), text)]
    if index >= len(starts):
        return len(starts), storage
    at, seen = starts[index], 0
    for offset, chunk in runs:
        if seen <= at and at + len(selection) <= seen + len(chunk):
            raw = storage[offset : offset + len(storage)]
            escaped = html.escape(selection, quote=False)
            local = at - seen
            prefix = html.escape(chunk[:local], quote=False)
            if raw.startswith(prefix + escaped):
                cut = offset + len(prefix)
                wrapped = (
                    f'<ac:inline-comment-marker ac:ref="{marker}">{escaped}'
                    "</ac:inline-comment-marker>"
                )
                return len(starts), storage[:cut] + wrapped + storage[cut + len(escaped) :]
            break
        seen += len(chunk)
    return len(starts), storage


def _int_field(props: dict[str, Any], name: str) -> int:
    value = props.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise bad_request(f"'inlineCommentProperties.{name}' must be a non-negative integer")
    return value


def create_inline_comment(req: SimRequest, ctx: Context) -> SimResponse:
    """POST /inline-comments: top level on a page or blog post (the selection must occur in
    its body, ``textSelectionMatchCount`` times), or a reply (``parentCommentId``)."""
    payload = read_object(req)
    given = [n for n in ("pageId", "blogPostId", "parentCommentId") if payload.get(n) is not None]
    if len(given) != 1:
        raise bad_request(
            "Give exactly one of pageId, blogPostId or parentCommentId "
            f"(got {', '.join(given) or 'none'})"
        )
    field = given[0]
    target = digits(field, payload[field])
    representation, value = read_body(payload.get("body"), required=True)
    if not value.strip():
        raise bad_request("A comment body cannot be empty")
    props = payload.get("inlineCommentProperties")
    container_type = {"pageId": "page", "blogPostId": "blogpost"}.get(field)
    marked: tuple[str, str, str] | None = None
    if container_type is None:
        if props is not None:
            raise bad_request("'inlineCommentProperties' is for top-level comments, not replies")
    else:
        container = visible_container(ctx, container_type, target)
        if not isinstance(props, dict):
            raise bad_request("'inlineCommentProperties' is required for a top-level comment")
        selection = props.get("textSelection")
        if not isinstance(selection, str) or not selection.strip():
            raise bad_request("'inlineCommentProperties.textSelection' is required")
        count = _int_field(props, "textSelectionMatchCount")
        index = _int_field(props, "textSelectionMatchIndex")
        if index >= count:
            raise bad_request("'textSelectionMatchIndex' must be less than the match count")
        marker = str(uuid.uuid4())
        found, body = _marked(container.body_value, selection, index, marker)
        if found == 0:
            raise bad_request(
                f"The text selection '{selection}' does not occur in {field} {target}"
            )
        if found != count:
            raise bad_request(
                f"'textSelectionMatchCount' is {count} but the selection occurs {found} times"
            )
        marked = (marker, selection, body)
    with store_errors(ctx, f"{field} {target}"):
        comment = ctx.store.create_comment(
            kind="inline",
            container_type=container_type,
            container_id=None if container_type is None else target,
            parent_id=target if container_type is None else None,
            body_representation=representation,
            body_value=value,
            author_id=ctx.account_id,
            now=now(),
        )
        if marked is not None:
            ctx.store.mark_inline(comment.id, *marked)
    stored = ctx.store.comment(comment.id) or comment
    data = comment_json(ctx, stored, shape=INLINE, body_format=representation)
    data["_links"]["base"] = ctx.base_url
    location = f"{ctx.base_url}/api/v2/inline-comments/{comment.id}"
    return SimResponse.json(data, 201, [("Location", location)])


def update_inline_comment(req: SimRequest, ctx: Context) -> SimResponse:
    """PUT /inline-comments/{comment-id}: version current + 1 (else 409); an optional new
    body (else the current one is kept) and ``resolved`` true/false to resolve or reopen."""
    comment = _find(ctx, "inline", req.params["comment_id"])
    payload = read_object(req)
    number, message = read_version(payload)
    resolved = payload.get("resolved")
    if resolved is not None and not isinstance(resolved, bool):
        raise bad_request("'resolved' must be true or false")
    if payload.get("body") is None:
        representation, value = comment.body_representation, comment.body_value
    else:
        representation, value = read_body(payload["body"], required=True)
    stamp = now()
    with store_errors(ctx, f"Comment {comment.id}"):
        if resolved is not None and comment.parent_id is not None:
            raise bad_request("Only top-level inline comments can be resolved or reopened")
        updated = ctx.store.update_comment(
            comment.id,
            kind="inline",
            version=number,
            message=message,
            body_representation=representation,
            body_value=value,
            author_id=ctx.account_id,
            now=stamp,
        )
        if resolved is not None:
            updated = ctx.store.set_resolution(
                comment.id, resolved=resolved, author_id=ctx.account_id, now=stamp
            )
    data = comment_json(ctx, updated, shape=INLINE, body_format=representation)
    data["_links"]["base"] = ctx.base_url
    return SimResponse.json(data)
