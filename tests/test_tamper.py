"""Tamper evidence with a key the data does not hold.

An agent with a shell can rewrite ``queue.sqlite3`` and ``audit.jsonl`` and recompute any
unkeyed SHA-256 in them.  These tests do exactly that, as such an agent would, and check
that the queue refuses (``tampered``, exit 3, nothing on the wire: the simulator's own
counter says so) and that ``audit verify`` names the record that was forged, cut or
rewritten.  The key (``secrets/integrity.key``) appears nowhere else.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harbor_confluence.errors import ConfigError
from harbor_confluence.pipeline.executor import Port
from harbor_confluence.pipeline.request import PreparedRequest, canonical_json
from harbor_confluence.review.audit import AuditLog
from harbor_confluence.review.integrity import IntegrityKey
from harbor_confluence.review.queue import QueueRefused, ReviewQueue
from harbor_confluence.sim import Simulator
from tests.conftest import CliResult
from tests.test_queue import REQUESTER, db_exec, fingerprint, hold, make_port, write_policy

KEY_PATH = Path("secrets") / "integrity.key"
READ = ("get-page", {"path": {"id": "98305"}})


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    return write_policy(tmp_path / "policy.yaml")


@pytest.fixture
def qport(sim: Simulator, home: Path, policy: Path) -> Iterator[Port]:
    with make_port(sim, home, policy) as p:
        yield p


def two_person_policy(path: Path) -> Path:
    """create-page needs two operators; delete-page two, and never its requester."""
    path.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "rules": [
                    {"name": "reads-auto", "kind": "read", "decision": "auto"},
                    {
                        "name": "delete-review",
                        "actions": ["delete-page"],
                        "decision": "require_approval",
                        "approvers": 2,
                        "forbidSelfApproval": True,
                    },
                    {
                        "name": "create-review",
                        "actions": ["create-page"],
                        "decision": "require_approval",
                        "approvers": 2,
                    },
                ],
            }
        )
    )
    return path


def row(home: Path, sql: str, *params: Any) -> tuple[Any, ...]:
    db = sqlite3.connect(home / "queue.sqlite3")
    try:
        found = db.execute(sql, params).fetchone()
    finally:
        db.close()
    assert found is not None
    return tuple(found)


def refused(run: Callable[[], object]) -> QueueRefused:
    with pytest.raises(QueueRefused) as info:
        run()
    assert info.value.code == "tampered" and info.value.exit_code == 3
    return info.value


def last_refusal(home: Path) -> dict[str, Any]:
    record = AuditLog.for_home(home).records()[-1]
    assert record["event"] == "refused"
    return record


# -- the queue: rewritten rows are refused, nothing is sent -----------------------------


@pytest.mark.parametrize("approved_first", [True, False])
def test_body_rewritten_with_recomputed_fingerprints_is_refused(
    qport: Port, sim: Simulator, home: Path, approved_first: bool
) -> None:
    ticket_id = hold(qport, "Harmless page")
    if approved_first:
        qport.approve(ticket_id, operator="alice", run=False)
    t = qport.ticket(ticket_id)
    assert t is not None
    evil = b'{"spaceId":"65538","title":"Evil page"}'
    fp = fingerprint(t.method, t.url, evil)  # the unkeyed SHA-256, recomputed
    db_exec(home, "UPDATE tickets SET body = ?, fingerprint = ? WHERE id = ?", evil, fp, t.id)
    db_exec(home, "UPDATE approvals SET fingerprint = ? WHERE ticket_id = ?", fp, t.id)
    if approved_first:
        error = refused(lambda: qport.execute(ticket_id, operator="alice"))
    else:
        error = refused(lambda: qport.approve(ticket_id, operator="alice"))
    assert "seal" in str(error)
    assert last_refusal(home)["code"] == "tampered"
    assert sim.request_count == 0


def test_body_rewrite_refused_by_queue_run(
    qport: Port,
    sim: Simulator,
    home: Path,
    cli: Callable[..., CliResult],
    cli_env: dict[str, str],
) -> None:
    ticket_id = hold(qport)
    qport.approve(ticket_id, operator="alice", run=False)
    t = qport.ticket(ticket_id)
    assert t is not None
    evil = b'{"spaceId":"65538","title":"Evil page"}'
    fp = fingerprint(t.method, t.url, evil)
    db_exec(home, "UPDATE tickets SET body = ?, fingerprint = ? WHERE id = ?", evil, fp, t.id)
    db_exec(home, "UPDATE approvals SET fingerprint = ? WHERE ticket_id = ?", fp, t.id)
    ran = cli("queue", "run", ticket_id, "--as", "alice", "--json")
    assert ran.code == 3, ran.out + ran.err
    assert ran.json()["error"]["code"] == "tampered"
    assert sim.request_count == 0


def test_state_forced_to_approved_with_zero_approvals_is_refused(
    qport: Port,
    sim: Simulator,
    home: Path,
    cli: Callable[..., CliResult],
    cli_env: dict[str, str],
) -> None:
    ticket_id = hold(qport)
    db_exec(
        home,
        "UPDATE tickets SET state = 'approved', approvals_required = 0 WHERE id = ?",
        ticket_id,
    )
    refused(lambda: qport.execute(ticket_id, operator="alice"))
    ran = cli("queue", "run", ticket_id, "--as", "alice", "--json")
    assert ran.code == 3 and ran.json()["error"]["code"] == "tampered"
    assert sim.request_count == 0


def test_state_alone_forced_to_approved_is_refused(qport: Port, sim: Simulator, home: Path) -> None:
    """The ticket's own seal still fits; the state seal does not."""
    ticket_id = hold(qport)
    db_exec(home, "UPDATE tickets SET state = 'approved' WHERE id = ?", ticket_id)
    error = refused(lambda: qport.execute(ticket_id, operator="alice"))
    assert "state" in str(error)
    assert sim.request_count == 0


