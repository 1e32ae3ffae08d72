"""The executor: manifest -> validation -> request -> policy -> transport -> summary.

``Port`` is the one object agent frameworks hold.  It can describe and call actions,
but it has no method that returns a credential or the local configuration.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from .config import LocalConfig, state_dir
from .credentials import Credential, credential_from_env
from .errors import ConfigError, PolicyDenied
from .manifest import Action, Manifest, load_manifest
from .policy import Decision, Policy, load_policy
from .queue import ReviewQueue, Ticket
from .request import PreparedRequest, RequestBuilder, Target
from .summary import Result, Summarizer
from .transport import RetryPolicy, asend, send
from .validation import InputValidator

__all__ = ["ActionInfo", "Port", "default_manifest_path", "default_policy_path"]

_PACKAGE = Path(__file__).resolve().parent


def _data_file(kind: str, name: str) -> Path:
    """Packaged copy in a wheel, else the checkout's top-level folder."""
    for base in (_PACKAGE / "_data" / kind, _PACKAGE.parent / kind):
        candidate = base / name
        if candidate.is_file():
            return candidate
    raise ConfigError(f"cannot find the packaged {kind}/{name}")


def default_manifest_path() -> Path:
    return _data_file("manifests", "confluence-cloud.yaml")


def default_policy_path() -> Path:
    return _data_file("policies", "default.yaml")


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
    __slots__ = ("action", "builder", "summarizer", "validator")

    def __init__(self, action: Action) -> None:
        self.action = action
        self.validator = InputValidator(action)
        self.builder = RequestBuilder(action)
        self.summarizer = Summarizer(action)


class Port:
    """A loaded port: manifest, policy, local config, credential, queue and HTTP clients."""

    def __init__(
        self,
        manifest: Manifest,
        policy: Policy,
        *,
        home: str | Path | None = None,
        base_url: str | None = None,
        credential: Credential | None = None,
        requester: str = "python-api",
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.manifest = manifest
        self.policy = policy
        self.requester = requester
        self._home = state_dir(home)
        self._config = LocalConfig(self._home)
        self._base_url = base_url
        self._credential = credential
        self._credential_loaded = credential is not None
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, 10.0))
        self._retry = retry or RetryPolicy()
        self._transport = transport
        self._async_transport = async_transport
        self._compiled: dict[str, _Compiled] = {}
        self._target: Target | None = None
        self._queue: ReviewQueue | None = None
        self._client: httpx.Client | None = None
        self._aclient: httpx.AsyncClient | None = None

    # -- construction -------------------------------------------------------------

    @classmethod
    def load(
        cls,
        manifest: str | Path | Manifest | None = None,
        policy: str | Path | Policy | None = None,
        **kwargs: Any,
    ) -> Port:
        """Load a port from files (defaults: the packaged Confluence manifest and policy)."""
        if not isinstance(manifest, Manifest):
            manifest = load_manifest(manifest or default_manifest_path())
        if not isinstance(policy, Policy):
            policy = load_policy(policy or default_policy_path())
        return cls(manifest, policy, **kwargs)

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
        try:
            return self.manifest.action(name)
        except KeyError:
            known = ", ".join(sorted(self.manifest.by_name))
            raise ConfigError(f"unknown action {name!r}; known actions: {known}") from None

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
        }

    # -- the pipeline ---------------------------------------------------------------

    def _compiled_for(self, name: str) -> _Compiled:
        c = self._compiled.get(name)
        if c is None:
            c = self._compiled[name] = _Compiled(self.action(name))
        return c

    def target(self) -> Target:
        if self._target is None:
            base = (
                self._base_url
                or os.environ.get("CONFLUENCE_URL")
                or self._config.get("base-url")
                or self.manifest.port.base_url
            )
            self._target = Target.parse(str(base))
        return self._target

    def prepare(self, name: str, data: Any = None) -> tuple[PreparedRequest, Decision]:
        """Validate, build and decide, without sending anything."""
        compiled = self._compiled_for(name)
        clean = compiled.validator.validate(data)
        prepared = compiled.builder.build(self.target(), clean)
        decision = self.policy.decide(compiled.action, clean, prepared.body)
        return prepared, decision

    def _gate(
        self, name: str, data: Any, requester: str | None
    ) -> tuple[_Compiled, PreparedRequest] | Result:
        prepared, decision = self.prepare(name, data)
        if decision.outcome == "deny":
            raise PolicyDenied(name, decision.rule, decision.reason)
        if decision.outcome == "require_approval":
            ticket = self.queue.hold(
                prepared,
                port=self.manifest.port.name,
                manifest_version=self.manifest.manifest_version,
                rule=decision.rule,
                requester=requester or self.requester,
                ttl_seconds=decision.ttl_seconds,
            )
            return _held(ticket)
        return self._compiled_for(name), prepared

    def call(self, name: str, data: Any = None, *, requester: str | None = None) -> Result:
        """Run one action.  Raises InputError, PolicyDenied or ConfigError before sending."""
        gated = self._gate(name, data, requester)
        if isinstance(gated, Result):
            return gated
        compiled, prepared = gated
        response = send(self.client, prepared, self._auth(), self._retry)
        return compiled.summarizer.result(response)

    async def acall(self, name: str, data: Any = None, *, requester: str | None = None) -> Result:
        """Async twin of :meth:`call`."""
        gated = self._gate(name, data, requester)
        if isinstance(gated, Result):
            return gated
        compiled, prepared = gated
        response = await asend(self.aclient, prepared, self._auth(), self._retry)
        return compiled.summarizer.result(response)

    def ticket(self, ticket_id: str) -> Ticket | None:
        """A held request, as the operator sees it (never with a credential)."""
        return self.queue.get(ticket_id)

    # -- resources --------------------------------------------------------------------

    @property
    def home(self) -> Path:
        return self._home

    @property
    def queue(self) -> ReviewQueue:
        if self._queue is None:
            self._queue = ReviewQueue(self._home / "queue.sqlite3")
        return self._queue

    def _auth(self) -> Credential | None:
        if not self._credential_loaded:
            self._credential = credential_from_env()
            self._credential_loaded = True
        if self._credential is None:
            return None
        return self._credential.bind(self.target().origin)

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                timeout=self._timeout, follow_redirects=False, transport=self._transport
            )
        return self._client

    @property
    def aclient(self) -> httpx.AsyncClient:
        if self._aclient is None:
            self._aclient = httpx.AsyncClient(
                timeout=self._timeout,
                follow_redirects=False,
                transport=self._async_transport,
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
            )
        return self._aclient

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        if self._aclient is not None:
            await self._aclient.aclose()
            self._aclient = None
        self.close()

    def __enter__(self) -> Port:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> Port:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def _held(ticket: Ticket) -> Result:
    return Result(
        ok=False,
        action=ticket.action,
        outcome="held",
        ticket=ticket.id,
        rule=ticket.rule,
        extra={
            "state": ticket.state,
            "expires_at": ticket.to_dict()["expires_at"],
            "message": (
                f"held for operator approval (rule {ticket.rule!r}); nothing was sent. "
                f"Check with: harbor-confluence queue status {ticket.id}"
            ),
        },
    )
