"""Validation and request building without the network: what an input turns into."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harbor_confluence.errors import ConfigError, InputError
from harbor_confluence.pipeline.executor import default_manifest_path
from harbor_confluence.pipeline.manifest import Manifest, load_manifest
from harbor_confluence.pipeline.request import RequestBuilder, Target, _encode_query, canonical_json
from harbor_confluence.pipeline.validation import InputValidator


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


# Fingerprints of requests built before route compilation: tickets already in a queue are
# sealed with them, so building the same request must give the same bytes and digest.
@pytest.mark.parametrize(
    ("name", "data", "url", "fingerprint"),
    [
        (
            "get-page",
            {"path": {"id": "98305"}, "query": {"body-format": "storage"}},
            "https://acme.atlassian.net/wiki/api/v2/pages/98305?body-format=storage",
            "39d6aebea10797be776319647c920ab72daf7cd50b2e771336ff576a08ea916b",
        ),
        (
            "create-page",
            {"body": {"spaceId": "1", "title": "Ünïcode & co",
                      "body": {"representation": "storage", "value": "<p>x</p>"}}},
            "https://acme.atlassian.net/wiki/api/v2/pages",
            "71fdac2ee38fd939755c48a31a79d48a1d0d6e9a85c7c5bb0f37fa2bb876cda6",
        ),
        (
            "remove-label",
            {"path": {"id": "7", "label": "a-b"}},
            "https://acme.atlassian.net/wiki/rest/api/content/7/label/a-b",
            "fdb0e7e2911c0167affdbd3a2c2e1788735b81503cd604cc97c5faeefe38b241",
        ),
    ],
)  # fmt: skip
def test_fingerprints_are_stable(
    manifest: Manifest, name: str, data: Any, url: str, fingerprint: str
) -> None:
    action = manifest.action(name)
    clean = InputValidator(action).validate(data)
    prepared = RequestBuilder(action).build(Target.parse("https://acme.atlassian.net"), clean)
    assert (prepared.url, prepared.fingerprint) == (url, fingerprint)


def test_multipart_requests_keep_their_headers_and_fingerprint(manifest: Manifest) -> None:
    action = manifest.action("upload-attachment")
    builder = RequestBuilder(action)
    target = Target.parse("https://acme.atlassian.net")
    data = {"path": {"id": "7"}, "body": {"file": {"filename": "a.txt", "contentBase64": "aGk="},
                                          "comment": "x"}}  # fmt: skip
    first = builder.build(target, InputValidator(action).validate(data))
    assert first.url == "https://acme.atlassian.net/wiki/rest/api/content/7/child/attachment"
    assert first.fingerprint == "a496a3d766a59512117bd8f805f4fc1a1154835665155082738b738132b501b7"
    assert first.headers == {"X-Atlassian-Token": "no-check"}
    first.headers["X-Other"] = "1"  # each request has its own headers dict
    second = builder.build(target, InputValidator(action).validate(data))
    assert second.headers == {"X-Atlassian-Token": "no-check"}


def test_values_that_leave_their_segment_are_refused(manifest: Manifest) -> None:
    builder = RequestBuilder(manifest.action("get-page"))
    target = Target.parse("https://acme.atlassian.net")
    for bad in ("", ".", ".."):
        with pytest.raises(InputError) as info:
            builder.build(target, {"path": {"id": bad}, "query": {}})
        assert [(v.field, v.rule) for v in info.value.violations] == [("path", "route")]
    built = builder.build(target, {"path": {"id": "a/../b"}, "query": {}})
    assert built.url == "https://acme.atlassian.net/wiki/api/v2/pages/a%2F..%2Fb"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(value=JSON)
def test_canonical_json_is_the_sorted_compact_dump(value: Any) -> None:
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(value) == expected.encode()


QUERY_VALUE = st.text() | st.integers() | st.booleans()


@settings(max_examples=200, deadline=None)
@given(query=st.dictionaries(st.text(), QUERY_VALUE | st.lists(QUERY_VALUE, max_size=3)))
def test_query_encoding_quotes_every_name_and_value(query: dict[str, Any]) -> None:
    def scalar(v: Any) -> str:
        return ("true" if v else "false") if isinstance(v, bool) else str(v)

    expected = "&".join(
        f"{quote(k, safe='-_.~')}={quote(scalar(v), safe='-_.~')}"
        for k in sorted(query)
        for v in (query[k] if isinstance(query[k], list) else [query[k]])
    )
    assert _encode_query(query) == expected
    assert _encode_query(query, {k: quote(k, safe="") for k in query}) == expected
