"""The review queue: held requests, approvals bound to the exact request, run exactly once.

Why it is built this way:

- A held request is stored exactly as it would be sent (method, full URL, canonical JSON
  body; never the credential) with its SHA-256 fingerprint, before the caller hears back.
- Every state change is one conditional ``UPDATE ... WHERE state = ...`` inside a write
  transaction (SQLite ``BEGIN IMMEDIATE``).  Two operators approving at once, or two
  processes running the same ticket, cannot both move it from ``approved`` to
  ``executing``: exactly one request leaves.
- An approval records the fingerprint of the request the operator approved (in the
  ``approvals`` table).  Execution recomputes the fingerprint from the stored request and
  compares it with the ticket's and every approval's, so any change after approval — by an
  agent, an edit, a direct database write — makes execution refuse.
- The fingerprint is a plain SHA-256: anyone who can write the database can recompute it.
  So every ticket also carries a *seal*, an HMAC (with the state directory's integrity key,
  see ``integrity.py``, which the database does not hold) over its governing terms: the
  request, who asked, the rule, the approvals it needs, self-approval, expiry.  Every
  approval is sealed to its ticket, and every state change writes a seal over the new
  state, so ``UPDATE tickets SET state = 'approved'`` shows.  Approving and running check
  every seal first; the approval count and self-approval are then read from sealed values.
  A ticket without a seal (an older database) is never run.
- A ticket is durably ``executing`` before the request is sent.  If the process dies or
  times out before the answer is recorded, the ticket becomes ``unknown`` and is never
  retried on its own (a write must not run twice); an operator reconciles it.

Storage sits behind :class:`TicketStore`: SQLite in WAL mode by default, or, for several
nodes sharing one queue, PostgreSQL (``HARBOR_DATABASE_URL``; ``postgres/tickets.py``),
where a row lock (``SELECT ... FOR UPDATE``) serialises the writers of a ticket as
``BEGIN IMMEDIATE`` does here.  An executing ticket carries a lease (``lease_until``) and
its claimant's host and pid: a node on the same host checks the pid, one elsewhere waits
for the lease to run out, and either way a dead claimant's ticket becomes ``unknown``.

States::

    pending -> approved -> executing -> succeeded | failed | unknown (-> resolved by hand)
    pending | approved -> rejected | expired | cancelled
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, cast, runtime_checkable

from harbor_confluence.errors import EXIT_DENIED, EXIT_ERROR, EXIT_INVALID, HarborError
from harbor_confluence.pipeline.request import PreparedRequest, canonical_json
from harbor_confluence.postgres import ChangeNotice, DatabaseUnavailable, database_url

from .audit import LOG_NAME, AuditLog, redact
from .integrity import IntegrityKey

__all__ = [
    "OPEN_STATES",
    "STATES",
    "Approval",
    "ChangeFeed",
    "ChangeNotice",
    "QueueError",
    "QueueInputError",
    "QueueRefused",
    "ReviewQueue",
    "SqliteTicketStore",
    "StoreTransaction",
    "Subscription",
    "Ticket",
    "TicketNotFound",
    "TicketStore",
    "default_operator",
    "page_query",
]

State = Literal[
    "pending", "approved", "executing", "succeeded", "failed", "unknown",
    "rejected", "expired", "cancelled",
]  # fmt: skip
STATES: tuple[str, ...] = (
    "pending", "approved", "executing", "succeeded", "failed", "unknown",
    "rejected", "expired", "cancelled",
)  # fmt: skip
OPEN_STATES: tuple[str, ...] = ("pending", "approved")  # may still run; can expire
QUEUE_FILE = "queue.sqlite3"
DEFAULT_LIST_LIMIT = 50
MAX_LIST_LIMIT = 1000
MAX_REASON_CHARS = 2000
OPERATOR_ENV = "HARBOR_OPERATOR"
_T = TypeVar("_T")


def default_operator() -> str:
    """Who is acting: ``$HARBOR_OPERATOR``, else the OS user name."""
    name = os.environ.get(OPERATOR_ENV, "").strip()
    if name:
        return name
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return f"uid-{os.getuid()}"


# -- errors -------------------------------------------------------------------------------


class QueueError(HarborError):
    """A queue operation could not be done; nothing was sent."""

    code = "queue"
    exit_code = EXIT_ERROR

    def __init__(
        self,
        message: str,
        *,
        ticket: str | None = None,
        state: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.ticket = ticket
        self.state = state
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": str(self)}
        if self.ticket is not None:
            out["ticket"] = self.ticket
        if self.state is not None:
            out["state"] = self.state
        return out


class TicketNotFound(QueueError):
    code = "not_found"


class QueueRefused(QueueError):
    """The queue's rules refuse the operation (wrong state, expired, tampered, ...)."""

    code = "refused"
    exit_code = EXIT_DENIED


class QueueInputError(QueueError):
    code = "invalid_input"
    exit_code = EXIT_INVALID


