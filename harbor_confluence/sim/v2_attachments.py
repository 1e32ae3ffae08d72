"""v2 attachment routes: list (site-wide, per page, per blog post), get, delete to trash
and purge. Uploads are v1 (``v1_content``); v2 has no upload operation.

Attachment ids are shown as ``att<number>``. The document types the id of GET
/attachments/{id} as a string matching ``(att)?[0-9]+`` but the id of DELETE as an int64,
so GET takes both forms and DELETE only the bare number: ``att<number>`` there is a 400
naming the fix, so a client that echoes listed ids back is caught here, not in production.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from .common import (
    API,
    LIVE,
    epoch_ms,
    label_json,
    listing,
    optional_field,
    store_errors,
    version_json,
    visible_container,
)
from .paging import SortKey
from .routes import Context, Handler, Router
from .store import Attachment, VersionInfo
from .wire import SimRequest, SimResponse, bad_request, not_found, parse_id

__all__ = ["attachment_id", "attachment_json", "media_type_description", "register"]

STATUSES = ("current", "archived", "trashed")
_DESCRIPTIONS = {
    "image/png": "PNG Image",
    "image/jpeg": "JPEG Image",
    "image/gif": "GIF Image",
    "image/svg+xml": "SVG Image",
    "application/pdf": "PDF Document",
    "text/plain": "Text File",
    "text/csv": "CSV File",
    "application/json": "JSON File",
    "application/zip": "Zip Archive",
}
_CONTAINER_FIELDS = {"page": "pageId", "blogpost": "blogPostId", "custom": "customContentId"}
_SORTS: dict[str, Callable[[Attachment], SortKey]] = {
    "created-date": lambda a: (a.created_at, a.id),
    "modified-date": lambda a: (a.modified_at, a.id),
}


def media_type_description(media_type: str) -> str:
    return _DESCRIPTIONS.get(media_type, "File")


def attachment_id(raw: str, name: str = "id") -> int:
    """``att123`` or ``123`` -> 123; anything else is a 400."""
    return parse_id(name, raw[3:] if raw.startswith("att") else raw)


def attachment_links(attachment: Attachment) -> tuple[str, str]:
    """(webui, download), relative to ``_links.base`` as Confluence sends them."""
    cid = attachment.container_id
    name = quote(attachment.title, safe="")
    webui = (
        f"/pages/viewpageattachments.action?pageId={cid}"
        f"&preview=%2F{cid}%2Fatt{attachment.id}%2F{name}"
    )
    download = (
        f"/download/attachments/{cid}/{name}?version={attachment.version.number}"
        f"&modificationDate={epoch_ms(attachment.modified_at)}&api=v2"
    )
    return webui, download


def attachment_json(attachment: Attachment, version: VersionInfo | None = None) -> dict[str, Any]:
    """AttachmentBulk (AttachmentSingle adds the optional fields)."""
    webui, download = attachment_links(attachment)
    data: dict[str, Any] = {
        "id": f"att{attachment.id}",
        "status": attachment.status,
        "title": attachment.title,
        "createdAt": attachment.created_at,
    }
    field = _CONTAINER_FIELDS.get(attachment.container_type)
    if field is not None:
        data[field] = str(attachment.container_id)
    data.update(
        {
            "mediaType": attachment.media_type,
            "mediaTypeDescription": media_type_description(attachment.media_type),
            "comment": attachment.comment,
            "fileId": attachment.file_id,
            "fileSize": attachment.file_size,
            "webuiLink": webui,
            "downloadLink": download,
            "version": version_json(version or attachment.version),
            "_links": {"webui": webui, "download": download},
        }
    )
    return data


def _container_live(ctx: Context, attachment: Attachment) -> bool:
    if attachment.container_type in ("page", "blogpost"):
        container = ctx.store.container(attachment.container_type, attachment.container_id)
        return container is not None and container.status in LIVE
    custom = ctx.store.custom_content(attachment.container_id)
    return custom is not None and custom.status == "current"


def _filtered(req: SimRequest, ctx: Context, items: list[Attachment]) -> list[Attachment]:
    q = req.query
    statuses = set(q.enum_array("status", STATUSES) or ("current", "archived"))
    media_type = q.string("mediaType")
    filename = q.string("filename")
    return [
        a
        for a in items
        if a.status in statuses
        and (media_type is None or a.media_type == media_type)
        and (filename is None or a.title == filename)
        and _container_live(ctx, a)
    ]


def _list(req: SimRequest, ctx: Context, items: list[Attachment]) -> SimResponse:
    return listing(
        req,
        ctx,
        _filtered(req, ctx, items),
        sorts=_SORTS,
        default_sort="created-date",
        path=req.path,
        render_item=attachment_json,
        default_limit=50,
    )


def list_attachments(req: SimRequest, ctx: Context) -> SimResponse:
    """GET /attachments: every attachment whose container is visible."""
    return _list(req, ctx, ctx.store.attachments())


def list_for_container(kind: str) -> Handler:
    """GET /pages/{id}/attachments and /blogposts/{id}/attachments."""

    def handler(req: SimRequest, ctx: Context) -> SimResponse:
        container = visible_container(ctx, kind, parse_id("id", req.params["id"]))
        items = [
            a
            for a in ctx.store.attachments()
            if a.container_type == kind and a.container_id == container.id
        ]
        return _list(req, ctx, items)

    return handler


def get_attachment(req: SimRequest, ctx: Context) -> SimResponse:
    """GET /attachments/{id}: AttachmentSingle plus ``_links.base``; trashed ones too."""
    raw = req.params["id"]
    q = req.query
    wanted = q.optional_integer("version")
    flags = {
        name: q.boolean(name, default)
        for name, default in (
            ("include-labels", False),
            ("include-properties", False),
            ("include-operations", False),
            ("include-versions", False),
            ("include-version", True),
            ("include-collaborators", False),
        )
    }
    number = attachment_id(raw)
    attachment = ctx.store.attachment(number)
    if attachment is None or not _container_live(ctx, attachment):
        raise not_found(detail=f"No attachment with id {raw}")
    version = None
    if wanted is not None:
        version = next((v for v in attachment.versions if v.number == wanted), None)
        if version is None:
            raise not_found(detail=f"Attachment {raw} has no version {wanted}")
    data = attachment_json(attachment, version)
    base = f"{API}/attachments/att{attachment.id}"
    if not flags["include-version"]:
        del data["version"]
    if flags["include-labels"]:
        labels = [label_json(ctx, text) for text in attachment.labels]
        data["labels"] = optional_field(labels, f"{base}/labels")
    if flags["include-properties"]:
        data["properties"] = optional_field([], f"{base}/properties")
    if flags["include-operations"]:
        ops = [{"operation": op, "targetType": "attachment"} for op in ("read", "delete")]
        data["operations"] = optional_field(ops, f"{base}/operations")
    if flags["include-versions"]:
        history = [version_json(v) for v in reversed(attachment.versions)]
        data["versions"] = optional_field(history, f"{base}/versions")
    data["_links"]["base"] = ctx.base_url
    return SimResponse.json(data)


def delete_attachment(req: SimRequest, ctx: Context) -> SimResponse:
    """DELETE /attachments/{id}: to the trash; ``purge=true`` removes a trashed one."""
    raw = req.params["id"]
    if raw.startswith("att"):
        raise bad_request(
            f"Provided value {{{raw}}} for 'id' is not the correct type. Expected type is int",
            "DELETE /attachments/{id} takes the number without the 'att' prefix",
        )
    number = parse_id("id", raw)
    purge = req.query.boolean("purge", False)
    attachment = ctx.store.attachment(number)
    if attachment is None or not _container_live(ctx, attachment):
        raise not_found(detail=f"No attachment with id {raw}")
    if purge and attachment.status != "trashed":
        raise bad_request(f"Attachment {raw} is not in the trash: delete it first, then purge it")
    with store_errors(ctx, f"Attachment {raw}"):
        if purge:
            ctx.store.purge_attachment(number)
        else:
            ctx.store.trash_attachment(number)
    return SimResponse(204)


def register(router: Router) -> None:
    router.add("GET", rf"{API}/attachments", "getAttachments", list_attachments)
    one = rf"{API}/attachments/(?P<id>[^/]+)"
    router.add("GET", one, "getAttachmentById", get_attachment)
    router.add("DELETE", one, "deleteAttachment", delete_attachment)
    router.add(
        "GET",
        rf"{API}/pages/(?P<id>[^/]+)/attachments",
        "getPageAttachments",
        list_for_container("page"),
    )
    router.add(
        "GET",
        rf"{API}/blogposts/(?P<id>[^/]+)/attachments",
        "getBlogpostAttachments",
        list_for_container("blogpost"),
    )
