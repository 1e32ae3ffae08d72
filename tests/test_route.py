"""The compiled route (pipeline/route.py): one parse per action that expansion, matching, the
admin deny-list and the spec checks all read, so they cannot disagree about a route."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from uritemplate import URITemplate

from harbor_confluence.catalog.speccheck import api_version_for, load_openapi
from harbor_confluence.pipeline.executor import default_manifest_path
from harbor_confluence.pipeline.manifest import Action, Manifest, admin_route_problem, load_manifest
from harbor_confluence.pipeline.request import RequestBuilder
from harbor_confluence.pipeline.route import (
    Route,
    check_route,
    compile_route,
    names_of,
    percent_encode,
    shape_of,
)

PACKAGED: Manifest = load_manifest(default_manifest_path())
ROUTES = sorted({a.route for a in PACKAGED.actions})

# Any text a JSON string can carry and UTF-8 can encode (lone surrogates cannot be).
TEXT = st.text(st.characters(codec="utf-8"), max_size=30)
SEGMENT_VALUE = TEXT.filter(lambda v: v not in ("", ".", ".."))


def _values(route: Route) -> st.SearchStrategy[dict[str, str]]:
    return st.fixed_dictionaries({name: SEGMENT_VALUE for name in route.variables})


def _regex_recheck(route: str, path: str, values: dict[str, str]) -> bool:
    """The re-check request building made before routes were compiled (the reference)."""
    regex = "".join(
        "([^/]+)" if part.startswith("{") else re.escape(part)
        for part in re.split(r"(\{[^}]+\})", route)
        if part
    )
    match = re.match(rf"\A{regex}\Z", path)
    return (
        match is not None
        and not any(g in ("", ".", "..") for g in match.groups())
        and [unquote(g) for g in match.groups()]
        == [values[v] for v in re.findall(r"\{([^}]+)\}", route)]
    )


# -- expansion and matching ------------------------------------------------------------


@pytest.mark.parametrize("template", ROUTES)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_expand_then_match_gives_the_values_back(template: str, data: st.DataObject) -> None:
    route = compile_route(template)
    values = data.draw(_values(route))
    path = route.expand(values)
    assert path == str(URITemplate(template).expand(dict(values)))  # RFC 6570, as the library
    assert route.match(path) == values
    assert route.fits(path)
    assert route.expand_checked(values) == path


@pytest.mark.parametrize("template", ROUTES)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_checked_expansion_agrees_with_the_regex_recheck(
    template: str, data: st.DataObject
) -> None:
    route = compile_route(template)
    values = data.draw(st.fixed_dictionaries({name: TEXT for name in route.variables}))
    checked = route.expand_checked(values)
    path = route.expand(values)
    assert (checked == path) is _regex_recheck(template, path, values)
    assert checked is None or checked == path


@settings(max_examples=300, deadline=None)
@given(text=TEXT)
def test_percent_encode_is_quote_with_nothing_safe(text: str) -> None:
    assert percent_encode(text) == quote(text, safe="")
    assert "/" not in percent_encode(text)


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("a/b", "a%2Fb"),
        ("../admin", "..%2Fadmin"),
        ("12?x=1", "12%3Fx%3D1"),
        ("top#frag", "top%23frag"),
        ("100%", "100%25"),
        ("%2e%2e", "%252e%252e"),
        ("a b", "a%20b"),
        ("ü", "%C3%BC"),
        ("日本", "%E6%97%A5%E6%9C%AC"),
        ("~._-", "~._-"),
        ("\r\nX-Evil: 1", "%0D%0AX-Evil%3A%201"),
    ],
)
def test_values_are_percent_encoded_inside_their_segment(value: str, encoded: str) -> None:
    route = PACKAGED.action("get-page").compiled_route
    path = route.expand({"id": value})
    assert path == "/wiki/api/v2/pages/" + encoded
    assert route.expand_checked({"id": value}) == path
    assert route.match(path) == {"id": value}


@pytest.mark.parametrize("values", [{}, {"id": ""}, {"id": "."}, {"id": ".."}, {"other": "1"}])
def test_values_that_do_not_fill_their_segment_are_refused(values: dict[str, str]) -> None:
    route = PACKAGED.action("get-page").compiled_route
    assert route.expand_checked(values) is None


@pytest.mark.parametrize(
    "path",
    [
        "/wiki/api/v2/pages/",
        "/wiki/api/v2/pages/1/2",
        "/wiki/api/v2/pages/1/",
        "/wiki/api/v2/pagesX/1",
        "/wiki/api/v2/pages/1?x=1/",
        "/WIKI/api/v2/pages/1",
    ],
)
def test_paths_of_another_form_do_not_match(path: str) -> None:
    route = PACKAGED.action("get-page").compiled_route
    assert route.match(path) is None
    assert not route.fits(path)


def test_two_variables_come_back_by_name() -> None:
    route = PACKAGED.action("remove-label").compiled_route
    assert route.variables == ("id", "label")
    path = route.expand({"id": "7", "label": "a/b c"})
    assert path == "/wiki/rest/api/content/7/label/a%2Fb%20c"
    assert route.match(path) == {"id": "7", "label": "a/b c"}


def test_operator_routes_fall_back_to_uritemplate() -> None:
    route = Route.compile("/a/{+path}/b")
    assert not route.is_simple
    assert route.variables == ("path",)
    assert route.expand({"path": "x/y"}) == "/a/x/y/b"
    # a reserved expansion may add segments: the checked expansion refuses it
    assert route.expand_checked({"path": "x/y"}) is None
    with pytest.raises(ValueError, match="only simple"):
        check_route("/wiki/a/{+path}")


# -- one Route per action, everywhere ----------------------------------------------------


def test_each_action_is_compiled_once_at_load() -> None:
    for action in PACKAGED.actions:
        route = action.compiled_route
        assert route is action.compiled_route
        assert route is compile_route(action.route)  # the loader's own check used it too
        assert route.template == action.route


def test_request_building_uses_the_actions_route() -> None:
    action = PACKAGED.action("get-page")
    builder = RequestBuilder(action)
    assert builder._route is action.compiled_route
    url = "https://acme.atlassian.net/wiki/api/v2/pages/a%2Fb?x=1"
    from harbor_confluence.pipeline.request import Target

    assert builder.path_values(url, Target.parse("https://acme.atlassian.net")) == {"id": "a/b"}


def test_a_copy_with_another_route_gets_its_own() -> None:
    action = PACKAGED.action("get-page")
    copy = action.model_copy(update={"route": "/wiki/api/v2/blogposts/{id}"})
    assert copy.compiled_route.template == "/wiki/api/v2/blogposts/{id}"
    assert action.compiled_route.template == "/wiki/api/v2/pages/{id}"
    assert copy != action and action == PACKAGED.action("get-page")


def test_routes_compare_by_their_text() -> None:
    assert Route.compile("/wiki/a/{x}") == compile_route("/wiki/a/{x}")
    assert Route.compile("/wiki/a/{x}") != Route.compile("/wiki/a/{y}")
    assert len({Route.compile("/wiki/a/{x}"), compile_route("/wiki/a/{x}")}) == 1


@pytest.mark.parametrize(
    ("route", "refused"),
    [
        ("/wiki/api/v2/spaces/{id}/permissions", True),
        ("/wiki/rest/api/space/{spaceKey}/permission", True),
        ("/wiki/api/v2/pages/{id}", False),
    ],
)
def test_the_deny_list_reads_a_string_and_a_route_alike(route: str, refused: bool) -> None:
    by_text = admin_route_problem("GET", route)
    assert by_text == admin_route_problem("GET", compile_route(route))
    assert (by_text is not None) is refused


# -- agreement with Atlassian's documents ---------------------------------------------------


def _documented(action: Action) -> str:
    version = api_version_for(action.route)
    assert version is not None, action.route
    spec: dict[str, Any] = load_openapi(version)
    prefix = "/wiki/api/v2" if version == "v2" else ""
    shape = action.compiled_route.shape[len(prefix) :]
    matches = [t for t in spec["paths"] if shape_of(t) == shape]
    assert len(matches) == 1, (action.name, shape, matches)
    return prefix + str(matches[0])


@pytest.mark.parametrize("action", PACKAGED.actions, ids=lambda a: a.name)
def test_shape_and_variables_agree_with_the_openapi_template(action: Action) -> None:
    route = action.compiled_route
    template = _documented(action)
    assert shape_of(template) == route.shape
    theirs = names_of(template)
    assert len(theirs) == len(route.variables)
    for ours, name in zip(route.variables, theirs, strict=True):
        assert name in (ours, ours.replace("_", "-")), (action.name, ours, name)
    rfc6570 = [n for var in URITemplate(action.route).variables for n in var.variable_names]
    assert list(route.variables) == rfc6570
    assert route.variables == tuple(names_of(action.route))
    assert route.shape == re.sub(r"\{[^}]*\}", "{}", action.route)