@pytest.mark.parametrize("first", [None, "alice"])
def test_loosened_delete_ticket_cannot_be_self_approved(
    sim: Simulator, home: Path, tmp_path: Path, first: str | None
) -> None:
    policy = two_person_policy(tmp_path / "p.yaml")
    with make_port(sim, home, policy) as port:
        held = port.call("delete-page", {"path": {"id": "98305"}})
        assert held.outcome == "held" and held.ticket
        ticket_id = held.ticket
        if first is not None:
            assert port.approve(ticket_id, operator=first).state == "pending"
        db_exec(
            home,
            "UPDATE tickets SET approvals_required = 1, forbid_self_approval = 0 WHERE id = ?",
            ticket_id,
        )
        refused(lambda: port.approve(ticket_id, operator=REQUESTER))
        t = port.ticket(ticket_id)
        assert t is not None and t.state == "pending"
        assert REQUESTER not in t.approvers()
        # and the sealed terms still apply to a second operator: two approvals, not one
        db_exec(
            home,
            "UPDATE tickets SET approvals_required = 2, forbid_self_approval = 1 WHERE id = ?",
            ticket_id,
        )
        with pytest.raises(QueueRefused) as info:
            port.approve(ticket_id, operator=REQUESTER)
        assert info.value.code == "self_approval"
    assert sim.request_count == 0


