"""The queue and the audit log in a real PostgreSQL server (tests/pgserver.py), in process.

Backend selection, the versioned schema, the shared key, exactly once between "nodes"
(ports with their own state directories and one key), the lease seen from another host,
tampering with rows, the keyed chain in a table, live changes (LISTEN/NOTIFY), an outage,
and ``node migrate`` from a SQLite home.  "Nothing was sent" is the simulator's count.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from harbor_confluence.errors import ConfigError
from harbor_confluence.pipeline.request import PreparedRequest
from harbor_confluence.postgres import (
    DATABASE_URL_ENV,
    DatabaseUnavailable,
    check_url,
    database_url,
    redact_url,
)
from harbor_confluence.review.audit import AuditLog
from harbor_confluence.review.integrity import KEY_FILE, IntegrityKey
from harbor_confluence.review.queue import QueueRefused, ReviewQueue, SqliteTicketStore
from harbor_confluence.sim import Simulator
from tests.pgserver import PASSWORD, PgServer, fresh_database, needs_postgres_client, server_or_skip
from tests.test_queue import hold, make_port, posts, write_policy
from tests.test_queue_concurrency import race

needs_postgres_client()  # psycopg, or skip (fail in CI)

import psycopg  # noqa: E402

from harbor_confluence.postgres.audit import PgAuditLog  # noqa: E402
from harbor_confluence.postgres.db import Database, migrations  # noqa: E402
from harbor_confluence.postgres.tickets import PgTicketStore  # noqa: E402


@pytest.fixture(scope="session")
def pg_server() -> PgServer:
    return server_or_skip()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    return fresh_database(pg_server)


@pytest.fixture
def db_url(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh database, selected for this process (HARBOR_DATABASE_URL)."""
    monkeypatch.setenv(DATABASE_URL_ENV, pg_url)
    monkeypatch.setenv("HARBOR_DATABASE_TIMEOUT", "2")
    return pg_url


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    return write_policy(tmp_path / "policy.yaml")


def sql(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    """A statement run directly against the database, as an attacker or an admin would."""
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query.encode(), params or None)
        return cur.fetchall() if cur.description else []


def second_home(home: Path, tmp_path: Path, name: str = "node2") -> Path:
    """Another node's state directory holding the same integrity key (copied, 0600)."""
    other = tmp_path / name
    (other / "secrets").mkdir(parents=True, mode=0o700)
    other.chmod(0o700)
    shutil.copyfile(home / KEY_FILE, other / KEY_FILE)
    (other / KEY_FILE).chmod(0o600)
    return other


# -- selection, schema, key ------------------------------------------------------------------


