"""The durable record of held requests (SQLite under the state directory).

A request that policy holds for approval is written here, exactly as it would be sent
(never with the credential), before the caller hears back, so it survives restarts.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .request import PreparedRequest

__all__ = ["ReviewQueue", "Ticket"]

_SCHEMA = """
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
CREATE INDEX IF NOT EXISTS tickets_state ON tickets(state, created_at);
"""


@dataclass(frozen=True, slots=True)
class Ticket:
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
    result: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
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
        }
        if self.body is not None:
            out["request"]["body"] = json.loads(self.body)
        if self.result is not None:
            out["result"] = self.result
        return out


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class ReviewQueue:
    """SQLite (WAL) store of tickets."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with self._connect() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            yield db
        finally:
            db.close()
        self.path.chmod(0o600)

    def hold(
        self,
        prepared: PreparedRequest,
        *,
        port: str,
        manifest_version: str,
        rule: str,
        requester: str,
        ttl_seconds: int,
    ) -> Ticket:
        now = time.time()
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
            result=None,
        )
        with self._connect() as db:
            db.execute(
                "INSERT INTO tickets VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    ticket.id, ticket.action, ticket.port, ticket.manifest_version, ticket.rule,
                    ticket.method, ticket.url, ticket.body, ticket.content_type,
                    ticket.fingerprint, ticket.requester, ticket.created_at, ticket.expires_at,
                    ticket.state, None,
                ),
            )  # fmt: skip
        return ticket

    def get(self, ticket_id: str) -> Ticket | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM tickets WHERE id = ?", (ticket_id,)).fetchone()
        return _ticket(row) if row else None

    def list(self, state: str | None = None, limit: int = 100) -> list[Ticket]:
        with self._connect() as db:
            if state:
                rows = db.execute(
                    "SELECT * FROM tickets WHERE state = ? ORDER BY created_at LIMIT ?",
                    (state, limit),
                ).fetchall()
            else:
                rows = db.execute(
                    "SELECT * FROM tickets ORDER BY created_at LIMIT ?", (limit,)
                ).fetchall()
        return [_ticket(r) for r in rows]


def _ticket(row: tuple[Any, ...]) -> Ticket:
    values = list(row)
    values[-1] = json.loads(values[-1]) if values[-1] else None
    return Ticket(*values)
