"""The audit log: a keyed (HMAC) chain that names the first edited, forged, removed or
reordered record, with an anchor that shows records cut from the end."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from harbor_confluence.pipeline.request import canonical_json
from harbor_confluence.review.audit import GENESIS, AuditError, AuditLog, record_hash
from tests.conftest import CliResult, run_subprocess


@pytest.fixture
def log(home: Path) -> AuditLog:
    audit = AuditLog.for_home(home)
    for i in range(1, 6):
        audit.append("held", ticket=f"t_{i}", action="create-page", fingerprint="f" * 64)
    return audit


def lines(audit: AuditLog) -> list[str]:
    return audit.path.read_text().splitlines()


def rewrite(audit: AuditLog, new_lines: list[str]) -> None:
    audit.path.write_text("".join(line + "\n" for line in new_lines))


def sha256_hash(record: dict[str, object]) -> str:
    """The unkeyed hash an attacker without the integrity key can compute."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def test_append_chains_records(home: Path) -> None:
    audit = AuditLog.for_home(home)
    first = audit.append("auto-sent", action="get-page", fingerprint="a" * 64, status=200)
    second = audit.append("denied", action="search-pages", rule="search-limit-cap")
    assert (first["seq"], second["seq"]) == (1, 2)
    assert first["prev"] == GENESIS and second["prev"] == first["hash"]
    assert record_hash(second, audit.key) == second["hash"]
    assert sha256_hash(second) != second["hash"]  # keyed: not a plain SHA-256
    assert audit.records() == [first, second]
    assert audit.tail(1) == [second]
    result = audit.verify()
    assert result.ok and result.count == 2 and result.first_bad is None
    assert (home / "audit.jsonl").stat().st_mode & 0o777 == 0o600
    with pytest.raises(ValueError, match="reserved"):
        audit.append("held", hash="x")


def test_untouched_log_verifies(log: AuditLog, cli: Callable[..., CliResult]) -> None:
    assert log.verify().ok
    out = cli("audit", "verify", "--json")
    assert out.code == 0 and out.json() == {"ok": True, "count": 5}


def test_edited_field_names_the_record(log: AuditLog, cli: Callable[..., CliResult]) -> None:
    rows = lines(log)
    rows[2] = rows[2].replace('"t_3"', '"t_X"')
    rewrite(log, rows)
    result = log.verify()
    assert not result.ok and (result.first_bad, result.first_bad_seq) == (2, 3)
    assert "#3" in (result.reason or "") and "edited" in (result.reason or "")
    out = cli("audit", "verify")
    assert out.code == 1 and "record #3" in out.out


def test_edited_and_rehashed_record_is_named_as_forged(log: AuditLog) -> None:
    """Re-hashing an edited record (as the unkeyed chain allowed) no longer hides the edit:
    without the key the new hash is not a valid MAC, so the record itself is named."""
    rows = lines(log)
    record = json.loads(rows[1])
    record["ticket"] = "t_forged"
    record["hash"] = sha256_hash(record)
    rows[1] = json.dumps(record, separators=(",", ":"))
    rewrite(log, rows)
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 2 and result.first_bad == 1
    assert "forged" in (result.reason or "")


def test_deleted_record_names_the_one_after(log: AuditLog, cli: Callable[..., CliResult]) -> None:
    rows = lines(log)
    del rows[1]
    rewrite(log, rows)
    result = log.verify()
    assert not result.ok and (result.first_bad, result.first_bad_seq) == (1, 3)
    assert "removed" in (result.reason or "")
    out = cli("audit", "verify", "--json")
    assert out.code == 1 and out.json()["first_bad_seq"] == 3


def test_swapped_records_are_named(log: AuditLog) -> None:
    rows = lines(log)
    rows[2], rows[3] = rows[3], rows[2]
    rewrite(log, rows)
    result = log.verify()
    assert not result.ok and (result.first_bad, result.first_bad_seq) == (2, 4)
    assert "reordered" in (result.reason or "")


def test_records_cut_from_the_end_are_detected(log: AuditLog) -> None:
    rewrite(log, lines(log)[:3])
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 4
    assert "removed from the end" in (result.reason or "")


def test_unreadable_line_is_named_and_appending_refuses(log: AuditLog) -> None:
    rows = lines(log)
    rows.append("not json")
    rewrite(log, rows)
    assert log.verify().first_bad == 5
    assert log.records()[-1]["event"] == "unreadable"
    with pytest.raises(AuditError, match="audit verify"):
        log.append("held", ticket="t_6")


