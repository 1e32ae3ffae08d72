"""The node, run for real (`node serve` on a unix socket and loopback TCP), and the
attacks that switched the embedded runner's safeguards off, replayed through an agent
token.  Each refusal asserts the simulator (the loopback recorder) saw nothing new.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harbor_confluence import AuthError, Forbidden, InputError, NodeClient, PolicyDenied
from harbor_confluence.sim import Simulator
from tests.conftest import API_TOKEN, EMAIL
from tests.nodeutil import Node, held_ticket, writes

CREATE = {
    "body": {
        "spaceId": "65538",
        "title": "Node test page",
        "status": "current",
        "body": {"representation": "storage", "value": "<p>from the node</p>"},
    }
}
IDENTITIES = [
    ("codex", "agent"),
    ("alice", "operator"),
    ("bob", "operator"),
    ("carol", "agent"),
    ("carol", "operator"),
]


@pytest.fixture(scope="module")
def sim(contract: Any) -> Iterator[Simulator]:
    with Simulator(email=EMAIL, api_token=API_TOKEN) as s:
        yield s
        exchanges = list(s.exchanges)
    if contract is not None:
        for exchange in exchanges:
            contract.check_exchange(exchange)


@pytest.fixture(scope="module")
def node(sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    n = Node(tmp_path_factory.mktemp("node") / "home", sim.url)
    n.setup(EMAIL, API_TOKEN, IDENTITIES)
    n.start()
    yield n
    log = n.stop()
    for token in n.tokens.values():
        assert token not in log
    assert API_TOKEN not in log


class Sent:
    """How many requests reached the simulator since it was made."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.before = len(sim.exchanges)

    @property
    def new(self) -> list[Any]:
        return list(self.sim.exchanges)[self.before :]

    def writes(self) -> list[Any]:
        return [e for e in self.new if e.method != "GET"]


def test_agent_reads_and_writes_are_held(node: Node, sim: Simulator) -> None:
    sent = Sent(sim)
    r = node.client("codex/agent", "run", "get-page", "--input", '{"path":{"id":"98305"}}')
    assert r.code == 0, r.err
    assert json.loads(r.out)["summary"]["id"] == "98305"
    ticket = held_ticket(node.client("codex/agent", "run", "create-page", "--json",
                                     "--input", json.dumps(CREATE), socket=True))  # fmt: skip
    assert sent.writes() == []
    shown = node.client("codex/agent", "queue", "show", ticket, "--json")
    assert shown.code == 0
    assert shown.json()["requester"] == "codex"  # the token's identity, not an assertion


def test_both_listeners_serve(node: Node) -> None:
    for socket in (False, True):
        r = node.client("codex/agent", "node", "whoami", "--json", socket=socket)
        assert r.code == 0, r.err
        assert r.json() == {"name": "codex", "role": "agent", "token": r.json()["token"],
                            "grant": {}, "port": "confluence-cloud"}  # fmt: skip


# -- attack 1: the caller's own policy ------------------------------------------------------


def test_attack1_own_policy_is_refused(node: Node, sim: Simulator, tmp_path: Path) -> None:
    allow = tmp_path / "allow.yaml"
    allow.write_text("version: 1\nrules:\n  - {name: all, actions: ['*'], decision: auto}\n")
    sent = Sent(sim)
    r = node.client("codex/agent", "run", "create-page", "--policy", str(allow),
                    "--input", json.dumps(CREATE))  # fmt: skip
    assert r.code == 2
    assert r.err.strip().splitlines() == [
        "error: --policy is refused in client mode: the node decides with its own policy"
    ]
    r = node.client("codex/agent", "run", "create-page", "--requester", "alice",
                    "--input", json.dumps(CREATE))  # fmt: skip
    assert r.code == 2 and "--requester is refused" in r.err
    assert sent.new == []
    # The Python client has no policy to pass; a requester is refused too.
    from harbor_confluence import ConfigError

    client = NodeClient(node.url, token=node.tokens["codex/agent"])
    with client, pytest.raises(ConfigError, match="requester is your token's identity"):
        client.call("create-page", CREATE, requester="alice")
    assert sent.new == []


