"""Drafts: actions proposed for the live port, checked, tried, and published by someone else.

Agents may propose fixed or tightly bounded routes; they never publish them.  A draft is
a file under ``port/drafts/`` and is never part of the live manifest, so it cannot be
called as an action.  The lifecycle:

    propose -> validate -> (test) -> request-publish -> publish (by a different identity)

``validate`` runs the manifest loader's checks on the live port with the draft added, then
``speccheck.check_action`` against Atlassian's OpenAPI document.  ``test`` shows the request
and the live policy's decision; ``--send`` sends a validated read only when that decision is
``auto``.  ``publish`` re-validates, adds the action to the live port with a minor version
bump (its defaultPolicy only a proposal, see ``catalog.plan_policy``), and records it in the
audit log.

Identities are asserted (``--as``, ``$HARBOR_OPERATOR``, the OS user), not authenticated:
the distinct-identity rule stops accidental self-publishing and makes any other claim an
explicit, audited statement.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from harbor_confluence.config import atomic_write
from harbor_confluence.errors import (
    EXIT_DENIED,
    EXIT_HELD,
    EXIT_INVALID,
    HarborError,
    ManifestError,
    PolicyDenied,
)
from harbor_confluence.pipeline.documents import find_credentials, load_document
from harbor_confluence.pipeline.manifest import (
    Action,
    Manifest,
    Name,
    _describe,
    load_manifest,
    manifest_from_data,
)
from harbor_confluence.pipeline.policy import load_policy

from .dock import (
    bump_minor,
    install,
    installed_manifest,
    installed_paths,
    manifest_data,
    plan_policy,
    port_lock,
    record_audit,
)
from .speccheck import api_version_for, check_action, load_openapi

__all__ = [
    "AgentDrafts",
    "Draft",
    "DraftDenied",
    "DraftError",
    "DraftNeedsApproval",
    "agent_test_view",
    "get_draft",
    "list_drafts",
    "propose",
    "propose_definition",
    "publish",
    "request_publish",
    "try_draft",
    "validate",
]

DraftStatus = Literal["proposed", "publish_requested", "published"]
_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")  # manifest.Name, checked before any path


class DraftError(HarborError):
    """A draft operation was refused; nothing changed."""

    code = "draft"
    exit_code = EXIT_INVALID


class DraftDenied(DraftError):
    """The lifecycle forbids this step for this identity (self-publish)."""

    code = "draft_denied"
    exit_code = EXIT_DENIED


class DraftNeedsApproval(DraftError):
    """The live policy would hold this request for approval; a draft test never queues one."""

    code = "draft_needs_approval"
    exit_code = EXIT_HELD


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class Validation(_Model):
    ok: bool
    problems: list[str]
    digest: str
    at: str


class Stamp(_Model):
    by: str
    at: str
    digest: str
    version: str | None = None


class Draft(_Model):
    """One proposed action and where it is in the lifecycle."""

    name: Name
    action: Action
    status: DraftStatus = "proposed"
    proposer: str
    proposed_at: str
    source: str | None = None
    validation: Validation | None = None
    publish_request: Stamp | None = None
    published: Stamp | None = None

    @property
    def digest(self) -> str:
        """SHA-256 of the action: requests and validations are bound to this exact text."""
        data = self.action.model_dump(mode="json", by_alias=True)
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        out = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        out["digest"] = self.digest
        return out


# -- storage ------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _draft_path(home: Path, name: str) -> Path:
    if not _NAME.fullmatch(name):
        raise DraftError(
            f"{name!r} is not a draft name (lower-case words joined by '-', e.g. get-space)"
        )
    return installed_paths(home).drafts / f"{name}.json"


def _save(home: Path, draft: Draft) -> None:
    text = json.dumps(draft.model_dump(mode="json", by_alias=True), indent=2, ensure_ascii=False)
    atomic_write(_draft_path(home, draft.name), text.encode() + b"\n")


def get_draft(name: str, home: Path) -> Draft:
    path = _draft_path(home, name)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        known = ", ".join(d.name for d in list_drafts(home)) or "none"
        raise DraftError(f"no draft {name!r}; drafts: {known}") from None
    try:
        return Draft.model_validate_json(raw)
    except ValidationError as exc:
        raise ManifestError(str(path), _describe(exc, {})) from None


def list_drafts(home: Path) -> list[Draft]:
    folder = installed_paths(home).drafts
    if not folder.is_dir():
        return []
    return [get_draft(p.stem, home) for p in sorted(folder.glob("*.json"))]


def _live(home: Path) -> Manifest:
    from harbor_confluence.pipeline.executor import live_port_paths

    return load_manifest(live_port_paths(home)[0])


# -- propose ------------------------------------------------------------------------------


def propose(path: str | Path, home: Path, proposer: str, *, replace: bool = False) -> Draft:
    """Store an action definition (YAML/JSON) as a draft, checked as the manifest loader
    checks an action; spec checks come with ``validate``."""
    return propose_definition(load_document(path), home, proposer, replace=replace,
                              source=str(path))  # fmt: skip


def propose_definition(
    data: Any,
    home: Path,
    proposer: str,
    *,
    replace: bool = False,
    source: str = "definition",
    limit: int | None = None,
) -> Draft:
    """Store an action definition given as data (an agent's tool call, a node request).

    ``limit`` caps the drafts one proposer may have waiting (not yet published), so a
    runaway or stolen agent cannot fill the state directory."""
    creds = list(find_credentials(data))
    if creds:
        raise ManifestError(source, [f"credential refused at {c}" for c in creds])
    if not isinstance(data, dict):
        raise ManifestError(source, ["a draft is one action definition (a mapping)"])
    try:
        action = Action.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(source, _describe(exc, data)) from None
    if action.transform is not None:
        raise ManifestError(
            source,
            [
                "field transform: drafts cannot use code-defined transforms; their input is "
                "not what is sent, so it cannot be checked against Atlassian's document"
            ],
        )
    if action.name in _live(home).by_name:
        raise DraftError(f"{action.name!r} is already a live action; propose a new name")
    target = _draft_path(home, action.name)
    if limit is not None and not target.exists():
        waiting = [
            d for d in list_drafts(home) if d.status != "published" and _same(d.proposer, proposer)
        ]
        if len(waiting) >= limit:
            raise DraftError(
                f"{proposer} already has {len(waiting)} drafts waiting (the limit is {limit}); "
                "replace one or wait for an operator"
            )
    if target.exists():
        existing = get_draft(action.name, home)
        if not replace:
            raise DraftError(
                f"a draft {action.name!r} already exists (proposed by {existing.proposer}, "
                f"{existing.status}); pass --replace to replace it"
            )
        if existing.proposer != proposer:
            raise DraftDenied(
                f"draft {action.name!r} was proposed by {existing.proposer}; only they "
                "can replace it"
            )
    draft = Draft(
        name=action.name,
        action=action,
        proposer=proposer,
        proposed_at=_now(),
        source=source,
    )
    _save(home, draft)
    record_audit(
        home, "draft-proposed", draft=draft.name, proposer=proposer, digest=draft.digest,
        method=action.method, route=action.route,
    )  # fmt: skip
    return draft


# -- validate -----------------------------------------------------------------------------


def _problems(draft: Draft, home: Path) -> list[str]:
    """The manifest loader's checks on live+draft, then the OpenAPI and deny-list checks."""
    live = _live(home)
    problems: list[str] = []
    if draft.name in live.by_name:
        problems.append(f"{draft.name!r} is already a live action")
    else:
        candidate = manifest_data(live)
        candidate["actions"].append(draft.action.model_dump(mode="json", by_alias=True))
        try:
            manifest_from_data(candidate, f"live port + draft {draft.name}")
        except ManifestError as exc:
            problems.extend(exc.problems)
    route = draft.action.route
    v2 = load_openapi("v2")
    v1 = load_openapi("v1") if api_version_for(route) == "v1" else None
    problems.extend(check_action(draft.action, v2, v1))
    return problems


def validate(name: str, home: Path) -> Draft:
    """Check a draft and record the result (``validation.ok`` and its problems)."""
    draft = get_draft(name, home)
    problems = _problems(draft, home)
    draft.validation = Validation(ok=not problems, problems=problems, digest=draft.digest,
                                  at=_now())  # fmt: skip
    _save(home, draft)
    return draft


# -- test ---------------------------------------------------------------------------------


def try_draft(
    name: str, home: Path, data: Any, *, send: bool = False, requester: str = "drafts-test"
) -> dict[str, Any]:
    """The exact request a draft would send (method, URL, body, fingerprint), and what the
    live policy decides for it, evaluated as if the draft were a live action.

    ``send`` sends it only when that decision is ``auto`` and the draft is a read that
    passes validation; the send itself goes through the same live policy.  A denial raises
    ``PolicyDenied`` (exit 3, naming the rule), a request the policy would hold raises
    ``DraftNeedsApproval`` (exit 4: a test never creates a ticket), a write ``DraftError``;
    nothing is sent in any of these cases.
    """
    from harbor_confluence.pipeline.executor import Port, live_port_paths

    draft = get_draft(name, home)
    manifest_path, policy_path = live_port_paths(home)
    live = load_manifest(manifest_path)
    sandbox = Manifest(
        manifest_version=live.manifest_version,
        port=live.port,
        actions=[a for a in live.actions if a.name != name] + [draft.action],
    )
    policy = load_policy(policy_path)  # the live policy: the installed one, else packaged
    with Port(sandbox, policy, home=home, requester=requester) as port:
        prepared, decision = port.prepare(name, data)
    out: dict[str, Any] = {
        "draft": name,
        "sent": False,
        "request": prepared.to_dict(),
        "live_decision": {
            "decision": decision.outcome,
            "rule": decision.rule,
            "policy": str(policy_path),
        },
    }
    if not send:
        return out
    problems = _problems(draft, home)
    if problems:
        raise DraftError(
            f"draft {name!r} does not pass validation, so it is not sent:\n  "
            + "\n  ".join(problems)
        )
    if decision.outcome == "deny":
        raise PolicyDenied(name, decision.rule, decision.reason)
    if decision.outcome == "require_approval":
        raise DraftNeedsApproval(
            f"draft {name!r}: the live policy holds this request for approval (rule "
            f"{decision.rule!r}); a dry run cannot send a request that needs approval and "
            "queues nothing. Publish the draft and run it to ask an operator. Nothing was sent."
        )
    if not draft.action.is_read:
        raise DraftError(
            f"drafts test --send only sends reads; {draft.action.method} {draft.action.route} "
            "is a write: publish it to run it under the live policy"
        )
    with Port(sandbox, policy, home=home, requester=requester) as port:
        result = port.call(name, data, requester=requester)
    out["sent"] = result.outcome == "sent"
    out["result"] = result.to_dict()
    return out


# -- request and publish ------------------------------------------------------------------


def request_publish(name: str, home: Path, requester: str) -> Draft:
    """Ask an operator to publish; needs a passing validation of the draft as it is now."""
    draft = get_draft(name, home)
    if draft.status == "published":
        raise DraftError(f"draft {name!r} is already published")
    check = draft.validation
    if check is None or check.digest != draft.digest:
        raise DraftError(f"draft {name!r} has not been validated as it is now; run: "
                         f"harbor-confluence drafts validate {name}")  # fmt: skip
    if not check.ok:
        raise DraftError(
            f"draft {name!r} failed validation; fix it first:\n  " + "\n  ".join(check.problems)
        )
    draft.status = "publish_requested"
    draft.publish_request = Stamp(by=requester, at=_now(), digest=draft.digest)
    _save(home, draft)
    record_audit(home, "draft-publish-requested", draft=name, by=requester, digest=draft.digest)
    return draft


def _same(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def publish(
    name: str, home: Path, operator: str, *, accept_proposals: bool = False
) -> dict[str, Any]:
    """Add a requested, validated draft to the live port (minor version bump), by an
    operator who is neither its proposer nor the one who asked for publication.

    The draft's defaultPolicy is a proposal: without ``accept_proposals`` a new read is
    denied and a new write held; accepted, a write is still never automatic, and the live
    policy's rules are kept as they are (see ``catalog.plan_policy``)."""
    with port_lock(home):
        draft = get_draft(name, home)
        if draft.status == "published":
            version = draft.published.version if draft.published else "?"
            raise DraftError(f"draft {name!r} is already published (in {version})")
        request = draft.publish_request
        if draft.status != "publish_requested" or request is None:
            raise DraftError(f"draft {name!r} has no publish request; first run: "
                             f"harbor-confluence drafts request-publish {name}")  # fmt: skip
        for role, who in (("proposed", draft.proposer), ("requested publication of", request.by)):
            if _same(operator, who):
                raise DraftDenied(
                    f"self-publish refused: {operator} {role} draft {name!r}; a different "
                    "operator must publish it (drafts publish NAME --as OPERATOR)"
                )
        if request.digest != draft.digest:
            raise DraftError(
                f"draft {name!r} changed after publication was requested; validate and "
                "request publication again"
            )
        problems = _problems(draft, home)
        if problems:
            raise DraftError(
                f"draft {name!r} no longer passes validation:\n  " + "\n  ".join(problems)
            )
        paths = installed_paths(home)
        current = installed_manifest(paths)
        base = current if current is not None else _live(home)
        new = manifest_from_data(
            {
                **manifest_data(base),
                "manifestVersion": bump_minor(base.manifest_version),
                "actions": [
                    *manifest_data(base)["actions"],
                    draft.action.model_dump(mode="json", by_alias=True),
                ],
            },
            f"live port + draft {name}",
        )
        policy = plan_policy(new, paths, live=base, accept_proposals=accept_proposals,
                             origin=f"drafts publish {name}")  # fmt: skip
        install(new, policy, paths)
        draft.status = "published"
        draft.published = Stamp(by=operator, at=_now(), digest=draft.digest,
                                version=new.manifest_version)  # fmt: skip
        _save(home, draft)
    summary = {
        "draft": name,
        "published_by": operator,
        "proposer": draft.proposer,
        "port": new.port.name,
        "from": base.manifest_version,
        "to": new.manifest_version,
        "bootstrapped_from_packaged": current is None,
        "accept_proposals": accept_proposals,
        **policy.to_dict(),
    }
    record_audit(home, "draft-published", digest=draft.digest, **summary)
    return summary


# -- drafts as an agent's tools (adapters/tools.py, the MCP server, a node) ------------------
#
# What an agent may do with drafts: see the live actions and the drafts, propose, validate,
# test (a dry run, or a send that the live policy decides) and request publication.  It
# never publishes: that stays an operator's act (``drafts publish`` on the host).  What it
# is shown never carries the tenant URL or state-directory paths.

AGENT_DRAFT_LIMIT = 25
MAX_DEFINITION_BYTES = 64 * 1024


def _origin_free(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def agent_test_view(out: dict[str, Any]) -> dict[str, Any]:
    """``try_draft``'s answer as an agent sees it: the request's path (not the tenant URL),
    body and fingerprint, and the live decision without the policy file's path."""
    req = out["request"]
    request: dict[str, Any] = {"method": req["method"], "path": _origin_free(req["url"])}
    for key in ("body", "body_bytes", "body_sha256", "fingerprint"):
        if key in req:
            request[key] = req[key]
    live = out["live_decision"]
    view: dict[str, Any] = {
        "draft": out["draft"],
        "sent": out["sent"],
        "request": request,
        "live_decision": {"decision": live["decision"], "rule": live["rule"]},
    }
    if "result" in out:
        view["result"] = out["result"]
    return view


def draft_summary(d: Draft) -> dict[str, Any]:
    """One draft in a listing: name, status, route, proposer, and its check."""
    check = "-" if d.validation is None else ("ok" if d.validation.ok else "failed")
    if d.validation is not None and d.validation.digest != d.digest:
        check = "stale"
    return {
        "name": d.name,
        "status": d.status,
        "method": d.action.method,
        "route": d.action.route,
        "kind": d.action.kind,
        "proposer": d.proposer,
        "validation": check,
    }


def agent_draft_view(d: Draft) -> dict[str, Any]:
    """A draft in full, without where its file came from."""
    out = d.to_dict()
    out.pop("source", None)
    return out


def definition_size_problem(definition: Any) -> str | None:
    try:
        size = len(json.dumps(definition, ensure_ascii=False).encode())
    except (TypeError, ValueError):
        return "the definition must be JSON data"
    if size > MAX_DEFINITION_BYTES:
        return f"the definition is {size} bytes; the limit is {MAX_DEFINITION_BYTES}"
    return None


class AgentDrafts:
    """Drafts for an agent, embedded (``Toolkit(port, drafts=True)``): every agent works on
    the live port's drafts in ``home``; the proposer is the caller's requester name.

    Embedded, identities are asserted, as everywhere embedded; on a node the same tools go
    through ``NodeService`` with the agent token's identity instead (``node/service.py``).
    """

    def __init__(self, home: Path, *, default_who: str = "agent") -> None:
        self.home = Path(home)
        self.default_who = default_who

    def _who(self, who: str | None) -> str:
        return (who or self.default_who).strip()[:64] or self.default_who

    def overview(self, example: str | None = None) -> dict[str, Any]:
        live = _live(self.home)
        out: dict[str, Any] = {
            "live": [{"name": a.name, "method": a.method, "route": a.route} for a in live.actions],
            "drafts": [draft_summary(d) for d in list_drafts(self.home)],
        }
        if example:
            out["example"] = live_example(live, example)
        return out

    def show(self, name: str) -> dict[str, Any]:
        return agent_draft_view(get_draft(name, self.home))

    def propose(
        self, definition: Any, *, replace: bool = False, who: str | None = None
    ) -> dict[str, Any]:
        problem = definition_size_problem(definition)
        if problem:
            raise DraftError(problem)
        draft = propose_definition(
            definition, self.home, self._who(who), replace=replace, source="agent tool",
            limit=AGENT_DRAFT_LIMIT,
        )  # fmt: skip
        return agent_draft_view(draft)

    def validate(self, name: str) -> dict[str, Any]:
        draft = validate(name, self.home)
        check = draft.validation
        assert check is not None
        return {"draft": name, "ok": check.ok, "problems": check.problems, "digest": check.digest}

    def test(
        self, name: str, data: Any, *, send: bool = False, who: str | None = None
    ) -> dict[str, Any]:
        out = try_draft(name, self.home, data, send=send, requester=self._who(who))
        return agent_test_view(out)

    def request_publication(self, name: str, *, who: str | None = None) -> dict[str, Any]:
        return agent_draft_view(request_publish(name, self.home, self._who(who)))


def live_example(live: Manifest, name: str) -> dict[str, Any]:
    """A live action's definition: the shape a proposal takes."""
    action = live.by_name.get(name)
    if action is None:
        raise DraftError(f"no live action {name!r} to show as an example")
    return action.model_dump(mode="json", by_alias=True, exclude_none=True)
