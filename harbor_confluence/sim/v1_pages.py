"""v1 page operations the v2 API lacks: move, copy, copy a hierarchy (a long task), restore
a version, download an attachment and upload a new version of its data.

Written from the v1 document (``movePage``, ``copyPage``, ``copyPageHierarchy``,
``getTask``, ``restoreContentVersion``, ``downloadAttatchment`` (sic), and
``updateAttachmentData``; schemas CopyPageRequest, CopyPageHierarchyRequest,
LongTaskStatusWithLinks, VersionRestore, Version, Content). Errors use the v1 envelope.

- A move does not make a new version (Confluence records moves outside the page history);
  the document's answer is ``{"pageId": ...}``.
- A hierarchy copy answers 202 ``{id, links: {status}}`` (the document's example; the
  status link is relative to ``/wiki``). The copy happens on the status read that completes
  the task, the ``Store.long_task_polls``-th one (3 by default), so tests see progress.
- The download is documented as a 302 only: it redirects to the file's download link on
  this site (served by ``file_routes``), as Confluence redirects to its media service.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

from .common import now, read_json
from .routes import Context, Router
from .store import (
    Attachment,
    DuplicateTitle,
    Invalid,
    LongTask,
    Missing,
    StoreError,
    UnknownParent,
    UnknownSpace,
    VersionConflict,
)
from .v1_content import (
    XSRF_VALUES,
    _content_id,
    _media_type,
    _parts,
    _text,
    attachment_content_json,
)
from .v1_content_read import Expand, content_json, version_json_v1
from .v2_attachments import attachment_links
from .wire import ApiError, SimRequest, SimResponse, bad_request, not_found

__all__ = ["file_routes", "long_task_json", "register"]

API = "/wiki/rest/api"
CONTEXT = "/wiki"
POSITIONS = ("before", "after", "append")
DESTINATIONS = ("space", "existing_page", "parent_page")
COPY_FLAGS = {
    "copyAttachments": "attachments",
    "copyLabels": "labels",
    "copyProperties": "properties",
    "copyPermissions": "permissions",
    "copyCustomContents": "custom",
}
COPY_TASK_KEY = "com.atlassian.confluence.pages.CopyPageHierarchyTask"


@contextmanager
def v1_errors(what: str) -> Iterator[None]:
    """Store refusals as the v1 document's statuses: clashes and loops are 400s."""
    try:
        yield
    except VersionConflict as exc:
        raise ApiError(409, f"Version conflict on {what}: current is {exc.current}") from exc
    except DuplicateTitle as exc:
        raise bad_request(
            f"A page with this title already exists: A page already exists with the title "
            f"'{exc.title}' in space {exc.space_key} ({exc.existing_id})"
        ) from exc
    except (Missing, UnknownSpace) as exc:
        raise not_found(f"{what}: {exc} was not found") from exc
    except (Invalid, UnknownParent) as exc:
        raise bad_request(str(exc)) from exc
    except StoreError as exc:  # pragma: no cover - every subclass is mapped above
        raise bad_request(str(exc)) from exc


def _object(req: SimRequest) -> dict[str, Any]:
    payload = read_json(req)
    if not isinstance(payload, dict):
        raise bad_request("Request body must be a JSON object")
    return payload


def _flag(payload: dict[str, Any], name: str) -> bool:
    value = payload.get(name, False)
    if not isinstance(value, bool):
        raise bad_request(f"'{name}' must be true or false")
    return value


def _options(payload: dict[str, Any]) -> frozenset[str]:
    return frozenset(option for flag, option in COPY_FLAGS.items() if _flag(payload, flag))


def _string(payload: dict[str, Any], name: str, where: str = "") -> str | None:
    value = payload.get(name)
    if value is not None and not isinstance(value, str):
        raise bad_request(f"'{where}{name}' must be a string")
    return value


def _page_id(raw: str, name: str) -> int:
    if not raw.isascii() or not raw.isdigit():
        raise bad_request(f"'{name}' must be a numeric content id, got '{raw}'")
    return int(raw)


# -- move ------------------------------------------------------------------------------------