def test_attack1_agent_cannot_set_the_live_policy(
    node: Node, sim: Simulator, tmp_path: Path
) -> None:
    allow = tmp_path / "allow.yaml"
    allow.write_text("version: 1\nrules:\n  - {name: all, actions: ['*'], decision: auto}\n")
    r = node.client("codex/agent", "node", "policy", "set", str(allow))
    assert r.code == 3
    assert "policy set needs an operator token" in r.err
    with NodeClient(node.url, token=node.tokens["codex/agent"]) as client:
        with pytest.raises(Forbidden):
            client.set_policy(allow.read_text())
        info = {a.name: a.decision for a in client.actions()}
    assert info["create-page"] == "require_approval"


# -- attack 2: asserting someone else's identity ---------------------------------------------


def test_attack2_agent_cannot_approve(node: Node, sim: Simulator) -> None:
    ticket = held_ticket(node.client("codex/agent", "run", "create-page", "--json",
                                     "--input", json.dumps(CREATE)))  # fmt: skip
    sent = Sent(sim)
    r = node.client("codex/agent", "queue", "approve", ticket, "--as", "alice")
    assert r.code == 2 and "--as is refused in client mode" in r.err
    for argv in (
        ("queue", "approve", ticket),
        ("queue", "run", ticket),
        ("queue", "reject", ticket, "--reason", "no"),
        ("queue", "resolve", ticket, "--outcome", "succeeded"),
    ):
        r = node.client("codex/agent", *argv)
        assert r.code == 3, (argv, r.err)
        assert "needs an operator token" in r.err
    with NodeClient(node.url, token=node.tokens["codex/agent"]) as client:
        with pytest.raises(Forbidden):
            client.reviews.approve(ticket)
        assert client.status(ticket)["state"] == "pending"
    assert sent.new == []


def test_agent_sees_only_its_own_tickets(node: Node) -> None:
    mine = held_ticket(node.client("codex/agent", "run", "create-page", "--json",
                                   "--input", json.dumps(CREATE)))  # fmt: skip
    theirs = held_ticket(node.client("carol/agent", "run", "create-page", "--json",
                                     "--input", json.dumps(CREATE)))  # fmt: skip
    listed = node.client("codex/agent", "queue", "list", "--limit", "1000", "--json").json()
    ids = {t["id"] for t in listed}
    assert mine in ids and theirs not in ids
    assert {t["requester"] for t in listed} == {"codex"}
    r = node.client("codex/agent", "queue", "status", theirs)
    assert r.code == 1 and f"no ticket {theirs}" in r.err
    r = node.client("codex/agent", "queue", "cancel", theirs)
    assert r.code == 1
    r = node.client("codex/agent", "queue", "cancel", mine, "--json")
    assert r.code == 0 and r.json()["state"] == "cancelled"
    assert r.json()["decided_by"] == "codex"
    every = node.client("alice/operator", "queue", "list", "--limit", "1000", "--json").json()
    assert {mine, theirs} <= {t["id"] for t in every}


def test_grant_narrows_what_an_agent_may_call(node: Node, sim: Simulator) -> None:
    r = node.admin("node", "add-agent", "reader", "--kind", "read", "--toolsets", "pages", "--json")
    assert r.code == 0
    node.tokens["reader/agent"] = r.json()["token"]
    sent = Sent(sim)
    r = node.client("reader/agent", "run", "create-page", "--input", json.dumps(CREATE))
    assert r.code == 3
    assert "'reader' is not granted 'create-page'" in r.err
    assert sent.new == []
    names = {row["name"] for row in node.client("reader/agent", "actions", "--json").json()}
    assert "get-page" in names and "create-page" not in names and "get-space" not in names
    r = node.client("reader/agent", "run", "get-page", "--input", '{"path":{"id":"98305"}}')
    assert r.code == 0


# -- attack 3: the database, as the node's user could reach it -------------------------------


