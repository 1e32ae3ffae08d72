"""Seed 004's example requests run as written against the simulator.

A scalar given for a query parameter typed ``array`` is a one-item list; a scalar that is not
a valid item is refused, naming the parameter, and nothing is sent.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from harbor_confluence.errors import InputError
from harbor_confluence.pipeline.executor import Port
from harbor_confluence.sim import Simulator

SEARCH_PAGES = json.loads(
    '{"query": {"space-id": "123456", "title": "Harbor rollout", "status": "current", "limit": 25}}'
)
GET_PAGE = json.loads(
    '{"path": {"id": "123456789"}, "query": {"body-format": "storage", "include-labels": true}}'
)
CREATE_PAGE = json.loads(
    '{"body": {"spaceId": "123456", "status": "current", "title": "Harbor rollout checklist", '
    '"body": {"representation": "storage", '
    '"value": "<p>Opened from Harbor after operator review.</p>"}}}'
)


def _summary_items(summary: Any) -> list[dict[str, Any]]:
    items = summary.get("results", summary) if isinstance(summary, dict) else summary
    assert isinstance(items, list), summary
    return items


def test_search_pages_example_runs_as_written(port: Port, sim: Simulator) -> None:
    given = copy.deepcopy(SEARCH_PAGES)
    result = port.call("search-pages", given)
    assert given == SEARCH_PAGES  # the caller's input is not modified
    assert result.ok and result.outcome == "sent", result.to_dict()
    items = _summary_items(result.summary)
    assert any(item["id"] == "123456789" for item in items), items
    assert all(item["title"] == "Harbor rollout" for item in items)
    (exchange,) = sim.exchanges
    assert exchange.method == "GET" and exchange.path == "/wiki/api/v2/pages"
    assert "space-id=123456" in exchange.query and "status=current" in exchange.query


def test_get_page_example_runs_as_written(port: Port, sim: Simulator) -> None:
    result = port.call("get-page", copy.deepcopy(GET_PAGE))
    assert result.ok and result.outcome == "sent", result.to_dict()
    page = result.summary
    assert page["id"] == "123456789" and page["title"] == "Harbor rollout"
    assert page["spaceId"] == "123456"
    assert page["labels"], page
    assert "<p>" in page["body"]
    assert [e.method for e in sim.exchanges] == ["GET"]


def test_create_page_example_is_held_then_sent_once(port: Port, sim: Simulator) -> None:
    held = port.call("create-page", copy.deepcopy(CREATE_PAGE))
    assert held.outcome == "held" and held.ticket, held.to_dict()
    assert not [e for e in sim.exchanges if e.method == "POST"]
    ticket = port.approve(held.ticket, operator="alice")
    assert ticket.state == "succeeded", ticket.result
    posts = [e for e in sim.exchanges if e.method == "POST"]
    assert len(posts) == 1 and posts[0].path == "/wiki/api/v2/pages"
    assert posts[0].status == 200
    sent = json.loads(posts[0].request_body)
    assert sent["spaceId"] == "123456" and sent["title"] == "Harbor rollout checklist"


def test_scalar_that_is_not_a_valid_item_is_refused(port: Port, sim: Simulator) -> None:
    data = {"query": {"space-id": "123456", "status": "bogus"}}
    with pytest.raises(InputError) as caught:
        port.call("search-pages", data)
    fields = {v.field: v.rule for v in caught.value.violations}
    assert fields == {"query.status": "enum"}, fields
    assert data == {"query": {"space-id": "123456", "status": "bogus"}}
    assert sim.request_count == 0
