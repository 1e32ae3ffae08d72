"""Webhooks: tell other systems when a ticket is held, approved, rejected, run, failed or lost.

Why it is built this way:

- A payload names the event, the ticket, its action, requester and state, a link to its
  review page and the time: never the request body, the request URL or a credential, so a
  receiver learns that something needs a look, not what it says.
- Every delivery is signed (``X-Harbor-Signature: sha256=<hex>``, HMAC-SHA256 with the
  webhook's own secret, printed once by ``node webhook add``) over the timestamp header
  and the raw body, ``f"{timestamp}.".encode() + body``: a receiver that checks the
  signature and refuses old timestamps (:func:`verify_signature`, five minutes) cannot be
  fed a forged or replayed event.  ``X-Harbor-Delivery`` stays the same across retries so
  a receiver can drop duplicates.
- Destinations are checked as strictly as the Confluence base URL: https, or plain http
  only to a loopback host; no user info, query or fragment; a valid port.  Redirects are
  not followed (a 3xx is a failed delivery).
- Delivery never blocks the queue: the node hands each event to one background thread
  through a bounded queue (full: the event is dropped and that is recorded).  A failed
  delivery is retried with exponential backoff a bounded number of times.  Every attempt
  goes to ``webhook-deliveries.jsonl`` in the state directory (rotated at 1 MiB); one given
  up or dropped is also an audit record (``webhook-failed``, ``webhook-dropped``).
- ``webhooks.json`` (0600, beside ``identities.json``) is re-read when it changes, so
  ``node webhook add`` and ``remove`` act on a running node.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import heapq
import hmac
import ipaddress
import json
import logging
import os
import queue
import random
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict

from harbor_confluence.config import atomic_write
from harbor_confluence.errors import ConfigError

from .privatefile import PrivateJsonFile

if TYPE_CHECKING:
    from harbor_confluence.review.audit import AuditLog

    from .service import NodeService, TicketChange

__all__ = [
    "DELIVERIES_FILE",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WEBHOOKS_FILE",
    "WEBHOOK_EVENTS",
    "Webhook",
    "WebhookDispatcher",
    "WebhookStore",
    "attach_webhooks",
    "check_url",
    "sign",
    "verify_signature",
]

WEBHOOKS_FILE = "webhooks.json"
DELIVERIES_FILE = "webhook-deliveries.jsonl"
WEBHOOK_EVENTS: tuple[str, ...] = ("held", "approved", "rejected", "executed", "failed", "unknown")
SIGNATURE_HEADER = "X-Harbor-Signature"
TIMESTAMP_HEADER = "X-Harbor-Timestamp"
EVENT_HEADER = "X-Harbor-Event"
DELIVERY_HEADER = "X-Harbor-Delivery"
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
REVIEW_PATH = "/review/tickets/"
# The state each event leaves a ticket in (an approval that also ran the request is two
# events: ``approved``, then ``executed``/``failed``/``unknown``).
_EVENT_STATE = {
    "held": "pending",
    "approved": "approved",
    "rejected": "rejected",
    "executed": "succeeded",
    "failed": "failed",
    "unknown": "unknown",
}
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
log = logging.getLogger("harbor_confluence.node.webhooks")


# -- destinations ---------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url(url: str, *, what: str = "webhook URL") -> str:
    """A destination as strict as the Confluence base URL; returns it, or ConfigError."""
    if not url or _CONTROL.search(url):
        raise ConfigError(f"{what}: give an absolute URL without spaces or control characters")
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise ConfigError(f"{what} must be an https URL, got {url!r}")
    if parts.scheme == "http" and not _is_loopback(host):
        raise ConfigError(f"{what}: plain http is only allowed to a loopback host; use https")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ConfigError(f"{what} may not carry user info (user:password@)")
    if parts.query or parts.fragment or "#" in url or "?" in url:
        raise ConfigError(f"{what} may not carry a query or a fragment")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{what}: the port is not a number from 1 to 65535") from None
    if port is not None and not 0 < port < 65536:
        raise ConfigError(f"{what}: the port is not a number from 1 to 65535")
    if parts.netloc.endswith(":"):
        raise ConfigError(f"{what}: the port is empty")
    if any(seg in (".", "..") for seg in parts.path.split("/")):
        raise ConfigError(f"{what}: the path may not contain dot segments")
    return url


def _check_events(events: Sequence[str] | None) -> tuple[str, ...]:
    if not events:
        return WEBHOOK_EVENTS
    chosen = tuple(dict.fromkeys(e.strip() for e in events if e.strip()))
    unknown = [e for e in chosen if e not in WEBHOOK_EVENTS]
    if unknown or not chosen:
        raise ConfigError(
            f"unknown webhook event(s) {', '.join(unknown) or '(none)'}; "
            f"choose from {', '.join(WEBHOOK_EVENTS)}"
        )
    return chosen


# -- signatures -----------------------------------------------------------------------------


def _signed_material(timestamp: str, body: bytes) -> bytes:
    return timestamp.encode("ascii") + b"." + body


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Harbor-Signature`` value: ``sha256=`` + HMAC-SHA256(secret, ts "." body)."""
    mac = hmac.new(secret.encode(), _signed_material(timestamp, body), hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    *,
    tolerance: float = 300.0,
    now: float | None = None,
) -> bool:
    """What a receiver checks: the signature over this timestamp and body, and a
    timestamp within ``tolerance`` seconds (so a captured delivery cannot be replayed)."""
    if not timestamp or not signature or not timestamp.isdigit():
        return False
    moment = time.time() if now is None else now
    if abs(moment - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature.strip())