def test_attack3_rewritten_sqlite_is_refused_before_sending(node: Node, sim: Simulator) -> None:
    """The agent cannot open the database (see test_node_privsep); were it rewritten with
    recomputed SHA-256 fingerprints anyway, the keyed seals refuse it."""
    from harbor_confluence.pipeline.request import PreparedRequest

    ticket = held_ticket(node.client("codex/agent", "run", "create-page", "--json",
                                     "--input", json.dumps(CREATE)))  # fmt: skip
    db = sqlite3.connect(node.home / "queue.sqlite3")
    row = db.execute(
        "SELECT body, method, url, content_type FROM tickets WHERE id = ?", (ticket,)
    ).fetchone()
    evil = bytes(row[0]).replace(b"from the node", b"defaced")
    assert evil != bytes(row[0])
    # The SHA-256 an attacker recomputes: the unkeyed content hash of the new request.
    fake = PreparedRequest("create-page", row[1], row[2], evil, row[3], {}).fingerprint
    db.execute("UPDATE tickets SET body = ?, fingerprint = ? WHERE id = ?", (evil, fake, ticket))
    db.commit()
    db.close()
    sent = Sent(sim)
    r = node.client("alice/operator", "queue", "approve", ticket)
    assert r.code == 3, r.err
    assert "tamper" in r.err or "seal" in r.err or "changed" in r.err
    assert sent.writes() == []


def test_attack3_zero_approvals_is_refused(node: Node, sim: Simulator) -> None:
    ticket = held_ticket(node.client("codex/agent", "run", "create-page", "--json",
                                     "--input", json.dumps(CREATE)))  # fmt: skip
    with sqlite3.connect(node.home / "queue.sqlite3") as db:
        db.execute(
            "UPDATE tickets SET state = 'approved', approvals_required = 0 WHERE id = ?", (ticket,)
        )
    sent = Sent(sim)
    r = node.client("alice/operator", "queue", "run", ticket)
    assert r.code == 3, r.err
    assert sent.writes() == []


# -- attack 4: the audit log -----------------------------------------------------------------


def test_attack4_forged_audit_append_is_detected(node: Node, tmp_path: Path) -> None:
    import hashlib

    log = node.home / "audit.jsonl"
    lines = log.read_bytes().splitlines()
    last = json.loads(lines[-1])
    forged = {"seq": last["seq"] + 1, "ts": last["ts"], "event": "approved", "ticket": "t_x",
              "operator": "alice", "prev": last["hash"]}  # fmt: skip
    forged["hash"] = hashlib.sha256(
        json.dumps(forged, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    saved = log.read_bytes()
    with log.open("ab") as fh:
        fh.write(json.dumps(forged, separators=(",", ":")).encode() + b"\n")
    try:
        r = node.client("alice/operator", "audit", "verify", "--json")
        assert r.code == 1, r.out
        assert r.json()["first_bad_seq"] == forged["seq"]
    finally:
        log.write_bytes(saved)


def test_attack4_cut_audit_tail_is_detected(node: Node) -> None:
    r = node.client("codex/agent", "run", "get-page", "--input", '{"path":{"id":"98305"}}')
    assert r.code == 0
    log = node.home / "audit.jsonl"
    saved = log.read_bytes()
    lines = saved.splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:-2]))
    try:
        r = node.client("alice/operator", "audit", "verify", "--json")
        assert r.code == 1, r.out
        assert "removed" in r.json()["reason"] or "end" in r.json()["reason"]
    finally:
        log.write_bytes(saved)
    assert node.client("alice/operator", "audit", "verify").code == 0


# -- attacks 5-8: what changes the port, from an agent's shell --------------------------------


def test_attacks5_to_8_port_changes_are_not_client_commands(
    node: Node, sim: Simulator, tmp_path: Path
) -> None:
    doc = tmp_path / "doc.json"
    doc.write_text("{}")
    manifest = tmp_path / "m.yaml"
    manifest.write_text("manifestVersion: 9.9.9\n")
    sent = Sent(sim)
    for argv in (
        ("catalog", "import", str(doc), "--yes"),  # 5, 6
        ("drafts", "test", "x", "--send"),  # 7
        ("drafts", "publish", "x"),
        ("config", "set", "base-url", "https://evil.example"),
        ("token", "status"),
    ):
        r = node.client("codex/agent", *argv)
        assert r.code == 2, (argv, r.err)
        assert "runs on the node host" in r.err
    r = node.client("codex/agent", "run", "get-page", "--manifest", str(manifest),
                    "--input", '{"path":{"id":"1"}}')  # fmt: skip
    assert r.code == 2 and "--manifest is refused in client mode" in r.err  # 8
    assert sent.new == []


