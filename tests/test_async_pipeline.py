"""The async driver runs the same flows as the sync one: pages, approved tickets, reads."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from harbor_confluence.pipeline.executor import Port
from harbor_confluence.pipeline.flow import LoopShare
from harbor_confluence.secrets.credentials import Credential
from harbor_confluence.sim import Simulator
from tests.conftest import API_TOKEN, EMAIL

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


# -- the loop share: admission and a budget per loop iteration ------------------------------


def test_loop_share_admits_at_most_its_slots_in_arrival_order() -> None:
    async def main() -> tuple[int, list[int]]:
        share = LoopShare(asyncio.get_running_loop(), slots=2, budget=1.0)
        busy, peak, order = 0, 0, []

        async def call(i: int) -> None:
            nonlocal busy, peak
            if (wait := share.enter()) is not None:
                await wait
            try:
                busy += 1
                peak = max(peak, busy)
                order.append(i)
                await asyncio.sleep(0.001)
            finally:
                busy -= 1
                share.leave()

        await asyncio.gather(*(call(i) for i in range(7)))
        assert share.in_progress == 0 and share.waiting == 0
        return peak, order

    peak, order = asyncio.run(main())
    assert peak == 2
    assert order == list(range(7))


def test_a_call_cancelled_after_admission_hands_its_slot_on() -> None:
    async def main() -> list[str]:
        share = LoopShare(asyncio.get_running_loop(), slots=1, budget=1.0)
        assert share.enter() is None  # the first call holds the only slot
        ran: list[str] = []

        async def call(name: str) -> None:
            wait = share.enter()
            assert wait is not None
            try:
                await wait
            except asyncio.CancelledError:
                share.cancelled(wait)
                raise
            ran.append(name)
            share.leave()

        b = asyncio.ensure_future(call("b"))
        c = asyncio.ensure_future(call("c"))
        await asyncio.sleep(0)  # both wait now
        assert share.waiting == 2
        share.leave()  # the slot goes to b...
        b.cancel()  # ...which is cancelled before it runs: c must get the slot
        await asyncio.gather(b, c, return_exceptions=True)
        assert share.in_progress == 0
        return ran

    assert asyncio.run(main()) == ["c"]


def test_work_past_the_budget_waits_for_the_next_loop_iteration() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        share = LoopShare(loop, slots=4, budget=0.002)
        iteration = [0]

        def tick() -> None:  # counts loop iterations while the test runs
            iteration[0] += 1
            loop.call_soon(tick)

        loop.call_soon(tick)
        await asyncio.sleep(0)
        assert share.pace() is None  # the first paced step of an iteration goes on
        start = iteration[0]
        end = time.perf_counter() + 0.005
        while time.perf_counter() < end:  # this iteration's budget is spent
            pass
        wait = share.pace()
        assert wait is not None and iteration[0] == start
        await wait
        assert iteration[0] > start  # it went on in a later iteration...
        assert share.pace() is None  # ...with a fresh budget

    asyncio.run(main())


def test_a_thousand_acalls_leave_no_slot_taken(port: Port) -> None:
    async def main() -> tuple[list[bool], LoopShare]:
        results = await asyncio.gather(
            *(port.acall("get-page", {"path": {"id": HOME}}) for _ in range(1000))
        )
        return [r.ok for r in results], port._share()

    oks, share = asyncio.run(main())
    assert all(oks) and len(oks) == 1000
    assert share.in_progress == 0 and share.waiting == 0


def test_a_port_runs_at_most_its_concurrency_of_acalls(sim: Simulator, home: Path) -> None:
    with pytest.raises(ValueError, match="concurrency"):
        Port.load(home=home, base_url=sim.url, concurrency=0)
    seen: list[int] = []

    async def main(port: Port) -> list[bool]:
        async def one() -> bool:
            result = await port.acall("get-page", {"path": {"id": HOME}})
            seen.append(port._share().in_progress)
            return result.ok

        return await asyncio.gather(*(one() for _ in range(60)))

    credential = Credential.basic(EMAIL, API_TOKEN, "test")
    with Port.load(home=home, base_url=sim.url, credential=credential, concurrency=3) as port:
        assert all(asyncio.run(main(port)))
    assert max(seen) <= 3 and len(seen) == 60
