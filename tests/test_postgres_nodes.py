"""Many nodes, one database: real ``harbor-confluence node serve`` processes (tests/nodeutil.py),
each with its own state directory, all with the same database URL, integrity key and
credential, in front of one simulator, and a real PostgreSQL server (tests/pgserver.py).

- 50 held writes, four operators approving each at once through three nodes: every write
  reaches the simulator exactly once;
- a node killed (``kill -9``) while it sends: the ticket ends ``unknown`` and no other node
  sends it again;
- the database stopped and restarted under load: calls made meanwhile fail with one clear
  line (no traceback, no password), reads still answer, and afterwards nothing was lost and
  nothing was sent twice.
"""

from __future__ import annotations

import collections
import json
import os
import random
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from harbor_confluence import NodeClient
from harbor_confluence.errors import HarborError
from harbor_confluence.node.identities import IdentityStore
from harbor_confluence.paths import default_policy_path
from harbor_confluence.postgres import redact_url
from harbor_confluence.review.integrity import KEY_FILE
from harbor_confluence.sim import Simulator
from tests.conftest import API_TOKEN, EMAIL
from tests.nodeutil import Node
from tests.pgserver import PASSWORD, PgServer, fresh_database, needs_postgres_client, server_or_skip

needs_postgres_client()  # psycopg, or skip (fail in CI)

import psycopg  # noqa: E402

OPERATORS = ("alice", "bob", "carol", "dave")
NODES = 3


@pytest.fixture(scope="module")
def pg_server() -> PgServer:
    return server_or_skip()


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(email=EMAIL, api_token=API_TOKEN) as s:
        yield s


def two_approver_policy(path: Path) -> None:
    """The packaged policy, with create-page needing two distinct operators."""
    data = yaml.safe_load(default_policy_path().read_text())
    for rule in data["rules"]:
        if rule.get("name") == "create-page-review":
            rule["approvers"] = 2
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))


class Cluster:
    """Three nodes on one database; clients by node index and identity."""

    def __init__(self, nodes: list[Node], url: str, sim: Simulator) -> None:
        self.nodes = nodes
        self.url = url
        self.sim = sim
        self._clients: dict[tuple[int, str], NodeClient] = {}

    def client(self, node: int, who: str) -> NodeClient:
        key = (node, who)
        if key not in self._clients:
            n = self.nodes[node]
            self._clients[key] = NodeClient(n.url, token=n.tokens[who], timeout=180)
        return self._clients[key]

    def reset_clients(self, node: int) -> None:
        for key in [k for k in self._clients if k[0] == node]:
            self._clients.pop(key).close()

    def close(self) -> None:
        for c in self._clients.values():
            c.close()

    def hold(self, title: str, node: int = 0) -> str:
        body = {"spaceId": "65538", "title": title, "status": "current",
                "body": {"representation": "storage", "value": f"<p>{title}</p>"}}  # fmt: skip
        result = self.client(node, "codex/agent").call("create-page", {"body": body})
        assert result.outcome == "held" and result.ticket, result.to_dict()
        return result.ticket

    def posts(self, title: str) -> int:
        return sum(
            1
            for e in self.sim.exchanges
            if e.method == "POST"
            and e.request_body
            and json.loads(e.request_body)["title"] == title
        )

    def state(self, ticket: str, node: int = 0) -> str:
        return self.client(node, "alice/operator").reviews.show(ticket).state