def test_torn_tail_from_a_crash_is_dropped(log: AuditLog) -> None:
    with log.path.open("ab") as fh:
        fh.write(b'{"seq":6,"ts":"2024')  # a crash mid-write: never fsynced, never returned
    record = log.append("held", ticket="t_6")
    assert record["seq"] == 6
    assert log.verify().ok and log.verify().count == 6


def test_credentials_are_redacted(home: Path) -> None:
    audit = AuditLog.for_home(home)
    record = audit.append(
        "rejected", reason="Bearer abcdefghijklmnop1234", extra={"token": "s3cret-value"}
    )
    assert record["reason"] == "[redacted]" and record["extra"]["token"] == "[redacted]"
    assert "abcdefghijklmnop1234" not in audit.path.read_text()
    assert audit.verify().ok


def test_a_lone_read_is_in_the_file_when_append_returns(home: Path) -> None:
    """With no other thread writing, a read (``durable=False``) is chained, written and
    anchored before ``append`` returns: the file, read directly, already ends with it."""
    audit = AuditLog.for_home(home)
    audit.append("held", ticket="t_1")
    record = audit.append("auto-sent", durable=False, action="get-page", status=200)
    assert record["seq"] == 2 and record_hash(record, audit.key) == record["hash"]
    assert json.loads(lines(audit)[-1]) == record
    anchor = json.loads((home / "audit.head").read_text())
    assert (anchor["seq"], anchor["hash"]) == (2, record["hash"])


def test_redaction_is_the_same_on_every_call(home: Path) -> None:
    """Clean values are remembered to keep redaction cheap; a credential never is."""
    audit = AuditLog.for_home(home)
    token = "ATATT" + "x" * 30
    first = audit.append("rejected", reason="stale", note=token)
    again = audit.append("rejected", reason=token, note=token)
    assert first["reason"] == "stale"
    assert first["note"] == again["note"] == again["reason"] == "[redacted]"
    assert audit.append("held", password="stale")["password"] == "[redacted]"
    assert token not in audit.path.read_text()


def test_concurrent_appends_from_threads_and_processes(home: Path) -> None:
    audit = AuditLog.for_home(home)
    code = (
        "import sys; from pathlib import Path; "
        "from harbor_confluence.review.audit import AuditLog\n"
        "a = AuditLog.for_home(Path(sys.argv[1]))\n"
        "for i in range(40): a.append('proc', worker=sys.argv[2], i=i)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(home), str(n)]) for n in range(3)]

    def work(n: int) -> None:
        for i in range(40):
            audit.append("thread", worker=n, i=i)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    records = audit.records()
    assert len(records) == 7 * 40
    assert [r["seq"] for r in records] == list(range(1, 281))
    result = audit.verify()
    assert result.ok and result.count == 280


def test_tail_and_export(log: AuditLog, home: Path, cli: Callable[..., CliResult]) -> None:
    tail = cli("audit", "tail", "-n", "2")
    assert tail.code == 0
    assert tail.out.count("\n") == 2 and "#5" in tail.out and "ticket=t_5" in tail.out
    assert [r["seq"] for r in cli("audit", "tail", "-n", "3", "--json").json()] == [3, 4, 5]
    exported = run_subprocess("audit", "export", "--jsonl", env={"HARBOR_CONFLUENCE_HOME":
                              str(home)})  # fmt: skip
    assert exported.code == 0
    assert exported.out == log.path.read_text()  # byte for byte: shippers can re-verify
    as_json = cli("audit", "export")
    assert [r["seq"] for r in json.loads(as_json.out)] == [1, 2, 3, 4, 5]


def test_log_from_before_the_key_is_named_not_trusted(home: Path) -> None:
    """An unkeyed (SHA-256) log from an older version cannot be told from a forged one:
    verify names its first record, and the next append records that the anchor was not
    keyed.  (Archive the old audit.jsonl and audit.head together to start a keyed log.)"""
    home.mkdir(parents=True)
    prev, rows = GENESIS, []
    for seq in (1, 2):
        record = {"seq": seq, "ts": "2024-01-01T00:00:00.000Z", "event": "held", "prev": prev}
        record["hash"] = prev = sha256_hash(record)
        rows.append(json.dumps(record, separators=(",", ":")))
    (home / "audit.jsonl").write_text("".join(r + "\n" for r in rows))
    (home / "audit.head").write_text(json.dumps({"seq": 2, "hash": prev}))
    audit = AuditLog.for_home(home)
    result = audit.verify()
    assert not result.ok and result.first_bad_seq == 1
    assert "before the log was keyed" in (result.reason or "")
    record = audit.append("held", ticket="t_3")
    assert record["seq"] == 4 and audit.records()[2]["event"] == "audit-gap"
    assert audit.records()[2]["problem"] == "anchor_rewritten"
    assert audit.verify().first_bad_seq == 1
