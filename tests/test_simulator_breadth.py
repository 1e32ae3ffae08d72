"""The simulator's issue-17 routes (the content tree, folders, moves and copies, long tasks,
version restore, attachment download and re-upload, inline comments, users, templates,
watches and analytics), driven with httpx over loopback.

Every test ends by checking each exchange against Atlassian's documents (v2 or v1);
``invalid=`` names the requests the document itself must reject. Seed ids are listed in
``harbor_confluence/sim/seed.py`` and ``harbor_confluence/sim/data/``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest

from harbor_confluence.sim import Simulator
from tests.contract import ContractChecker, ContractResult
from tests.test_simulator_catalog import error_of, ids, storage, v1_error, walk

EMAIL = "breadth@example.com"
API_TOKEN = "sim-breadth-token-" + secrets.token_hex(6)
V2 = "/wiki/api/v2"
V1 = "/wiki/rest/api"
PAGES = f"{V2}/pages"
ENG, DOCS = "65538", "65539"
HOME, ARCH, CATALOG, ADRS = 98305, 98306, 98307, 98308
ADR1, ADR2, ADR3 = 98309, 98310, 98311
RUNBOOKS, RB_DB, RB_CACHE = 98312, 98313, 98314
HANDBOOK, HANDBOOK_ARCHIVE, TEAM_VALUES = 557057, 557058, 98323
WHITEBOARD, DATABASE = 557059, 557060
DOCS_HOME, CAPACITY = 163841, 229387
CSV_ATT, MD_ATT, BIG_ATT = 425991, 425992, 425993
KAFKA_POST = 294913
MARCUS = "557058:7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
ANNIKA = "557058:5f6e7d8c-9b0a-4c1d-8e2f-3a4b5c6d7e8f"
XSRF = {"X-Atlassian-Token": "no-check"}


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
    """Check every API exchange; download links (/wiki/download/...) are no API operation.

    ``invalid`` indexes count from the end when negative (-1: the last API exchange).
    """
    exchanges = [e for e in sim.exchanges if not e.path.startswith("/wiki/download/")]
    assert exchanges, "the test made no request"
    wanted = [i if i >= 0 else len(exchanges) + i for i in invalid]
    return checker.check_exchanges(exchanges, invalid=wanted)


def page(client: httpx.Client, page_id: int | str, **params: Any) -> dict[str, Any]:
    response = client.get(f"{PAGES}/{page_id}", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


# -- the content tree ---------------------------------------------------------------------------


def test_descendants_follow_the_documented_depth(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    one = client.get(f"{PAGES}/{HOME}/descendants", params={"depth": 1}).json()["results"]
    assert {d["depth"] for d in one} == {1}
    assert {d["parentId"] for d in one} == {str(HOME)}
    assert [d["id"] for d in one if d["type"] == "folder"] == [str(HANDBOOK)]
    assert len(one) == 7  # 6 live pages and the folder; the trashed page is left out

    deep = walk(client, f"{PAGES}/{HOME}/descendants", {"depth": 3, "limit": 4})
    assert len(deep) == len({d["id"] for d in deep})
    assert [d["depth"] for d in deep] == sorted(d["depth"] for d in deep)  # top to bottom
    by_id = {d["id"]: d for d in deep}
    assert by_id[str(ADR1)] == {
        "id": str(ADR1),
        "status": "current",
        "title": "ADR-001: Use PostgreSQL as the primary datastore",
        "type": "page",
        "parentId": str(ADRS),
        "depth": 3,
        "childPosition": 1000,
    }
    assert by_id[str(WHITEBOARD)]["type"] == "whiteboard"
    assert by_id[str(WHITEBOARD)]["depth"] == 2
    assert by_id[str(DATABASE)]["type"] == "database"
    assert (by_id[str(DATABASE)]["depth"], by_id[str(DATABASE)]["parentId"]) == (3, str(CATALOG))
    assert by_id[str(TEAM_VALUES)]["parentId"] == str(HANDBOOK)  # a page in a folder
    default = client.get(f"{PAGES}/{HOME}/descendants").json()["results"]
    assert max(d["depth"] for d in default) == 2  # the documented default depth
    four_levels = client.get(f"{PAGES}/{HOME}/descendants", params={"depth": 10, "limit": 250})
    assert max(d["depth"] for d in four_levels.json()["results"]) == 3  # home + 3 levels

    assert client.get(f"{PAGES}/{HOME}/descendants", params={"depth": 0}).status_code == 400
    assert client.get(f"{PAGES}/{HOME}/descendants", params={"depth": 11}).status_code == 400
    assert client.get(f"{PAGES}/999999/descendants").status_code == 404
    verify_contract(simulator, checker, invalid=(-3, -2))


def test_direct_children_and_the_folder_whiteboard_database_records(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    inside = client.get(f"{V2}/folders/{HANDBOOK}/direct-children").json()["results"]
    assert [(c["id"], c["type"]) for c in inside] == [
        (str(TEAM_VALUES), "page"),
        (str(HANDBOOK_ARCHIVE), "folder"),
    ]
    assert all(c["spaceId"] == ENG for c in inside)
    arch_children = client.get(f"{PAGES}/{ARCH}/direct-children").json()["results"]
    assert [c["type"] for c in arch_children] == ["page", "page", "whiteboard"]
    assert client.get(f"{V2}/whiteboards/{WHITEBOARD}/direct-children").json()["results"] == []
    assert client.get(f"{V2}/databases/{DATABASE}/direct-children").json()["results"] == []
    below = client.get(f"{V2}/folders/{HANDBOOK}/descendants", params={"depth": 1}).json()
    assert {d["id"] for d in below["results"]} == {str(TEAM_VALUES), str(HANDBOOK_ARCHIVE)}

    folder = client.get(f"{V2}/folders/{HANDBOOK}").json()
    assert folder["type"] == "folder"
    assert (folder["parentId"], folder["parentType"]) == (str(HOME), "page")
    assert folder["spaceId"] == ENG
    assert folder["_links"]["base"] == simulator.base_url
    sub = client.get(f"{V2}/folders/{HANDBOOK_ARCHIVE}").json()
    assert (sub["parentId"], sub["parentType"]) == (str(HANDBOOK), "folder")
    board = client.get(f"{V2}/whiteboards/{WHITEBOARD}").json()
    assert (board["type"], board["title"]) == ("whiteboard", "Architecture sketches")
    assert "editui" in board["_links"]
    database = client.get(f"{V2}/databases/{DATABASE}").json()
    assert (database["type"], database["parentId"]) == ("database", str(CATALOG))
    in_folder = page(client, TEAM_VALUES)
    assert (in_folder["parentId"], in_folder["parentType"]) == (str(HANDBOOK), "folder")
    ancestors = client.get(f"{PAGES}/{TEAM_VALUES}/ancestors").json()["results"]
    assert ancestors == [{"id": str(HOME), "type": "page"}, {"id": str(HANDBOOK), "type": "folder"}]

    assert client.get(f"{V2}/folders/{WHITEBOARD}").status_code == 404  # not a folder
    assert client.get(f"{V2}/whiteboards/{HANDBOOK}").status_code == 404
    assert client.get(f"{V2}/databases/1").status_code == 404
    verify_contract(simulator, checker)


def test_create_and_delete_a_folder(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    made = client.post(
        f"{V2}/folders",
        json={"spaceId": ENG, "title": "Quarterly plans", "parentId": str(HANDBOOK)},
    )
    assert made.status_code == 200, made.text
    folder = made.json()
    assert (folder["title"], folder["parentId"], folder["parentType"]) == (
        "Quarterly plans",
        str(HANDBOOK),
        "folder",
    )
    inside = client.get(f"{V2}/folders/{HANDBOOK}/direct-children").json()["results"]
    assert folder["id"] in ids(inside)
    top = client.post(f"{V2}/folders", json={"spaceId": ENG, "title": "Scratch"}).json()
    assert (top["parentId"], top["parentType"]) == (str(HOME), "page")  # the space's tree top
    created_page = client.post(
        PAGES,
        json={"spaceId": ENG, "title": "In a folder", "parentId": top["id"], "body": storage("")},
    ).json()
    assert (created_page["parentId"], created_page["parentType"]) == (top["id"], "folder")

    assert client.delete(f"{V2}/folders/{top['id']}").status_code == 204
    assert client.get(f"{V2}/folders/{top['id']}").status_code == 404
    assert page(client, created_page["id"])["parentId"] == str(HOME)  # moved up a level
    assert client.delete(f"{V2}/folders/{top['id']}").status_code == 404
    assert client.post(f"{V2}/folders", json={"spaceId": ENG}).status_code == 400
    assert client.post(f"{V2}/folders", json={"spaceId": "1", "title": "x"}).status_code == 404
    assert client.post(f"{V2}/folders", json={"title": "no space"}).status_code == 400
    verify_contract(simulator, checker, invalid=(-1,))


# -- moving, copying, restoring ----------------------------------------------------------------


def move(client: httpx.Client, page_id: int, position: str, target: int) -> httpx.Response:
    return client.put(f"{V1}/content/{page_id}/move/{position}/{target}")


def test_move_page_positions_and_refusals(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    version = page(client, RB_CACHE)["version"]["number"]
    appended = move(client, RB_CACHE, "append", ADRS)
    assert appended.status_code == 200, appended.text
    assert appended.json() == {"pageId": str(RB_CACHE)}
    moved = page(client, RB_CACHE)
    assert moved["parentId"] == str(ADRS)
    assert moved["version"]["number"] == version  # a move is not a new version
    order = client.get(f"{PAGES}/{ADRS}/direct-children").json()["results"]
    assert ids(order) == [str(ADR1), str(ADR2), str(ADR3), str(RB_CACHE)]

    assert move(client, ADR3, "before", ADR1).status_code == 200
    order = client.get(f"{PAGES}/{ADRS}/direct-children").json()["results"]
    assert ids(order) == [str(ADR3), str(ADR1), str(ADR2), str(RB_CACHE)]
    assert move(client, ADR3, "after", ADR2).status_code == 200
    order = client.get(f"{PAGES}/{ADRS}/direct-children").json()["results"]
    assert ids(order) == [str(ADR1), str(ADR2), str(ADR3), str(RB_CACHE)]
    positions = [c["childPosition"] for c in order]
    assert positions == sorted(positions)

    below_itself = move(client, ARCH, "append", ADR1)  # ADR-001 is a descendant of ARCH
    assert below_itself.status_code == 400
    assert "below itself" in v1_error(below_itself)
    assert move(client, ARCH, "before", ADRS).status_code == 400  # its own child's sibling
    assert move(client, ARCH, "append", ARCH).status_code == 400
    assert move(client, ARCH, "append", 999999).status_code == 404
    assert move(client, 999999, "append", ARCH).status_code == 404
    assert page(client, ARCH)["parentId"] == str(HOME)  # unchanged by the refusals

    across = move(client, RB_DB, "append", DOCS_HOME)  # another space: allowed
    assert across.status_code == 200, across.text
    assert (page(client, RB_DB)["spaceId"], page(client, RB_DB)["parentId"]) == (
        DOCS,
        str(DOCS_HOME),
    )
    glossary_clash = move(client, 229390, "append", DOCS_HOME)  # OPS Glossary vs DOCS Glossary
    assert glossary_clash.status_code == 400
    assert "title already exists" in v1_error(glossary_clash)
    bad_position = client.put(f"{V1}/content/{ARCH}/move/inside/{ADRS}")
    assert bad_position.status_code == 400
    verify_contract(simulator, checker, invalid=(-1,))


def test_copy_page_to_a_parent_a_space_and_over_a_page(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    source = page(client, ARCH, **{"body-format": "storage"})
    copied = client.post(
        f"{V1}/content/{ARCH}/copy",
        params={"expand": "version,space"},
        json={
            "destination": {"type": "parent_page", "value": str(RUNBOOKS)},
            "pageTitle": "Architecture Overview (copy)",
            "copyLabels": True,
            "copyAttachments": True,
        },
    )
    assert copied.status_code == 200, copied.text
    content = copied.json()
    assert (content["type"], content["title"]) == ("page", "Architecture Overview (copy)")
    assert content["version"]["number"] == 1
    assert content["space"]["key"] == "ENG"
    new = page(client, content["id"], **{"body-format": "storage", "include-labels": "true"})
    assert new["parentId"] == str(RUNBOOKS)
    assert new["body"]["storage"]["value"] == source["body"]["storage"]["value"]
    assert [lb["name"] for lb in new["labels"]["results"]] == ["architecture"]
    files = client.get(f"{PAGES}/{content['id']}/attachments").json()["results"]
    assert [f["title"] for f in files] == ["architecture-diagram.png"]  # the trashed one stays

    same_title = client.post(
        f"{V1}/content/{ARCH}/copy",
        json={"destination": {"type": "parent_page", "value": str(RUNBOOKS)}},
    )
    assert same_title.status_code == 400
    to_space = client.post(
        f"{V1}/content/{ARCH}/copy", json={"destination": {"type": "space", "value": "DOCS"}}
    )
    assert to_space.status_code == 200, to_space.text
    top = page(client, to_space.json()["id"])
    assert (top["spaceId"], top.get("parentId")) == (DOCS, None)
    assert (
        page(client, to_space.json()["id"], **{"include-labels": "true"})["labels"]["results"] == []
    )  # labels only when asked

    over = client.post(
        f"{V1}/content/{ADR2}/copy",
        json={
            "destination": {"type": "existing_page", "value": str(ADR3)},
            "pageTitle": "ADR-003: Replaced by a copy of ADR-002",
        },
    )
    assert over.status_code == 200, over.text
    replaced = page(client, ADR3, **{"body-format": "storage"})
    assert replaced["version"]["number"] == 2
    assert replaced["title"] == "ADR-003: Replaced by a copy of ADR-002"
    assert (
        replaced["body"]["storage"]["value"]
        == page(client, ADR2, **{"body-format": "storage"})["body"]["storage"]["value"]
    )
    assert (
        client.post(
            f"{V1}/content/{ARCH}/copy", json={"destination": {"type": "space", "value": "NOPE"}}
        ).status_code
        == 404
    )
    missing = client.post(f"{V1}/content/{ARCH}/copy", json={"pageTitle": "no destination"})
    assert missing.status_code == 400
    verify_contract(simulator, checker, invalid=(-1,))


def poll(client: httpx.Client, status_link: str) -> dict[str, Any]:
    response = client.get(f"/wiki{status_link}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_copy_page_tree_completes_on_the_third_poll(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    started = client.post(
        f"{V1}/content/{ADRS}/pagehierarchy/copy",
        json={
            "destinationPageId": str(RUNBOOKS),
            "titleOptions": {"prefix": "Copy of "},
            "copyLabels": True,
        },
    )
    assert started.status_code == 202, started.text
    task = started.json()
    assert set(task) == {"id", "links"}
    assert task["links"]["status"] == f"/rest/api/longtask/{task['id']}"
    before = {p["title"] for p in walk(client, PAGES, {"space-id": ENG, "limit": 250})}
    assert "Copy of Architecture Decision Records" not in before

    first = poll(client, task["links"]["status"])
    assert (first["finished"], first["successful"]) == (False, False)
    second = poll(client, task["links"]["status"])
    assert first["percentageComplete"] < second["percentageComplete"] < 100
    assert not second["finished"]
    third = poll(client, task["links"]["status"])
    assert (third["finished"], third["successful"], third["percentageComplete"]) == (
        True,
        True,
        100,
    )
    assert third["id"] == task["id"]
    assert third["additionalDetails"]["totalPageNeedToCopy"] == 4
    assert poll(client, task["links"]["status"]) == {**third, "elapsedTime": third["elapsedTime"]}

    root_id = third["additionalDetails"]["destinationId"]
    root = page(client, root_id, **{"include-labels": "true"})
    assert (root["title"], root["parentId"]) == (
        "Copy of Architecture Decision Records",
        str(RUNBOOKS),
    )
    assert [lb["name"] for lb in root["labels"]["results"]] == ["adr"]
    kids = client.get(f"{PAGES}/{root_id}/direct-children").json()["results"]
    assert [k["title"] for k in kids] == [
        "Copy of ADR-001: Use PostgreSQL as the primary datastore",
        "Copy of ADR-002: Adopt gRPC for internal service calls",
        "Copy of ADR-003: Feature flags via OpenFeature",
    ]
    assert str(ADR1) not in ids(kids)  # copies, not the originals

    same_space = client.post(
        f"{V1}/content/{ADRS}/pagehierarchy/copy", json={"destinationPageId": str(RUNBOOKS)}
    )
    assert same_space.status_code == 400  # titleOptions are required within one space
    into_itself = client.post(
        f"{V1}/content/{ARCH}/pagehierarchy/copy",
        json={"destinationPageId": str(ADR1), "titleOptions": {"prefix": "X "}},
    )
    assert into_itself.status_code == 400
    assert client.get(f"{V1}/longtask/424242").status_code == 404
    verify_contract(simulator, checker)


def test_copy_tree_polls_are_configurable_and_search_replace_titles(
    checker: ContractChecker,
) -> None:
    with (
        Simulator(email=EMAIL, api_token=API_TOKEN, long_task_polls=1) as sim,
        httpx.Client(base_url=sim.url, auth=(EMAIL, API_TOKEN), timeout=10) as client,
    ):
        started = client.post(
            f"{V1}/content/{ADRS}/pagehierarchy/copy",
            json={
                "destinationPageId": str(DOCS_HOME),
                "titleOptions": {"search": "ADR", "replace": "Decision"},
            },
        )
        assert started.status_code == 202, started.text
        done = poll(client, started.json()["links"]["status"])
        assert done["finished"] and done["successful"]
        titles = {p["title"] for p in walk(client, PAGES, {"space-id": DOCS, "limit": 250})}
        assert "Decision-002: Adopt gRPC for internal service calls" in titles
        assert "Architecture Decision Records" in titles  # no "ADR" in it, copied as is
        sim.long_task_polls = 2
        again = client.post(
            f"{V1}/content/{ADR1}/pagehierarchy/copy",
            json={"destinationPageId": str(DOCS_HOME), "titleOptions": {"prefix": "2: "}},
        )
        assert not poll(client, again.json()["links"]["status"])["finished"]
        assert poll(client, again.json()["links"]["status"])["finished"]
        with pytest.raises(ValueError, match="long_task_polls"):
            sim.long_task_polls = 0
        verify_contract(sim, checker)


def test_restore_a_page_version(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    old_body = page(client, ARCH, version=2, **{"body-format": "storage"})
    restored = client.post(
        f"{V1}/content/{ARCH}/version",
        json={"operationKey": "restore", "params": {"versionNumber": 2, "message": "Undo"}},
    )
    assert restored.status_code == 200, restored.text
    version = restored.json()
    assert (version["number"], version["message"], version["minorEdit"]) == (8, "Undo", False)
    now = page(client, ARCH, **{"body-format": "storage"})
    assert now["version"]["number"] == 8
    assert now["body"]["storage"]["value"] == old_body["body"]["storage"]["value"]
    assert now["title"] == "Architecture Overview"

    renamed = client.post(
        f"{V1}/content/{RB_DB}/version",
        json={
            "operationKey": "restore",
            "params": {"versionNumber": 1, "message": "Old name", "restoreTitle": True},
        },
    )
    assert renamed.status_code == 200, renamed.text
    assert page(client, RB_DB)["title"] == "Runbook: Postgres failover"
    kept = client.post(
        f"{V1}/content/{RB_CACHE}/version",
        json={"operationKey": "restore", "params": {"versionNumber": 1, "message": "m"}},
    )
    assert kept.status_code == 200
    assert page(client, RB_CACHE)["title"] == "Runbook: Flush the Redis cache"

    def restore(params: dict[str, Any], key: str = "restore") -> httpx.Response:
        return client.post(
            f"{V1}/content/{ARCH}/version", json={"operationKey": key, "params": params}
        )

    assert restore({"versionNumber": 99, "message": "m"}).status_code == 400
    assert restore({"versionNumber": 8, "message": "m"}).status_code == 400  # the current one
    assert restore({"versionNumber": 1, "message": "m"}, key="undo").status_code == 400
    verify_contract(simulator, checker, invalid=(-1,))


def test_get_page_by_title(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    found = client.get(
        f"{V1}/content",
        params={
            "spaceKey": "ENG",
            "title": "Runbooks",
            "type": "page",
            "expand": "version,space,body.storage",
        },
    )
    assert found.status_code == 200, found.text
    body = found.json()
    assert (body["start"], body["limit"], body["size"]) == (0, 25, 1)
    assert "base" in body["_links"]
    (result,) = body["results"]
    assert (result["id"], result["title"]) == (str(RUNBOOKS), "Runbooks")
    assert result["body"]["storage"]["value"].startswith("<p>Step-by-step")
    exact_only = client.get(
        f"{V1}/content", params={"spaceKey": "ENG", "title": "Runbook", "type": "page"}
    )
    assert exact_only.json()["size"] == 0
    other_space = client.get(
        f"{V1}/content", params={"spaceKey": "DOCS", "title": "Runbooks", "type": "page"}
    )
    assert other_space.json()["results"] == []
    verify_contract(simulator, checker)


# -- attachments ---------------------------------------------------------------------------------


def download(
    client: httpx.Client, content_id: int, attachment: str, **params: Any
) -> httpx.Response:
    return client.get(
        f"{V1}/content/{content_id}/child/attachment/{attachment}/download", params=params
    )


def test_download_redirects_to_the_bytes(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    redirect = download(client, CATALOG, f"att{CSV_ATT}")
    assert redirect.status_code == 302  # the only success the v1 document declares
    location = redirect.headers["Location"]
    assert location.startswith(f"{simulator.base_url}/download/attachments/{CATALOG}/")
    csv = client.get(location)
    assert csv.status_code == 200
    assert csv.headers["Content-Type"] == "text/csv"
    assert csv.content.startswith(b"service,team,tier\naccounts-api,Identity,1\n")
    assert csv.content.count(b"\n") == 5

    markdown = client.get(download(client, RUNBOOKS, str(MD_ATT)).headers["Location"])
    assert markdown.headers["Content-Type"] == "text/markdown"
    assert markdown.text.startswith("# Runbook: <name>")
    big = client.get(download(client, CAPACITY, str(BIG_ATT)).headers["Location"])
    assert big.status_code == 200
    assert len(big.content) == 1_572_864 > 1024 * 1024
    assert big.content.startswith(b"2024-05-01T00:00:00Z cluster=prod-eu")
    listed = client.get(f"{V2}/attachments/att{BIG_ATT}").json()
    assert listed["fileSize"] == len(big.content)

    assert download(client, ARCH, f"att{CSV_ATT}").status_code == 404  # another page's
    assert download(client, CATALOG, "att999999").status_code == 404
    assert download(client, CATALOG, str(CSV_ATT), version=1).status_code == 302
    assert download(client, CATALOG, str(CSV_ATT), version=2).status_code == 404
    assert download(client, 999999, str(CSV_ATT)).status_code == 404
    assert client.get("/wiki/download/attachments/98307/nothing.csv").status_code == 404
    anonymous = httpx.get(location)
    assert anonymous.status_code == 401  # the download link needs the same credentials
    verify_contract(simulator, checker)


def upload_data(
    client: httpx.Client,
    content_id: int,
    attachment: str,
    data: bytes,
    *,
    form: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return client.post(
        f"{V1}/content/{content_id}/child/attachment/{attachment}/data",
        files=[("file", ("services.csv", data, "text/csv"))],
        data={"minorEdit": "false", "comment": "Q3 export"} if form is None else form,
        headers=XSRF if headers is None else headers,
    )


def test_upload_a_new_attachment_version(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    fresh = b"service,team,tier\nledger,Payments,1\n"
    response = upload_data(client, CATALOG, f"att{CSV_ATT}", fresh)
    assert response.status_code == 200, response.text
    content = response.json()
    assert (content["id"], content["type"]) == (f"att{CSV_ATT}", "attachment")
    assert content["version"]["number"] == 2
    assert content["version"]["message"] == "Q3 export"
    assert content["extensions"]["fileSize"] == len(fresh)
    got = client.get(download(client, CATALOG, str(CSV_ATT)).headers["Location"])
    assert got.content == fresh
    v2 = client.get(f"{V2}/attachments/att{CSV_ATT}").json()
    assert (v2["version"]["number"], v2["fileSize"], v2["comment"]) == (2, len(fresh), "Q3 export")

    assert upload_data(client, CATALOG, str(CSV_ATT), b"x", headers={}).status_code == 403
    no_minor = upload_data(client, CATALOG, str(CSV_ATT), b"x", form={"comment": "c"})
    assert no_minor.status_code == 400
    assert upload_data(client, ARCH, str(CSV_ATT), b"x").status_code == 404
    verify_contract(simulator, checker, invalid=(-2,))


# -- comments ------------------------------------------------------------------------------------


def test_inline_comments_create_reply_resolve_reopen(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    made = client.post(
        f"{V2}/inline-comments",
        json={
            "pageId": str(ARCH),
            "body": storage("<p>Which topics?</p>"),
            "inlineCommentProperties": {
                "textSelection": "Kafka",
                "textSelectionMatchCount": 1,
                "textSelectionMatchIndex": 0,
            },
        },
    )
    assert made.status_code == 201, made.text
    comment = made.json()
    assert comment["pageId"] == str(ARCH)
    assert comment["resolutionStatus"] == "open"
    assert comment["properties"]["inlineOriginalSelection"] == "Kafka"
    assert made.headers["Location"].endswith(f"/inline-comments/{comment['id']}")
    marker = comment["properties"]["inlineMarkerRef"]
    body = page(client, ARCH, **{"body-format": "storage"})["body"]["storage"]["value"]
    assert f'<ac:inline-comment-marker ac:ref="{marker}">Kafka</ac:inline-comment-marker>' in body

    reply = client.post(
        f"{V2}/inline-comments",
        json={"parentCommentId": comment["id"], "body": storage("<p>All of them.</p>")},
    )
    assert reply.status_code == 201, reply.text
    assert reply.json()["parentCommentId"] == comment["id"]

    def update(comment_id: str, number: int, **extra: Any) -> httpx.Response:
        return client.put(
            f"{V2}/inline-comments/{comment_id}", json={"version": {"number": number}, **extra}
        )

    resolved = update(comment["id"], 2, resolved=True, body=storage("<p>Which topics?</p>"))
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["resolutionStatus"] == "resolved"
    assert resolved.json()["version"]["number"] == 2
    stale = update(comment["id"], 2, resolved=False)
    assert stale.status_code == 409
    assert "Current version is: 2" in error_of(stale)["title"]
    assert client.get(f"{V2}/inline-comments/{comment['id']}").json()["resolutionStatus"] == (
        "resolved"
    )
    reopened = update(comment["id"], 3, resolved=False)
    assert reopened.json()["resolutionStatus"] == "reopened"
    assert reopened.json()["body"]["storage"]["value"] == "<p>Which topics?</p>"  # kept
    assert update(reply.json()["id"], 2, resolved=True).status_code == 400  # a reply

    def create(selection: str, count: int, index: int = 0) -> httpx.Response:
        return client.post(
            f"{V2}/inline-comments",
            json={
                "pageId": str(ARCH),
                "body": storage("<p>?</p>"),
                "inlineCommentProperties": {
                    "textSelection": selection,
                    "textSelectionMatchCount": count,
                    "textSelectionMatchIndex": index,
                },
            },
        )

    assert create("not on the page", 1).status_code == 400
    assert create("Python", 2).status_code == 400  # it occurs 3 times
    second = create("Python", 3, 2)
    assert second.status_code == 201, second.text
    no_props = client.post(
        f"{V2}/inline-comments", json={"pageId": str(ARCH), "body": storage("<p>?</p>")}
    )
    assert no_props.status_code == 400
    on_post = client.post(
        f"{V2}/inline-comments",
        json={
            "blogPostId": str(KAFKA_POST),
            "body": storage("<p>Nice</p>"),
            "inlineCommentProperties": {
                "textSelection": "read-only",
                "textSelectionMatchCount": 1,
                "textSelectionMatchIndex": 0,
            },
        },
    )
    assert on_post.status_code == 201, on_post.text
    assert on_post.json()["blogPostId"] == str(KAFKA_POST)
    verify_contract(simulator, checker)


def test_footer_comment_on_a_blog_post(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    made = client.post(
        f"{V2}/footer-comments",
        json={"blogPostId": str(KAFKA_POST), "body": storage("<p>Congrats!</p>")},
    )
    assert made.status_code == 201, made.text
    assert made.json()["blogPostId"] == str(KAFKA_POST)
    listed = client.get(f"{V2}/blogposts/{KAFKA_POST}/footer-comments").json()["results"]
    assert made.json()["id"] in ids(listed)
    verify_contract(simulator, checker)


# -- users, templates, watches, analytics --------------------------------------------------------


def test_users_by_id_in_bulk_and_by_cql(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    one = client.get(f"{V1}/user", params={"accountId": MARCUS})
    assert one.status_code == 200, one.text
    assert (one.json()["displayName"], one.json()["email"]) == (
        "Marcus Webb",
        "marcus.webb@example.com",
    )
    assert client.get(f"{V1}/user", params={"accountId": "557058:nobody"}).status_code == 404
    assert client.get(f"{V1}/user").status_code == 400

    bulk = client.get(
        f"{V1}/user/bulk", params=[("accountId", MARCUS), ("accountId", ANNIKA), ("accountId", "x")]
    )
    assert bulk.status_code == 200, bulk.text
    assert [u["displayName"] for u in bulk.json()["results"]] == ["Marcus Webb", "Annika Berg"]
    assert bulk.json()["size"] == 2

    def search(cql: str, **params: Any) -> httpx.Response:
        return client.get(f"{V1}/search/user", params={"cql": cql, **params})

    ann = search('type = user AND user.fullname ~ "ann"')
    assert ann.status_code == 200, ann.text
    assert [r["user"]["accountId"] for r in ann.json()["results"]] == [ANNIKA]
    assert ann.json()["results"][0]["entityType"] == "user"
    assert ann.json()["totalSize"] == 1
    by_id = search(f'user.accountid = "{MARCUS}"')
    assert [r["title"] for r in by_id.json()["results"]] == ["Marcus Webb"]
    either = search('user.fullname ~ "priya" OR user.fullname ~ "kenji"')
    assert [r["title"] for r in either.json()["results"]] == ["Kenji Tanaka", "Priya Raman"]
    everyone = search("type = user", limit=3)
    assert everyone.json()["size"] == 3
    assert everyone.json()["totalSize"] >= 8  # 8 seeded people and the caller
    assert "next" in everyone.json()["_links"]
    assert search('title ~ "x"').status_code == 400
    assert search("type = page").status_code == 400
    verify_contract(simulator, checker)


def test_templates(simulator: Simulator, client: httpx.Client, checker: ContractChecker) -> None:
    eng = client.get(f"{V1}/template/page", params={"spaceKey": "ENG"})
    assert eng.status_code == 200, eng.text
    names = [t["name"] for t in eng.json()["results"]]
    assert names == ["Architecture decision record", "Runbook"]
    assert "body" not in eng.json()["results"][0]
    with_body = client.get(f"{V1}/template/page", params={"spaceKey": "ENG", "expand": "body"})
    assert with_body.json()["results"][1]["body"]["storage"]["value"].startswith(
        '<ac:structured-macro ac:name="warning"'
    )
    global_only = client.get(f"{V1}/template/page").json()["results"]
    assert [t["name"] for t in global_only] == ["Meeting notes"]
    one = client.get(f"{V1}/template/{eng.json()['results'][0]['templateId']}")
    assert one.status_code == 200
    template = one.json()
    assert template["templateType"] == "page"
    assert template["body"]["storage"]["value"].startswith("<h2>Status</h2>")
    assert [lb["name"] for lb in template["labels"]] == ["adr"]
    assert client.get(f"{V1}/template/424242").status_code == 404
    assert client.get(f"{V1}/template/page", params={"spaceKey": "NOPE"}).status_code == 404
    verify_contract(simulator, checker)


def test_watch_and_unwatch_a_page(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    def watching(content_id: int) -> bool:
        response = client.get(f"{V1}/user/watch/content/{content_id}")
        assert response.status_code == 200, response.text
        return bool(response.json()["watching"])

    assert watching(ARCH)  # seeded for the simulator's caller
    assert not watching(CATALOG)
    assert client.post(f"{V1}/user/watch/content/{CATALOG}").status_code == 204
    assert watching(CATALOG)
    assert client.delete(f"{V1}/user/watch/content/{CATALOG}", headers=XSRF).status_code == 204
    assert not watching(CATALOG)
    someone = client.get(f"{V1}/user/watch/content/{RB_DB}", params={"accountId": MARCUS})
    assert someone.json() == {"watching": False}
    assert client.get(f"{V1}/user/watch/content/999999").status_code == 404
    assert client.delete(f"{V1}/user/watch/content/{ARCH}").status_code == 403  # no XSRF header
    assert watching(ARCH)
    # The document gives the required X-Atlassian-Token a default, so it cannot reject
    # the request without it; Confluence's XSRF filter does.
    verify_contract(simulator, checker)


def test_page_views_and_viewers(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    def stat(what: str, content_id: int, **params: Any) -> dict[str, Any]:
        response = client.get(f"{V1}/analytics/content/{content_id}/{what}", params=params)
        assert response.status_code == 200, response.text
        return dict(response.json())

    assert stat("views", ARCH) == {"id": ARCH, "count": 6}
    assert stat("viewers", ARCH) == {"id": ARCH, "count": 4}
    assert stat("views", ARCH, fromDate="2024-05-01") == {"id": ARCH, "count": 3}
    assert stat("viewers", ARCH, fromDate="2024-05-01") == {"id": ARCH, "count": 3}
    assert stat("views", CATALOG) == {"id": CATALOG, "count": 0}
    bad = client.get(f"{V1}/analytics/content/{ARCH}/views", params={"fromDate": "yesterday"})
    assert bad.status_code == 400
    assert client.get(f"{V1}/analytics/content/999999/views").status_code == 404
    verify_contract(simulator, checker)


def test_spaces_by_key(
    simulator: Simulator, client: httpx.Client, checker: ContractChecker
) -> None:
    found = client.get(f"{V2}/spaces", params={"keys": "ENG"}).json()["results"]
    assert [(s["id"], s["key"], s["homepageId"]) for s in found] == [(ENG, "ENG", str(HOME))]
    verify_contract(simulator, checker)


def test_every_issue_17_route_is_served(simulator: Simulator) -> None:
    """The issue's action table and the runner-built reads, each with its operationId."""
    table = [
        ("GET", f"{V2}/pages/1/descendants", "getPageDescendants"),
        ("GET", f"{V2}/pages/1/direct-children", "getPageDirectChildren"),
        ("GET", f"{V2}/folders/1", "getFolderById"),
        ("POST", f"{V2}/folders", "createFolder"),
        ("DELETE", f"{V2}/folders/1", "deleteFolder"),
        ("GET", f"{V2}/folders/1/direct-children", "getFolderDirectChildren"),
        ("GET", f"{V2}/folders/1/descendants", "getFolderDescendants"),
        ("GET", f"{V2}/whiteboards/1", "getWhiteboardById"),
        ("GET", f"{V2}/whiteboards/1/direct-children", "getWhiteboardDirectChildren"),
        ("GET", f"{V2}/databases/1", "getDatabaseById"),
        ("GET", f"{V2}/databases/1/direct-children", "getDatabaseDirectChildren"),
        ("PUT", f"{V1}/content/1/move/append/2", "movePage"),
        ("POST", f"{V1}/content/1/copy", "copyPage"),
        ("POST", f"{V1}/content/1/pagehierarchy/copy", "copyPageHierarchy"),
        ("GET", f"{V1}/longtask/1", "getTask"),
        ("POST", f"{V1}/content/1/version", "restoreContentVersion"),
        ("GET", f"{V1}/content", "getContent"),
        ("POST", f"{V1}/content/1/child/attachment/2/data", "updateAttachmentData"),
        ("GET", f"{V1}/content/1/child/attachment/2/download", "downloadAttatchment"),
        ("POST", f"{V2}/inline-comments", "createInlineComment"),
        ("PUT", f"{V2}/inline-comments/1", "updateInlineComment"),
        ("POST", f"{V2}/footer-comments", "createFooterComment"),
        ("GET", f"{V1}/user", "getUser"),
        ("GET", f"{V1}/user/bulk", "getBulkUserLookup"),
        ("GET", f"{V1}/search/user", "searchUser"),
        ("GET", f"{V1}/template/page", "getContentTemplates"),
        ("GET", f"{V1}/template/1", "getContentTemplate"),
        ("GET", f"{V1}/user/watch/content/1", "getContentWatchStatus"),
        ("POST", f"{V1}/user/watch/content/1", "addContentWatcher"),
        ("DELETE", f"{V1}/user/watch/content/1", "removeContentWatcher"),
        ("GET", f"{V1}/analytics/content/1/views", "getViews"),
        ("GET", f"{V1}/analytics/content/1/viewers", "getViewers"),
        ("GET", f"{V2}/spaces", "getSpaces"),
    ]
    for method, path, operation in table:
        match = simulator.router.match(method, path)
        assert match is not None and not isinstance(match, list), (method, path)
        assert match.route.name == operation, (method, path)
