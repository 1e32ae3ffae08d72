"""Webhooks: signed ticket events, strict destinations, bounded retries that never block
the queue, and ``node webhook add|list|remove`` on a real node with a loopback receiver."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harbor_confluence import ConfigError, NodeClient
from harbor_confluence.node.webhooks import (
    DELIVERIES_FILE,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookDispatcher,
    WebhookStore,
    check_url,
    sign,
    verify_signature,
)
from harbor_confluence.review.queue import Ticket
from harbor_confluence.sim import Simulator
from tests.conftest import API_TOKEN, EMAIL
from tests.nodeutil import Node, held_ticket

CREATE = {
    "body": {
        "spaceId": "65538",
        "title": "Webhook test page",
        "status": "current",
        "body": {"representation": "storage", "value": "<p>secret plans</p>"},
    }
}


# -- destinations and signatures --------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/harbor",
        "https://hooks.example.com:8443/a/b",
        "http://127.0.0.1:9000/hook",
        "http://[::1]:9000/hook",
        "http://localhost/hook",
    ],
)
def test_good_destinations(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://hooks.example.com/x", "only allowed to a loopback host"),
        ("ftp://hooks.example.com/x", "must be an https URL"),
        ("https://user:pw@hooks.example.com/x", "user info"),
        ("https://hooks.example.com@evil.example/x", "user info"),
        ("https://hooks.example.com/x#frag", "fragment"),
        ("https://hooks.example.com/x?token=1", "query"),
        ("https://hooks.example.com:99999/x", "port"),
        ("https://hooks.example.com:abc/x", "port"),
        ("https://hooks.example.com:/x", "port"),
        ("https://hooks.example.com/a/../b", "dot segments"),
        ("https://hooks.example.com/a b", "control characters"),
        ("/relative", "must be an https URL"),
        ("", "absolute URL"),
    ],
)
def test_bad_destinations(url: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        check_url(url)


def test_signature_covers_timestamp_and_body() -> None:
    body = b'{"event":"held"}'
    now = 1_700_000_000
    sig = sign("whsec_x", str(now), body)
    assert sig.startswith("sha256=") and len(sig) == 7 + 64
    assert verify_signature("whsec_x", body, str(now), sig, now=now)
    assert not verify_signature("whsec_y", body, str(now), sig, now=now)  # other secret
    assert not verify_signature("whsec_x", body + b" ", str(now), sig, now=now)  # other body
    assert not verify_signature("whsec_x", body, str(now + 1), sig, now=now)  # other time
    assert not verify_signature("whsec_x", body, str(now), sig, now=now + 301)  # a replay
    assert not verify_signature("whsec_x", body, None, sig, now=now)


def test_store_file_is_private_and_list_has_no_secrets(tmp_path: Path) -> None:
    store = WebhookStore(tmp_path)
    hook = store.add("https://hooks.example.com/h", ["held", "rejected"])
    assert hook.secret.startswith("whsec_") and hook.secret not in repr(hook)
    assert (tmp_path / "webhooks.json").stat().st_mode & 0o777 == 0o600
    listed = store.list()
    assert listed == [hook.public()] and "secret" not in json.dumps(listed)
    with pytest.raises(ConfigError, match="unknown webhook event"):
        store.add("https://hooks.example.com/h", ["deleted"])
    assert store.remove(hook.id) == 1 and store.hooks() == ()


# -- the dispatcher, in process ------------------------------------------------------------------


def _ticket(ticket_id: str = "t_0123456789abcdef") -> Ticket:
    return Ticket(
        id=ticket_id, action="create-page", port="p", manifest_version="1", rule="r",
        method="POST", url="https://x.example/wiki/api/v2/pages", body=b'{"title":"secret"}',
        content_type="application/json", fingerprint="f" * 64, requester="codex",
        created_at=1.0, expires_at=2.0, state="pending",
    )  # fmt: skip


def _change(events: tuple[str, ...] = ("held",), ticket: Ticket | None = None) -> Any:
    from harbor_confluence.node.service import TicketChange

    return TicketChange(events, ticket or _ticket(), "codex")


class _Audit:
    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []

    def append(self, event: str, *, durable: bool = True, **fields: Any) -> None:
        self.records.append((event, fields))


def test_failed_deliveries_are_retried_with_backoff_then_recorded(tmp_path: Path) -> None:
    store = WebhookStore(tmp_path)
    hook = store.add("https://hooks.example.com/h")
    seen: list[httpx.Request] = []
    answers = iter([500, 502, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(next(answers))

    audit = _Audit()
    d = WebhookDispatcher(store, audit=audit, attempts=3, base_delay=0.05,  # type: ignore[arg-type]
                          transport=httpx.MockTransport(handler))  # fmt: skip
    d.notify(_change())
    assert d.wait_idle(10)
    assert len(seen) == 3
    ids = {r.headers["x-harbor-delivery"] for r in seen}
    assert len(ids) == 1  # one delivery, three attempts: the receiver can drop duplicates
    for r in seen:
        assert verify_signature(hook.secret, r.content, r.headers[TIMESTAMP_HEADER],
                                r.headers[SIGNATURE_HEADER])  # fmt: skip
    log = [json.loads(line) for line in (tmp_path / DELIVERIES_FILE).read_text().splitlines()]
    assert [(r["attempt"], r["outcome"]) for r in log] == [
        (1, "retry"), (2, "retry"), (3, "delivered")
    ]  # fmt: skip
    assert log[1]["retry_in"] >= 2 * log[0]["retry_in"] * 0.9  # exponential
    assert audit.records == []

    # A receiver that never answers well: bounded attempts, then one audit record.
    refuse = httpx.MockTransport(lambda r: httpx.Response(503))
    d2 = WebhookDispatcher(store, audit=audit, attempts=2, base_delay=0.01, transport=refuse)  # type: ignore[arg-type]
    d2.notify(_change(("rejected",)))
    assert d2.wait_idle(10)
    assert [e for e, _ in audit.records] == ["webhook-failed"]
    assert audit.records[0][1]["attempts"] == 2 and audit.records[0][1]["error"] == "HTTP 503"
    d.close()
    d2.close()


def test_a_stuck_receiver_never_blocks_the_queue(tmp_path: Path) -> None:
    store = WebhookStore(tmp_path)
    store.add("https://hooks.example.com/h")
    release = threading.Event()

    def stuck(request: httpx.Request) -> httpx.Response:
        release.wait(10)
        return httpx.Response(200)

    audit = _Audit()
    d = WebhookDispatcher(store, audit=audit, capacity=2,  # type: ignore[arg-type]
                          transport=httpx.MockTransport(stuck))  # fmt: skip
    start = time.monotonic()
    for i in range(50):
        d.notify(_change(ticket=_ticket(f"t_{i:016x}")))
    assert time.monotonic() - start < 1.0  # enqueueing only
    release.set()
    assert d.wait_idle(10)
    log = [json.loads(line) for line in (tmp_path / DELIVERIES_FILE).read_text().splitlines()]
    assert sum(r["outcome"] == "dropped" for r in log) >= 40
    assert [e for e, _ in audit.records][:1] == ["webhook-dropped"]
    d.close()


def test_only_subscribed_events_and_nothing_of_the_body(tmp_path: Path) -> None:
    store = WebhookStore(tmp_path)
    store.add("https://a.example/h", ["rejected"], link_base="https://node.example:8443")
    got: list[httpx.Request] = []
    d = WebhookDispatcher(
        store, transport=httpx.MockTransport(lambda r: got.append(r) or httpx.Response(204))
    )
    d.notify(_change(("held",)))
    d.notify(_change(("approval",)))  # not a webhook event
    d.notify(_change(("rejected",)))
    assert d.wait_idle(10)
    assert len(got) == 1
    payload = json.loads(got[0].content)
    assert set(payload) == {"event", "ticket", "action", "requester", "state", "by", "link",
                            "time"}  # fmt: skip
    assert payload["event"] == "rejected" and payload["state"] == "rejected"
    assert payload["link"] == "https://node.example:8443/review/tickets/t_0123456789abcdef"
    assert b"secret" not in got[0].content and b"x.example" not in got[0].content
    d.close()


# -- a real node and a loopback receiver ---------------------------------------------------------


class _Receiver(http.server.ThreadingHTTPServer):
    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    with Simulator(email=EMAIL, api_token=API_TOKEN) as sim:
        n = Node(tmp_path_factory.mktemp("webhooks") / "home", sim.url)
        n.setup(EMAIL, API_TOKEN, [("codex", "agent"), ("alice", "operator")])
        n.start()
        yield n
        n.stop()


def _wait_for(receiver: _Receiver, count: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while len(receiver.got) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(receiver.got) >= count, receiver.got


def test_node_delivers_signed_events(node: Node, receiver: _Receiver) -> None:
    url = f"http://127.0.0.1:{receiver.server_address[1]}/harbor"
    r = node.admin("node", "webhook", "add", url, "--events", "held,approved,executed,rejected",
                   "--link-base", "https://harbor.example:8443", "--json")  # fmt: skip
    assert r.code == 0, r.err
    secret, hook_id = r.json()["secret"], r.json()["id"]
    listed = node.admin("node", "webhook", "list", "--json")
    assert listed.json()[0]["url"] == url and secret not in listed.out
    bad = node.admin("node", "webhook", "add", "http://hooks.example.com/x")
    assert bad.code != 0 and "loopback" in bad.err

    ticket = held_ticket(node.client("codex/agent", "run", "create-page", "--json",
                                     "--input", json.dumps(CREATE)))  # fmt: skip
    _wait_for(receiver, 1)
    headers, body = receiver.got[0]
    assert verify_signature(secret, body, headers["x-harbor-timestamp"],
                            headers["x-harbor-signature"])  # fmt: skip
    payload = json.loads(body)
    assert payload["event"] == "held" and payload["ticket"] == ticket
    assert payload["requester"] == "codex" and payload["action"] == "create-page"
    assert payload["link"] == f"https://harbor.example:8443/review/tickets/{ticket}"
    assert b"secret plans" not in body and API_TOKEN.encode() not in body
    assert headers["x-harbor-event"] == "held"

    with NodeClient(node.url, token=node.tokens["alice/operator"]) as alice:
        assert alice.reviews.approve(ticket).state == "succeeded"
        _wait_for(receiver, 3)
        events = [json.loads(b)["event"] for _, b in receiver.got[1:3]]
        assert events == ["approved", "executed"]
        assert json.loads(receiver.got[2][1])["state"] == "succeeded"
        second = alice.call("create-page", CREATE)
        assert second.ticket
        _wait_for(receiver, 4)
        alice.reviews.reject(second.ticket, "not this one")
        _wait_for(receiver, 5)
    assert json.loads(receiver.got[4][1])["event"] == "rejected"
    assert json.loads(receiver.got[4][1])["by"] == "alice"
    for headers, body in receiver.got:
        assert verify_signature(secret, body, headers["x-harbor-timestamp"],
                                headers["x-harbor-signature"])  # fmt: skip
    # The node records a delivery once the receiver has answered: give it that moment.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        log = (node.home / DELIVERIES_FILE).read_text().splitlines()
        if len(log) >= 5:
            break
        time.sleep(0.05)
    assert len(log) == 5 and all(json.loads(line)["outcome"] == "delivered" for line in log)

    assert node.admin("node", "webhook", "remove", hook_id).code == 0
    assert node.admin("node", "webhook", "list", "--json").json() == []
    node.client("codex/agent", "run", "create-page", "--input", json.dumps(CREATE))
    time.sleep(0.5)
    assert len(receiver.got) == 5  # removed: nothing more is sent