def test_forged_approval_row_is_refused(sim: Simulator, home: Path, tmp_path: Path) -> None:
    policy = two_person_policy(tmp_path / "p.yaml")
    with make_port(sim, home, policy) as port:
        ticket_id = hold(port)
        port.approve(ticket_id, operator="alice")
        t = port.ticket(ticket_id)
        assert t is not None
        (alice_seal,) = row(home, "SELECT seal FROM approvals WHERE ticket_id = ?", ticket_id)
        # A second approval, inserted directly (with a copied seal), and the state to match.
        db_exec(
            home,
            "INSERT INTO approvals (ticket_id, operator, fingerprint, at, seal) "
            "VALUES (?, 'mallory', ?, ?, ?)",
            ticket_id, t.fingerprint, t.created_at + 1, alice_seal,
        )  # fmt: skip
        # Approving on top of it is refused (the pending state itself is genuine) ...
        error = refused(lambda: port.approve(ticket_id, operator="bob"))
        assert "mallory" in str(error)
        # ... and so is running it once the state is forced too.
        db_exec(home, "UPDATE tickets SET state = 'approved' WHERE id = ?", ticket_id)
        refused(lambda: port.execute(ticket_id, operator="bob"))
    assert sim.request_count == 0


def test_approval_copied_from_another_ticket_is_refused(
    sim: Simulator, home: Path, tmp_path: Path
) -> None:
    """An approval row is sealed to its ticket: a genuine one moved elsewhere does not count."""
    policy = two_person_policy(tmp_path / "p.yaml")
    with make_port(sim, home, policy) as port:
        other = hold(port, "Other page")
        port.approve(other, operator="alice")
        target = hold(port, "Other page")  # the same request: the same fingerprint
        port.approve(target, operator="bob")
        db_exec(
            home,
            "INSERT INTO approvals (ticket_id, operator, fingerprint, at, reason, seal) "
            "SELECT ?, operator, fingerprint, at, reason, seal FROM approvals "
            "WHERE ticket_id = ?",
            target, other,
        )  # fmt: skip
        error = refused(lambda: port.approve(target, operator="carol"))
        assert "alice" in str(error)
    assert sim.request_count == 0


def test_executed_ticket_set_back_to_approved_is_not_replayed(
    qport: Port, sim: Simulator, home: Path
) -> None:
    ticket_id = hold(qport)
    assert qport.approve(ticket_id, operator="alice").state == "succeeded"
    assert sim.request_count == 1
    db_exec(home, "UPDATE tickets SET state = 'approved' WHERE id = ?", ticket_id)
    refused(lambda: qport.execute(ticket_id, operator="alice"))
    db_exec(home, "UPDATE tickets SET state = 'approved', claim = NULL WHERE id = ?", ticket_id)
    refused(lambda: qport.execute(ticket_id, operator="alice"))
    assert sim.request_count == 1  # still only the one legitimate send


def test_row_restored_from_a_copy_is_not_replayed(qport: Port, sim: Simulator, home: Path) -> None:
    """Even the whole state (seal included) copied while the ticket was approved and put
    back after it ran: the audit log says it ran, so it does not run again."""
    ticket_id = hold(qport)
    qport.approve(ticket_id, operator="alice", run=False)
    saved = row(
        home,
        "SELECT state, claim, updated_at, state_seal FROM tickets WHERE id = ?",
        ticket_id,
    )
    assert qport.execute(ticket_id, operator="alice").state == "succeeded"
    db_exec(
        home,
        "UPDATE tickets SET state = ?, claim = ?, updated_at = ?, state_seal = ? WHERE id = ?",
        *saved, ticket_id,
    )  # fmt: skip
    error = refused(lambda: qport.execute(ticket_id, operator="alice"))
    assert "already ran" in str(error)
    assert sim.request_count == 1


def test_ticket_without_a_seal_is_refused(qport: Port, sim: Simulator, home: Path) -> None:
    ticket_id = hold(qport)
    qport.approve(ticket_id, operator="alice", run=False)
    db_exec(home, "UPDATE tickets SET seal = NULL WHERE id = ?", ticket_id)
    error = refused(lambda: qport.execute(ticket_id, operator="alice"))
    assert "no seal" in str(error)
    assert sim.request_count == 0


def test_queue_with_another_key_refuses(qport: Port, sim: Simulator, home: Path) -> None:
    """The seal is the key's: a key made afresh (the old one deleted) verifies nothing."""
    ticket_id = hold(qport)
    qport.approve(ticket_id, operator="alice", run=False)
    (home / KEY_PATH).unlink()
    with make_port(sim, home, write_policy(home.parent / "p2.yaml")) as port:
        refused(lambda: port.execute(ticket_id, operator="alice"))
    assert sim.request_count == 0