def move_page(req: SimRequest, ctx: Context) -> SimResponse:
    """PUT /content/{pageId}/move/{position}/{targetId}: answers ``{"pageId": ...}``."""
    position = req.params["position"]
    if position not in POSITIONS:
        raise bad_request(f"'position' must be one of {', '.join(POSITIONS)}, got '{position}'")
    page_id = _page_id(req.params["pageId"], "pageId")
    target_id = _page_id(req.params["targetId"], "targetId")
    with v1_errors(f"Moving page {page_id}"):
        ctx.store.move_page(page_id, position, target_id)
    return SimResponse.json({"pageId": str(page_id)})


# -- copy ------------------------------------------------------------------------------------


def _copy_body(payload: dict[str, Any]) -> tuple[str, str] | None:
    body = payload.get("body")
    if body is None:
        return None
    if not isinstance(body, dict) or set(body) - {"storage", "editor2"}:
        raise bad_request("'body' must be {storage: {value, representation}}")
    storage = body.get("storage")
    if not isinstance(storage, dict):
        raise bad_request("Only a 'body.storage' replacement is supported")
    value = storage.get("value")
    if storage.get("representation") != "storage" or not isinstance(value, str):
        raise bad_request("'body.storage' needs representation 'storage' and a string value")
    return "storage", value


def copy_page(req: SimRequest, ctx: Context) -> SimResponse:
    """POST /content/{id}/copy: synchronous; answers the new (or overwritten) Content."""
    page_id = _page_id(req.params["id"], "id")
    expand = Expand.from_query(req.query)
    payload = _object(req)
    destination = payload.get("destination")
    if not isinstance(destination, dict):
        raise bad_request("'destination' is required: {type, value}")
    kind = destination.get("type")
    if kind not in DESTINATIONS:
        raise bad_request(f"'destination.type' must be one of {', '.join(DESTINATIONS)}")
    value = _string(destination, "value", "destination.")
    if not value:
        raise bad_request("'destination.value' is required")
    title = _string(payload, "pageTitle")
    if title is not None and not title.strip():
        raise bad_request("'pageTitle' cannot be blank")
    options = _options(payload)
    body = _copy_body(payload)
    with v1_errors(f"Copying page {page_id}"):
        copy = ctx.store.copy_page(
            page_id,
            destination=kind,
            value=value,
            title=title.strip() if title else None,
            body=body,
            options=options,
            author_id=ctx.account_id,
            now=now(),
        )
    data = content_json(copy, ctx, expand)
    data["_links"].update(base=ctx.base_url, context=CONTEXT)
    return SimResponse.json(data)


def copy_page_hierarchy(req: SimRequest, ctx: Context) -> SimResponse:
    """POST /content/{id}/pagehierarchy/copy: 202 with the long task to poll."""
    page_id = _page_id(req.params["id"], "id")
    payload = _object(req)
    raw_destination = _string(payload, "destinationPageId")
    if not raw_destination:
        raise bad_request("'destinationPageId' is required")
    destination = _page_id(raw_destination, "destinationPageId")
    title_options = payload.get("titleOptions") or {}
    if not isinstance(title_options, dict):
        raise bad_request("'titleOptions' must be an object {prefix, search, replace}")
    prefix = _string(title_options, "prefix", "titleOptions.") or ""
    search = _string(title_options, "search", "titleOptions.") or ""
    replacement = _string(title_options, "replace", "titleOptions.") or ""
    if replacement and not search:
        raise bad_request("'titleOptions.replace' needs 'titleOptions.search'")
    with v1_errors(f"Copying the hierarchy of page {page_id}"):
        task = ctx.store.start_copy_tree(
            page_id,
            destination_id=destination,
            prefix=prefix,
            search=search,
            replacement=replacement,
            options=_options(payload),
            author_id=ctx.account_id,
        )
    link = f"/rest/api/longtask/{task.id}"
    return SimResponse.json(
        {"id": str(task.id), "links": {"status": link}},
        202,
        [("Location", f"{ctx.base_url}{link}")],
    )


