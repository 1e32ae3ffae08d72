"""The simulator's catalog routes (docs/catalog-plan.md), driven with httpx over loopback.

Every test ends by checking each exchange it caused against Atlassian's documents (v2, or
v1 for the /wiki/rest/api routes); ``invalid=`` names the requests the document itself
must reject. Seed ids used here are documented in ``harbor_confluence/sim/seed.py``.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from harbor_confluence.sim import Simulator
from harbor_confluence.sim.cql import And, Clause, CqlError, Not, Or, OrderBy, Value, parse
from tests.contract import ContractChecker, ContractResult, require_spec

EMAIL = "catalog@example.com"
API_TOKEN = "sim-catalog-token-" + secrets.token_hex(6)
V2 = "/wiki/api/v2"
V1 = "/wiki/rest/api"
PAGES, BLOGPOSTS = f"{V2}/pages", f"{V2}/blogposts"
ENG, DOCS, OPS = "65538", "65539", "65540"
ARCH = 98306  # "Architecture Overview": 7 versions, last by Marcus Webb; 2 attachments
RUNBOOKS, RB_DB, RB_CACHE = 98312, 98313, 98314
ADRS = 98308  # children 98309..98311
CHECKLIST = 229383  # 4 tasks, 7340039..7340042
KAFKA_POST = 294913
MARCUS = "557058:7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
XSRF = {"X-Atlassian-Token": "no-check"}
DECISION = "ac:com.example.decisions:decision"


@pytest.fixture(scope="module")
def checker() -> ContractChecker:
    return ContractChecker()


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    with Simulator(email=EMAIL, api_token=API_TOKEN) as sim:
        yield sim


@pytest.fixture
def client(simulator: Simulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=simulator.url, auth=(EMAIL, API_TOKEN), timeout=10) as c:
        yield c


def verify_contract(
    sim: Simulator, checker: ContractChecker, invalid: Sequence[int] = ()
) -> list[ContractResult]:
    exchanges = sim.exchanges
    assert exchanges, "the test made no request"
    return checker.check_exchanges(exchanges, invalid=invalid)


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The single v2 error, after checking the envelope."""
    body = response.json()
    assert set(body) == {"errors"}, body
    (error,) = body["errors"]
    assert error["status"] == response.status_code
    return dict(error)


def v1_error(response: httpx.Response) -> str:
    """The v1 error message, after checking the envelope."""
    body = response.json()
    assert body["statusCode"] == response.status_code
    assert body["data"]["errors"][0]["message"]["translation"] == body["message"]
    return str(body["message"])


def walk(client: httpx.Client, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """All results of a cursor listing, following ``_links.next`` (which must match Link)."""
    items: list[dict[str, Any]] = []
    response = client.get(path, params=params)
    for _ in range(100):
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["results"])
        nxt = body["_links"].get("next")
        assert (nxt is None) == ("Link" not in response.headers)
        if nxt is None:
            return items
        response = client.get(nxt)
    raise AssertionError("pagination did not end")


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in items]


def storage(value: str) -> dict[str, str]:
    return {"representation": "storage", "value": value}


def page_update(page_id: int, version: int, title: str, body: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": str(page_id),
        "status": "current",
        "title": title,
        "body": storage(body),
        "version": {"number": version, "message": "edited by the test"},
        **extra,
    }


def get_body(client: httpx.Client, path: str, **params: Any) -> str:
    response = client.get(path, params={"body-format": "storage", **params})
    assert response.status_code == 200, response.text
    return str(response.json()["body"]["storage"]["value"])


# -- pages: update, versions, delete ----------------------------------------------------------


