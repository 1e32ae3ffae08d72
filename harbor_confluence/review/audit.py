"""The audit log: every decision, one JSON record per line, each chained to the one before.

Why a keyed chain: each record carries the hash of the previous record, and its own
``hash`` is an HMAC-SHA256 (made with the state directory's integrity key, see
``integrity.py``) over its content and that link.  Editing a record breaks its MAC;
removing or reordering records breaks the link (and the sequence numbers); and a record
appended by someone without the key (a plain SHA-256, as the log used to carry) is not a
valid MAC, so :meth:`AuditLog.verify` names it as forged.

Why an anchor: a small file (``audit.head``) remembers the last record written, with a MAC
over its sequence number and hash.  It moves with every batch of appends, reads included,
so cutting
records off the end shows (the anchor names a record the log no longer has), and it cannot
be rewritten to match a shortened log without the key.  An append that finds the anchor
missing, rewritten or ahead of the log first writes an ``audit-gap`` record, so a later
append cannot paper over what was cut.  What the anchor cannot show is the log and the
anchor both put back to an earlier copy: that needs a store the writer cannot rewind.

Appends are group-committed: threads of one process appending at once queue their records
and one of them (the leader) writes the batch under ``flock`` (which serialises processes),
with one tail check, one write, one ``fsync`` when any record in it is durable, and one
anchor move.  A durable record is fsynced, with everything queued before it, before
:meth:`AuditLog.append` returns; ``durable=False`` (reads) skips the fsync, not the
anchor, and does not wait while another thread is writing (its record is written by that
thread; readers, ``close`` and exit write what is queued first).  A log that defers
reads (a ``Port``'s) queues them instead: off an event loop the deferring thread writes
them itself in batches of up to 64 (a flusher thread writes what is left once it goes
quiet); on one, the loop's next iteration writes them in one batch.  A hard crash can lose
a read queued that way, never an acknowledged durable record.  Values that look like a
credential are replaced with ``[redacted]`` before they are queued: no record holds a
credential, and no record holds the key.

Nodes sharing a PostgreSQL database (``HARBOR_DATABASE_URL``) share one chain: the same
records, MACs and anchor in tables (``postgres/audit.py``), each append serialised by an
advisory lock and anchored in its own transaction; :meth:`AuditLog.for_home` picks it.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harbor_confluence.errors import HarborError
from harbor_confluence.pipeline.documents import find_credentials
from harbor_confluence.pipeline.request import canonical_json, json_line

from .integrity import IntegrityKey

if TYPE_CHECKING:
    import asyncio

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
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | _CLOEXEC


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


_CLEAN: dict[tuple[Any, str], None] = {}  # (field, value) pairs known not to be credentials
_CLEAN_MAX = 4096


def _is_credential(name: Any, value: str) -> bool:
    """Whether ``{name: value}`` looks like a credential (``find_credentials``).

    Why a cache: the same actions, rules and requesters come back on every call, and the
    scan is most of what redaction costs on the caller's thread.  Only clean pairs are
    kept (never a credential), and the cache is emptied when full.
    """
    if (name, value) in _CLEAN:
        return False
    if next(find_credentials({name: value}), None) is not None:
        return True
    if len(_CLEAN) >= _CLEAN_MAX:
        _CLEAN.clear()
    _CLEAN[(name, value)] = None
    return False


def redact(value: Any) -> Any:
    """A copy of ``value`` with anything that looks like a credential replaced."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if isinstance(v, str):
                out[k] = REDACTED if _is_credential(k, v) else v
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


_second: tuple[int, str] = (-1, "")  # the last second formatted, reused within it


def _now_iso() -> str:
    global _second
    now = time.time()
    second = int(now)
    if _second[0] != second:
        _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{_second[1]}.{int(now % 1 * 1000):03d}Z"


