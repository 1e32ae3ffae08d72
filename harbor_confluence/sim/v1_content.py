"""v1 routes the v2 API lacks: attachment upload, label add/remove, the current user.

Written from the v1 document (``createAttachment``, ``addLabelsToContent``,
``removeLabelFromContent``, ``removeLabelFromContentUsingQueryParameter``,
``getCurrentUser``; schemas ContentArray, Content, LabelArray, Label, User). Errors use the
v1 envelope (``wire.error_body_v1``).

The upload is multipart/form-data and, like Confluence's XSRF filter, is refused with 403
unless ``X-Atlassian-Token: no-check`` is sent (the document spells it ``nocheck``;
Confluence accepts both). The parts are parsed with the standard library's ``email``
parser, which is binary-safe.
"""

from __future__ import annotations

import mimetypes
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any
from urllib.parse import quote

from .common import LIVE, now, read_json
from .routes import Context, Router
from .store import Attachment, Invalid, Missing, label_parts
from .v2_attachments import attachment_links, media_type_description
from .wire import ApiError, SimRequest, SimResponse, bad_request, not_found

__all__ = ["register", "user_json"]

API = "/wiki/rest/api"
CONTEXT = "/wiki"
LABEL_FORBIDDEN = set("!#&()*,.:;<>?@[]^")
MAX_LABEL = 255
XSRF_VALUES = ("no-check", "nocheck")


def user_json(ctx: Context, account_id: str) -> dict[str, Any]:
    """The v1 ``User`` as Cloud sends it (no username or userKey since the GDPR changes)."""
    user = ctx.store.user(account_id)
    name = user.display_name if user else "Unknown user"
    return {
        "type": "known" if user else "unknown",
        "accountId": account_id,
        "accountType": "atlassian",
        "email": user.email if user else "",
        "publicName": name,
        "profilePicture": {
            "path": f"{CONTEXT}/aa-avatar/{quote(account_id, safe='')}",
            "width": 48,
            "height": 48,
            "isDefault": False,
        },
        "displayName": name,
        "timeZone": "Etc/UTC",
        "isExternalCollaborator": False,
        "externalCollaborator": False,
        "_expandable": {"operations": "", "personalSpace": ""},
        "_links": {"self": f"{ctx.base_url}/rest/api/user?accountId={quote(account_id)}"},
    }


def _content_id(raw: str) -> int:
    """A v1 content id: digits (``att`` prefix allowed for attachments)."""
    bare = raw[3:] if raw.startswith("att") else raw
    if not bare.isascii() or not bare.isdigit():
        raise bad_request(f"Invalid content id: {raw}")
    return int(bare)


# -- attachments -------------------------------------------------------------------------------


def _container(ctx: Context, content_id: int, status: str) -> tuple[str, Any]:
    """(container type, record) for an upload target, else the v1 404."""
    for kind in ("page", "blogpost"):
        record = ctx.store.container(kind, content_id)
        if record is not None:
            if record.status == status:
                return kind, record
            break
    custom = ctx.store.custom_content(content_id)
    if custom is not None and custom.status == status:
        return "custom", custom
    raise not_found(
        f"There is no {status} content with id {content_id}, or the calling user does not "
        "have permission to view it"
    )


def _parts(req: SimRequest) -> list[EmailMessage]:
    content_type = req.header("content-type") or ""
    if content_type.split(";")[0].strip().lower() != "multipart/form-data":
        raise ApiError(
            415, f"Unsupported Media Type: send multipart/form-data, not {content_type!r}"
        )
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", "replace")
    message = BytesParser(policy=policy.HTTP).parsebytes(head + req.body)
    if not isinstance(message, EmailMessage) or not message.is_multipart():
        raise bad_request("The multipart body could not be parsed")
    parts = list(message.iter_parts())
    if not parts or message.defects:
        raise bad_request("The multipart body could not be parsed (no parts or no boundary)")
    return [p for p in parts if isinstance(p, EmailMessage)]


def _text(part: EmailMessage) -> str:
    payload = part.get_payload(decode=True)
    raw = payload if isinstance(payload, bytes) else b""
    charset = part.get_content_charset() or "utf-8"
    try:
        return raw.decode(charset)
    except (LookupError, UnicodeDecodeError):
        raise bad_request(f"A text part is not valid {charset}") from None


def _media_type(part: EmailMessage, filename: str) -> str:
    declared = part.get_content_type() if part.get("Content-Type") else None
    if declared and declared != "application/octet-stream":
        return declared
    guessed, _ = mimetypes.guess_type(filename)
    return guessed or "application/octet-stream"


