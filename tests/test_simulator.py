"""The Confluence Cloud simulator, driven with httpx over loopback.

Each test ends by validating every exchange it caused against Atlassian's v2 OpenAPI
document (the test is skipped at that point, with the reason, if the document is absent).
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest

from harbor_confluence.sim import Simulator
from tests.contract import ContractChecker, ContractResult

EMAIL = "tester@example.com"
API_TOKEN = "sim-test-api-token-" + secrets.token_hex(6)
ACCESS_TOKEN = "sim-test-access-token-" + secrets.token_hex(6)
PAGES = "/wiki/api/v2/pages"
SPACES = "/wiki/api/v2/spaces"
ENG, DOCS, OPS = "65538", "65539", "65540"
LINK = re.compile(r'<([^>]*)>\s*;\s*rel="([^"]+)"')
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(scope="module")
def checker() -> ContractChecker:
    """Loads the document lazily, so functional assertions run even without it."""
    return ContractChecker()


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    with Simulator(email=EMAIL, api_token=API_TOKEN, access_token=ACCESS_TOKEN) as sim:
        yield sim


@pytest.fixture
def client(simulator: Simulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=simulator.url, auth=(EMAIL, API_TOKEN), timeout=10) as c:
        yield c


def basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def verify_contract(
    sim: Simulator, checker: ContractChecker, invalid: Sequence[int] = ()
) -> list[ContractResult]:
    """Every exchange of the test against the document; ``invalid`` = expected rejections."""
    exchanges = sim.exchanges
    assert exchanges, "the test made no request"
    return checker.check_exchanges(exchanges, invalid=invalid)


def links(response: httpx.Response) -> dict[str, str]:
    """rel -> URL from a Link header (URLs may contain commas, so no naive split)."""
    return {rel: url for url, rel in LINK.findall(response.headers.get("Link", ""))}


def walk(client: httpx.Client, path: str, params: dict[str, Any]) -> list[httpx.Response]:
    """Follow ``Link: rel="next"`` until it disappears; each link must match ``_links.next``."""
    responses = [client.get(path, params=params)]
    for _ in range(1000):
        last = responses[-1]
        assert last.status_code == 200, last.text
        nxt = links(last).get("next")
        assert nxt == last.json()["_links"].get("next")
        if nxt is None:
            return responses
        responses.append(client.get(nxt))
    raise AssertionError("pagination did not end")


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"errors"}, body
    assert len(body["errors"]) == 1, body
    error: dict[str, Any] = body["errors"][0]
    assert set(error) == {"status", "code", "title", "detail"}
    assert error["status"] == response.status_code
    return error


def page_id(sim: Simulator, title: str, space_id: str = ENG) -> int:
    return next(p.id for p in sim.store.pages() if p.title == title and str(p.space_id) == space_id)


# -- listing and pagination ---------------------------------------------------------------


def test_pagination_follows_link_headers_through_every_page(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    responses = walk(client, PAGES, {"limit": 5})
    ids = [item["id"] for r in responses for item in r.json()["results"]]
    expected = {str(p.id) for p in simulator.store.pages() if p.status in ("current", "archived")}
    assert len(ids) == len(set(ids)), "a page was listed twice"
    assert set(ids) == expected
    assert len(responses) == -(-len(expected) // 5)
    assert all(len(r.json()["results"]) == 5 for r in responses[:-1])
    assert ids == sorted(ids, key=int), "default order is by id"
    first = responses[0]
    assert first.json()["_links"]["base"] == simulator.base_url
    assert links(first)["base"] == simulator.base_url
    assert "cursor=" in links(first)["next"]
    assert "limit=5" in links(first)["next"]
    assert "Link" not in responses[-1].headers
    verify_contract(simulator, checker)


def test_next_link_keeps_filters_and_sort(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    params = {"space-id": DOCS, "sort": "-title", "limit": 4, "body-format": "storage"}
    responses = walk(client, PAGES, params)
    items = [item for r in responses for item in r.json()["results"]]
    nxt = links(responses[0])["next"]
    assert "space-id=65539" in nxt
    assert "sort=-title" in nxt
    assert "body-format=storage" in nxt
    assert {item["spaceId"] for item in items} == {DOCS}
    titles = [item["title"] for item in items]
    assert titles == sorted(titles, key=str.casefold, reverse=True)
    assert all(item["body"]["storage"]["value"].startswith("<") for item in items)
    assert len(items) == len({i["id"] for i in items}) == 16  # all DOCS pages, none trashed
    verify_contract(simulator, checker)


def test_comma_separated_arrays_in_a_next_link_survive(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    responses = walk(client, PAGES, {"space-id": f"{DOCS},{OPS}", "limit": 10})
    assert len(responses) > 2
    items = [item for r in responses for item in r.json()["results"]]
    assert {item["spaceId"] for item in items} == {DOCS, OPS}
    assert len(items) == len({i["id"] for i in items}) == 16 + 14
    verify_contract(simulator, checker)


def test_extra_pages_are_generated_into_eng(checker: ContractChecker) -> None:
    with (
        Simulator(api_token=API_TOKEN, extra_pages=600) as sim,
        httpx.Client(base_url=sim.url, auth=(sim.email, API_TOKEN)) as client,
    ):
        responses = walk(client, PAGES, {"space-id": ENG, "limit": 250})
        ids = [int(item["id"]) for r in responses for item in r.json()["results"]]
        assert len(responses) == 3
        assert len(ids) == len(set(ids)) == 18 + 600  # ENG: 19 seed pages, 1 trashed
        assert sum(1 for i in ids if i >= 1_000_001) == 600
        verify_contract(sim, checker)


@pytest.mark.parametrize(
    ("params", "expected_titles"),
    [
        ({"status": "trashed"}, ["Legacy Jenkins Notes"]),
        ({"status": "archived"}, ["Q3 2023 Planning", "Release Notes 2.3"]),
        ({"title": "Glossary"}, ["Glossary", "Glossary"]),
        ({"title": "Glossary", "space-id": OPS}, ["Glossary"]),
        ({"title": "glossary"}, []),  # exact match
        ({"id": ["98306", "163841"]}, ["Architecture Overview", "Documentation Home"]),
        ({"id": "98306,163841"}, ["Architecture Overview", "Documentation Home"]),
        ({"subtype": "live"}, []),
        ({"space-id": OPS, "sort": "-created-date", "limit": 2}, ["Glossary", "Access Requests"]),
    ],
)
def test_filters(
    simulator: Simulator,
    client: httpx.Client,
    checker: ContractChecker,
    params: dict[str, Any],
    expected_titles: list[str],
) -> None:
    response = client.get(PAGES, params=params)
    assert response.status_code == 200
    assert [item["title"] for item in response.json()["results"]] == expected_titles
    verify_contract(simulator, checker)


def test_default_status_is_current_and_archived(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    results = client.get(PAGES, params={"space-id": ENG, "limit": 250}).json()["results"]
    statuses = {item["title"]: item["status"] for item in results}
    assert statuses["Q3 2023 Planning"] == "archived"
    assert "Legacy Jenkins Notes" not in statuses
    assert set(statuses.values()) == {"current", "archived"}
    verify_contract(simulator, checker)


def test_body_format(simulator: Simulator, client: httpx.Client, checker: ContractChecker) -> None:
    plain = client.get(PAGES, params={"limit": 3}).json()["results"]
    assert [item["body"] for item in plain] == [{}, {}, {}]
    adf = client.get(PAGES, params={"limit": 3, "body-format": "atlas_doc_format"}).json()
    for item in adf["results"]:
        body = item["body"]["atlas_doc_format"]
        assert body["representation"] == "atlas_doc_format"
        assert json.loads(body["value"])["type"] == "doc"
    single = client.get(f"{PAGES}/98313", params={"body-format": "storage"}).json()
    storage = single["body"]["storage"]
    assert storage["representation"] == "storage"
    assert '<ac:structured-macro ac:name="code"' in storage["value"]
    view = client.get(f"{PAGES}/98313", params={"body-format": "view"}).json()
    assert set(view["body"]) == {"view"}
    verify_contract(simulator, checker)


# -- single page --------------------------------------------------------------------------


def test_get_page_by_id(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    page = client.get(f"{PAGES}/98306").json()
    assert page["id"] == "98306"
    assert page["title"] == "Architecture Overview"
    assert page["spaceId"] == ENG
    assert page["parentId"] == "98305"
    assert page["parentType"] == "page"
    assert page["status"] == "current"
    assert page["authorId"].startswith("557058:")
    assert TIMESTAMP.match(page["createdAt"])
    assert TIMESTAMP.match(page["version"]["createdAt"])
    assert page["version"]["number"] == 7
    assert page["body"] == {}
    assert "labels" not in page
    assert page["_links"]["base"] == simulator.base_url
    assert page["_links"]["webui"] == "/spaces/ENG/pages/98306/Architecture+Overview"

    rich = client.get(
        f"{PAGES}/98306",
        params={"include-labels": "true", "include-versions": "true", "include-version": "false"},
    ).json()
    assert [label["name"] for label in rich["labels"]["results"]] == ["architecture"]
    assert [v["number"] for v in rich["versions"]["results"]] == [7, 6, 5, 4, 3, 2, 1]
    assert "version" not in rich

    home = client.get(f"{PAGES}/98305").json()
    assert "parentId" not in home, (
        "a homepage has no parent (the schema's parentId is not nullable)"
    )
    verify_contract(simulator, checker)


def test_unknown_or_filtered_page_is_404(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    missing = client.get(f"{PAGES}/999999999")
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "NOT_FOUND"
    trashed = page_id(simulator, "Legacy Jenkins Notes")
    assert client.get(f"{PAGES}/{trashed}").status_code == 404
    found = client.get(f"{PAGES}/{trashed}", params={"status": "trashed"})
    assert found.status_code == 200
    assert found.json()["status"] == "trashed"
    verify_contract(simulator, checker)


@pytest.mark.parametrize(
    ("path", "params", "document_rejects"),
    [
        (PAGES, {"limit": "0"}, True),
        (PAGES, {"limit": "251"}, True),
        (PAGES, {"limit": "abc"}, True),
        (PAGES, {"sort": "newest"}, True),
        (PAGES, {"status": "draft"}, True),
        (PAGES, {"body-format": "view"}, True),
        (PAGES, {"space-id": "ENG"}, True),
        (PAGES, {"id": ",".join(str(i) for i in range(251))}, True),
        (f"{PAGES}/abc", {}, True),
        (f"{PAGES}/98305", {"body-format": "html"}, True),
        # openapi-core's boolean caster also takes "yes"; Confluence (and we) do not.
        (f"{PAGES}/98305", {"include-labels": "yes"}, False),
        (SPACES, {"limit": "0"}, True),
        (f"{SPACES}/ENG", {}, True),
        # The cursor is opaque to the document: only the server can refuse it.
        (PAGES, {"cursor": "not-a-cursor"}, False),
    ],
)
def test_invalid_parameters_are_400(
    simulator: Simulator,
    client: httpx.Client,
    checker: ContractChecker,
    path: str,
    params: dict[str, str],
    document_rejects: bool,
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "INVALID_REQUEST_PARAMETER"
    name = next(iter(params), "id")
    assert f"'{name}'" in error["title"], error["title"]
    results = verify_contract(simulator, checker, invalid=[0] if document_rejects else [])
    assert bool(results[0].request_errors) is document_rejects


def test_cursor_from_another_sort_is_refused(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    first = client.get(PAGES, params={"limit": 2, "sort": "title"})
    cursor = httpx.URL(links(first)["next"]).params["cursor"]
    other = client.get(PAGES, params={"limit": 2, "sort": "-id", "cursor": cursor})
    assert other.status_code == 400
    assert "cursor" in error_of(other)["title"]
    verify_contract(simulator, checker)


# -- authentication -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": basic(EMAIL, "wrong")},
        {"Authorization": basic("other@example.com", API_TOKEN)},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {API_TOKEN}"},  # an API token is not an access token
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": f"Token {ACCESS_TOKEN}"},
    ],
    ids=[
        "none",
        "wrong-token",
        "wrong-email",
        "wrong-bearer",
        "token-as-bearer",
        "garbage",
        "scheme",
    ],
)
def test_missing_or_wrong_credentials_are_401(
    simulator: Simulator, checker: ContractChecker, headers: dict[str, str]
) -> None:
    response = httpx.get(simulator.url + PAGES, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"code": 401, "message": "Unauthorized; scope does not match"}
    assert response.headers["content-type"].startswith("application/json")
    assert API_TOKEN not in response.text
    assert ACCESS_TOKEN not in response.text
    verify_contract(simulator, checker)


def test_basic_and_bearer_are_both_accepted(simulator: Simulator, checker: ContractChecker) -> None:
    basic = httpx.get(simulator.url + PAGES, auth=(EMAIL.upper(), API_TOKEN))
    bearer = httpx.get(simulator.url + PAGES, headers={"Authorization": f"Bearer {ACCESS_TOKEN}"})
    assert basic.status_code == bearer.status_code == 200
    assert basic.json()["results"] == bearer.json()["results"] != []
    verify_contract(simulator, checker)


def test_credentials_stay_out_of_reprs(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    client.get(PAGES, params={"limit": 1})
    exchange = simulator.exchanges[0]
    assert exchange.request_header("authorization") == basic(EMAIL, API_TOKEN)  # as sent
    for text in (repr(simulator), repr(exchange), str(exchange)):
        assert API_TOKEN not in text
        assert ACCESS_TOKEN not in text
        assert "Basic" not in text
    verify_contract(simulator, checker)


# -- creating pages -----------------------------------------------------------------------


def test_create_then_get(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    value = "<p>Written by the simulator test.</p>"
    created = client.post(
        PAGES,
        json={
            "spaceId": ENG,
            "status": "current",
            "title": "Simulator smoke test",
            "body": {"representation": "storage", "value": value},
        },
    )
    assert created.status_code == 200, created.text
    page = created.json()
    assert page["id"].isdigit()
    assert int(page["id"]) > 229390
    assert page["spaceId"] == ENG
    assert page["parentId"] == "98305"
    assert page["authorId"] == simulator.account_id
    assert page["version"]["number"] == 1
    assert page["body"]["storage"]["value"] == value
    assert page["_links"]["base"] == simulator.base_url

    fetched = client.get(f"{PAGES}/{page['id']}", params={"body-format": "storage"}).json()
    assert fetched["title"] == "Simulator smoke test"
    assert fetched["body"]["storage"]["value"] == value
    listed = client.get(PAGES, params={"title": "Simulator smoke test"}).json()["results"]
    assert [item["id"] for item in listed] == [page["id"]]

    nested = client.post(
        PAGES,
        params={"root-level": "true"},
        json={
            "spaceId": DOCS,
            "title": "Wiki markup page",
            "body": {"wiki": {"representation": "wiki", "value": "h2. Intro\n* one\n* two"}},
        },
    )
    assert nested.status_code == 200, nested.text
    assert "parentId" not in nested.json()
    assert (
        nested.json()["body"]["storage"]["value"]
        == "<h2>Intro</h2><ul><li>one</li><li>two</li></ul>"
    )

    adf = json.dumps(
        {
            "type": "doc",
            "version": 1,
            "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Hi"}]}],
        }
    )
    made = client.post(
        PAGES,
        json={"spaceId": OPS, "title": "ADF page", "parentId": "229380",
              "body": {"representation": "atlas_doc_format", "value": adf}},
    )  # fmt: skip
    assert made.status_code == 200
    assert made.json()["parentId"] == "229380"
    as_storage = client.get(f"{PAGES}/{made.json()['id']}", params={"body-format": "storage"})
    assert as_storage.json()["body"]["storage"]["value"] == "<p>Hi</p>"

    results = verify_contract(simulator, checker)
    assert any("oneOf" in note for note in results[0].notes), "the oneOf defect is reported"


def test_duplicate_title_is_409(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    before = len(simulator.store.pages())
    duplicate = client.post(PAGES, json={"spaceId": ENG, "title": "runbooks"})
    assert duplicate.status_code == 409
    error = error_of(duplicate)
    assert error["code"] == "CONFLICT"
    assert "already exists" in error["title"]
    assert "runbooks" in error["detail"]
    assert str(page_id(simulator, "Runbooks")) in error["detail"]
    assert len(simulator.store.pages()) == before
    # Titles are unique per space, and drafts do not take a title.
    assert client.post(PAGES, json={"spaceId": DOCS, "title": "Runbooks"}).status_code == 200
    draft = client.post(PAGES, json={"spaceId": ENG, "title": "Runbooks", "status": "draft"})
    assert draft.status_code == 200
    assert draft.json()["status"] == "draft"
    results = verify_contract(simulator, checker)
    assert any("status 409 is not declared" in note for note in results[0].notes)


def test_concurrent_creates_of_one_title_let_exactly_one_win(
    simulator: Simulator, checker: ContractChecker
) -> None:
    statuses: list[int] = []
    lock = threading.Lock()

    def create() -> None:
        with httpx.Client(base_url=simulator.url, auth=(EMAIL, API_TOKEN)) as c:
            status = c.post(PAGES, json={"spaceId": OPS, "title": "Race"}).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] + [409] * 7
    verify_contract(simulator, checker)


@pytest.mark.parametrize(
    ("content", "content_type", "status", "document_rejects"),
    [
        (b'{"spaceId": "65538", "title": ', "application/json", 400, True),
        (b"[]", "application/json", 400, True),
        (b'{"title": "No space"}', "application/json", 400, True),
        (b'{"spaceId": 65538, "title": "Numeric space id"}', "application/json", 400, True),
        (b'{"spaceId": "65538", "title": "x", "status": "draft!"}', "application/json", 400, True),
        (b'{"spaceId": "65538", "title": "x", "parentId": "1"}', "application/json", 400, False),
        (b'{"spaceId": "65538", "status": "current"}', "application/json", 400, False),
        # The document cannot catch a wrong representation: the flat form fails its enum,
        # but the open nested alternative accepts any object, so oneOf is satisfied.
        (b'{"spaceId": "65538", "title": "x", "body": {"representation": "html", "value": "x"}}',
         "application/json", 400, False),
        (b'{"spaceId": "999999", "title": "Nowhere"}', "application/json", 404, False),
        (b'{"spaceId": "65538", "title": "Plain"}', "text/plain", 415, True),
    ],
    ids=["malformed-json", "not-an-object", "no-space-id", "numeric-space-id", "bad-status",
         "unknown-parent", "no-title", "bad-representation", "unknown-space", "not-json"],
)  # fmt: skip
def test_bad_create_requests(
    simulator: Simulator,
    client: httpx.Client,
    checker: ContractChecker,
    content: bytes,
    content_type: str,
    status: int,
    document_rejects: bool,
) -> None:
    before = len(simulator.store.pages())
    response = client.post(PAGES, content=content, headers={"Content-Type": content_type})
    assert response.status_code == status, response.text
    assert error_of(response)["title"]
    assert len(simulator.store.pages()) == before
    verify_contract(simulator, checker, invalid=[0] if document_rejects else [])


# -- spaces -------------------------------------------------------------------------------


def test_spaces(simulator: Simulator, client: httpx.Client, checker: ContractChecker) -> None:
    listed = client.get(SPACES, params={"description-format": "plain"}).json()["results"]
    assert [(s["id"], s["key"]) for s in listed] == [
        (ENG, "ENG"),
        (DOCS, "DOCS"),
        (OPS, "OPS"),
        ("123456", "HARBOR"),  # the space the catalog's examples name
    ]
    assert listed[0]["description"]["plain"]["value"].startswith("Engineering")
    assert [s["homepageId"] for s in listed] == ["98305", "163841", "229377", "123456789"]

    paged = walk(client, SPACES, {"limit": 1, "sort": "-key"})
    assert [r.json()["results"][0]["key"] for r in paged] == ["OPS", "HARBOR", "ENG", "DOCS"]
    assert [
        s["key"] for s in client.get(SPACES, params={"keys": "OPS,DOCS"}).json()["results"]
    ] == [
        "DOCS",
        "OPS",
    ]
    one = client.get(f"{SPACES}/{ENG}", params={"include-labels": "true"}).json()
    assert one["key"] == "ENG"
    assert one["name"] == "Engineering"
    assert [label["name"] for label in one["labels"]["results"]] == ["engineering", "team"]
    assert one["_links"] == {"webui": "/spaces/ENG", "base": simulator.base_url}
    assert client.get(f"{SPACES}/1").status_code == 404
    verify_contract(simulator, checker)


def test_seed_has_three_realistic_spaces(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    statuses = "current,archived,trashed,deleted"
    for space in client.get(SPACES).json()["results"]:
        if space["key"] == "HARBOR":
            continue  # the examples' one-page space, not one of the three
        params = {
            "space-id": space["id"],
            "status": statuses,
            "limit": 250,
            "body-format": "storage",
        }
        pages = client.get(PAGES, params=params).json()["results"]
        assert 11 <= len(pages) <= 21
        by_id = {p["id"]: p for p in pages}
        roots = [p for p in pages if "parentId" not in p]
        assert [p["id"] for p in roots] == [space["homepageId"]]
        in_pages = [p for p in pages if p.get("parentType") == "page"]
        assert all(p["parentId"] in by_id for p in in_pages), "parents form a tree"
        for page in (p for p in pages if p.get("parentType") == "folder"):
            folder = client.get(f"/wiki/api/v2/folders/{page['parentId']}").json()
            assert folder["spaceId"] == space["id"], "a page in a folder stays in the space"
        assert all(p.get("parentType") in ("page", "folder") for p in pages if "parentId" in p)
        assert any(p["version"]["number"] > 1 for p in pages)
        assert all(p["body"]["storage"]["value"].startswith("<") for p in pages)
    verify_contract(simulator, checker)


# -- routing, faults and recording ------------------------------------------------------


def test_unknown_route_is_a_json_404_and_not_in_the_document(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    v2 = client.get("/wiki/api/v2/nothing-here")
    assert v2.status_code == 404
    assert error_of(v2)["code"] == "NOT_FOUND"
    v1 = client.get("/wiki/rest/api/nothing-here")
    assert v1.status_code == 404
    assert v1.json()["statusCode"] == 404
    wrong_method = client.delete(PAGES)
    assert wrong_method.status_code == 405
    assert wrong_method.headers["Allow"] == "GET, POST"
    for exchange in simulator.exchanges:
        with pytest.raises(AssertionError, match="not an operation"):
            checker.check_exchange(exchange)


def test_checker_rejects_a_response_that_breaks_the_schema(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    client.get(f"{PAGES}/98305")
    good = simulator.exchanges[0]
    assert checker.check_exchange(good).operation == "getPageById (GET /pages/{id})"
    page = good.json()
    page["id"] = 98305  # the schema says string
    bad_body = dataclasses.replace(good, response_body=json.dumps(page).encode())
    with pytest.raises(AssertionError, match=r"getPageById.*id: 98305 is not of type 'string'"):
        checker.check_exchange(bad_body)
    with pytest.raises(AssertionError, match="status 201 is not declared"):
        checker.check_exchange(dataclasses.replace(good, status=201))
    with pytest.raises(AssertionError, match="expected the v2 document to reject"):
        checker.check_exchange(good, request="invalid")


def test_fail_next_injects_429_503_and_500(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    simulator.fail_next(2)
    first, second, third = (client.get(PAGES, params={"limit": 1}) for _ in range(3))
    assert first.status_code == second.status_code == 429
    assert first.headers["Retry-After"] == "1"
    assert error_of(first)["code"] == "TOO_MANY_REQUESTS"
    assert third.status_code == 200

    simulator.fail_next(1, status=503, retry_after="7")
    unavailable = client.get(PAGES)
    assert unavailable.status_code == 503
    assert unavailable.headers["Retry-After"] == "7"
    simulator.fail_next(1, status=500)
    broken = client.get(PAGES)
    assert broken.status_code == 500
    assert "Retry-After" not in broken.headers
    assert client.get(PAGES).status_code == 200
    assert simulator.request_count == 6
    results = verify_contract(simulator, checker)
    assert [r.status for r in results] == [429, 429, 200, 503, 500, 200]
    assert all(any("not declared" in n for n in r.notes) for r in results if r.status != 200)


def test_fail_next_answers_before_authentication(
    simulator: Simulator, checker: ContractChecker
) -> None:
    simulator.fail_next(1, status=429, retry_after=None)
    response = httpx.get(simulator.url + PAGES)
    assert response.status_code == 429
    assert "Retry-After" not in response.headers
    verify_contract(simulator, checker, invalid=[0])  # no credentials: the document says no


def test_delay_next_makes_a_client_time_out(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    simulator.delay_next(1, 1.0)
    with pytest.raises(httpx.ReadTimeout):
        client.get(PAGES, params={"limit": 1}, timeout=0.2)
    assert simulator.request_count == 1  # it arrived, it is just slow
    started = time.monotonic()
    assert client.get(PAGES, params={"limit": 1}).status_code == 200
    assert time.monotonic() - started < 0.5, "only the next request is delayed"
    deadline = time.monotonic() + 5
    while len(simulator.exchanges) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    slow = max(simulator.exchanges, key=lambda e: e.duration)
    assert slow.duration >= 0.9
    verify_contract(simulator, checker)


def test_recording_request_count_and_clear(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    assert simulator.request_count == 0
    assert simulator.exchanges == []
    client.get(PAGES, params={"limit": 2, "space-id": OPS})
    client.post(PAGES, json={"spaceId": OPS, "title": "Recorded"})
    assert simulator.request_count == 2
    get, post = simulator.exchanges
    assert (get.method, get.path, get.query) == ("GET", PAGES, "limit=2&space-id=65540")
    assert get.status == 200
    assert get.response_header("link") is not None
    assert get.response_header("content-type") == "application/json;charset=UTF-8"
    assert len(get.json()["results"]) == 2
    assert post.request_json() == {"spaceId": OPS, "title": "Recorded"}
    assert post.request_header("Content-Type") == "application/json"
    assert post.json()["title"] == "Recorded"
    verify_contract(simulator, checker)
    simulator.clear()
    assert simulator.request_count == 0
    assert simulator.exchanges == []


def test_keep_alive_serves_several_requests_on_one_connection(
    simulator: Simulator, checker: ContractChecker
) -> None:
    auth = basic(EMAIL, API_TOKEN)
    conn = http.client.HTTPConnection("127.0.0.1", simulator.port, timeout=5)
    try:
        sockets = []
        for _ in range(3):
            conn.request("GET", PAGES + "?limit=1", headers={"Authorization": auth})
            response = conn.getresponse()
            assert response.status == 200
            assert json.loads(response.read())["results"]
            assert response.getheader("Connection") != "close"
            sockets.append(conn.sock)
        assert sockets[0] is not None
        assert sockets.count(sockets[0]) == 3
    finally:
        conn.close()
    assert simulator.request_count == 3
    verify_contract(simulator, checker)
