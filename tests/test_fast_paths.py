"""The summary's plain field paths and the request builder's simple routes take faster
routes than JMESPath and uritemplate (for the benchmark's per-call overhead); they must
give exactly what those libraries give."""

from __future__ import annotations

import itertools
import json
from typing import Any

import jmespath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from uritemplate import URITemplate

from harbor_confluence.pipeline.request import (
    _SimpleTemplate,
    _template,
    canonical_json,
    json_line,
)
from harbor_confluence.pipeline.summary import _compile, _FieldPath

DOCS: list[Any] = [
    {"id": "1", "version": {"number": 3, "authorId": "u"}, "_links": {"webui": "/x"}},
    {"version": None, "_links": [], "id": 0, "title": ""},
    {"version": {"number": {"deep": False}}, "labels": {"results": [{"name": "a"}]}},
    {"null": 1, "true": 2, "a": {"b": {"c": 0.0}}},
    [1, 2],
    "text",
    None,
    {},
]
PATHS = ["id", "title", "version.number", "version.authorId", "_links.webui", "null", "true",
         "a.b.c", "a.b", "missing.deeper"]  # fmt: skip


@pytest.mark.parametrize("expression", PATHS)
def test_plain_field_paths_match_jmespath(expression: str) -> None:
    compiled = _compile(expression)
    assert isinstance(compiled, _FieldPath)
    for doc in DOCS:
        assert compiled.search(doc) == jmespath.search(expression, doc)


@pytest.mark.parametrize(
    "expression",
    ["labels.results[].name", "body.storage.value || body.view.value", "results", "`1`",
     '"quoted"', "a[0]", "a.*"],
)  # fmt: skip
def test_other_expressions_stay_jmespath(expression: str) -> None:
    compiled = _compile(expression)
    if isinstance(compiled, _FieldPath):  # plain identifiers only, e.g. "results"
        assert "." in expression or expression.isidentifier()
    for doc in DOCS:
        assert compiled.search(doc) == jmespath.search(expression, doc)


ROUTES = [
    "/wiki/api/v2/pages/{id}",
    "/wiki/api/v2/pages/{page_id}/properties/{property_id}",
    "/wiki/rest/api/content/{id}/label/{label}",
    "/wiki/api/v2/pages",
]
VALUES = ["98305", "a b", "x/y", "ü", "日本", "~._-", "%41", "a+b", "@:!$&'()*+,;=", "", "..",
          "\x00\n", "?#[]"]  # fmt: skip


@pytest.mark.parametrize("route", ROUTES)
def test_simple_routes_expand_like_uritemplate(route: str) -> None:
    fast = _template(route)
    assert isinstance(fast, _SimpleTemplate)
    reference = URITemplate(route)
    names = sorted(reference.variable_names)
    for combo in itertools.product(VALUES, repeat=len(names)):
        values = dict(zip(names, combo, strict=True))
        assert fast.expand(dict(values)) == str(reference.expand(dict(values)))
    assert fast.expand({}) == str(reference.expand({}))


@pytest.mark.parametrize("route", ["/a/{+path}", "/a/{x,y}", "/a/{x*}", "/a/{?q}", "/a/{x:3}"])
def test_other_templates_stay_with_uritemplate(route: str) -> None:
    assert isinstance(_template(route), URITemplate)


# -- canonical JSON: orjson where its bytes are json's, json otherwise -------------------------

_JSON_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_JSON_LINE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)  # past 64 bits: json's form
    | st.floats(allow_nan=False, allow_infinity=False)  # json's form, exponents included
    | st.text()
)
_values = st.recursive(
    _leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(_values)
def test_canonical_json_is_the_json_modules_form(value: Any) -> None:
    assert canonical_json(value) == _JSON_CANONICAL.encode(value).encode()
    assert json_line(value) == _JSON_LINE.encode(value).encode()


@pytest.mark.parametrize(
    "value",
    [{"a": 1e16, "b": [1e-7]}, {"n": 2**64}, {"t": (1, "x")}, {"s": "\u2028\x00\x7f\U0001f600"}],
)
def test_canonical_json_where_orjson_would_differ_or_refuse(value: Any) -> None:
    assert canonical_json(value) == _JSON_CANONICAL.encode(value).encode()