def test_the_url_picks_the_backend(
    db_url: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = ReviewQueue.for_home(home)
    assert isinstance(queue.store, PgTicketStore) and isinstance(queue.audit, PgAuditLog)
    assert isinstance(AuditLog.for_home(home), PgAuditLog)
    assert PASSWORD not in repr(queue) and PASSWORD not in repr(queue.audit)
    assert "***" in repr(queue)
    monkeypatch.delenv(DATABASE_URL_ENV)
    embedded = ReviewQueue.for_home(home)
    assert isinstance(embedded.store, SqliteTicketStore)
    assert type(embedded.audit) is AuditLog
    # A node's operator may name the database in config.json instead.
    (home / "config.json").write_text(json.dumps({"database-url": db_url}))
    assert database_url(home) == db_url
    assert isinstance(ReviewQueue.for_home(home).store, PgTicketStore)


def test_urls_are_checked_and_redacted() -> None:
    assert redact_url("postgresql://u:s3cret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact_url("postgresql://h/db?password=s3cret&sslmode=require") == (
        "postgresql://h/db?password=%2A%2A%2A&sslmode=require"
    )
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"
    with pytest.raises(ConfigError) as caught:
        check_url("mysql://u:s3cret@h/db")
    assert "s3cret" not in str(caught.value)
    assert "s3cret" not in repr(Database("postgresql://u:s3cret@h/db"))


def test_schema_is_versioned_and_two_nodes_starting_at_once_apply_it_once(db_url: str) -> None:
    key = IntegrityKey.generate()
    errors: list[BaseException] = []

    def start() -> None:
        db = Database(db_url)  # its own pool, as another node
        try:
            db.ready(key)
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    rows = sql(db_url, "SELECT version, name FROM harbor_schema_version ORDER BY version")
    assert rows == [(v, name) for v, name, _ in migrations()]
    assert [v for v, _ in rows] == list(range(1, len(rows) + 1))
    # A database migrated by newer code is refused, not written to.
    sql(db_url, "INSERT INTO harbor_schema_version (version, name) VALUES (99, '0099_x.sql')")
    newer = Database(db_url)
    with pytest.raises(ConfigError, match="schema is at version 99"):
        newer.ready(key)
    newer.close()


def test_a_node_with_another_key_is_refused(db_url: str, home: Path, tmp_path: Path) -> None:
    ReviewQueue.for_home(home).list()  # the first node: the database takes its key
    stranger = tmp_path / "stranger"
    queue = ReviewQueue.for_home(stranger)  # `node init` made it a key of its own
    with pytest.raises(ConfigError, match=r"same secrets/integrity\.key"):
        queue.list()
    with pytest.raises(ConfigError, match=r"same secrets/integrity\.key"):
        AuditLog.for_home(stranger).append("hello")


# -- exactly once between nodes -----------------------------------------------------------


def test_nodes_racing_on_one_ticket_send_it_once(
    db_url: str, sim: Simulator, home: Path, tmp_path: Path, policy: Path
) -> None:
    with make_port(sim, home, policy) as port:
        ticket_id = hold(port)
    homes = [home] + [second_home(home, tmp_path, f"n{i}") for i in range(3)]
    ports = [make_port(sim, homes[i % 4], policy) for i in range(8)]
    try:
        results = race(8, lambda i: ports[i].approve(ticket_id, operator=f"op{i}"))
    finally:
        for p in ports:
            p.close()
    states = [r.state for r in results if not isinstance(r, QueueRefused)]  # type: ignore[attr-defined]
    refused = {r.code for r in results if isinstance(r, QueueRefused)}
    assert states == ["succeeded"] and refused == {"not_pending"}
    assert posts(sim) == 1 and sim.request_count == 1
    assert AuditLog.for_home(home).verify().ok


def test_a_claim_on_another_host_is_trusted_until_its_lease_runs_out(
    db_url: str, sim: Simulator, home: Path, tmp_path: Path, policy: Path
) -> None:
    """A node elsewhere cannot see the claimant's pid: only the lease ends the claim, and
    then the ticket is unknown, never sent again."""
    with make_port(sim, home, policy) as port:
        ticket_id = hold(port)
        port.approve(ticket_id, operator="alice", run=False)
    now = [time.time()]
    a = ReviewQueue.for_home(home)
    claimed = a.claim(ticket_id, "alice", lease_seconds=30)
    b = ReviewQueue.for_home(second_home(home, tmp_path), key=None)
    b._host = "another-host"
    b._clock = lambda: now[0]
    assert b.require(ticket_id).state == "executing"
    with pytest.raises(QueueRefused) as caught:
        b.claim(ticket_id, "bob", lease_seconds=30)
    assert caught.value.code == "already_running"
    now[0] += 31  # the lease ran out: the claimant is presumed gone
    assert b.require(ticket_id).state == "unknown"
    with pytest.raises(QueueRefused) as caught:
        b.claim(ticket_id, "bob", lease_seconds=30)
    assert caught.value.code == "outcome_unknown"
    assert posts(sim) == 0
    # The claimant was only slow: its real outcome still lands on the ticket.
    done = a.finish(claimed, "succeeded", {"ok": True}, status=200)
    assert done.state == "succeeded"


# -- tampering with rows ---------------------------------------------------------------------


def test_rows_edited_in_the_database_are_refused(
    db_url: str, sim: Simulator, home: Path, policy: Path
) -> None:
    with make_port(sim, home, policy) as port:
        forged = hold(port, "forged state")
        sql(db_url, "UPDATE harbor_tickets SET state = 'approved' WHERE id = %s", forged)
        with pytest.raises(QueueRefused) as caught:
            port.execute(forged, operator="mallory")
        assert caught.value.code == "tampered"
        rewritten = hold(port, "rewritten body")
        sql(
            db_url,
            "UPDATE harbor_tickets SET body = convert_to(replace(convert_from(body, 'UTF8'), "
            "'rewritten body', 'evil'), 'UTF8') WHERE id = %s",
            rewritten,
        )
        with pytest.raises(QueueRefused) as caught:
            port.approve(rewritten, operator="alice")
        assert caught.value.code == "tampered"
        relaxed = hold(port, "forged approval")
        sql(
            db_url,
            "INSERT INTO harbor_approvals (ticket_id, operator, fingerprint, at, seal) "
            "SELECT id, 'mallory', fingerprint, 1, 'x' FROM harbor_tickets WHERE id = %s",
            relaxed,
        )
        sql(db_url, "UPDATE harbor_tickets SET state = 'approved' WHERE id = %s", relaxed)
        with pytest.raises(QueueRefused) as caught:
            port.execute(relaxed, operator="mallory")
        assert caught.value.code == "tampered"
    assert posts(sim) == 0
    refused = [r for r in AuditLog.for_home(home).records() if r["event"] == "refused"]
    assert {r["code"] for r in refused} == {"tampered"} and len(refused) == 3


# -- the audit chain in a table ----------------------------------------------------------------


@pytest.fixture
def chain(db_url: str, home: Path) -> PgAuditLog:
    log = AuditLog.for_home(home)
    assert isinstance(log, PgAuditLog)
    for i in range(6):
        log.append("auto-sent", durable=i % 2 == 0, action="get-page", ticket=f"t_{i}")
    assert log.verify().ok and log.verify().count == 6
    return log


def test_verify_names_an_edited_row(chain: PgAuditLog, db_url: str, cli: Any) -> None:
    sql(db_url, "UPDATE harbor_audit SET record = replace(record, 'get-page', 'delete-page') "
        "WHERE seq = 3")  # fmt: skip
    result = chain.verify()
    assert not result.ok and result.first_bad_seq == 3
    assert result.reason == "record #3 (row 3) was edited: its content does not match its hash"
    r = cli("audit", "verify")
    assert r.code == 1 and "record #3 (row 3) was edited" in r.out and "Traceback" not in r.err


def test_verify_names_a_deleted_row(chain: PgAuditLog, db_url: str) -> None:
    sql(db_url, "DELETE FROM harbor_audit WHERE seq = 4")
    result = chain.verify()
    assert not result.ok and result.first_bad_seq == 5
    assert "expected record #4 at row 4 but found #5" in (result.reason or "")


def test_verify_names_rows_cut_from_the_end(chain: PgAuditLog, db_url: str) -> None:
    sql(db_url, "DELETE FROM harbor_audit WHERE seq >= 5")
    result = chain.verify()
    assert not result.ok and "records #5..#6 were removed from the end" in (result.reason or "")
    sql(db_url, "DELETE FROM harbor_audit_anchor")
    assert "anchor harbor_audit_anchor is missing" in (chain.verify().reason or "")
    # The next append says so in the chain itself.
    chain.append("held", ticket="t_x")
    result = chain.verify()
    assert not result.ok and "the anchor was missing" in (result.reason or "")


def test_verify_names_a_forged_row(chain: PgAuditLog, db_url: str) -> None:
    import hashlib

    from harbor_confluence.pipeline.request import canonical_json

    last = json.loads(sql(db_url, "SELECT record FROM harbor_audit WHERE seq = 6")[0][0])
    forged = {"seq": 7, "ts": last["ts"], "event": "approved", "ticket": "t_9",
              "operator": "alice", "prev": last["hash"]}  # fmt: skip
    forged["hash"] = hashlib.sha256(canonical_json(forged)).hexdigest()
    sql(db_url, "INSERT INTO harbor_audit (seq, event, ticket, record) VALUES (7, %s, %s, %s)",
        "approved", "t_9", json.dumps(forged))  # fmt: skip
    result = chain.verify()
    assert not result.ok and result.first_bad_seq == 7
    assert "record #7 (row 7) is forged" in (result.reason or "")


def test_verify_names_a_row_whose_columns_were_edited(chain: PgAuditLog, db_url: str) -> None:
    """The ticket column is the index a run-once check searches: hiding a record from it
    is an edit too."""
    sql(db_url, "UPDATE harbor_audit SET ticket = 't_other' WHERE seq = 2")
    result = chain.verify()
    assert not result.ok and result.first_bad_seq == 2
    assert "columns (seq, event, ticket) do not match its record" in (result.reason or "")


def test_appends_from_many_threads_and_pools_make_one_chain(
    chain: PgAuditLog, db_url: str, home: Path
) -> None:
    logs = [PgAuditLog(Database(db_url), home) for _ in range(4)]
    race(8, lambda i: [logs[i % 4].append("auto-sent", n=n, by=i) for n in range(10)])
    result = chain.verify()
    assert result.ok and result.count == 6 + 80
    assert chain.find("auto-sent", ticket="t_4") is not None
    assert len(chain.tail(5)) == 5 and chain.tail(5)[-1]["seq"] == 86


# -- live changes ---------------------------------------------------------------------------


def test_a_waiting_agent_is_woken_by_a_change_on_another_node(
    db_url: str, sim: Simulator, home: Path, tmp_path: Path, policy: Path
) -> None:
    with make_port(sim, home, policy) as port:
        ticket_id = hold(port)
    waiter = ReviewQueue.for_home(second_home(home, tmp_path))
    reads = [0]
    real_get = waiter.store.get

    def counting_get(ticket: str) -> Any:
        reads[0] += 1
        return real_get(ticket)

    waiter.store.get = counting_get  # type: ignore[method-assign]
    seen: list[Any] = []
    started = time.monotonic()
    thread = threading.Thread(
        target=lambda: seen.append(waiter.wait_for_change(ticket_id, 30)), daemon=True
    )
    thread.start()
    time.sleep(1.0)  # the waiter sleeps on LISTEN meanwhile: no queries
    with make_port(sim, home, policy) as port:
        port.reject(ticket_id, "not now", operator="alice")
    thread.join(20)
    took = time.monotonic() - started
    assert seen and seen[0].state == "rejected"
    assert took < 10, took  # woken, not timed out
    assert reads[0] <= 4, reads  # one read before sleeping, one or two after the notice


def test_watch_streams_changes_from_every_node(
    db_url: str, sim: Simulator, home: Path, policy: Path
) -> None:
    queue = ReviewQueue.for_home(home)
    changes: list[Any] = []

    def watch() -> None:
        for change in queue.watch(timeout=8):
            if change.ticket != "*":
                changes.append(change)
            if any(c.state == "succeeded" for c in changes):
                return

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    time.sleep(1.0)
    with make_port(sim, home, policy) as port:
        ticket_id = hold(port)
        port.approve(ticket_id, operator="alice")
    thread.join(15)
    states = [c.state for c in changes if c.ticket == ticket_id]
    assert states[0] == "pending" and states[-1] == "succeeded" and "executing" in states


def test_sqlite_waits_by_polling(sim: Simulator, home: Path, policy: Path) -> None:
    with make_port(sim, home, policy) as port:
        ticket_id = hold(port)
        queue = port.queue
        timer = threading.Timer(0.5, lambda: port.reject(ticket_id, "no", operator="alice"))
        timer.start()
        assert queue.wait_for_change(ticket_id, 20).state == "rejected"
        assert queue.wait_for_change(ticket_id, 0.2).state == "rejected"  # times out
        seen = [c for c in queue.watch(timeout=0.6)]
        assert seen == []


# -- an outage ------------------------------------------------------------------------------


def test_an_outage_fails_cleanly_and_the_pool_reconnects(
    db_url: str,
    sim: Simulator,
    home: Path,
    policy: Path,
    pg_server: PgServer,
) -> None:
    with make_port(sim, home, policy) as port:
        ticket_id = hold(port, "before the outage")
        pg_server.stop()
        try:
            with pytest.raises(DatabaseUnavailable) as caught:
                port.queue.list()
            message = str(caught.value)
            assert "is unavailable" in message and PASSWORD not in message
            assert redact_url(db_url) in message
            # Reads still run; their audit record could not be written, and they say so.
            read = port.call("get-page", {"path": {"id": "98305"}})
            assert read.ok and "audit record was not written" in read.extra["audit_error"]
            assert PASSWORD not in read.extra["audit_error"]
            # Writes are not held (nothing to hold them in) and nothing is sent.
            with pytest.raises(DatabaseUnavailable, match="not held and nothing was sent"):
                port.call("create-page", {"body": {"spaceId": "65538", "title": "outage"}})
            with pytest.raises(DatabaseUnavailable):
                port.approve(ticket_id, operator="alice")
            assert posts(sim) == 0
        finally:
            pg_server.start()
        done = port.approve(ticket_id, operator="alice")  # the pool connects again
        assert done.state == "succeeded" and posts(sim) == 1
        assert port.audit.verify().ok


def _send_during_outage(
    port: Any, sim: Simulator, pg_server: PgServer, ticket_id: str, down_for: float
) -> list[Any]:
    """Approve (and so send) ``ticket_id`` while the database goes down under the send
    and comes back ``down_for`` seconds later; the approve's answer or error."""
    sim.delay_next(1, 2.0)
    answer: list[Any] = []

    def approve() -> None:
        try:
            answer.append(port.approve(ticket_id, operator="alice"))
        except DatabaseUnavailable as exc:
            answer.append(exc)

    thread = threading.Thread(target=approve, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while sim.request_count == 0:  # the POST has left: the claim is committed
        assert time.monotonic() < deadline
        time.sleep(0.02)
    pg_server.stop()
    try:
        time.sleep(down_for)
    finally:
        pg_server.start()
    thread.join(120)
    return answer


def test_an_outcome_waits_for_the_database_to_come_back(
    db_url: str, sim: Simulator, home: Path, policy: Path, pg_server: PgServer
) -> None:
    with make_port(sim, home, policy) as port:
        ticket_id = hold(port)
        answer = _send_during_outage(port, sim, pg_server, ticket_id, down_for=4.0)
        assert answer and getattr(answer[0], "state", None) == "succeeded", answer
        assert posts(sim) == 1
        events = [r["event"] for r in port.audit.records()]
        assert events[-2:] == ["executing", "executed"] and port.audit.verify().ok


def test_an_outcome_that_cannot_be_recorded_ends_unknown_after_the_lease(
    db_url: str,
    sim: Simulator,
    home: Path,
    tmp_path: Path,
    policy: Path,
    pg_server: PgServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import harbor_confluence.review.queue as queue_module

    monkeypatch.setattr(queue_module, "_FINISH_PATIENCE", 1.0)
    with make_port(sim, home, policy) as port:
        ticket_id = hold(port)
        answer = _send_during_outage(port, sim, pg_server, ticket_id, down_for=8.0)
    assert answer and isinstance(answer[0], DatabaseUnavailable), answer
    message = str(answer[0])
    assert "request was sent (succeeded, status 200) but its outcome could not be recorded" in (
        message
    )
    assert f"queue resolve {ticket_id}" in message and PASSWORD not in message
    other = ReviewQueue.for_home(second_home(home, tmp_path))
    other._host = "another-host"  # the claimant's pid cannot be checked from there
    assert other.require(ticket_id).state == "executing"
    later = time.time() + 3600
    other._clock = lambda: later  # its lease has run out
    assert other.require(ticket_id).state == "unknown"
    with pytest.raises(QueueRefused) as caught:
        other.claim(ticket_id, "bob", lease_seconds=60)
    assert caught.value.code == "outcome_unknown"
    assert posts(sim) == 1


# -- moving an embedded home in ----------------------------------------------------------------


def test_node_migrate_moves_pending_tickets_and_the_chain(
    pg_url: str,
    sim: Simulator,
    home: Path,
    tmp_path: Path,
    policy: Path,
    cli: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    two = write_policy(tmp_path / "two.yaml", approvers=2)
    with make_port(sim, home, two) as port:  # embedded: SQLite and audit.jsonl
        waiting = [hold(port, f"moved {i}") for i in range(3)]
        port.approve(waiting[0], operator="alice")  # 1 of 2 approvals
        rejected = hold(port, "rejected")
        port.reject(rejected, "no", operator="alice")
        port.call("get-page", {"path": {"id": "98305"}})
    local = AuditLog.for_home(home)
    count = len(local.records())
    assert local.verify().ok

    r = cli("node", "migrate", "--to", pg_url, "--json")
    assert r.code == 0, r.err
    report = r.json()
    assert report["tickets"] == 4 and report["by_state"] == {"pending": 3, "rejected": 1}
    assert report["approvals"] == 1 and report["audit_records"] == count
    assert report["verify"]["ok"] and PASSWORD not in r.out + r.err
    assert not (home / "queue.sqlite3").exists() and (home / "queue.sqlite3.moved").exists()

    monkeypatch.setenv(DATABASE_URL_ENV, pg_url)
    with make_port(sim, home, two) as port:
        assert isinstance(port.queue.store, PgTicketStore)
        assert port.queue.require(waiting[0]).approvers() == ["alice"]  # seals still hold
        assert port.approve(waiting[0], operator="bob").state == "succeeded"
        for ticket in waiting[1:]:
            port.approve(ticket, operator="alice")
            assert port.approve(ticket, operator="bob").state == "succeeded"
        with pytest.raises(QueueRefused):
            port.approve(rejected, operator="bob")
        records = port.audit.records()
        assert [r["event"] for r in records[: count + 1]][-1] == "migrated"
        assert port.audit.verify().ok
    assert posts(sim) == 3
    r = cli("audit", "verify")
    assert r.code == 0 and "chain intact" in r.out

    # A second node joining the same database: its tickets come in, its own chain is kept
    # aside (two chains cannot be one) and anchored in the shared one.
    monkeypatch.delenv(DATABASE_URL_ENV)
    other = second_home(home, tmp_path)
    monkeypatch.setenv("HARBOR_CONFLUENCE_HOME", str(other))
    with make_port(sim, other, policy) as port:
        joining = hold(port, "from node two")
    r = cli("node", "migrate", "--to", pg_url, "--json")
    assert r.code == 0, r.err
    assert r.json()["tickets"] == 1 and r.json()["audit_archived"] == 1
    monkeypatch.setenv(DATABASE_URL_ENV, pg_url)
    with make_port(sim, other, policy) as port:
        assert port.approve(joining, operator="alice").state == "succeeded"
        last = [r for r in port.audit.records() if r["event"] == "migrated"][-1]
        assert last["archived_last_seq"] == 1 and port.audit.verify().ok


def test_node_migrate_refuses_a_broken_local_log(
    pg_url: str,
    sim: Simulator,
    home: Path,
    policy: Path,
    cli: Any,
) -> None:
    with make_port(sim, home, policy) as port:
        hold(port)
    log = home / "audit.jsonl"
    log.write_text(log.read_text().replace('"create-page"', '"delete-page"'))
    r = cli("node", "migrate", "--to", pg_url)
    assert r.code == 1 and "does not verify" in r.err and "nothing was changed" in r.err
    assert (home / "queue.sqlite3").exists()
    assert sql(pg_url, "SELECT count(*) FROM harbor_tickets") == [(0,)]


def test_node_migrate_needs_a_database(
    home: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    r = cli("node", "migrate")
    assert r.code == 2 and "no database" in r.err


def test_held_requests_keep_their_bytes(db_url: str, home: Path) -> None:
    """Bodies are bytes (bytea), times floats: a ticket reads back exactly as sealed."""
    queue = ReviewQueue.for_home(home)
    body = bytes(range(256))
    prepared = PreparedRequest(
        "upload-attachment", "POST", "https://acme.atlassian.net/wiki/rest/api/content/1/child/attachment",
        body, "multipart/form-data; boundary=x",
    )  # fmt: skip
    t = queue.hold(prepared, port="confluence-cloud", manifest_version="1", rule="r",
                   requester="agent", ttl_seconds=60)  # fmt: skip
    back = queue.require(t.id)
    assert back.body == body and back.created_at == t.created_at and back.seal == t.seal
    assert queue.approve(t.id, "alice").state == "approved"
