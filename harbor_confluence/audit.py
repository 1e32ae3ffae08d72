"""The audit log: every decision, one JSON record per line, each chained to the one before.

Why a keyed chain: each record carries the hash of the previous record, and its own
``hash`` is an HMAC-SHA256 (made with the state directory's integrity key, see
``integrity.py``) over its content and that link.  Editing a record breaks its MAC;
removing or reordering records breaks the link (and the sequence numbers); and a record
appended by someone without the key (a plain SHA-256, as the log used to carry) is not a
valid MAC, so :meth:`AuditLog.verify` names it as forged.

Why an anchor: a small file (``audit.head``) remembers the last record written, with a MAC
over its sequence number and hash.  It moves on every append, reads included, so cutting
records off the end shows (the anchor names a record the log no longer has), and it cannot
be rewritten to match a shortened log without the key.  An append that finds the anchor
missing, rewritten or ahead of the log first writes an ``audit-gap`` record, so a later
append cannot paper over what was cut.  What the anchor cannot show is the log and the
anchor both put back to an earlier copy: that needs a store the writer cannot rewind.

Appends are serialised across threads and processes with ``flock`` and made durable with
``fsync`` before :meth:`AuditLog.append` returns (``durable=False`` skips the fsync, not
the anchor).  Values that look like a credential are replaced with ``[redacted]`` before
they are written: no record holds a credential, and no record holds the key.

Nodes sharing a PostgreSQL database (``HARBOR_DATABASE_URL``) share one chain: the same
records, MACs and anchor in tables (``postgres/audit.py``), each append serialised by an
advisory lock and anchored in its own transaction; :meth:`AuditLog.for_home` picks it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from .documents import find_credentials
from .errors import HarborError
from .integrity import IntegrityKey
from .request import canonical_json

__all__ = [
    "GAP_EVENT",
    "GENESIS",
    "AuditError",
    "AuditLog",
    "VerifyResult",
    "anchor_mac",
    "anchor_problem",
    "check_anchor",
    "redact",
    "walk_chain",
]

GENESIS = "0" * 64
LOG_NAME = "audit.jsonl"
HEAD_NAME = "audit.head"  # the anchor
GAP_EVENT = "audit-gap"
REDACTED = "[redacted]"
_RESERVED = frozenset({"seq", "ts", "event", "prev", "hash"})
_ANCHOR_BYTES = 256  # fixed size, rewritten in place
_ANCHOR_VERSION = 2
_RECORD_MAC = "audit-record"
_ANCHOR_MAC = "audit-anchor"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


class AuditError(HarborError):
    """The log cannot be appended to safely (its last record is unreadable)."""

    code = "audit"


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Outcome of :meth:`AuditLog.verify`.

    ``first_bad`` is the 0-based position (line) of the first record that does not fit and
    ``first_bad_seq`` that record's own sequence number, when it could be read.
    """

    ok: bool
    count: int
    first_bad: int | None = None
    first_bad_seq: int | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok, "count": self.count}
        if not self.ok:
            out.update(
                first_bad=self.first_bad,
                first_bad_line=None if self.first_bad is None else self.first_bad + 1,
                first_bad_seq=self.first_bad_seq,
                reason=self.reason,
            )
        return out


def redact(value: Any) -> Any:
    """A copy of ``value`` with anything that looks like a credential replaced."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if isinstance(v, str) and next(find_credentials({k: v}), None) is not None:
                out[k] = REDACTED
            else:
                out[k] = redact(v)
        return out
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str) and next(find_credentials(value), None) is not None:
        return REDACTED
    return value


def _parse_record(raw: bytes) -> dict[str, Any] | None:
    """One log line as a record, or None when it is not one (no int seq, no str hash)."""
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if (
        not isinstance(record, dict)
        or not isinstance(record.get("seq"), int)
        or not isinstance(record.get("hash"), str)
    ):
        return None
    return record


def _body(record: dict[str, Any]) -> bytes:
    return canonical_json({k: v for k, v in record.items() if k != "hash"})


def record_hash(record: dict[str, Any], key: IntegrityKey) -> str:
    """The record's MAC: HMAC-SHA256 over the canonical JSON of the record without ``hash``."""
    return key.mac(_RECORD_MAC, _body(record))


