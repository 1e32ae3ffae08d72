"""Fast summaries: orjson parses, compiled projections, and the immutable Result.

The fast paths must give exactly what the standard library and JMESPath's interpreter
give: the same summary (types included: an integer stays an integer), the same verdict
on answers that are not JSON, the same error message.  Values are compared through
``_canonical`` (JSON text with key order kept), so ``1`` and ``1.0`` differ.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
from typing import Any

import httpx
import jmespath
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from harbor_confluence.editing.truncation import cut
from harbor_confluence.paths import default_manifest_path
from harbor_confluence.pipeline import bodyview
from harbor_confluence.pipeline import summary as summary_mod
from harbor_confluence.pipeline.executor import Port
from harbor_confluence.pipeline.manifest import Action, SummarySpec, load_manifest
from harbor_confluence.pipeline.summary import (
    Result,
    Summarizer,
    _compile,
    json_answer,
    parse_answer,
)
from harbor_confluence.sim import Simulator
from tests.conftest import API_TOKEN, EMAIL

MANIFEST = load_manifest(default_manifest_path())
ACTIONS = MANIFEST.by_name
JSON = "application/json;charset=UTF-8"


def _canonical(value: Any) -> str:
    """Type-exact text of a value: ``1`` and ``1.0`` differ, key order counts, NaN shows."""
    return json.dumps(value, ensure_ascii=False, allow_nan=True)


def _response(content: bytes, content_type: str | None = JSON, status: int = 200) -> httpx.Response:
    headers = {"Content-Type": content_type} if content_type is not None else {}
    request = httpx.Request("GET", "https://tenant.atlassian.net/wiki/api/v2/pages/1")
    return httpx.Response(status, headers=headers, content=content, request=request)


def _with_summary(name: str, fields: dict[str, str], items: str | None = None) -> Action:
    """A packaged action with another summary spec (validated as a manifest's would be)."""
    spec = SummarySpec(fields=fields, items=items)
    return ACTIONS[name].model_copy(update={"summary": spec})


def _expected(summarizer: Summarizer, response: httpx.Response) -> dict[str, Any]:
    """What a success answer summarises to with the standard library's parse."""
    try:
        data = json.loads(response.content)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        why = exc.msg if isinstance(exc, json.JSONDecodeError) else "not valid UTF-8"
        return {
            "ok": False,
            "error": {
                "type": "upstream",
                "message": f"Confluence answered 200 with application/json "
                f"that does not parse: {why}",
                "content_type": "application/json",
            },
        }
    summary, count = summarizer.project(data)
    out: dict[str, Any] = {"ok": True, "summary": summary}
    if count is not None:
        out["count"] = count
    return out


def _outcome(result: Result) -> dict[str, Any]:
    out: dict[str, Any] = {"ok": result.ok}
    for key in ("summary", "count", "error"):
        if getattr(result, key) is not None:
            out[key] = getattr(result, key)
    return out


# -- the simulator's real answers ------------------------------------------------------------

CALLS: list[tuple[str, dict[str, Any]]] = [
    ("get-page", {"path": {"id": "98305"}, "query": {"body-format": "storage"}}),
    ("get-page", {"path": {"id": "98305"}}),
    ("get-page", {"path": {"id": "98305"}, "query": {"body-format": "atlas_doc_format"}}),
    ("search-pages", {"query": {"status": ["current"], "limit": 25}}),
    ("search-content", {"query": {"text": "page", "limit": 25}}),
    ("list-page-versions", {"path": {"id": "98305"}}),
    ("list-spaces", {"query": {}}),
    ("list-page-labels", {"path": {"id": "98305"}}),
    ("list-page-children", {"path": {"id": "98305"}}),
    ("get-page", {"path": {"id": "424242424"}}),
]


@pytest.fixture
def corpus(port: Port, sim: Simulator) -> list[tuple[str, httpx.Response]]:
    """The simulator's answers (bytes and headers as sent) to the requests the runner builds."""
    out: list[tuple[str, httpx.Response]] = []
    with httpx.Client(auth=(EMAIL, API_TOKEN)) as client:
        for name, data in CALLS:
            prepared = port.prepare(name, data)[0]
            response = client.request(
                prepared.method, prepared.url, headers={"Accept": "application/json"}
            )
            response.read()
            out.append((name, response))
    return out


def test_real_answers_summarise_as_with_the_standard_library(
    corpus: list[tuple[str, httpx.Response]],
) -> None:
    statuses = set()
    for name, response in corpus:
        summarizer = Summarizer(ACTIONS[name])
        result = summarizer.result(response)
        statuses.add(response.status_code)
        if response.status_code == 200:
            assert result.ok, result.to_dict()
            assert _canonical(_outcome(result)) == _canonical(_expected(summarizer, response))
        else:
            assert not result.ok and result.error is not None
            assert result.error["type"] == "upstream"
    assert statuses == {200, 404}
    searched = next(r for n, r in corpus if n == "search-content")
    assert b"@@@hl@@@" in searched.content  # highlights in the answer, none in the summary
    assert "@@@" not in json.dumps(Summarizer(ACTIONS["search-content"]).result(searched).summary)


def test_real_answers_project_like_jmespath(corpus: list[tuple[str, httpx.Response]]) -> None:
    """Every compiled field of these actions against JMESPath's interpreter, per item."""
    seen = 0
    for name, response in corpus:
        if response.status_code != 200:
            continue
        data = json.loads(response.content)
        spec = ACTIONS[name].summary
        items = jmespath.search(spec.items, data) if spec.items else [data]
        if spec.items:
            assert _canonical(_compile(spec.items).search(data)) == _canonical(items)
        seen += len(items)
        for item in items:
            for expression in spec.fields.values():
                compiled = _compile(expression)
                assert compiled.selects, expression
                got, want = compiled.search(item), jmespath.search(expression, item)
                assert _canonical(got) == _canonical(want), (name, expression)
    assert seen > 25


def test_next_cursor_from_the_link_header_and_the_body(
    corpus: list[tuple[str, httpx.Response]],
) -> None:
    listing = next(r for n, r in corpus if n == "search-pages")
    assert 'rel="next"' in listing.headers["Link"]
    cursor = Summarizer(ACTIONS["search-pages"]).result(listing).next_cursor
    assert cursor and cursor in listing.headers["Link"]
    body = {"results": [], "_links": {"next": "/wiki/rest/api/content?start=50&limit=25"}}
    v1 = Summarizer(ACTIONS["search-pages"]).result(_response(json.dumps(body).encode()))
    assert v1.next_cursor is None and dict(v1.extra) == {"next_start": 50}
    cursors = {"results": [], "_links": {"next": "/wiki/api/v2/pages?cursor=a%2Bb&start=9"}}
    v2 = Summarizer(ACTIONS["search-pages"]).result(_response(json.dumps(cursors).encode()))
    assert v2.next_cursor == "a+b" and v2.to_dict().get("next_start") is None


# -- answers orjson and the standard library read differently ---------------------------------

BIG = 18446744073709551616  # 2**64: orjson reads it as a float
PAGE_EDGES: list[bytes] = [
    b'{"id": "1", "version": {"number": NaN}}',
    b'{"id": "1", "version": {"number": Infinity}, "title": -Infinity}',
    b'\xef\xbb\xbf{"id": "1", "title": "with a BOM"}',
    '{"id": "1", "title": "UTF-16"}'.encode("utf-16"),
    '{"id": "1", "title": "UTF-16-LE"}'.encode("utf-16-le"),
    '{"id": "1", "title": "UTF-32"}'.encode("utf-32"),
    b'{"id": "1", "title": "\\ud800 lone"}',
    b'{"id": "1", "title": "\xed\xa0\x80 raw surrogate"}',
    b'{"id": "1", "id": "2", "title": "duplicate keys: the last wins"}',
    b'{"id": "1", "version": {"number": %d}}' % BIG,
    b'{"id": "1", "version": {"number": -9223372036854775809}}',
    b'{"id": "1", "version": {"number": 18446744073709551615}}',
    b'{"id": "1", "version": {"number": 123456789012345678901234567890}}',
    b'{"id": "1", "labels": {"results": [{"name": %d}, {"name": "x"}]}}' % BIG,
    b'{"id": "1", "title": {"nested": [1, %d, {"n": -%d}]}}' % (BIG, BIG),
    b'{"id": "1", "unused": %d}' % BIG,
    b'{"id": "1", "version": {"number": 1e400}}',
    b'{"id": "1", "version": {"number": 1e19}}',
    b'{"id": "1", "version": {"number": -0.0}}',
    b'{"id": "1", "version": {"number": 1.0}}',
    b'{"id": "1", "version": {"number": 9007199254740993}}',
    b'{"id": "1", "version": {"number": 0.1e-400}}',
    b'{"id": "1", "version": {"number": 2.2250738585072011e-308}}',
    b'{"id": "1", "version": {"number": 4.9e-324}}',
    b'{"id": "1", "version": {"number": 1.7976931348623159e308}}',
    b'{"id": "1", "version": {"number": 0.30000000000000000000000000000001}}',
    b'{"id": "1", "title": {"a": 1, "b": 2, "a": 3}}',
    b'{"id": "1", "title": "tab\tinside"}',
    b'{"id": "1", "title": "a\x01b"}',
    b'{"id": "1",}',
    b'{"id": 01}',
    b'{"id": "1"} trailing',
    b"{'id': '1'}",
    b'{"id": "\\x41"}',
    b'{"id": "1"}\x00',
    b'\x0c{"id": "1"}',
    b" \t\r\n" + b'{"id": "1"}' + b" \n",
    b'\xff{"id": "1"}',
    b'{"id": "\xc0\xaf"}',
    b'"just a string"',
    b"[1, 2, 3]",
    b"null",
    b"0",
    b"[" * 100 + b"]" * 100,
]


@pytest.mark.parametrize("content", PAGE_EDGES, ids=range(len(PAGE_EDGES)))
def test_edge_answers_keep_the_standard_library_verdict(content: bytes) -> None:
    summarizer = Summarizer(ACTIONS["get-page"])
    result = summarizer.result(_response(content))
    assert _canonical(_outcome(result)) == _canonical(_expected(summarizer, _response(content)))


def test_big_integers_stay_exact_in_summaries() -> None:
    content = b'{"id": "1", "version": {"number": %d}, "labels": {"results": [{"name": -%d}]}}'
    page = Summarizer(ACTIONS["get-page"]).result(_response(content % (BIG, BIG)))
    assert page.summary["version"] == BIG and type(page.summary["version"]) is int
    assert page.summary["labels"] == [-BIG] and type(page.summary["labels"][0]) is int
    listing = Summarizer(ACTIONS["list-page-versions"]).result(
        _response(b'{"results": [{"number": 1}, {"number": %d}]}' % (BIG * 10))
    )
    assert listing.summary == [{"number": 1}, {"number": BIG * 10}]
    assert all(type(item["number"]) is int for item in listing.summary)


def test_an_expression_that_computes_uses_the_standard_library() -> None:
    """``max``/``length`` compute over numbers: a big integer must not pass as a float."""
    action = _with_summary("get-page", {"top": "max(nums)", "n": "length(nums)", "id": "id"})
    assert not _compile("max(nums)").selects
    result = Summarizer(action).result(_response(b'{"id": "1", "nums": [1, %d, 3]}' % BIG))
    assert result.summary == {"top": BIG, "n": 3, "id": "1"}
    assert type(result.summary["top"]) is int


def test_deep_answers_fail_as_before() -> None:
    """Past orjson's 1024 levels the standard library decides (RecursionError, as before)."""
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(RecursionError):
        json.loads(deep)
    with pytest.raises(RecursionError):
        Summarizer(ACTIONS["get-page"]).result(_response(deep))


@pytest.mark.parametrize(
    ("content", "content_type", "ok", "message"),
    [
        (b"", JSON, True, None),
        (b" \r\n\t\x0b\x0c", JSON, True, None),
        (b"<html>", "text/html; charset=utf-8", False, "with text/html, not JSON"),
        (b'{"id": "1"}', None, False, "with no Content-Type, not JSON"),
        (b'{"id": "1"}', "application/vnd.atlassian+json", True, None),
        (b'{"id": "1"}', "APPLICATION/JSON", True, None),
        (b"{", JSON, False, "does not parse: Expecting property name enclosed in double quotes"),
        (b'"\xff"', JSON, False, "does not parse: not valid UTF-8"),
    ],
)
def test_content_types_and_empty_bodies(
    content: bytes, content_type: str | None, ok: bool, message: str | None
) -> None:
    response = _response(content, content_type)
    result = Summarizer(ACTIONS["get-page"]).result(response)
    assert result.ok is ok
    _, problem = json_answer(response)
    assert (problem is None) is ok
    if message is None:
        assert result.error is None
    else:
        assert result.error is not None and message in result.error["message"]
        assert result.error["message"] == problem


def test_parse_answer_matches_json_loads_on_keys_and_strings() -> None:
    for content in PAGE_EDGES:
        try:
            want: Any = json.loads(content)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            with pytest.raises(type(exc) if isinstance(exc, RecursionError) else ValueError):
                parse_answer(content)
            continue
        got = parse_answer(content)
        assert type(got) is type(want)
        if isinstance(want, dict):
            assert list(got) == list(want)
            assert [v for v in got.values() if isinstance(v, str)] == [
                v for v in want.values() if isinstance(v, str)
            ]


# -- compiled expressions against JMESPath's interpreter ---------------------------------------

SELECTING = [
    "id",
    "a.b.c",
    "a.b.c.d.e",
    '"a.b".c',
    "labels.results[].name",
    "labels[].name",
    "a[]",
    "a[][]",
    "a[].b[].c",
    "a[*].b",
    "a[*].b.c || d",
    "a || b",
    "a || b || c",
    "a.b || c.d",
    "@",
    "@.a",
    "a[*]",
    "a[].b[*]",
]
COMPUTING = ["`1`", "a[0]", "a.*", "a[?b]", "length(a)", "!a", "a && b", "[a, b]", "{x: a}"]
DOCS: list[Any] = [
    None,
    0,
    "text",
    [1, [2, [3]], {"b": 1}],
    {},
    {"id": 0, "a": "", "b": [], "c": {}, "d": False},
    {"id": False, "a": 0, "b": 0.0, "c": None},
    {"a": {"b": {"c": {"d": {"e": "deep"}}}}, "a.b": {"c": "quoted"}},
    {"a": [{"b": [{"c": 1}, {"c": None}, [{"c": 2}]]}, {"b": "x"}, [{"b": [{"c": 3}]}], None]},
    {"a": [[1, 2], [3, [4]], 5, None, []], "b": "B"},
    {"a": [{"b": {"c": 0}}, {"b": None}, {"b": {"c": ""}}], "d": [9]},
    {"labels": {"results": [{"name": "x"}, {"name": None}, {}, "s", [{"name": "y"}]]}},
    {"labels": [{"name": "a"}, [{"name": "b"}], {"name": False}]},
    {"a": {"b": []}, "c": {"d": {}}, "id": "1"},
    {"a": {"b": ""}, "c": {"d": "z"}},
    {"a": [], "b": {}, "c": ""},
]


@pytest.mark.parametrize("expression", SELECTING)
def test_selecting_expressions_compile_and_match_jmespath(expression: str) -> None:
    compiled = _compile(expression)
    assert compiled.selects
    assert not isinstance(compiled.search, jmespath.parser.ParsedResult)
    for doc in DOCS:
        want = jmespath.search(expression, doc)
        assert _canonical(compiled.search(doc)) == _canonical(want), doc


@pytest.mark.parametrize("expression", COMPUTING)
def test_other_expressions_use_the_interpreter(expression: str) -> None:
    compiled = _compile(expression)
    assert not compiled.selects
    for doc in DOCS:
        assert _outcome_of(compiled.search, doc) == _outcome_of(
            lambda d: jmespath.search(expression, d), doc
        )


def _outcome_of(search: Any, doc: Any) -> str:
    try:
        return _canonical(search(doc))
    except jmespath.exceptions.JMESPathError as exc:
        return f"{type(exc).__name__}: {exc}"


def test_every_packaged_expression_compiles_to_a_selector() -> None:
    for action in MANIFEST.actions:
        spec = action.summary
        for expression in [*spec.fields.values(), *([spec.items] if spec.items else [])]:
            assert _compile(expression).selects, (action.name, expression)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from(["", "x", "@@@hl@@@y"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["a", "b", "c", "name", "results"]), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(doc=_json_values, expression=st.sampled_from([*SELECTING, "results[].name || a.b"]))
def test_selectors_match_jmespath_on_random_documents(doc: Any, expression: str) -> None:
    compiled = _compile(expression)
    assert _canonical(compiled.search(doc)) == _canonical(jmespath.search(expression, doc))


@settings(max_examples=200, deadline=None)
@given(
    doc=st.recursive(
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**70), max_value=2**70)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(["id", "title", "version", "number"]), inner, max_size=4
            )
        ),
        max_leaves=15,
    )
)
def test_random_answers_summarise_as_with_the_standard_library(doc: Any) -> None:
    body = {"id": "1", "title": doc, "version": {"number": doc}, "labels": {"results": [doc]}}
    content = json.dumps(body).encode()
    summarizer = Summarizer(ACTIONS["get-page"])
    response = _response(content)
    assert _canonical(_outcome(summarizer.result(response))) == _canonical(
        _expected(summarizer, response)
    )