# -- configuration --------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Webhook(_Model):
    """One destination: its URL, the events it wants, and its signing secret."""

    id: str
    url: str
    events: tuple[str, ...] = WEBHOOK_EVENTS
    secret: str
    created_at: float
    link_base: str | None = None  # how receivers reach the review page (else a bare path)

    def __repr__(self) -> str:  # never the secret
        return f"Webhook({self.id!r}, {self.url!r}, events={list(self.events)!r})"

    __str__ = __repr__

    def public(self) -> dict[str, Any]:
        """The webhook as ``node webhook list`` shows it (no secret)."""
        out: dict[str, Any] = {
            "id": self.id,
            "url": self.url,
            "events": list(self.events),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created_at)),
        }
        if self.link_base:
            out["link_base"] = self.link_base
        return out


class _File(_Model):
    version: Literal[1] = 1
    hooks: tuple[Webhook, ...] = ()


class WebhookStore:
    """``webhooks.json`` in the node's state directory (0600), re-read when it changes."""

    def __init__(self, home: Path) -> None:
        self.path = Path(home) / WEBHOOKS_FILE
        self._file = PrivateJsonFile(self.path, _File, _File(), "a webhooks file")

    def __repr__(self) -> str:
        return f"WebhookStore({str(self.path)!r})"

    def hooks(self) -> tuple[Webhook, ...]:
        """The webhooks as the file says now (one ``stat`` while it is unchanged)."""
        return self._file.load().hooks

    def get(self, hook_id: str) -> Webhook | None:
        return next((h for h in self.hooks() if h.id == hook_id), None)

    def list(self) -> list[dict[str, Any]]:
        return [h.public() for h in self.hooks()]

    @contextlib.contextmanager
    def _locked(self) -> Iterator[tuple[Webhook, ...]]:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(".webhooks.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._file.invalidate()
            yield self.hooks()
        finally:
            os.close(fd)

    def _save(self, hooks: tuple[Webhook, ...]) -> None:
        text = json.dumps(_File(hooks=hooks).model_dump(mode="json"), indent=2) + "\n"
        atomic_write(self.path, text.encode())
        self._file.invalidate()

    def add(
        self, url: str, events: Sequence[str] | None = None, *, link_base: str | None = None
    ) -> Webhook:
        """Add a destination; the returned webhook carries its secret (show it once)."""
        hook = Webhook(
            id="wh_" + secrets.token_hex(6),
            url=check_url(url),
            events=_check_events(events),
            secret=SECRET_PREFIX + secrets.token_urlsafe(32),
            created_at=time.time(),
            link_base=(check_url(link_base, what="--link-base").rstrip("/") if link_base else None),
        )
        with self._locked() as hooks:
            self._save((*hooks, hook))
        return hook

    def remove(self, key: str) -> int:
        """Remove webhooks by id or URL; returns how many went."""
        with self._locked() as hooks:
            kept = tuple(h for h in hooks if key not in (h.id, h.url))
            removed = len(hooks) - len(kept)
            if removed:
                self._save(kept)
        return removed


# -- delivery -------------------------------------------------------------------------------


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def event_payload(event: str, change: TicketChange, link_base: str | None, at: float) -> bytes:
    """The JSON a receiver gets: who and what, never the request body or a credential."""
    t = change.ticket
    data = {
        "event": event,
        "ticket": t.id,
        "action": t.action,
        "requester": t.requester,
        "state": _EVENT_STATE.get(event, t.state),
        "by": change.by,
        "link": f"{link_base or ''}{REVIEW_PATH}{t.id}",
        "time": _iso(at),
    }
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


@dataclass(order=True)
class _Delivery:
    due: float
    seq: int
    id: str = field(compare=False)
    hook_id: str = field(compare=False)
    event: str = field(compare=False)
    ticket: str = field(compare=False)
    body: bytes = field(compare=False, repr=False)
    attempt: int = field(default=0, compare=False)


class _DeliveryLog:
    """Append-only JSON lines of delivery attempts, rotated (one old file) at a size."""

    def __init__(self, path: Path, max_bytes: int = 1024 * 1024) -> None:
        self.path = path
        self.max_bytes = max_bytes

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"
        try:
            with contextlib.suppress(FileNotFoundError):
                if self.path.stat().st_size > self.max_bytes:
                    os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as fh:
                fh.write(line)
        except OSError:
            log.warning("webhooks: cannot write %s", self.path)

    def records(self) -> list[dict[str, Any]]:
        try:
            lines = self.path.read_text("utf-8").splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]