def long_task_json(task: LongTask, ctx: Context) -> dict[str, Any]:
    """LongTaskStatusWithLinks for a hierarchy copy."""
    done = task.finished
    ok = done and task.error is None
    percent = 100 if done else task.polls_done * 100 // task.polls_needed
    if not done:
        key, text = "STATUS_COPYING_PAGES", f"Copying {len(task.plan)} pages"
    elif ok:
        key, text = "STATUS_COPIED_PAGES", f"Copied {len(task.copied)} pages"
    else:
        key, text = "ERROR_COPY_PAGE", task.error or "The copy failed"
    message = {"translation": text, "args": [], "key": key}
    data: dict[str, Any] = {
        "id": str(task.id),
        "name": {"key": COPY_TASK_KEY, "args": []},
        "elapsedTime": task.polls_done * 250,
        "percentageComplete": percent,
        "successful": ok,
        "finished": done,
        "messages": [message],
        "status": key,
        "additionalDetails": {
            "destinationId": str(task.copied[0] if task.copied else task.destination_id),
            "destinationUrl": f"/pages/viewpage.action?pageId="
            f"{task.copied[0] if task.copied else task.destination_id}",
            "totalPageNeedToCopy": len(task.plan),
        },
        "_links": {
            "self": f"{ctx.base_url}/rest/api/longtask/{task.id}",
            "base": ctx.base_url,
            "context": CONTEXT,
        },
    }
    if done and not ok:
        data["errors"] = [message]
    return data


def get_long_task(req: SimRequest, ctx: Context) -> SimResponse:
    """GET /longtask/{id}: each read advances the task one step until it finishes."""
    task_id = _page_id(req.params["id"], "id")
    with v1_errors(f"Long task {task_id}"):
        task = ctx.store.poll_long_task(task_id, now())
    return SimResponse.json(long_task_json(task, ctx))


# -- versions -----------------------------------------------------------------------------------


def restore_version(req: SimRequest, ctx: Context) -> SimResponse:
    """POST /content/{id}/version (VersionRestore): a new version with the old content."""
    content_id = _page_id(req.params["id"], "id")
    req.query.array("expand")
    payload = _object(req)
    if payload.get("operationKey") != "restore":
        raise bad_request("'operationKey' must be 'restore'")
    params = payload.get("params")
    if not isinstance(params, dict):
        raise bad_request("'params' is required: {versionNumber, message}")
    number = params.get("versionNumber")
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise bad_request("'params.versionNumber' must be a positive integer")
    message = params.get("message")
    if not isinstance(message, str):
        raise bad_request("'params.message' is required (a string)")
    restore_title = params.get("restoreTitle", False)
    if not isinstance(restore_title, bool):
        raise bad_request("'params.restoreTitle' must be true or false")
    kind = "blogpost" if ctx.store.blogpost(content_id) is not None else "page"
    with v1_errors(f"Content {content_id}"):
        page = ctx.store.restore_version(
            kind,
            content_id,
            number=number,
            message=message,
            restore_title=restore_title,
            author_id=ctx.account_id,
            now=now(),
        )
    return SimResponse.json(version_json_v1(page, ctx))


# -- attachments --------------------------------------------------------------------------------


def _attachment_of(ctx: Context, content_raw: str, attachment_raw: str) -> Attachment:
    content_id = _content_id(content_raw)
    attachment_id = _content_id(attachment_raw)
    container: Any = (
        ctx.store.page(content_id)
        or ctx.store.blogpost(content_id)
        or ctx.store.custom_content(content_id)
    )
    if container is None or container.status not in ("current", "archived", "draft"):
        raise not_found(f"There is no content with id {content_id}")
    attachment = ctx.store.attachment(attachment_id)
    if (
        attachment is None
        or attachment.container_id != content_id
        or attachment.status != "current"
    ):
        raise not_found(f"Content {content_id} has no attachment att{attachment_id}")
    return attachment


def download_attachment(req: SimRequest, ctx: Context) -> SimResponse:
    """GET /content/{id}/child/attachment/{attachmentId}/download: 302 to the file."""
    attachment = _attachment_of(ctx, req.params["id"], req.params["attachmentId"])
    version = req.query.optional_integer("version")
    if version is not None and version != attachment.version.number:
        if not 1 <= version < attachment.version.number:
            raise not_found(f"Attachment att{attachment.id} has no version {version}")
        raise not_found(
            f"Version {version} of att{attachment.id} is not held by the simulator "
            "(only the current bytes are kept)"
        )
    _, download = attachment_links(attachment)
    return SimResponse(302, b"", (("Location", f"{ctx.base_url}{download}"),))


