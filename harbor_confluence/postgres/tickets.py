"""The review queue's :class:`~harbor_confluence.review.queue.TicketStore` in PostgreSQL.

Why it keeps the queue's guarantees across nodes: every change the queue makes runs in
one transaction that first reads the ticket with ``SELECT ... FOR UPDATE``.  That row
lock is what SQLite's ``BEGIN IMMEDIATE`` was on one host: a second node approving or
claiming the same ticket waits for the first to commit, then reads the state it left
(``approved`` has become ``executing``), and its conditional ``UPDATE ... WHERE state =
ANY(...)`` changes nothing.  So one ticket is claimed, and sent, once.  Writers of
different tickets do not wait for each other.

Rows hold exactly what the SQLite store holds (same columns, same JSON text, times as
double precision), so the seals made with the shared integrity key check the same way,
and a ticket moved from SQLite keeps them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row

from harbor_confluence.review.integrity import IntegrityKey
from harbor_confluence.review.queue import (
    _COLUMNS,
    _UPDATABLE,
    Approval,
    QueueInputError,
    StoreTransaction,
    Ticket,
    _encode,
    _row_to_ticket,
    page_query,
)

from .db import Database, Subscription

__all__ = ["PgTicketStore"]

_T = TypeVar("_T")

_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM harbor_tickets"  # noqa: S608 - fixed names
_APPROVALS = "SELECT ticket_id, operator, fingerprint, at, reason, seal FROM harbor_approvals"


def _value(column: str, value: Any) -> Any:
    """As the SQLite store encodes it, but booleans as booleans."""
    if column == "forbid_self_approval":
        return bool(value)
    return _encode(column, value)


def _fetch(conn: psycopg.Connection[Any], ticket_id: str, *, lock: bool) -> Ticket | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"{_SELECT} WHERE id = %s{' FOR UPDATE' if lock else ''}", (ticket_id,))
        row = cur.fetchone()
        if row is None:
            return None
        cur.execute(f"{_APPROVALS} WHERE ticket_id = %s ORDER BY at, operator", (ticket_id,))
        return _row_to_ticket(row, cur.fetchall())


def _refused_value(exc: psycopg.DataError) -> QueueInputError:
    return QueueInputError(f"the database refused a value: {' '.join(str(exc).split())}")


class _PgTransaction:
    __slots__ = ("_conn",)

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def get(self, ticket_id: str) -> Ticket | None:
        # The row lock is held to the end of the transaction: another node changing this
        # ticket waits here, then reads what this transaction left.
        return _fetch(self._conn, ticket_id, lock=True)

    def update(self, ticket_id: str, expect: Sequence[str], changes: dict[str, Any]) -> bool:
        unknown = set(changes) - _UPDATABLE
        if unknown or not changes:
            raise ValueError(f"cannot update columns {sorted(unknown) or '(none)'}")
        sets = ", ".join(f"{c} = %s" for c in changes)
        cur = self._conn.execute(
            f"UPDATE harbor_tickets SET {sets} WHERE id = %s AND state = ANY(%s)",  # noqa: S608
            (*(_value(c, v) for c, v in changes.items()), ticket_id, list(expect)),
        )
        return cur.rowcount == 1

    def add_approval(self, ticket_id: str, approval: Approval) -> None:
        self._conn.execute(
            "INSERT INTO harbor_approvals (ticket_id, operator, fingerprint, at, reason, seal) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (
                ticket_id,
                approval.operator,
                approval.fingerprint,
                approval.at,
                approval.reason,
                approval.seal,
            ),
        )


class PgTicketStore:
    """Tickets and approvals in a shared PostgreSQL database.

    ``key`` gives the integrity key (loaded lazily): before its first operation the store
    brings the schema up to date and checks the key against the database's.
    """

    def __init__(self, db: Database, key: Callable[[], IntegrityKey]) -> None:
        self.db = db
        self._key = key
        self._ready = False

    @property
    def location(self) -> str:
        return self.db.display

    def __repr__(self) -> str:
        return f"<PgTicketStore {self.db.display}>"

    def _prepare(self) -> None:
        if not self._ready:
            self.db.ready(self._key())
            self._ready = True

    @contextlib.contextmanager
    def _conn(self, doing: str) -> Iterator[psycopg.Connection[Any]]:
        self._prepare()
        with self.db.connection(doing) as conn:
            try:
                yield conn
            except psycopg.DataError as exc:  # e.g. a NUL character, which text cannot hold
                raise _refused_value(exc) from None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[StoreTransaction]:
        with (
            self._conn("the ticket was not changed and nothing was sent") as conn,
            conn.transaction(),
        ):
            yield _PgTransaction(conn)

    def insert(self, ticket: Ticket) -> None:
        values = [_value(c, getattr(ticket, c)) for c in _COLUMNS]
        marks = ", ".join("%s" for _ in _COLUMNS)
        with (
            self._conn("the request was not held and nothing was sent") as conn,
            conn.transaction(),
        ):
            conn.execute(
                f"INSERT INTO harbor_tickets ({', '.join(_COLUMNS)}) VALUES ({marks})",  # noqa: S608
                values,
            )

    def _read(self, doing: str, fn: Callable[[psycopg.Connection[Any]], _T]) -> _T:
        self._prepare()
        try:
            return self.db.read(doing, fn)
        except psycopg.DataError as exc:  # e.g. a NUL in an id: no such ticket can exist
            raise _refused_value(exc) from None

    def get(self, ticket_id: str) -> Ticket | None:
        return self._read(
            "the ticket could not be read", lambda conn: _fetch(conn, ticket_id, lock=False)
        )

    def page(self, state: str | None, limit: int, after: tuple[float, str] | None) -> list[Ticket]:
        sql, params = page_query(_SELECT, state, limit, after, "%s")

        def read(conn: psycopg.Connection[Any]) -> list[Ticket]:
            with conn.cursor(row_factory=dict_row) as cur:
                cur.execute(sql, params)
                rows = cur.fetchall()
                if not rows:
                    return []
                ids = [r["id"] for r in rows]
                by_ticket: dict[str, list[dict[str, Any]]] = {}
                cur.execute(f"{_APPROVALS} WHERE ticket_id = ANY(%s) ORDER BY at, operator", (ids,))
                for a in cur.fetchall():
                    by_ticket.setdefault(a["ticket_id"], []).append(a)
            return [_row_to_ticket(r, by_ticket.get(r["id"], [])) for r in rows]

        return self._read("the queue could not be listed", read)

    def ids_due(self, now: float) -> list[str]:
        return self._ids(
            "SELECT id FROM harbor_tickets WHERE state IN ('pending', 'approved') "
            "AND expires_at <= %s",
            now,
        )

    def ids_in_state(self, state: str) -> list[str]:
        return self._ids("SELECT id FROM harbor_tickets WHERE state = %s", state)

    def _ids(self, sql: str, param: Any) -> list[str]:
        return self._read(
            "the queue could not be read",
            lambda conn: [r[0] for r in conn.execute(sql.encode(), (param,)).fetchall()],
        )

    def subscribe(self, ticket: str | None = None) -> Subscription:
        """Ticket changes as they commit, on any node (LISTEN ``harbor_tickets``)."""
        self._prepare()
        return self.db.subscribe(ticket)

    def count(self) -> int:
        row = self._read(
            "the queue could not be read",
            lambda conn: conn.execute("SELECT count(*) FROM harbor_tickets").fetchone(),
        )
        return int(row[0]) if row else 0