def test_update_page_keeps_every_version(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    seed = simulator.store.page(ARCH)
    assert seed is not None
    v7_body = seed.body_value
    updated = client.put(
        f"{PAGES}/{ARCH}", json=page_update(ARCH, 8, "Architecture Overview v2", "<p>Rewritten</p>")
    )
    assert updated.status_code == 200, updated.text
    page = updated.json()
    assert page["version"]["number"] == 8
    assert page["version"]["authorId"] == simulator.account_id
    assert page["version"]["message"] == "edited by the test"
    assert page["title"] == "Architecture Overview v2"
    assert page["body"]["storage"]["value"] == "<p>Rewritten</p>"
    assert page["_links"]["base"] == simulator.base_url

    assert get_body(client, f"{PAGES}/{ARCH}") == "<p>Rewritten</p>"
    assert get_body(client, f"{PAGES}/{ARCH}", version=7) == v7_body
    old = client.get(f"{PAGES}/{ARCH}", params={"version": 7}).json()
    assert old["title"] == "Architecture Overview"
    assert old["version"]["number"] == 7
    first = get_body(client, f"{PAGES}/{ARCH}", version=1)
    assert v7_body.startswith(first)
    assert len(first) < len(v7_body), "version 1 is an earlier, shorter draft"
    assert client.get(f"{PAGES}/{ARCH}", params={"version": 9}).status_code == 404

    versions = walk(client, f"{PAGES}/{ARCH}/versions", {"limit": 3, "body-format": "storage"})
    assert [v["number"] for v in versions] == [8, 7, 6, 5, 4, 3, 2, 1]
    assert versions[0]["page"] == {
        "title": "Architecture Overview v2",
        "id": str(ARCH),
        "body": {"storage": storage("<p>Rewritten</p>")},
    }
    oldest_first = client.get(f"{PAGES}/{ARCH}/versions", params={"sort": "modified-date"})
    assert [v["number"] for v in oldest_first.json()["results"]][:2] == [1, 2]

    latest = client.get(f"{PAGES}/{ARCH}/versions/8").json()
    assert latest["number"] == 8
    assert latest["prevVersion"] == 7
    assert "nextVersion" not in latest
    assert latest["collaborators"] == [simulator.account_id]
    first_version = client.get(f"{PAGES}/{ARCH}/versions/1").json()
    assert first_version["nextVersion"] == 2
    assert "prevVersion" not in first_version
    assert client.get(f"{PAGES}/{ARCH}/versions/99").status_code == 404

    renamed = simulator.store.page(RB_DB)
    assert renamed is not None
    assert renamed.versions[0].title == "Runbook: Postgres failover"  # seeded rename
    verify_contract(simulator, checker)


def test_stale_update_is_a_409_naming_the_current_version_and_its_author(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    before = simulator.store.page(ARCH)
    for sent in (7, 1, 9):
        stale = client.put(
            f"{PAGES}/{ARCH}", json=page_update(ARCH, sent, "Architecture Overview", "<p>x</p>")
        )
        assert stale.status_code == 409
        error = error_of(stale)
        assert error["code"] == "CONFLICT"
        assert error["title"].endswith("Current version is: 7")
        assert "Marcus Webb" in error["detail"]
        assert MARCUS in error["detail"]
        assert f"version.number {sent} was sent, 8 is expected" in error["detail"]
    assert simulator.store.page(ARCH) == before, "nothing was overwritten"
    results = verify_contract(simulator, checker)
    assert all(any("409 is not declared" in n for n in r.notes) for r in results)


def test_concurrent_updates_of_one_version_let_exactly_one_win(
    simulator: Simulator, checker: ContractChecker
) -> None:
    """The lost-update guarantee: the version check and the write are one step."""
    outcomes: list[tuple[int, str]] = []
    lock = threading.Lock()

    def update(n: int) -> None:
        with httpx.Client(base_url=simulator.url, auth=(EMAIL, API_TOKEN)) as c:
            body = f"<p>Writer {n}</p>"
            status = c.put(
                f"{PAGES}/{RB_CACHE}", json=page_update(RB_CACHE, 3, "Runbook: Flush", body)
            ).status_code
        with lock:
            outcomes.append((status, body))

    threads = [threading.Thread(target=update, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(s for s, _ in outcomes) == [200] + [409] * 7
    winner = next(body for status, body in outcomes if status == 200)
    page = simulator.store.page(RB_CACHE)
    assert page is not None
    assert page.version.number == 3
    assert page.body_value == winner
    verify_contract(simulator, checker)


def test_update_validation_and_moves(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    def put(page_id: int, payload: Any) -> httpx.Response:
        return client.put(f"{PAGES}/{page_id}", json=payload)

    no_version = page_update(RB_DB, 6, "Runbook: PostgreSQL failover", "<p>x</p>")
    del no_version["version"]
    assert put(RB_DB, no_version).status_code == 400
    wrong_id = put(RB_DB, page_update(RB_CACHE, 6, "Runbook: PostgreSQL failover", "<p>x</p>"))
    assert wrong_id.status_code == 400
    assert "'id'" in error_of(wrong_id)["title"]
    assert put(999_999, page_update(999_999, 2, "Nope", "<p>x</p>")).status_code == 404
    clash = put(RB_DB, page_update(RB_DB, 6, "Runbooks", "<p>x</p>"))
    assert clash.status_code == 409
    assert str(RUNBOOKS) in error_of(clash)["detail"]
    below_itself = put(
        RUNBOOKS, page_update(RUNBOOKS, 2, "Runbooks", "<p>x</p>", parentId=str(RB_DB))
    )
    assert below_itself.status_code == 400
    other_space = put(RB_DB, page_update(RB_DB, 6, "Runbook", "<p>x</p>", spaceId=OPS))
    assert other_space.status_code == 400
    assert simulator.store.page(RB_DB).version.number == 5  # type: ignore[union-attr]

    moved = put(RB_DB, page_update(RB_DB, 6, "Runbook: PostgreSQL failover", "<p>y</p>",
                                   parentId=str(ADRS)))  # fmt: skip
    assert moved.status_code == 200, moved.text
    assert moved.json()["parentId"] == str(ADRS)
    children = client.get(f"{PAGES}/{ADRS}/direct-children").json()["results"]
    assert str(RB_DB) in ids(children)
    verify_contract(simulator, checker, invalid=[0])  # the document requires 'version' too


def test_delete_trashes_then_purges(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    assert client.delete(f"{PAGES}/{RUNBOOKS}").status_code == 204
    assert client.get(f"{PAGES}/{RUNBOOKS}").status_code == 404
    trashed = client.get(f"{PAGES}/{RUNBOOKS}", params={"status": "trashed"})
    assert trashed.json()["status"] == "trashed"
    # Its children move up to the trashed page's parent, as in Confluence.
    assert client.get(f"{PAGES}/{RB_DB}").json()["parentId"] == "98305"
    listed = client.get(PAGES, params={"status": "trashed", "space-id": ENG}).json()["results"]
    assert str(RUNBOOKS) in ids(listed)
    assert client.delete(f"{PAGES}/{RUNBOOKS}").status_code == 404  # already in the trash
    assert client.get(f"{PAGES}/{RUNBOOKS}/labels").status_code == 404

    not_trashed = client.delete(f"{PAGES}/{RB_DB}", params={"purge": "true"})
    assert not_trashed.status_code == 400
    assert "not in the trash" in error_of(not_trashed)["title"]
    assert client.delete(f"{PAGES}/{RB_DB}").status_code == 204
    assert client.delete(f"{PAGES}/{RB_DB}", params={"purge": "true"}).status_code == 204
    assert simulator.store.page(RB_DB) is None
    assert client.get(f"{PAGES}/{RB_DB}", params={"status": "trashed"}).status_code == 404
    assert all(c.container_id != RB_DB for c in simulator.store.comments()), "comments purged"
    assert all(a.container_id != RB_DB for a in simulator.store.attachments())
    assert all(t.container_id != RB_DB for t in simulator.store.tasks())

    draft = client.post(PAGES, json={"spaceId": ENG, "status": "draft", "title": "Scratch"})
    draft_id = draft.json()["id"]
    assert client.delete(f"{PAGES}/{draft_id}").status_code == 400
    assert client.delete(f"{PAGES}/{ARCH}", params={"draft": "true"}).status_code == 400
    assert client.delete(f"{PAGES}/{draft_id}", params={"draft": "true"}).status_code == 204
    assert simulator.store.page(int(draft_id)) is None
    assert client.delete(f"{PAGES}/999999").status_code == 404
    restored = client.put(
        f"{PAGES}/{RUNBOOKS}", json=page_update(RUNBOOKS, 2, "Runbooks", "<p>Back</p>")
    )
    assert restored.status_code == 200
    assert restored.json()["status"] == "current"
    verify_contract(simulator, checker)


def test_children_and_ancestors(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    children = client.get(f"{PAGES}/{ADRS}/direct-children").json()["results"]
    assert ids(children) == ["98309", "98310", "98311"]
    assert children[0] == {
        "id": "98309",
        "status": "current",
        "title": "ADR-001: Use PostgreSQL as the primary datastore",
        "type": "page",
        "spaceId": ENG,
        "childPosition": 1000,
    }
    by_title = client.get(f"{PAGES}/{ADRS}/direct-children", params={"sort": "-title"})
    assert ids(by_title.json()["results"]) == ["98311", "98310", "98309"]
    paged = walk(client, f"{PAGES}/98305/direct-children", {"limit": 2})
    assert len(paged) == len({c["id"] for c in paged}) == 7  # home's live children
    assert {c["type"] for c in paged} == {"page", "folder"}  # 6 pages, the handbook folder
    assert "98321" in ids(paged)  # archived children are listed
    assert "98322" not in ids(paged)  # trashed ones are not

    chain = client.get(f"{PAGES}/98309/ancestors").json()["results"]
    assert chain == [
        {"id": "98305", "type": "page"},
        {"id": "98306", "type": "page"},
        {"id": "98308", "type": "page"},
    ]
    nearest = client.get(f"{PAGES}/98309/ancestors", params={"limit": 1}).json()["results"]
    assert nearest == [{"id": "98308", "type": "page"}]
    assert client.get(f"{PAGES}/98305/ancestors").json()["results"] == []
    bad_sort = client.get(f"{PAGES}/{ADRS}/direct-children", params={"sort": "newest"})
    assert bad_sort.status_code == 400
    # The document types this 'sort' as a plain string, so it cannot reject the value.
    verify_contract(simulator, checker)


def test_page_labels_attachments_and_comments(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    labels = client.get(f"{PAGES}/{RB_DB}/labels").json()["results"]
    assert [label["name"] for label in labels] == ["database", "runbook", "on-call"]  # by id
    assert [int(label["id"]) for label in labels] == sorted(int(lb["id"]) for lb in labels)
    assert {label["prefix"] for label in labels} == {"global"}
    by_name = client.get(f"{PAGES}/{RB_DB}/labels", params={"sort": "name", "limit": 2})
    assert [label["name"] for label in by_name.json()["results"]] == ["database", "on-call"]
    assert client.get(f"{PAGES}/{RB_DB}/labels", params={"prefix": "my"}).json()["results"] == []

    attachments = client.get(f"{PAGES}/{ARCH}/attachments").json()["results"]
    assert ids(attachments) == ["att425985"]
    (diagram,) = attachments
    assert diagram["pageId"] == str(ARCH)
    assert diagram["mediaType"] == "image/png"
    assert diagram["fileSize"] == len(simulator.store.attachment(425985).data)  # type: ignore[union-attr]
    assert diagram["version"]["number"] == 2
    assert diagram["downloadLink"].startswith(f"/download/attachments/{ARCH}/")
    trashed = client.get(f"{PAGES}/{ARCH}/attachments", params={"status": "trashed"})
    assert ids(trashed.json()["results"]) == ["att425990"]

    footer = client.get(f"{PAGES}/{ARCH}/footer-comments", params={"body-format": "storage"})
    (top,) = footer.json()["results"]  # replies are not listed here
    assert top["id"] == "360449"
    assert top["pageId"] == str(ARCH)
    assert top["title"] == "Re: Architecture Overview"
    assert "notifications service" in top["body"]["storage"]["value"]
    assert "focusedCommentId=360449" in top["_links"]["webui"]

    inline = client.get(f"{PAGES}/{ARCH}/inline-comments").json()["results"]
    assert ids(inline) == ["360458"]
    assert inline[0]["resolutionStatus"] == "open"
    assert inline[0]["properties"]["inlineOriginalSelection"] == "Envoy edge"
    resolved = client.get(
        f"{PAGES}/163848/inline-comments", params={"resolution-status": "resolved"}
    ).json()["results"]
    assert ids(resolved) == ["360459"]
    still_open = client.get(
        f"{PAGES}/163848/inline-comments", params={"resolution-status": "open"}
    ).json()["results"]
    assert still_open == []
    verify_contract(simulator, checker)


def test_page_properties_crud_with_version_checks(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    base = f"{PAGES}/{RB_DB}/properties"
    (review,) = client.get(base).json()["results"]
    assert review["id"] == "4587523"
    assert review["key"] == "harbor.review"
    assert review["value"]["nextReview"] == "2024-09-01"
    assert review["version"]["number"] == 3

    created = client.post(base, json={"key": "harbor.owner", "value": {"team": "Platform"}})
    assert created.status_code == 200, created.text
    prop = created.json()
    assert prop["version"]["number"] == 1
    assert prop["version"]["authorId"] == simulator.account_id
    duplicate = client.post(base, json={"key": "harbor.owner", "value": 1})
    assert duplicate.status_code == 400
    assert client.post(base, json={"value": 1}).status_code == 400
    keyed = client.get(base, params={"key": "harbor.owner"}).json()["results"]
    assert ids(keyed) == [prop["id"]]
    assert [p["key"] for p in client.get(base, params={"sort": "-key"}).json()["results"]] == [
        "harbor.review",
        "harbor.owner",
    ]

    one = f"{base}/{prop['id']}"
    update = {"key": "harbor.owner", "value": {"team": "SRE"}, "version": {"number": 2}}
    changed = client.put(one, json=update)
    assert changed.status_code == 200
    assert changed.json()["value"] == {"team": "SRE"}
    assert changed.json()["version"]["number"] == 2
    stale = client.put(one, json=update)
    assert stale.status_code == 409
    assert "Current version is: 2" in error_of(stale)["title"]
    rekey = {"key": "other", "value": 1, "version": {"number": 3}}
    assert client.put(one, json=rekey).status_code == 400
    assert client.get(one).json()["value"] == {"team": "SRE"}

    page = client.get(f"{PAGES}/{RB_DB}", params={"include-properties": "true"}).json()
    assert {p["key"] for p in page["properties"]["results"]} == {"harbor.review", "harbor.owner"}

    assert client.delete(one).status_code == 204
    assert client.get(one).status_code == 404
    assert client.delete(one).status_code == 404
    # A property of another page is not reachable through this one.
    assert client.get(f"{base}/4587521").status_code == 404
    assert client.get(f"{PAGES}/999999/properties").status_code == 404
    verify_contract(simulator, checker)


# -- spaces -------------------------------------------------------------------------------------


def test_space_pages_blogposts_and_labels(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    root = client.get(f"{V2}/spaces/{ENG}/pages", params={"depth": "root"}).json()["results"]
    assert ids(root) == ["98305"]
    everything = walk(client, f"{V2}/spaces/{DOCS}/pages", {"limit": 5, "sort": "title"})
    assert len(everything) == 16
    assert {p["spaceId"] for p in everything} == {DOCS}
    titles = [p["title"] for p in everything]
    assert titles == sorted(titles, key=str.casefold)

    posts = client.get(f"{V2}/spaces/{ENG}/blogposts").json()["results"]
    assert ids(posts) == ["294913", "294914"]  # the draft and the trashed post are hidden
    assert "parentId" not in posts[0]

    labels = client.get(f"{V2}/spaces/{ENG}/labels").json()["results"]
    assert [(lb["prefix"], lb["name"]) for lb in labels] == [
        ("team", "engineering"),
        ("team", "team"),
    ]
    assert client.get(f"{V2}/spaces/{ENG}/labels", params={"prefix": "my"}).json()["results"] == []
    for path in ("pages", "blogposts", "labels", "properties"):
        assert client.get(f"{V2}/spaces/1/{path}").status_code == 404
    verify_contract(simulator, checker)


def test_space_properties_crud(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    base = f"{V2}/spaces/{OPS}/properties"
    (schedule,) = client.get(base).json()["results"]
    assert schedule["key"] == "oncall.schedule"
    assert schedule["version"]["number"] == 2
    assert set(schedule["version"]) == {"createdAt", "createdBy", "message", "number"}

    created = client.post(base, json={"key": "ops.tier", "value": 1})
    assert created.status_code == 201
    prop = created.json()
    assert (
        created.headers["Location"]
        == f"{simulator.base_url}/api/v2/spaces/{OPS}/properties/{prop['id']}"
    )
    assert prop["createdBy"] == simulator.account_id
    one = f"{base}/{prop['id']}"
    assert client.get(one).json()["value"] == 1
    bumped = client.put(one, json={"key": "ops.tier", "value": 2, "version": {"number": 2}})
    assert bumped.status_code == 200
    assert bumped.json()["version"]["createdBy"] == simulator.account_id
    assert (
        client.put(one, json={"key": "ops.tier", "value": 3, "version": {"number": 2}}).status_code
        == 409
    )
    assert client.delete(one).status_code == 204
    assert client.get(one).status_code == 404
    assert client.get(f"{V2}/spaces/{ENG}/properties/4587527").status_code == 404
    verify_contract(simulator, checker)


# -- blog posts ---------------------------------------------------------------------------------


def test_blogposts_lifecycle(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    listed = walk(client, BLOGPOSTS, {"limit": 2, "body-format": "storage"})
    assert ids(listed) == ["294913", "294914", "294917", "294918", "294919"]
    assert all(p["status"] == "current" for p in listed)
    trashed = client.get(BLOGPOSTS, params={"status": "trashed"}).json()["results"]
    assert ids(trashed) == ["294916"]
    by_space = client.get(BLOGPOSTS, params={"space-id": OPS, "sort": "-created-date"})
    assert ids(by_space.json()["results"]) == ["294919", "294918"]

    post = client.get(f"{BLOGPOSTS}/{KAFKA_POST}", params={"include-labels": "true"}).json()
    assert post["title"] == "Kafka migration complete"
    assert post["_links"]["webui"] == (
        f"/spaces/ENG/blog/2024/03/12/{KAFKA_POST}/Kafka+migration+complete"
    )
    assert [lb["name"] for lb in post["labels"]["results"]] == ["kafka", "announcement"]
    assert client.get(f"{BLOGPOSTS}/294915").status_code == 404  # a draft
    assert client.get(f"{BLOGPOSTS}/294915", params={"get-draft": "true"}).status_code == 200

    created = client.post(
        BLOGPOSTS, json={"spaceId": DOCS, "title": "Docs sprint", "body": storage("<p>Hi</p>")}
    )
    assert created.status_code == 200, created.text
    new_id = created.json()["id"]
    assert created.json()["version"]["number"] == 1
    same_day = client.post(BLOGPOSTS, json={"spaceId": DOCS, "title": "docs SPRINT"})
    assert same_day.status_code == 409

    update = page_update(int(new_id), 2, "Docs sprint recap", "<p>Done</p>")
    assert client.put(f"{BLOGPOSTS}/{new_id}", json=update).status_code == 200
    stale = client.put(f"{BLOGPOSTS}/{new_id}", json=update)
    assert stale.status_code == 409
    assert "Current version is: 2" in error_of(stale)["title"]
    versions = client.get(f"{BLOGPOSTS}/{new_id}/versions", params={"body-format": "storage"})
    history = versions.json()["results"]
    assert [v["number"] for v in history] == [2, 1]
    assert history[1]["blogpost"]["body"]["storage"]["value"] == "<p>Hi</p>"
    assert history[1]["blogpost"]["title"] == "Docs sprint"

    labels = client.get(f"{BLOGPOSTS}/{KAFKA_POST}/labels").json()["results"]
    assert [lb["name"] for lb in labels] == ["kafka", "announcement"]
    comments = client.get(f"{BLOGPOSTS}/{KAFKA_POST}/footer-comments").json()["results"]
    assert ids(comments) == ["360455"]
    assert comments[0]["blogPostId"] == str(KAFKA_POST)

    assert client.delete(f"{BLOGPOSTS}/{new_id}").status_code == 204
    assert client.get(f"{BLOGPOSTS}/{new_id}", params={"status": "trashed"}).status_code == 200
    assert client.delete(f"{BLOGPOSTS}/{new_id}", params={"purge": "true"}).status_code == 204
    assert client.get(f"{BLOGPOSTS}/{new_id}", params={"status": "trashed"}).status_code == 404
    assert client.delete(f"{BLOGPOSTS}/294915", params={"draft": "true"}).status_code == 204
    verify_contract(simulator, checker)


# -- comments -----------------------------------------------------------------------------------


def test_footer_comment_lifecycle_with_replies(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    created = client.post(
        f"{V2}/footer-comments", json={"pageId": str(ARCH), "body": storage("<p>Nice</p>")}
    )
    assert created.status_code == 201, created.text
    comment = created.json()
    cid = comment["id"]
    assert created.headers["Location"] == f"{simulator.base_url}/api/v2/footer-comments/{cid}"
    assert comment["pageId"] == str(ARCH)
    assert comment["version"]["number"] == 1
    assert comment["body"]["storage"]["value"] == "<p>Nice</p>"
    assert comment["_links"]["base"] == simulator.base_url

    reply = client.post(
        f"{V2}/footer-comments", json={"parentCommentId": cid, "body": storage("<p>Agreed</p>")}
    )
    assert reply.status_code == 201
    assert reply.json()["parentCommentId"] == cid
    assert reply.json()["pageId"] == str(ARCH)
    children = client.get(f"{V2}/footer-comments/{cid}/children").json()["results"]
    assert ids(children) == [reply.json()["id"]]
    assert set(children[0]) >= {"parentCommentId", "version", "title", "status"}
    on_post = client.post(
        f"{V2}/footer-comments",
        json={"blogPostId": str(KAFKA_POST), "body": {"storage": storage("<p>+1</p>")}},
    )
    assert on_post.status_code == 201
    assert on_post.json()["blogPostId"] == str(KAFKA_POST)
    on_file = client.post(
        f"{V2}/footer-comments", json={"attachmentId": "att425985", "body": storage("<p>ok</p>")}
    )
    assert on_file.status_code == 201
    assert on_file.json()["attachmentId"] == "att425985"

    one = f"{V2}/footer-comments/{cid}"
    edit = {"version": {"number": 2, "message": "typo"}, "body": storage("<p>Very nice</p>")}
    edited = client.put(one, json=edit)
    assert edited.status_code == 200
    assert edited.json()["version"]["number"] == 2
    stale = client.put(one, json=edit)
    assert stale.status_code == 409
    assert "Current version is: 2" in error_of(stale)["title"]
    old = client.get(one, params={"version": 1, "body-format": "storage"}).json()
    assert old["body"]["storage"]["value"] == "<p>Nice</p>"
    full = client.get(one, params={"include-versions": "true"}).json()
    assert [v["number"] for v in full["versions"]["results"]] == [2, 1]

    assert client.delete(one).status_code == 204
    assert client.get(one).status_code == 404
    assert simulator.store.comment(int(reply.json()["id"])) is None, "replies go with it"
    assert client.delete(one).status_code == 404
    assert client.get(f"{one}/children").status_code == 404
    verify_contract(simulator, checker)


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"body": storage("<p>x</p>")}, 400),
        ({"pageId": str(ARCH), "blogPostId": str(KAFKA_POST), "body": storage("<p>x</p>")}, 400),
        ({"pageId": "999999", "body": storage("<p>x</p>")}, 404),
        ({"pageId": str(ARCH)}, 400),
        ({"pageId": str(ARCH), "body": storage("  ")}, 400),
        ({"parentCommentId": "360458", "body": storage("<p>x</p>")}, 404),  # an inline one
    ],
    ids=["no-container", "two-containers", "unknown-page", "no-body", "blank", "inline-parent"],
)
def test_bad_footer_comments(
    simulator: Simulator,
    client: httpx.Client,
    checker: ContractChecker,
    payload: dict[str, Any],
    status: int,
) -> None:
    before = len(simulator.store.comments())
    response = client.post(f"{V2}/footer-comments", json=payload)
    assert response.status_code == status, response.text
    assert error_of(response)["title"]
    assert len(simulator.store.comments()) == before
    verify_contract(simulator, checker)


def test_comment_listings(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    footer = walk(client, f"{V2}/footer-comments", {"limit": 3})
    expected = sorted(
        (c for c in simulator.store.comments() if c.kind == "footer"),
        key=lambda c: (c.created_at, c.id),
    )
    assert ids(footer) == [str(c.id) for c in expected]
    assert next(c for c in footer if c["id"] == "360450")["parentCommentId"] == "360449"
    newest = client.get(f"{V2}/footer-comments", params={"sort": "-created-date", "limit": 1})
    assert ids(newest.json()["results"]) == [str(expected[-1].id)]

    old_version = {"version": 1, "body-format": "storage"}
    edited = client.get(f"{V2}/footer-comments/360452", params=old_version)
    assert "300 s" in edited.json()["body"]["storage"]["value"]
    current = client.get(f"{V2}/footer-comments/360452", params={"body-format": "storage"})
    assert "60 s" in current.json()["body"]["storage"]["value"]
    assert current.json()["version"]["number"] == 2

    inline = client.get(f"{V2}/inline-comments").json()["results"]
    assert ids(inline) == ["360458", "360459", "360460", "360461"]
    resolved = client.get(f"{V2}/inline-comments/360459", params={"body-format": "storage"})
    body = resolved.json()
    assert body["resolutionStatus"] == "resolved"
    assert body["resolutionLastModifierId"] == MARCUS
    assert body["properties"]["inlineMarkerRef"]
    assert body["_links"]["base"] == simulator.base_url
    assert client.get(f"{V2}/inline-comments/360449").status_code == 404  # a footer comment
    assert client.get(f"{V2}/footer-comments/360458").status_code == 404  # an inline one
    verify_contract(simulator, checker)


# -- attachments --------------------------------------------------------------------------------


def upload(
    client: httpx.Client,
    content_id: int | str,
    files: list[tuple[str, bytes, str]],
    *,
    headers: dict[str, str] | None = None,
    data: dict[str, str] | None = None,
) -> httpx.Response:
    return client.post(
        f"{V1}/content/{content_id}/child/attachment",
        files=[("file", f) for f in files],
        data={"minorEdit": "true"} if data is None else data,
        headers=XSRF if headers is None else headers,
    )


def test_upload_keeps_the_bytes_and_answers_a_v1_content_array(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    blob = bytes(range(256)) * 40 + b"\r\n--not-a-boundary\r\n"
    response = upload(
        client, ARCH, [("capacity.bin", blob, "application/octet-stream")],
        data={"minorEdit": "false", "comment": "Capacity model, v1 ✓"},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["size"] == 1
    (content,) = body["results"]
    assert content["type"] == "attachment"
    assert content["title"] == "capacity.bin"
    assert content["id"].startswith("att")
    assert content["container"]["id"] == str(ARCH)
    assert content["extensions"]["fileSize"] == len(blob)
    assert content["metadata"]["comment"] == "Capacity model, v1 ✓"
    assert content["version"]["minorEdit"] is False
    assert content["version"]["by"]["accountId"] == simulator.account_id
    stored = simulator.store.attachment(int(content["id"][3:]))
    assert stored is not None
    assert stored.data == blob

    v2 = client.get(f"{V2}/attachments/{content['id']}").json()
    assert v2["fileSize"] == len(blob)
    assert v2["pageId"] == str(ARCH)
    assert v2["comment"] == "Capacity model, v1 ✓"
    listed = client.get(f"{PAGES}/{ARCH}/attachments").json()["results"]
    assert content["id"] in ids(listed)

    two = upload(
        client,
        KAFKA_POST,
        [("a.txt", b"alpha", "text/plain"), ("b.csv", b"x,y\n1,2\n", "text/csv")],
        headers={"X-Atlassian-Token": "nocheck"},  # the document's spelling works too
    )
    assert two.status_code == 200
    assert [c["title"] for c in two.json()["results"]] == ["a.txt", "b.csv"]
    assert [c["metadata"]["mediaType"] for c in two.json()["results"]] == ["text/plain", "text/csv"]
    verify_contract(simulator, checker)


@pytest.mark.parametrize(
    ("case", "status", "document_rejects"),
    [
        ("no-xsrf-header", 403, False),
        ("duplicate-name", 400, False),
        ("no-minor-edit", 400, True),
        ("unknown-content", 404, False),
        ("trashed-page", 404, False),
        ("not-multipart", 415, True),
    ],
)
def test_bad_uploads(
    simulator: Simulator,
    client: httpx.Client,
    checker: ContractChecker,
    case: str,
    status: int,
    document_rejects: bool,
) -> None:
    before = len(simulator.store.attachments())
    file = [("architecture-diagram.png", b"\x89PNG", "image/png")]
    if case == "no-xsrf-header":
        response = upload(client, ARCH, [("x.txt", b"x", "text/plain")], headers={})
    elif case == "duplicate-name":
        response = upload(client, ARCH, file)
    elif case == "no-minor-edit":
        response = upload(client, ARCH, [("x.txt", b"x", "text/plain")], data={})
    elif case == "unknown-content":
        response = upload(client, 999999, [("x.txt", b"x", "text/plain")])
    elif case == "trashed-page":
        response = upload(client, 98322, [("x.txt", b"x", "text/plain")])
    else:
        response = client.post(
            f"{V1}/content/{ARCH}/child/attachment", json={"file": "x"}, headers=XSRF
        )
    assert response.status_code == status, response.text
    message = v1_error(response)
    if case == "no-xsrf-header":
        assert message == "XSRF check failed"
    if case == "duplicate-name":
        assert "architecture-diagram.png" in message
    assert len(simulator.store.attachments()) == before
    verify_contract(simulator, checker, invalid=[0] if document_rejects else [])


def test_attachments_v2_list_get_delete(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    everything = walk(client, f"{V2}/attachments", {"limit": 2})
    # by creation date: the trashed att425990 is left out
    assert ids(everything) == [
        "att425985",
        "att425987",
        "att425986",
        "att425992",
        "att425989",
        "att425991",
        "att425988",
        "att425993",
    ]
    pngs = client.get(f"{V2}/attachments", params={"mediaType": "image/png"}).json()["results"]
    assert ids(pngs) == ["att425985", "att425989"]
    named = client.get(f"{V2}/attachments", params={"filename": "rota-2024.csv"}).json()
    assert ids(named["results"]) == ["att425988"]
    assert named["results"][0]["mediaTypeDescription"] == "CSV File"

    bare = client.get(f"{V2}/attachments/425985").json()
    prefixed = client.get(
        f"{V2}/attachments/att425985",
        params={"include-versions": "true", "include-labels": "true", "version": 1},
    ).json()
    assert bare["id"] == prefixed["id"] == "att425985"
    assert prefixed["version"]["number"] == 1
    assert [v["number"] for v in prefixed["versions"]["results"]] == [2, 1]
    assert [lb["name"] for lb in prefixed["labels"]["results"]] == ["diagram"]
    assert bare["_links"]["base"] == simulator.base_url

    assert client.delete(f"{V2}/attachments/425988").status_code == 204
    assert "att425988" not in ids(client.get(f"{V2}/attachments").json()["results"])
    trashed = client.get(f"{V2}/attachments", params={"status": "trashed"}).json()["results"]
    assert "att425988" in ids(trashed)
    not_trashed = client.delete(f"{V2}/attachments/425987", params={"purge": "true"})
    assert not_trashed.status_code == 400
    assert client.delete(f"{V2}/attachments/425988", params={"purge": "true"}).status_code == 204
    assert simulator.store.attachment(425988) is None
    assert client.get(f"{V2}/attachments/425988").status_code == 404
    assert client.delete(f"{V2}/attachments/425988").status_code == 404
    assert client.get(f"{V2}/attachments/nope").status_code == 400
    # DELETE declares an int64 id, unlike GET: "att<id>" is refused with a hint.
    prefixed_delete = client.delete(f"{V2}/attachments/att425986")
    assert prefixed_delete.status_code == 400
    assert "'att' prefix" in error_of(prefixed_delete)["detail"]
    assert simulator.store.attachment(425986).status == "current"  # type: ignore[union-attr]
    rejected = [
        n for n, e in enumerate(simulator.exchanges) if e.path.endswith(("/nope", "/att425986"))
    ]
    assert len(rejected) == 2
    verify_contract(simulator, checker, invalid=rejected)


# -- labels -------------------------------------------------------------------------------------


def test_labels_added_and_removed_through_v1_and_listed_through_v2(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    added = client.post(
        f"{V1}/content/{RB_DB}/label",
        json=[{"prefix": "global", "name": "Tier-1"}, {"prefix": "my", "name": "later"}],
    )
    assert added.status_code == 200, added.text
    body = added.json()
    assert [(lb["prefix"], lb["name"]) for lb in body["results"]] == [
        ("global", "runbook"),
        ("global", "database"),
        ("global", "on-call"),
        ("global", "tier-1"),
        ("my", "later"),
    ]
    assert body["size"] == 5
    assert all(lb["label"] == lb["name"] and lb["id"].isdigit() for lb in body["results"])
    single = client.post(
        f"{V1}/content/{KAFKA_POST}/label", json={"prefix": "global", "name": "q1"}
    )
    assert single.status_code == 200
    assert "q1" in [lb["name"] for lb in single.json()["results"]]

    v2_labels = client.get(f"{PAGES}/{RB_DB}/labels").json()["results"]
    assert ("my", "later") in [(lb["prefix"], lb["name"]) for lb in v2_labels]
    only_mine = client.get(f"{PAGES}/{RB_DB}/labels", params={"prefix": "my"}).json()["results"]
    assert [lb["name"] for lb in only_mine] == ["later"]

    site = walk(client, f"{V2}/labels", {"limit": 10})
    names = {(lb["prefix"], lb["name"]): lb["id"] for lb in site}
    assert ("global", "tier-1") in names
    assert ("team", "engineering") in names
    by_id = client.get(f"{V2}/labels", params={"label-id": names[("global", "tier-1")]})
    assert [lb["name"] for lb in by_id.json()["results"]] == ["tier-1"]
    teams = client.get(f"{V2}/labels", params={"prefix": "team"}).json()["results"]
    assert {lb["prefix"] for lb in teams} == {"team"}

    assert client.delete(f"{V1}/content/{RB_DB}/label/tier-1").status_code == 204
    again = client.delete(f"{V1}/content/{RB_DB}/label/tier-1")
    assert again.status_code == 404
    assert "tier-1" in v1_error(again)
    assert (
        client.delete(f"{V1}/content/{RB_DB}/label", params={"name": "my:later"}).status_code == 204
    )
    assert (
        client.delete(f"{V1}/content/{RB_DB}/label", params={"name": "runbook"}).status_code == 204
    )
    page = simulator.store.page(RB_DB)
    assert page is not None
    assert page.labels == ("database", "on-call")
    assert (
        client.post(
            f"{V1}/content/att425985/label", json={"prefix": "global", "name": "png"}
        ).status_code
        == 200
    )
    verify_contract(simulator, checker)


@pytest.mark.parametrize(
    ("payload", "content", "status"),
    [
        ([{"prefix": "global", "name": "has space"}], RB_DB, 400),
        ([{"prefix": "global", "name": "semi;colon"}], RB_DB, 400),
        ([{"prefix": "system", "name": "x"}], RB_DB, 400),
        ([{"prefix": "global", "name": ""}], RB_DB, 400),
        ([{"prefix": "global", "name": "ok"}], 999999, 404),
        ([{"prefix": "global", "name": "ok"}], 98322, 404),  # trashed page
    ],
    ids=["space", "semicolon", "system-prefix", "empty", "unknown-content", "trashed"],
)
def test_bad_label_requests(
    simulator: Simulator,
    client: httpx.Client,
    checker: ContractChecker,
    payload: list[dict[str, str]],
    content: int,
    status: int,
) -> None:
    response = client.post(f"{V1}/content/{content}/label", json=payload)
    assert response.status_code == status, response.text
    assert v1_error(response)
    page = simulator.store.page(RB_DB)
    assert page is not None
    assert page.labels == ("runbook", "database", "on-call")
    verify_contract(simulator, checker)


# -- tasks --------------------------------------------------------------------------------------


def ms(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1000)


def test_tasks_follow_page_bodies(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    everything = walk(client, f"{V2}/tasks", {"limit": 5})
    assert len(everything) == 12
    on_checklist = client.get(
        f"{V2}/tasks", params={"page-id": CHECKLIST, "body-format": "storage"}
    )
    tasks = on_checklist.json()["results"]
    assert ids(tasks) == ["7340039", "7340040", "7340041", "7340042"]
    assert [t["localId"] for t in tasks] == ["1", "2", "3", "4"]
    assert tasks[0]["status"] == "complete"
    assert "completedAt" in tasks[0]
    assert tasks[2]["assignedTo"] == "557058:41e2d3c4-b5a6-4978-8f6e-5d4c3b2a1908"
    assert tasks[2]["dueAt"] == "2024-05-10T00:00:00.000Z"
    assert tasks[1]["body"]["storage"]["value"].startswith("Open a status page entry")
    due = client.get(
        f"{V2}/tasks", params={"due-at-from": ms("2024-05-01"), "due-at-to": ms("2024-05-31")}
    )
    assert ids(due.json()["results"]) == ["7340041", "7340042"]
    done = client.get(f"{V2}/tasks", params={"status": "complete", "space-id": OPS})
    assert ids(done.json()["results"]) == ["7340039"]
    on_post = client.get(f"{V2}/tasks", params={"blogpost-id": 294917}).json()["results"]
    assert [t["blogPostId"] for t in on_post] == ["294917", "294917"]

    ticked = client.put(f"{V2}/tasks/7340040", json={"status": "complete"})
    assert ticked.status_code == 200, ticked.text
    task = ticked.json()
    assert task["status"] == "complete"
    assert task["completedBy"] == simulator.account_id
    assert "completedAt" in task
    body = get_body(client, f"{PAGES}/{CHECKLIST}")
    assert body.count("<ac:task-status>complete</ac:task-status>") == 2
    assert client.get(f"{PAGES}/{CHECKLIST}").json()["version"]["number"] == 3, "no new version"
    unticked = client.put(f"{V2}/tasks/7340039", json={"status": "incomplete"}).json()
    assert "completedBy" not in unticked
    assert client.get(f"{V2}/tasks/7340039").json()["status"] == "incomplete"

    assert client.put(f"{V2}/tasks/7340040", json={"status": "done"}).status_code == 400
    assert (
        client.put(f"{V2}/tasks/7340040", json={"status": "complete", "id": "1"}).status_code == 400
    )
    assert client.get(f"{V2}/tasks/1").status_code == 404
    verify_contract(simulator, checker, invalid=[len(simulator.exchanges) - 3])


def test_editing_a_body_adds_and_drops_tasks(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    body = (
        "<ac:task-list><ac:task><ac:task-id>1</ac:task-id><ac:task-status>incomplete"
        "</ac:task-status><ac:task-body>Only one left</ac:task-body></ac:task></ac:task-list>"
    )
    updated = client.put(
        f"{PAGES}/{CHECKLIST}",
        json=page_update(CHECKLIST, 4, "Incident Response Checklist", body),
    )
    assert updated.status_code == 200
    tasks = client.get(f"{V2}/tasks", params={"page-id": CHECKLIST, "body-format": "storage"})
    (task,) = tasks.json()["results"]
    assert task["id"] == "7340039", "the task with the same local id keeps its id"
    assert task["status"] == "incomplete"
    assert task["body"]["storage"]["value"] == "Only one left"
    assert client.get(f"{V2}/tasks/7340040").status_code == 404
    created = client.post(PAGES, json={"spaceId": OPS, "title": "Todo", "body": storage(body)})
    new_tasks = client.get(f"{V2}/tasks", params={"page-id": created.json()["id"]}).json()
    assert len(new_tasks["results"]) == 1
    assert new_tasks["results"][0]["createdBy"] == simulator.account_id
    verify_contract(simulator, checker)


# -- custom content and the current user --------------------------------------------------------


def test_custom_content(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    missing_type = client.get(f"{V2}/custom-content")
    assert missing_type.status_code == 400
    assert "'type'" in error_of(missing_type)["title"]
    decisions = client.get(
        f"{V2}/custom-content", params={"type": DECISION, "body-format": "storage"}
    ).json()["results"]
    assert ids(decisions) == ["491521", "491522", "491523", "491524"]
    assert decisions[0]["pageId"] == str(ADRS)
    assert decisions[0]["body"]["storage"]["value"].startswith("<p>Accepted")
    assert decisions[2]["customContentId"] == "491521"
    in_ops = client.get(f"{V2}/custom-content", params={"type": DECISION, "space-id": OPS})
    assert ids(in_ops.json()["results"]) == ["491524"]
    assert client.get(f"{V2}/custom-content", params={"type": "ac:nope"}).json()["results"] == []

    raw = client.get(f"{V2}/custom-content/491525", params={"body-format": "raw"}).json()
    assert raw["type"] == "forge:harbor-timeline:incident-event"
    assert raw["body"]["raw"]["value"].startswith('{"at":')
    assert (
        client.get(f"{V2}/custom-content/491525", params={"body-format": "storage"}).json()["body"]
        == {}
    )
    first = client.get(
        f"{V2}/custom-content/491521",
        params={"version": 1, "body-format": "storage", "include-labels": "true"},
    ).json()
    assert first["body"]["storage"]["value"].startswith("<p>Proposed")
    assert [lb["name"] for lb in first["labels"]["results"]] == ["observability"]
    assert client.get(f"{V2}/custom-content/98306").status_code == 404
    verify_contract(simulator, checker, invalid=[0])


def test_current_user(simulator: Simulator, client: httpx.Client, checker: ContractChecker) -> None:
    me = client.get(f"{V1}/user/current")
    assert me.status_code == 200
    user = me.json()
    assert user["accountId"] == simulator.account_id
    assert user["email"] == EMAIL
    assert user["type"] == "known"
    assert user["displayName"] == "Simulator User"
    assert "operations" not in user
    expanded = client.get(f"{V1}/user/current", params={"expand": "operations"}).json()
    assert {"operation": "create", "targetType": "page"} in expanded["operations"]
    assert client.get(f"{V1}/user/current", params={"expand": "groups"}).status_code == 400
    verify_contract(simulator, checker, invalid=[2])


# -- CQL ----------------------------------------------------------------------------------------


def test_cql_parser_builds_an_inspectable_ast() -> None:
    query = parse(
        'type = page AND space in ("ENG", "OPS") AND (label = "runbook" OR title ~ "fail*") '
        "AND NOT creator = currentUser() ORDER BY lastmodified DESC, title"
    )
    assert isinstance(query.where, And)
    first, spaces, either, negated = query.where.items
    assert first == Clause("type", "=", (Value("word", "page"),))
    assert spaces == Clause("space", "in", (Value("string", "ENG"), Value("string", "OPS")))
    assert isinstance(either, Or)
    assert isinstance(negated, Not)
    assert negated.item == Clause("creator", "=", (Value("function", "currentuser"),))
    assert query.order_by == (OrderBy("lastmodified", True), OrderBy("title", False))
    assert [c.field for c in query.clauses()] == ["type", "space", "label", "title", "creator"]


@pytest.mark.parametrize(
    "hostile",
    [
        'x" OR space = "OPS',
        'x") OR (type = "page',
        "x ORDER BY created",
        "\\",
        'a\\"b',
        "\uff2f\uff32 \uff54\uff59\uff50\uff45 = page",  # full-width look-alikes of OR type
        "it's",
        "\u202e) OR (1=1",
    ],
)
def test_hostile_text_stays_inside_its_literal(hostile: str) -> None:
    escaped = hostile.replace("\\", "\\\\").replace('"', '\\"')
    query = parse(f'type = "page" AND text ~ "{escaped}"')
    assert query.order_by == ()
    assert list(query.clauses())[1] == Clause("text", "~", (Value("string", hostile),))
    assert len(list(query.clauses())) == 2


@pytest.mark.parametrize(
    ("cql", "reason"),
    [
        ("", "Expected a clause"),
        ('text ~ "unterminated', "Unterminated string"),
        ('text ~ "bad \\n escape"', "Illegal escape"),
        ('foo = "bar"', "No field exists with the name 'foo'"),
        ('text = "x"', "operator '=' is not supported by field 'text'"),
        ('type = "whiteboard"', "Unsupported type"),
        ('created >= "last week"', "Invalid date"),
        ('created >= "2024-02-30"', "Invalid date"),
        ("ancestor = abc", "'ancestor' takes a content id"),
        ("type = page AND", "Expected a field name"),
        ('type = page title ~ "x"', "Expected AND, OR or the end"),
        ("(type = page", "Expected ')'"),
        ("type = page ORDER BY text", "Cannot order by"),
        ("label = now()", "Unknown function"),
        ("type = page; drop", "Unexpected character"),
    ],
)
def test_cql_errors(cql: str, reason: str) -> None:
    with pytest.raises(CqlError, match=re.escape(reason)):
        parse(cql)


def search(client: httpx.Client, cql: str, **params: Any) -> httpx.Response:
    return client.get(f"{V1}/search", params={"cql": cql, **params})


def result_ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["content"]["id"] for r in response.json()["results"]]


def test_search_fields(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    runbooks = search(
        client,
        'type = "page" AND space in ("ENG", "OPS") AND label = "runbook"',
        limit=50,
    )
    assert sorted(result_ids(runbooks)) == ["98312", "98313", "98314"]
    cases: list[tuple[str, list[str]]] = [
        ('type = "page" AND text ~ "failover"', ["98309", "98313"]),
        ('type = "page" AND title ~ "failovers"', ["98313"]),  # plurals fold
        ('type = page AND title ~ "runbook"', ["98312", "98313", "98314"]),
        ('title = "Glossary" AND space = "OPS"', ["229390"]),
        ('type = blogpost AND label in ("kafka", "postmortem")', ["294913", "294918"]),
        ('ancestor = 98312', ["98313", "98314"]),
        ('id = 98306', ["98306"]),
        ('id = "att425986"', ["att425986"]),
        ('type = attachment AND title ~ "diagram"', ["att425985"]),
        ('type = comment AND text ~ "DNS TTL"', ["360452"]),
        ('type = page AND text ~ "\\"base backup\\""', ["98313"]),  # a phrase
        ('type = page AND text ~ "promot*"', ["98313", "229386"]),
        (f'type = page AND creator = "{MARCUS}" AND space = DOCS',
         ["163845", "163846", "163847"]),
        ('type = page AND created >= "2022-05-24" AND created < "2022-05-28"',
         ["163848", "229378"]),
        ('type = page AND lastmodified > "2022/09/29 00:00"', ["229386", "229390"]),
        ('type = page AND created = "2022-03-01"', ["98305"]),
        ('type = blogpost AND lastmodified <= "2024-02-21"', ["294918"]),
        ('type = page AND space = ENG AND NOT label = "adr" AND title ~ "ADR"', []),
        ('type = page AND (space = DOCS OR space = OPS) AND title ~ "glossary"',
         ["163856", "229390"]),
    ]  # fmt: skip
    for cql, expected in cases:
        assert sorted(result_ids(search(client, cql, limit=50))) == sorted(expected), cql
    contributed = search(client, "contributor = currentUser()")
    assert result_ids(contributed) == []
    client.put(f"{PAGES}/{RB_CACHE}", json=page_update(RB_CACHE, 3, "Runbook: Flush", "<p>z</p>"))
    assert result_ids(search(client, "contributor = currentUser()")) == [str(RB_CACHE)]
    assert result_ids(search(client, 'type = page AND text ~ "FLUSHDB"')) == []
    verify_contract(simulator, checker)


def test_search_result_shape_highlight_and_paging(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    first = search(client, 'type = "page" AND text ~ "runbook"', limit=2)
    body = first.json()
    assert body["start"] == 0
    assert body["limit"] == 2
    assert body["size"] == 2
    assert body["totalSize"] >= 4
    assert body["cqlQuery"] == 'type = "page" AND text ~ "runbook"'
    assert body["_links"]["base"] == simulator.base_url
    hit = body["results"][0]
    assert hit["content"]["type"] == "page"
    assert "@@@hl@@@" in hit["title"] + hit["excerpt"]
    assert hit["url"].startswith("/spaces/")
    assert hit["resultGlobalContainer"]["displayUrl"].startswith("/spaces/")
    assert hit["lastModified"].endswith("Z")

    collected = [r["content"]["id"] for r in body["results"]]
    nxt = body["_links"]["next"]
    assert "cursor=" in nxt
    while nxt:
        page = client.get("/wiki" + nxt).json()
        collected += [r["content"]["id"] for r in page["results"]]
        assert page["_links"].get("prev")
        nxt = page["_links"].get("next")
    assert len(collected) == len(set(collected)) == body["totalSize"]

    plain = search(client, 'title ~ "runbook"', excerpt="none", limit=1).json()["results"][0]
    assert plain["excerpt"] == ""
    indexed = search(client, 'title ~ "runbook"', excerpt="indexed", limit=1).json()
    assert "@@@hl@@@" not in indexed["results"][0]["title"]
    ordered = search(client, "type = page AND space = OPS ORDER BY title DESC", limit=3)
    titles = [r["content"]["title"] for r in ordered.json()["results"]]
    assert titles == ["Vendor Contacts", "Operations Home", "On-call Rotation"]
    capped = search(client, "type = page", limit=1000).json()
    assert capped["limit"] == 100
    wrong_cursor = search(client, "type = blogpost", cursor=nxt or body["_links"]["next"])
    assert wrong_cursor.status_code == 400
    verify_contract(simulator, checker)


def test_search_records_queries_and_answers_400_for_bad_cql(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    assert simulator.last_cql is None
    hostile = 'x" OR space = "OPS'
    escaped = hostile.replace("\\", "\\\\").replace('"', '\\"')
    cql = f'type = "page" AND text ~ "{escaped}"'
    assert result_ids(search(client, cql)) == []
    record = simulator.last_cql
    assert record is not None
    assert record.raw == cql
    assert record.error is None
    assert record.ast.literals() == ["page", hostile]

    bad = search(client, 'type = page AND nonsense = "x"')
    assert bad.status_code == 400
    message = v1_error(bad)
    assert message.startswith(
        "com.atlassian.confluence.api.service.exceptions.BadRequestException: Could not parse cql"
    )
    assert "nonsense" in message
    assert simulator.last_cql is not None
    assert simulator.last_cql.ast is None
    assert "nonsense" in (simulator.last_cql.error or "")
    assert search(client, 'text ~ "open').status_code == 400
    no_cql = client.get(f"{V1}/search")
    assert no_cql.status_code == 400
    assert len(simulator.store.cql_history) == 3
    verify_contract(simulator, checker, invalid=[3])


def test_search_sees_writes(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    created = client.post(
        PAGES, json={"spaceId": OPS, "title": "Zebra drill", "body": storage("<p>quokka</p>")}
    )
    new_id = created.json()["id"]
    assert result_ids(search(client, 'text ~ "quokka"')) == [new_id]
    client.put(f"{PAGES}/{new_id}", json=page_update(int(new_id), 2, "Zebra drill", "<p>x</p>"))
    assert result_ids(search(client, 'text ~ "quokka"')) == []
    assert result_ids(search(client, 'title ~ "zebra"')) == [new_id]
    client.delete(f"{PAGES}/{new_id}")
    assert result_ids(search(client, 'title ~ "zebra"')) == []
    verify_contract(simulator, checker)


def test_every_catalog_route_is_served(simulator: Simulator) -> None:
    """docs/catalog-plan.md, row by row: each route has a handler named by its operationId."""
    catalog = [
        ("GET", "/wiki/api/v2/pages"), ("GET", "/wiki/api/v2/pages/1"),
        ("POST", "/wiki/api/v2/pages"), ("PUT", "/wiki/api/v2/pages/1"),
        ("DELETE", "/wiki/api/v2/pages/1"), ("GET", "/wiki/api/v2/pages/1/direct-children"),
        ("GET", "/wiki/api/v2/pages/1/ancestors"), ("GET", "/wiki/api/v2/pages/1/versions"),
        ("GET", "/wiki/api/v2/pages/1/versions/2"), ("GET", "/wiki/api/v2/pages/1/labels"),
        ("GET", "/wiki/api/v2/pages/1/attachments"),
        ("GET", "/wiki/api/v2/pages/1/footer-comments"),
        ("GET", "/wiki/api/v2/pages/1/inline-comments"),
        ("GET", "/wiki/api/v2/pages/1/properties"), ("GET", "/wiki/api/v2/pages/1/properties/2"),
        ("POST", "/wiki/api/v2/pages/1/properties"), ("PUT", "/wiki/api/v2/pages/1/properties/2"),
        ("DELETE", "/wiki/api/v2/pages/1/properties/2"),
        ("GET", "/wiki/api/v2/spaces"), ("GET", "/wiki/api/v2/spaces/1"),
        ("GET", "/wiki/api/v2/spaces/1/pages"), ("GET", "/wiki/api/v2/spaces/1/blogposts"),
        ("GET", "/wiki/api/v2/spaces/1/labels"), ("GET", "/wiki/api/v2/spaces/1/properties"),
        ("GET", "/wiki/api/v2/spaces/1/properties/2"),
        ("POST", "/wiki/api/v2/spaces/1/properties"),
        ("PUT", "/wiki/api/v2/spaces/1/properties/2"),
        ("DELETE", "/wiki/api/v2/spaces/1/properties/2"),
        ("GET", "/wiki/api/v2/blogposts"), ("GET", "/wiki/api/v2/blogposts/1"),
        ("POST", "/wiki/api/v2/blogposts"), ("PUT", "/wiki/api/v2/blogposts/1"),
        ("DELETE", "/wiki/api/v2/blogposts/1"), ("GET", "/wiki/api/v2/blogposts/1/labels"),
        ("GET", "/wiki/api/v2/blogposts/1/versions"),
        ("GET", "/wiki/api/v2/blogposts/1/footer-comments"),
        ("GET", "/wiki/api/v2/footer-comments"), ("GET", "/wiki/api/v2/footer-comments/1"),
        ("POST", "/wiki/api/v2/footer-comments"), ("PUT", "/wiki/api/v2/footer-comments/1"),
        ("DELETE", "/wiki/api/v2/footer-comments/1"),
        ("GET", "/wiki/api/v2/footer-comments/1/children"),
        ("GET", "/wiki/api/v2/inline-comments"), ("GET", "/wiki/api/v2/inline-comments/1"),
        ("GET", "/wiki/api/v2/attachments"), ("GET", "/wiki/api/v2/attachments/1"),
        ("DELETE", "/wiki/api/v2/attachments/1"),
        ("POST", "/wiki/rest/api/content/1/child/attachment"),
        ("GET", "/wiki/api/v2/labels"), ("POST", "/wiki/rest/api/content/1/label"),
        ("DELETE", "/wiki/rest/api/content/1/label/x"),
        ("DELETE", "/wiki/rest/api/content/1/label"),
        ("GET", "/wiki/api/v2/tasks"), ("GET", "/wiki/api/v2/tasks/1"),
        ("PUT", "/wiki/api/v2/tasks/1"), ("GET", "/wiki/api/v2/custom-content"),
        ("GET", "/wiki/api/v2/custom-content/1"), ("GET", "/wiki/rest/api/user/current"),
        ("GET", "/wiki/rest/api/search"),
    ]  # fmt: skip
    operation_ids = {
        version: {
            op["operationId"]
            for item in require_spec(version)["paths"].values()
            for op in item.values()
            if isinstance(op, dict) and "operationId" in op
        }
        for version in ("v1", "v2")
    }
    for method, path in catalog:
        match = simulator.router.match(method, path)
        assert match is not None and not isinstance(match, list), (method, path)
        version = "v1" if path.startswith(V1) else "v2"
        assert match.route.name in operation_ids[version], (match.route.name, "is no operationId")