def attachment_content_json(ctx: Context, attachment: Attachment) -> dict[str, Any]:
    """The v1 ``Content`` of an attachment, as the upload answers it."""
    content_id = f"att{attachment.id}"
    self_link = f"{ctx.base_url}/rest/api/content/{content_id}"
    version = attachment.version
    webui, download = attachment_links(attachment)
    container = ctx.store.content(attachment.container_id)
    container_json: dict[str, Any] = {"id": str(attachment.container_id)}
    if container is not None:
        container_json.update(
            {
                "type": attachment.container_type
                if attachment.container_type != "custom"
                else getattr(container, "type", "custom"),
                "status": container.status,
                "title": container.title,
                "_links": {"self": f"{ctx.base_url}/rest/api/content/{attachment.container_id}"},
            }
        )
    labels = [_label_json(ctx, text) for text in attachment.labels]
    return {
        "id": content_id,
        "type": "attachment",
        "status": attachment.status,
        "title": attachment.title,
        "version": {
            "by": user_json(ctx, version.author_id),
            "when": version.created_at,
            "friendlyWhen": "just a moment ago",
            "message": version.message,
            "number": version.number,
            "minorEdit": version.minor_edit,
            "contentTypeModified": False,
            "_expandable": {"collaborators": "", "content": f"/rest/api/content/{content_id}"},
            "_links": {"self": f"{self_link}/version/{version.number}"},
        },
        "container": container_json,
        "macroRenderedOutput": {},
        "metadata": {
            "comment": attachment.comment,
            "mediaType": attachment.media_type,
            "labels": {
                "results": labels,
                "start": 0,
                "limit": 200,
                "size": len(labels),
                "_links": {"self": f"{self_link}/label"},
            },
            "_expandable": {"currentuser": "", "properties": "", "frontend": "", "editorHtml": ""},
        },
        "extensions": {
            "mediaType": attachment.media_type,
            "fileSize": attachment.file_size,
            "comment": attachment.comment,
            "mediaTypeDescription": media_type_description(attachment.media_type),
            "fileId": attachment.file_id,
            "collectionName": f"contentId-{attachment.container_id}",
        },
        "_expandable": {
            "childTypes": "",
            "operations": "",
            "schedulePublishDate": "",
            "children": f"/rest/api/content/{content_id}/child",
            "restrictions": f"/rest/api/content/{content_id}/restriction/byOperation",
            "history": f"/rest/api/content/{content_id}/history",
            "ancestors": "",
            "body": "",
            "descendants": f"/rest/api/content/{content_id}/descendant",
            "space": "",
        },
        "_links": {"webui": webui, "self": self_link, "download": download},
    }


def create_attachment(req: SimRequest, ctx: Context) -> SimResponse:
    """POST /content/{id}/child/attachment: one attachment per ``file`` part."""
    token = (req.header("x-atlassian-token") or "").strip().lower()
    if token not in XSRF_VALUES:
        raise ApiError(403, "XSRF check failed")
    content_id = _content_id(req.params["id"])
    status = req.query.enum("status", ("current", "draft")) or "current"
    kind, _ = _container(ctx, content_id, status)
    files: list[tuple[str, str, bytes]] = []
    comments: list[str] = []
    minor_edit: bool | None = None
    for part in _parts(req):
        name = part.get_param("name", header="content-disposition")
        if name == "file":
            filename = part.get_filename()
            if not filename:
                raise bad_request("Each 'file' part needs a filename")
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            files.append((filename, _media_type(part, filename), data))
        elif name == "comment":
            comments.append(_text(part))
        elif name == "minorEdit":
            value = _text(part).strip().strip('"').lower()
            if value not in ("true", "false"):
                raise bad_request("'minorEdit' must be true or false")
            minor_edit = value == "true"
    if not files:
        raise bad_request("No 'file' part: send the attachment as multipart/form-data field 'file'")
    if minor_edit is None:
        raise bad_request("The 'minorEdit' part is required")
    if comments and len(comments) != len(files):
        raise bad_request("Give one comment per file, in the same order, or no comments")
    created: list[Attachment] = []
    stamp = now()
    for n, (filename, media_type, data) in enumerate(files):
        try:
            created.append(
                ctx.store.add_attachment(
                    container_type=kind,
                    container_id=content_id,
                    filename=filename,
                    media_type=media_type,
                    data=data,
                    comment=comments[n] if comments else "",
                    minor_edit=minor_edit,
                    author_id=ctx.account_id,
                    now=stamp,
                    container_status=status,
                )
            )
        except Invalid as exc:
            raise bad_request(str(exc)) from exc
        except Missing as exc:
            raise not_found(f"There is no content with id {content_id}") from exc
    results = [attachment_content_json(ctx, a) for a in created]
    return SimResponse.json(
        {
            "results": results,
            "start": 0,
            "limit": len(results),
            "size": len(results),
            "_links": {"base": ctx.base_url, "context": CONTEXT},
        }
    )


# -- labels ------------------------------------------------------------------------------------


