"""The executor: manifest -> validation -> request -> policy -> transport -> summary.

``Port`` is the one object agent frameworks hold.  It can describe and call actions,
but it has no method that returns a credential or the local configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from harbor_confluence.config import LocalConfig, state_dir
from harbor_confluence.errors import ConfigError, HarborError, PolicyDenied, ReadFailed
from harbor_confluence.paths import default_manifest_path, default_policy_path, live_port_paths
from harbor_confluence.review.audit import AuditLog
from harbor_confluence.review.queue import ReviewQueue, Ticket, default_operator
from harbor_confluence.secrets.auth import Connection
from harbor_confluence.secrets.credentials import Credential

from . import edits, transforms
from .flow import Block, Flow, LoopShare, Send, adrive, drive
from .manifest import Action, Manifest, load_manifest
from .pagination import DEFAULT_MAX_ITEMS, DEFAULT_MAX_REQUESTS, Pagination, paging_mode
from .policy import Decision, Policy, load_policy
from .request import PreparedRequest, RequestBuilder, Target, canonical_json

if TYPE_CHECKING:
    from harbor_confluence.review.service import Reviews
from harbor_confluence.review.vetting import (
    lease_seconds,
    outcome_of,
    stored_result,
    vet_stored_request,
)

from .summary import Result, Summarizer, upstream_message
from .transport import (
    DEFAULT_DEADLINE,
    DEFAULT_MAX_RESPONSE_BYTES,
    HttpClients,
    Limits,
    RetryPolicy,
    SendFailure,
    asend,
    bound_by_deadline,
    hold_sockets,
    send,
)
from .updates import ReadOutcome, ReadPlan, conflict_error
from .validation import InputValidator

T = TypeVar("T")
# Async calls in progress at once per port and loop (and the async pool's connections).
# Why 16: the answers of every call in flight can arrive in one loop iteration, and
# reading each (httpcore, then the summary) is not paced; on loopback 16 kept the loop's
# longest stall near 2 ms where 64 reached 17 ms, with the same throughput.
ASYNC_CONCURRENCY = 16
LOOP_BUDGET = 0.0005  # seconds of one loop iteration the runner's own work may take

__all__ = [
    "ActionInfo",
    "Port",
    "default_manifest_path",
    "default_policy_path",
    "live_port_paths",
]


@dataclass(frozen=True, slots=True)
class ActionInfo:
    """What an agent may know about an action."""

    name: str
    description: str
    method: str
    route: str
    kind: str
    toolset: str
    decision: str
    rule: str
    conditional_rules: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "method": self.method,
            "route": self.route,
            "kind": self.kind,
            "toolset": self.toolset,
            "decision": self.decision,
            "rule": self.rule,
            "conditional_rules": list(self.conditional_rules),
        }


class _Compiled:
    """One action, compiled once: its validator, request builder, transform, summarizer."""

    __slots__ = ("action", "builder", "summarizer", "transform", "validator")

    def __init__(self, action: Action) -> None:
        self.action = action
        self.validator = InputValidator(action)
        self.builder = RequestBuilder(action)
        self.transform = transforms.transform_for(action)
        self.summarizer = Summarizer(action)


class Port(HttpClients):
    """A loaded port: manifest, policy, local config, credential, queue and HTTP clients.

    Every request it sends is bounded: ``timeout`` per network operation (connect at most
    10 s), ``deadline`` seconds of wall clock for the whole request with its retries and
    every byte of its answer, and ``max_response_bytes`` of answer after decompression.
    Going past either limit ends the call as an upstream error (a ``Result`` with
    ``error.type`` ``deadline`` or ``too_large``; an approved write then ends ``unknown``).

    An auto-sent read's audit record is queued (``defer_read_audit``) and written with
    others: by the calling thread once 64 are queued or the oldest is 20 ms old, by a
    flusher thread once the callers go quiet, on an event loop by its next iteration;
    at the latest by :meth:`close` or exit.  So a read's call pays its record's share of
    one write, not a write of its own.  Every write's
    record is on disk before it is sent.

    On an event loop at most ``concurrency`` calls of this port are in progress at once;
    the others wait, doing nothing, in the order they came (see ``flow.LoopShare``).
    """

    def __init__(
        self,
        manifest: Manifest,
        policy: Policy,
        *,
        home: str | Path | None = None,
        base_url: str | None = None,
        credential: Credential | None = None,
        identity_url: str | None = None,
        auth_url: str | None = None,
        requester: str = "python-api",
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        deadline: float = DEFAULT_DEADLINE,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        defer_read_audit: bool = True,
        concurrency: int = ASYNC_CONCURRENCY,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._concurrency = concurrency
        self.manifest = manifest
        self.policy = policy
        self.requester = requester
        self._home = state_dir(home)
        self._config = LocalConfig(self._home)
        # Credential and target: explicit arguments, else the environment, else the
        # hidden store and local config.  Read lazily; never returned by any method.
        self._connection = Connection(
            self._home,
            self._config,
            base_url=base_url,
            credential=credential,
            identity_url=identity_url,
            auth_url=auth_url,
        )
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, 10.0))
        self._retry = retry or RetryPolicy()
        self._limits = Limits(max_response_bytes=max_response_bytes, deadline=deadline)
        self._transport = transport
        self._async_transport = async_transport
        self._defer_read_audit = defer_read_audit
        self._compiled: dict[str, _Compiled] = {}
        self._target: Target | None = None
        self._bound: Credential | None = None
        self._shares: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopShare]
        self._shares = weakref.WeakKeyDictionary()
        self._last_share: LoopShare | None = None  # the share of the loop used last
        self._queue: ReviewQueue | None = None
        self._audit: AuditLog | None = None

    # -- construction -------------------------------------------------------------

    @classmethod
    def load(
        cls,
        manifest: str | Path | Manifest | None = None,
        policy: str | Path | Policy | None = None,
        **kwargs: Any,
    ) -> Port:
        """Load a port: an explicit manifest, else the live one (see ``live_port_paths``).

        Without an explicit policy, the policy follows the manifest: the installed port's
        own policy for the installed port, the packaged policy otherwise.
        """
        live_policy: Path | None = None
        if manifest is None or manifest == "":
            manifest, live_policy = live_port_paths(kwargs.get("home"))
        if not isinstance(manifest, Manifest):
            manifest = load_manifest(manifest)
        if not isinstance(policy, Policy):
            policy = load_policy(policy or live_policy or default_policy_path())
        return cls(manifest, policy, **kwargs)

    def use(self, manifest: Manifest | None = None, policy: Policy | None = None) -> None:
        """Swap in a new live manifest and/or policy (a node picking up an import, a
        publish or ``node policy set``); compiled actions are rebuilt on next use."""
        if manifest is not None:
            self.manifest = manifest
            self._compiled = {}
        if policy is not None:
            self.policy = policy

    def __repr__(self) -> str:
        return (
            f"<Port {self.manifest.port.name} v{self.manifest.manifest_version} "
            f"actions={len(self.manifest.actions)}>"
        )

    # -- describing ---------------------------------------------------------------

    def actions(self) -> list[ActionInfo]:
        out = []
        for a in self.manifest.actions:
            decision, conditional = self.policy.static_decision(a)
            out.append(
                ActionInfo(
                    a.name, a.description, a.method, a.route, a.kind, a.toolset,
                    decision.outcome, decision.rule, tuple(conditional),
                )
            )  # fmt: skip
        return out

    def action(self, name: str) -> Action:
        """The named action; UnknownAction (exit 2, the closest names suggested) if none."""
        try:
            return self.manifest.action(name)
        except KeyError:
            from .validation import UnknownAction

            raise UnknownAction(name, self.manifest.by_name) from None

    def describe(self, name: str) -> dict[str, Any]:
        a = self.action(name)
        decision, conditional = self.policy.static_decision(a)
        return {
            "name": a.name,
            "description": a.description,
            "method": a.method,
            "route": a.route,
            "kind": a.kind,
            "toolset": a.toolset,
            "scopes": a.scopes,
            "decision": decision.outcome,
            "rule": decision.rule,
            "conditional_rules": conditional,
            "parameters": a.parameters.model_dump(exclude_none=True),
            "summary_fields": list(a.summary.fields),
            "paging": paging_mode(a),
        }

    # -- the pipeline ---------------------------------------------------------------
    # Written once, as flows (flow.py): generators that yield the sends and the blocking
    # work they need.  ``call`` drives a flow on this thread, ``acall`` on the event loop.

    def _compiled_for(self, name: str) -> _Compiled:
        c = self._compiled.get(name)
        if c is None:
            c = self._compiled[name] = _Compiled(self.action(name))
        return c

    def target(self) -> Target:
        """The tenant origin (Basic) or the gateway for the token's site (Bearer/OAuth)."""
        if self._target is None:
            self._target = self._connection.target(self.client, self.manifest.port.base_url)
        return self._target

    def _target_flow(self) -> Flow[Target]:
        """The target; finding it may read the config and discover the site (blocking)."""
        if self._target is not None:
            return self._target
        target: Target = yield Block(self.target)
        return target

    def _drive(self, flow: Flow[T]) -> T:
        return drive(flow, self._send)

    async def _adrive(self, make: Callable[..., Flow[T]], *args: Any) -> T:
        # At most ``concurrency`` calls run at once, and their own work takes at most
        # LOOP_BUDGET of each loop iteration (flow.LoopShare).  A thousand calls started
        # together would otherwise each validate and build in the loop's first turn, and
        # then queue inside httpcore's pool, which matches every waiting request against
        # every connection on each change: both stall the event loop.  A call that waits
        # does nothing else first (its flow is made once it is admitted): a thousand of
        # them cost the loop about a microsecond each.
        share = self._share()
        if (wait := share.enter()) is not None:
            try:
                await wait
            except asyncio.CancelledError:
                share.cancelled(wait)
                raise
        try:
            if self._bound is None:  # the first send reads the hidden store: not on the loop
                with contextlib.suppress(HarborError):  # no credential: holding needs none
                    await asyncio.to_thread(self._auth)
            return await adrive(make(*args), self._asend, share)
        finally:
            share.leave()

    def _send(self, prepared: PreparedRequest) -> httpx.Response | SendFailure:
        return send(self.client, prepared, self._auth(), self._retry, self._limits)

    async def _asend(self, prepared: PreparedRequest) -> httpx.Response | SendFailure:
        return await asend(self.aclient, prepared, self._auth(), self._retry, self._limits)

    def _share(self) -> LoopShare:
        loop = asyncio.get_running_loop()
        share = self._last_share
        if share is not None and share.loop is loop:
            return share
        share = self._shares.get(loop)
        if share is None:
            share = self._shares[loop] = LoopShare(loop, self._concurrency, LOOP_BUDGET)
        self._last_share = share
        return share

    def prepare(self, name: str, data: Any = None) -> tuple[PreparedRequest, Decision]:
        """Validate, build and decide, without sending the request itself.

        An update or a composite read first makes the GET it needs (the current
        version, the older page version); that GET goes through validation and the
        policy like any call and must be ``auto``.  The policy then decides over the
        request as it will be sent (``{path, query, body}`` after the runner's part).
        """
        return self._drive(self._prepare_flow(name, data))

    async def aprepare(self, name: str, data: Any = None) -> tuple[PreparedRequest, Decision]:
        """:meth:`prepare` on the event loop (its read and conversions do not block it)."""
        return await self._adrive(self._prepare_flow, name, data)

    def _prepare_flow(self, name: str, data: Any) -> Flow[tuple[PreparedRequest, Decision]]:
        compiled = self._compiled_for(name)
        clean = compiled.validator.validate(data)
        action = compiled.action
        edits.check_before_read(action, clean)  # a cut copy is never written back
        plan = compiled.transform.read_plan(action, clean)
        target = yield from self._target_flow()
        if plan is not None:
            static, conditional = self.policy.static_decision(action)
            denied = static if static.outcome == "deny" and not conditional else None
            denied = denied or self._size_precheck(action, clean)
            if denied is not None:  # no read for a request that cannot be sent
                return self._unbuilt(compiled, target, clean, denied)
        read = (yield from self._read_flow(name, plan)) if plan is not None else ReadOutcome()
        if compiled.transform.heavy_compose(action, clean):  # whole bodies take CPU time
            built: tuple[PreparedRequest, Decision] = yield Block(
                self._compose, (compiled, target, clean, read)
            )
            return built
        return self._compose(compiled, target, clean, read)

    def _size_precheck(self, action: Action, clean: dict[str, Any]) -> Decision | None:
        """A body already over a size cap is denied before the read it would need.

        The runner's part only adds to the agent's body (a version, a title it read)
        and drops ``expected_version``/``version_message``, so what is left is a lower
        bound on the bytes that would be sent.
        """
        body = clean.get("body")
        if not isinstance(body, dict):
            return None
        kept = {k: v for k, v in body.items() if k not in ("expected_version", "version_message")}
        return self.policy.size_precheck(action, len(canonical_json(kept)))

    @staticmethod
    def _unbuilt(
        compiled: _Compiled, target: Target, clean: dict[str, Any], denied: Decision
    ) -> tuple[PreparedRequest, Decision]:
        """A request the policy denies whatever its input: no read, only its route."""
        skeleton = {"path": clean.get("path", {}), "query": clean.get("query", {})}
        prepared = compiled.builder.build(target, skeleton)
        note = {"note": "not built: the policy denies this action whatever the input"}
        return replace(prepared, review=note), denied

    def _compose(
        self, compiled: _Compiled, target: Target, clean: dict[str, Any], read: ReadOutcome
    ) -> tuple[PreparedRequest, Decision]:
        composed = compiled.transform.compose(compiled.action, clean, read)
        prepared = compiled.builder.build(target, composed.request)
        if composed.review or composed.local:
            prepared = replace(
                prepared, review={**prepared.review, **composed.review}, local=composed.local
            )
        decision = self.policy.decide(compiled.action, composed.request, prepared.body)
        return prepared, decision

    # -- reads the runner makes for itself ------------------------------------------------

    def _read_flow(self, caller: str, plan: ReadPlan) -> Flow[ReadOutcome]:
        """A GET the runner needs: validated, built and decided like any call; must be
        ``auto``.  An optional read that fails or is not allowed says why instead."""
        try:
            compiled = self._compiled_for(plan.action)
            if not compiled.action.is_read:  # pragma: no cover - the loader refuses it
                raise ConfigError(f"{caller!r} reads with {plan.action!r}, not a GET action")
            clean = transforms.sent_input(compiled.action, compiled.validator.validate(plan.input))
            target = yield from self._target_flow()
            prepared = compiled.builder.build(target, clean)
            decision = self.policy.decide(compiled.action, clean, None)
            if decision.outcome != "auto":
                raise PolicyDenied(
                    plan.action,
                    decision.rule,
                    f"{caller!r} needs this read first and the policy does not allow it "
                    f"automatically ({decision.outcome})",
                )
            response = yield Send(prepared)
            return ReadOutcome(_read_json(caller, plan.action, response))
        except (PolicyDenied, ReadFailed) as exc:
            if plan.required:
                raise
            return ReadOutcome(problem=str(exc), failed=isinstance(exc, ReadFailed))

    # -- after the answer -----------------------------------------------------------------

    def _finish_flow(
        self, compiled: _Compiled, prepared: PreparedRequest, response: httpx.Response | SendFailure
    ) -> Flow[Result]:
        """Summarise; a conflict learns the current version and its author; the
        transform adds what the summary alone cannot say (a diff, a body, a task's end)."""
        result = compiled.transform.summarize(compiled.summarizer, prepared, response)
        action = compiled.action
        if result.ok and not isinstance(response, SendFailure):
            return (yield from compiled.transform.finish(
                self._read_flow, action, prepared, response, result
            ))  # fmt: skip
        error = result.error or {}
        if error.get("type") != "conflict":
            return result
        target = yield from self._target_flow()
        values = compiled.builder.path_values(prepared.url, target)
        plan = compiled.transform.conflict_read(action, values) if values is not None else None
        if plan is None:
            return result
        current = (yield from self._read_flow(action.name, plan)).data
        error = conflict_error(error, action.update, error.get("sent_version"), current)
        return replace(result, error=error)

    def paginate(
        self,
        name: str,
        data: Any = None,
        *,
        max_items: int = DEFAULT_MAX_ITEMS,
        max_requests: int = DEFAULT_MAX_REQUESTS,
        requester: str | None = None,
    ) -> Pagination:
        """Iterate every item of a paged listing, each page an ordinary (policy-checked) call.

        Stops at ``max_items`` items or ``max_requests`` requests (hard limits 10,000 and
        200); afterwards ``.report`` says whether the walk was complete or stopped at a cap.
        The same object iterates with ``async for``, each page an :meth:`acall`.
        """
        return Pagination(
            lambda action, page: self.call(action, page, requester=requester),
            self.action(name),
            data,
            max_items=max_items,
            max_requests=max_requests,
            acall=lambda action, page: self.acall(action, page, requester=requester),
        )

    apaginate = paginate  # ``async for item in port.apaginate(...)``: the same walk

    def _call_flow(self, name: str, data: Any, requester: str | None) -> Flow[Result]:
        """Deny (audited), hold (queued and audited) or send; then summarise and audit."""
        prepared, decision = yield from self._prepare_flow(name, data)
        who = requester or self.requester
        if decision.outcome == "deny":
            yield Block(self._audit_denied, (name, prepared, decision, who))
            raise PolicyDenied(name, decision.rule, decision.reason)
        if decision.outcome == "require_approval":
            ticket = yield Block(self._hold, (prepared, decision, who))
            return _held(ticket)
        write = prepared.method != "GET"
        if write:  # a write's intent is on disk before the write leaves
            yield Block(self._audit_intent, (prepared, decision, who))
        response = yield Send(prepared)
        result = yield from self._finish_flow(self._compiled_for(name), prepared, response)
        if write:  # fsynced: run where it cannot stall an event loop
            audited: Result = yield Block(self._audit_sent, (prepared, decision, result, who))
            return audited
        return self._audit_sent(prepared, decision, result, who)  # a read: queued, no fsync

    def _audit_denied(
        self, name: str, prepared: PreparedRequest, decision: Decision, who: str
    ) -> None:
        self.audit.append(
            "denied", action=name, rule=decision.rule, reason=decision.reason,
            fingerprint=prepared.fingerprint, requester=who,
        )  # fmt: skip

    def _hold(self, prepared: PreparedRequest, decision: Decision, who: str) -> Ticket:
        return self.queue.hold(
            prepared,
            port=self.manifest.port.name,
            manifest_version=self.manifest.manifest_version,
            rule=decision.rule,
            requester=who,
            ttl_seconds=decision.ttl_seconds,
            approvers=decision.approvers,
            forbid_self_approval=decision.forbid_self_approval,
        )

    def _audit_intent(self, prepared: PreparedRequest, decision: Decision, who: str) -> None:
        """Before an auto write is sent: its record, fsynced (a crash after the send
        cannot leave a write the log never saw)."""
        self.audit.append(
            "auto-sending", action=prepared.action, rule=decision.rule,
            fingerprint=prepared.fingerprint, method=prepared.method, requester=who,
        )  # fmt: skip

    def _audit_sent(
        self, prepared: PreparedRequest, decision: Decision, result: Result, requester: str
    ) -> Result:
        """Record an auto-sent call.  The request already left: a failing log must not
        hide its answer (the agent could retry a write), so the failure rides on the result.
        """
        try:
            self.audit.append(
                "auto-sent", durable=prepared.method != "GET", action=prepared.action,
                rule=decision.rule, fingerprint=prepared.fingerprint, method=prepared.method,
                status=result.status, ok=result.ok, requester=requester,
            )  # fmt: skip
        except (OSError, ValueError, HarborError) as exc:
            return replace(
                result,
                extra={**result.extra, "audit_error": f"the audit record was not written: {exc}"},
            )
        return result

    def call(self, name: str, data: Any = None, *, requester: str | None = None) -> Result:
        """Run one action.  Raises InputError, PolicyDenied or ConfigError before sending."""
        return self._drive(self._call_flow(name, data, requester))

    async def acall(self, name: str, data: Any = None, *, requester: str | None = None) -> Result:
        """:meth:`call` on the event loop: sends are awaited; the queue, the audit log's
        fsyncs and whole-body conversions run in worker threads."""
        return await self._adrive(self._call_flow, name, data, requester)

    def ticket(self, ticket_id: str) -> Ticket | None:
        """A held request, as the operator sees it (never with a credential)."""
        return self.queue.get(ticket_id)

    def reviews(self, operator: str | None = None) -> Reviews:
        """The operator's side of this port's queue, as ``operator`` (asserted here:
        embedded mode trusts its user; a node proves it with a token)."""
        from harbor_confluence.review.service import Reviews

        return Reviews(self.queue, operator or default_operator(), lambda: self)

    # -- the review queue -------------------------------------------------------------
    # Operators approve, reject and reconcile; agents poll status() and may cancel.

    def status(self, ticket_id: str) -> dict[str, Any]:
        """What an agent polls: state, and the result, the rejection reason or the expiry."""
        return self.queue.status(ticket_id)

    def approve(
        self,
        ticket_id: str,
        *,
        operator: str | None = None,
        reason: str | None = None,
        fingerprint: str | None = None,
        run: bool = True,
    ) -> Ticket:
        """Approve a held request; with enough approvals it runs at once unless ``run=False``.

        ``operator`` defaults to ``$HARBOR_OPERATOR`` or the OS user.  ``fingerprint`` (a
        prefix of 12+ characters) binds the approval to the request the operator reviewed.
        """
        who = operator or default_operator()
        if run:
            self._auth()  # a runner that cannot send (no target, no credential) refuses first
        ticket = self.queue.approve(ticket_id, who, reason=reason, fingerprint=fingerprint)
        if run and ticket.state == "approved":
            return self.execute(ticket_id, operator=who)
        return ticket

    def reject(self, ticket_id: str, reason: str, *, operator: str | None = None) -> Ticket:
        """Refuse a held request (a reason is required; the agent sees it)."""
        return self.queue.reject(ticket_id, operator or default_operator(), reason)

    def cancel(self, ticket_id: str, *, by: str | None = None, reason: str | None = None) -> Ticket:
        """Withdraw a request before it runs (by default as this port's requester)."""
        return self.queue.cancel(ticket_id, by or self.requester, reason)

    def resolve(
        self,
        ticket_id: str,
        outcome: str,
        *,
        operator: str | None = None,
        note: str | None = None,
    ) -> Ticket:
        """Reconcile an ``unknown`` ticket after checking Confluence by hand."""
        return self.queue.resolve(ticket_id, operator or default_operator(), outcome, note)

    def execute(self, ticket_id: str, *, operator: str | None = None) -> Ticket:
        """Send an approved ticket's stored request, exactly once, and record the outcome.

        Refuses (QueueRefused, nothing sent) unless the ticket is approved, unexpired and
        its stored request is still the one every approval was bound to.
        """
        return self._drive(self._execute_flow(ticket_id, operator))

    async def aexecute(self, ticket_id: str, *, operator: str | None = None) -> Ticket:
        """:meth:`execute` on the event loop (the queue's claim and finish in threads)."""
        return await self._adrive(self._execute_flow, ticket_id, operator)

    def _execute_flow(self, ticket_id: str, operator: str | None) -> Flow[Ticket]:
        who = operator or default_operator()
        target = yield from self._target_flow()
        yield Block(self._auth)  # resolved before the claim: nothing may fail between them

        def vet(t: Ticket) -> str | None:
            problem = vet_stored_request(t, self.manifest, target)
            if problem is None:
                self._compiled_for(t.action)
            return problem

        lease = lease_seconds(self._limits)
        ticket: Ticket = yield Block(
            functools.partial(self.queue.claim, ticket_id, who, vet=vet, lease_seconds=lease)
        )
        compiled = self._compiled_for(ticket.action)
        prepared = ticket.prepared()
        try:
            response = yield Send(prepared)
        except BaseException as exc:
            yield Block(self.queue.finish, (ticket, "unknown", {
                "ok": False, "action": ticket.action, "ticket": ticket.id, "state": "unknown",
                "error": {"type": "interrupted", "message": f"{type(exc).__name__} while sending"},
            }))  # fmt: skip
            raise
        state = outcome_of(response)
        status = None if isinstance(response, SendFailure) else response.status_code
        try:
            summary = (yield from self._finish_flow(compiled, prepared, response)).to_dict()
        except Exception as exc:  # the answer is known even if it cannot be summarised
            summary = {"ok": state == "succeeded", "action": ticket.action, "status": status,
                       "error": {"type": "summary", "message": str(exc)}}  # fmt: skip
        stored = stored_result(response, summary, state, ticket.id)
        finished: Ticket = yield Block(
            functools.partial(self.queue.finish, ticket, state, stored, status=status)
        )
        return finished

    # -- resources --------------------------------------------------------------------

    def close(self) -> None:
        """Close the HTTP clients; every audit record queued so far is written first."""
        if self._audit is not None:
            self._audit.flush()
        super().close()

    async def aclose(self) -> None:
        if self._audit is not None:
            await asyncio.to_thread(self._audit.flush)
        await super().aclose()

    @property
    def home(self) -> Path:
        return self._home

    @property
    def queue(self) -> ReviewQueue:
        if self._queue is None:
            self._queue = ReviewQueue.for_home(self._home, audit=self.audit)
        return self._queue

    @property
    def audit(self) -> AuditLog:
        """The hash-chained log of every decision (``audit.jsonl`` in the state dir)."""
        if self._audit is None:
            self._audit = AuditLog.for_home(self._home, defer_reads=self._defer_read_audit)
        return self._audit

    def _auth(self) -> Credential | None:
        if self._bound is None:
            self._bound = self._connection.credential().bind(self.target().origin)
        return self._bound

    def _new_client(self) -> httpx.Client:
        client = httpx.Client(
            timeout=self._timeout, follow_redirects=False, transport=self._transport
        )
        return bound_by_deadline(client)  # every socket wait ends at the request's deadline

    def _new_aclient(self) -> httpx.AsyncClient:
        return hold_sockets(
            httpx.AsyncClient(
                timeout=self._timeout,
                follow_redirects=False,
                transport=self._async_transport,
                limits=httpx.Limits(
                    max_connections=self._concurrency, max_keepalive_connections=self._concurrency
                ),
            )
        )