class WebhookDispatcher:
    """Queues webhook deliveries and sends them from one background thread.

    ``notify`` only enqueues (non-blocking; a full queue drops the delivery and records
    it), so the thread that held or approved a ticket never waits on a receiver.
    """

    def __init__(
        self,
        store: WebhookStore,
        *,
        audit: AuditLog | None = None,
        attempts: int = 5,
        base_delay: float = 2.0,
        max_delay: float = 300.0,
        timeout: float = 5.0,
        capacity: int = 1000,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.audit = audit
        self.attempts = max(1, attempts)
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.timeout = timeout
        self.deliveries = _DeliveryLog(store.path.with_name(DELIVERIES_FILE))
        self._inbox: queue.Queue[_Delivery | None] = queue.Queue(maxsize=capacity)
        self._transport = transport
        self._clock = clock
        self._seq = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._idle = threading.Condition()
        self._busy = 0
        self._dropped = 0
        self._last_drop_audit = 0.0

    # -- producer side (any thread) ------------------------------------------------------

    def notify(self, change: TicketChange) -> None:
        """Enqueue a delivery per webhook that wants any of the change's events."""
        if change.remote:  # the node that made the change delivers it
            return
        wanted = [e for e in change.events if e in WEBHOOK_EVENTS]
        if not wanted:
            return
        try:
            hooks = self.store.hooks()
        except ConfigError as exc:
            log.warning("webhooks: %s", exc)
            return
        now = self._clock()
        for event in wanted:
            for hook in hooks:
                if event in hook.events:
                    self._enqueue(hook, event, change, now)

    def _enqueue(self, hook: Webhook, event: str, change: TicketChange, now: float) -> None:
        with self._lock:
            self._seq += 1
            seq = self._seq
        delivery = _Delivery(
            due=now,
            seq=seq,
            id="d_" + secrets.token_hex(8),
            hook_id=hook.id,
            event=event,
            ticket=change.ticket.id,
            body=event_payload(event, change, hook.link_base, now),
        )
        self._start()
        with self._idle:
            self._busy += 1
        try:
            self._inbox.put_nowait(delivery)
        except queue.Full:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()
            self._drop(delivery)

    def _drop(self, d: _Delivery) -> None:
        self.deliveries.write(
            {
                "at": _iso(self._clock()),
                "delivery": d.id,
                "webhook": d.hook_id,
                "event": d.event,
                "ticket": d.ticket,
                "outcome": "dropped",
                "error": "the delivery queue is full",
            }
        )
        with self._lock:
            self._dropped += 1
            now = self._clock()
            if now - self._last_drop_audit < 10.0:
                return  # at most one audit record per 10 s; it carries the count
            count, self._dropped, self._last_drop_audit = self._dropped, 0, now
        self._audit(
            "webhook-dropped",
            webhook=d.hook_id,
            webhook_event=d.event,
            ticket=d.ticket,
            dropped=count,
            reason="the delivery queue is full",
        )

    def _audit(self, event: str, **fields: Any) -> None:
        if self.audit is None:
            return
        try:
            self.audit.append(event, durable=False, **fields)
        except Exception:
            log.exception("webhooks: cannot append %s to the audit log", event)

    # -- the sender thread ---------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stopping.clear()
                self._thread = threading.Thread(
                    target=self._run, name="harbor-webhooks", daemon=True
                )
                self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread (deliveries still waiting for a retry are abandoned)."""
        self._stopping.set()
        with contextlib.suppress(queue.Full):
            self._inbox.put_nowait(None)
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until nothing is queued or waiting for a retry (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def _run(self) -> None:
        waiting: list[_Delivery] = []
        with httpx.Client(
            timeout=self.timeout, follow_redirects=False, transport=self._transport
        ) as client:
            while not self._stopping.is_set():
                now = self._clock()
                wait = max(0.0, waiting[0].due - now) if waiting else None
                try:
                    item = self._inbox.get(timeout=wait)
                except queue.Empty:
                    item = None
                else:
                    if item is None:
                        break
                    heapq.heappush(waiting, item)
                while waiting and waiting[0].due <= self._clock():
                    delivery = heapq.heappop(waiting)
                    retry = self._attempt(client, delivery)
                    if retry is not None:
                        heapq.heappush(waiting, retry)
                    else:
                        with self._idle:
                            self._busy -= 1
                            self._idle.notify_all()

    def _attempt(self, client: httpx.Client, d: _Delivery) -> _Delivery | None:
        """One try; returns the delivery rescheduled, or None when it is finished."""
        hook = None
        with contextlib.suppress(ConfigError):
            hook = self.store.get(d.hook_id)
        if hook is None:  # removed meanwhile: stop trying
            return None
        d.attempt += 1
        timestamp = str(int(self._clock()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "harbor-node-webhooks",
            EVENT_HEADER: d.event,
            DELIVERY_HEADER: d.id,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(hook.secret, timestamp, d.body),
        }
        status: int | None = None
        error: str | None = None
        try:
            response = client.post(hook.url, content=d.body, headers=headers)
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        record: dict[str, Any] = {
            "at": _iso(self._clock()),
            "delivery": d.id,
            "webhook": d.hook_id,
            "event": d.event,
            "ticket": d.ticket,
            "attempt": d.attempt,
        }
        if status is not None:
            record["status"] = status
        if error is None:
            self.deliveries.write({**record, "outcome": "delivered"})
            return None
        record["error"] = error
        if d.attempt >= self.attempts:
            self.deliveries.write({**record, "outcome": "failed"})
            self._audit(
                "webhook-failed",
                webhook=d.hook_id,
                url=hook.url,
                webhook_event=d.event,
                ticket=d.ticket,
                attempts=d.attempt,
                error=error,
            )
            return None
        delay = min(self.max_delay, self.base_delay * 2 ** (d.attempt - 1))
        delay *= 1 + random.random() / 10  # noqa: S311 - jitter, not a secret
        self.deliveries.write({**record, "outcome": "retry", "retry_in": round(delay, 2)})
        d.due = self._clock() + delay
        return d


def attach_webhooks(service: NodeService, **kwargs: Any) -> WebhookDispatcher:
    """Deliver the node's ticket changes to the webhooks in its ``webhooks.json``."""
    dispatcher = WebhookDispatcher(WebhookStore(service.home), audit=service.port.audit, **kwargs)
    service.subscribe(dispatcher.notify)
    return dispatcher