def _unkeyed_hash(record: dict[str, Any]) -> str:
    """What someone without the key would put in ``hash`` (and what the log once held)."""
    return hashlib.sha256(_body(record)).hexdigest()


def _anchor_data(seq: int, digest: str) -> bytes:
    return f"{seq}\n{digest}".encode()


def _now_iso() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


class AuditLog:
    """Append-only, MAC-chained JSONL file (``audit.jsonl`` in the state directory).

    ``key`` defaults to the integrity key of the log's directory (the state directory),
    loaded, or created, on first use.
    """

    _thread_locks: ClassVar[dict[str, threading.Lock]] = {}
    _guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: Path, *, key: IntegrityKey | None = None) -> None:
        self.path = Path(path)
        self.head_path = self.path.with_name(HEAD_NAME)
        lock_key = str(self.path.resolve())
        with AuditLog._guard:
            self._lock = AuditLog._thread_locks.setdefault(lock_key, threading.Lock())
        self._key = key
        self._dir_ready = False
        # (inode, size) of the log when we last saw its end, and the record there: while
        # nobody else has appended, the next append need not read the tail (nor the anchor).
        self._tail: tuple[tuple[int, int], dict[str, Any]] | None = None

    @classmethod
    def for_home(cls, home: Path, *, key: IntegrityKey | None = None) -> AuditLog:
        """The log of one state directory: ``audit.jsonl``, or the shared database's chain
        when one is configured (``HARBOR_DATABASE_URL`` or ``database-url``)."""
        from .postgres import database_url

        url = database_url(Path(home))
        if url is None:
            return cls(Path(home) / LOG_NAME, key=key)
        from .postgres.audit import PgAuditLog
        from .postgres.db import Database

        return PgAuditLog(Database.shared(url), Path(home), key=key)

    @property
    def location(self) -> str:
        """Where the records are, to show an operator (a path, or a redacted URL)."""
        return str(self.path)

    @property
    def key(self) -> IntegrityKey:
        """The integrity key the chain is made with (the state directory's by default)."""
        if self._key is None:
            self._key = IntegrityKey.for_home(self.path.parent)
        return self._key

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r})"

    # -- writing ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[int]:
        if not self._dir_ready:  # once per instance: this sits on every call's path
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._dir_ready = True
        with self._lock:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield fd
            finally:
                os.close(fd)  # closing releases the flock

    def append(self, event: str, *, durable: bool = True, **fields: Any) -> dict[str, Any]:
        """Append one record and return it (with ``seq``, ``ts``, ``prev`` and ``hash``).

        Thread- and process-safe.  ``durable`` records are fsynced before this returns;
        ``durable=False`` is for auto-sent reads, which change nothing upstream: they skip
        the fsync so reads stay cheap, but are chained and anchored like every record (a
        read cut from the end of the log shows).
        """
        if not event or not isinstance(event, str):
            raise ValueError("an audit event needs a name")
        clash = _RESERVED & fields.keys()
        if clash:
            raise ValueError(f"reserved audit field(s): {', '.join(sorted(clash))}")
        clean = redact(fields)
        key = self.key  # loaded (or created) before the lock is taken
        with self._locked() as fd:
            last, from_disk = self._last_record(fd)
            data = b""
            if from_disk:
                # Someone else wrote last (or this is our first look): the anchor must
                # still name the end of the log.  If not, say so in the chain itself.
                gap = self._anchor_problem(last, key)
                if gap is not None:
                    last = self._chain(last, GAP_EVENT, gap, key)
                    data = _line(last)
            record = self._chain(last, event, clean, key)
            data += _line(record)
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
            after = os.fstat(fd)
            self._tail = ((after.st_ino, after.st_size), record)
            if durable:
                os.fsync(fd)
            self._write_anchor(record["seq"], record["hash"], key)
        return record

    @staticmethod
    def _chain(
        last: dict[str, Any] | None, event: str, fields: dict[str, Any], key: IntegrityKey
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "seq": (last["seq"] + 1) if last else 1,
            "ts": _now_iso(),
            "event": event,
            **fields,
            "prev": last["hash"] if last else GENESIS,
        }
        record["hash"] = record_hash(record, key)
        return record

    def _last_record(self, fd: int) -> tuple[dict[str, Any] | None, bool]:
        """The last complete record, and whether it was read from disk (not our cache).

        A torn (never acknowledged) tail is cut off first.
        """
        st = os.fstat(fd)
        size = st.st_size
        if size == 0:
            return None, True
        if self._tail is not None and self._tail[0] == (st.st_ino, size):
            return self._tail[1], False
        tail = b""
        pos = size
        chunk = 4096
        # Read backwards until the tail holds the whole last line (and the newline before it).
        while pos > 0:
            step = min(chunk, pos)
            pos -= step
            tail = os.pread(fd, step, pos) + tail
            if tail.count(b"\n") >= 2 or (pos == 0 and b"\n" in tail):
                break
            chunk = min(chunk * 2, 1024 * 1024)
        if not tail.endswith(b"\n"):
            # A crash during an earlier append left a partial line: it was never fsynced
            # or acknowledged, so it is not a record.  Cut it off.
            cut = tail.rfind(b"\n")
            keep = (pos + cut + 1) if cut >= 0 else 0
            os.ftruncate(fd, keep)
            return self._last_record(fd)
        lines = tail[:-1].rsplit(b"\n", 1)
        record = _parse_record(lines[-1])
        if record is None:
            raise AuditError(
                f"the last record of {self.path} is unreadable; nothing more can be chained "
                "to it. Run: harbor-confluence audit verify"
            )
        self._tail = ((st.st_ino, size), record)
        return record, True

    def _anchor_problem(
        self, last: dict[str, Any] | None, key: IntegrityKey
    ) -> dict[str, Any] | None:
        """Why the anchor does not name ``last`` (the fields of an ``audit-gap`` record)."""
        return anchor_problem(last, self._read_anchor(key))

    def _write_anchor(self, seq: int, digest: str, key: IntegrityKey) -> None:
        """Point the anchor at the record just written (in place, fixed size).

        Not fsynced: it is written after the record, and a durable record is fsynced first.
        """
        mac = anchor_mac(seq, digest, key)
        # The same bytes json.dumps would give (every value is an int or hex), only cheaper.
        text = f'{{"v":{_ANCHOR_VERSION},"seq":{int(seq)},"hash":"{digest}","mac":"{mac}"}}'
        flags = os.O_WRONLY | os.O_CREAT | _NOFOLLOW
        try:
            fd = os.open(self.head_path, flags, 0o600)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            os.unlink(self.head_path)  # a link put in its place: write a real file
            fd = os.open(self.head_path, flags | os.O_EXCL, 0o600)
        try:
            os.pwrite(fd, text.encode().ljust(_ANCHOR_BYTES - 1) + b"\n", 0)
        finally:
            os.close(fd)

    # -- reading ------------------------------------------------------------------------

    def _lines(self) -> list[bytes]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        return data.split(b"\n")

    def records(self) -> list[dict[str, Any]]:
        """Every record, oldest first.  An unreadable line shows as ``event: unreadable``."""
        out: list[dict[str, Any]] = []
        lines = self._lines()
        for number, raw in enumerate(lines, 1):
            if not raw:
                continue
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                record = None
            if not isinstance(record, dict):
                record = {"seq": None, "event": "unreadable", "line": number}
            out.append(record)
        return out

    def tail(self, n: int = 20) -> list[dict[str, Any]]:
        return self.records()[-n:] if n > 0 else []

    def find(self, event: str | tuple[str, ...], **match: Any) -> dict[str, Any] | None:
        """The first record of ``event`` (or one of several) with these top-level fields
        and a valid MAC.

        A byte search for the first field, a block at a time (cheap on a long log), then
        each hit parsed and checked: a forged record does not count.
        """
        if not match:
            raise ValueError("find needs at least one field to match")
        events = (event,) if isinstance(event, str) else event
        name, value = next(iter(match.items()))
        needle = json.dumps({name: value}, ensure_ascii=False, separators=(",", ":"))[1:-1]
        wanted = needle.encode()

        def search(block: bytes) -> dict[str, Any] | None:
            pos = block.find(wanted)
            while pos != -1:
                start = block.rfind(b"\n", 0, pos) + 1
                end = block.find(b"\n", pos)
                end = len(block) if end == -1 else end
                record = _parse_record(block[start:end])
                if (
                    record is not None
                    and record.get("event") in events
                    and all(record.get(k) == v for k, v in match.items())
                    and self.key.check(_RECORD_MAC, _body(record), record["hash"])
                ):
                    return record
                pos = block.find(wanted, end)
            return None

        try:
            fh = self.path.open("rb")
        except FileNotFoundError:
            return None
        with fh:
            rest = b""
            while chunk := fh.read(1 << 20):
                data = rest + chunk
                cut = data.rfind(b"\n") + 1  # whole lines only; the rest joins the next block
                found = search(data[:cut])
                if found is not None:
                    return found
                rest = data[cut:]
        return search(rest) if rest else None

    def _read_anchor(self, key: IntegrityKey) -> tuple[int, str] | str | None:
        """(seq, hash) of the last record written, None without an anchor, or a problem."""
        try:
            fd = os.open(self.head_path, os.O_RDONLY | _NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError:
            return f"the anchor {self.head_path.name} is not a readable file"
        try:
            raw = os.read(fd, 4096)
        finally:
            os.close(fd)
        try:
            data = json.loads(raw.split(b"\n", 1)[0])
            seq, digest, mac = data["seq"], data["hash"], data.get("mac")
        except (ValueError, KeyError, TypeError, IndexError):
            return f"the anchor {self.head_path.name} is unreadable"
        return check_anchor(seq, digest, mac, key, self.head_path.name)

    @contextlib.contextmanager
    def _shared(self) -> Iterator[None]:
        """Hold off appenders while the log and its anchor are read together."""
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    def verify(self) -> VerifyResult:
        """Walk the chain; name the first record that was edited, forged, removed or
        reordered, and records cut from the end."""
        key = self.key
        with self._shared():
            lines = self._lines()
            anchor = self._read_anchor(key)
        if lines and lines[-1] == b"":
            lines.pop()
        # Records after the anchor (a crash between a record and its anchor) carry valid
        # MACs, checked in the walk: only the key's holder can have written them.
        return walk_chain(lines, anchor, key, anchor_name=self.head_path.name)


def walk_chain(
    records: Iterable[bytes | str],
    anchor: tuple[int, str] | str | None,
    key: IntegrityKey,
    *,
    unit: str = "line",
    anchor_name: str = HEAD_NAME,
    unanchored_ok: bool = True,
) -> VerifyResult:
    """Check a chain, oldest record first, against its anchor (``(seq, hash)``, a problem,
    or None when there is none); the first record that does not fit is named.

    ``unit`` is what a position is called (a file's ``line``, a table's ``row``).
    ``unanchored_ok`` accepts valid records after the anchor (a file log's crash window);
    a store that moves the anchor with every append in one transaction has none.
    """
    prev = GENESIS
    hashes: list[str] = []
    for index, raw in enumerate(records):
        record = _parse_record(raw.encode() if isinstance(raw, str) else raw)
        if record is None:
            return VerifyResult(
                False, index, index, None, f"{unit} {index + 1} is not an audit record"
            )
        seq: int = record["seq"]
        where = f"record #{seq} ({unit} {index + 1})"
        if not key.check(_RECORD_MAC, _body(record), record["hash"]):
            if _unkeyed_hash(record) == record["hash"]:
                why = (
                    f"{where} is forged: its hash is a plain SHA-256, not a MAC made with "
                    "this installation's integrity key (appended by someone without the "
                    "key, or written before the log was keyed)"
                )
            else:
                why = f"{where} was edited: its content does not match its hash"
            return VerifyResult(False, index, index, seq, why)
        expected = index + 1
        if seq != expected:
            return VerifyResult(
                False, index, index, seq,
                f"expected record #{expected} at {unit} {index + 1} but found #{seq}: "
                "records were removed or reordered",
            )  # fmt: skip
        if record.get("prev") != prev:
            before = f"record #{seq - 1}" if seq > 1 else "the start of the log"
            return VerifyResult(
                False, index, index, seq,
                f"{where} does not follow {before}: "
                "a record was replaced, removed or reordered",
            )  # fmt: skip
        if record.get("event") == GAP_EVENT:
            return VerifyResult(False, index, index, seq, _gap_reason(record))
        prev = record["hash"]
        hashes.append(prev)
    count = len(hashes)
    if anchor is None:
        if count:
            return VerifyResult(
                False, count, count, None,
                f"the anchor {anchor_name} is missing: records may have been "
                f"removed from the end after record #{count}",
            )  # fmt: skip
        return VerifyResult(True, 0)
    if isinstance(anchor, str):
        return VerifyResult(False, count, count, None, anchor)
    anchor_seq, anchor_hash = anchor
    if anchor_seq > count:
        return VerifyResult(
            False, count, count, count + 1,
            f"the log ends at record #{count} but record #{anchor_seq} was written: "
            f"records #{count + 1}..#{anchor_seq} were removed from the end",
        )  # fmt: skip
    if hashes[anchor_seq - 1] != anchor_hash:
        return VerifyResult(
            False, count, anchor_seq - 1, anchor_seq,
            f"record #{anchor_seq} is not the record that was written last "
            "(the log was rewritten)",
        )  # fmt: skip
    if not unanchored_ok and anchor_seq < count:
        return VerifyResult(
            False, count, anchor_seq, anchor_seq + 1,
            f"records #{anchor_seq + 1}..#{count} were added without moving the anchor "
            "(not by the log's writer)",
        )  # fmt: skip
    return VerifyResult(True, count)


def check_anchor(
    seq: object, digest: object, mac: object, key: IntegrityKey, name: str
) -> tuple[int, str] | str:
    """An anchor's ``(seq, hash)`` when its MAC is this key's, else what is wrong with it."""
    if not isinstance(seq, int) or not isinstance(digest, str) or seq < 1:
        return f"the anchor {name} is unreadable"
    if mac is None:
        return (
            f"the anchor {name} is not keyed (written before the log was "
            "keyed, or rewritten without the key)"
        )
    if not key.check(_ANCHOR_MAC, _anchor_data(seq, digest), mac):
        return (
            f"the anchor {name} was rewritten: its MAC is not one made "
            "with this installation's integrity key"
        )
    return seq, digest


def anchor_mac(seq: int, digest: str, key: IntegrityKey) -> str:
    """The MAC an anchor naming record ``seq`` with ``digest`` carries."""
    return key.mac(_ANCHOR_MAC, _anchor_data(seq, digest))


def anchor_problem(
    last: dict[str, Any] | None, anchor: tuple[int, str] | str | None
) -> dict[str, Any] | None:
    """Why ``anchor`` does not name ``last`` (the fields of an ``audit-gap`` record)."""
    log_seq = last["seq"] if last else 0
    if anchor is None:
        if last is None:
            return None  # a new log
        return {"problem": "anchor_missing", "log_seq": log_seq}
    if isinstance(anchor, str):
        return {"problem": "anchor_rewritten", "log_seq": log_seq}
    seq, digest = anchor
    if seq > log_seq:
        return {"problem": "cut_from_end", "log_seq": log_seq, "anchor_seq": seq}
    if last is not None and seq == log_seq and digest != last["hash"]:
        return {"problem": "last_record_replaced", "log_seq": log_seq, "anchor_seq": seq}
    return None  # the anchor may lag by a record written just before a crash


def _line(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def _gap_reason(record: dict[str, Any]) -> str:
    seq = record["seq"]
    log_seq = record.get("log_seq")
    anchor_seq = record.get("anchor_seq")
    problem = record.get("problem")
    if problem == "cut_from_end" and isinstance(log_seq, int) and isinstance(anchor_seq, int):
        what = (
            f"records #{log_seq + 1}..#{anchor_seq} had been removed from the end "
            f"(the log ended at #{log_seq}, its anchor named #{anchor_seq})"
        )
    elif problem == "anchor_missing":
        what = "the anchor was missing, so records may have been removed from the end"
    elif problem == "anchor_rewritten":
        what = "the anchor had been rewritten, so records may have been removed from the end"
    elif problem == "last_record_replaced":
        what = f"record #{log_seq} was not the record written last (it was replaced)"
    else:
        what = f"the log did not match its anchor ({problem})"
    return f"record #{seq} notes that when it was appended {what}"
