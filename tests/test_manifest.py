"""The manifest loader: what it accepts, and each thing it must refuse."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from harbor_confluence.errors import ManifestError
from harbor_confluence.pipeline.executor import default_manifest_path
from harbor_confluence.pipeline.manifest import (
    load_manifest,
    manifest_from_data,
    manifest_json_schema,
)

SCHEMA_FILE = Path(__file__).parents[1] / "harbor_confluence" / "schemas" / "manifest.schema.json"


@pytest.fixture
def raw() -> dict[str, Any]:
    return yaml.safe_load(default_manifest_path().read_text())


def _action(raw: dict[str, Any], name: str) -> dict[str, Any]:
    return next(a for a in raw["actions"] if a["name"] == name)


def refused(data: Any) -> str:
    with pytest.raises(ManifestError) as info:
        manifest_from_data(data, "test.yaml")
    return str(info.value)


def test_packaged_manifest_has_the_three_starter_actions() -> None:
    m = load_manifest(default_manifest_path())
    assert [a.name for a in m.actions][:3] == ["search-pages", "get-page", "create-page"]
    assert m.port.base_url == "https://your-domain.atlassian.net/"
    assert m.port.auth.mode == "header_token"
    search = m.action("search-pages")
    limit = search.parameters.query["properties"]["limit"]  # type: ignore[index]
    assert (limit["minimum"], limit["maximum"]) == (1, 250)
    assert m.action("create-page").default_policy == "require_approval"


def test_shipped_schema_matches_the_model() -> None:
    shipped = json.loads(SCHEMA_FILE.read_text())
    assert shipped == json.loads(json.dumps(manifest_json_schema())), (
        "regenerate harbor_confluence/schemas/manifest.schema.json"
    )


def test_packaged_manifest_validates_against_the_shipped_schema(raw: dict[str, Any]) -> None:
    import jsonschema

    jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text())).validate(raw)


def test_unknown_key_names_file_action_and_field(raw: dict[str, Any]) -> None:
    _action(raw, "get-page")["colour"] = "blue"
    msg = refused(raw)
    assert "test.yaml" in msg
    assert "action 'get-page'" in msg
    assert "field colour: unknown key" in msg


def test_duplicate_action_names(raw: dict[str, Any]) -> None:
    raw["actions"].append(copy.deepcopy(raw["actions"][0]))
    assert "duplicate action name 'search-pages'" in refused(raw)


def test_route_variable_must_be_declared(raw: dict[str, Any]) -> None:
    _action(raw, "get-page")["route"] = "/wiki/api/v2/pages/{id}/children/{child}"
    assert "['child'] are not declared as path parameters" in refused(raw)


def test_path_parameter_must_be_in_route(raw: dict[str, Any]) -> None:
    _action(raw, "get-page")["route"] = "/wiki/api/v2/pages"
    assert "path parameters ['id'] do not appear in the route" in refused(raw)


@pytest.mark.parametrize(
    ("route", "expect"),
    [
        ("/rest/api/pages/{id}", "under /wiki/"),
        ("https://evil.example/wiki/api/v2/pages/{id}", "absolute URLs are refused"),
        ("//evil.example/wiki/{id}", "absolute URLs are refused"),
        ("/wiki/api/v2/pages/{+id}", "only simple {var} expansion"),
        ("/wiki/api/v2/pages/{#id}", "only simple {var} expansion"),
        ("/wiki/api/v2/pages/{/id}", "only simple {var} expansion"),
        ("/wiki/api/v2/pages/{id*}", "only simple {var} expansion"),
        ("/wiki/api/v2/../admin/{id}", "'.' or '..' segments"),
        ("/wiki/api/v2/pages/p{id}", "whole path segment"),
        ("/wiki/api/v2/pages/{id}?expand=x", "may not contain a query"),
    ],
)
def test_unbounded_routes_are_refused(raw: dict[str, Any], route: str, expect: str) -> None:
    _action(raw, "get-page")["route"] = route
    assert expect in refused(raw)


def test_credential_key_with_value_is_refused(raw: dict[str, Any]) -> None:
    raw["port"]["auth"]["token"] = "s3cr3t-value"
    msg = refused(raw)
    assert "credential refused at port.auth.token" in msg
    assert "s3cr3t-value" not in msg


@pytest.mark.parametrize(
    "value",
    [
        "Bearer abcdefghijklmnop1234",
        "Basic dXNlckBleGFtcGxlLmNvbTp0b2tlbg==",
        "ATATT3xFfGF0abcdefghijklmnopqrstuvwxyz",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl",
    ],
)
def test_credential_looking_value_is_refused(raw: dict[str, Any], value: str) -> None:
    _action(raw, "get-page")["description"] = value
    msg = refused(raw)
    assert "value looks like a credential" in msg
    assert value not in msg


def test_alias_bomb_is_refused(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 9)}]")
    f = tmp_path / "bomb.yaml"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError) as info:
        load_manifest(f)
    assert "alias bomb" in str(info.value)


def test_self_referencing_yaml_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "loop.yaml"
    f.write_text("a: &a [*a]\n")
    with pytest.raises(ManifestError, match="alias bomb"):
        load_manifest(f)


def test_python_tags_are_not_constructed(tmp_path: Path) -> None:
    f = tmp_path / "tag.yaml"
    f.write_text("x: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ManifestError, match="not valid YAML"):
        load_manifest(f)


def test_malformed_json_names_the_file(tmp_path: Path) -> None:
    f = tmp_path / "m.json"
    f.write_text('{"manifestVersion": ')
    with pytest.raises(ManifestError) as info:
        load_manifest(f)
    assert str(f) in str(info.value) and "not valid JSON" in str(info.value)


def test_json_manifest_loads(tmp_path: Path, raw: dict[str, Any]) -> None:
    f = tmp_path / "m.json"
    f.write_text(json.dumps(raw))
    assert load_manifest(f).action("get-page").route == "/wiki/api/v2/pages/{id}"


def test_open_parameter_schema_is_refused(raw: dict[str, Any]) -> None:
    _action(raw, "search-pages")["parameters"]["query"]["additionalProperties"] = True
    assert "additionalProperties must be false" in refused(raw)


def test_unbounded_string_path_parameter_is_refused(raw: dict[str, Any]) -> None:
    del _action(raw, "get-page")["parameters"]["path"]["properties"]["id"]["pattern"]
    assert "needs a pattern or enum" in refused(raw)


def test_bad_semver_and_bad_jmespath(raw: dict[str, Any]) -> None:
    raw["manifestVersion"] = "1.0"
    assert "field manifestVersion" in refused(raw)
    raw["manifestVersion"] = "1.0.1"
    _action(raw, "get-page")["summary"]["fields"]["id"] = "id[["
    assert "invalid JMESPath" in refused(raw)


def test_nested_body_objects_are_closed() -> None:
    m = load_manifest(default_manifest_path())
    body = m.action("create-page").parameters.body
    assert body is not None
    assert body["additionalProperties"] is False
    assert body["properties"]["body"]["additionalProperties"] is False


@pytest.mark.parametrize(
    ("route", "rule"),
    [
        ("/wiki/rest/api/space/{id}/permission", "permission management"),
        ("/wiki/api/v2/spaces/{id}/permissions", "permission management"),
        ("/wiki/rest/api/space/{id}/permission/custom-content", "permission management"),
        ("/wiki/api/v2/pages/{id}/classification-level", "classification levels"),
        ("/wiki/rest/api/content/{id}/restriction", "content restrictions"),
    ],
)
def test_admin_and_permission_routes_are_refused_by_the_loader(
    raw: dict[str, Any], tmp_path: Path, route: str, rule: str
) -> None:
    _action(raw, "get-page")["route"] = route
    f = tmp_path / "m.yaml"
    f.write_text(yaml.safe_dump(raw))
    with pytest.raises(ManifestError) as info:
        load_manifest(f)
    assert info.value.source == str(f)
    (problem,) = info.value.problems
    assert problem.startswith("action 'get-page' (actions[1]) field route: GET " + route)
    assert f"is an admin or permission-management route ({rule})" in problem


@pytest.mark.parametrize("who", ["accountId", "key", "username"])
def test_a_watch_action_cannot_name_another_user(raw: dict[str, Any], who: str) -> None:
    watch = _action(raw, "get-page-watch")
    assert "query" not in watch["parameters"]  # the packaged one acts for the caller
    watch["parameters"]["query"] = {
        "type": "object", "properties": {who: {"type": "string", "pattern": "^[a-z]{1,9}$"}},
    }  # fmt: skip
    problem = refused(raw)
    assert "acts for the caller only" in problem and who in problem
