"""The review queue end to end: held requests, approvals bound to the exact request,
execution exactly once, and the adversarial cases where nothing may be sent.

Every test drives the real Port (or CLI) against the simulator over loopback; "nothing
was sent" is asserted on the simulator's own request counter.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harbor_confluence.errors import PolicyDenied
from harbor_confluence.pipeline.executor import Port
from harbor_confluence.pipeline.request import PreparedRequest
from harbor_confluence.review.audit import AuditLog
from harbor_confluence.review.queue import (
    QueueInputError,
    QueueRefused,
    ReviewQueue,
    TicketNotFound,
)
from harbor_confluence.secrets.credentials import Credential
from harbor_confluence.sim import Simulator
from tests.conftest import API_TOKEN, EMAIL, CliResult

REQUESTER = "agent-7"


def write_policy(
    path: Path, *, approvers: int = 1, forbid_self: bool = False, ttl: int = 86_400
) -> Path:
    """A policy whose create-page needs ``approvers`` operators (reads stay auto)."""
    path.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "rules": [
                    {
                        "name": "search-limit-cap",
                        "actions": ["search-pages"],
                        "decision": "deny",
                        "when": {
                            "properties": {
                                "query": {
                                    "properties": {"limit": {"minimum": 101}},
                                    "required": ["limit"],
                                }
                            },
                            "required": ["query"],
                        },
                    },
                    {"name": "reads-auto", "kind": "read", "decision": "auto"},
                    {
                        "name": "create-review",
                        "actions": ["create-page"],
                        "decision": "require_approval",
                        "approvers": approvers,
                        "forbidSelfApproval": forbid_self,
                        "ttlSeconds": ttl,
                        "reason": "page creation notifies watchers",
                    },
                ],
            }
        )
    )
    return path


def make_port(sim: Simulator, home: Path, policy: Path, **kwargs: Any) -> Port:
    kwargs.setdefault("requester", REQUESTER)
    return Port.load(
        None,
        policy,
        home=home,
        base_url=sim.url,
        credential=Credential.basic(EMAIL, API_TOKEN, "test"),
        **kwargs,
    )


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    return write_policy(tmp_path / "policy.yaml")


@pytest.fixture
def qport(sim: Simulator, home: Path, policy: Path) -> Iterator[Port]:
    with make_port(sim, home, policy) as p:
        yield p


def hold(port: Port, title: str = "Held page") -> str:
    result = port.call("create-page", {"body": {"spaceId": "65538", "title": title}})
    assert result.outcome == "held" and result.ticket
    return result.ticket


def posts(sim: Simulator) -> int:
    return sum(1 for e in sim.exchanges if e.method == "POST")


def events(home: Path) -> list[str]:
    return [r["event"] for r in AuditLog.for_home(home).records()]


def db_exec(home: Path, sql: str, *params: Any) -> None:
    """Write to the queue database directly, as an attacker or a careless admin would."""
    db = sqlite3.connect(home / "queue.sqlite3")
    try:
        db.execute(sql, params)
        db.commit()
    finally:
        db.close()


def fingerprint(method: str, url: str, body: bytes | None) -> str:
    return PreparedRequest("x", method, url, body).fingerprint


# -- the ticket -----------------------------------------------------------------------------


def test_held_ticket_records_the_exact_request(qport: Port, sim: Simulator, home: Path) -> None:
    ticket_id = hold(qport)
    t = qport.ticket(ticket_id)
    assert t is not None and t.state == "pending"
    assert (t.method, t.url) == ("POST", sim.url + "/wiki/api/v2/pages")
    assert t.body == b'{"spaceId":"65538","title":"Held page"}'
    expected = hashlib.sha256(b"POST\n" + t.url.encode() + b"\n" + t.body).hexdigest()
    assert t.fingerprint == expected
    assert (t.requester, t.rule, t.port) == (REQUESTER, "create-review", "confluence-cloud")
    assert t.manifest_version == qport.manifest.manifest_version
    assert t.expires_at - t.created_at == pytest.approx(86_400)
    assert sim.request_count == 0
    held = AuditLog.for_home(home).records()[-1]
    assert held["event"] == "held" and held["ticket"] == ticket_id
    assert held["fingerprint"] == t.fingerprint and held["rule"] == "create-review"


def test_review_context_is_stored_and_shown(home: Path, cli: Callable[..., CliResult]) -> None:
    queue = ReviewQueue.for_home(home)
    prepared = PreparedRequest(
        "update-page", "PUT", "https://acme.atlassian.net/wiki/api/v2/pages/7",
        b'{"title":"x"}', "application/json",
        review={"base_version": 4, "diff": "-old\n+new", "file_sha256": "ab" * 32},
    )  # fmt: skip
    t = queue.hold(
        prepared, port="confluence-cloud", manifest_version="1.0.0", rule="updates",
        requester="agent", ttl_seconds=3600,
    )  # fmt: skip
    assert queue.require(t.id).review["base_version"] == 4
    shown = cli("queue", "show", t.id)
    assert shown.code == 0
    assert "-old\n+new" in json.loads(shown.out.split("review:\n", 1)[1].split("\n\n")[0])["diff"]
    assert "PUT https://acme.atlassian.net/wiki/api/v2/pages/7" in shown.out
    assert cli("queue", "show", t.id, "--json").json()["review"]["file_sha256"] == "ab" * 32


# -- approval runs once ---------------------------------------------------------------------


def test_approve_runs_once_and_stores_the_summary(qport: Port, sim: Simulator, home: Path) -> None:
    ticket_id = hold(qport, "Approved page")
    assert sim.request_count == 0
    done = qport.approve(ticket_id, operator="alice", reason="looks right")
    assert done.state == "succeeded" and done.executed_by == "alice"
    assert done.result is not None and done.result["ok"] is True
    assert done.result["status"] == 200 and done.result["summary"]["title"] == "Approved page"
    assert posts(sim) == 1
    sent = next(e for e in sim.exchanges if e.method == "POST")
    assert sent.request_body == b'{"spaceId":"65538","title":"Approved page"}'
    status = qport.status(ticket_id)
    assert status["state"] == "succeeded" and status["result"]["summary"]["id"]
    assert events(home)[-4:] == ["held", "approved", "executing", "executed"]
    approved = next(r for r in AuditLog.for_home(home).records() if r["event"] == "approved")
    assert (approved["operator"], approved["reason"]) == ("alice", "looks right")
    assert approved["fingerprint"] == done.fingerprint


def test_replay_of_an_executed_ticket_sends_nothing(qport: Port, sim: Simulator) -> None:
    ticket_id = hold(qport)
    assert qport.approve(ticket_id, operator="alice").state == "succeeded"
    before = sim.request_count
    with pytest.raises(QueueRefused) as info:
        qport.execute(ticket_id, operator="alice")
    assert info.value.code == "already_executed"
    with pytest.raises(QueueRefused):
        qport.approve(ticket_id, operator="bob")
    assert sim.request_count == before == 1


def test_no_run_then_run(qport: Port, sim: Simulator) -> None:
    ticket_id = hold(qport)
    approved = qport.approve(ticket_id, operator="alice", run=False)
    assert approved.state == "approved" and sim.request_count == 0
    assert qport.execute(ticket_id, operator="bob").state == "succeeded"
    assert posts(sim) == 1


def test_approval_bound_to_the_reviewed_fingerprint(qport: Port, sim: Simulator) -> None:
    ticket_id = hold(qport)
    other = hold(qport, "Another page")
    other_fp = qport.status(other)["fingerprint"]
    with pytest.raises(QueueRefused) as info:
        qport.approve(ticket_id, operator="alice", fingerprint=other_fp[:16])
    assert info.value.code == "fingerprint_mismatch"
    with pytest.raises(QueueInputError):
        qport.approve(ticket_id, operator="alice", fingerprint="abc")
    mine = qport.status(ticket_id)["fingerprint"]
    assert qport.approve(ticket_id, operator="alice", fingerprint=mine[:12]).state == "succeeded"
    assert posts(sim) == 1


# -- adversarial: nothing is sent -----------------------------------------------------------


def test_swapped_body_after_approval_is_refused(qport: Port, sim: Simulator, home: Path) -> None:
    approved = hold(qport, "Harmless page")
    evil = hold(qport, "Swapped page")
    qport.approve(approved, operator="alice", run=False)
    swapped = qport.ticket(evil)
    assert swapped is not None
    # Swap in the other request's body *and* its (valid) fingerprint: the approval still
    # records the fingerprint of the request alice saw.
    db_exec(home, "UPDATE tickets SET body = ?, fingerprint = ? WHERE id = ?",
            swapped.body, swapped.fingerprint, approved)  # fmt: skip
    with pytest.raises(QueueRefused) as info:
        qport.execute(approved, operator="alice")
    assert info.value.code == "tampered" and "alice" in str(info.value)
    assert sim.request_count == 0
    assert events(home)[-1] == "refused"


@pytest.mark.parametrize(
    ("column", "value", "refit"),
    [
        ("body", b'{"spaceId":"65538","title":"Edited title"}', False),
        ("body", b'{"spaceId":"65538","title":"Edited title"}', True),
        ("url", "/wiki/api/v2/pages?foo=bar", True),
        ("method", "PUT", False),
    ],
)
def test_database_row_edited_after_approval_is_refused(
    qport: Port, sim: Simulator, home: Path, column: str, value: Any, refit: bool
) -> None:
    ticket_id = hold(qport)
    qport.approve(ticket_id, operator="alice", run=False)
    t = qport.ticket(ticket_id)
    assert t is not None
    if column == "url":
        value = sim.url + value
    db_exec(home, f"UPDATE tickets SET {column} = ? WHERE id = ?", value, ticket_id)
    if refit:  # a careful attacker also rewrites the ticket's own fingerprint
        row = {"method": t.method, "url": t.url, "body": t.body, column: value}
        db_exec(home, "UPDATE tickets SET fingerprint = ? WHERE id = ?",
                fingerprint(row["method"], row["url"], row["body"]), ticket_id)  # fmt: skip
    with pytest.raises(QueueRefused) as info:
        qport.execute(ticket_id, operator="alice")
    assert info.value.code == "tampered"
    assert sim.request_count == 0


def test_forged_row_aimed_elsewhere_is_refused(qport: Port, sim: Simulator, home: Path) -> None:
    """Even with every fingerprint rewritten consistently, the ticket's seal (a MAC the
    database does not hold the key to) no longer fits: refused as tampered."""
    ticket_id = hold(qport)
    qport.approve(ticket_id, operator="alice", run=False)
    t = qport.ticket(ticket_id)
    assert t is not None and t.body is not None
    for url in ("http://127.0.0.2:9/wiki/api/v2/pages", sim.url + "/wiki/rest/api/user"):
        fp = fingerprint("POST", url, t.body)
        db_exec(home, "UPDATE tickets SET url = ?, fingerprint = ? WHERE id = ?", url, fp, t.id)
        db_exec(home, "UPDATE approvals SET fingerprint = ? WHERE ticket_id = ?", fp, t.id)
        with pytest.raises(QueueRefused) as info:
            qport.execute(ticket_id, operator="alice")
        assert info.value.code == "tampered" and "seal" in str(info.value)
    assert sim.request_count == 0


@pytest.mark.parametrize(
    "url", ["http://127.0.0.2:9/wiki/api/v2/pages", "{sim}/wiki/rest/api/user"]
)
def test_sealed_ticket_aimed_elsewhere_is_refused(
    qport: Port, sim: Simulator, home: Path, url: str
) -> None:
    """A properly sealed ticket still runs only if the port's manifest could have built its
    request for the configured tenant (a queue shared with another port or tenant)."""
    queue = ReviewQueue.for_home(home)
    body = b'{"spaceId":"65538","title":"Elsewhere"}'
    held = queue.hold(
        PreparedRequest("create-page", "POST", url.format(sim=sim.url), body,
                        "application/json"),
        port="confluence-cloud", manifest_version=qport.manifest.manifest_version,
        rule="create-review", requester=REQUESTER, ttl_seconds=3600,
    )  # fmt: skip
    queue.approve(held.id, "alice")
    with pytest.raises(QueueRefused) as info:
        qport.execute(held.id, operator="alice")
    assert info.value.code == "refused"
    assert sim.request_count == 0


def test_expired_approval_never_runs(qport: Port, sim: Simulator, home: Path) -> None:
    ticket_id = hold(qport)
    qport.approve(ticket_id, operator="alice", run=False)
    db_exec(home, "UPDATE tickets SET expires_at = ? WHERE id = ?", time.time() - 1, ticket_id)
    with pytest.raises(QueueRefused) as info:
        qport.execute(ticket_id, operator="alice")
    assert info.value.code == "expired"
    assert qport.status(ticket_id)["state"] == "expired"
    with pytest.raises(QueueRefused):  # and it stays dead
        qport.execute(ticket_id, operator="alice")
    assert sim.request_count == 0
    assert "expired" in events(home)


def test_expiry_from_the_policy_ttl_and_marking_on_list(
    sim: Simulator, home: Path, tmp_path: Path
) -> None:
    policy = write_policy(tmp_path / "p.yaml", ttl=60)
    with make_port(sim, home, policy) as port:
        ticket_id = hold(port)
        t = port.ticket(ticket_id)
        assert t is not None and t.expires_at - t.created_at == pytest.approx(60)
        assert port.status(ticket_id)["expires_in_seconds"] <= 60
        db_exec(home, "UPDATE tickets SET expires_at = ? WHERE id = ?", time.time() - 1, t.id)
        listed = port.queue.list()
        assert [x.state for x in listed] == ["expired"]
        assert port.queue.list(state="pending") == []
        with pytest.raises(QueueRefused) as info:
            port.approve(ticket_id, operator="alice")
        assert info.value.state == "expired"
    assert sim.request_count == 0
    assert events(home).count("expired") == 1


def test_requester_cannot_approve_their_own_two_person_ticket(
    sim: Simulator, home: Path, tmp_path: Path
) -> None:
    policy = write_policy(tmp_path / "p.yaml", approvers=2, forbid_self=True)
    with make_port(sim, home, policy) as port:
        ticket_id = hold(port)
        with pytest.raises(QueueRefused) as info:
            port.approve(ticket_id, operator=REQUESTER)
        assert info.value.code == "self_approval"
        assert port.approve(ticket_id, operator="alice").state == "pending"
        with pytest.raises(QueueRefused) as dup:
            port.approve(ticket_id, operator="alice")
        assert dup.value.code == "duplicate_approval"
        with pytest.raises(QueueRefused) as early:
            port.execute(ticket_id, operator="alice")
        assert early.value.code == "not_approved"
        assert sim.request_count == 0
        done = port.approve(ticket_id, operator="bob")
        assert done.state == "succeeded"
        assert done.approvers() == ["alice", "bob"]
    assert posts(sim) == 1


def test_self_approval_inserted_in_the_database_is_refused(
    sim: Simulator, home: Path, tmp_path: Path
) -> None:
    policy = write_policy(tmp_path / "p.yaml", approvers=2, forbid_self=True)
    with make_port(sim, home, policy) as port:
        ticket_id = hold(port)
        port.approve(ticket_id, operator="alice")
        t = port.ticket(ticket_id)
        assert t is not None
        db_exec(home, "INSERT INTO approvals (ticket_id, operator, fingerprint, at) "
                "VALUES (?, ?, ?, ?)", ticket_id, REQUESTER, t.fingerprint,
                time.time())  # fmt: skip
        db_exec(home, "UPDATE tickets SET state = 'approved' WHERE id = ?", ticket_id)
        with pytest.raises(QueueRefused) as info:
            port.execute(ticket_id, operator="alice")
        # Refused as a forgery: neither the state nor the approval was written by the queue.
        assert info.value.code == "tampered"
    assert sim.request_count == 0


def test_rejection_needs_a_reason_and_reaches_the_agent(qport: Port, sim: Simulator) -> None:
    ticket_id = hold(qport)
    with pytest.raises(QueueInputError):
        qport.reject(ticket_id, "   ", operator="alice")
    rejected = qport.reject(ticket_id, "wrong space; use ENG", operator="alice")
    assert rejected.state == "rejected"
    status = qport.status(ticket_id)
    assert status["reason"] == "wrong space; use ENG" and status["decided_by"] == "alice"
    assert "wrong space" in status["message"]
    for attempt in (lambda: qport.approve(ticket_id, operator="bob"),
                    lambda: qport.execute(ticket_id, operator="bob")):  # fmt: skip
        with pytest.raises(QueueRefused):
            attempt()
    assert sim.request_count == 0


def test_agent_cancels_its_request(qport: Port, sim: Simulator) -> None:
    ticket_id = hold(qport)
    assert qport.cancel(ticket_id, reason="no longer needed").decided_by == REQUESTER
    with pytest.raises(QueueRefused):
        qport.approve(ticket_id, operator="alice")
    with pytest.raises(QueueRefused):
        qport.cancel(ticket_id)
    assert qport.status(ticket_id)["state"] == "cancelled"
    assert sim.request_count == 0


def test_unknown_ticket(qport: Port) -> None:
    with pytest.raises(TicketNotFound):
        qport.status("t_doesnotexist")
    with pytest.raises(TicketNotFound):
        qport.approve("t_doesnotexist", operator="alice")


# -- outcomes -------------------------------------------------------------------------------


def test_timeout_leaves_unknown_and_it_is_never_retried(
    sim: Simulator, home: Path, policy: Path
) -> None:
    with make_port(sim, home, policy, timeout=0.5) as port:
        ticket_id = hold(port)
        sim.delay_next(1, 3)
        t = port.approve(ticket_id, operator="alice")
        assert t.state == "unknown"
        assert t.result is not None and t.result["error"]["type"] == "timeout"
        assert "will not be retried" in t.result["message"]
        assert sim.request_count == 1
        with pytest.raises(QueueRefused) as info:
            port.execute(ticket_id, operator="alice")
        assert info.value.code == "outcome_unknown"
        assert sim.request_count == 1
        with pytest.raises(QueueInputError):
            port.resolve(ticket_id, "maybe", operator="alice")
        resolved = port.resolve(ticket_id, "succeeded", operator="alice", note="page is there")
        assert resolved.state == "succeeded" and resolved.decided_by == "alice"
        assert resolved.result is not None and resolved.result["resolved_by"] == "alice"
        with pytest.raises(QueueRefused):
            port.resolve(ticket_id, "failed", operator="bob")
    assert events(home).count("resolved") == 1


def test_connection_refused_is_failed_not_unknown(home: Path, policy: Path) -> None:
    with Simulator(email=EMAIL, api_token=API_TOKEN) as gone:
        port = make_port(gone, home, policy)
        ticket_id = hold(port)
    with port:  # the tenant is down: nothing can have been sent
        t = port.approve(ticket_id, operator="alice")
    assert t.state == "failed"
    assert t.result is not None and t.result["error"]["type"] == "connect"
    assert "nothing reached Confluence" in t.result["message"]


def test_upstream_error_is_failed_with_confluences_message(qport: Port, sim: Simulator) -> None:
    ticket_id = hold(qport)
    sim.fail_next(1, 400)
    t = qport.approve(ticket_id, operator="alice")
    assert t.state == "failed"
    assert t.result is not None and t.result["status"] == 400 and t.result["error"]["message"]
    assert sim.request_count == 1


# -- CLI ------------------------------------------------------------------------------------


def test_cli_operator_flow(
    cli: Callable[..., CliResult],
    cli_env: dict[str, str],
    sim: Simulator,
    policy: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = {"body": {"spaceId": "65538", "title": "From the CLI"}}
    held = cli("run", "create-page", "--input", json.dumps(body), "--requester", "bot",
               "--policy", str(policy), "--json")  # fmt: skip
    assert held.code == 4
    ticket_id = held.json()["ticket"]
    listed = cli("queue", "list", "--state", "pending", "--json")
    assert [r["id"] for r in listed.json()] == [ticket_id]
    shown = cli("queue", "show", ticket_id)
    assert shown.code == 0
    assert '"title": "From the CLI"' in shown.out  # body pretty-printed
    assert "requested by bot" in shown.out and "create-review" in shown.out
    assert "expires" in shown.out and "(in 23h" in shown.out
    waiting = cli("queue", "status", ticket_id, "--json")
    assert waiting.code == 4 and waiting.json()["state"] == "pending"
    monkeypatch.setenv("HARBOR_OPERATOR", "carol")
    ran = cli("queue", "approve", ticket_id, "--policy", str(policy), "--json")
    assert ran.code == 0, ran.out
    assert ran.json()["state"] == "succeeded" and ran.json()["approvals"][0]["operator"] == "carol"
    done = cli("queue", "status", ticket_id, "--json")
    assert done.code == 0 and done.json()["result"]["status"] == 200
    again = cli("queue", "run", ticket_id, "--json")
    assert again.code == 3 and again.json()["error"]["code"] == "already_executed"
    assert posts(sim) == 1


def test_cli_reject_resolve_and_exit_codes(
    cli: Callable[..., CliResult], cli_env: dict[str, str], sim: Simulator, policy: Path
) -> None:
    body = json.dumps({"body": {"spaceId": "65538", "title": "Rejected"}})
    ticket_id = cli("run", "create-page", "--input", body, "--policy", str(policy),
                    "--json").json()["ticket"]  # fmt: skip
    no_reason = cli("queue", "reject", ticket_id, "--as", "dave", "--json")
    assert no_reason.code == 2 and "reason" in no_reason.json()["error"]["message"]
    rejected = cli("queue", "reject", ticket_id, "--as", "dave", "--reason", "duplicate page")
    assert rejected.code == 0 and "duplicate page" in rejected.out
    status = cli("queue", "status", ticket_id, "--json")
    assert status.code == 3 and status.json()["reason"] == "duplicate page"
    missing = cli("queue", "show", "t_nope", "--json")
    assert missing.code == 1 and missing.json()["error"]["code"] == "not_found"
    not_unknown = cli("queue", "resolve", ticket_id, "--outcome", "succeeded", "--as", "dave")
    assert not_unknown.code == 3
    assert sim.request_count == 0


def test_list_is_paged(home: Path) -> None:
    queue = ReviewQueue.for_home(home)
    ids = [
        queue.hold(
            PreparedRequest("create-page", "POST", f"https://a.example/{i}", b"{}",
                            "application/json"),
            port="p", manifest_version="1", rule="r", requester="a", ttl_seconds=3600,
        ).id
        for i in range(5)
    ]  # fmt: skip
    first = queue.list(limit=2)
    second = queue.list(limit=2, after=first[-1].id)
    third = queue.list(limit=2, after=second[-1].id)
    assert [t.id for t in first + second + third] == ids
    with pytest.raises(QueueInputError):
        queue.list(limit=0)
    with pytest.raises(QueueInputError):
        queue.list(state="bogus")


def test_foundation_queue_file_is_upgraded_in_place(home: Path) -> None:
    """A queue.sqlite3 written by the foundation's simpler schema keeps its tickets."""
    home.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(home / "queue.sqlite3")
    db.executescript(
        """CREATE TABLE tickets (id TEXT PRIMARY KEY, action TEXT NOT NULL, port TEXT NOT NULL,
        manifest_version TEXT NOT NULL, rule TEXT NOT NULL, method TEXT NOT NULL,
        url TEXT NOT NULL, body BLOB, content_type TEXT, fingerprint TEXT NOT NULL,
        requester TEXT NOT NULL, created_at REAL NOT NULL, expires_at REAL NOT NULL,
        state TEXT NOT NULL, result TEXT);
        CREATE INDEX tickets_state ON tickets(state, created_at);"""
    )
    url, body = "https://a.example/wiki/api/v2/pages", b'{"title":"old"}'
    db.execute(
        "INSERT INTO tickets VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        ("t_old", "create-page", "p", "1", "r", "POST", url, body, "application/json",
         fingerprint("POST", url, body), "agent", time.time(), time.time() + 600, "pending",
         None),
    )  # fmt: skip
    db.commit()
    db.close()
    queue = ReviewQueue.for_home(home)
    t = queue.require("t_old")
    assert (t.state, t.approvals_required, t.body) == ("pending", 1, body)
    assert t.seal is None  # held before tickets were sealed: readable, never approved or run
    with pytest.raises(QueueRefused) as info:
        queue.approve("t_old", "alice")
    assert info.value.code == "tampered" and "no seal" in str(info.value)
    assert info.value.exit_code == 3
    assert queue.require("t_old").approvals == ()
    db = sqlite3.connect(home / "queue.sqlite3")
    try:
        columns = {r[1] for r in db.execute("PRAGMA table_info(approvals)")}
        assert "seal" in columns
        assert db.execute("PRAGMA user_version").fetchone()[0] == 3
    finally:
        db.close()
    # A new request on the upgraded file is sealed and approvable.
    fresh = queue.hold(PreparedRequest("create-page", "POST", url, body, "application/json"),
                       port="p", manifest_version="1", rule="r", requester="agent",
                       ttl_seconds=600)  # fmt: skip
    assert queue.approve(fresh.id, "alice").state == "approved"


# -- secrets --------------------------------------------------------------------------------


def test_no_credential_in_the_queue_or_the_audit_log(
    qport: Port, sim: Simulator, home: Path
) -> None:
    assert qport.call("search-pages", {"query": {"limit": 1}}).ok
    with pytest.raises(PolicyDenied):
        qport.call("search-pages", {"query": {"limit": 200}})
    ticket_id = hold(qport)
    qport.approve(ticket_id, operator="alice")
    rejected = hold(qport, "Second")
    qport.reject(rejected, "no", operator="alice")
    assert {"auto-sent", "denied", "held", "approved", "executed", "rejected"} <= set(events(home))
    basic = base64.b64encode(f"{EMAIL}:{API_TOKEN}".encode())
    files = [p for p in home.iterdir() if p.is_file()]
    assert any(p.name.startswith("queue.sqlite3") for p in files)
    for path in files:
        data = path.read_bytes()
        assert API_TOKEN.encode() not in data, path
        assert basic not in data, path
    for mode_path in (home / "queue.sqlite3", home / "audit.jsonl"):
        assert mode_path.stat().st_mode & 0o777 == 0o600
    assert AuditLog.for_home(home).verify().ok