# -- the ticket ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Approval:
    """One operator's approval, bound to the fingerprint of the request they approved."""

    operator: str
    fingerprint: str
    at: float
    reason: str | None = None
    seal: str | None = field(default=None, repr=False)  # MAC binding it to its ticket

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "operator": self.operator,
            "fingerprint": self.fingerprint,
            "at": _iso(self.at),
        }
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True, slots=True)
class Ticket:
    """A held request and everything decided about it."""

    id: str
    action: str
    port: str
    manifest_version: str
    rule: str
    method: str
    url: str
    body: bytes | None
    content_type: str | None
    fingerprint: str
    requester: str
    created_at: float
    expires_at: float
    state: str
    result: dict[str, Any] | None = None
    approvals_required: int = 1
    forbid_self_approval: bool = False
    headers: dict[str, str] = field(default_factory=dict)  # fixed, non-secret headers
    review: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None  # rejection / cancellation reason, or resolution note
    decided_by: str | None = None  # who rejected, cancelled or resolved
    executed_by: str | None = None
    updated_at: float | None = None
    finished_at: float | None = None
    claim: str | None = None  # the execution attempt holding the ticket (internal)
    claim_pid: int | None = None
    claim_host: str | None = None
    lease_until: float | None = None
    approvals: tuple[Approval, ...] = ()
    seal: str | None = field(default=None, repr=False)  # MAC over the governing terms
    state_seal: str | None = field(default=None, repr=False)  # MAC over the current state

    # -- the request ----------------------------------------------------------------

    def prepared(self) -> PreparedRequest:
        """The stored request, ready to send (the credential is attached at send time)."""
        return PreparedRequest(
            self.action, self.method, self.url, self.body, self.content_type, dict(self.headers)
        )

    def computed_fingerprint(self) -> str:
        """The fingerprint of the request as stored now (not the one recorded at hold)."""
        return self.prepared().fingerprint

    def approvers(self) -> list[str]:
        return [a.operator for a in self.approvals]

    def is_expired(self, now: float) -> bool:
        return self.state in OPEN_STATES and now >= self.expires_at

    # -- views ----------------------------------------------------------------------

    def _body_view(self) -> Any:
        """JSON bodies as JSON; anything else (a file upload) by size and digest."""
        if self.body is None:
            return None
        if (self.content_type or "").startswith("application/json"):
            try:
                return json.loads(self.body)
            except (json.JSONDecodeError, UnicodeDecodeError):
                pass
        return {"bytes": len(self.body), "sha256": hashlib.sha256(self.body).hexdigest()}

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        """The ticket as an operator sees it (never with a credential)."""
        out: dict[str, Any] = {
            "id": self.id,
            "action": self.action,
            "state": self.state,
            "rule": self.rule,
            "requester": self.requester,
            "request": {"method": self.method, "url": self.url},
            "fingerprint": self.fingerprint,
            "port": self.port,
            "manifest_version": self.manifest_version,
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.expires_at),
            "approvals_required": self.approvals_required,
            "forbid_self_approval": self.forbid_self_approval,
            "approvals": [a.to_dict() for a in self.approvals],
        }
        if self.body is not None:
            out["request"]["body"] = self._body_view()
        if self.content_type:
            out["request"]["content_type"] = self.content_type
        if self.headers:
            out["request"]["headers"] = dict(self.headers)
        if self.state in OPEN_STATES:
            moment = time.time() if now is None else now
            out["expires_in_seconds"] = max(0, int(self.expires_at - moment))
        if self.review:
            out["review"] = self.review
        for key in ("reason", "decided_by", "executed_by"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.finished_at is not None:
            out["finished_at"] = _iso(self.finished_at)
        if self.result is not None:
            out["result"] = self.result
        return out

    def status(self, now: float | None = None) -> dict[str, Any]:
        """What an agent polling the ticket needs: state, and result / reason / expiry."""
        moment = time.time() if now is None else now
        out: dict[str, Any] = {
            "ticket": self.id,
            "action": self.action,
            "state": self.state,
            "rule": self.rule,
            "requester": self.requester,
            "fingerprint": self.fingerprint,
            "approvals": len(self.approvals),
            "approvals_required": self.approvals_required,
            "expires_at": _iso(self.expires_at),
        }
        if self.state in OPEN_STATES:
            out["expires_in_seconds"] = max(0, int(self.expires_at - moment))
        if self.reason is not None:
            out["reason"] = self.reason
        if self.decided_by is not None:
            out["decided_by"] = self.decided_by
        if self.result is not None:
            out["result"] = self.result
        out["message"] = _status_message(self)
        return out


def _status_message(t: Ticket) -> str:
    if t.state == "pending":
        missing = t.approvals_required - len(t.approvals)
        return f"waiting for {missing} more operator approval(s); nothing has been sent"
    if t.state == "approved":
        return "approved; waiting to be run (harbor-confluence queue run)"
    if t.state == "executing":
        return "the request is being sent"
    if t.state == "succeeded":
        return "the request ran and Confluence accepted it; see result"
    if t.state == "failed":
        return "the request ran (or could not be sent) and did not succeed; see result"
    if t.state == "unknown":
        return (
            "the request may or may not have reached Confluence; it will not be retried. "
            "An operator reconciles it (harbor-confluence queue resolve)"
        )
    if t.state == "rejected":
        return f"rejected by {t.decided_by}: {t.reason}"
    if t.state == "cancelled":
        return f"cancelled by {t.decided_by}" + (f": {t.reason}" if t.reason else "")
    if t.state == "expired":
        return f"expired at {_iso(t.expires_at)} before it ran; nothing was sent"
    return t.state


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


# -- the store interface ------------------------------------------------------------------


class StoreTransaction(Protocol):
    """Reads and conditional writes inside one serialised write transaction."""

    def get(self, ticket_id: str) -> Ticket | None: ...

    def update(self, ticket_id: str, expect: Sequence[str], changes: dict[str, Any]) -> bool:
        """Apply ``changes`` if the ticket is in one of ``expect``; True if it was."""
        ...

    def add_approval(self, ticket_id: str, approval: Approval) -> None: ...


class TicketStore(Protocol):
    """What the queue needs from a database (SQLite here; a server database later)."""

    def insert(self, ticket: Ticket) -> None: ...

    def get(self, ticket_id: str) -> Ticket | None: ...

    def page(self, state: str | None, limit: int, after: tuple[float, str] | None) -> list[Ticket]:
        """Tickets ordered by (created_at, id), after the given position."""
        ...

    def ids_due(self, now: float) -> list[str]:
        """Open tickets whose expiry has passed."""
        ...

    def ids_in_state(self, state: str) -> list[str]: ...

    def transaction(self) -> contextlib.AbstractContextManager[StoreTransaction]:
        """Serialise writers (SQLite: ``BEGIN IMMEDIATE``; a server DB: row locks)."""
        ...


class Subscription(Protocol):
    """Ticket changes as a store announces them (see :class:`ChangeFeed`)."""

    @property
    def live(self) -> bool:
        """Whether changes are being received now (else they show up later as ``"*"``)."""
        ...

    def get(self, timeout: float) -> ChangeNotice | None: ...

    def close(self) -> None: ...


@runtime_checkable
class ChangeFeed(Protocol):
    """A store that announces ticket changes (PostgreSQL: LISTEN/NOTIFY); others are polled."""

    def subscribe(self, ticket: str | None = None) -> Subscription: ...


def page_query(
    select: str, state: str | None, limit: int, after: tuple[float, str] | None, mark: str
) -> tuple[str, list[Any]]:
    """One page of tickets by (created_at, id), for any store (``mark``: the driver's
    placeholder, ``?`` for SQLite, ``%s`` for PostgreSQL)."""
    where: list[str] = []
    params: list[Any] = []
    if state is not None:
        where.append(f"state = {mark}")
        params.append(state)
    if after is not None:
        where.append(f"(created_at, id) > ({mark}, {mark})")
        params.extend(after)
    sql = select
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY created_at, id LIMIT {mark}"
    params.append(limit)
    return sql, params


# -- SQLite -------------------------------------------------------------------------------

_BASE_SCHEMA = """
CREATE TABLE IF NOT EXISTS tickets (
    id TEXT PRIMARY KEY,
    action TEXT NOT NULL,
    port TEXT NOT NULL,
    manifest_version TEXT NOT NULL,
    rule TEXT NOT NULL,
    method TEXT NOT NULL,
    url TEXT NOT NULL,
    body BLOB,
    content_type TEXT,
    fingerprint TEXT NOT NULL,
    requester TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    state TEXT NOT NULL,
    result TEXT
);
CREATE TABLE IF NOT EXISTS approvals (
    ticket_id TEXT NOT NULL REFERENCES tickets(id),
    operator TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    at REAL NOT NULL,
    reason TEXT,
    PRIMARY KEY (ticket_id, operator)
);
"""
# Columns added after the foundation's first schema (added in place to older files).
_EXTRA_COLUMNS: tuple[tuple[str, str], ...] = (
    ("approvals_required", "INTEGER NOT NULL DEFAULT 1"),
    ("headers", "TEXT"),
    ("forbid_self_approval", "INTEGER NOT NULL DEFAULT 0"),
    ("review", "TEXT"),
    ("reason", "TEXT"),
    ("decided_by", "TEXT"),
    ("executed_by", "TEXT"),
    ("updated_at", "REAL"),
    ("finished_at", "REAL"),
    ("claim", "TEXT"),
    ("claim_pid", "INTEGER"),
    ("claim_host", "TEXT"),
    ("lease_until", "REAL"),
    ("seal", "TEXT"),
    ("state_seal", "TEXT"),
)
_APPROVAL_EXTRA_COLUMNS: tuple[tuple[str, str], ...] = (("seal", "TEXT"),)
_INDEXES = """
DROP INDEX IF EXISTS tickets_state;
CREATE INDEX IF NOT EXISTS tickets_state_created ON tickets(state, created_at, id);
CREATE INDEX IF NOT EXISTS tickets_created ON tickets(created_at, id);
CREATE INDEX IF NOT EXISTS tickets_state_expiry ON tickets(state, expires_at);
"""
_SCHEMA_VERSION = 3
_COLUMNS = (
    "id", "action", "port", "manifest_version", "rule", "method", "url", "body",
    "content_type", "fingerprint", "requester", "created_at", "expires_at", "state", "result",
    *(name for name, _ in _EXTRA_COLUMNS),
)  # fmt: skip
_UPDATABLE = frozenset(_COLUMNS) - {"id", "created_at", "seal"}  # a seal is set once
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM tickets"  # noqa: S608 - fixed column names


class _Row(Protocol):
    """A row by column name: ``sqlite3.Row`` here, a dict from the PostgreSQL store."""

    def __getitem__(self, key: str, /) -> Any: ...


def _row_to_ticket(row: _Row, approvals: Sequence[_Row]) -> Ticket:
    return Ticket(
        id=row["id"],
        action=row["action"],
        port=row["port"],
        manifest_version=row["manifest_version"],
        rule=row["rule"],
        method=row["method"],
        url=row["url"],
        body=bytes(row["body"]) if row["body"] is not None else None,
        content_type=row["content_type"],
        fingerprint=row["fingerprint"],
        requester=row["requester"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        state=row["state"],
        result=json.loads(row["result"]) if row["result"] else None,
        approvals_required=int(row["approvals_required"]),
        forbid_self_approval=bool(row["forbid_self_approval"]),
        headers=json.loads(row["headers"]) if row["headers"] else {},
        review=json.loads(row["review"]) if row["review"] else {},
        reason=row["reason"],
        decided_by=row["decided_by"],
        executed_by=row["executed_by"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
        claim=row["claim"],
        claim_pid=row["claim_pid"],
        claim_host=row["claim_host"],
        lease_until=row["lease_until"],
        approvals=tuple(
            Approval(a["operator"], a["fingerprint"], a["at"], a["reason"], a["seal"])
            for a in approvals
        ),
        seal=row["seal"],
        state_seal=row["state_seal"],
    )


def _encode(column: str, value: Any) -> Any:
    if column in ("result", "review", "headers"):
        return None if value is None else json.dumps(value, ensure_ascii=False, default=str)
    if column == "forbid_self_approval":
        return int(bool(value))
    return value


class _SqliteTransaction:
    __slots__ = ("_db",)

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def get(self, ticket_id: str) -> Ticket | None:
        return _fetch(self._db, ticket_id)

    def update(self, ticket_id: str, expect: Sequence[str], changes: dict[str, Any]) -> bool:
        unknown = set(changes) - _UPDATABLE
        if unknown or not changes:
            raise ValueError(f"cannot update columns {sorted(unknown) or '(none)'}")
        sets = ", ".join(f"{c} = ?" for c in changes)
        marks = ", ".join("?" for _ in expect)
        cur = self._db.execute(
            f"UPDATE tickets SET {sets} WHERE id = ? AND state IN ({marks})",  # noqa: S608
            (*(_encode(c, v) for c, v in changes.items()), ticket_id, *expect),
        )
        return cur.rowcount == 1

    def add_approval(self, ticket_id: str, approval: Approval) -> None:
        self._db.execute(
            "INSERT INTO approvals (ticket_id, operator, fingerprint, at, reason, seal) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                ticket_id,
                approval.operator,
                approval.fingerprint,
                approval.at,
                approval.reason,
                approval.seal,
            ),
        )


def _fetch(db: sqlite3.Connection, ticket_id: str) -> Ticket | None:
    rows = db.execute(f"{_SELECT} WHERE id = ?", (ticket_id,)).fetchall()  # done: no open read
    if not rows:
        return None
    row = rows[0]
    approvals = db.execute(
        "SELECT operator, fingerprint, at, reason, seal FROM approvals WHERE ticket_id = ? "
        "ORDER BY at, operator",
        (ticket_id,),
    ).fetchall()
    return _row_to_ticket(row, approvals)


class SqliteTicketStore:
    """Tickets and approvals in one SQLite file (WAL, ``synchronous=FULL``, mode 0600).

    One connection per thread (reopened after a fork) keeps it safe across threads and
    processes without paying a connect per operation; ``BEGIN IMMEDIATE`` takes the write
    lock up front so concurrent writers queue instead of racing.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Create the file owner-only before SQLite does (the -wal/-shm files copy its mode).
        # Only when missing: closing any other descriptor of an open SQLite file would drop
        # this process's POSIX locks on it.
        if not self.path.exists():
            with contextlib.suppress(FileExistsError):
                os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        with self._connect() as db:
            if db.execute("PRAGMA user_version").fetchall()[0][0] < _SCHEMA_VERSION:
                db.execute("BEGIN IMMEDIATE")
                try:
                    self._migrate(db)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        # One statement at a time: executescript() would commit the open transaction.
        for statement in _BASE_SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        have = {r[1] for r in db.execute("PRAGMA table_info(tickets)")}
        for name, decl in _EXTRA_COLUMNS:
            if name not in have:
                db.execute(f"ALTER TABLE tickets ADD COLUMN {name} {decl}")
        have = {r[1] for r in db.execute("PRAGMA table_info(approvals)")}
        for name, decl in _APPROVAL_EXTRA_COLUMNS:
            if name not in have:
                db.execute(f"ALTER TABLE approvals ADD COLUMN {name} {decl}")
        for statement in _INDEXES.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection; dropped (and so rolled back) after any error."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None or getattr(self._local, "pid", None) != os.getpid():
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL").fetchall()
            db.execute("PRAGMA synchronous=FULL")
            self._local.db, self._local.pid = db, os.getpid()
        try:
            yield db
        except BaseException:
            self._local.db = None
            db.close()
            raise

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        db = getattr(self._local, "db", None)
        self._local.db = None
        if db is not None:
            db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[StoreTransaction]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteTransaction(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def insert(self, ticket: Ticket) -> None:
        values = [_encode(c, getattr(ticket, c)) for c in _COLUMNS]
        marks = ", ".join("?" for _ in _COLUMNS)
        with self._connect() as db:
            db.execute(
                f"INSERT INTO tickets ({', '.join(_COLUMNS)}) VALUES ({marks})",  # noqa: S608
                values,
            )

    def get(self, ticket_id: str) -> Ticket | None:
        with self._connect() as db:
            return _fetch(db, ticket_id)

    def page(self, state: str | None, limit: int, after: tuple[float, str] | None) -> list[Ticket]:
        sql, params = page_query(_SELECT, state, limit, after, "?")
        with self._connect() as db:
            rows = db.execute(sql, params).fetchall()
            if not rows:
                return []
            ids = [r["id"] for r in rows]
            marks = ", ".join("?" for _ in ids)
            by_ticket: dict[str, list[sqlite3.Row]] = {}
            for a in db.execute(
                "SELECT ticket_id, operator, fingerprint, at, reason, seal FROM approvals "  # noqa: S608
                f"WHERE ticket_id IN ({marks}) ORDER BY at, operator",
                ids,
            ):
                by_ticket.setdefault(a["ticket_id"], []).append(a)
        return [_row_to_ticket(r, by_ticket.get(r["id"], [])) for r in rows]

    def ids_due(self, now: float) -> list[str]:
        with self._connect() as db:
            return [
                r[0]
                for r in db.execute(
                    "SELECT id FROM tickets WHERE state IN ('pending', 'approved') "
                    "AND expires_at <= ?",
                    (now,),
                )
            ]

    def ids_in_state(self, state: str) -> list[str]:
        with self._connect() as db:
            return [r[0] for r in db.execute("SELECT id FROM tickets WHERE state = ?", (state,))]

    def changed_since(self, since: float) -> list[tuple[str, str, float]]:
        """``(id, state, updated_at)`` of tickets changed after ``since`` (oldest first):
        the polling stand-in for a server database's change notifications."""
        with self._connect() as db:
            return [
                (r[0], r[1], float(r[2]))
                for r in db.execute(
                    "SELECT id, state, updated_at FROM tickets WHERE updated_at > ? "
                    "ORDER BY updated_at, id",
                    (since,),
                )
            ]


# -- seals --------------------------------------------------------------------------------
# Each seal is an HMAC (IntegrityKey.mac) over the canonical JSON of a fixed list of values;
# the purpose names keep a MAC made for one kind of seal from passing as another.

_TICKET_SEAL = "queue-ticket-v1"
_STATE_SEAL = "queue-state-v1"
_APPROVAL_SEAL = "queue-approval-v1"


def _ticket_terms(t: Ticket) -> bytes:
    """What a ticket's seal covers: everything that decides what is sent and who may let
    it go (times as floats: SQLite hands REAL columns back as floats)."""
    return canonical_json(
        [
            t.id,
            t.action,
            t.port,
            t.manifest_version,
            t.rule,
            t.method,
            t.url,
            None if t.body is None else hashlib.sha256(t.body).hexdigest(),
            t.content_type,
            dict(t.headers),
            t.requester,
            float(t.created_at),
            float(t.expires_at),
            int(t.approvals_required),
            bool(t.forbid_self_approval),
            t.fingerprint,
            t.review,  # what the operator is shown beside the request (diff, base version)
        ]
    )


def _state_terms(
    ticket_id: str, seal: str | None, state: str, claim: str | None, updated_at: float | None
) -> bytes:
    return canonical_json(
        [ticket_id, seal, state, claim, None if updated_at is None else float(updated_at)]
    )


def _approval_terms(ticket_id: str, seal: str | None, a: Approval) -> bytes:
    return canonical_json([ticket_id, seal, a.operator, a.fingerprint, float(a.at)])


# -- the queue ----------------------------------------------------------------------------

Vet = Callable[[Ticket], str | None]


@dataclass(frozen=True, slots=True)
class _Refusal:
    code: str
    message: str


def _clean_text(value: str | None, what: str, *, required: bool = False) -> str | None:
    text = (value or "").strip()
    if not text:
        if required:
            raise QueueInputError(f"{what} is required")
        return None
    if len(text) > MAX_REASON_CHARS:
        raise QueueInputError(f"{what} is longer than {MAX_REASON_CHARS} characters")
    return text


def _same(a: str, b: str) -> bool:
    """Identities compare without case or surrounding space ("Alice" is "alice")."""
    return a.strip().casefold() == b.strip().casefold()


def _host_identity() -> str:
    """Where a claimant's pid means something: the host name and its pid namespace (two
    containers with one host name do not see each other's processes)."""
    name = socket.gethostname()
    try:
        return f"{name} {os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return name


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child that nobody has reaped yet is a zombie: it is not running
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] != b"Z"
    except OSError:
        return True


class ReviewQueue:
    """The queue's rules over a :class:`TicketStore`, with every decision audited.

    Each method that changes a ticket does its checks and its conditional update inside
    one store transaction, then appends the decision to the audit log.
    """

    def __init__(
        self,
        store: TicketStore | str | Path,
        *,
        audit: AuditLog | None = None,
        clock: Callable[[], float] = time.time,
        key: IntegrityKey | None = None,
        home: Path | None = None,
    ) -> None:
        """``key`` seals tickets; by default the integrity key of the state directory
        (``home``, else the store's or the audit log's directory: ``secrets/integrity.key``),
        loaded or created on first use."""
        if isinstance(store, str | Path):
            path = Path(store)
            store = SqliteTicketStore(path)
            home = path.parent
            if audit is None:  # a queue file named outright: its log is the file beside it
                audit = AuditLog(path.parent / LOG_NAME)
        elif home is None:
            where = getattr(store, "path", None)
            if isinstance(where, Path):
                home = where.parent
            elif audit is not None:
                home = audit.path.parent
        if key is None and home is None:
            raise ValueError("a ReviewQueue over a store without a path needs key=IntegrityKey")
        self.store: TicketStore = store
        self.audit = audit
        self._clock = clock
        self._host = _host_identity()
        self._key = key
        self._key_home = home

    @classmethod
    def for_home(
        cls, home: Path, *, audit: AuditLog | None = None, key: IntegrityKey | None = None
    ) -> ReviewQueue:
        """The queue of one state directory: ``queue.sqlite3`` (audit in ``audit.jsonl``),
        or the shared PostgreSQL database when one is configured (``HARBOR_DATABASE_URL``
        or ``database-url`` in ``config.json``; the audit log then lives there too)."""
        home = Path(home)
        log = audit if audit is not None else AuditLog.for_home(home, key=key)
        url = database_url(home)
        if url is None:
            return cls(SqliteTicketStore(home / QUEUE_FILE), audit=log, key=key, home=home)
        from harbor_confluence.postgres.db import Database
        from harbor_confluence.postgres.tickets import PgTicketStore

        made: list[ReviewQueue] = []
        store = PgTicketStore(Database.shared(url), lambda: made[0].key)
        made.append(cls(store, audit=log, key=key, home=home))
        return made[0]

    def __repr__(self) -> str:
        where = getattr(self.store, "path", None) or getattr(self.store, "location", None)
        return f"<ReviewQueue {where if where is not None else type(self.store).__name__}>"

    # -- seals ----------------------------------------------------------------------

    @property
    def key(self) -> IntegrityKey:
        """The integrity key tickets are sealed with."""
        if self._key is None:
            home = self._key_home
            assert home is not None  # checked in __init__
            audit = self.audit
            if audit is not None and audit.path.parent == home:
                self._key = audit.key  # one key per state directory: load it once
            else:
                self._key = IntegrityKey.for_home(home)
        return self._key

    def _sealed(self, t: Ticket) -> Ticket:
        seal = self.key.mac(_TICKET_SEAL, _ticket_terms(t))
        state_seal = self.key.mac(
            _STATE_SEAL, _state_terms(t.id, seal, t.state, t.claim, t.updated_at)
        )
        return replace(t, seal=seal, state_seal=state_seal)

    def _update(
        self, tx: StoreTransaction, t: Ticket, expect: Sequence[str], changes: dict[str, Any]
    ) -> bool:
        """``tx.update`` with a fresh state seal over the state the change leaves.

        ``t`` is the ticket as read in this transaction.  The new seal is bound to the
        ticket's stored seal: a ticket whose seal is broken stays broken.
        """
        state = changes.get("state", t.state)
        claim = changes.get("claim", t.claim)
        updated_at = changes.get("updated_at", t.updated_at)
        sealed = dict(changes)
        sealed["state_seal"] = self.key.mac(
            _STATE_SEAL, _state_terms(t.id, t.seal, state, claim, updated_at)
        )
        return tx.update(t.id, expect, sealed)

    def _tamper_problem(self, t: Ticket) -> _Refusal | None:
        """Has the stored ticket been changed other than by the queue?

        The recomputed fingerprint against the ticket's and every approval's (which names
        whose approval no longer fits), then the ticket's seal, its state seal and every
        approval's seal.  Any mismatch is ``tampered``.
        """
        key = self.key
        if not t.seal:
            return _Refusal(
                "tampered",
                f"ticket {t.id} has no seal: it was held before tickets were sealed (an "
                "older queue database) or its seal was removed. It cannot be approved or "
                "run; nothing was sent. Make the request again for a new, sealed ticket",
            )
        computed = t.computed_fingerprint()
        if computed != t.fingerprint:
            return _Refusal(
                "tampered",
                f"ticket {t.id}'s stored request no longer matches the fingerprint it was "
                "held with; it was changed and will not be sent",
            )
        for a in t.approvals:
            if a.fingerprint != computed:
                return _Refusal(
                    "tampered",
                    f"ticket {t.id} was approved by {a.operator} for request "
                    f"{a.fingerprint[:16]}... but the stored request is now {computed[:16]}..."
                    "; it will not be sent",
                )
        if not key.check(_TICKET_SEAL, _ticket_terms(t), t.seal):
            return _Refusal(
                "tampered",
                f"ticket {t.id} does not match its seal: its request or its terms (requester, "
                "rule, approvals required, self-approval, expiry) were changed after it was "
                "held, outside the queue; nothing was sent",
            )
        if not key.check(
            _STATE_SEAL, _state_terms(t.id, t.seal, t.state, t.claim, t.updated_at), t.state_seal
        ):
            return _Refusal(
                "tampered",
                f"ticket {t.id}'s state ({t.state}) was not set by the queue (it was written "
                "into the database directly); nothing was sent",
            )
        for a in t.approvals:
            if not key.check(_APPROVAL_SEAL, _approval_terms(t.id, t.seal, a), a.seal):
                return _Refusal(
                    "tampered",
                    f"ticket {t.id}'s approval by {a.operator} was not recorded by the queue "
                    "(forged, or copied from another ticket); nothing was sent",
                )
        return None

    def _ran_before(self, ticket_id: str) -> dict[str, Any] | None:
        """The audit record of an earlier execution of this ticket, if there is one.

        A ticket runs once, so an ``approved`` ticket with one was put back to an earlier
        state (a whole row restored, seals and all, from a copy of the database).
        """
        if self.audit is None:
            return None
        return self.audit.find(("executing", "executed"), ticket=ticket_id)

    def _audit(self, event: str, **fields: Any) -> None:
        if self.audit is not None:
            self.audit.append(event, **fields)

    # -- holding --------------------------------------------------------------------

    def hold(
        self,
        prepared: PreparedRequest,
        *,
        port: str,
        manifest_version: str,
        rule: str,
        requester: str,
        ttl_seconds: int,
        approvers: int = 1,
        forbid_self_approval: bool = False,
    ) -> Ticket:
        """Store the exact request and return its ticket (nothing is sent)."""
        now = self._clock()
        ticket = Ticket(
            id="t_" + secrets.token_hex(8),
            action=prepared.action,
            port=port,
            manifest_version=manifest_version,
            rule=rule,
            method=prepared.method,
            url=prepared.url,
            body=prepared.body,
            content_type=prepared.content_type,
            fingerprint=prepared.fingerprint,
            requester=requester,
            created_at=now,
            expires_at=now + ttl_seconds,
            state="pending",
            approvals_required=max(1, approvers),
            forbid_self_approval=forbid_self_approval,
            headers=dict(prepared.headers),
            # As it will read back from the store, so the seal over it holds.
            review=cast(
                dict[str, Any],
                json.loads(
                    json.dumps(redact(dict(prepared.review)), ensure_ascii=False, default=str)
                ),
            ),
            updated_at=now,
        )
        ticket = self._sealed(ticket)
        self.store.insert(ticket)
        self._audit(
            "held",
            ticket=ticket.id,
            action=ticket.action,
            rule=rule,
            fingerprint=ticket.fingerprint,
            requester=requester,
            approvals_required=ticket.approvals_required,
            expires_at=_iso(ticket.expires_at),
        )
        return ticket

    # -- reading (touching expires and reaps) ---------------------------------------

    def get(self, ticket_id: str) -> Ticket | None:
        ticket = self.store.get(ticket_id)
        if ticket is None:
            return None
        now = self._clock()
        if ticket.is_expired(now):
            self._expire(ticket_id, now)
        elif ticket.state == "executing" and self._abandoned(ticket, now):
            self._mark_unknown(ticket_id, ticket.claim, _GONE)
        else:
            return ticket
        return self.store.get(ticket_id)

    def require(self, ticket_id: str) -> Ticket:
        ticket = self.get(ticket_id)
        if ticket is None:
            raise TicketNotFound(f"no ticket {ticket_id}", ticket=ticket_id)
        return ticket

    def list(
        self,
        state: str | None = None,
        limit: int = DEFAULT_LIST_LIMIT,
        after: str | None = None,
    ) -> list[Ticket]:
        """Tickets oldest first, ``limit`` at a time; ``after`` is the last id of a page."""
        if state is not None and state not in STATES:
            raise QueueInputError(f"unknown state {state!r}; one of {', '.join(STATES)}")
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise QueueInputError(f"limit must be between 1 and {MAX_LIST_LIMIT}")
        self.sweep()
        cursor = None
        if after is not None:
            last = self.store.get(after)
            if last is None:
                raise TicketNotFound(f"no ticket {after} to list after", ticket=after)
            cursor = (last.created_at, last.id)
        return self.store.page(state, limit, cursor)

    def sweep(self) -> None:
        """Mark overdue tickets expired and abandoned executions unknown."""
        now = self._clock()
        for ticket_id in self.store.ids_due(now):
            self._expire(ticket_id, now)
        for ticket_id in self.store.ids_in_state("executing"):
            ticket = self.store.get(ticket_id)
            if ticket is not None and self._abandoned(ticket, now):
                self._mark_unknown(ticket_id, ticket.claim, _GONE)

    def _expire(self, ticket_id: str, now: float) -> None:
        with self.store.transaction() as tx:
            t = tx.get(ticket_id)
            done = (
                t is not None
                and t.is_expired(now)
                and self._update(tx, t, OPEN_STATES, {"state": "expired", "updated_at": now})
            )
        if done and t is not None:
            self._audit("expired", ticket=ticket_id, action=t.action, was=t.state)

    def _abandoned(self, t: Ticket, now: float) -> bool:
        if t.lease_until is not None and now > t.lease_until:
            return True
        if t.claim_pid is not None and t.claim_host == self._host:
            return not _pid_alive(t.claim_pid)
        return False

    def _mark_unknown(self, ticket_id: str, claim: str | None, why: str) -> None:
        now = self._clock()
        with self.store.transaction() as tx:
            t = tx.get(ticket_id)
            done = (
                t is not None
                and t.claim == claim
                and self._update(tx, t, ("executing",), _unknown_changes(now, why))
            )
        if done:
            self._audit("unknown", ticket=ticket_id, reason=why)

    # -- deciding -------------------------------------------------------------------

    def approve(
        self,
        ticket_id: str,
        operator: str,
        *,
        reason: str | None = None,
        fingerprint: str | None = None,
    ) -> Ticket:
        """Record one operator's approval; the ticket is ``approved`` once enough exist.

        ``fingerprint`` (or a prefix of 12+ characters), when given, must match the request
        the operator reviewed.
        """
        who = _clean_text(operator, "operator name", required=True) or ""
        note = _clean_text(reason, "reason")
        if fingerprint is not None and len(fingerprint.strip()) < 12:
            raise QueueInputError("--fingerprint needs at least 12 characters")
        now = self._clock()
        refusal: _Refusal | None = None
        after: Ticket | None = None
        became_approved = False
        with self.store.transaction() as tx:
            t = tx.get(ticket_id)
            if t is None:
                raise TicketNotFound(f"no ticket {ticket_id}", ticket=ticket_id)
            computed = t.computed_fingerprint()
            if t.is_expired(now):
                self._update(tx, t, OPEN_STATES, {"state": "expired", "updated_at": now})
                refusal = _Refusal("expired", f"ticket {ticket_id} expired at "
                                   f"{_iso(t.expires_at)}; nothing was sent")  # fmt: skip
            elif t.state != "pending":
                refusal = _Refusal("not_pending", _not_pending(t))
            elif (problem := self._tamper_problem(t)) is not None:
                refusal = problem
            elif fingerprint is not None and not computed.startswith(fingerprint.strip()):
                refusal = _Refusal(
                    "fingerprint_mismatch",
                    f"ticket {ticket_id} is request {computed[:16]}..., not the "
                    f"{fingerprint.strip()[:16]}... you reviewed",
                )
            elif t.forbid_self_approval and _same(who, t.requester):
                refusal = _Refusal(
                    "self_approval",
                    f"rule {t.rule!r} forbids the requester ({t.requester}) from approving "
                    "their own request",
                )
            elif any(_same(who, a) for a in t.approvers()):
                refusal = _Refusal(
                    "duplicate_approval",
                    f"{who} already approved ticket {ticket_id}; rule {t.rule!r} needs "
                    f"{t.approvals_required} distinct approvers",
                )
            else:
                # The seals held: approvals_required and forbid_self_approval above are the
                # values the ticket was held with.
                approval = Approval(who, computed, now, note)
                approval = replace(
                    approval,
                    seal=self.key.mac(_APPROVAL_SEAL, _approval_terms(t.id, t.seal, approval)),
                )
                tx.add_approval(ticket_id, approval)
                count = len(t.approvals) + 1
                if count >= t.approvals_required:
                    became_approved = self._update(
                        tx, t, ("pending",), {"state": "approved", "updated_at": now}
                    )
                else:
                    self._update(tx, t, ("pending",), {"updated_at": now})
                # As this transaction left it: only the approval that completed the
                # ticket sees "approved" (and so only that caller runs it).
                after = tx.get(ticket_id)
        if refusal is not None:
            if refusal.code == "expired":
                self._audit("expired", ticket=ticket_id, action=t.action, was=t.state)
            self._audit(
                "refused", ticket=ticket_id, operation="approve", operator=who,
                code=refusal.code, message=refusal.message,
            )  # fmt: skip
            raise QueueRefused(refusal.message, ticket=ticket_id, state=t.state, code=refusal.code)
        self._audit(
            "approved",
            ticket=ticket_id,
            action=t.action,
            operator=who,
            reason=note,
            fingerprint=computed,
            approvals=len(t.approvals) + 1,
            approvals_required=t.approvals_required,
            state="approved" if became_approved else "pending",
        )
        if after is None:  # pragma: no cover - the row was just read in this transaction
            raise TicketNotFound(f"no ticket {ticket_id}", ticket=ticket_id)
        return after

    def reject(self, ticket_id: str, operator: str, reason: str) -> Ticket:
        """Refuse a ticket before it runs; the reason reaches the agent."""
        who = _clean_text(operator, "operator name", required=True)
        why = _clean_text(reason, "a rejection reason", required=True)
        return self._close(ticket_id, "rejected", who or "", why)

    def cancel(self, ticket_id: str, by: str, reason: str | None = None) -> Ticket:
        """Withdraw a ticket before it runs (the requester or an operator)."""
        who = _clean_text(by, "who cancels", required=True)
        return self._close(ticket_id, "cancelled", who or "", _clean_text(reason, "reason"))

    def _close(self, ticket_id: str, state: str, who: str, why: str | None) -> Ticket:
        now = self._clock()
        expired = False
        with self.store.transaction() as tx:
            t = tx.get(ticket_id)
            if t is None:
                raise TicketNotFound(f"no ticket {ticket_id}", ticket=ticket_id)
            if t.is_expired(now):
                expired = self._update(tx, t, OPEN_STATES, {"state": "expired", "updated_at": now})
                done = False
            else:
                done = self._update(
                    tx,
                    t,
                    OPEN_STATES,
                    {"state": state, "reason": why, "decided_by": who, "updated_at": now},
                )
        if expired:
            self._audit("expired", ticket=ticket_id, action=t.action, was=t.state)
        if not done:
            current = self.require(ticket_id)
            raise QueueRefused(
                f"ticket {ticket_id} is {current.state}; only a pending or approved ticket "
                f"can be {state}",
                ticket=ticket_id,
                state=current.state,
                code="not_open",
            )
        self._audit(state, ticket=ticket_id, action=t.action, operator=who, reason=why)
        return self.require(ticket_id)

    # -- executing ------------------------------------------------------------------

    def claim(
        self,
        ticket_id: str,
        operator: str,
        *,
        lease_seconds: float,
        vet: Vet | None = None,
    ) -> Ticket:
        """Atomically move an approved ticket to ``executing`` and return it to send.

        Refuses (nothing to send) unless the ticket is approved, unexpired, its seals hold
        (the ticket's terms, its state and every approval were written by the queue), its
        stored request still has the fingerprint every approval was bound to, it has the
        distinct approvals its sealed terms require, and it has not run before.  ``vet``
        may refuse further (e.g. a foreign origin).
        """
        who = _clean_text(operator, "operator name", required=True) or ""
        now = self._clock()
        refusal: _Refusal | None = None
        expired = reaped = False
        claim = secrets.token_hex(8)
        # Read before the write lock is taken (a long log is a file scan); a ticket that
        # runs in between is no longer approved below.
        ran = self._ran_before(ticket_id)
        with self.store.transaction() as tx:
            t = tx.get(ticket_id)
            if t is None:
                raise TicketNotFound(f"no ticket {ticket_id}", ticket=ticket_id)
            if t.state == "executing" and self._abandoned(t, now):
                reaped = self._update(tx, t, ("executing",), _unknown_changes(now, _GONE))
                t = replace(t, state="unknown", updated_at=now)
            if t.is_expired(now):
                expired = self._update(tx, t, OPEN_STATES, {"state": "expired", "updated_at": now})
                refusal = _Refusal(
                    "expired",
                    f"ticket {ticket_id} expired at {_iso(t.expires_at)}; nothing was sent",
                )
            elif t.state != "approved":
                refusal = _Refusal(_state_code(t.state), _not_runnable(t))
            else:
                refusal = self._tamper_problem(t) or _approval_problem(t)
                if refusal is None and ran is not None:
                    refusal = _Refusal(
                        "tampered",
                        f"ticket {ticket_id} already ran (audit record #{ran.get('seq')}, "
                        f"{ran.get('event')}): its row was put back to an earlier state. A "
                        "ticket runs once; nothing was sent",
                    )
                if refusal is None and vet is not None:
                    problem = vet(t)
                    if problem is not None:
                        refusal = _Refusal("refused", problem)
                if refusal is None and not self._update(
                    tx,
                    t,
                    ("approved",),
                    {
                        "state": "executing",
                        "claim": claim,
                        "claim_pid": os.getpid(),
                        "claim_host": self._host,
                        "lease_until": now + lease_seconds,
                        "executed_by": who,
                        "updated_at": now,
                    },
                ):  # pragma: no cover - the row was read under the store's write lock
                    refusal = _Refusal(
                        "already_running",
                        f"ticket {ticket_id} was claimed by another execution at the same "
                        "moment; it runs once, nothing was sent",
                    )
        if reaped:
            self._audit("unknown", ticket=ticket_id, reason=_GONE)
        if refusal is not None:
            if expired:
                self._audit("expired", ticket=ticket_id, action=t.action, was=t.state)
            self._audit(
                "refused", ticket=ticket_id, operation="execute", operator=who,
                code=refusal.code, message=refusal.message,
            )  # fmt: skip
            state = "expired" if expired else t.state
            raise QueueRefused(refusal.message, ticket=ticket_id, state=state, code=refusal.code)
        self._audit(
            "executing", ticket=ticket_id, action=t.action, operator=who,
            fingerprint=t.fingerprint,
        )  # fmt: skip
        return replace(t, state="executing", claim=claim, executed_by=who)

    def finish(
        self, ticket: Ticket, state: str, result: dict[str, Any], *, status: int | None = None
    ) -> Ticket:
        """Record how an execution ended (``succeeded``, ``failed`` or ``unknown``).

        The claim must still be ours.  A ticket already marked ``unknown`` because this
        process looked gone (a long request) takes the real outcome; one an operator has
        already resolved keeps the operator's outcome.
        """
        if state not in ("succeeded", "failed", "unknown"):
            raise ValueError(f"not an execution outcome: {state}")

        def record() -> bool:
            now = self._clock()
            with self.store.transaction() as tx:
                current = tx.get(ticket.id)
                return (
                    current is not None
                    and current.claim == ticket.claim
                    and self._update(
                        tx,
                        current,
                        ("executing", "unknown"),
                        {"state": state, "result": result, "finished_at": now, "updated_at": now},
                    )
                )

        # The request has left: its outcome is worth waiting for a shared database that is
        # restarting (SQLite never raises DatabaseUnavailable, so it never waits here).
        sent = f"{state}, status {status}" if status is not None else f"{state}, no answer"
        done = _patiently(
            record,
            f"ticket {ticket.id}'s request was sent ({sent}) but its outcome could not be "
            "recorded. The ticket stays executing until its lease runs out, then becomes "
            "unknown and is never sent again: check Confluence, then: harbor-confluence "
            f"queue resolve {ticket.id}",
        )
        _patiently(
            lambda: self._audit(
                "executed",
                ticket=ticket.id,
                action=ticket.action,
                fingerprint=ticket.fingerprint,
                outcome=state,
                status=status,
                recorded=done,
            ),
            f"ticket {ticket.id} ran ({sent}, recorded on the ticket) but its audit record "
            "could not be written",
        )
        return _patiently(
            lambda: self.require(ticket.id),
            f"ticket {ticket.id} ran ({sent}, recorded) but could not be read back",
        )

    def resolve(
        self, ticket_id: str, operator: str, outcome: str, note: str | None = None
    ) -> Ticket:
        """An operator reconciles an ``unknown`` ticket after checking Confluence."""
        if outcome not in ("succeeded", "failed"):
            raise QueueInputError("--outcome must be succeeded or failed")
        who = _clean_text(operator, "operator name", required=True) or ""
        text = _clean_text(note, "note")
        now = self._clock()
        self.get(ticket_id)  # an abandoned execution becomes unknown first
        with self.store.transaction() as tx:
            t = tx.get(ticket_id)
            if t is None:
                raise TicketNotFound(f"no ticket {ticket_id}", ticket=ticket_id)
            result = dict(t.result or {})
            result.update(resolved_by=who, resolved_outcome=outcome, resolved_at=_iso(now))
            if text:
                result["resolution_note"] = text
            done = self._update(
                tx,
                t,
                ("unknown",),
                {
                    "state": outcome,
                    "decided_by": who,
                    "reason": text,
                    "result": result,
                    "finished_at": now,
                    "updated_at": now,
                },
            )
        if not done:
            raise QueueRefused(
                f"ticket {ticket_id} is {t.state}; only an unknown ticket is resolved by hand",
                ticket=ticket_id,
                state=t.state,
                code="not_unknown",
            )
        self._audit("resolved", ticket=ticket_id, action=t.action, operator=who,
                    outcome=outcome, reason=text)  # fmt: skip
        return self.require(ticket_id)

    def status(self, ticket_id: str) -> dict[str, Any]:
        return self.require(ticket_id).status(self._clock())

    # -- waiting for changes --------------------------------------------------------

    def wait_for_change(
        self, ticket_id: str, timeout: float, *, state: str | None = None
    ) -> Ticket:
        """Block until the ticket leaves ``state`` (default: the state it is in now), for at
        most ``timeout`` seconds, and return it as it is then.

        With a shared database this sleeps until a change to the ticket commits on any
        node (LISTEN/NOTIFY), so an agent waiting for approval makes no queries meanwhile;
        with SQLite it polls, backing off from 50 ms to 1 s.  Changes nobody announces are
        still seen: an expiry when it falls due, a dead claimant within 5 s.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        sub = self.store.subscribe(ticket_id) if isinstance(self.store, ChangeFeed) else None
        try:
            ticket = self.require(ticket_id)  # read after subscribing: no change slips by
            start = ticket.state if state is None else state
            pause = 0.05
            while ticket.state == start:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                wait = min(left, _due_in(ticket, self._clock()))
                if sub is not None:
                    sub.get(wait if sub.live else min(wait, 1.0))
                else:
                    time.sleep(min(wait, pause))
                    pause = min(pause * 2, 1.0)
                ticket = self.require(ticket_id)
            return ticket
        finally:
            if sub is not None:
                sub.close()

    def watch(self, timeout: float | None = None) -> Iterator[ChangeNotice]:
        """Ticket changes as they happen (on any node, with a shared database) for
        ``timeout`` seconds (None: until the caller stops iterating).

        A change whose ``ticket`` is ``"*"`` means some may have been missed (the
        database connection was re-established): read again what you show.  With SQLite
        the changes are found by polling ``updated_at`` twice a second.
        """
        end = None if timeout is None else time.monotonic() + timeout

        def left(cap: float) -> float:
            return cap if end is None else max(0.0, min(cap, end - time.monotonic()))

        if isinstance(self.store, ChangeFeed):
            with contextlib.closing(self.store.subscribe(None)) as sub:
                while end is None or time.monotonic() < end:
                    change = sub.get(left(1.0))
                    if change is not None:
                        yield change
            return
        poll = getattr(self.store, "changed_since", None)
        since = self._clock()
        while end is None or time.monotonic() < end:
            for ticket_id, state, updated_at in poll(since) if callable(poll) else ():
                since = max(since, updated_at)
                yield ChangeNotice(ticket_id, state)
            time.sleep(left(0.5))


_GONE = "the executing process is gone; the request may or may not have been sent"


_FINISH_PATIENCE = 60.0  # seconds an outcome waits for the shared database to come back


def _patiently(fn: Callable[[], _T], failed: str) -> _T:
    """``fn()``, retried while the shared database is unavailable, for a little while;
    then :class:`DatabaseUnavailable` saying ``failed`` and why."""
    deadline = time.monotonic() + _FINISH_PATIENCE
    while True:
        try:
            return fn()
        except DatabaseUnavailable as exc:
            if time.monotonic() >= deadline:
                raise DatabaseUnavailable(f"{failed} ({exc})") from None
            time.sleep(1.0)


def _due_in(ticket: Ticket, now: float) -> float:
    """How long until something changes a ticket without an announcement: its expiry, or
    (executing) its lease running out or its claimant's death, checked every 5 s."""
    if ticket.state in OPEN_STATES:
        return max(0.01, ticket.expires_at - now + 0.01)
    if ticket.state == "executing":
        lease = ticket.lease_until - now + 0.01 if ticket.lease_until is not None else 5.0
        return max(0.01, min(5.0, lease))
    return float("inf")


def _unknown_changes(now: float, why: str) -> dict[str, Any]:
    return {
        "state": "unknown",
        "updated_at": now,
        "result": {"ok": False, "outcome": "unknown", "message": why},
    }


def _approval_problem(t: Ticket) -> _Refusal | None:
    """Does a (sealed, untampered) ticket have the approvals its sealed terms require?"""
    approvers = set()
    for a in t.approvals:
        if t.forbid_self_approval and _same(a.operator, t.requester):
            return _Refusal("self_approval", f"ticket {t.id} carries a self-approval")
        approvers.add(a.operator.strip().casefold())
    if len(approvers) < t.approvals_required:
        return _Refusal(
            "not_enough_approvals",
            f"ticket {t.id} has {len(approvers)} of {t.approvals_required} approvals",
        )
    return None


def _state_code(state: str) -> str:
    return {
        "pending": "not_approved",
        "executing": "already_running",
        "succeeded": "already_executed",
        "failed": "already_executed",
        "unknown": "outcome_unknown",
    }.get(state, "closed")


def _not_pending(t: Ticket) -> str:
    if t.state == "approved":
        return f"ticket {t.id} is already approved"
    return f"ticket {t.id} is {t.state}; only a pending ticket can be approved"


def _not_runnable(t: Ticket) -> str:
    if t.state == "pending":
        return (
            f"ticket {t.id} is pending: it has {len(t.approvals)} of "
            f"{t.approvals_required} approvals; nothing was sent"
        )
    if t.state == "executing":
        return f"ticket {t.id} is already being executed; it runs once"
    if t.state in ("succeeded", "failed"):
        return f"ticket {t.id} already ran ({t.state}); a ticket runs once, nothing was sent"
    if t.state == "unknown":
        return (
            f"ticket {t.id}'s outcome is unknown (the request may have reached Confluence); "
            "it is never retried. Check Confluence, then: harbor-confluence queue resolve "
            f"{t.id} --outcome succeeded|failed"
        )
    return f"ticket {t.id} is {t.state}; nothing was sent"
