"""search-content: typed inputs become CQL; whatever an agent types stays inside literals."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import pytest

from harbor_confluence.errors import InputError
from harbor_confluence.pipeline.cql import CqlInputError, build_cql, literal
from harbor_confluence.pipeline.executor import Port, default_manifest_path
from harbor_confluence.pipeline.manifest import Manifest, load_manifest
from harbor_confluence.pipeline.request import RequestBuilder, Target
from harbor_confluence.pipeline.transforms import compose
from harbor_confluence.pipeline.validation import InputValidator
from harbor_confluence.sim import Simulator

TARGET = Target.parse("https://acme.atlassian.net/")


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    return load_manifest(default_manifest_path())


def sent_cql(manifest: Manifest, query: dict[str, Any]) -> str:
    """The exact ``cql`` the runner would put on the wire for this input."""
    action = manifest.action("search-content")
    clean = InputValidator(action).validate({"query": query})
    request = compose(action, clean, None).request
    url = RequestBuilder(action).build(TARGET, request).url
    assert url.startswith("https://acme.atlassian.net/wiki/rest/api/search?")
    values = parse_qs(url.partition("?")[2], keep_blank_values=True)["cql"]
    assert len(values) == 1
    return values[0]


# -- the literal ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", '"plain"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ('\\"', '"\\\\\\""'),  # a backslash then a quote: both escaped, in that order
        ("", '""'),
    ],
)
def test_literal_escapes_backslash_then_quote(value: str, expected: str) -> None:
    assert literal("f", value) == expected


def _unescape(lit: str) -> str:
    """Read a CQL literal back the way a CQL parser does."""
    assert lit.startswith('"') and lit.endswith('"')
    out, i, body = [], 0, lit[1:-1]
    while i < len(body):
        if body[i] == "\\":
            out.append(body[i + 1])
            i += 2
        else:
            assert body[i] != '"', f"unescaped quote ends the literal early in {lit!r}"
            out.append(body[i])
            i += 1
    return "".join(out)


@pytest.mark.parametrize(
    "value",
    ['a"b', 'a\\"b', "\\", '\\\\"', '" OR "1"="1', 'x") OR (type = "page', '"""'],
)
def test_literal_round_trips(value: str) -> None:
    assert _unescape(literal("f", value)) == value


@pytest.mark.parametrize(
    "bad", ["\x00", "a\nb", "tab\there", "\x1b[31m", "\x7f", "\u202e", "\u2028", "\ud800"]
)
def test_control_and_bidi_characters_are_refused(bad: str) -> None:
    with pytest.raises(CqlInputError) as info:
        literal("query.text", bad)
    assert info.value.violation.field == "query.text"
    assert info.value.violation.rule == "pattern"


# -- the whole query -----------------------------------------------------------------------


def test_all_criteria_in_fixed_order(manifest: Manifest) -> None:
    cql = sent_cql(
        manifest,
        {
            "modified_to": "2024-12-31",
            "text": "failover",
            "type": "page",
            "spaces": ["ENG", "OPS"],
            "labels": ["runbook", "db"],
            "contributor": "557058:abc-123",
            "ancestor": "98305",
            "created_from": "2024-01-01",
            "created_to": "2024-06-30",
            "modified_from": "2024-02-01",
            "title": "Postgres",
        },
    )
    assert cql == (
        'type = "page" AND space in ("ENG","OPS") AND text ~ "failover" AND '
        'title ~ "Postgres" AND label = "runbook" AND label = "db" AND '
        'contributor = "557058:abc-123" AND ancestor = 98305 AND '
        'created >= "2024-01-01" AND created <= "2024-06-30" AND '
        'lastmodified >= "2024-02-01" AND lastmodified <= "2024-12-31"'
    )


def test_single_space_uses_equals(manifest: Manifest) -> None:
    assert sent_cql(manifest, {"spaces": ["ENG"]}) == 'space = "ENG"'


def test_limit_and_cursor_pass_through(manifest: Manifest) -> None:
    action = manifest.action("search-content")
    clean = InputValidator(action).validate({"query": {"text": "x", "limit": 5, "cursor": "abc"}})
    url = RequestBuilder(action).build(TARGET, compose(action, clean, None).request).url
    assert url.endswith("?cql=text%20~%20%22x%22&cursor=abc&limit=5")


INJECTIONS = [
    # (text the agent sends, the CQL that must be sent)
    ('" OR space = "SECRET', 'text ~ "\\" OR space = \\"SECRET"'),
    ('x") OR (title ~ "y', 'text ~ "x\\") OR (title ~ \\"y"'),
    ('x" ORDER BY created DESC', 'text ~ "x\\" ORDER BY created DESC"'),
    ("x\\", 'text ~ "x\\\\"'),  # a trailing backslash cannot escape the closing quote
    ('x\\" OR type = "page', 'text ~ "x\\\\\\" OR type = \\"page"'),
    ("a OR b AND NOT c", 'text ~ "a OR b AND NOT c"'),
    ("(a) OR (b)", 'text ~ "(a) OR (b)"'),
    ("\uff02 OR space = \uff02X", 'text ~ "\uff02 OR space = \uff02X"'),  # fullwidth quotes
    ("\u201csmart\u201d OR \u2018x\u2019", 'text ~ "\u201csmart\u201d OR \u2018x\u2019"'),
    ("'single' OR 'x'", "text ~ \"'single' OR 'x'\""),
]


