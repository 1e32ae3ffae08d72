"""Contract tests: what the runner sends and what the simulator answers, per Atlassian's spec.

Every ``sim`` fixture already checks its exchanges at teardown; these tests make the
contract explicit and fail (rather than skip) in CI when the documents are missing.
"""

from __future__ import annotations

import pytest

from harbor_confluence.pipeline.executor import Port
from harbor_confluence.sim import Simulator
from tests.contract import ContractChecker, require_spec

pytestmark = pytest.mark.contract


@pytest.fixture(scope="module")
def checker() -> ContractChecker:
    return ContractChecker(require_spec("v2"))


def test_runner_requests_and_simulator_responses_conform(
    port: Port, sim: Simulator, checker: ContractChecker
) -> None:
    query = {"limit": 3, "status": ["current", "archived"], "sort": "-modified-date",
             "space-id": ["65538", "65539"], "body-format": "storage"}  # fmt: skip
    found = port.call("search-pages", {"query": query})
    assert found.ok and found.next_cursor
    page_id = found.summary[0]["id"]
    assert port.call("search-pages", {"query": {**query, "cursor": found.next_cursor}}).ok
    assert port.call("search-pages", {"query": {"title": "Architecture Overview"}}).ok
    got = port.call(
        "get-page",
        {"path": {"id": page_id},
         "query": {"body-format": "atlas_doc_format", "include-labels": True,
                   "include-version": True, "include-versions": True}},
    )  # fmt: skip
    assert got.ok
    assert port.call("get-page", {"path": {"id": "777777777"}}).status == 404
    exchanges = list(sim.exchanges)
    assert len(exchanges) == 5
    results = checker.check_exchanges(exchanges)
    assert len(results) == 5


def test_created_page_conforms(sim: Simulator, checker: ContractChecker, home: object) -> None:
    import httpx

    from tests.conftest import API_TOKEN, EMAIL

    # The approval path arrives with the review queue; here the simulator's create
    # answer is checked on its own, as the runner would receive it.
    response = httpx.post(
        sim.url + "/wiki/api/v2/pages",
        json={"spaceId": "65538", "title": "Contract page", "status": "current",
              "body": {"representation": "storage", "value": "<p>x</p>"}},
        auth=(EMAIL, API_TOKEN),
    )  # fmt: skip
    assert response.status_code == 200
    checker.check_exchanges(list(sim.exchanges))


def test_issue_17_exchanges_conform(port: Port, sim: Simulator, home: object) -> None:
    """The new v2 and v1 reads, and the writes (approved through the queue), as sent and
    as answered, against both documents."""
    checker = ContractChecker(require_spec("v2"), v1_spec=require_spec("v1"))
    reads: list[tuple[str, dict[str, object]]] = [
        ("list-page-descendants", {"path": {"id": "98305"}, "query": {"depth": 2, "limit": 5}}),
        ("list-page-direct-children", {"path": {"id": "98305"}}),
        ("get-folder", {"path": {"id": "557057"}}),
        ("list-folder-descendants", {"path": {"id": "557057"}, "query": {"depth": 1}}),
        ("get-whiteboard", {"path": {"id": "557059"}}),
        ("get-database", {"path": {"id": "557060"}}),
        ("get-page-by-title", {"query": {"spaceKey": "ENG", "title": "Architecture Overview",
                                         "expand": ["version", "space"]}}),
        ("get-users", {"query": {"accountId": "557058:2f4c6e1a-8b3d-4f5e-9a7c-1d2e3f4a5b6c"}}),
        ("list-templates", {"query": {"spaceKey": "ENG", "start": 0, "limit": 1}}),
        ("get-template", {"path": {"contentTemplateId": "720897"}}),
        ("get-page-views", {"path": {"contentId": "98306"},
                            "query": {"fromDate": "2024-05-01T00:00:00.000Z"}}),
    ]  # fmt: skip
    for name, data in reads:
        assert port.call(name, data).ok, name
    move = {"path": {"pageId": "98307", "position": "after", "targetId": "98306"}}
    held = port.call("move-page", move)
    assert held.outcome == "held"
    assert port.approve(held.ticket or "", operator="operator-1").state == "succeeded"
    exchanges = list(sim.exchanges)
    assert len(exchanges) == len(reads) + 1
    results = checker.check_exchanges(exchanges)
    assert {r.operation.split(" ", 1)[0] for r in results} >= {
        "getPageDescendants", "getFolderById", "getContent", "getBulkUserLookup",
        "getContentTemplates", "getViews", "movePage",
    }  # fmt: skip