def _label_json(ctx: Context, text: str) -> dict[str, Any]:
    prefix, name = label_parts(text)
    return {"prefix": prefix, "name": name, "id": ctx.store.label_id(text), "label": name}


def _label_array(ctx: Context, content_id: str, labels: tuple[str, ...]) -> dict[str, Any]:
    results = [_label_json(ctx, text) for text in labels]
    return {
        "results": results,
        "start": 0,
        "limit": 200,
        "size": len(results),
        "_links": {
            "self": f"{ctx.base_url}/rest/api/content/{content_id}/label",
            "base": ctx.base_url,
            "context": CONTEXT,
        },
    }


def _check_label_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise bad_request("A label needs a non-empty 'name'")
    if len(name) > MAX_LABEL:
        raise bad_request(f"Label '{name[:40]}...' is longer than {MAX_LABEL} characters")
    bad = sorted({c for c in name if c in LABEL_FORBIDDEN or c.isspace()})
    if bad:
        raise bad_request(f"Label '{name}' contains invalid characters: {' '.join(bad)}")
    return name.lower()


def _labelled_exists(ctx: Context, content_id: int) -> None:
    record = ctx.store.content(content_id)
    if record is None or record.status not in LIVE or not hasattr(record, "labels"):
        raise not_found(f"There is no content with id {content_id}")


def add_labels(req: SimRequest, ctx: Context) -> SimResponse:
    """POST /content/{id}/label: a LabelCreate or an array of them; answers every label."""
    raw_id = req.params["id"]
    content_id = _content_id(raw_id)
    payload = read_json(req)
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise bad_request("No labels given")
    labels: list[tuple[str, str]] = []
    for item in items:
        if not isinstance(item, dict):
            raise bad_request("Each label must be an object {prefix, name}")
        prefix = item.get("prefix")
        if prefix not in ("global", "my", "team"):
            raise bad_request(f"Label prefix must be global, my or team, got {prefix!r}")
        labels.append((prefix, _check_label_name(item.get("name"))))
    _labelled_exists(ctx, content_id)
    try:
        merged = ctx.store.add_labels(content_id, labels)
    except Missing as exc:
        raise not_found(f"There is no content with id {content_id}") from exc
    return SimResponse.json(_label_array(ctx, raw_id, merged))


def _remove(ctx: Context, raw_id: str, name: str) -> SimResponse:
    content_id = _content_id(raw_id)
    _labelled_exists(ctx, content_id)
    try:
        ctx.store.remove_label(content_id, name)
    except Missing as exc:
        raise not_found(f"Label '{name}' is not on content {content_id}") from exc
    return SimResponse(204)


def remove_label(req: SimRequest, ctx: Context) -> SimResponse:
    """DELETE /content/{id}/label/{label}; a ``/`` in the name is refused (use ?name=)."""
    name = req.params["label"]
    if "/" in name:
        raise bad_request("Label names with '/' must be removed with ?name=")
    return _remove(ctx, req.params["id"], name)


def remove_label_by_query(req: SimRequest, ctx: Context) -> SimResponse:
    """DELETE /content/{id}/label?name=..."""
    name = req.query.string("name")
    if not name:
        raise bad_request("The 'name' query parameter is required")
    return _remove(ctx, req.params["id"], name)


# -- users ---------------------------------------------------------------------------------------

USER_EXPANDS = ("operations", "personalSpace", "isExternalCollaborator")


def current_user(req: SimRequest, ctx: Context) -> SimResponse:
    """GET /user/current: the authenticated caller."""
    expand = req.query.enum_array("expand", USER_EXPANDS) or []
    data = user_json(ctx, ctx.account_id)
    if "operations" in expand:
        data["operations"] = [
            {"operation": "use", "targetType": "application"},
            {"operation": "create", "targetType": "page"},
            {"operation": "create", "targetType": "blogpost"},
            {"operation": "create", "targetType": "comment"},
            {"operation": "create", "targetType": "attachment"},
        ]
        del data["_expandable"]["operations"]
    if "personalSpace" in expand:
        del data["_expandable"]["personalSpace"]  # the simulator user has no personal space
    data["_links"].update(base=ctx.base_url, context=CONTEXT)
    return SimResponse.json(data)


def register(router: Router) -> None:
    content = rf"{API}/content/(?P<id>[^/]+)"
    router.add("POST", rf"{content}/child/attachment", "createAttachment", create_attachment)
    router.add("POST", rf"{content}/label", "addLabelsToContent", add_labels)
    router.add(
        "DELETE",
        rf"{content}/label",
        "removeLabelFromContentUsingQueryParameter",
        remove_label_by_query,
    )
    router.add(
        "DELETE", rf"{content}/label/(?P<label>[^/]+)", "removeLabelFromContent", remove_label
    )
    router.add("GET", rf"{API}/user/current", "getCurrentUser", current_user)
