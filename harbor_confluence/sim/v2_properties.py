"""Content properties (pages, blog posts) and space properties: list, get, create, update
with a version check, delete.

ContentProperty and SpaceProperty differ in the document: the space one carries
``createdAt``/``createdBy`` and a version with ``createdBy`` instead of ``authorId``, and
its create answers 201 with a ``location`` header where the content one answers 200.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .common import (
    API,
    content_property_json,
    listing,
    now,
    read_object,
    read_version,
    store_errors,
    visible_container,
)
from .routes import Context, Handler, Router
from .store import Property
from .wire import ApiError, SimRequest, SimResponse, bad_request, not_found, parse_id

__all__ = ["register", "space_property_json"]

MAX_KEY = 255
MAX_VALUE_CHARS = 32_768  # Confluence's limit on a property value's JSON text


def space_property_json(prop: Property) -> dict[str, Any]:
    """SpaceProperty."""
    return {
        "id": str(prop.id),
        "key": prop.key,
        "value": json.loads(prop.value),
        "createdAt": prop.created_at,
        "createdBy": prop.created_by,
        "version": {
            "createdAt": prop.version_at,
            "createdBy": prop.version_by,
            "message": prop.version_message,
            "number": prop.version,
        },
    }


def _read_key_value(payload: dict[str, Any]) -> tuple[str, str]:
    key = payload.get("key")
    if not isinstance(key, str) or not key.strip():
        raise bad_request("'key' is required and must be a non-empty string")
    if len(key) > MAX_KEY:
        raise bad_request(f"'key' must be at most {MAX_KEY} characters")
    if "value" not in payload:
        raise bad_request("'value' is required")
    value = json.dumps(payload["value"], separators=(",", ":"), ensure_ascii=False)
    if len(value) > MAX_VALUE_CHARS:
        raise ApiError(413, f"'value' is too large (over {MAX_VALUE_CHARS} characters of JSON)")
    return key, value


class _Owner:
    """Where properties hang: a page, a blog post or a space, and how each is shown."""

    def __init__(self, owner_type: str, param: str, space: bool) -> None:
        self.owner_type = owner_type
        self.param = param  # the spec's path variable name, for error messages
        self.space = space
        self.render: Callable[[Property], dict[str, Any]] = (
            space_property_json if space else content_property_json
        )

    def resolve(self, req: SimRequest, ctx: Context) -> int:
        owner_id = parse_id(self.param, req.params["owner"])
        if self.space:
            if ctx.store.space(owner_id) is None:
                raise not_found(detail=f"No space with id {owner_id}")
        else:
            visible_container(ctx, self.owner_type, owner_id)
        return owner_id

    def what(self, owner_id: int, property_id: int) -> str:
        return f"Property {property_id} of {self.owner_type} {owner_id}"

    def list(self) -> Handler:
        def handler(req: SimRequest, ctx: Context) -> SimResponse:
            owner_id = self.resolve(req, ctx)
            key = req.query.string("key")
            props = [
                p
                for p in ctx.store.properties(self.owner_type, owner_id)
                if key is None or p.key == key
            ]
            if self.space:  # the space listing has no sort parameter: it is by id
                sorts: dict[str, Callable[[Property], tuple[int | str, int]]] = {
                    "id": lambda p: (p.id, p.id)
                }
                default = "id"
            else:
                sorts = {"key": lambda p: (p.key, p.id)}
                default = "key"
            return listing(
                req,
                ctx,
                props,
                sorts=sorts,
                default_sort=default,
                path=req.path,
                render_item=self.render,
                sortable=not self.space,
            )

        return handler

    def get(self) -> Handler:
        def handler(req: SimRequest, ctx: Context) -> SimResponse:
            owner_id = self.resolve(req, ctx)
            property_id = parse_id("property-id", req.params["property_id"])
            prop = ctx.store.find_property(self.owner_type, owner_id, property_id)
            if prop is None:
                raise not_found(detail=f"{self.what(owner_id, property_id)} does not exist")
            return SimResponse.json(self.render(prop))

        return handler

    def create(self) -> Handler:
        def handler(req: SimRequest, ctx: Context) -> SimResponse:
            owner_id = self.resolve(req, ctx)
            key, value = _read_key_value(read_object(req))
            with store_errors(ctx, f"{self.owner_type} {owner_id}"):
                prop = ctx.store.create_property(
                    self.owner_type, owner_id, key, value, ctx.account_id, now()
                )
            if self.space:
                where = f"{ctx.base_url}/api/v2/spaces/{owner_id}/properties/{prop.id}"
                return SimResponse.json(self.render(prop), 201, [("Location", where)])
            return SimResponse.json(self.render(prop))

        return handler

    def update(self) -> Handler:
        def handler(req: SimRequest, ctx: Context) -> SimResponse:
            owner_id = self.resolve(req, ctx)
            property_id = parse_id("property-id", req.params["property_id"])
            payload = read_object(req)
            key, value = _read_key_value(payload)
            number, message = read_version(payload)
            minor = bool((payload.get("version") or {}).get("minorEdit", False))
            with store_errors(ctx, self.what(owner_id, property_id)):
                prop = ctx.store.update_property(
                    self.owner_type,
                    owner_id,
                    property_id,
                    key=key,
                    value=value,
                    version=number,
                    message=message,
                    minor_edit=minor,
                    author_id=ctx.account_id,
                    now=now(),
                )
            return SimResponse.json(self.render(prop))

        return handler

    def delete(self) -> Handler:
        def handler(req: SimRequest, ctx: Context) -> SimResponse:
            owner_id = self.resolve(req, ctx)
            property_id = parse_id("property-id", req.params["property_id"])
            with store_errors(ctx, self.what(owner_id, property_id)):
                ctx.store.delete_property(self.owner_type, owner_id, property_id)
            return SimResponse(204)

        return handler


def register(router: Router) -> None:
    owners = (
        (_Owner("page", "page-id", False), "pages", "Page", "PageContentProperties"),
        (
            _Owner("blogpost", "blogpost-id", False),
            "blogposts",
            "Blogpost",
            "BlogpostContentProperties",
        ),
        (_Owner("space", "space-id", True), "spaces", "Space", "SpaceProperties"),
    )
    for owner, segment, name, list_name in owners:
        base = rf"{API}/{segment}/(?P<owner>[^/]+)/properties"
        one = rf"{base}/(?P<property_id>[^/]+)"
        single = "getSpacePropertyById" if owner.space else f"get{list_name}ById"
        router.add("GET", base, f"get{list_name}", owner.list())
        router.add("POST", base, f"create{name}Property", owner.create())
        router.add("GET", one, single, owner.get())
        router.add("PUT", one, f"update{name}PropertyById", owner.update())
        router.add("DELETE", one, f"delete{name}PropertyById", owner.delete())