class AuditLog:
    """Append-only, MAC-chained JSONL file (``audit.jsonl`` in the state directory).

    ``key`` defaults to the integrity key of the log's directory (the state directory),
    loaded, or created, on first use.
    """

    def __init__(
        self, path: Path, *, key: IntegrityKey | None = None, defer_reads: bool = False
    ) -> None:
        self.path = Path(path)
        self.head_path = self.path.with_name(HEAD_NAME)
        self._group = _group_for(self.path)
        self._key = key
        # Reads' records (durable=False) are queued and written in batches by the thread
        # that queued them (a flusher thread writes what is left within 2 x LINGER
        # seconds), or on an event loop by its next iteration (either
        # sooner, by the next durable append, a reader, or exit), so a read's call never
        # waits on the file.
        self.defer_reads = defer_reads

    @classmethod
    def for_home(
        cls, home: Path, *, key: IntegrityKey | None = None, defer_reads: bool = False
    ) -> AuditLog:
        """The log of one state directory: ``audit.jsonl``, or the shared database's chain
        when one is configured (``HARBOR_DATABASE_URL`` or ``database-url``)."""
        from harbor_confluence.postgres import database_url

        url = database_url(Path(home))
        if url is None:
            return cls(Path(home) / LOG_NAME, key=key, defer_reads=defer_reads)
        from harbor_confluence.postgres.audit import PgAuditLog
        from harbor_confluence.postgres.db import Database

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

    def append(
        self, event: str, *, durable: bool = True, defer: bool | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Append one record and return it (with ``seq``, ``ts``, ``prev`` and ``hash``).

        Thread- and process-safe, and group-committed: records appended by several threads
        at once go out in one batch (see :class:`_Group`).  A ``durable`` record is written
        and fsynced, with everything queued before it, before this returns.

        ``defer`` (reads only; default: the log's ``defer_reads``) queues the record, to
        be written with others (:meth:`_Group.defer`), or, called on an event loop, by
        the loop's next iteration, instead of writing it here.

        ``durable=False`` is for auto-sent reads, which change nothing upstream: no fsync,
        and no wait while another thread is writing: the record is queued and that
        thread writes it, so the record returned then has no ``seq``, ``ts``, ``prev`` or
        ``hash`` yet (callers of reads do not use it).  Otherwise it is written before
        this returns, as a durable one is.  Either way it is chained and anchored like
        every record (a read cut from the end of the log shows), and this process's
        readers (:meth:`records`, :meth:`find`, :meth:`verify`), :meth:`close` and exit
        write what is queued first.  What a queued read can lose is a hard crash
        (``kill -9``, power) before it was written; a durable record cannot be lost
        once this has returned.
        """
        if not event or not isinstance(event, str):
            raise ValueError("an audit event needs a name")
        clash = _RESERVED & fields.keys()
        if clash:
            raise ValueError(f"reserved audit field(s): {', '.join(sorted(clash))}")
        clean = redact(fields)
        item = _Pending(event, clean, durable, self.key)  # the key is loaded before queueing
        group = self._group
        if not durable and (self.defer_reads if defer is None else defer):
            loop = _running_loop()
            if loop is None:
                group.defer(item)
            else:
                group.defer_on_loop(item, loop)
            return {"event": event, **clean}
        generation = group.submit(item)
        if generation is not None:
            group.lead(generation)
        if durable:
            group.wait_for(item.number)  # at once when this thread led
        elif item.record is None and item.error is None:
            return {"event": event, **clean}  # queued: the leader chains and writes it
        if item.error is not None:
            raise _copy_error(item.error) from None
        assert item.record is not None
        return item.record

    def flush(self) -> None:
        """Write every record queued in this process so far (reads queued by threads that
        did not lead) before returning."""
        self._group.flush()

    def close(self) -> None:
        """Write what is queued.  The log holds nothing open between appends; records
        queued by other threads belong to the file's group, which exit flushes too."""
        self._group.flush()

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

    def _anchor_problem(
        self, last: dict[str, Any] | None, key: IntegrityKey
    ) -> dict[str, Any] | None:
        """Why the anchor does not name ``last`` (the fields of an ``audit-gap`` record)."""
        return anchor_problem(last, self._read_anchor(key))

    # -- reading ------------------------------------------------------------------------

    def _lines(self) -> list[bytes]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        return data.split(b"\n")

    def records(self) -> list[dict[str, Any]]:
        """Every record, oldest first.  An unreadable line shows as ``event: unreadable``."""
        self.flush()
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
        self.flush()
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
        return _read_anchor_file(self.head_path, key)

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
        self.flush()  # before the shared lock: a batch needs the exclusive one
        with self._shared():
            lines = self._lines()
            anchor = self._read_anchor(key)
        if lines and lines[-1] == b"":
            lines.pop()
        # Records after the anchor (a crash between a record and its anchor) carry valid
        # MACs, checked in the walk: only the key's holder can have written them.
        return walk_chain(lines, anchor, key, anchor_name=self.head_path.name)


_MAX_BATCH = 256  # records per write: bounds one write(2), and one leader's turn
LINGER = 0.02  # seconds a deferred read's record waits for others to share its write
DEFER_BATCH = 64  # deferred records a deferring thread lets queue before it writes them


class _Pending:
    """One record waiting for its batch: the leader's one write of everything queued."""

    __slots__ = ("durable", "error", "event", "fields", "key", "number", "record")

    def __init__(
        self, event: str, fields: dict[str, Any], durable: bool, key: IntegrityKey
    ) -> None:
        self.event = event
        self.fields = fields
        self.durable = durable
        self.key = key
        self.number = 0  # its place in the queue, counted from the group's start
        self.record: dict[str, Any] | None = None
        self.error: BaseException | None = None


class _Group:
    """Group commit for one log file in this process, shared by every ``AuditLog`` on it.

    Why a leader and no writer thread: the first thread to append while nobody is writing
    becomes the leader and writes what is queued, its own record included, on its own
    thread; threads that append meanwhile only queue their record.  With one thread (the
    CLI, most calls) that is a plain synchronous append, so a record is in the file when
    ``append`` returns, as callers and readers of the file have always seen, and there is
    no thread to start, hand off to (a thread switch costs more than the write in
    CPython), stop at exit or lose across a fork.  Under contention the queue is what
    makes a batch: one flock, one tail check, one write, one fsync and one anchor move for
    every record that arrived while the last batch was written.

    ``enqueued`` and ``finished`` count records queued and records whose batch is over
    (written or failed); batches go out in queue order, so record ``n`` is done once
    ``finished >= n``.  The leader keeps writing until the queue is empty; after each batch
    it offers the lead (``handoff``), and the next thread to append takes it, so no
    caller is kept writing other threads' records for long.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.head_path = path.with_name(HEAD_NAME)
        self.reset()

    def reset(self) -> None:
        """Fresh locks and an empty queue (also in a forked child: the parent's threads,
        and whatever locks they held, are not there; their records are the parent's)."""
        self.mu = threading.Lock()
        self.changed = threading.Condition(self.mu)
        self.io = threading.Lock()  # held by the one thread writing a batch
        self.queue: list[_Pending] = []
        self.enqueued = 0
        self.finished = 0
        self.leading = False
        self.handoff = False
        self.generation = 0  # which lead is current: a leader replaced stops after its batch
        self.dir_ready = False
        self.kick = threading.Event()  # deferred records wait: the flusher writes them
        self.flusher: threading.Thread | None = None
        self.loops_due: set[asyncio.AbstractEventLoop] = set()  # a batch write is scheduled
        self.oldest = 0.0  # when the queue's first record was queued
        self.last_defer = 0.0  # when a thread last deferred a record
        # (inode, size) of the log when we last saw its end, and the record there: while
        # nobody else has appended, the next batch need not read the tail (nor the anchor).
        self.tail: tuple[tuple[int, int], dict[str, Any]] | None = None

    # -- who writes ---------------------------------------------------------------------

    def _enqueue(self, item: _Pending, now: float | None = None) -> None:
        """Put ``item`` at the end of the queue (``mu`` held), numbered in queue order."""
        if not self.queue:
            self.oldest = time.monotonic() if now is None else now
        self.queue.append(item)
        self.enqueued += 1
        item.number = self.enqueued

    def _take_lead(self) -> int:
        """Become the leader (``mu`` held); the generation this lead runs under."""
        self.leading = True
        self.handoff = False
        self.generation += 1
        return self.generation

    def defer(self, item: _Pending) -> None:
        """Queue ``item`` without writing it now.

        The thread that defers writes the queue itself, in one batch, once it holds
        ``DEFER_BATCH`` records or its oldest is ``LINGER`` old; a flusher thread writes
        what is left when the appending threads go quiet for ``LINGER`` (a durable append,
        a reader or exit write it sooner, in queue order).  Why not the flusher for every
        batch: its JSON and MAC work contends with the caller for the GIL, and each hand-off
        of the GIL between them measured more than the batch's own write.
        """
        now = time.monotonic()
        generation: int | None = None
        with self.mu:
            self._enqueue(item, now)
            self.last_defer = now
            due = len(self.queue) >= DEFER_BATCH or now - self.oldest >= LINGER
            if due and not self.leading:
                generation = self._take_lead()
            elif self.flusher is None:
                self.flusher = threading.Thread(
                    target=self._flush_deferred, name="harbor-audit-flusher", daemon=True
                )
                self.flusher.start()
        if generation is not None:
            with contextlib.suppress(Exception):  # lead() logs lost records
                self.lead(generation)
        elif not self.kick.is_set():
            self.kick.set()

    def defer_on_loop(self, item: _Pending, loop: asyncio.AbstractEventLoop) -> None:
        """Queue ``item``; the loop's next iteration writes everything queued, once.

        Why not the flusher thread: on an event loop its JSON and MAC work contends with
        the loop for the GIL, and a thread waiting for the GIL stalls the loop for up to
        the switch interval.  Why not inline: a write per record is a file open, a lock
        and two writes each; the reads of one iteration share them here.
        """
        with self.mu:
            self._enqueue(item)
            if loop in self.loops_due:
                return
            self.loops_due.add(loop)
        loop.call_soon(self._flush_on_loop, loop)

    def _flush_on_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        with self.mu:
            self.loops_due.discard(loop)
            if self.finished >= self.enqueued:
                return
            if self.leading:
                # Another thread writes until the queue is empty, ours included (it
                # checks the queue under this lock before it stops).  Taking the lead
                # from it would wait for its batch, an fsync perhaps, on the loop.
                return
            generation = self._take_lead()
        with contextlib.suppress(Exception):  # lead() logs lost records
            self.lead(generation)

    def _flush_deferred(self) -> None:
        """The backstop: write what deferring threads left queued once they are quiet."""
        kick = self.kick
        while True:
            kick.wait()
            kick.clear()
            while True:
                time.sleep(LINGER)
                with self.mu:
                    if self.finished >= self.enqueued:
                        break  # written meanwhile
                    quiet = time.monotonic() - self.last_defer >= LINGER
                if quiet:
                    with contextlib.suppress(Exception):  # lead() logs lost records
                        self.flush()
                    break

    def submit(self, item: _Pending) -> int | None:
        """Queue ``item``; the generation to :meth:`lead` under when its thread leads."""
        with self.mu:
            self._enqueue(item)
            if self.leading and not self.handoff:
                return None
            return self._take_lead()

    def lead(self, generation: int) -> None:
        """Write batches until the queue is empty or another thread has taken the lead."""
        try:
            while True:
                with self.io:
                    with self.mu:
                        if self.generation != generation:
                            return  # taken over: the new leader writes what is left
                        batch = self.queue[:_MAX_BATCH]
                        del self.queue[:_MAX_BATCH]
                        if not batch:
                            self.leading = self.handoff = False
                            return
                    error: BaseException | None = None
                    records: list[dict[str, Any]] = []
                    try:
                        records = self._write(batch)
                    except BaseException as exc:  # every waiter hears of it, then it goes on up
                        error = exc
                    with self.mu:
                        for pending, record in zip(batch, records, strict=False):
                            pending.record = record
                        if error is not None:
                            for pending in batch:
                                pending.error = error
                        self.finished = batch[-1].number
                        self.changed.notify_all()
                        current = self.generation == generation
                        done = not current or not self.queue
                        if current and done:  # nothing came meanwhile: leave at once
                            self.leading = self.handoff = False
                        elif current:
                            self.handoff = True
                if error is not None:
                    if not isinstance(error, Exception):
                        raise error
                    _report_lost(batch, error)
                if done:
                    return
        except BaseException:
            with self.mu:
                if self.generation == generation:  # let a waiter (or the next append) lead
                    self.leading = self.handoff = False
                    self.changed.notify_all()
            raise

    def wait_for(self, number: int) -> None:
        """Return once record ``number``'s batch is over; lead when nobody is leading."""
        while True:
            with self.mu:
                while self.finished < number and self.leading:
                    self.changed.wait()
                if self.finished >= number:
                    return
                generation = self._take_lead()
            self.lead(generation)

    def flush(self) -> None:
        """Return once every record queued so far is written."""
        with self.mu:
            number = self.enqueued
            if self.finished >= number:
                return
        self.wait_for(number)

    # -- the write ----------------------------------------------------------------------

    def _write(self, batch: list[_Pending]) -> list[dict[str, Any]]:
        """Chain ``batch`` after the log's last record and write it: one flock, one tail
        check, one write, one fsync (when a record in it is durable), one anchor move."""
        if not self.dir_ready:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.dir_ready = True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | _CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # closing the file releases it
            last, from_disk = self._last_record(fd)
            lines: list[bytes] = []
            if from_disk:
                # Someone else wrote last (or this is our first look): the anchor must
                # still name the end of the log.  If not, say so in the chain itself.
                key = batch[0].key
                gap = anchor_problem(last, _read_anchor_file(self.head_path, key))
                if gap is not None:
                    last = AuditLog._chain(last, GAP_EVENT, gap, key)
                    lines.append(_line(last))
            records: list[dict[str, Any]] = []
            for pending in batch:
                last = AuditLog._chain(last, pending.event, pending.fields, pending.key)
                records.append(last)
                lines.append(_line(last))
            data = b"".join(lines)
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
            after = os.fstat(fd)
            assert last is not None
            self.tail = ((after.st_ino, after.st_size), last)
            if any(pending.durable for pending in batch):
                os.fsync(fd)
            _write_anchor_file(self.head_path, last["seq"], last["hash"], batch[-1].key)
        finally:
            os.close(fd)
        return records

    def _last_record(self, fd: int) -> tuple[dict[str, Any] | None, bool]:
        """The last complete record, and whether it was read from disk (not our cache).

        A torn (never acknowledged) tail is cut off first.
        """
        st = os.fstat(fd)
        size = st.st_size
        if size == 0:
            return None, True
        if self.tail is not None and self.tail[0] == (st.st_ino, size):
            return self.tail[1], False
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
        self.tail = ((st.st_ino, size), record)
        return record, True


_groups: dict[str, _Group] = {}
_groups_guard = threading.Lock()
_at_exit = False


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running on this thread, if any (asyncio is not imported for it)."""
    aio = sys.modules.get("asyncio")
    return None if aio is None else aio.events._get_running_loop()


def _group_for(path: Path) -> _Group:
    """This process's group for the log at ``path`` (one per file, however it is named)."""
    global _at_exit
    name = str(path.resolve())
    with _groups_guard:
        group = _groups.get(name)
        if group is None:
            group = _groups[name] = _Group(path)
            if not _at_exit:
                atexit.register(_flush_all)
                _at_exit = True
        return group


def _flush_all() -> None:
    """At exit: write what is still queued (records of threads that did not lead)."""
    for group in list(_groups.values()):
        try:
            group.flush()
        except Exception as exc:  # exiting: say so, and let the exit go on
            _report_lost([], exc)


def _after_fork_in_child() -> None:
    global _groups_guard
    _groups_guard = threading.Lock()
    for group in _groups.values():
        group.reset()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _report_lost(batch: list[_Pending], error: Exception) -> None:
    """A batch failed after callers that did not wait for it (reads) had returned."""
    unheard = sum(1 for pending in batch if not pending.durable)
    if batch and not unheard:
        return  # every caller waited and raises it
    import logging

    logging.getLogger(__name__).error(
        "audit: %s record(s) of %s were not written: %s",
        unheard or "queued",
        batch[0].event if batch else "the log",
        error,
    )


def _copy_error(exc: BaseException) -> BaseException:
    """Each waiter raises its own exception object (one raised in several threads would
    share, and garble, one traceback)."""
    try:
        return type(exc)(*exc.args)
    except Exception:  # a type that cannot be rebuilt: raise it as it is
        return exc


def _read_anchor_file(head_path: Path, key: IntegrityKey) -> tuple[int, str] | str | None:
    """(seq, hash) the anchor at ``head_path`` names, None without one, or a problem."""
    try:
        fd = os.open(head_path, os.O_RDONLY | _NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError:
        return f"the anchor {head_path.name} is not a readable file"
    try:
        raw = os.read(fd, 4096)
    finally:
        os.close(fd)
    try:
        data = json.loads(raw.split(b"\n", 1)[0])
        seq, digest, mac = data["seq"], data["hash"], data.get("mac")
    except (ValueError, KeyError, TypeError, IndexError):
        return f"the anchor {head_path.name} is unreadable"
    return check_anchor(seq, digest, mac, key, head_path.name)


def _write_anchor_file(head_path: Path, seq: int, digest: str, key: IntegrityKey) -> None:
    """Point the anchor at the record just written (in place, fixed size).

    Not fsynced: it is written after the record, and a durable record is fsynced first.
    """
    mac = anchor_mac(seq, digest, key)
    # The same bytes json.dumps would give (every value is an int or hex), only cheaper.
    text = f'{{"v":{_ANCHOR_VERSION},"seq":{int(seq)},"hash":"{digest}","mac":"{mac}"}}'
    flags = os.O_WRONLY | os.O_CREAT | _NOFOLLOW
    try:
        fd = os.open(head_path, flags, 0o600)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        os.unlink(head_path)  # a link put in its place: write a real file
        fd = os.open(head_path, flags | os.O_EXCL, 0o600)
    try:
        os.pwrite(fd, text.encode().ljust(_ANCHOR_BYTES - 1) + b"\n", 0)
    finally:
        os.close(fd)


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
    return json_line(record) + b"\n"


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
