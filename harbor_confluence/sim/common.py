"""Pieces every v2 route module shares: JSON bodies, version checks, body and label shapes,
cursor listings, and the mapping from store refusals to Confluence's status codes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from .bodies import BodyFormatError, adf_to_storage, check_storage, render, wiki_to_storage
from .paging import Paged, SortKey, paginate
from .routes import Context
from .seed import format_time
from .store import (
    DuplicateTitle,
    Invalid,
    Missing,
    Page,
    Property,
    StoreError,
    UnknownParent,
    UnknownSpace,
    VersionConflict,
    VersionInfo,
    label_parts,
)
from .wire import ApiError, SimRequest, SimResponse, bad_request, not_found

__all__ = [
    "API",
    "BULK_BODY_FORMATS",
    "INCLUDE_LIMIT",
    "LIVE",
    "SINGLE_BODY_FORMATS",
    "WRITE_REPRESENTATIONS",
    "body_json",
    "conflict",
    "content_property_json",
    "digits",
    "epoch_ms",
    "label_json",
    "listing",
    "now",
    "optional_field",
    "read_body",
    "read_json",
    "read_object",
    "read_version",
    "store_errors",
    "version_json",
    "visible_container",
]

T = TypeVar("T")

API = "/wiki/api/v2"
LIVE = ("current", "archived", "draft")
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
INCLUDE_LIMIT = 50
INT32_MAX = 2**31 - 1


def now() -> str:
    return format_time(datetime.now(UTC))


def epoch_ms(timestamp: str) -> int:
    """A stored ``...Z`` timestamp as epoch milliseconds (the tasks API filters on these)."""
    return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)


def read_json(req: SimRequest) -> Any:
    """The JSON request body; 415 for another content type, 400 when it does not parse."""
    content_type = (req.header("content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise ApiError(
            415, f"Content type '{content_type or 'none'}' is not supported; send application/json"
        )
    try:
        return json.loads(req.body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad_request("Request body is not valid JSON", str(exc)) from exc


def read_object(req: SimRequest) -> dict[str, Any]:
    payload = read_json(req)
    if not isinstance(payload, dict):
        raise bad_request("Request body must be a JSON object")
    return payload


def digits(field: str, value: Any) -> int:
    """Ids in request bodies are strings of digits (the spec types them as string)."""
    if not isinstance(value, str):
        raise bad_request(f"'{field}' must be a string, got {type(value).__name__}")
    if not value.isascii() or not value.isdigit():
        raise bad_request(f"'{field}' must be a numeric id, got '{value}'")
    return int(value)


def read_body(body: Any, *, required: bool = False) -> tuple[str, str]:
    """Accept the flat ``{representation, value}`` or the nested ``{storage: {...}}`` form.

    Wiki markup is converted to storage on write, as Confluence does; ADF is validated.
    """
    if body is None:
        if required:
            raise bad_request("'body' is required")
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
        if representation == "storage":
            check_storage(value)  # well-formed XHTML, as Confluence requires
    except BodyFormatError as exc:
        raise bad_request(str(exc)) from exc
    return representation, value


def read_version(payload: Mapping[str, Any], *, required: bool = True) -> tuple[int, str]:
    """``version: {number, message}`` of an update; the number is what the check compares."""
    version = payload.get("version")
    if version is None:
        if required:
            raise bad_request("'version' is required: send {\"number\": current + 1}")
        return 0, ""
    if not isinstance(version, dict):
        raise bad_request("'version' must be an object")
    number = version.get("number")
    if isinstance(number, bool) or not isinstance(number, int):
        raise bad_request("'version.number' must be an integer")
    if not 1 <= number <= INT32_MAX:
        raise bad_request("'version.number' must be between 1 and 2147483647")
    message = version.get("message", "")
    if not isinstance(message, str):
        raise bad_request("'version.message' must be a string")
    return number, message


def conflict(exc: VersionConflict, what: str, ctx: Context) -> ApiError:
    """Confluence's 409 title, and a detail naming the current version and who made it."""
    user = ctx.store.user(exc.author_id)
    who = f"{user.display_name} ({exc.author_id})" if user else exc.author_id
    return ApiError(
        409,
        f"Version must be incremented on update. Current version is: {exc.current}",
        f"{what} is at version {exc.current}, last changed by {who} at {exc.when}; "
        f"version.number {exc.sent} was sent, {exc.current + 1} is expected",
    )