def _read_json(caller: str, name: str, response: httpx.Response | SendFailure) -> Any:
    if isinstance(response, SendFailure):
        raise ReadFailed(caller, name, response.message)
    if response.status_code != 200:
        raise ReadFailed(caller, name, upstream_message(response), response.status_code)
    try:
        return response.json()
    except ValueError:
        raise ReadFailed(caller, name, "the answer is not JSON", 200) from None


def _held(ticket: Ticket) -> Result:
    extra: dict[str, Any] = {
        "state": ticket.state,
        "expires_at": ticket.to_dict()["expires_at"],
        "approvals_required": ticket.approvals_required,
        "message": (
            f"held for operator approval (rule {ticket.rule!r}); nothing was sent. "
            f"Check with: harbor-confluence queue status {ticket.id}"
        ),
    }
    losses = ticket.review.get("losses") if isinstance(ticket.review, dict) else None
    if isinstance(losses, list) and losses:
        # The agent should know what its write deletes before an operator tells it.
        extra["losses"] = losses
        extra["message"] += (
            f". The operator is shown that this write removes content: {'; '.join(losses)}"
        )
    return Result(
        ok=False,
        action=ticket.action,
        outcome="held",
        ticket=ticket.id,
        rule=ticket.rule,
        extra=extra,
    )
