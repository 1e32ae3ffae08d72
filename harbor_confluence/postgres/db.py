"""One database per URL per process: the connection pool, the schema, the key check and
the LISTEN connection.

Why each part:

- **Pool** (psycopg_pool): the queue and the audit log of a node share a few connections;
  every checkout is checked (a server restarted under us costs a reconnect, not an
  error), and a wait for a connection is bounded (``HARBOR_DATABASE_TIMEOUT``, default
  5 s), so an outage is a clear :class:`DatabaseUnavailable`, not a hang.  Sessions give
  up locks held by a frozen peer (``idle_in_transaction_session_timeout``).
- **Schema**: numbered SQL files in ``migrations/``, applied in order in one transaction
  under an advisory lock, each recorded in ``harbor_schema_version``: two nodes starting
  at once apply them once; a database newer than this code is refused.
- **Key check**: seals and the chain are MACs with the state directory's integrity key,
  and every node sharing a database must hold the same key.  The database keeps a MAC
  of a fixed text; a node whose key does not reproduce it is refused before it seals or
  appends anything (a wrong key would mark every ticket ``tampered`` and break the chain
  for everyone).
- **Listener**: one autocommit connection per process that LISTENs on
  ``harbor_tickets`` and hands each change to the waiters that asked for it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue as _queue
import threading
import time
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any, ClassVar, TypeVar

import psycopg
import psycopg.errors
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout, TooManyRequests

from harbor_confluence.errors import ConfigError
from harbor_confluence.review.integrity import IntegrityKey

from . import (
    POOL_ENV,
    TIMEOUT_ENV,
    ChangeNotice,
    DatabaseUnavailable,
    check_url,
    redact_url,
    url_secrets,
)

__all__ = ["CHANNEL", "ChangeNotice", "Database", "Subscription", "migrations"]

log = logging.getLogger("harbor_confluence.postgres")
_T = TypeVar("_T")

CHANNEL = "harbor_tickets"
_MIGRATE_LOCK = 0x68_61_72_62_6F_72_01  # "harbor" + 1: pg_advisory_xact_lock keys
AUDIT_LOCK = 0x68_61_72_62_6F_72_02
_IDLE_SECONDS = 10.0  # a listener nobody uses for this long closes its connection
_KEY_CHECK = "database-key-check-v1"
_KEY_CHECK_TEXT = b"harbor_confluence shared database"
_UNAVAILABLE = (
    psycopg.OperationalError,  # connection lost, server shutting down, lock/idle timeouts
    psycopg.InterfaceError,  # the connection is closed
    PoolTimeout,
    PoolClosed,
    TooManyRequests,
)


def migrations() -> list[tuple[int, str, str]]:
    """``(version, name, sql)`` for every ``migrations/NNNN_name.sql``, in order."""
    out = []
    for entry in resources.files(__package__).joinpath("migrations").iterdir():
        name = entry.name
        if not name.endswith(".sql"):
            continue
        number, _, _ = name.partition("_")
        if not number.isdigit():
            raise ConfigError(f"migration {name} does not start with its number")
        out.append((int(number), name, entry.read_text("utf-8")))
    out.sort()
    versions = [v for v, _, _ in out]
    if versions != list(range(1, len(out) + 1)):
        raise ConfigError(f"migrations are not numbered 1..{len(out)}: {versions}")
    return out


class Subscription:
    """Changes for one ticket (or all, ``ticket=None``) until closed."""

    def __init__(self, listener: _Listener, ticket: str | None) -> None:
        self.ticket = ticket
        self._listener = listener
        self._queue: _queue.SimpleQueue[ChangeNotice] = _queue.SimpleQueue()

    @property
    def live(self) -> bool:
        """Whether the listener is connected (else changes arrive only as ``"*"`` later)."""
        return self._listener.connected.is_set()

    def put(self, change: ChangeNotice) -> None:
        if self.ticket is None or change.ticket in (self.ticket, "*"):
            self._queue.put(change)

    def get(self, timeout: float) -> ChangeNotice | None:
        """The next change, or None after ``timeout`` seconds."""
        try:
            return self._queue.get(timeout=max(0.0, timeout))
        except _queue.Empty:
            return None

    def close(self) -> None:
        self._listener.remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Listener:
    """A daemon thread holding ``LISTEN harbor_tickets``, reconnecting with backoff."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._subs: set[Subscription] = set()
        self._lock = threading.Lock()
        self.connected = threading.Event()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._idle_since: float | None = None

    def add(self, ticket: str | None) -> Subscription:
        sub = Subscription(self, ticket)
        with self._lock:
            self._subs.add(sub)
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, name="harbor-pg-listen", daemon=True
                )
                self._thread.start()
        return sub

    def remove(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    def _broadcast(self, change: ChangeNotice) -> None:
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            sub.put(change)

    def stop(self) -> None:
        self._stop.set()

    def _idle(self) -> bool:
        """True (and the thread is done) once nobody has listened for a while."""
        with self._lock:
            if self._subs:
                self._idle_since = None
                return False
            now = time.monotonic()
            if self._idle_since is None:
                self._idle_since = now
            if now - self._idle_since < _IDLE_SECONDS:
                return False
            self._thread = None
            self.connected.clear()
            return True

    def _run(self) -> None:
        delay, quiet = 0.2, False
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self._db.url_for_connect, autocommit=True, **self._db.connect_kwargs
                ) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.connected.set()
                    delay, quiet = 0.2, False
                    self._broadcast(ChangeNotice("*", "listening"))  # re-read: may have missed
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            change = _parse_note(note.payload)
                            if change is not None:
                                self._broadcast(change)
                        if self._idle():
                            return
            except Exception as exc:  # any failure: reconnect; waiters fall back to re-reading
                why = self._db.scrub(" ".join(str(exc).split()))
                (log.debug if quiet else log.warning)("ticket change listener: %s", why)
                quiet = True  # one warning per outage, not one per attempt
            self.connected.clear()
            self._broadcast(ChangeNotice("*", "disconnected"))
            if self._idle():
                return
            self._stop.wait(delay)
            delay = min(delay * 2, 5.0)