# -- authentication --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "why"),
    [("", "no node token"), ("hbn_not-a-real-token", "not valid"), ("revoked", "not valid")],
)
def test_bad_tokens_get_one_line_and_exit_3(
    node: Node, sim: Simulator, token: str, why: str
) -> None:
    if token == "revoked":
        r = node.admin("node", "add-agent", "leaver", "--json")
        token = r.json()["token"]
        assert node.client(token, "actions").code == 0
        assert node.admin("node", "revoke", "leaver").code == 0
    sent = Sent(sim)
    r = node.client(token, "run", "create-page", "--input", json.dumps(CREATE))
    assert r.code == 3
    assert len(r.err.strip().splitlines()) == 1 and why in r.err
    if token:
        assert token not in r.err
    assert sent.new == []
    records = node.client("alice/operator", "audit", "export", "--json").json()
    assert records[-1]["event"] == "unauthenticated"
    assert why in records[-1]["reason"]
    assert all(token not in json.dumps(rec) for rec in records if token)


def test_raw_http_without_a_token_is_401(node: Node) -> None:
    r = httpx.post(f"{node.url}/v1/actions/create-page/call", json={"input": CREATE})
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["error"]["code"] == "unauthenticated"
    r = httpx.post(f"{node.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert r.status_code == 401


# -- two operators, and the requester's own operator token -----------------------------------


def test_two_of_n_delete_needs_two_other_operators(node: Node, sim: Simulator) -> None:
    made = node.client("alice/operator", "run", "create-page", "--json", "--input",
                       json.dumps({"body": {**CREATE["body"], "title": "to delete"}}))  # fmt: skip
    ticket = held_ticket(made)
    approved = node.client("bob/operator", "queue", "approve", ticket, "--json")
    assert approved.code == 0, approved.err
    page_id = approved.json()["result"]["summary"]["id"]

    delete = held_ticket(node.client("carol/agent", "run", "delete-page", "--json",
                                     "--input", json.dumps({"path": {"id": page_id}})))  # fmt: skip
    sent = Sent(sim)
    own = node.client("carol/operator", "queue", "approve", delete)
    assert own.code == 3, own.err
    assert "forbids the requester (carol)" in own.err
    first = node.client("alice/operator", "queue", "approve", delete, "--json")
    assert first.code == 0 and first.json()["state"] == "pending"
    again = node.client("alice/operator", "queue", "approve", delete)
    assert again.code == 3 and "already approved" in again.err
    assert sent.writes() == []
    second = node.client("bob/operator", "queue", "approve", delete, "--json")
    assert second.code == 0, second.err
    assert second.json()["state"] == "succeeded"
    assert [(e.method, e.path) for e in sent.writes()] == [
        ("DELETE", f"/wiki/api/v2/pages/{page_id}")
    ]
    approvers = [a["operator"] for a in second.json()["approvals"]]
    assert approvers == ["alice", "bob"]
    status = node.client("carol/agent", "queue", "status", delete)
    assert status.code == 0


# -- policy set, audited ---------------------------------------------------------------------


def test_operator_sets_policy_with_audited_diff(node: Node, sim: Simulator, tmp_path: Path) -> None:
    current = node.client("alice/operator", "node", "policy", "show", "--json").json()["text"]
    stricter = current.replace("decision: auto", "decision: require_approval", 1)
    assert stricter != current
    path = tmp_path / "p.yaml"
    path.write_text(stricter)
    try:
        r = node.client("alice/operator", "node", "policy", "set", str(path), "--json")
        assert r.code == 0, r.err
        assert any(line.startswith("+") and "require_approval" in line for line in r.json()["diff"])
        record = node.client("alice/operator", "audit", "tail", "-n", "1", "--json").json()[-1]
        assert record["event"] == "policy-set" and record["operator"] == "alice"
        assert "require_approval" in record["diff"]
    finally:
        path.write_text(current)
        assert node.client("alice/operator", "node", "policy", "set", str(path)).code == 0


def test_bad_policy_is_refused_and_live_one_kept(node: Node, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\nrules: [{name: x, decision: maybe}]\n")
    before = node.client("alice/operator", "node", "policy", "show").out
    r = node.client("alice/operator", "node", "policy", "set", str(path))
    assert r.code == 2
    assert "decision" in r.err
    assert node.client("alice/operator", "node", "policy", "show").out == before


# -- the Python API over the node --------------------------------------------------------------


def test_python_client_same_types_and_errors(node: Node, sim: Simulator) -> None:
    from harbor_confluence import Result, Ticket

    with NodeClient(socket=node.socket, token=node.tokens["codex/agent"]) as client:
        result = client.call("get-page", {"path": {"id": "98305"}})
        assert isinstance(result, Result) and result.ok
        with pytest.raises(InputError) as bad:
            client.call("get-page", {"path": {"id": "../x"}})
        assert bad.value.violations[0].field.startswith("path.id")
        with pytest.raises(PolicyDenied) as denied:
            client.call("search-pages", {"query": {"limit": 200}})
        assert denied.value.rule
        held = client.call("create-page", CREATE)
        assert held.outcome == "held" and held.ticket
        ticket = client.ticket(held.ticket)
        assert isinstance(ticket, Ticket) and ticket.requester == "codex"
        walk = client.paginate("search-pages", {"query": {"limit": 2}}, max_items=5)
        items = walk.items()
        assert len(items) == 5 and walk.report.stopped_at == "max_items"
    with NodeClient(node.url, token=node.tokens["alice/operator"]) as op:
        done = op.reviews.approve(held.ticket)
        assert isinstance(done, Ticket) and done.state == "succeeded"
        assert op.audit.verify().ok
    with pytest.raises(AuthError), NodeClient(node.url, token="hbn_wrong") as bad_client:
        bad_client.actions()


def test_async_client_call(node: Node) -> None:
    import anyio

    async def run() -> Any:
        async with NodeClient(node.url, token=node.tokens["codex/agent"]) as client:
            return await client.acall("get-page", {"path": {"id": "98305"}})

    result = anyio.run(run)
    assert result.ok and result.summary["id"] == "98305"


# -- MCP on the node ---------------------------------------------------------------------------


def test_mcp_over_the_node(node: Node, sim: Simulator) -> None:
    import anyio
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async def session(token: str) -> tuple[list[str], Any, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            httpx2.AsyncClient(headers=headers) as http,
            streamable_http_client(f"{node.url}/mcp", http_client=http) as streams,
            ClientSession(streams[0], streams[1]) as s,
        ):
            if True:
                await s.initialize()
                tools = [t.name for t in (await s.list_tools()).tools]
                read = await s.call_tool("get-page", {"id": "98305"})
                write = await s.call_tool("create-page", CREATE["body"])
                return tools, read, write

    sent = Sent(sim)
    tools, read, write = anyio.run(session, node.tokens["codex/agent"])
    assert "get-page" in tools and "get_approval_status" in tools
    assert not read.is_error
    assert write.structured_content["outcome"] == "held"
    ticket = write.structured_content["ticket"]
    assert node.client("alice/operator", "queue", "show", ticket, "--json").json()["requester"] == (
        "codex"
    )
    assert sent.writes() == []

    r = node.admin("node", "add-agent", "mcp-reader", "--kind", "read", "--json")
    tools, _, write = anyio.run(session, r.json()["token"])
    assert "create-page" not in tools
    assert write.is_error


def test_stdio_mcp_in_client_mode_uses_the_node(node: Node, sim: Simulator) -> None:
    """``harbor-confluence mcp`` with a node token bridges to the node's tools."""
    import anyio
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    async def run() -> tuple[list[str], Any]:
        params = StdioServerParameters(
            command=node.python,
            args=["-m", "harbor_confluence.cli", "mcp"],
            env={"PATH": "/usr/bin:/bin", **node.client_env("codex/agent")},
        )
        async with stdio_client(params) as (r, w), ClientSession(r, w) as s:
            await s.initialize()
            tools = [t.name for t in (await s.list_tools()).tools]
            held = await s.call_tool("create-page", CREATE["body"])
            return tools, held

    sent = Sent(sim)
    tools, held = anyio.run(run)
    assert "create-page" in tools
    assert held.structured_content["outcome"] == "held"
    assert sent.writes() == []


def test_node_refuses_a_private_dir_that_is_not_private(tmp_path: Path) -> None:
    from tests.conftest import run_subprocess

    home = tmp_path / "open"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    r = run_subprocess("node", "serve", env={"HARBOR_CONFLUENCE_HOME": str(home)})
    assert r.code == 1
    assert "chmod 700" in r.err


def test_writes_helper_counts_only_writes(sim: Simulator) -> None:
    before = len(writes(sim))
    httpx.get(f"{sim.url}/wiki/api/v2/pages", auth=(EMAIL, API_TOKEN))
    assert len(writes(sim)) == before


def test_a_flood_of_bad_tokens_is_audited_within_bounds(tmp_path: Path) -> None:
    """Anyone who reaches the socket can send bad tokens: recorded, but not unboundedly."""
    from harbor_confluence import Port
    from harbor_confluence.node.service import NodeService

    home = tmp_path / "home"
    with Port.load(home=home, base_url="http://127.0.0.1:9") as port:
        service = NodeService(home, port=port)
        for _ in range(120):
            with pytest.raises(AuthError):
                service.authenticate("hbn_bad", where="test")
        records = [r for r in port.audit.records() if r["event"] == "unauthenticated"]
    assert len(records) == 50
    assert all("hbn_bad" not in json.dumps(r) for r in records)
    assert port.audit.verify().ok


def test_refusals_keep_their_class_and_code_over_the_node(node: Node) -> None:
    r = node.client("codex/agent", "run", "get-pgae", "--input", "{}")
    assert r.code == 2 and "did you mean: get-page" in r.err
    with NodeClient(node.url, token=node.tokens["codex/agent"]) as client:
        with pytest.raises(InputError) as unknown:
            client.call("get-pgae", {})
        assert unknown.value.code == "unknown_action" and unknown.value.exit_code == 2
        deep: Any = {"path": {"id": "1"}}
        for _ in range(200):
            deep = {"x": deep}
        with pytest.raises(InputError) as nested:
            client.call("get-page", deep)
        assert nested.value.violations[0].rule == "maxDepth"


def test_agent_waits_for_its_ticket_without_polling_the_api(node: Node, sim: Simulator) -> None:
    import threading

    unique = {"body": {**CREATE["body"], "title": "waited for"}}
    ticket = held_ticket(node.client("codex/agent", "run", "create-page", "--json",
                                     "--input", json.dumps(unique)))  # fmt: skip
    got: dict[str, Any] = {}

    def wait() -> None:
        with NodeClient(node.url, token=node.tokens["codex/agent"]) as client:
            got.update(client.wait(ticket, timeout=30))

    waiter = threading.Thread(target=wait)
    waiter.start()
    approved = node.client("alice/operator", "queue", "approve", ticket)
    assert approved.code == 0, approved.err
    waiter.join(60)
    assert got["state"] == "succeeded" and got["ticket"] == ticket
    other = NodeClient(node.url, token=node.tokens["carol/agent"])
    with other, pytest.raises(Exception, match="no ticket"):
        other.wait(ticket, timeout=1)


def test_one_agent_cannot_hold_all_the_nodes_waits(node: Node, sim: Simulator) -> None:
    """Each open wait holds a server thread: an identity may have WAITS_PER_IDENTITY open
    at once, the next is refused at once (429, ``busy``, exit 1) and nothing changes."""
    import threading
    import time

    from harbor_confluence.errors import Busy
    from harbor_confluence.node.service import WAITS_PER_IDENTITY

    unique = {"body": {**CREATE["body"], "title": "many waits"}}
    ticket = held_ticket(node.client("codex/agent", "run", "create-page", "--json",
                                     "--input", json.dumps(unique)))  # fmt: skip
    token = node.tokens["codex/agent"]

    def long_wait() -> None:
        with NodeClient(node.url, token=token) as client:
            client.wait(ticket, timeout=6)

    waiters = [threading.Thread(target=long_wait) for _ in range(WAITS_PER_IDENTITY)]
    for w in waiters:
        w.start()
    refused: Busy | None = None
    status = 0
    with NodeClient(node.url, token=token) as client:
        end = time.monotonic() + 5
        while refused is None and time.monotonic() < end:
            try:
                client.wait(ticket, timeout=0)
            except Busy as exc:
                refused = exc
                raw = httpx.get(f"{node.url}/v1/tickets/{ticket}/wait?timeout=0",
                                headers={"Authorization": f"Bearer {token}"})  # fmt: skip
                status = raw.status_code
            else:
                time.sleep(0.05)
        assert refused is not None, "the wait past the cap was not refused"
        assert refused.code == "busy" and refused.exit_code == 1
        assert f"at most {WAITS_PER_IDENTITY}" in str(refused) and token not in str(refused)
        for w in waiters:
            w.join(30)
        assert client.wait(ticket, timeout=0)["state"] == "pending"  # slots are given back
    assert status == 429