@settings(max_examples=300, deadline=None)
@given(
    number=st.from_regex(
        r"-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,25})?([eE][+-]?[0-9]{1,3})?", fullmatch=True
    )
)
def test_number_literals_summarise_as_with_the_standard_library(number: str) -> None:
    content = b'{"id": "1", "version": {"number": %s}, "labels": {"results": [{"name": %s}]}}' % (
        number.encode(),
        number.encode(),
    )
    summarizer = Summarizer(ACTIONS["get-page"])
    response = _response(content)
    got, want = _outcome(summarizer.result(response)), _expected(summarizer, response)
    assert _canonical(got) == _canonical(want)


# -- Result is immutable -----------------------------------------------------------------------


def _results() -> list[tuple[Result, str]]:
    """Representative results and their JSON as ``to_json`` wrote it before Result froze."""
    return [
        (
            Result(ok=True, action="get-page", status=200, summary={"id": "1", "t": "ü"}),
            '{"ok": true, "action": "get-page", "outcome": "sent", "status": 200, '
            '"summary": {"id": "1", "t": "ü"}}',
        ),
        (
            Result(
                ok=True,
                action="search-pages",
                status=200,
                summary=[{"id": "1"}],
                next_cursor="abc",
                count=1,
            ),
            '{"ok": true, "action": "search-pages", "outcome": "sent", "status": 200, '
            '"summary": [{"id": "1"}], "next_cursor": "abc", "count": 1}',
        ),
        (
            Result(
                ok=False,
                action="create-page",
                outcome="held",
                ticket="t-1",
                rule="writes",
                extra={"state": "pending", "approvals_required": 1, "message": "held"},
            ),
            '{"ok": false, "action": "create-page", "outcome": "held", "ticket": "t-1", '
            '"rule": "writes", "state": "pending", "approvals_required": 1, "message": "held"}',
        ),
        (
            Result(
                ok=False,
                action="get-page",
                status=404,
                error={"type": "upstream", "message": "Not Found"},
                summary=0,
                count=0,
            ),
            '{"ok": false, "action": "get-page", "outcome": "sent", "status": 404, '
            '"summary": 0, "count": 0, "error": {"type": "upstream", "message": "Not Found"}}',
        ),
        (
            Result(ok=True, action="list", status=200, extra={"next_start": 50}),
            '{"ok": true, "action": "list", "outcome": "sent", "status": 200, "next_start": 50}',
        ),
    ]


