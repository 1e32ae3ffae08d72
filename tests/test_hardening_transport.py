"""Regression tests for the adversarial review's findings on sending and summarising:

4. responses have no limits (size after decompression, wall clock);
5. a non-JSON success is reported ok:true with an empty summary;
6. approved writes are sent more than once (PUT/DELETE retried on 503/429);
11. search highlight markers leak into the json_summary.

Each test is named after its finding.  Sync and async paths are both exercised.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harbor_confluence.pipeline.executor import Port
from harbor_confluence.pipeline.transport import (
    DEFAULT_DEADLINE,
    DEFAULT_MAX_RESPONSE_BYTES,
    RetryPolicy,
)
from harbor_confluence.secrets.credentials import Credential
from harbor_confluence.sim import Simulator
from tests import faults
from tests.conftest import API_TOKEN, EMAIL
from tests.faults import FaultServer

pytestmark = pytest.mark.timeout(60)

RETRY = RetryPolicy(default_wait=0.01, connect_wait=0.01)
PAGE = {
    "id": "98305",
    "title": "Runbook",
    "spaceId": "65538",
    "status": "current",
    "version": {"number": 3},
    "body": {"storage": {"value": "<p>old</p>", "representation": "storage"}},
}
GET_PAGE = {"path": {"id": "98305"}}
NEW_BODY = {"body": {"representation": "storage", "value": "<p>new</p>"}}


@pytest.fixture
def fault() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


def fault_port(home: Path, fault: FaultServer, **kwargs: Any) -> Port:
    options: dict[str, Any] = {"retry": RETRY, **kwargs}
    return Port.load(
        home=home,
        base_url=fault.url,
        credential=Credential.basic(EMAIL, API_TOKEN, "test"),
        requester="pytest",
        **options,
    )


def call(port: Port, name: str, data: Any, mode: str) -> Any:
    if mode == "sync":
        return port.call(name, data)

    async def run() -> Any:
        try:
            return await port.acall(name, data)
        finally:
            await port.aclose()

    return asyncio.run(run())


MODES = ["sync", "async"]


# -- finding 4: responses have no limits -----------------------------------------------------


def test_finding_4_defaults() -> None:
    assert DEFAULT_MAX_RESPONSE_BYTES == 8 * 1024 * 1024
    assert DEFAULT_DEADLINE == 60.0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_finding_4_responses_have_no_limits_huge_body_stops_at_the_cap(
    mode: str, chunked: bool, fault: FaultServer, home: Path
) -> None:
    fault.default = faults.huge(chunked=chunked)
    with fault_port(home, fault, max_response_bytes=faults.MIB) as port:
        result = call(port, "get-page", GET_PAGE, mode)
    assert not result.ok and result.status == 200
    assert result.error == {
        "type": "too_large",
        "message": f"response larger than {faults.MIB} bytes after decompression; not read further",
    }
    assert fault.count() == 1


@pytest.mark.parametrize("mode", MODES)
def test_finding_4_responses_have_no_limits_gzip_bomb_is_counted_decompressed(
    mode: str, fault: FaultServer, home: Path
) -> None:
    fault.default = faults.gzip_bomb()
    with fault_port(home, fault, max_response_bytes=faults.MIB) as port:
        result = call(port, "get-page", GET_PAGE, mode)
    assert result.error["type"] == "too_large"
    assert f"larger than {faults.MIB} bytes after decompression" in result.error["message"]
    assert fault.count() == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate"])
def test_finding_4_compressed_answers_under_the_cap_still_decode(
    mode: str, encoding: str, fault: FaultServer, home: Path
) -> None:
    data = json.dumps(PAGE).encode()
    if encoding == "gzip":
        body = gzip.compress(data)
    elif encoding == "deflate":
        body = zlib.compress(data)
    else:
        packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        body = packer.compress(data) + packer.flush()
    header = "gzip" if encoding == "gzip" else "deflate"
    fault.default = faults.raw(200, body, "application/json", [("Content-Encoding", header)])
    with fault_port(home, fault, max_response_bytes=len(data)) as port:  # exactly fits
        result = call(port, "get-page", GET_PAGE, mode)
    assert result.ok, result.to_dict()
    assert result.summary["title"] == "Runbook" and result.summary["version"] == 3


@pytest.mark.parametrize("mode", MODES)
def test_finding_4_a_corrupt_or_unknown_encoding_is_an_error(
    mode: str, fault: FaultServer, home: Path
) -> None:
    fault.script(
        faults.raw(200, b"not gzip at all", "application/json", [("Content-Encoding", "gzip")]),
        faults.raw(200, b"{}", "application/json", [("Content-Encoding", "br")]),
    )
    with fault_port(home, fault) as port:
        corrupt = call(port, "get-page", GET_PAGE, mode)
    with fault_port(home, fault) as port:
        unknown = call(port, "get-page", GET_PAGE, mode)
    assert corrupt.error["type"] == "decoding" and "corrupt" in corrupt.error["message"]
    assert unknown.error["type"] == "decoding" and "'br'" in unknown.error["message"]
    assert fault.requests[0].headers["accept-encoding"] == "gzip, deflate"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("answer", [faults.drip, faults.drip_headers, faults.hang])
def test_finding_4_responses_have_no_limits_drip_ends_at_the_deadline(
    mode: str, answer: Any, fault: FaultServer, home: Path
) -> None:
    fault.default = answer()
    with fault_port(home, fault, deadline=1.5) as port:
        result = call(port, "get-page", GET_PAGE, mode)
    assert result.error == {"type": "deadline", "message": "no complete answer within 1.5 s"}
    assert fault.count() == 1


@pytest.mark.parametrize("mode", MODES)
def test_finding_4_the_deadline_covers_retries(mode: str, fault: FaultServer, home: Path) -> None:
    """A Retry-After that would end past the deadline is not waited for."""
    fault.default = faults.status(503, retry_after="2")
    with fault_port(home, fault, deadline=1.0) as port:
        result = call(port, "get-page", GET_PAGE, mode)
    assert result.status == 503 and result.error["type"] == "upstream"
    assert fault.count() == 1


def test_finding_4_approved_write_over_the_cap_is_unknown_and_not_retried(
    fault: FaultServer, home: Path
) -> None:
    with fault_port(home, fault, max_response_bytes=faults.MIB) as port:
        held = port.call("create-page", {"body": {"spaceId": "65538", "title": "T", **NEW_BODY}})
        fault.default = faults.gzip_bomb()
        ticket = port.approve(held.ticket or "", operator="alice")
    assert ticket.state == "unknown"
    assert ticket.result and ticket.result["error"]["type"] == "too_large"
    assert "may have been applied and will not be retried" in ticket.result["message"]
    assert fault.count("POST") == 1


def test_finding_4_limits_are_validated(home: Path) -> None:
    with pytest.raises(ValueError, match="deadline"):
        Port.load(home=home, deadline=0)
    with pytest.raises(ValueError, match="max_response_bytes"):
        Port.load(home=home, max_response_bytes=0)


# -- finding 5: non-JSON success --------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_finding_5_non_json_success_names_the_content_type(
    mode: str, fault: FaultServer, home: Path
) -> None:
    fault.default = faults.raw(200, b"<html>Sign in</html>", "text/html; charset=utf-8")
    with fault_port(home, fault) as port:
        result = call(port, "get-page", GET_PAGE, mode)
    assert not result.ok and result.status == 200 and result.summary is None
    assert result.error == {
        "type": "upstream",
        "message": "Confluence answered 200 with text/html, not JSON",
        "content_type": "text/html",
    }


@pytest.mark.parametrize("mode", MODES)
def test_finding_5_json_that_does_not_parse_says_so(
    mode: str, fault: FaultServer, home: Path
) -> None:
    fault.default = faults.raw(200, b'{"id": "98305",', "application/json;charset=UTF-8")
    with fault_port(home, fault) as port:
        result = call(port, "get-page", GET_PAGE, mode)
    assert not result.ok and result.error["type"] == "upstream"
    assert result.error["message"].startswith(
        "Confluence answered 200 with application/json that does not parse"
    )


def test_finding_5_no_content_type_is_not_json(fault: FaultServer, home: Path) -> None:
    fault.default = faults.raw(200, json.dumps(PAGE).encode(), None)
    with fault_port(home, fault) as port:
        result = port.call("get-page", GET_PAGE)
    assert result.error == {
        "type": "upstream",
        "message": "Confluence answered 200 with no Content-Type, not JSON",
    }


def test_finding_5_an_empty_204_delete_still_succeeds(fault: FaultServer, home: Path) -> None:
    with fault_port(home, fault) as port:
        held = port.call("delete-page", GET_PAGE)
        fault.default = faults.raw(204, b"", None)
        port.approve(held.ticket or "", operator="alice")
        ticket = port.approve(held.ticket or "", operator="bob")
    assert ticket.state == "succeeded", ticket.result
    assert ticket.result and ticket.result["ok"] is True and ticket.result["status"] == 204


def test_finding_5_deletes_against_the_simulator_still_succeed(sim: Simulator, home: Path) -> None:
    with Port.load(
        home=home, base_url=sim.url, credential=Credential.basic(EMAIL, API_TOKEN, "test")
    ) as port:
        page = port.call("search-pages", {"query": {"limit": 1}}).summary[0]["id"]
        held = port.call("delete-page", {"path": {"id": page}})
        port.approve(held.ticket or "", operator="alice")
        ticket = port.approve(held.ticket or "", operator="bob")
    assert ticket.state == "succeeded" and ticket.result and ticket.result["status"] == 204


def test_finding_5_approved_write_answered_with_html_is_unknown(
    fault: FaultServer, home: Path
) -> None:
    with fault_port(home, fault) as port:
        held = port.call("create-page", {"body": {"spaceId": "65538", "title": "T", **NEW_BODY}})
        fault.default = faults.raw(200, b"<html>proxy</html>", "text/html")
        ticket = port.approve(held.ticket or "", operator="alice")
    assert ticket.state == "unknown"
    assert ticket.result and "not with JSON" in ticket.result["message"]
    assert fault.count("POST") == 1


# -- finding 6: approved writes are sent more than once ---------------------------------------


def hold_write(port: Port, fault: FaultServer, write: str) -> str:
    fault.default = faults.ok(PAGE)  # update-page reads the page while preparing
    data: dict[str, Any] = dict(GET_PAGE)
    if write == "update-page":
        data = {**GET_PAGE, "body": NEW_BODY}
    held = port.call(write, data)
    assert held.ticket
    return held.ticket


def approve_fully(port: Port, ticket_id: str) -> Any:
    ticket = port.approve(ticket_id, operator="alice")
    if ticket.state == "pending":
        ticket = port.approve(ticket_id, operator="bob")
    return ticket


@pytest.mark.parametrize("status", [500, 502, 503, 504])
@pytest.mark.parametrize("write", ["update-page", "delete-page"])
def test_finding_6_approved_put_and_delete_are_sent_once(
    write: str, status: int, fault: FaultServer, home: Path
) -> None:
    method = "PUT" if write == "update-page" else "DELETE"
    with fault_port(home, fault) as port:
        ticket_id = hold_write(port, fault, write)
        fault.default = faults.status(status, retry_after="0")
        ticket = approve_fully(port, ticket_id)
    assert fault.count(method) == 1
    assert ticket.state == ("unknown" if status in (502, 504) else "failed")


@pytest.mark.parametrize("write", ["update-page", "delete-page"])
def test_finding_6_a_429_is_the_answer_that_may_be_resent(
    write: str, fault: FaultServer, home: Path
) -> None:
    method = "PUT" if write == "update-page" else "DELETE"
    with fault_port(home, fault) as port:
        ticket_id = hold_write(port, fault, write)
        fault.default = faults.status(429, retry_after="0")
        ticket = approve_fully(port, ticket_id)
    assert ticket.state == "failed"
    assert fault.count(method) == 1 + RETRY.max_retries  # bounded


@pytest.fixture
def auto_writes(tmp_path: Path) -> Path:
    """A policy that sends writes without approval, to check the transport on its own."""
    policy = tmp_path / "auto.yaml"
    policy.write_text(
        "version: 1\nrules:\n  - {name: everything-auto, kind: any, decision: auto}\n"
    )
    return policy


@pytest.mark.parametrize("mode", MODES)
def test_finding_6_auto_sent_writes_are_not_resent_on_503(
    mode: str, fault: FaultServer, home: Path, auto_writes: Path
) -> None:
    with Port.load(
        policy=auto_writes, home=home, base_url=fault.url, retry=RETRY,
        credential=Credential.basic(EMAIL, API_TOKEN, "test"),
    ) as port:  # fmt: skip
        fault.default = faults.ok(PAGE)
        fault.script(faults.ok(PAGE), faults.status(503, retry_after="0"))
        result = call(port, "update-page", {**GET_PAGE, "body": NEW_BODY}, mode)
    assert result.status == 503
    assert fault.count("PUT") == 1
    assert fault.count("GET") == 1


@pytest.mark.parametrize("mode", MODES)
def test_finding_6_reads_still_retry_503(mode: str, fault: FaultServer, home: Path) -> None:
    fault.default = faults.ok(PAGE)
    fault.script(faults.status(503, retry_after="0"), faults.status(503))
    with fault_port(home, fault) as port:
        result = call(port, "get-page", GET_PAGE, mode)
    assert result.ok
    assert fault.count("GET") == 3


def test_finding_6_the_transport_says_so() -> None:
    from harbor_confluence.pipeline import transport

    doc = transport.__doc__ or ""
    assert "reaches Confluence at most once" in doc
    assert "PUT and DELETE included" in doc


# -- finding 11: highlight markers leak ------------------------------------------------------


def test_finding_11_highlight_markers_are_stripped_from_search(sim: Simulator, home: Path) -> None:
    with Port.load(
        home=home, base_url=sim.url, credential=Credential.basic(EMAIL, API_TOKEN, "test")
    ) as port:
        result = port.call("search-content", {"query": {"text": "runbook", "limit": 10}})
    assert result.ok and result.summary
    raw = sim.exchanges[-1].response_body.decode()
    assert "@@@hl@@@" in raw  # the simulator marks matches as Confluence does
    text = json.dumps(result.summary)
    assert "@@@hl@@@" not in text and "@@@endhl@@@" not in text
    assert any(item["title"] == "Runbooks" for item in result.summary)


@pytest.mark.parametrize("mode", MODES)
def test_finding_11_markers_are_stripped_before_the_length_cap(
    mode: str, fault: FaultServer, home: Path
) -> None:
    marked = "@@@hl@@@runbook@@@endhl@@@ "
    fault.default = faults.ok(
        {
            "results": [
                {
                    "content": {"id": "1", "type": "page", "status": "current"},
                    "title": "@@@hl@@@Runbook@@@endhl@@@: @@@hl@@@failover@@@endhl@@@",
                    "excerpt": marked * 40,  # 1,080 marked characters, 320 clean
                }
            ]
        }
    )
    with fault_port(home, fault) as port:
        result = call(port, "search-content", {"query": {"text": "runbook"}}, mode)
    item = result.summary[0]
    assert item["title"] == "Runbook: failover"
    assert item["excerpt"] == "runbook " * 40  # under search-content's 500-character cap


# -- transports that answer from memory (httpx.MockTransport) -------------------------------


@pytest.mark.parametrize("size", [100, 5000], ids=["under-cap", "over-cap"])
@pytest.mark.parametrize("mode", MODES)
def test_finding_4_in_memory_answers_are_capped_too(mode: str, size: int, home: Path) -> None:
    body = json.dumps({**PAGE, "title": "x" * size}).encode()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"Content-Type": "application/json"})

    with Port.load(
        home=home,
        base_url="https://acme.atlassian.net",
        credential=Credential.basic(EMAIL, API_TOKEN, "test"),
        transport=httpx.MockTransport(handler),
        async_transport=httpx.MockTransport(handler),
        max_response_bytes=1000,
    ) as port:
        result = call(port, "get-page", GET_PAGE, mode)
    if size < 1000:
        assert result.ok and result.summary["title"] == "x" * size
    else:
        assert result.error["type"] == "too_large"
