"""speccheck: actions against Atlassian's OpenAPI documents, the admin deny-list, path vars."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from harbor_confluence.catalog.speccheck import (
    SpecUnavailable,
    admin_route_problem,
    check_action,
    load_openapi,
    path_variable_problems,
)
from harbor_confluence.pipeline.executor import default_manifest_path
from harbor_confluence.pipeline.manifest import Action, load_manifest
from tests.contract import require_spec

ID = {"type": "string", "pattern": "^[0-9]{1,19}$"}


@pytest.fixture(scope="module")
def v2() -> dict[str, Any]:
    return require_spec("v2")


@pytest.fixture(scope="module")
def v1() -> dict[str, Any]:
    return require_spec("v1")


def action(**overrides: Any) -> Action:
    """A small valid read action (GET /wiki/api/v2/spaces/{id}); overrides replace keys."""
    data: dict[str, Any] = {
        "name": "lookup-space",
        "description": "Get one space by id.",
        "method": "GET",
        "route": "/wiki/api/v2/spaces/{id}",
        "scopes": ["read:space:confluence"],
        "defaultPolicy": "auto",
        "parameters": {
            "path": {"type": "object", "required": ["id"], "properties": {"id": ID}},
            "query": {
                "type": "object",
                "properties": {
                    "description-format": {"type": "string", "enum": ["plain", "view"]},
                    "include-icon": {"type": "boolean"},
                },
            },
        },
        "summary": {"fields": {"id": "id", "key": "key"}},
    }
    data.update(overrides)
    return Action.model_validate(data)


def path_id(schema: dict[str, Any]) -> dict[str, Any]:
    return {"path": {"type": "object", "required": ["id"], "properties": {"id": schema}}}


def with_query(**props: Any) -> Action:
    return action(
        parameters={
            "path": {"type": "object", "required": ["id"], "properties": {"id": ID}},
            "query": {"type": "object", "properties": props},
        }
    )


def test_every_packaged_starter_action_conforms(v2: dict[str, Any], v1: dict[str, Any]) -> None:
    m = load_manifest(default_manifest_path())
    for name in ("search-pages", "get-page", "create-page"):
        assert check_action(m.action(name), v2, v1) == [], name


def test_issue_17_actions_conform_and_stay_narrow(v2: dict[str, Any], v1: dict[str, Any]) -> None:
    """The new v1 actions conform as declared; the obvious widenings do not."""
    m = load_manifest(default_manifest_path())
    for name in (
        "move-page",
        "copy-page",
        "get-page-by-title",
        "get-users",
        "list-templates",
        "restore-page-version",
        "upload-attachment-version",
        "list-page-descendants",
    ):
        assert check_action(m.action(name), v2, v1) == [], name  # fmt: skip

    def widened(name: str, where: str, prop: str, schema: dict[str, Any]) -> list[str]:
        raw = m.action(name).model_dump(by_alias=True, exclude_none=True)
        raw["parameters"][where]["properties"][prop] = schema
        return check_action(Action.model_validate(raw), v2, v1)

    # the bulk lookup's accountId is one string (comma-separated), not a repeated parameter
    many = {"type": "array", "maxItems": 100, "items": {"type": "string", "pattern": "^a$"}}
    assert widened("get-users", "query", "accountId", many) == [
        "query.accountId: type array but the spec says string"
    ]
    deeper = {"type": "integer", "minimum": 1, "maximum": 11}
    assert widened("list-page-descendants", "query", "depth", deeper) == [
        "query.depth: maximum must be at most the spec's 10, not 11"
    ]
    anywhere = {"type": "string", "enum": ["before", "after", "append", "inside"]}
    problems = widened("move-page", "path", "position", anywhere)
    assert problems and "values ['inside'] are not allowed" in problems[0]


def test_a_well_formed_action_conforms(v2: dict[str, Any]) -> None:
    assert check_action(action(), v2, None) == []


def test_route_missing_from_the_spec(v2: dict[str, Any]) -> None:
    problems = check_action(action(route="/wiki/api/v2/spacez/{id}"), v2, None)
    assert problems == ["route /wiki/api/v2/spacez/{id} is not in Atlassian's v2 OpenAPI document"]


def test_method_not_documented_names_the_documented_ones(v2: dict[str, Any]) -> None:
    problems = check_action(action(method="DELETE"), v2, None)
    assert len(problems) == 1
    assert "DELETE /wiki/api/v2/spaces/{id} is not documented" in problems[0]
    assert "GET" in problems[0]


def test_route_variable_names_map_underscore_to_dash(v2: dict[str, Any]) -> None:
    good = action(
        route="/wiki/api/v2/spaces/{space_id}/properties",
        parameters={
            "path": {"type": "object", "required": ["space_id"], "properties": {"space_id": ID}}
        },
    )
    assert check_action(good, v2, None) == []
    wrong = action(
        route="/wiki/api/v2/spaces/{id}/properties",
        parameters={"path": {"type": "object", "required": ["id"], "properties": {"id": ID}}},
    )
    assert check_action(wrong, v2, None) == [
        "route variable {id} is {space-id} in the spec: name it {space_id}"
    ]


def test_digit_string_stands_in_for_an_integer_id_but_backslash_d_does_not(
    v2: dict[str, Any],
) -> None:
    unicode_digits = action(
        parameters={
            "path": {
                "type": "object",
                "required": ["id"],
                "properties": {"id": {"type": "string", "pattern": "^\\d+$"}},
            }
        }
    )
    assert check_action(unicode_digits, v2, None) == [
        "path.id: type string but the spec says integer"
    ]


def test_spec_pattern_may_be_tightened_not_replaced(v2: dict[str, Any]) -> None:
    base = {
        "route": "/wiki/api/v2/attachments/{id}",
        "scopes": ["read:attachment:confluence"],
        "summary": {"fields": {"id": "id"}},
    }
    tight = {"type": "string", "pattern": "^(att)?[0-9]{1,19}$"}
    other = {"type": "string", "pattern": "^[a-z]{1,19}$"}
    for schema, expected in ((tight, []), (other, ["path.id: the spec's pattern"])):
        a = action(
            **base,
            parameters=path_id(schema),
        )
        problems = check_action(a, v2, None)
        assert [p[: len(e)] for p, e in zip(problems, expected, strict=True)] == expected


def test_narrower_enum_and_bounds_pass_wider_fail(v2: dict[str, Any]) -> None:
    narrow = with_query(**{"description-format": {"type": "string", "enum": ["plain"]}})
    assert check_action(narrow, v2, None) == []
    wider = with_query(**{"description-format": {"type": "string", "enum": ["plain", "wiki"]}})
    assert check_action(wider, v2, None) == [
        "query.description-format: values ['wiki'] are not allowed by the spec (['plain', 'view'])"
    ]
    loose = with_query(**{"description-format": {"type": "string"}})
    assert "declare an enum within it" in check_action(loose, v2, None)[0]


def test_limit_bounds_against_the_spec(v2: dict[str, Any]) -> None:
    def pages(limit: dict[str, Any]) -> Action:
        return action(
            route="/wiki/api/v2/pages",
            scopes=["read:page:confluence"],
            parameters={"query": {"type": "object", "properties": {"limit": limit}}},
        )

    assert check_action(pages({"type": "integer", "minimum": 1, "maximum": 100}), v2, None) == []
    assert check_action(pages({"type": "integer", "minimum": 1, "maximum": 500}), v2, None) == [
        "query.limit: maximum must be at most the spec's 250, not 500"
    ]
    assert check_action(pages({"type": "integer", "minimum": 0, "maximum": 10}), v2, None) == [
        "query.limit: minimum must be at least the spec's 1, not 0"
    ]


def test_untyped_and_undocumented_parameters(v2: dict[str, Any]) -> None:
    assert check_action(with_query(**{"include-icon": {}}), v2, None) == [
        "query.include-icon: has no type (every parameter must be typed)"
    ]
    assert check_action(with_query(expand={"type": "string", "enum": ["x"]}), v2, None) == [
        "query.expand: not a query parameter of GET /spaces/{id} in the spec"
    ]
    assert check_action(with_query(**{"include-icon": {"type": "string"}}), v2, None) == [
        "query.include-icon: type string but the spec says boolean"
    ]


def test_scopes_must_match_the_spec(v2: dict[str, Any]) -> None:
    assert check_action(action(scopes=["write:space:confluence"]), v2, None) == [
        "scopes ['write:space:confluence'] do not match the spec's ['read:space:confluence']"
    ]
    assert check_action(action(scopes=[]), v2, None)[0].startswith("scopes [] do not match")


def test_body_checked_against_the_request_body(v2: dict[str, Any]) -> None:
    def create(body: dict[str, Any]) -> Action:
        return action(
            method="POST",
            route="/wiki/api/v2/pages",
            scopes=["write:page:confluence"],
            requestBodyMode="json",
            defaultPolicy="require_approval",
            parameters={"body": body},
        )

    good = {"type": "object", "required": ["spaceId"], "properties": {"spaceId": ID}}
    assert check_action(create(good), v2, None) == []
    bad = {
        "type": "object",
        "properties": {"title": {"type": "integer"}, "colour": {"type": "string", "enum": ["red"]}},
    }
    assert sorted(check_action(create(bad), v2, None)) == [
        "body.colour: not a property the spec documents",
        "body.title: type integer but the spec says string",
        "body: the spec requires ['spaceId']; declare them as required",
    ]


def test_v1_route_needs_the_v1_document(v1: dict[str, Any], v2: dict[str, Any]) -> None:
    current_user = action(
        route="/wiki/rest/api/user/current",
        scopes=["read:confluence-user"],
        parameters={},
    )
    assert check_action(current_user, v2, v1) == []
    assert check_action(current_user, v2, None) == [
        "route /wiki/rest/api/user/current is a v1 route and no v1 document was given"
    ]


@pytest.mark.parametrize(
    ("method", "route"),
    [
        ("GET", "/wiki/api/v2/spaces/{id}/permissions"),
        ("POST", "/wiki/api/v2/space-permissions"),
        ("GET", "/wiki/api/v2/space-roles/{id}"),
        ("POST", "/wiki/api/v2/spaces/{id}/role-assignments"),
        ("PUT", "/wiki/api/v2/pages/{id}/classification-level"),
        ("POST", "/wiki/api/v2/pages/{id}/redact"),
        ("GET", "/wiki/api/v2/admin-key"),
        ("POST", "/wiki/api/v2/user/access/invite-by-email"),
        ("GET", "/wiki/rest/api/user/email"),
        ("POST", "/wiki/rest/api/group/{groupName}/member"),
        ("PUT", "/wiki/rest/api/content/{id}/restriction"),
        ("POST", "/wiki/rest/api/space/{spaceKey}/permission"),
        ("GET", "/wiki/rest/api/audit"),
        ("PUT", "/wiki/rest/api/settings/lookandfeel/custom"),
    ],
)
def test_admin_routes_are_refused(method: str, route: str) -> None:
    problem = admin_route_problem(method, route)
    assert problem is not None
    assert problem.startswith(f"{method} {route} is an admin or permission-management route")


@pytest.mark.parametrize(
    "route",
    [
        "/wiki/api/v2/pages/{id}",
        "/wiki/api/v2/spaces/{id}",
        "/wiki/rest/api/user/current",
        "/wiki/api/v2/pages/{id}/operations",
    ],
)
def test_content_routes_are_not_admin(route: str) -> None:
    assert admin_route_problem("GET", route) is None


def test_check_action_reports_an_admin_route(v2: dict[str, Any]) -> None:
    route = "/wiki/api/v2/spaces/{id}/permissions"
    with pytest.raises(ValidationError, match="admin or permission-management"):
        action(route=route, scopes=["read:space.permission:confluence"])  # the model refuses it
    # an Action built without validation is still reported by check_action
    admin = action().model_copy(update={"route": route})
    assert any("admin or permission-management" in p for p in check_action(admin, v2, None))


@pytest.mark.parametrize(
    ("schema", "why"),
    [
        ({"type": "string", "pattern": "^.+$"}, "'.' matches any character, including '/'"),
        ({"type": "string", "pattern": "[0-9]+"}, "it is not anchored with ^"),
        ({"type": "string", "pattern": "^[^/]+$"}, "a negated class [^...] can match '/'"),
        ({"type": "string", "pattern": "^[a-z]+|x$"}, "a top-level '|' escapes the ^...$"),
        ({"type": "string", "pattern": "^[a-z\\/]+$"}, "allows '/'"),
        ({"type": "string", "pattern": "^[a-z%0-9]+$"}, "allows '%'"),
        ({"type": "string", "pattern": "^[A-Za-z0-9._-]+$"}, "allows the dot segment '.'"),
        ({"type": "string", "enum": ["a", "b/c"]}, "enum value 'b/c' is not a single path"),
    ],
)
def test_path_capable_variables(schema: dict[str, Any], why: str) -> None:
    a = action(parameters=path_id(schema))
    problems = path_variable_problems(a)
    assert len(problems) == 1
    assert problems[0].startswith("path parameter 'id' can take a path: ")
    assert why in problems[0]


@pytest.mark.parametrize(
    "schema",
    [
        ID,
        {"type": "integer", "minimum": 1},
        {"type": "string", "pattern": "^(att)?[0-9]{1,19}$"},
        {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,99}$"},
        {"type": "string", "enum": ["current", "draft"]},
    ],
)
def test_bounded_variables_pass(schema: dict[str, Any]) -> None:
    a = action(parameters=path_id(schema))
    assert path_variable_problems(a) == []


def test_missing_document_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONFLUENCE_OPENAPI_DIR", str(tmp_path))
    with pytest.raises(SpecUnavailable) as info:
        load_openapi("v2")
    assert str(tmp_path) in str(info.value)
    assert "CONFLUENCE_OPENAPI_DIR" in str(info.value)
