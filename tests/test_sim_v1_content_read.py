"""The simulator's v1 content reads (GET /wiki/rest/api/content and /content/{id}).

Every exchange is checked against Atlassian's v1 document by the ``sim`` fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from harbor_confluence.sim import Simulator
from tests.conftest import API_TOKEN, EMAIL

HOME = "98305"  # ENG space home (seed)


@pytest.fixture
def client(sim: Simulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.base_url, auth=(EMAIL, API_TOKEN)) as c:
        yield c


def test_default_expansions_are_space_history_version(client: httpx.Client) -> None:
    r = client.get(f"/rest/api/content/{HOME}")
    assert r.status_code == 200
    page = r.json()
    assert page["id"] == HOME
    assert page["type"] == "page"
    assert page["status"] == "current"
    assert page["space"]["key"] == "ENG"
    assert page["history"]["latest"] is True
    assert page["history"]["createdBy"]["accountId"]
    assert page["version"]["number"] >= 1
    assert "body" not in page
    assert "body" in page["_expandable"]
    assert page["_links"]["webui"].startswith("/spaces/ENG/pages/")
    assert page["_links"]["base"].endswith("/wiki")


def test_expand_body_children_and_ancestors(client: httpx.Client) -> None:
    pages = client.get("/rest/api/content", params={"spaceKey": "ENG", "limit": 50}).json()
    child = next(p for p in pages["results"] if p["id"] != HOME)
    expand = "body.storage,body.atlas_doc_format,version,ancestors,children.page,metadata.labels"
    r = client.get(f"/rest/api/content/{child['id']}", params={"expand": expand})
    assert r.status_code == 200
    page = r.json()
    assert page["body"]["storage"]["representation"] == "storage"
    assert page["body"]["storage"]["value"].startswith("<")
    assert page["body"]["atlas_doc_format"]["value"].startswith("{")
    assert "view" in page["body"]["_expandable"]
    assert page["ancestors"][0]["id"] == HOME
    assert "space" not in page  # expand given: no defaults
    assert page["metadata"]["labels"]["size"] == len(page["metadata"]["labels"]["results"])
    home = client.get(f"/rest/api/content/{HOME}", params={"expand": "children.page"}).json()
    assert any(k["id"] == child["id"] for k in home["children"]["page"]["results"])


def test_list_pages_by_space_with_start_limit_paging(client: httpx.Client) -> None:
    first = client.get("/rest/api/content", params={"spaceKey": "ENG", "limit": 5}).json()
    assert first["size"] == 5
    assert first["start"] == 0
    assert all(p["space"]["key"] == "ENG" for p in first["results"])
    assert first["_links"]["next"].startswith("/rest/api/content?")
    second = client.get(first["_links"]["next"]).json()
    assert second["start"] == 5
    assert {p["id"] for p in first["results"]}.isdisjoint(p["id"] for p in second["results"])
    titled = client.get(
        "/rest/api/content", params={"spaceKey": "ENG", "title": first["results"][0]["title"]}
    ).json()
    assert [p["id"] for p in titled["results"]] == [first["results"][0]["id"]]
    blogs = client.get("/rest/api/content", params={"type": "blogpost", "spaceKey": "ENG"})
    assert blogs.json()["results"] == []


def test_missing_and_invalid_ids(client: httpx.Client) -> None:
    missing = client.get("/rest/api/content/999999999")
    assert missing.status_code == 404
    assert missing.json()["statusCode"] == 404
    assert client.get("/rest/api/content/abc").status_code == 400


def test_a_status_outside_the_enum_is_a_400(contract: Any) -> None:
    with (
        Simulator(email=EMAIL, api_token=API_TOKEN) as sim,
        httpx.Client(base_url=sim.base_url, auth=(EMAIL, API_TOKEN)) as client,
    ):
        r = client.get(f"/rest/api/content/{HOME}", params={"status": "nope"})
        exchanges = sim.exchanges
    assert r.status_code == 400
    assert "status" in r.json()["message"]
    if contract is not None:
        contract.check_exchange(exchanges[0], request="invalid")


def test_children_attachment_lists_uploaded_files(client: httpx.Client) -> None:
    upload = client.post(
        f"/rest/api/content/{HOME}/child/attachment",
        files={"file": ("notes.txt", b"hello", "text/plain")},
        data={"minorEdit": "true"},
        headers={"X-Atlassian-Token": "no-check"},
    )
    assert upload.status_code == 200, upload.text
    r = client.get(f"/rest/api/content/{HOME}", params={"expand": "children.attachment"})
    files = r.json()["children"]["attachment"]["results"]
    assert [f["title"] for f in files] == ["notes.txt"]
    assert "page" in r.json()["children"]["_expandable"]
