"""The executor end to end against the simulator over real loopback HTTP."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from harbor_confluence.errors import ConfigError, InputError, PolicyDenied
from harbor_confluence.pipeline.executor import Port
from harbor_confluence.pipeline.transport import RetryPolicy
from harbor_confluence.secrets.credentials import Credential
from harbor_confluence.sim import Simulator
from tests.conftest import API_TOKEN, EMAIL


def first_page_id(port: Port) -> str:
    result = port.call("search-pages", {"query": {"limit": 1}})
    assert result.ok and result.summary
    return str(result.summary[0]["id"])


def test_search_pages_summary(port: Port, sim: Simulator) -> None:
    result = port.call("search-pages", {"query": {"limit": 5}})
    assert result.ok and result.status == 200 and result.outcome == "sent"
    assert result.count == 5 and len(result.summary) == 5
    item = result.summary[0]
    assert {"id", "title", "status", "spaceId", "version"} <= set(item)
    assert result.next_cursor
    assert sim.request_count == 1


def test_cursor_walk_visits_every_page_once(port: Port) -> None:
    seen: list[str] = []
    cursor = None
    for _ in range(100):
        query: dict[str, object] = {"limit": 7}
        if cursor:
            query["cursor"] = cursor
        result = port.call("search-pages", {"query": query})
        assert result.ok
        seen.extend(item["id"] for item in result.summary)
        cursor = result.next_cursor
        if not cursor:
            break
    assert len(seen) == len(set(seen)) > 20


def test_get_page_with_body(port: Port) -> None:
    page_id = first_page_id(port)
    result = port.call("get-page", {"path": {"id": page_id}, "query": {"body-format": "storage"}})
    assert result.ok
    assert result.summary["id"] == page_id
    assert "<" in result.summary["body"]
    assert isinstance(result.summary["version"], int)


def test_unknown_page_is_an_upstream_summary(port: Port) -> None:
    result = port.call("get-page", {"path": {"id": "999999999"}})
    assert not result.ok and result.status == 404
    assert result.error and result.error["type"] == "upstream" and result.error["message"]
    assert "Traceback" not in result.to_json()


def test_missing_credential_stops_before_sending(sim: Simulator, home: Path) -> None:
    from harbor_confluence.secrets.auth import NoCredential

    with Port.load(home=home, base_url=sim.url) as port, pytest.raises(NoCredential) as info:
        port.call("search-pages", {"query": {"limit": 1}})
    assert info.value.code == "no_credential" and info.value.exit_code == 1
    assert "harbor-confluence token set" in str(info.value)
    assert sim.request_count == 0


def test_bearer_token(sim: Simulator, home: Path) -> None:
    from tests.conftest import ACCESS_TOKEN

    cred = Credential.bearer(ACCESS_TOKEN, "test")
    # Bearer tokens go through the gateway; the simulator is the identity host too.
    with Port.load(home=home, base_url=sim.url, credential=cred, identity_url=sim.url) as port:
        assert port.call("search-pages", {"query": {"limit": 1}}).ok
    assert sim.exchanges[-1].path.startswith(f"/ex/confluence/{sim.identity.cloud_id}/wiki/")


def test_429_honours_retry_after_for_reads(port: Port, sim: Simulator) -> None:
    sim.fail_next(2, status=429, retry_after="0")
    result = port.call("search-pages", {"query": {"limit": 1}})
    assert result.ok
    assert sim.request_count == 3


def test_retries_are_bounded(sim: Simulator, home: Path) -> None:
    sim.fail_next(10, status=503, retry_after="0")
    with Port.load(
        home=home,
        base_url=sim.url,
        credential=Credential.basic(EMAIL, API_TOKEN, "t"),
        retry=RetryPolicy(max_retries=2),
    ) as port:
        result = port.call("search-pages", {"query": {"limit": 1}})
    assert result.status == 503 and not result.ok
    assert sim.request_count == 3


def test_retry_after_longer_than_the_cap_is_not_waited(port: Port, sim: Simulator) -> None:
    sim.fail_next(1, status=429, retry_after="3600")
    result = port.call("search-pages", {"query": {"limit": 1}})
    assert result.status == 429
    assert sim.request_count == 1


def test_timeout_is_a_summary(sim: Simulator, home: Path) -> None:
    sim.delay_next(1, 2.0)
    with Port.load(
        home=home,
        base_url=sim.url,
        credential=Credential.basic(EMAIL, API_TOKEN, "t"),
        timeout=0.3,
    ) as port:
        result = port.call("search-pages", {"query": {"limit": 1}})
    assert not result.ok and result.error and result.error["type"] == "timeout"


def test_connection_refused_is_a_summary(home: Path) -> None:
    cred = Credential.basic(EMAIL, API_TOKEN, "t")
    with Port.load(home=home, base_url="http://127.0.0.1:9", credential=cred) as port:
        result = port.call("search-pages", {"query": {"limit": 1}})
    assert not result.ok and result.error and result.error["type"] == "connect"


def test_invalid_input_sends_nothing(port: Port, sim: Simulator) -> None:
    with pytest.raises(InputError) as info:
        port.call("get-page", {"path": {"id": "../../admin"}})
    assert info.value.violations[0].field == "path.id"
    assert sim.request_count == 0


def test_denied_names_the_rule_and_sends_nothing(port: Port, sim: Simulator) -> None:
    with pytest.raises(PolicyDenied) as info:
        port.call("search-pages", {"query": {"limit": 200}})
    assert info.value.rule == "search-limit-cap"
    assert sim.request_count == 0


def test_create_page_is_held_and_nothing_is_sent(port: Port, sim: Simulator) -> None:
    result = port.call(
        "create-page", {"body": {"spaceId": "65538", "title": "Held page"}}, requester="agent-7"
    )
    assert result.outcome == "held" and not result.ok
    assert result.rule == "create-page-review"
    assert result.ticket
    assert sim.request_count == 0
    ticket = port.ticket(result.ticket)
    assert ticket is not None and ticket.state == "pending" and ticket.requester == "agent-7"
    assert ticket.method == "POST" and ticket.url == sim.url + "/wiki/api/v2/pages"
    assert ticket.body == b'{"spaceId":"65538","title":"Held page"}'


def test_unknown_action(port: Port) -> None:
    with pytest.raises(InputError, match="unknown action 'delete-everything'") as info:
        port.call("delete-everything", {})
    assert info.value.code == "unknown_action" and info.value.exit_code == 2


def test_placeholder_base_url_refuses_to_run(home: Path) -> None:
    with Port.load(home=home) as port, pytest.raises(ConfigError, match="placeholder"):
        port.call("search-pages", {})


def test_async_call(sim: Simulator, home: Path) -> None:
    async def main() -> list[bool]:
        async with Port.load(
            home=home, base_url=sim.url, credential=Credential.basic(EMAIL, API_TOKEN, "t")
        ) as port:
            results = await asyncio.gather(
                *(port.acall("search-pages", {"query": {"limit": 2}}) for _ in range(8))
            )
            return [r.ok for r in results]

    assert asyncio.run(main()) == [True] * 8
    assert sim.request_count == 8


class _Redirector(http.server.BaseHTTPRequestHandler):
    """A hostile tenant that redirects to another origin and records what it saw."""

    seen_auth: ClassVar[list[str | None]] = []
    target = ""

    def do_GET(self) -> None:
        type(self).seen_auth.append(self.headers.get("Authorization"))
        self.send_response(302)
        self.send_header("Location", type(self).target + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def redirector(sim: Simulator) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirector)
    _Redirector.target = sim.url
    _Redirector.seen_auth = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_redirect_to_another_origin_is_not_followed(
    redirector: str, sim: Simulator, home: Path
) -> None:
    with Port.load(
        home=home, base_url=redirector, credential=Credential.basic(EMAIL, API_TOKEN, "t")
    ) as port:
        result = port.call("search-pages", {"query": {"limit": 1}})
    assert result.status == 302 and not result.ok
    assert result.error and result.error["type"] == "redirect"
    assert sim.request_count == 0  # the other origin never saw the request or the token
    assert _Redirector.seen_auth and _Redirector.seen_auth[0] is not None


def test_credential_only_signs_its_origin() -> None:
    import httpx

    cred = Credential.basic(EMAIL, API_TOKEN, "t").bind("https://acme.atlassian.net")
    same = httpx.Request("GET", "https://acme.atlassian.net/wiki/api/v2/pages")
    other = httpx.Request("GET", "https://evil.example/wiki/api/v2/pages")
    assert "Authorization" in next(cred.auth_flow(same)).headers
    assert "Authorization" not in next(cred.auth_flow(other)).headers
    assert API_TOKEN not in repr(cred) and API_TOKEN not in str(cred)
