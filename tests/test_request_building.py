"""Validation and request building without the network: what an input turns into."""

from __future__ import annotations

from typing import Any

import pytest

from harbor_confluence.errors import ConfigError, InputError
from harbor_confluence.executor import default_manifest_path
from harbor_confluence.manifest import Manifest, load_manifest
from harbor_confluence.request import RequestBuilder, Target
from harbor_confluence.validation import InputValidator


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    return load_manifest(default_manifest_path())


def build(
    manifest: Manifest, name: str, data: Any, base: str = "https://acme.atlassian.net/"
) -> str:
    action = manifest.action(name)
    clean = InputValidator(action).validate(data)
    return RequestBuilder(action).build(Target.parse(base), clean).url


def violations(manifest: Manifest, name: str, data: Any) -> list[tuple[str, str]]:
    with pytest.raises(InputError) as info:
        InputValidator(manifest.action(name)).validate(data)
    return [(v.field, v.rule) for v in info.value.violations]


def test_query_is_encoded_sorted_and_arrays_repeat(manifest: Manifest) -> None:
    url = build(
        manifest,
        "search-pages",
        {"query": {"title": "Harbor & co?", "space-id": ["1", "2"], "limit": 5}},
    )
    assert url == (
        "https://acme.atlassian.net/wiki/api/v2/pages"
        "?limit=5&space-id=1&space-id=2&title=Harbor%20%26%20co%3F"
    )


def test_booleans_are_lowercase(manifest: Manifest) -> None:
    url = build(manifest, "get-page", {"path": {"id": "42"}, "query": {"include-labels": True}})
    assert url.endswith("/wiki/api/v2/pages/42?include-labels=true")


def test_gateway_prefix_is_kept(manifest: Manifest) -> None:
    base = "https://api.atlassian.com/ex/confluence/0a1b2c3d-aaaa-bbbb-cccc-123456789abc"
    url = build(manifest, "get-page", {"path": {"id": "7"}}, base)
    assert url == base + "/wiki/api/v2/pages/7"


@pytest.mark.parametrize(
    ("data", "field", "rule"),
    [
        ({"path": {"id": ".."}}, "path.id", "pattern"),
        ({"path": {"id": "."}}, "path.id", "pattern"),
        ({"path": {"id": "../../admin"}}, "path.id", "pattern"),
        ({"path": {"id": "1/2"}}, "path.id", "pattern"),
        ({"path": {"id": "%2e%2e"}}, "path.id", "pattern"),
        ({"path": {"id": "12?x=1"}}, "path.id", "pattern"),
        ({"path": {"id": "12\r\nX-Evil: 1"}}, "path.id", "pattern"),
        ({"path": {"id": "12\n"}}, "path.id", "pattern"),
        ({"path": {}}, "path.id", "required"),
        ({"path": {"id": 12}}, "path.id", "type"),
        ({"path": {"id": "1"}, "query": {"expand": "x"}}, "query.expand", "additionalProperties"),
        ({"path": {"id": "1"}, "headers": {}}, "input.headers", "additionalProperties"),
        ({"path": {"id": "1"}, "body": {"x": 1}}, "body", "additionalProperties"),
        ({"path": {"id": "1"}, "query": {"body-format": "html"}}, "query.body-format", "enum"),
    ],
)
def test_get_page_bad_inputs(manifest: Manifest, data: Any, field: str, rule: str) -> None:
    assert (field, rule) in violations(manifest, "get-page", data)


def test_trailing_newline_does_not_slip_past_the_pattern(manifest: Manifest) -> None:
    # Python's re treats "$" as matching before a final newline; the runner must not.
    found = violations(manifest, "get-page", {"path": {"id": "12\n"}})
    assert ("path.id", "pattern") in found


@pytest.mark.parametrize(
    ("value", "rule"), [(0, "minimum"), (-1, "minimum"), (251, "maximum"), ("abc", "type")]
)
def test_limit_bounds(manifest: Manifest, value: Any, rule: str) -> None:
    assert ("query.limit", rule) in violations(
        manifest, "search-pages", {"query": {"limit": value}}
    )


def test_huge_title_is_named_without_echo(manifest: Manifest) -> None:
    title = "x" * (10 * 1024 * 1024)
    with pytest.raises(InputError) as info:
        InputValidator(manifest.action("create-page")).validate(
            {"body": {"spaceId": "1", "title": title}}
        )
    (v,) = info.value.violations
    assert (v.field, v.rule) == ("body.title", "maxLength")
    assert len(str(info.value)) < 500


def test_wrong_body_types_name_each_field(manifest: Manifest) -> None:
    found = violations(
        manifest,
        "create-page",
        {"body": {"spaceId": 5, "title": ["t"], "body": {"representation": "html", "value": 1}}},
    )
    assert ("body.spaceId", "type") in found
    assert ("body.title", "type") in found
    assert ("body.body.representation", "enum") in found
    assert ("body.body.value", "type") in found


def test_unknown_nested_body_key(manifest: Manifest) -> None:
    found = violations(
        manifest,
        "create-page",
        {"body": {"spaceId": "1", "title": "t", "body": {"representation": "storage",
                                                          "value": "", "extra": 1}}},
    )  # fmt: skip
    assert ("body.body.extra", "additionalProperties") in found


@pytest.mark.parametrize(
    ("base", "message"),
    [
        ("https://your-domain.atlassian.net/", "placeholder"),
        ("http://acme.atlassian.net", "only allowed for a loopback host"),
        ("ftp://acme.atlassian.net", "http(s) origin"),
        ("https://user:pw@acme.atlassian.net", "user info"),
        ("https://acme.atlassian.net/?x=1", "query"),
    ],
)
def test_bad_base_urls(base: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Target.parse(base)


def test_loopback_http_is_allowed_for_the_simulator() -> None:
    for base in ("http://127.0.0.1:8089", "http://localhost:1", "http://[::1]:9"):
        assert Target.parse(base).origin.startswith("http://")


def test_fingerprint_binds_method_url_and_body(manifest: Manifest) -> None:
    action = manifest.action("create-page")
    builder = RequestBuilder(action)
    target = Target.parse("https://acme.atlassian.net")
    a = builder.build(target, {"query": {}, "body": {"spaceId": "1", "title": "a"}})
    b = builder.build(target, {"query": {}, "body": {"title": "a", "spaceId": "1"}})
    c = builder.build(target, {"query": {}, "body": {"spaceId": "1", "title": "b"}})
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert a.body == b'{"spaceId":"1","title":"a"}'