def test_untouched_tickets_still_run(sim: Simulator, home: Path, tmp_path: Path) -> None:
    """The seals do not get in the way: two approvals, then it runs once."""
    policy = two_person_policy(tmp_path / "p.yaml")
    with make_port(sim, home, policy) as port:
        ticket_id = hold(port)
        assert port.approve(ticket_id, operator="alice").state == "pending"
        assert port.approve(ticket_id, operator="bob").state == "succeeded"
    assert sim.request_count == 1
    assert AuditLog.for_home(home).verify().ok


# -- the audit log: forged, cut and rewritten -------------------------------------------


def sha256_record(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def log_lines(home: Path) -> list[str]:
    return (home / "audit.jsonl").read_text().splitlines()


def write_lines(home: Path, lines: list[str]) -> None:
    (home / "audit.jsonl").write_text("".join(line + "\n" for line in lines))


def busy_log(port: Port, reads: int = 3) -> str:
    """A held ticket, then some auto-sent reads (not fsynced, but anchored), on disk."""
    ticket_id = hold(port)
    for _ in range(reads):
        assert port.call(*READ).ok
    port.audit.flush()  # reads' records are written by the flusher within milliseconds
    return ticket_id


def test_forged_append_is_named(
    qport: Port, home: Path, cli: Callable[..., CliResult], cli_env: dict[str, str]
) -> None:
    ticket_id = busy_log(qport)
    last = json.loads(log_lines(home)[-1])
    forged: dict[str, Any] = {
        "seq": last["seq"] + 1,
        "ts": last["ts"],
        "event": "approved",
        "ticket": ticket_id,
        "operator": "alice",
        "prev": last["hash"],
    }
    forged["hash"] = sha256_record(forged)  # as an attacker without the key would
    with (home / "audit.jsonl").open("a") as fh:
        fh.write(json.dumps(forged, separators=(",", ":")) + "\n")
    result = AuditLog.for_home(home).verify()
    assert not result.ok and result.first_bad_seq == forged["seq"]
    assert "forged" in (result.reason or "")
    # The runner keeps appending after it; the forgery stays named.
    assert qport.call(*READ).ok
    again = AuditLog.for_home(home).verify()
    assert not again.ok and again.first_bad_seq == forged["seq"]
    out = cli("audit", "verify")
    assert out.code == 1 and f"record #{forged['seq']}" in out.out


def test_trailing_auto_sent_records_cut_are_detected(qport: Port, home: Path) -> None:
    busy_log(qport, reads=3)
    lines = log_lines(home)
    assert [json.loads(x)["event"] for x in lines[-3:]] == ["auto-sent"] * 3
    first_cut = json.loads(lines[-3])["seq"]
    write_lines(home, lines[:-3])
    result = AuditLog.for_home(home).verify()
    assert not result.ok and result.first_bad_seq == first_cut
    assert "removed from the end" in (result.reason or "")
    # The next append cannot paper over the cut: it records the gap first.
    assert qport.call(*READ).ok
    healed = AuditLog.for_home(home).verify()
    assert not healed.ok and healed.first_bad_seq == first_cut
    assert f"#{first_cut}" in (healed.reason or "")
    gap = AuditLog.for_home(home).records()[-2]
    assert gap["event"] == "audit-gap" and gap["problem"] == "cut_from_end"


def test_rewritten_anchor_is_detected(qport: Port, home: Path) -> None:
    busy_log(qport, reads=3)
    lines = log_lines(home)
    write_lines(home, lines[:-2])
    new_last = json.loads(lines[-3])
    anchor = home / "audit.head"
    # The anchor rewritten to match the shortened log, its MAC faked without the key.
    fake = {"v": 2, "seq": new_last["seq"], "hash": new_last["hash"]}
    fake["mac"] = hashlib.sha256(json.dumps(fake).encode()).hexdigest()
    anchor.write_text(json.dumps(fake).ljust(255) + "\n")
    result = AuditLog.for_home(home).verify()
    assert not result.ok and "anchor" in (result.reason or "")
    assert "rewritten" in (result.reason or "")
    # The old (unkeyed) head format is no better.
    anchor.write_text(json.dumps({"seq": new_last["seq"], "hash": new_last["hash"]}))
    assert not AuditLog.for_home(home).verify().ok
    # Deleted outright: detected; and a later append records the gap instead of healing.
    anchor.unlink()
    missing = AuditLog.for_home(home).verify()
    assert not missing.ok and "missing" in (missing.reason or "")
    assert qport.call(*READ).ok
    after = AuditLog.for_home(home).verify()
    assert not after.ok and "anchor was missing" in (after.reason or "")


def test_whole_log_deleted_with_its_anchor_left_is_detected(qport: Port, home: Path) -> None:
    busy_log(qport, reads=1)
    count = len(log_lines(home))
    (home / "audit.jsonl").unlink()
    result = AuditLog.for_home(home).verify()
    assert not result.ok and result.first_bad_seq == 1
    assert qport.call(*READ).ok
    after = AuditLog.for_home(home).verify()
    assert not after.ok and f"#1..#{count}" in (after.reason or "")


def test_reads_move_the_anchor(qport: Port, home: Path) -> None:
    assert qport.call(*READ).ok
    qport.audit.flush()  # the read's record is written within milliseconds; now, for sure
    anchor = json.loads((home / "audit.head").read_text())
    last = json.loads(log_lines(home)[-1])
    assert last["event"] == "auto-sent"
    assert (anchor["seq"], anchor["hash"]) == (last["seq"], last["hash"])
    assert AuditLog.for_home(home).verify().ok


def test_append_over_a_lagging_anchor_is_not_a_gap(home: Path) -> None:
    """A crash between a record and its anchor leaves the anchor one behind: not tampering."""
    log = AuditLog.for_home(home)
    log.append("held", ticket="t_1")
    saved = (home / "audit.head").read_bytes()
    log.append("held", ticket="t_2")
    (home / "audit.head").write_bytes(saved)  # as if the anchor write never happened
    assert log.verify().ok
    AuditLog.for_home(home).append("held", ticket="t_3")
    assert [r["event"] for r in log.records()] == ["held"] * 3
    assert log.verify().ok


# -- the key ----------------------------------------------------------------------------


def test_key_file_is_private_and_made_once(home: Path) -> None:
    first = IntegrityKey.for_home(home)
    path = home / KEY_PATH
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(bytes.fromhex(path.read_text().strip())) == 32
    again = IntegrityKey.for_home(home)
    assert first.mac("x", b"data") == again.mac("x", b"data")
    assert first.check("x", b"data", again.mac("x", b"data"))
    assert not first.check("y", b"data", again.mac("x", b"data"))  # purposes are separate
    assert not first.check("x", b"data", "not a mac \u00e9")
    assert sorted(p.name for p in path.parent.iterdir()) == ["integrity.key"]  # no temp left


def test_key_made_by_racing_processes_is_one_key(home: Path) -> None:
    code = (
        "import sys; from harbor_confluence.review.integrity import IntegrityKey\n"
        "print(IntegrityKey.for_home(sys.argv[1]).mac('race', b'x'))\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(home)], stdout=subprocess.PIPE,
                         text=True)
        for _ in range(4)
    ]  # fmt: skip
    outs = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert len(outs) == 1 and outs == {IntegrityKey.for_home(home).mac("race", b"x")}


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_readable_key_file_is_refused_with_the_fix(
    qport: Port, sim: Simulator, home: Path, mode: int
) -> None:
    ticket_id = hold(qport)
    path = home / KEY_PATH
    os.chmod(path, mode)
    with pytest.raises(ConfigError) as info:
        IntegrityKey.for_home(home)
    assert f"chmod 600 {path}" in str(info.value)
    with pytest.raises(ConfigError):
        ReviewQueue.for_home(home).approve(ticket_id, "alice")
    assert sim.request_count == 0


