"""v2 labels, tasks and custom content.

Tasks are the ``<ac:task>`` elements of page and blog post bodies: the store keeps them in
step with every body write, and ticking one through PUT /tasks/{id} rewrites the body's
``<ac:task-status>`` (without a new page version, as in Confluence). The Task schema has
no version, so PUT /tasks/{id} has no version check: it only sets the status.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .bodies import storage_to_adf
from .common import (
    API,
    BULK_BODY_FORMATS,
    LIVE,
    body_json,
    epoch_ms,
    label_json,
    listing,
    now,
    optional_field,
    read_object,
    store_errors,
    version_json,
)
from .paging import SortKey
from .routes import Context, Router
from .store import CustomContent, Task
from .wire import SimRequest, SimResponse, bad_request, not_found, parse_id

__all__ = ["custom_content_json", "register", "task_json"]

LABEL_SORTS: dict[str, Callable[[tuple[int, str, str]], SortKey]] = {
    "created-date": lambda item: (item[0], item[0]),
    "id": lambda item: (item[0], item[0]),
    "name": lambda item: (item[2], item[0]),
}
CUSTOM_BODY_FORMATS = ("raw", "storage", "atlas_doc_format")
CUSTOM_SINGLE_BODY_FORMATS = (
    "raw",
    "storage",
    "atlas_doc_format",
    "view",
    "export_view",
    "anonymous_export_view",
)


# -- labels -------------------------------------------------------------------------------------


def list_labels(req: SimRequest, ctx: Context) -> SimResponse:
    """GET /labels: every label the site knows, filterable by id and prefix."""
    q = req.query
    ids = q.int_array("label-id")
    prefixes = q.array("prefix")
    items = [
        item
        for item in ctx.store.labels()
        if (ids is None or item[0] in ids) and (prefixes is None or item[1] in prefixes)
    ]
    return listing(
        req,
        ctx,
        items,
        sorts=LABEL_SORTS,
        default_sort="id",
        path=req.path,
        render_item=lambda item: {"id": str(item[0]), "name": item[2], "prefix": item[1]},
    )


# -- tasks --------------------------------------------------------------------------------------


def task_json(task: Task, body_format: str | None) -> dict[str, Any]:
    """The Task schema; absent optional fields are left out (the schema has no nulls)."""
    data: dict[str, Any] = {
        "id": str(task.id),
        "localId": task.local_id,
        "spaceId": str(task.space_id),
        ("pageId" if task.container_type == "page" else "blogPostId"): str(task.container_id),
        "status": task.status,
    }
    if body_format == "storage":
        data["body"] = {"storage": {"representation": "storage", "value": task.body}}
    elif body_format == "atlas_doc_format":
        adf = storage_to_adf(f"<p>{task.body}</p>")
        data["body"] = {"atlas_doc_format": {"representation": "atlas_doc_format", "value": adf}}
    data["createdBy"] = task.created_by
    for key, value in (
        ("assignedTo", task.assigned_to),
        ("completedBy", task.completed_by),
    ):
        if value is not None:
            data[key] = value
    data["createdAt"] = task.created_at
    data["updatedAt"] = task.updated_at
    for key, value in (("dueAt", task.due_at), ("completedAt", task.completed_at)):
        if value is not None:
            data[key] = value
    return data


def _task_visible(ctx: Context, task: Task) -> bool:
    container = ctx.store.container(task.container_type, task.container_id)
    return container is not None and container.status in LIVE and container.status != "draft"


def _in_range(value: str | None, low: int | None, high: int | None) -> bool:
    if low is None and high is None:
        return True
    if value is None:
        return False
    moment = epoch_ms(value)
    return (low is None or moment >= low) and (high is None or moment <= high)


def list_tasks(req: SimRequest, ctx: Context) -> SimResponse:
    """GET /tasks with the document's filters (ids, people, and epoch-millisecond ranges)."""
    q = req.query
    body_format = q.enum("body-format", BULK_BODY_FORMATS)
    include_blank = q.boolean("include-blank-tasks", True)
    status = q.enum("status", ("complete", "incomplete"))
    task_ids = q.int_array("task-id", 250)
    space_ids = q.int_array("space-id", 250)
    page_ids = q.int_array("page-id", 250)
    blogpost_ids = q.int_array("blogpost-id", 250)
    created_by = q.array("created-by", 250)
    assigned_to = q.array("assigned-to", 250)
    completed_by = q.array("completed-by", 250)
    ranges = {
        name: (q.optional_integer(f"{name}-from"), q.optional_integer(f"{name}-to"))
        for name in ("created-at", "due-at", "completed-at")
    }
    containers = page_ids is not None or blogpost_ids is not None

    def wanted(task: Task) -> bool:
        if containers:
            in_pages = task.container_type == "page" and task.container_id in (page_ids or ())
            in_posts = task.container_type == "blogpost" and task.container_id in (
                blogpost_ids or ()
            )
            if not (in_pages or in_posts):
                return False
        return (
            (include_blank or task.body.strip() != "")
            and (status is None or task.status == status)
            and (task_ids is None or task.id in task_ids)
            and (space_ids is None or task.space_id in space_ids)
            and (created_by is None or task.created_by in created_by)
            and (assigned_to is None or task.assigned_to in assigned_to)
            and (completed_by is None or task.completed_by in completed_by)
            and _in_range(task.created_at, *ranges["created-at"])
            and _in_range(task.due_at, *ranges["due-at"])
            and _in_range(task.completed_at, *ranges["completed-at"])
            and _task_visible(ctx, task)
        )

    return listing(
        req,
        ctx,
        [t for t in ctx.store.tasks() if wanted(t)],
        sorts={"id": lambda t: (t.id, t.id)},
        default_sort="id",
        path=req.path,
        render_item=lambda t: task_json(t, body_format),
        sortable=False,
    )