def _parse_note(payload: str) -> ChangeNotice | None:
    try:
        data = json.loads(payload)
        return ChangeNotice(str(data["id"]), str(data["state"]))
    except (ValueError, KeyError, TypeError):
        return None


class Database:
    """A PostgreSQL database shared by nodes; :meth:`shared` gives one per URL per process."""

    _shared: ClassVar[dict[tuple[str, int], Database]] = {}
    _guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self, url: str, *, timeout: float | None = None, max_size: int | None = None
    ) -> None:
        self._url = check_url(url)
        self.display = redact_url(self._url)
        self._secrets = url_secrets(self._url)
        self.timeout = timeout if timeout is not None else _env_float(TIMEOUT_ENV, 5.0)
        self.max_size = max_size if max_size is not None else int(_env_float(POOL_ENV, 10))
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._lock = threading.Lock()
        self._ready: set[str] = set()  # key-check MACs that passed (schema is current)
        self._listener: _Listener | None = None
        self.schema_version: int | None = None

    @classmethod
    def shared(cls, url: str) -> Database:
        """This process's database for ``url`` (a forked child gets its own)."""
        key = (check_url(url), os.getpid())
        with cls._guard:
            db = cls._shared.get(key)
            if db is None:
                db = cls._shared[key] = cls(url)
            return db

    def __repr__(self) -> str:
        return f"<Database {self.display}>"

    def __reduce__(self) -> Any:
        raise TypeError("a Database holds a connection URL and cannot be pickled")

    # -- connections ------------------------------------------------------------------

    @property
    def url_for_connect(self) -> str:
        return self._url

    @property
    def connect_kwargs(self) -> dict[str, Any]:
        return {
            "connect_timeout": max(2, int(self.timeout)),
            "application_name": "harbor-confluence",
        }

    def scrub(self, text: str) -> str:
        """``text`` with the URL's secrets (if an error ever echoed one) masked."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _open_pool(self) -> ConnectionPool[psycopg.Connection[Any]]:
        pool = self._pool
        if pool is not None:
            return pool
        with self._lock:
            if self._pool is None:
                pool = ConnectionPool(
                    self._url,
                    min_size=1,
                    max_size=max(1, self.max_size),
                    timeout=self.timeout,
                    # A reconnection chain lasts no longer than a caller waits: the first
                    # request after an outage starts a fresh attempt at once instead of
                    # waiting out a backoff grown during the outage.
                    reconnect_timeout=self.timeout,
                    kwargs=self.connect_kwargs,
                    configure=_configure,
                    check=ConnectionPool.check_connection,
                    name=f"harbor {self.display}",
                    open=False,
                )
                pool.open(wait=False)
                self._pool = pool
            return self._pool

    @contextlib.contextmanager
    def connection(self, doing: str) -> Iterator[psycopg.Connection[Any]]:
        """A checked pooled connection; an outage or a timeout becomes
        :class:`DatabaseUnavailable` saying ``doing`` did not happen."""
        try:
            with self._open_pool().connection() as conn:
                yield conn
        except _UNAVAILABLE as exc:
            raise self.unavailable(exc, doing) from None

    def read(self, doing: str, fn: Callable[[psycopg.Connection[Any]], _T]) -> _T:
        """``fn(conn)`` (reads only) in a transaction, once more if the connection was lost
        under it (a server restart ends idle sessions: a read is safe to repeat)."""
        for attempt in (1, 2):
            try:
                with self._open_pool().connection() as conn, conn.transaction():
                    return fn(conn)
            except _UNAVAILABLE as exc:
                lost = not isinstance(exc, PoolTimeout | psycopg.errors.QueryCanceled)
                if attempt == 1 and lost:
                    continue
                raise self.unavailable(exc, doing) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def unavailable(self, exc: BaseException, doing: str) -> DatabaseUnavailable:
        if isinstance(exc, PoolTimeout):
            why = f"no connection within {self.timeout:g} s"
        elif isinstance(exc, psycopg.errors.LockNotAvailable):
            why = "timed out waiting for a lock held by another node"
        else:
            why = " ".join(str(exc).split()) or type(exc).__name__
        return DatabaseUnavailable(
            self.scrub(f"the database {self.display} is unavailable ({why}): {doing}")
        )

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()
        if pool is not None:
            pool.close(timeout=2.0)

    # -- schema and key ---------------------------------------------------------------

    def ready(self, key: IntegrityKey) -> None:
        """Apply pending migrations (once per process) and check that ``key`` is the key
        this database's seals and chain are made with."""
        mac = key.mac(_KEY_CHECK, _KEY_CHECK_TEXT)
        if mac in self._ready:
            return
        with self.connection("preparing the database schema; nothing was changed") as conn:
            self.schema_version = migrate(conn)
            with conn.transaction():
                conn.execute(
                    "INSERT INTO harbor_meta (name, value) VALUES ('integrity-key-check', %s) "
                    "ON CONFLICT (name) DO NOTHING",
                    (mac,),
                )
                row = conn.execute(
                    "SELECT value FROM harbor_meta WHERE name = 'integrity-key-check'"
                ).fetchone()
        stored = row[0] if row else None
        if not key.check(_KEY_CHECK, _KEY_CHECK_TEXT, stored):
            raise ConfigError(
                f"this node's integrity key ({key.location}) is not the key the database "
                f"{self.display} is sealed with: every node sharing one database must hold "
                "the same secrets/integrity.key. Copy it from a node already using this "
                "database (mode 0600, owned by the node's user); nothing was changed"
            )
        self._ready.add(mac)

    # -- live changes -----------------------------------------------------------------

    def subscribe(self, ticket: str | None = None) -> Subscription:
        """Changes to one ticket (or every ticket) as they commit, until closed."""
        with self._lock:
            if self._listener is None:
                self._listener = _Listener(self)
            listener = self._listener
        return listener.add(ticket)


