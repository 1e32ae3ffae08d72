"""The keyed audit chain in PostgreSQL, shared by every node on the database.

Why it is the same chain: each record is built, MACed and linked exactly as in
``audit.jsonl`` (``AuditLog._chain``), and stored as that JSON text, so ``audit verify``
walks it with the same code (``audit.walk_chain``) and the records of a moved log keep
their MACs.  What changes is how appends are serialised and anchored:

- every append is one transaction that first takes ``pg_advisory_xact_lock``, so nodes
  append one at a time and each reads the true last record (a lock, not a sequence: the
  next record's ``prev`` must be the last record's MAC, not just the next number);
- the anchor (last seq and hash, with a MAC) is a row updated in that same transaction,
  so it never lags and a row deleted from the end, a record appended without the key or
  an anchor rewritten shows;
- an append that finds the anchor not naming the last record writes an ``audit-gap``
  record first, as the file log does;
- ``durable=False`` (auto-sent reads) commits with ``synchronous_commit = off``: still
  chained and anchored, only not waited for on disk.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Generator
from pathlib import Path
from typing import Any

import psycopg

from harbor_confluence.review.audit import (
    _RECORD_MAC,
    _RESERVED,
    GAP_EVENT,
    LOG_NAME,
    AuditError,
    AuditLog,
    VerifyResult,
    _body,
    _parse_record,
    anchor_mac,
    anchor_problem,
    check_anchor,
    redact,
    walk_chain,
)
from harbor_confluence.review.integrity import IntegrityKey

from .db import AUDIT_LOCK, Database

__all__ = ["PgAuditLog"]

ANCHOR_NAME = "harbor_audit_anchor"


def record_text(record: dict[str, Any]) -> str:
    """A record as stored: the JSON ``audit.jsonl`` holds on one line."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def _ticket_of(record: dict[str, Any]) -> str | None:
    ticket = record.get("ticket")
    return ticket if isinstance(ticket, str) else None


def read_anchor(conn: psycopg.Connection[Any], key: IntegrityKey) -> tuple[int, str] | str | None:
    row = conn.execute("SELECT seq, hash, mac FROM harbor_audit_anchor WHERE id = 1").fetchone()
    if row is None:
        return None
    return check_anchor(row[0], row[1], row[2], key, ANCHOR_NAME)


# The last record and the anchor, in one statement (one round trip under the lock).
_READ_END = (
    "SELECT (SELECT record FROM harbor_audit ORDER BY seq DESC LIMIT 1), a.seq, a.hash, a.mac "
    "FROM (SELECT 1) AS one LEFT JOIN harbor_audit_anchor AS a ON a.id = 1"
)


def insert_records(
    conn: psycopg.Connection[Any], rows: list[tuple[int, str, str | None, str]], key: IntegrityKey
) -> None:
    """Insert ``(seq, event, ticket, text)`` rows and move the anchor to the last, in one
    statement."""
    seq, text = rows[-1][0], rows[-1][3]
    digest = json.loads(text)["hash"]
    values = ", ".join("(%s, %s, %s, %s)" for _ in rows)
    conn.execute(
        f"WITH added AS (INSERT INTO harbor_audit (seq, event, ticket, record) "  # noqa: S608
        f"VALUES {values}) "
        "INSERT INTO harbor_audit_anchor (id, seq, hash, mac) VALUES (1, %s, %s, %s) "
        "ON CONFLICT (id) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash, "
        "mac = EXCLUDED.mac",
        [*(v for row in rows for v in row), seq, digest, anchor_mac(seq, digest, key)],
    )


def lock_chain(conn: psycopg.Connection[Any]) -> None:
    """Hold off every other appender until this transaction ends."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (AUDIT_LOCK,))


_MAX_BATCH = 64


class _Pending:
    """One append waiting for its batch's commit."""

    __slots__ = ("done", "durable", "error", "event", "fields", "lead", "record")

    def __init__(self, event: str, fields: dict[str, Any], durable: bool) -> None:
        self.event = event
        self.fields = fields
        self.durable = durable
        self.done = threading.Event()
        self.lead = False
        self.record: dict[str, Any] | None = None
        self.error: BaseException | None = None