def _find_task(req: SimRequest, ctx: Context) -> Task:
    task_id = parse_id("id", req.params["id"])
    task = ctx.store.task(task_id)
    if task is None or not _task_visible(ctx, task):
        raise not_found(detail=f"No task with id {task_id}")
    return task


def get_task(req: SimRequest, ctx: Context) -> SimResponse:
    """GET /tasks/{id}."""
    body_format = req.query.enum("body-format", BULK_BODY_FORMATS)
    return SimResponse.json(task_json(_find_task(req, ctx), body_format))


def update_task(req: SimRequest, ctx: Context) -> SimResponse:
    """PUT /tasks/{id}: only the status can change (the document says so)."""
    body_format = req.query.enum("body-format", BULK_BODY_FORMATS)
    task = _find_task(req, ctx)
    payload = read_object(req)
    status = payload.get("status")
    if status not in ("complete", "incomplete"):
        raise bad_request("'status' is required and must be 'complete' or 'incomplete'")
    if payload.get("id") is not None and str(payload["id"]) != str(task.id):
        raise bad_request(f"'id' in the body ({payload['id']}) does not match the path")
    with store_errors(ctx, f"Task {task.id}"):
        updated = ctx.store.set_task_status(task.id, status, ctx.account_id, now())
    return SimResponse.json(task_json(updated, body_format))


# -- custom content -----------------------------------------------------------------------------


def _custom_body(item: CustomContent, wanted: str | None, version: int | None) -> dict[str, Any]:
    """Raw bodies are only returned as raw; storage bodies as storage, ADF or a view."""
    shown = item.version
    if version is not None:
        shown = next((v for v in item.versions if v.number == version), shown)
    if wanted is None:
        return {}
    if item.body_representation == "raw":
        if wanted != "raw":
            return {}
        return {"raw": {"representation": "raw", "value": shown.body_value}}
    if wanted == "raw":
        return {}
    return body_json(shown.body_representation, shown.body_value, wanted)