@pytest.fixture(scope="module")
def cluster(
    pg_server: PgServer, sim: Simulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    url = fresh_database(pg_server)
    root = tmp_path_factory.mktemp("pgnodes")
    # Every node gets the URL from its environment (``env`` execs the node: same pid).
    wrap = ("env", f"HARBOR_DATABASE_URL={url}", "HARBOR_DATABASE_TIMEOUT=3")
    nodes = [Node(root / f"node{i}", sim.url, wrap=wrap) for i in range(NODES)]
    for i, node in enumerate(nodes):
        node.setup(EMAIL, API_TOKEN, [])  # init, base-url, the same credential
        if i:  # the first node's integrity key, copied as an operator would (0600)
            shutil.copyfile(nodes[0].home / KEY_FILE, node.home / KEY_FILE)
            os.chmod(node.home / KEY_FILE, 0o600)
        two_approver_policy(node.home / "port" / "policy.yaml")
        store = IdentityStore(node.home)
        node.tokens["codex/agent"] = store.add("codex", "agent")[1]
        for name in OPERATORS:
            node.tokens[f"{name}/operator"] = store.add(name, "operator")[1]
    for node in nodes:
        node.start()
    c = Cluster(nodes, url, sim)
    yield c
    c.close()
    logs = [n.stop() for n in nodes]
    for log in logs:
        assert PASSWORD not in log and API_TOKEN not in log
        assert "Traceback" not in log, log[-3000:]


def attempt(fn: Callable[[], Any]) -> Any:
    """``fn()``, or the error it raised (a refusal or an outage is an answer here)."""
    try:
        return fn()
    except HarborError as exc:
        return exc


@pytest.mark.timeout(900)
def test_fifty_writes_four_approvers_three_nodes_each_sent_once(cluster: Cluster) -> None:
    titles = [f"once-{i}-{os.urandom(3).hex()}" for i in range(50)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        tickets = list(pool.map(lambda i: cluster.hold(titles[i], i % NODES), range(50)))
    work = [(t, op, random.randrange(NODES)) for t in tickets for op in OPERATORS]
    random.shuffle(work)
    with ThreadPoolExecutor(max_workers=24) as pool:
        results = list(
            pool.map(
                lambda w: attempt(
                    lambda: cluster.client(w[2], f"{w[1]}/operator").reviews.approve(w[0])
                ),
                work,
            )
        )
    refusals = collections.Counter(r.code for r in results if isinstance(r, HarborError))
    # Two approvals complete each ticket; the other two find it approved or already run.
    assert sum(1 for r in results if not isinstance(r, HarborError)) == 100, refusals
    assert set(refusals) <= {"not_pending", "already_running", "already_executed"}, refusals
    assert sum(refusals.values()) == 100
    for title, ticket in zip(titles, tickets, strict=True):
        assert cluster.posts(title) == 1, title
        assert cluster.state(ticket, random.randrange(NODES)) == "succeeded"
    verify = cluster.client(1, "bob/operator").audit.verify()
    assert verify.ok, verify
    records = cluster.client(2, "carol/operator").audit.records()
    approved = collections.Counter(r["ticket"] for r in records if r["event"] == "approved")
    assert set(approved.values()) == {2} and len(approved) == 50
    executing = collections.Counter(r["ticket"] for r in records if r["event"] == "executing")
    assert set(executing.values()) == {1} and len(executing) == 50


@pytest.mark.timeout(600)
def test_a_node_killed_while_sending_leaves_unknown_and_no_node_resends(
    cluster: Cluster,
) -> None:
    title = f"killed-{os.urandom(3).hex()}"
    ticket = cluster.hold(title, 0)
    cluster.client(0, "alice/operator").reviews.approve(ticket)  # one of two
    before = cluster.sim.request_count
    cluster.sim.delay_next(1, 6.0)  # the send will hang; the page is still made after it
    answer: list[Any] = []
    thread = threading.Thread(
        target=lambda: answer.append(
            attempt(lambda: cluster.client(0, "bob/operator").reviews.approve(ticket))
        ),
        daemon=True,
    )
    thread.start()
    deadline = time.monotonic() + 60
    while cluster.sim.request_count == before or cluster.state(ticket, 1) != "executing":
        assert time.monotonic() < deadline, "the send never started"
        time.sleep(0.05)
    victim = cluster.nodes[0]
    assert victim.proc is not None
    os.kill(victim.proc.pid, signal.SIGKILL)
    victim.proc.wait(30)
    victim.proc = None
    thread.join(60)
    cluster.reset_clients(0)
    # Another node sees the claimant gone (same host: its pid; elsewhere: its lease).
    assert cluster.state(ticket, 1) == "unknown"
    run = attempt(lambda: cluster.client(1, "carol/operator").reviews.run(ticket))
    assert isinstance(run, HarborError) and run.code == "outcome_unknown"
    again = attempt(lambda: cluster.client(2, "dave/operator").reviews.approve(ticket))
    assert isinstance(again, HarborError) and again.code == "not_pending"
    time.sleep(7)  # the delayed POST completes at the simulator
    assert cluster.posts(title) == 1
    resolved = cluster.client(2, "dave/operator").reviews.resolve(
        ticket, "succeeded", "the page is there"
    )
    assert resolved.state == "succeeded"
    assert cluster.posts(title) == 1
    victim.start()  # back for the next test
    assert cluster.client(0, "alice/operator").audit.verify().ok


@pytest.mark.timeout(900)
def test_the_database_restarting_loses_nothing_and_sends_nothing_twice(
    cluster: Cluster, pg_server: PgServer
) -> None:
    titles = [f"restart-{i}-{os.urandom(3).hex()}" for i in range(24)]
    tickets = [cluster.hold(t, i % NODES) for i, t in enumerate(titles)]
    for i, t in enumerate(tickets):
        cluster.client(i % NODES, "alice/operator").reviews.approve(t)

    # -- an outage: every part answers in one clear line --------------------------------------
    pg_server.stop()
    try:
        node = cluster.nodes[1]
        listing = node.client("bob/operator", "queue", "list")
        assert listing.code == 1, listing
        assert listing.err.startswith("error: the database ") and "is unavailable" in listing.err
        assert redact_url(cluster.url) in listing.err
        read = node.client("codex/agent", "run", "get-page", "--input", '{"path":{"id":"98305"}}',
                           "--json")  # fmt: skip
        assert read.code == 0, read  # reads still run; the missing audit record is reported
        assert "audit record was not written" in read.out
        held = json.dumps({"body": {"spaceId": "65538", "title": "in outage"}})
        write = node.client("codex/agent", "run", "create-page", "--input", held)
        assert write.code == 1 and "not held and nothing was sent" in write.err, write
        approve = node.client("bob/operator", "queue", "approve", tickets[0])
        assert approve.code == 1 and "is unavailable" in approve.err
        for r in (listing, read, write, approve):
            assert "Traceback" not in r.err and PASSWORD not in r.out + r.err
        assert cluster.posts("in outage") == 0 and cluster.posts(titles[0]) == 0
    finally:
        pg_server.start()
    pg_server.wait_ready()

    # -- a restart in the middle of approving -------------------------------------------------
    def second(i: int) -> Any:
        return attempt(
            lambda: cluster.client(i % NODES, "bob/operator").reviews.approve(tickets[i])
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(second, i) for i in range(len(tickets))]
        time.sleep(0.3)
        pg_server.restart()
        results = [f.result(timeout=300) for f in futures]
    failed = [r for r in results if isinstance(r, HarborError)]
    for r in failed:
        assert r.code in ("database_unavailable", "not_pending", "already_running"), r.to_dict()
        assert PASSWORD not in str(r)

    # Afterwards: whatever did not happen is done again, and nothing runs twice.  A node's
    # pool may take a moment to reconnect after the restart: reads wait for it (bounded).
    def state_when_back(ticket: str, node: int) -> str:
        deadline = time.monotonic() + 60
        while True:
            try:
                return cluster.state(ticket, node)
            except HarborError as exc:
                if exc.code != "database_unavailable" or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    for _ in range(10):
        open_ = {t: state_when_back(t, 2) for t in tickets}
        todo = {t: s for t, s in open_.items() if s in ("pending", "approved")}
        if not todo:
            break
        for t, s in todo.items():
            if s == "pending":
                attempt(lambda t=t: cluster.client(2, "bob/operator").reviews.approve(t))
            else:
                attempt(lambda t=t: cluster.client(2, "bob/operator").reviews.run(t))
    states = {t: state_when_back(t, 0) for t in tickets}
    for title, ticket in zip(titles, tickets, strict=True):
        sent = cluster.posts(title)
        assert sent <= 1, (title, sent)
        if states[ticket] == "succeeded":
            assert sent == 1
        else:
            # A claim whose commit was cut by the restart stays executing until its lease
            # runs out (then unknown): it is never sent again.
            assert states[ticket] in ("executing", "unknown"), (ticket, states[ticket])
    assert sum(s == "succeeded" for s in states.values()) >= len(tickets) - 2, states
    verify = cluster.client(0, "alice/operator").audit.verify()
    assert verify.ok, verify
    with psycopg.connect(cluster.url) as conn:  # every held ticket is still there
        (count,) = conn.execute(
            "SELECT count(*) FROM harbor_tickets WHERE id = ANY(%s)", (tickets,)
        ).fetchone() or (0,)
    assert count == len(tickets)


def test_nodes_share_one_audit_chain(cluster: Cluster) -> None:
    seqs = []
    for i in range(NODES):
        # Right after the restart test a node's pool may still be reconnecting: a read then
        # answers with audit_error (its record not written); read again until it is.
        deadline = time.monotonic() + 60
        while True:
            read = cluster.client(i, "codex/agent").call("get-page", {"path": {"id": "98305"}})
            if "audit_error" not in read.extra or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert "audit_error" not in read.extra, read.extra
        tail = cluster.client(i, "alice/operator").audit.tail(1)
        seqs.append(tail[-1]["seq"])
    assert seqs == sorted(seqs) and len(set(seqs)) == NODES


@pytest.mark.timeout(300)
def test_changes_on_one_node_reach_waiters_and_review_pages_on_another(cluster: Cluster) -> None:
    """LISTEN/NOTIFY: an agent waiting on node 1 and a review page open on node 2 see an
    approval made through node 0, with no polling loop in between."""
    import httpx

    title = f"feed-{os.urandom(3).hex()}"
    ticket = cluster.hold(title, node=1)
    seen: list[str] = []
    waited: dict[str, Any] = {}

    def review_stream() -> None:
        n = cluster.nodes[2]
        headers = {"Authorization": f"Bearer {n.tokens['alice/operator']}"}
        with httpx.stream("GET", f"{n.url}/review/events", headers=headers, timeout=60) as r:
            for line in r.iter_lines():
                if ticket in line and '"succeeded"' in line:
                    seen.append(line)
                    return

    def wait() -> None:
        waited.update(cluster.client(1, "codex/agent").wait(ticket, timeout=60, state="pending"))

    threads = [threading.Thread(target=review_stream), threading.Thread(target=wait)]
    for t in threads:
        t.start()
    time.sleep(1.0)  # the stream and the wait are open before anything changes
    cluster.client(0, "alice/operator").reviews.approve(ticket)
    done = cluster.client(0, "bob/operator").reviews.approve(ticket)
    assert done.state == "succeeded"
    for t in threads:
        t.join(90)
    assert waited.get("state") in ("approved", "executing", "succeeded"), waited
    assert seen, "the review page on node 2 did not hear of the change made on node 0"
    assert cluster.posts(title) == 1