def test_loose_secrets_directory_is_refused(home: Path) -> None:
    IntegrityKey.for_home(home)
    os.chmod(home / "secrets", 0o755)
    with pytest.raises(ConfigError) as info:
        IntegrityKey.for_home(home)
    assert f"chmod 700 {home / 'secrets'}" in str(info.value)


def test_symlinked_key_file_is_refused(home: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "key"
    elsewhere.write_text("ab" * 32 + "\n")
    os.chmod(elsewhere, 0o600)
    (home / "secrets").mkdir(mode=0o700, parents=True)
    (home / KEY_PATH).symlink_to(elsewhere)
    with pytest.raises(ConfigError, match="symbolic link"):
        IntegrityKey.for_home(home)


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_key_owned_by_someone_else_is_refused(home: Path) -> None:
    IntegrityKey.for_home(home)
    os.chown(home / KEY_PATH, 4242, -1)
    with pytest.raises(ConfigError, match="owned by uid 4242"):
        IntegrityKey.for_home(home)


def test_damaged_key_is_refused_without_quoting_it(home: Path) -> None:
    IntegrityKey.for_home(home)
    path = home / KEY_PATH
    secret_part = path.read_text().strip()[:40]
    path.write_text(secret_part + "\n")
    with pytest.raises(ConfigError) as info:
        IntegrityKey.for_home(home)
    assert "not hold a valid integrity key" in str(info.value)
    assert secret_part not in str(info.value)


def test_key_never_appears_outside_its_file(qport: Port, sim: Simulator, home: Path) -> None:
    done = hold(qport)
    qport.approve(done, operator="alice")
    rejected = hold(qport, "Second")
    qport.reject(rejected, "no", operator="alice")
    pending = hold(qport, "Third")
    assert qport.call(*READ).ok
    key_path = home / KEY_PATH
    text = key_path.read_text().strip()
    forms = [text.encode(), text.upper().encode(), bytes.fromhex(text)]
    queue, audit = qport.queue, qport.audit
    ticket = queue.require(pending)
    shown = [
        repr(queue.key), str(queue.key), repr(audit.key), repr(queue), repr(audit),
        repr(ticket), repr(ticket.approvals), json.dumps(ticket.to_dict()),
        json.dumps(ticket.status()), repr(queue.require(done)),
    ]  # fmt: skip
    for form in forms:
        for where in shown:
            assert form.decode("latin-1") not in where
    files = [p for p in home.rglob("*") if p.is_file() and p != key_path]
    assert {"audit.jsonl", "audit.head", "queue.sqlite3"} <= {p.name for p in files}
    for path in files:
        data = path.read_bytes()
        for form in forms:
            assert form not in data, path
    with pytest.raises(TypeError):
        pickle.dumps(queue.key)
    assert sim.request_count == 2


def test_queue_and_log_built_from_a_path_use_the_state_dirs_key(home: Path) -> None:
    queue = ReviewQueue(home / "queue.sqlite3")
    t = queue.hold(
        PreparedRequest("create-page", "POST", "https://a.example/wiki/api/v2/pages", b"{}",
                        "application/json"),
        port="p", manifest_version="1", rule="r", requester="agent", ttl_seconds=60,
    )  # fmt: skip
    same = IntegrityKey.for_home(home)
    assert queue.key.mac("x", b"y") == same.mac("x", b"y")
    assert AuditLog(home / "audit.jsonl").key.mac("x", b"y") == same.mac("x", b"y")
    assert ReviewQueue.for_home(home).approve(t.id, "alice").state == "approved"
    assert AuditLog(home / "audit.jsonl").verify().ok
