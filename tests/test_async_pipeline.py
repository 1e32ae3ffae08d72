"""The async driver runs the same flows as the sync one: pages, approved tickets, reads."""

from __future__ import annotations

import asyncio
from typing import Any

from harbor_confluence.pipeline.executor import Port
from harbor_confluence.sim import Simulator

ENG, HOME = "65538", "98305"


def test_async_for_walks_the_same_pages_as_for(port: Port, sim: Simulator) -> None:
    data = {"query": {"limit": 5}}
    walked = port.paginate("search-pages", data, max_items=40)
    expected = [item["id"] for item in walked]

    async def walk() -> tuple[list[Any], Any]:
        pages = port.paginate("search-pages", data, max_items=40)
        return [item["id"] async for item in pages], pages.report

    got, report = asyncio.run(walk())
    assert got == expected and len(got) == 40
    assert report.requests == walked.report.requests == 8
    assert report.stopped_at == "max_items"


def test_aexecute_sends_an_approved_ticket_once(port: Port, sim: Simulator) -> None:
    held = port.call(
        "create-page", {"body": {"spaceId": ENG, "title": "Async approved", "parentId": HOME}}
    )
    assert held.outcome == "held" and held.ticket
    port.approve(held.ticket, operator="olivia", run=False)
    sim.clear()
    ticket = asyncio.run(port.aexecute(held.ticket, operator="olivia"))
    assert ticket.state == "succeeded"
    assert ticket.result["summary"]["title"] == "Async approved"
    posts = [e for e in sim.exchanges if e.method == "POST"]
    assert len(posts) == 1


def test_aprepare_builds_what_prepare_builds(port: Port) -> None:
    data = {"path": {"id": HOME}, "body": {"body": {"representation": "storage",
                                                     "value": "<p>async</p>"}}}  # fmt: skip
    sync_request, sync_decision = port.prepare("update-page", data)
    async_request, async_decision = asyncio.run(port.aprepare("update-page", data))
    assert async_request.fingerprint == sync_request.fingerprint
    assert async_decision.outcome == sync_decision.outcome == "require_approval"
