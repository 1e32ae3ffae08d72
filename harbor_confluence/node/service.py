"""What a node does for an authenticated caller, independent of HTTP.

The node is the one process that holds the credential, the live manifest and policy,
the review queue and the audit log.  Every method here takes the caller's
:class:`~harbor_confluence.node.identities.Identity` (from its bearer token, never from
anything it asserts) and decides what that identity may do:

- an agent calls the actions its grant allows, describes them, and reads and cancels
  its own tickets;
- an operator may also call every action and work the whole queue (approve, reject,
  run, resolve), read the audit log, and replace the live policy.

Refusals are :class:`~harbor_confluence.errors.HarborError`\\ s (``Forbidden``,
``AuthError``, ``TicketNotFound`` ...) and are audited; the HTTP layer only maps them.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harbor_confluence.config import atomic_write, state_dir
from harbor_confluence.errors import AuthError, Forbidden, HarborError, InputError, Violation
from harbor_confluence.paths import live_port_paths
from harbor_confluence.pipeline.executor import Port
from harbor_confluence.pipeline.manifest import Action, Manifest
from harbor_confluence.pipeline.policy import Policy, policy_from_data
from harbor_confluence.review.queue import Ticket, TicketNotFound

from .identities import Identity, IdentityStore

if TYPE_CHECKING:
    from harbor_confluence.adapters.tools import Shape, Toolkit
    from harbor_confluence.pipeline.summary import Result

__all__ = ["MAX_POLICY_BYTES", "AgentView", "NodeService", "TicketChange"]

MAX_POLICY_BYTES = 1024 * 1024
_DIFF_LINES = 400


def _same(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


# -- change notifications (the review page's live updates, webhooks) ------------------------


@dataclass(frozen=True, slots=True)
class TicketChange:
    """A ticket moved: what happened, in order, and the ticket as it is now.

    ``events`` are ``held``, ``approval`` (one of several), ``approved``, ``rejected``,
    ``cancelled``, ``executed`` (succeeded), ``failed``, ``unknown``, ``resolved``.
    """

    events: tuple[str, ...]
    ticket: Ticket
    by: str
    remote: bool = False  # made by another node sharing the database (seen by its feed)


TicketListener = Callable[[TicketChange], None]
_log = logging.getLogger("harbor_confluence.node")


def _change_events(before: Ticket | None, after: Ticket) -> tuple[str, ...]:
    """What moved between two reads of one ticket (an approve may also have run it)."""
    if before is None:
        return ("held",) if after.state == "pending" else ()
    out: list[str] = []
    if len(after.approvals) > len(before.approvals):
        out.append("approval" if after.state == "pending" else "approved")
    if after.state != before.state:
        if before.state == "unknown" and after.state in ("succeeded", "failed"):
            out.append("resolved")
        elif after.state == "succeeded":
            out.append("executed")
        elif after.state in ("rejected", "cancelled", "expired", "failed", "unknown"):
            out.append(after.state)
    return tuple(out)


# Open waits (``GET /v1/tickets/{id}/wait``, up to 60 s each) hold a worker thread of the
# server's pool (40): without a bound one agent token could hold them all, and the node
# would stop answering everyone else, operators approving in the review page included.
WAITS_PER_IDENTITY = 4
WAITS_TOTAL = 16


class _WaitSlots:
    """How many waits each identity, and the node, may have open at once."""

    def __init__(self, *, per_identity: int, total: int) -> None:
        self.per_identity = per_identity
        self.total = total
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def held_by(self, name: str) -> Iterator[None]:
        from harbor_confluence.errors import Busy

        with self._lock:
            mine = self._open.get(name, 0)
            if mine >= self.per_identity:
                raise Busy(
                    f"{name} already has {mine} waits open on this node (at most "
                    f"{self.per_identity}); nothing changed: wait again when one ends"
                )
            if sum(self._open.values()) >= self.total:
                raise Busy(
                    f"the node already has {self.total} waits open; nothing changed: "
                    "wait again shortly, or poll the ticket's status"
                )
            self._open[name] = mine + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._open[name] - 1
                if left:
                    self._open[name] = left
                else:
                    del self._open[name]


class NodeService:
    """A loaded port plus the identities allowed to reach it."""

    def __init__(self, home: str | Path | None = None, *, port: Port | None = None) -> None:
        self.home = state_dir(home)
        self.identities = IdentityStore(self.home)
        self.port = (
            port
            if port is not None
            else Port.load(home=self.home, requester="node", defer_read_audit=False)
        )
        self._policy_lock = threading.Lock()
        self._generation = 0
        self._toolkits: dict[tuple[Any, ...], Toolkit] = {}
        self._stamp = self._live_stamp()
        self._refusals = _RateLimit(per_window=50, window=10.0)
        self._listeners: list[TicketListener] = []
        self._seen: _Recent = _Recent(4096)  # ticket id -> last state published
        self._waits = _WaitSlots(per_identity=WAITS_PER_IDENTITY, total=WAITS_TOTAL)

    # -- the live port on disk ------------------------------------------------------------

    def _live_stamp(self) -> tuple[tuple[str, int, int], ...]:
        out = []
        for path in live_port_paths(self.home):
            st = path.stat()
            out.append((str(path), st.st_mtime_ns, st.st_size))
        return tuple(out)

    def refresh(self) -> None:
        """Pick up a live port changed on disk (an import or a publish run on the node
        host by its operator): two ``stat`` calls per request while nothing changed."""
        stamp = self._live_stamp()
        if stamp == self._stamp:
            return
        from harbor_confluence.pipeline.manifest import load_manifest
        from harbor_confluence.pipeline.policy import load_policy

        with self._policy_lock:
            manifest_path, policy_path = live_port_paths(self.home)
            manifest, policy = load_manifest(manifest_path), load_policy(policy_path)
            self.port.use(manifest, policy)
            self._stamp = stamp
            self._generation += 1
            self._toolkits.clear()
        self._audit("port-reloaded", manifest=str(manifest_path), policy=str(policy_path),
                    manifest_version=manifest.manifest_version)  # fmt: skip

    def close(self) -> None:
        self.port.close()

    # -- change notifications ---------------------------------------------------------
    # The review page (live updates) and webhooks subscribe; the queue itself stays unaware.

    def subscribe(self, listener: TicketListener) -> Callable[[], None]:
        """Call ``listener`` (in the acting thread: keep it quick) whenever a ticket is
        held or changes state through this node; returns the unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _notify(self, before: Ticket | None, ticket_id: str, by: str) -> None:
        """Tell the listeners what changed; never raises (a notification must not fail,
        or hide the outcome of, the operation that caused it)."""
        if not self._listeners:
            return
        try:
            after = self.port.queue.store.get(ticket_id)
            events = _change_events(before, after) if after is not None else ()
        except Exception:
            _log.exception("node: cannot read ticket %s to notify its change", ticket_id)
            return
        if not events or after is None:
            return
        self._seen[ticket_id] = after.state
        self._publish(TicketChange(events, after, by))

    def _publish(self, change: TicketChange) -> None:
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:
                _log.exception("node: a ticket-change listener failed")

    def follow_shared_queue(self) -> threading.Thread | None:
        """With a shared database, tell listeners of changes made by other nodes too.

        A daemon thread reads the store's change feed (LISTEN/NOTIFY); changes this node
        made itself were already published and are skipped.  Those from elsewhere are
        marked ``remote`` (the review page shows them; webhooks leave them to the node
        that made them, so each event is delivered once).  SQLite has no other nodes.
        """
        from harbor_confluence.review.queue import ChangeFeed

        if not isinstance(self.port.queue.store, ChangeFeed):
            return None

        def run() -> None:
            while True:
                try:
                    for notice in self.port.queue.watch():
                        self._remote_change(notice.ticket, notice.state)
                except Exception:  # the database went away: the feed reconnects
                    _log.warning("node: the shared queue's change feed stopped; retrying")
                    time.sleep(2)

        thread = threading.Thread(target=run, name="harbor-queue-feed", daemon=True)
        thread.start()
        return thread

    def _remote_change(self, ticket_id: str, state: str | None) -> None:
        if ticket_id == "*" or not self._listeners or self._seen.get(ticket_id) == state:
            return
        ticket = self.port.queue.store.get(ticket_id)
        if ticket is None:
            return
        before = self._seen.get(ticket_id)
        self._seen[ticket_id] = ticket.state
        event = _REMOTE_EVENTS.get(ticket.state)
        if event == "held" and before is not None:
            event = "approval"
        if event is not None:
            self._publish(TicketChange((event,), ticket, "another node", remote=True))

    def wait(
        self, ident: Identity, ticket_id: str, timeout: float, state: str | None
    ) -> dict[str, Any]:
        """Block until the caller's ticket leaves ``state`` (or the timeout), then its status.

        With a shared database this sleeps on LISTEN/NOTIFY: no polling loop.
        """
        self._visible(ident, ticket_id)
        with self._waits.held_by(ident.name):
            self.port.queue.wait_for_change(ticket_id, timeout, state=state)
        return self.port.status(ticket_id)

    @contextlib.contextmanager
    def _watch(self, ident: Identity, ticket_id: str) -> Iterator[None]:
        """Notify listeners of whatever the block did to the ticket, even if it raised
        (a refused run can still leave it ``unknown`` or ``failed``)."""
        before = None
        if self._listeners:
            with contextlib.suppress(Exception):
                before = self.port.queue.store.get(ticket_id)
        try:
            yield
        finally:
            if before is not None:
                self._notify(before, ticket_id, ident.name)

    def authenticate_password(self, name: str, password: str, *, where: str) -> Identity:
        """An operator's sign-in by name and password (the review page); refusals are
        audited like bad tokens, and never say whether the name exists."""
        try:
            ident = self.identities.authenticate_password(name, password)
        except AuthError as exc:
            suppressed = self._refusals.admit()
            if suppressed is not None:
                extra = {"suppressed_before": suppressed} if suppressed else {}
                self._audit("unauthenticated", durable=False, where=where, reason=str(exc), **extra)
            raise
        self.refresh()
        return ident

    # -- who is calling -----------------------------------------------------------------

    def authenticate(self, token: str | None, *, where: str) -> Identity:
        """The caller's identity; a missing, wrong or revoked token is refused and audited."""
        try:
            ident = self.identities.authenticate(token)
        except AuthError as exc:
            suppressed = self._refusals.admit()
            if suppressed is not None:
                extra = {"suppressed_before": suppressed} if suppressed else {}
                self._audit("unauthenticated", durable=False, where=where, reason=str(exc), **extra)
            raise
        self.refresh()
        return ident

    def _audit(self, event: str, *, durable: bool = True, **fields: Any) -> None:
        self.port.audit.append(event, durable=durable, **fields)

    def _forbid(self, ident: Identity, operation: str, message: str) -> Forbidden:
        self._audit("forbidden", identity=ident.name, role=ident.role, operation=operation)
        return Forbidden(message)

    def require_operator(self, ident: Identity, operation: str) -> None:
        if not ident.is_operator:
            raise self._forbid(
                ident,
                operation,
                f"{operation} needs an operator token; {ident.name!r} holds an agent token",
            )

    def whoami(self, ident: Identity) -> dict[str, Any]:
        return {**ident.to_dict(), "port": self.port.manifest.port.name}

    # -- actions ------------------------------------------------------------------------

    def granted(self, ident: Identity) -> list[Action]:
        return [a for a in self.port.manifest.actions if ident.may_call(a.name, a.toolset, a.kind)]

    def action_for(self, ident: Identity, name: str) -> Action:
        action = self.port.action(name)  # UnknownAction (exit 2) with the closest names
        if not ident.may_call(action.name, action.toolset, action.kind):
            raise self._forbid(
                ident,
                f"call {name}",
                f"{ident.name!r} is not granted {name!r} ({action.kind}, toolset {action.toolset})",
            )
        return action

    def actions(self, ident: Identity) -> list[dict[str, Any]]:
        allowed = {a.name for a in self.granted(ident)}
        return [info.to_dict() for info in self.port.actions() if info.name in allowed]

    def describe(self, ident: Identity, name: str) -> dict[str, Any]:
        self.action_for(ident, name)
        return self.port.describe(name)

    def call(self, ident: Identity, name: str, data: Any) -> Result:
        """Validate, decide and send (or hold) as ``ident``; the requester is its name."""
        self.action_for(ident, name)
        result = self.port.call(name, data, requester=ident.name)
        if result.outcome == "held" and result.ticket:
            self._notify(None, result.ticket, ident.name)
        return result

    def paginate(
        self, ident: Identity, name: str, data: Any, max_items: int, max_requests: int
    ) -> dict[str, Any]:
        self.action_for(ident, name)
        walk = self.port.paginate(
            name, data, max_items=max_items, max_requests=max_requests, requester=ident.name
        )
        items = walk.items()
        return {"report": walk.report.to_dict(), "items": items}

    # -- tickets ------------------------------------------------------------------------

    def _visible(self, ident: Identity, ticket_id: str) -> Ticket:
        """A ticket the caller may see: any for operators, its own for an agent."""
        ticket = self.port.queue.get(ticket_id)
        if ticket is None or not (ident.is_operator or _same(ticket.requester, ident.name)):
            raise TicketNotFound(f"no ticket {ticket_id}", ticket=ticket_id)
        return ticket

    def ticket(self, ident: Identity, ticket_id: str) -> Ticket:
        return self._visible(ident, ticket_id)

    def status(self, ident: Identity, ticket_id: str) -> dict[str, Any]:
        self._visible(ident, ticket_id)
        return self.port.status(ticket_id)

    def tickets(
        self, ident: Identity, state: str | None, limit: int, after: str | None
    ) -> list[Ticket]:
        """A page of tickets, oldest first; an agent's pages hold only its own."""
        if ident.is_operator:
            return self.port.queue.list(state=state, limit=limit, after=after)
        mine: list[Ticket] = []
        cursor = after
        for _ in range(200):  # bounded scan: 200 pages of the store at most
            page = self.port.queue.list(state=state, limit=500, after=cursor)
            mine += [t for t in page if _same(t.requester, ident.name)]
            if len(mine) >= limit or len(page) < 500:
                break
            cursor = page[-1].id
        return mine[:limit]

    def cancel(self, ident: Identity, ticket_id: str, reason: str | None) -> Ticket:
        self._visible(ident, ticket_id)
        with self._watch(ident, ticket_id):
            return self.port.cancel(ticket_id, by=ident.name, reason=reason)

    def approve(
        self,
        ident: Identity,
        ticket_id: str,
        *,
        reason: str | None,
        fingerprint: str | None,
        run: bool,
    ) -> Ticket:
        self.require_operator(ident, "approve")
        with self._watch(ident, ticket_id):
            return self.port.approve(
                ticket_id, operator=ident.name, reason=reason, fingerprint=fingerprint, run=run
            )

    def reject(self, ident: Identity, ticket_id: str, reason: str) -> Ticket:
        self.require_operator(ident, "reject")
        with self._watch(ident, ticket_id):
            return self.port.reject(ticket_id, reason, operator=ident.name)

    def execute(self, ident: Identity, ticket_id: str) -> Ticket:
        self.require_operator(ident, "run")
        with self._watch(ident, ticket_id):
            return self.port.execute(ticket_id, operator=ident.name)

    def resolve(self, ident: Identity, ticket_id: str, outcome: str, note: str | None) -> Ticket:
        self.require_operator(ident, "resolve")
        with self._watch(ident, ticket_id):
            return self.port.resolve(ticket_id, outcome, operator=ident.name, note=note)

    # -- audit --------------------------------------------------------------------------

    def audit_verify(self, ident: Identity) -> dict[str, Any]:
        self.require_operator(ident, "audit verify")
        return self.port.audit.verify().to_dict()

    def audit_records(self, ident: Identity, tail: int | None) -> list[dict[str, Any]]:
        self.require_operator(ident, "audit read")
        log = self.port.audit
        return log.tail(tail) if tail is not None else log.records()

    # -- the live policy ----------------------------------------------------------------

    def policy_path(self) -> Path:
        return live_port_paths(self.home)[1]

    def policy_text(self, ident: Identity) -> str:
        self.require_operator(ident, "policy show")
        return self.policy_path().read_text("utf-8")

    def set_policy(self, ident: Identity, text: str) -> dict[str, Any]:
        """Replace the live policy (operators only), audited with the diff."""
        self.require_operator(ident, "policy set")
        from harbor_confluence.pipeline.documents import parse_document

        raw = text.encode()
        if len(raw) > MAX_POLICY_BYTES:
            raise InputError(
                "policy set",
                [Violation("policy", "maxLength", f"is over {MAX_POLICY_BYTES} bytes")],
            )
        policy: Policy = policy_from_data(parse_document(text, "policy"), "policy")
        with self._policy_lock:
            old_path = self.policy_path()
            old = old_path.read_text("utf-8") if old_path.is_file() else ""
            target = self.home / "port" / "policy.yaml"
            atomic_write(target, raw)
            self.port.use(policy=policy)
            self._stamp = self._live_stamp()
            self._generation += 1
            self._toolkits.clear()
        diff = list(
            difflib.unified_diff(
                old.splitlines(), text.splitlines(), "live policy", "new policy", lineterm=""
            )
        )
        summary: dict[str, Any] = {
            "before_sha256": hashlib.sha256(old.encode()).hexdigest(),
            "after_sha256": hashlib.sha256(raw).hexdigest(),
            "rules": len(policy.rules),
        }
        self._audit(
            "policy-set",
            operator=ident.name,
            **summary,
            diff="\n".join(diff[:_DIFF_LINES]),
            diff_truncated=len(diff) > _DIFF_LINES,
        )
        return {**summary, "diff": diff}

    # -- tools --------------------------------------------------------------------------

    def toolkit(
        self,
        ident: Identity,
        shape: Shape = "per-action",
        *,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        toolsets: Sequence[str] | None = None,
        kind: str | None = None,
        drafts: bool = False,
    ) -> Toolkit:
        """The tools ``ident`` is offered: its grant, then the policy, then any filters;
        with ``drafts``, the draft tools too (as ``ident``: see the drafts section)."""
        from harbor_confluence.adapters.tools import Toolkit

        from .drafts import NodeDraftDesk

        key = (
            ident.token_id, ident.grant, shape, tuple(include or ()), tuple(exclude or ()),
            tuple(toolsets or ()), kind, self._generation, drafts,
        )  # fmt: skip
        kit = self._toolkits.get(key)
        if kit is None:
            kit = Toolkit(
                AgentView(self, ident),
                include=include,
                exclude=exclude,
                toolsets=toolsets,
                kind=kind,  # type: ignore[arg-type]
                shape=shape,
                requester=ident.name,
                drafts=NodeDraftDesk(self, ident) if drafts else None,
            )
            if len(self._toolkits) > 256:
                self._toolkits.clear()
            self._toolkits[key] = kit
        return kit


