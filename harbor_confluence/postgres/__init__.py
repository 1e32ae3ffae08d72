"""PostgreSQL for the review queue and the audit log: many nodes, one database.

Why: a node keeps its queue in SQLite and its log in a file, which only processes on one
host can share.  Several nodes (for availability, or one per network) that must never
send an approved write twice need one store they all lock against: a PostgreSQL
database, chosen with ``HARBOR_DATABASE_URL=postgresql://...`` (or ``database-url`` in
the state directory's ``config.json``).  The rules stay in ``review/queue.py`` and the chain in
``review/audit.py``; this package only stores them (``tickets.py``, ``audit.py``), versions the
schema (``migrations/``, ``db.py``), announces ticket changes (LISTEN/NOTIFY) and moves
an existing SQLite queue and JSONL log in (``move.py``).

Nothing in this module imports psycopg: the embedded default must not need it, and the
CLI starts without it.  The database password never appears in a repr, a log line or an
error: every place that shows the URL shows :func:`redact_url`'s form.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from harbor_confluence.errors import EXIT_ERROR, ConfigError, HarborError

__all__ = [
    "CONFIG_KEY",
    "DATABASE_URL_ENV",
    "ChangeNotice",
    "DatabaseUnavailable",
    "check_url",
    "database_url",
    "redact_url",
]

DATABASE_URL_ENV = "HARBOR_DATABASE_URL"
CONFIG_KEY = "database-url"  # in config.json (a node's operator sets it)
TIMEOUT_ENV = "HARBOR_DATABASE_TIMEOUT"  # seconds to wait for a connection (default 5)
POOL_ENV = "HARBOR_DATABASE_POOL"  # most connections per process (default 10)
_SCHEMES = ("postgresql", "postgres")


@dataclass(frozen=True, slots=True)
class ChangeNotice:
    """A ticket was inserted or updated (``state`` as the change left it).

    ``ticket == "*"`` means changes may have been missed (the listener connected again):
    read again whatever you are waiting for.
    """

    ticket: str
    state: str


class DatabaseUnavailable(HarborError):
    """The shared database could not be reached (or timed out); the operation did not
    happen, and the message says what that means for the request."""

    code = "database_unavailable"
    exit_code = EXIT_ERROR


def check_url(url: str) -> str:
    """The URL, refused (without quoting it) unless it is a ``postgresql://`` URL."""
    text = url.strip()
    try:
        scheme = urlsplit(text).scheme
    except ValueError:
        scheme = ""
    if scheme not in _SCHEMES:
        raise ConfigError(
            f"{DATABASE_URL_ENV} must be a postgresql://USER@HOST[:PORT]/DBNAME URL "
            "(a password is better kept in ~/.pgpass or PGPASSFILE than in the URL)"
        )
    return text


def redact_url(url: str) -> str:
    """The URL with any password (in the user part or a ``password=`` parameter) masked."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return "postgresql://[unparsable URL]"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, sep, _password = userinfo.partition(":")
        netloc = f"{user}{':***' if sep else ''}@{hostport}"
    query = urlencode(
        [
            (k, "***" if k.lower() in ("password", "passfile", "sslpassword") else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ]
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def url_secrets(url: str) -> list[str]:
    """The secret strings in a URL (to scrub them from any message that might echo one)."""
    out: list[str] = []
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return out
    if parts.password:
        out.append(parts.password)
    out += [v for k, v in parse_qsl(parts.query) if k.lower() in ("password", "sslpassword") and v]
    return [s for s in out if len(s) >= 3]


def database_url(home: Path | None = None) -> str | None:
    """The shared database this process uses: ``$HARBOR_DATABASE_URL``, else
    ``database-url`` in the state directory's ``config.json``, else None (SQLite/JSONL)."""
    value = os.environ.get(DATABASE_URL_ENV, "").strip()
    if not value and home is not None and (Path(home) / "config.json").is_file():
        from harbor_confluence.config import LocalConfig

        configured = LocalConfig(Path(home)).get(CONFIG_KEY)
        if isinstance(configured, str):
            value = configured.strip()
    return check_url(value) if value else None