@pytest.mark.parametrize(("text", "expected"), INJECTIONS)
def test_injection_attempts_stay_inside_the_literal(
    manifest: Manifest, text: str, expected: str
) -> None:
    cql = sent_cql(manifest, {"text": text})
    assert cql == expected
    # exactly one clause: the operator and the literal, nothing after the closing quote
    assert cql.startswith('text ~ "') and cql.endswith('"')
    assert _unescape(cql[len("text ~ ") :]) == text


def test_injection_in_every_string_criterion(manifest: Manifest) -> None:
    evil = 'a" OR label = "b'
    cql = sent_cql(manifest, {"title": evil, "text": evil})
    assert cql == 'text ~ "a\\" OR label = \\"b" AND title ~ "a\\" OR label = \\"b"'


@pytest.mark.parametrize(
    ("query", "field", "rule"),
    [
        ({"spaces": ['ENG" OR space = "X']}, "query.spaces.0", "pattern"),
        ({"labels": ['x" OR "1']}, "query.labels.0", "pattern"),
        ({"contributor": 'a" OR "b'}, "query.contributor", "pattern"),
        ({"ancestor": "1 OR 1=1"}, "query.ancestor", "pattern"),
        ({"type": "page OR space"}, "query.type", "enum"),
        ({"created_from": "2024-01-01T00:00:00Z"}, "query.created_from", "format"),
        ({"created_from": '2024-01-01" OR "'}, "query.created_from", "format"),
        ({"modified_to": "31/12/2024"}, "query.modified_to", "format"),
        ({"text": "line\nbreak"}, "query.text", "pattern"),
        ({"text": "nul\x00"}, "query.text", "pattern"),
        ({"cql": 'type = "page"'}, "query.cql", "additionalProperties"),
        ({"text": "x" * 501}, "query.text", "maxLength"),
        ({"limit": 101, "text": "x"}, "query.limit", "maximum"),
    ],
)
def test_bad_search_inputs_name_field_and_rule(
    manifest: Manifest, query: dict[str, Any], field: str, rule: str
) -> None:
    with pytest.raises(InputError) as info:
        InputValidator(manifest.action("search-content")).validate({"query": query})
    assert (field, rule) in [(v.field, v.rule) for v in info.value.violations]


def test_no_criterion_is_refused(manifest: Manifest) -> None:
    action = manifest.action("search-content")
    clean = InputValidator(action).validate({"query": {"limit": 10}})
    with pytest.raises(InputError) as info:
        compose(action, clean, None)
    assert info.value.violations[0].field == "query"
    assert "at least one of" in info.value.violations[0].message


def test_build_cql_refuses_unknown_keys_and_wrong_types() -> None:
    with pytest.raises(CqlInputError, match="unknown key"):
        build_cql({"orderBy": "created"})
    with pytest.raises(CqlInputError, match="must be strings"):
        build_cql({"spaces": "ENG"})
    with pytest.raises(CqlInputError, match="must be a string"):
        build_cql({"text": ["a"]})
    with pytest.raises(CqlInputError, match="numeric id"):
        build_cql({"ancestor": "12a"})


# -- on the wire ---------------------------------------------------------------------------


def test_injection_reaches_the_simulator_as_one_literal(port: Port, sim: Simulator) -> None:
    evil = 'x" OR space = "SECRET" ORDER BY created'
    result = port.call("search-content", {"query": {"text": evil, "spaces": ["ENG"]}})
    assert result.ok, result.error
    (exchange,) = [e for e in sim.exchanges if e.path == "/wiki/rest/api/search"]
    cql = parse_qs(exchange.query)["cql"][0]
    assert cql == 'space = "ENG" AND text ~ "x\\" OR space = \\"SECRET\\" ORDER BY created"'
    assert result.count == 0  # nothing matches that text; the OR was not obeyed


def test_search_finds_by_label_and_space(port: Port) -> None:
    result = port.call(
        "search-content", {"query": {"spaces": ["ENG"], "labels": ["runbook"], "type": "page"}}
    )
    assert result.ok and result.count
    assert all(item["type"] == "page" for item in result.summary)
    assert all(item["space"] == "Engineering" for item in result.summary)


def test_nothing_is_sent_for_bad_search_input(port: Port, sim: Simulator) -> None:
    with pytest.raises(InputError):
        port.call("search-content", {"query": {"text": "a\u202eb"}})
    with pytest.raises(InputError):
        port.call("search-content", {"query": {}})
    assert sim.request_count == 0