def _copy(exc: BaseException) -> BaseException:
    """Each waiter raises its own exception object (one raised in several threads would
    share, and garble, one traceback)."""
    try:
        return type(exc)(*exc.args)
    except Exception:
        return exc


class PgAuditLog(AuditLog):
    """The audit log of nodes sharing a database (``harbor_audit`` and its anchor).

    ``path`` still names the state directory's ``audit.jsonl``: it is where the
    integrity key is found (``secrets/`` beside it), not where records go.
    """

    def __init__(self, db: Database, home: Path, *, key: IntegrityKey | None = None) -> None:
        super().__init__(Path(home) / LOG_NAME, key=key)
        self.db = db
        self._ready = False
        self._batch_lock = threading.Lock()
        self._waiting: list[_Pending] = []
        self._leading = False

    def __repr__(self) -> str:
        return f"PgAuditLog({self.db.display!r})"

    @property
    def location(self) -> str:
        return self.db.display

    def _prepare(self) -> IntegrityKey:
        key = self.key
        if not self._ready:
            self.db.ready(key)
            self._ready = True
        return key

    # -- writing ------------------------------------------------------------------------

    def append(
        self, event: str, *, durable: bool = True, defer: bool | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Append one record (after an ``audit-gap`` record if the anchor does not name the
        last one) and return it; committed before this returns.

        Threads of one node appending at the same moment share one transaction (group
        commit): the first becomes the leader and writes every record queued behind it
        under one lock and one commit, then hands the lead to the next waiter.  ``defer``
        is accepted for the file log's interface and ignored: every record is committed.
        """
        if not event or not isinstance(event, str):
            raise ValueError("an audit event needs a name")
        clash = _RESERVED & fields.keys()
        if clash:
            raise ValueError(f"reserved audit field(s): {', '.join(sorted(clash))}")
        item = _Pending(event, redact(fields), durable)
        key = self._prepare()
        with self._batch_lock:
            self._waiting.append(item)
            item.lead = not self._leading
            self._leading = True
        if not item.lead:
            item.done.wait()
        if item.lead:  # first in, or handed the lead: write what is queued, this one first
            with self._batch_lock:
                batch, self._waiting = self._waiting[:_MAX_BATCH], self._waiting[_MAX_BATCH:]
            try:
                self._write(batch, key)
            except BaseException as exc:
                for other in batch:
                    other.error = exc
            finally:
                with self._batch_lock:
                    if self._waiting:
                        self._waiting[0].lead = True
                        self._waiting[0].done.set()
                    else:
                        self._leading = False
                for other in batch:
                    other.done.set()
        if item.error is not None:
            raise _copy(item.error) from None
        assert item.record is not None
        return item.record

    def _write(self, batch: list[_Pending], key: IntegrityKey) -> None:
        """Chain and insert ``batch`` in one transaction: two round trips while the chain is
        locked, [lock, read the end] and [write, commit], pipelined."""
        with (
            self.db.connection(f"the audit record ({batch[0].event}) was not written") as conn,
            conn.pipeline(),
            conn.transaction(),
        ):
            if not any(p.durable for p in batch):
                conn.execute("SET LOCAL synchronous_commit TO OFF")
            lock_chain(conn)
            end = conn.execute(_READ_END).fetchone()
            text, anchor_row = (end[0], end[1:]) if end else (None, (None, None, None))
            last: dict[str, Any] | None = None
            if text is not None:
                last = _parse_record(text.encode())
                if last is None:
                    raise AuditError(
                        f"the last record of the audit log in {self.db.display} is "
                        "unreadable; nothing more can be chained to it. Run: "
                        "harbor-confluence audit verify"
                    )
            anchor = (
                None
                if anchor_row[0] is None
                else check_anchor(anchor_row[0], anchor_row[1], anchor_row[2], key, ANCHOR_NAME)
            )
            records: list[dict[str, Any]] = []
            gap = anchor_problem(last, anchor)
            # Rows after the anchor were left by no append (each anchors in its transaction).
            if (
                gap is None
                and last is not None
                and isinstance(anchor, tuple)
                and anchor[0] < last["seq"]
            ):
                gap = {"problem": "not_anchored", "log_seq": last["seq"], "anchor_seq": anchor[0]}
            if gap is not None:
                last = self._chain(last, GAP_EVENT, gap, key)
                records.append(last)
            for pending in batch:
                last = pending.record = self._chain(last, pending.event, pending.fields, key)
                records.append(last)
            insert_records(
                conn,
                [(r["seq"], r["event"], _ticket_of(r), record_text(r)) for r in records],
                key,
            )

    # -- reading ------------------------------------------------------------------------

    def _texts(self, sql: str, params: tuple[Any, ...] = ()) -> list[str]:
        self._prepare()
        return self.db.read(
            "the audit log could not be read",
            lambda conn: [r[0] for r in conn.execute(sql.encode(), params).fetchall()],
        )

    def records(self) -> list[dict[str, Any]]:
        """Every record, oldest first (an unreadable row shows as ``event: unreadable``)."""
        return _records(self._texts("SELECT record FROM harbor_audit ORDER BY seq"))

    def tail(self, n: int = 20) -> list[dict[str, Any]]:
        if n <= 0:
            return []
        texts = self._texts("SELECT record FROM harbor_audit ORDER BY seq DESC LIMIT %s", (int(n),))
        return _records(list(reversed(texts)))

    def find(self, event: str | tuple[str, ...], **match: Any) -> dict[str, Any] | None:
        """The first record of ``event`` (or one of several) with these top-level fields
        and a valid MAC (by the ``ticket`` index when matching a ticket)."""
        if not match:
            raise ValueError("find needs at least one field to match")
        events = [event] if isinstance(event, str) else list(event)
        ticket = match.get("ticket")
        if isinstance(ticket, str):
            sql = (
                "SELECT record FROM harbor_audit WHERE ticket = %s AND event = ANY(%s) ORDER BY seq"
            )
            params: tuple[Any, ...] = (ticket, events)
        else:
            sql = "SELECT record FROM harbor_audit WHERE event = ANY(%s) ORDER BY seq"
            params = (events,)
        for text in self._texts(sql, params):
            record = _parse_record(text.encode())
            if (
                record is not None
                and record.get("event") in events
                and all(record.get(k) == v for k, v in match.items())
                and self.key.check(_RECORD_MAC, _body(record), record["hash"])
            ):
                return record
        return None

    def verify(self) -> VerifyResult:
        """Walk the chain in one snapshot; name the first edited, deleted or forged row,
        a row whose columns disagree with its record, and rows cut from the end."""
        key = self._prepare()
        with (
            self.db.connection("the audit log could not be verified") as conn,
            conn.transaction(),
        ):
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            anchor = read_anchor(conn, key)
            mismatch: list[tuple[int, int, str]] = []

            def rows() -> Generator[str, None, None]:
                with conn.cursor(name="harbor_audit_verify") as cur:
                    cur.itersize = 2000
                    cur.execute("SELECT seq, event, ticket, record FROM harbor_audit ORDER BY seq")
                    for index, (seq, event, ticket, text) in enumerate(cur):
                        if not mismatch:
                            problem = _column_problem(seq, event, ticket, text)
                            if problem is not None:
                                mismatch.append((index, seq, problem))
                        yield text

            walk = rows()
            try:
                result = walk_chain(
                    walk, anchor, key, unit="row", anchor_name=ANCHOR_NAME, unanchored_ok=False
                )
            finally:
                walk.close()  # the server-side cursor, before its transaction ends
        if mismatch and (result.ok or (result.first_bad or 0) > mismatch[0][0]):
            index, seq, problem = mismatch[0]
            return VerifyResult(False, result.count, index, seq, problem)
        return result


def _column_problem(seq: Any, event: Any, ticket: Any, text: str) -> str | None:
    record = _parse_record(text.encode())
    if record is None:
        return None  # the walk names it
    if record["seq"] != seq or record.get("event") != event or _ticket_of(record) != ticket:
        return (
            f"row #{seq}'s columns (seq, event, ticket) do not match its record: the row "
            "was edited outside the log"
        )
    return None


def _records(texts: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for number, text in enumerate(texts, 1):
        try:
            record = json.loads(text)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            record = {"seq": None, "event": "unreadable", "row": number}
        out.append(record)
    return out