def custom_content_json(
    ctx: Context, item: CustomContent, body_format: str | None, version: int | None = None
) -> dict[str, Any]:
    """CustomContentBulk (CustomContentSingle adds the optional fields)."""
    shown = item.version
    if version is not None:
        shown = next((v for v in item.versions if v.number == version), shown)
    space = ctx.store.space(item.space_id)
    data: dict[str, Any] = {
        "id": str(item.id),
        "type": item.type,
        "status": item.status,
        "title": shown.title,
        "spaceId": str(item.space_id),
    }
    if item.page_id is not None:
        data["pageId"] = str(item.page_id)
    if item.blog_post_id is not None:
        data["blogPostId"] = str(item.blog_post_id)
    if item.parent_custom_id is not None:
        data["customContentId"] = str(item.parent_custom_id)
    data["authorId"] = item.author_id
    data["createdAt"] = item.created_at
    data["version"] = version_json(shown)
    data["body"] = _custom_body(item, body_format, version)
    key = space.key if space else str(item.space_id)
    data["_links"] = {"webui": f"/spaces/{key}/customcontent/{item.id}"}
    return data


_CUSTOM_SORTS: dict[str, Callable[[CustomContent], SortKey]] = {
    "id": lambda c: (c.id, c.id),
    "created-date": lambda c: (c.created_at, c.id),
    "modified-date": lambda c: (c.modified_at, c.id),
    "title": lambda c: (c.title.casefold(), c.id),
}


def list_custom_content(req: SimRequest, ctx: Context) -> SimResponse:
    """GET /custom-content: ``type`` is required, as in the document."""
    q = req.query
    content_type = q.string("type")
    if not content_type:
        raise bad_request("'type' is required: the custom content type to list")
    ids = q.int_array("id", 250)
    space_ids = q.int_array("space-id", 100)
    body_format = q.enum("body-format", CUSTOM_BODY_FORMATS)
    items = [
        c
        for c in ctx.store.custom_contents()
        if c.type == content_type
        and c.status == "current"
        and (ids is None or c.id in ids)
        and (space_ids is None or c.space_id in space_ids)
    ]
    return listing(
        req,
        ctx,
        items,
        sorts=_CUSTOM_SORTS,
        default_sort="id",
        path=req.path,
        render_item=lambda c: custom_content_json(ctx, c, body_format),
    )


def get_custom_content(req: SimRequest, ctx: Context) -> SimResponse:
    """GET /custom-content/{id}: CustomContentSingle plus ``_links.base``."""
    content_id = parse_id("id", req.params["id"])
    q = req.query
    body_format = q.enum("body-format", CUSTOM_SINGLE_BODY_FORMATS)
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
    item = ctx.store.custom_content(content_id)
    if item is None or item.status != "current":
        raise not_found(detail=f"No custom content with id {content_id}")
    if wanted is not None and not any(v.number == wanted for v in item.versions):
        raise not_found(detail=f"Custom content {content_id} has no version {wanted}")
    data = custom_content_json(ctx, item, body_format, wanted)
    base = f"{API}/custom-content/{item.id}"
    if not flags["include-version"]:
        del data["version"]
    if flags["include-labels"]:
        labels = [label_json(ctx, text) for text in item.labels]
        data["labels"] = optional_field(labels, f"{base}/labels")
    if flags["include-properties"]:
        data["properties"] = optional_field([], f"{base}/properties")
    if flags["include-operations"]:
        ops = [{"operation": op, "targetType": item.type} for op in ("read", "update", "delete")]
        data["operations"] = optional_field(ops, f"{base}/operations")
    if flags["include-versions"]:
        history = [version_json(v) for v in reversed(item.versions)]
        data["versions"] = optional_field(history, f"{base}/versions")
    data["_links"]["base"] = ctx.base_url
    return SimResponse.json(data)


def register(router: Router) -> None:
    router.add("GET", rf"{API}/labels", "getLabels", list_labels)
    router.add("GET", rf"{API}/tasks", "getTasks", list_tasks)
    router.add("GET", rf"{API}/tasks/(?P<id>[^/]+)", "getTaskById", get_task)
    router.add("PUT", rf"{API}/tasks/(?P<id>[^/]+)", "updateTask", update_task)
    router.add("GET", rf"{API}/custom-content", "getCustomContentByType", list_custom_content)
    router.add(
        "GET", rf"{API}/custom-content/(?P<id>[^/]+)", "getCustomContentById", get_custom_content
    )