def migrate(conn: psycopg.Connection[Any]) -> int:
    """Bring the schema up to date in one transaction; return its version.

    The advisory lock makes a second node starting at the same moment wait, then find
    nothing left to apply.
    """
    known = migrations()
    latest = known[-1][0] if known else 0
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS harbor_schema_version ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        row = conn.execute("SELECT coalesce(max(version), 0) FROM harbor_schema_version").fetchone()
        current = int(row[0]) if row else 0
        if current > latest:
            raise ConfigError(
                f"the database schema is at version {current}, newer than this "
                f"harbor-confluence knows ({latest}); upgrade it on this node"
            )
        for version, name, sql in known:
            if version > current:
                conn.execute(sql.encode())  # several statements, no parameters
                conn.execute(
                    "INSERT INTO harbor_schema_version (version, name) VALUES (%s, %s)",
                    (version, name),
                )
                log.info("applied migration %s", name)
    return latest


def _configure(conn: psycopg.Connection[Any]) -> None:
    """Per session: a peer frozen inside a transaction cannot hold its locks for long."""
    conn.autocommit = True
    try:
        conn.execute("SET idle_in_transaction_session_timeout = '30s'")
        conn.execute("SET lock_timeout = '60s'")
    finally:
        conn.autocommit = False


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, not {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive")
    return value