def update_attachment_data(req: SimRequest, ctx: Context) -> SimResponse:
    """POST /content/{id}/child/attachment/{attachmentId}/data: a new version's bytes."""
    token = (req.header("x-atlassian-token") or "").strip().lower()
    if token not in XSRF_VALUES:
        raise ApiError(403, "XSRF check failed")
    attachment = _attachment_of(ctx, req.params["id"], req.params["attachmentId"])
    files: list[tuple[str, bytes]] = []
    media_type = attachment.media_type
    comment: str | None = None
    minor_edit: bool | None = None
    for part in _parts(req):
        name = part.get_param("name", header="content-disposition")
        if name == "file":
            filename = part.get_filename() or attachment.title
            payload = part.get_payload(decode=True)
            files.append((filename, payload if isinstance(payload, bytes) else b""))
            media_type = _media_type(part, filename)
        elif name == "comment":
            comment = _text(part)
        elif name == "minorEdit":
            value = _text(part).strip().strip('"').lower()
            if value not in ("true", "false"):
                raise bad_request("'minorEdit' must be true or false")
            minor_edit = value == "true"
    if len(files) != 1:
        raise bad_request("Send exactly one 'file' part with the new data")
    if minor_edit is None:
        raise bad_request("The 'minorEdit' part is required")
    with v1_errors(f"Attachment att{attachment.id}"):
        updated = ctx.store.update_attachment_data(
            attachment.id,
            container_id=attachment.container_id,
            data=files[0][1],
            media_type=media_type,
            comment=comment,
            minor_edit=minor_edit,
            author_id=ctx.account_id,
            now=now(),
        )
    data = attachment_content_json(ctx, updated)
    data["_links"].update(base=ctx.base_url, context=CONTEXT)
    return SimResponse.json(data)


def serve_file(req: SimRequest, ctx: Context) -> SimResponse:
    """GET /wiki/download/attachments/{containerId}/{name}: the current bytes."""
    container_id = _page_id(req.params["container"], "container")
    name = req.params["name"]
    version = req.query.optional_integer("version")
    found = next(
        (
            a
            for a in ctx.store.attachments()
            if a.container_id == container_id and a.title == name and a.status == "current"
        ),
        None,
    )
    if found is None or (version is not None and version != found.version.number):
        raise not_found(f"No file {name} (version {version}) on content {container_id}")
    disposition = f"attachment; filename*=UTF-8''{quote(found.title, safe='')}"
    return SimResponse(
        200,
        found.data,
        (("Content-Type", found.media_type), ("Content-Disposition", disposition)),
    )


def file_routes(router: Router) -> None:
    """Non-API paths (download links); kept out of the operation table on purpose."""
    router.add(
        "GET",
        r"/wiki/download/attachments/(?P<container>[^/]+)/(?P<name>[^/]+)",
        "downloadFile",
        serve_file,
    )


def register(router: Router) -> None:
    content = rf"{API}/content/(?P<id>[^/]+)"
    router.add(
        "PUT",
        rf"{API}/content/(?P<pageId>[^/]+)/move/(?P<position>[^/]+)/(?P<targetId>[^/]+)",
        "movePage",
        move_page,
    )
    router.add("POST", rf"{content}/copy", "copyPage", copy_page)
    router.add("POST", rf"{content}/pagehierarchy/copy", "copyPageHierarchy", copy_page_hierarchy)
    router.add("GET", rf"{API}/longtask/(?P<id>[^/]+)", "getTask", get_long_task)
    router.add("POST", rf"{content}/version", "restoreContentVersion", restore_version)
    attachment = rf"{content}/child/attachment/(?P<attachmentId>[^/]+)"
    router.add("GET", rf"{attachment}/download", "downloadAttatchment", download_attachment)
    router.add("POST", rf"{attachment}/data", "updateAttachmentData", update_attachment_data)