@pytest.mark.parametrize("index", range(5))
def test_to_dict_and_to_json_are_unchanged(index: int) -> None:
    result, text = _results()[index]
    assert result.to_json() == text
    assert result.to_dict() == json.loads(text)
    assert type(result.to_dict()) is dict
    assert result.to_json(indent=2) == json.dumps(json.loads(text), indent=2, ensure_ascii=False)


def test_result_fields_cannot_be_assigned() -> None:
    result = Result(ok=True, action="get-page", status=200, summary={"id": "1"})
    for name in [f.name for f in dataclasses.fields(Result)]:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(result, name, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.error = {"type": "x"}  # type: ignore[misc]
    with pytest.raises((AttributeError, TypeError)):
        result.unknown = 1  # type: ignore[attr-defined]
    assert result.ok is True and result.error is None


def test_extra_is_a_read_only_copy() -> None:
    given_extra = {"state": "pending"}
    result = Result(ok=False, action="a", outcome="held", extra=given_extra)
    given_extra["state"] = "changed"
    given_extra["more"] = 1
    assert dict(result.extra) == {"state": "pending"}
    with pytest.raises(TypeError):
        result.extra["state"] = "x"  # type: ignore[index]
    with pytest.raises(AttributeError):
        result.extra.pop("state")  # type: ignore[attr-defined]
    assert Result(ok=True, action="a").extra == {}
    assert Result(ok=True, action="a", extra={}).to_dict() == Result(ok=True, action="a").to_dict()


def test_evolve_and_with_extra_derive_new_results() -> None:
    base = Result(ok=True, action="get-page", status=200, summary={"id": "1"}, extra={"a": 1})
    changed = base.evolve(ok=False, error={"type": "conflict", "message": "m"})
    assert (changed.ok, changed.error, changed.summary) == (
        False,
        {"type": "conflict", "message": "m"},
        {"id": "1"},
    )
    assert base.ok is True and base.error is None
    assert dict(changed.extra) == {"a": 1}
    more = base.with_extra(audit_error="not written", a=2)
    assert dict(more.extra) == {"a": 2, "audit_error": "not written"}
    assert dict(base.extra) == {"a": 1}
    assert more.to_json().endswith('"a": 2, "audit_error": "not written"}')
    with pytest.raises(TypeError):
        base.evolve(nonsense=1)
    assert base.evolve() == base and base.evolve() is not base


def test_results_pickle_and_copy() -> None:
    for result, text in _results():
        for clone in (
            pickle.loads(pickle.dumps(result)),
            copy.copy(result),
            copy.deepcopy(result),
        ):
            assert clone == result and clone.to_json() == text
            with pytest.raises(TypeError):
                clone.extra["x"] = 1  # type: ignore[index]


def test_summarizer_results_carry_next_start_in_extra() -> None:
    body = {"results": [{"id": "1"}], "_links": {"next": "/wiki/rest/api/content?start=25"}}
    result = Summarizer(ACTIONS["search-pages"]).result(_response(json.dumps(body).encode()))
    assert result.to_dict()["next_start"] == 25
    with pytest.raises(TypeError):
        result.extra["next_start"] = 0  # type: ignore[index]


# -- bodyview.present is pure ------------------------------------------------------------------


def test_present_returns_a_new_summary_and_leaves_its_input_alone() -> None:
    action = ACTIONS["get-page"]
    assert action.body_view is not None
    body = "<p>" + "x" * 50 + "</p>"
    page = {"id": "1", "body": {"storage": {"value": body, "representation": "storage"}}}
    answer = _response(json.dumps(page).encode())
    summary = {"id": "1", action.body_view.field: body}
    before = copy.deepcopy(summary)
    local = {"body_view": {"format": "storage", "offset": 0, "limit": 10}}
    shown = bodyview.present(action, local, answer, summary)
    assert summary == before and shown is not summary
    assert shown["bodyFormat"] == "storage" and shown["bodyLength"] == len(body)
    assert shown["bodyNextOffset"] == 10 and shown[action.body_view.field].startswith(body[:10])
    # no format asked (a request run from a ticket): told from the answer itself
    untold = bodyview.present(action, {}, answer, summary)
    assert untold["bodyFormat"] == "storage" and summary == before
    assert bodyview.present(action, {}, _response(b"NaN"), summary)["bodyFormat"] is None
    assert bodyview.present(action, {}, answer, {"id": "1"}) == {"id": "1"}
    nan = bodyview.present(action, {}, _response(b'{"body": {"view": {"v": NaN}}}'), summary)
    assert nan["bodyFormat"] == "view"  # NaN: orjson refuses, the standard library reads it


# -- the generated projection (plain-path fields) ----------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
    | st.sampled_from(["@@@hl@@@x@@@endhl@@@", "a" * 300]),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip
_items = st.dictionaries(
    st.sampled_from(["id", "title", "status", "version", "spaceId", "body", "_links"]),
    _json_values | st.fixed_dictionaries({"number": _json_values, "value": _json_values}),
    max_size=7,
)


@settings(max_examples=300, deadline=None)
@given(item=_items | _json_values, guard=st.booleans())
@example(item={"title": "a" * 300, "status": "@@@hl@@@x@@@endhl@@@"}, guard=False)
@example(item={"version": {"number": 2.0**64}, "_links": [{"number": "b" * 200}]}, guard=True)
@example(item={"body": {"value": {"x": "c" * 101}}, "id": 7, "title": None}, guard=False)
@example(item=["not", "an", "object"], guard=False)
def test_the_generated_projection_is_the_generic_one(item: Any, guard: bool) -> None:
    """Fields of one, two and three keys, compiled selectors (``||``, ``[]``, ``@``), a
    cut field, highlights, nested values and floats past 2**63 (guarded): the same output
    or the same error."""
    action = _with_summary(
        "get-page",
        {"id": "id", "title": "title", "version": "version.number", "deep": "body.value.x",
         "links": "_links", "status": "status", "either": "body.value || title",
         "names": "_links[].number", "whole": "@"},
    )  # fmt: skip
    spec = action.summary.model_copy(update={"max_chars": 100})  # "a" * 300 is cut
    action = action.model_copy(update={"summary": spec})
    summarizer = Summarizer(action)

    def run(one: Any) -> Any:
        try:
            return _canonical(one(copy.deepcopy(item), guard))
        except Exception as exc:  # the _Inexact verdict must match too
            return type(exc).__name__

    assert run(summarizer._fast) == run(lambda i, g: _field_by_field(action, i, g))


def _field_by_field(action: Action, item: Any, guard: bool) -> dict[str, Any]:
    """The reference: each field's compiled getter in turn, then the summary's rules for
    its value (highlights removed, long strings cut unless it is the body view's field,
    lists and objects cleaned, a float past 2**63 refused when guarded)."""
    spec = action.summary
    uncut = action.body_view.field if action.body_view is not None else None
    out: dict[str, Any] = {}
    for name, expression in spec.fields.items():
        value = _compile(expression).search(item)
        if value is None:
            continue
        if isinstance(value, str):
            value = summary_mod._HIGHLIGHT.sub("", value)
            if name != uncut and len(value) > spec.max_chars:
                value = cut(value, spec.max_chars)
        elif isinstance(value, list | dict):
            value = summary_mod._plain(value, guard)
        elif guard and isinstance(value, float) and abs(value) >= 2.0**63:
            raise summary_mod._Inexact
        out[name] = value
    return out
