"""The audit log: every decision, one JSON record per line, each chained to the one before.

Why a hash chain: each record carries the SHA-256 of the previous record, and its own
hash covers its content and that link.  Editing a record breaks its own hash; removing or
reordering records breaks the link (and the sequence numbers), so :meth:`AuditLog.verify`
names the first record that no longer fits.  A small head file remembers the last record
written, so cutting records off the end shows too.

Appends are serialised across threads and processes with ``flock`` and made durable with
``fsync`` before :meth:`AuditLog.append` returns.  Values that look like a credential are
replaced with ``[redacted]`` before they are written: no record holds a credential.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from .documents import find_credentials
from .errors import HarborError
from .request import canonical_json

__all__ = ["GENESIS", "AuditError", "AuditLog", "VerifyResult", "redact"]

GENESIS = "0" * 64
LOG_NAME = "audit.jsonl"
HEAD_NAME = "audit.head"
REDACTED = "[redacted]"
_RESERVED = frozenset({"seq", "ts", "event", "prev", "hash"})
_HEAD_BYTES = 160  # fixed size, rewritten in place


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


def record_hash(record: dict[str, Any]) -> str:
    """SHA-256 over the canonical JSON of the record without its own ``hash``."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def _now_iso() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


class AuditLog:
    """Append-only, hash-chained JSONL file (``audit.jsonl`` in the state directory)."""

    _thread_locks: ClassVar[dict[str, threading.Lock]] = {}
    _guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.head_path = self.path.with_name(HEAD_NAME)
        key = str(self.path.resolve())
        with AuditLog._guard:
            self._lock = AuditLog._thread_locks.setdefault(key, threading.Lock())
        self._dir_ready = False
        # (inode, size) of the log when we last saw its end, and the record there: while
        # nobody else has appended, the next append need not read the tail back.
        self._tail: tuple[tuple[int, int], dict[str, Any]] | None = None

    @classmethod
    def for_home(cls, home: Path) -> AuditLog:
        """The log of one state directory."""
        return cls(Path(home) / LOG_NAME)

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

        Thread- and process-safe.  ``durable`` records are fsynced before this returns and
        move the head marker; ``durable=False`` is for auto-sent reads, which change nothing
        upstream: they are chained like every record but skip the fsync (and the head, so
        the head never runs ahead of what is on disk), so reads stay cheap.
        """
        if not event or not isinstance(event, str):
            raise ValueError("an audit event needs a name")
        clash = _RESERVED & fields.keys()
        if clash:
            raise ValueError(f"reserved audit field(s): {', '.join(sorted(clash))}")
        clean = redact(fields)
        with self._locked() as fd:
            last = self._last_record(fd)
            record: dict[str, Any] = {
                "seq": (last["seq"] + 1) if last else 1,
                "ts": _now_iso(),
                "event": event,
                **clean,
                "prev": last["hash"] if last else GENESIS,
            }
            record["hash"] = record_hash(record)
            line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
            data = line.encode()
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
            after = os.fstat(fd)
            self._tail = ((after.st_ino, after.st_size), record)
            if durable:
                os.fsync(fd)
                self._write_head(record["seq"], record["hash"])
        return record

    def _last_record(self, fd: int) -> dict[str, Any] | None:
        """The last complete record; a torn (never acknowledged) tail is cut off first."""
        st = os.fstat(fd)
        size = st.st_size
        if size == 0:
            return None
        if self._tail is not None and self._tail[0] == (st.st_ino, size):
            return self._tail[1]
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
        return record

    def _write_head(self, seq: int, digest: str) -> None:
        """Remember the last record (in place, fixed size).

        Not fsynced: after a power cut the head may lag the log, which verify accepts;
        it can never run ahead, because the log line was fsynced first.
        """
        text = json.dumps({"seq": seq, "hash": digest}).encode()
        fd = os.open(self.head_path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.pwrite(fd, text.ljust(_HEAD_BYTES - 1) + b"\n", 0)
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

    def _head(self) -> tuple[int, str] | str | None:
        """(seq, hash) of the last record written, None without a head, or a problem."""
        try:
            raw = self.head_path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            data = json.loads(raw)
            return int(data["seq"]), str(data["hash"])
        except (ValueError, KeyError, TypeError):
            return f"the head file {self.head_path.name} is unreadable"

    def verify(self) -> VerifyResult:
        """Walk the chain; name the first record that was edited, removed or reordered."""
        lines = self._lines()
        if lines and lines[-1] == b"":
            lines.pop()
        prev = GENESIS
        hashes: list[str] = []
        for index, raw in enumerate(lines):
            record = _parse_record(raw)
            if record is None:
                return VerifyResult(
                    False, index, index, None, f"line {index + 1} is not an audit record"
                )
            seq: int = record["seq"]
            if record_hash(record) != record["hash"]:
                return VerifyResult(
                    False, index, index, seq,
                    f"record #{seq} (line {index + 1}) was edited: its content does not "
                    "match its hash",
                )  # fmt: skip
            expected = index + 1
            if seq != expected:
                return VerifyResult(
                    False, index, index, seq,
                    f"expected record #{expected} at line {index + 1} but found #{seq}: "
                    "records were removed or reordered",
                )  # fmt: skip
            if record.get("prev") != prev:
                where = f"record #{seq - 1}" if seq > 1 else "the start of the log"
                return VerifyResult(
                    False, index, index, seq,
                    f"record #{seq} (line {index + 1}) does not follow {where}: "
                    "a record was replaced, removed or reordered",
                )  # fmt: skip
            prev = record["hash"]
            hashes.append(prev)
        count = len(hashes)
        head = self._head()
        if isinstance(head, str):
            return VerifyResult(False, count, count, None, head)
        if head is not None:
            head_seq, head_hash = head
            if head_seq > count:
                return VerifyResult(
                    False, count, count, count + 1,
                    f"the log ends at record #{count} but record #{head_seq} was written: "
                    "records were removed from the end",
                )  # fmt: skip
            if head_seq >= 1 and hashes[head_seq - 1] != head_hash:
                return VerifyResult(
                    False, count, head_seq - 1, head_seq,
                    f"record #{head_seq} is not the record that was written last "
                    "(the log was rewritten)",
                )  # fmt: skip
        return VerifyResult(True, count)