@contextmanager
def store_errors(ctx: Context, what: str) -> Iterator[None]:
    """Translate store refusals into the statuses Confluence answers with."""
    try:
        yield
    except VersionConflict as exc:
        raise conflict(exc, what, ctx) from exc
    except DuplicateTitle as exc:
        raise ApiError(
            409,
            "A page with this title already exists: A page already exists with the same "
            "TITLE in this space",
            f"Title '{exc.title}' is used by {exc.existing_id} in space {exc.space_key}",
        ) from exc
    except (Missing, UnknownSpace) as exc:
        raise not_found(detail=f"{what}: {exc} was not found") from exc
    except UnknownParent as exc:
        raise bad_request(f"Parent page {exc} does not exist in this space") from exc
    except Invalid as exc:
        raise bad_request(str(exc)) from exc
    except StoreError as exc:  # pragma: no cover - every subclass is mapped above
        raise bad_request(str(exc)) from exc


def version_json(version: VersionInfo) -> dict[str, Any]:
    """The ``Version`` schema."""
    return {
        "createdAt": version.created_at,
        "message": version.message,
        "number": version.number,
        "minorEdit": version.minor_edit,
        "authorId": version.author_id,
    }


def body_json(representation: str, value: str, wanted: str | None) -> dict[str, Any]:
    """``{wanted: {representation, value}}``, or ``{}`` when no body format was asked for."""
    if wanted is None:
        return {}
    try:
        rendered = render(representation, value, wanted)
    except BodyFormatError as exc:  # pragma: no cover - stored bodies were validated
        raise ApiError(500, f"cannot render body as {wanted}: {exc}") from exc
    return {wanted: {"representation": wanted, "value": rendered}}


def content_property_json(prop: Property) -> dict[str, Any]:
    """ContentProperty: the value is returned as the JSON it was stored as."""
    return {
        "id": str(prop.id),
        "key": prop.key,
        "value": json.loads(prop.value),
        "version": {
            "createdAt": prop.version_at,
            "message": prop.version_message,
            "number": prop.version,
            "minorEdit": prop.minor_edit,
            "authorId": prop.version_by,
        },
    }


def optional_field(results: list[Any], self_link: str) -> dict[str, Any]:
    """The ``{results, meta, _links}`` block that every ``include-*`` flag adds."""
    return {
        "results": results[:INCLUDE_LIMIT],
        "meta": {"hasMore": len(results) > INCLUDE_LIMIT},
        "_links": {"self": self_link},
    }


def label_json(ctx: Context, text: str) -> dict[str, Any]:
    """The v2 ``Label`` schema for a stored label (``name`` or ``prefix:name``)."""
    prefix, name = label_parts(text)
    return {"id": ctx.store.label_id(text), "name": name, "prefix": prefix}


def visible_container(ctx: Context, kind: str, content_id: int) -> Page:
    """A live page or blog post, else the 404 Confluence gives for unknown or trashed ids."""
    page = ctx.store.container(kind, content_id)
    if page is None or page.status not in LIVE:
        raise not_found(detail=f"No {kind} with id {content_id}")
    return page


def listing(
    req: SimRequest,
    ctx: Context,
    items: Sequence[T],
    *,
    sorts: Mapping[str, Callable[[T], SortKey]],
    default_sort: str,
    path: str,
    render_item: Callable[[T], dict[str, Any]],
    default_limit: int = 25,
    sortable: bool = True,
) -> SimResponse:
    """A cursor-paged v2 list: validate sort and limit, cut a page, link the next one.

    ``sorts`` maps each ascending sort name to its key; ``-name`` sorts descending.
    Without ``sortable`` the listing has no ``sort`` parameter and keeps ``default_sort``.
    """
    q = req.query
    allowed = [s for name in sorts for s in (name, f"-{name}")]
    sort = (q.enum("sort", allowed) if sortable else None) or default_sort
    limit = q.integer("limit", default=default_limit, minimum=1, maximum=250)
    paged: Paged[T] = paginate(
        items,
        key=sorts[sort.lstrip("-")],
        descending=sort.startswith("-"),
        sort_name=sort,
        query=q,
        path=path,
        limit=limit,
    )
    results = [render_item(item) for item in paged.items]
    return SimResponse.json(
        {"results": results, "_links": paged.links(ctx.base_url)},
        headers=paged.headers(ctx.base_url),
    )
