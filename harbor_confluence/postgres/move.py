"""``node migrate``: bring the schema up to date and move a node's SQLite queue and JSONL
audit log into the shared database.

Why it can move them as they are: the database stores exactly what SQLite and
``audit.jsonl`` hold (the same columns, the same record text), and every node sharing the
database holds the same integrity key, so the tickets' seals and the records' MACs made
before the move still check after it.  Pending tickets stay pending with their approvals;
the chain continues from its last record.

What it refuses: a local log that does not verify (it would be carried in broken), a
ticket id the database already has, and, when the database already holds a chain (a
second node joining), merging the two chains (they cannot be one); the local log is then
verified, left beside the queue as an archive, and its last record's hash is written into
the shared chain (a ``migrated`` record), so the archive stays anchored.

The move is one transaction: all or nothing.  Afterwards the SQLite queue is renamed
(``queue.sqlite3.moved``): a node started later without the database URL must not find
those tickets still pending and run them a second time.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harbor_confluence.errors import ConfigError
from harbor_confluence.review.audit import HEAD_NAME, LOG_NAME, AuditLog, _parse_record
from harbor_confluence.review.integrity import IntegrityKey
from harbor_confluence.review.queue import _COLUMNS, QUEUE_FILE, SqliteTicketStore, Ticket

from .audit import PgAuditLog, insert_records, lock_chain, read_anchor
from .db import Database
from .tickets import _value

__all__ = ["MoveReport", "move_home"]

MOVED_SUFFIX = ".moved"


@dataclass
class MoveReport:
    """What ``node migrate`` did."""

    database: str
    schema_version: int
    tickets: int = 0
    by_state: dict[str, int] = field(default_factory=dict)
    approvals: int = 0
    audit_records: int = 0
    audit_archived: int = 0  # local records kept as an archive (the database had a chain)
    renamed: list[str] = field(default_factory=list)
    verify: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "schema_version": self.schema_version,
            "tickets": self.tickets,
            "by_state": self.by_state,
            "approvals": self.approvals,
            "audit_records": self.audit_records,
            "audit_archived": self.audit_archived,
            "renamed": self.renamed,
            "verify": self.verify,
        }


def _local_tickets(path: Path) -> list[Ticket]:
    if not path.is_file():
        return []
    store = SqliteTicketStore(path)
    try:
        out: list[Ticket] = []
        after: tuple[float, str] | None = None
        while True:
            page = store.page(None, 1000, after)
            out += page
            if len(page) < 1000:
                return out
            after = (page[-1].created_at, page[-1].id)
    finally:
        store.close()


def _local_log(home: Path, key: IntegrityKey) -> tuple[AuditLog, list[str]]:
    """The local log (verified) and its records' text, oldest first."""
    log = AuditLog(home / LOG_NAME, key=key)
    result = log.verify()
    if not result.ok:
        raise ConfigError(
            f"the local audit log {log.path} does not verify ({result.reason}); it is not "
            "moved in broken. Keep it as evidence and move it aside (with audit.head) "
            "to migrate the queue without it; nothing was changed"
        )
    try:
        data = log.path.read_bytes()
    except FileNotFoundError:
        return log, []
    return log, [line.decode("utf-8") for line in data.split(b"\n") if line]


def move_home(home: Path, url: str) -> MoveReport:
    """Apply the schema, then move ``home``'s queue and audit log into the database."""
    home = Path(home)
    key = IntegrityKey.for_home(home)
    db = Database.shared(url)
    db.ready(key)  # migrations, and this key must be the database's
    report = MoveReport(db.display, db.schema_version or 0)
    tickets = _local_tickets(home / QUEUE_FILE)
    local_log, lines = _local_log(home, key)
    archived = False
    with db.connection("nothing was moved") as conn, conn.transaction():
        lock_chain(conn)  # no append runs while the chain is moved in
        have = conn.execute("SELECT count(*) FROM harbor_audit").fetchone()
        chain_in_db = bool(have and have[0])
        if tickets:
            ids = [t.id for t in tickets]
            clash = conn.execute(
                "SELECT id FROM harbor_tickets WHERE id = ANY(%s) LIMIT 1", (ids,)
            ).fetchone()
            if clash is not None:
                raise ConfigError(
                    f"ticket {clash[0]} is already in {db.display}: this queue was moved "
                    "before (or shares tickets with it); nothing was moved"
                )
        for t in tickets:
            conn.execute(
                f"INSERT INTO harbor_tickets ({', '.join(_COLUMNS)}) "  # noqa: S608
                f"VALUES ({', '.join('%s' for _ in _COLUMNS)})",
                [_value(c, getattr(t, c)) for c in _COLUMNS],
            )
            for a in t.approvals:
                conn.execute(
                    "INSERT INTO harbor_approvals (ticket_id, operator, fingerprint, at, "
                    "reason, seal) VALUES (%s, %s, %s, %s, %s, %s)",
                    (t.id, a.operator, a.fingerprint, a.at, a.reason, a.seal),
                )
                report.approvals += 1
            report.by_state[t.state] = report.by_state.get(t.state, 0) + 1
        report.tickets = len(tickets)
        if lines and not chain_in_db:
            if read_anchor(conn, key) is not None:
                raise ConfigError(
                    f"{db.display} has an audit anchor but no records: its log was cut. "
                    "Run harbor-confluence audit verify against it; nothing was moved"
                )
            rows = []
            for text in lines:
                record = _parse_record(text.encode())
                if record is None:  # pragma: no cover - verify() above refused it
                    raise ConfigError("the local audit log has an unreadable record")
                ticket = record.get("ticket")
                rows.append(
                    (record["seq"], str(record.get("event")),
                     ticket if isinstance(ticket, str) else None, text)
                )  # fmt: skip
            for start in range(0, len(rows), 2000):  # a statement takes 65,535 parameters
                insert_records(conn, rows[start : start + 2000], key)
            report.audit_records = len(rows)
        elif lines:
            archived = True
            report.audit_archived = len(lines)
    # After the commit: say in the shared chain what came in (and anchor an archive).
    shared = PgAuditLog(db, home, key=key)
    if tickets or lines:
        last = _parse_record(lines[-1].encode()) if archived else None
        shared.append(
            "migrated",
            source=str(home),
            tickets=report.tickets,
            by_state=report.by_state,
            audit_records=report.audit_records,
            archived_log=f"{local_log.path}{MOVED_SUFFIX}" if archived else None,
            archived_last_seq=last["seq"] if last else None,
            archived_last_hash=last["hash"] if last else None,
        )
    report.renamed = _set_aside(home, tickets=bool(tickets), log=bool(lines))
    report.verify = shared.verify().to_dict()
    return report


def _set_aside(home: Path, *, tickets: bool, log: bool) -> list[str]:
    """Rename what was moved, so a node started without the database URL does not run
    the moved tickets again (nor chain onto a log that continues elsewhere)."""
    renamed: list[str] = []
    names = ([QUEUE_FILE] if tickets else []) + ([LOG_NAME, HEAD_NAME] if log else [])
    if tickets:
        queue = home / QUEUE_FILE
        with contextlib.closing(sqlite3.connect(queue)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        for extra in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(home / (QUEUE_FILE + extra))
    for name in names:
        source = home / name
        if source.exists():
            target = source.with_name(name + MOVED_SUFFIX)
            os.replace(source, target)
            renamed.append(str(target))
    return renamed