_REMOTE_EVENTS = {
    "pending": "held",
    "approved": "approved",
    "succeeded": "executed",
    "failed": "failed",
    "unknown": "unknown",
    "rejected": "rejected",
    "cancelled": "cancelled",
    "expired": "expired",
}


class _Recent(dict[str, str]):
    """A dict that forgets its oldest entries past ``size`` (insertion order)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self._size = size

    def __setitem__(self, key: str, value: str) -> None:
        self.pop(key, None)
        super().__setitem__(key, value)
        while len(self) > self._size:
            del self[next(iter(self))]


class _RateLimit:
    """At most ``per_window`` audit records of refused tokens per window.

    Anyone who can reach the socket can send bad tokens; the log records them without
    letting a flood grow it without bound (the next record says how many were dropped).
    """

    def __init__(self, per_window: int, window: float) -> None:
        self._per_window = per_window
        self._window = window
        self._lock = threading.Lock()
        self._start = 0.0
        self._count = 0
        self._dropped = 0

    def admit(self) -> int | None:
        """None: do not record this one; else how many were dropped before it."""
        now = time.monotonic()
        with self._lock:
            if now - self._start >= self._window:
                self._start, self._count = now, 0
            if self._count >= self._per_window:
                self._dropped += 1
                return None
            self._count += 1
            dropped, self._dropped = self._dropped, 0
            return dropped


class AgentView:
    """The port as one identity may use it: its granted actions, its own tickets.

    This is what a :class:`~harbor_confluence.adapters.tools.Toolkit` is built on inside the node,
    so tool listings, calls and ``get_approval_status`` all go through the grant checks.
    """

    def __init__(self, service: NodeService, ident: Identity) -> None:
        self._service = service
        self._ident = ident
        port = service.port
        self.policy = port.policy
        self.home = port.home
        self.manifest = Manifest.model_construct(
            manifest_version=port.manifest.manifest_version,
            port=port.manifest.port,
            actions=service.granted(ident),
        )

    def call(self, name: str, data: Any = None, *, requester: str | None = None) -> Result:
        return self._service.call(self._ident, name, data)

    async def acall(self, name: str, data: Any = None, *, requester: str | None = None) -> Result:
        import anyio.to_thread

        return await anyio.to_thread.run_sync(self._service.call, self._ident, name, data)

    def status(self, ticket_id: str) -> dict[str, Any]:
        return self._service.status(self._ident, ticket_id)

    async def aclose(self) -> None:
        """Nothing to close: the node owns the port."""


def error_status(exc: HarborError) -> int:
    """The HTTP status a refusal travels with (the exit code rides in the body)."""
    from harbor_confluence.errors import (
        ConfigError,
        ManifestError,
        PolicyDenied,
        ReadFailed,
    )
    from harbor_confluence.review.queue import QueueInputError, QueueRefused

    if isinstance(exc, AuthError):
        return 401
    if isinstance(exc, Forbidden | PolicyDenied):
        return 403
    if isinstance(exc, InputError | ManifestError | QueueInputError):
        return 400
    if isinstance(exc, TicketNotFound):
        return 404
    if isinstance(exc, QueueRefused):
        return 409
    if isinstance(exc, ReadFailed):
        return 502
    if exc.code == "database_unavailable":
        return 503
    if exc.code == "busy":
        return 429
    if isinstance(exc, ConfigError):
        return 422
    return 400
