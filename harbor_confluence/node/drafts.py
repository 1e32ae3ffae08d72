"""Drafts on a node: agents propose, validate, test and ask for publication; only an
operator publishes, on the node host.

The identity is the token's: an agent's drafts carry its name as proposer and as the one
who asked for publication, and an agent sees and works on its own drafts only (an operator
token on all of them).  Publishing is not offered over the node: the node's operator runs
``harbor-confluence drafts publish NAME --as OPERATOR`` on the node host, as the node's
user, and the node picks up the new live port at its next request (``port-reloaded``).

A draft test that sends goes through the live policy like any call (``drafts.try_draft``
decides by it) and, on a node, also needs a grant that is not narrowed by toolset or
action name: a draft's toolset and name are its proposer's own choice, so they cannot
stand for what an operator granted.  A dry run needs nothing more than the token.

These are the methods behind the ``/v1/drafts`` routes (``drafts_api.py``), the
``NodeClient.drafts`` client, and the draft tools of a token's toolkit (``NodeDraftDesk``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harbor_confluence.catalog.drafts import (
    AGENT_DRAFT_LIMIT,
    Draft,
    DraftError,
    agent_draft_view,
    agent_test_view,
    definition_size_problem,
    draft_summary,
    get_draft,
    list_drafts,
    live_example,
    propose_definition,
    request_publish,
    try_draft,
    validate,
)

if TYPE_CHECKING:
    from .identities import Identity
    from .service import NodeService

__all__ = [
    "NodeDraftDesk",
    "draft_propose",
    "draft_request_publication",
    "draft_show",
    "draft_test",
    "draft_validate",
    "drafts_overview",
]


def _same(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def _mine(ident: Identity, draft: Draft) -> bool:
    return ident.is_operator or _same(draft.proposer, ident.name)


def _own_draft(service: NodeService, ident: Identity, name: str) -> Draft:
    draft = get_draft(name, service.home)
    if not _mine(ident, draft):
        raise DraftError(f"no draft {name!r} of yours")
    return draft


def drafts_overview(
    service: NodeService, ident: Identity, example: str | None = None
) -> dict[str, Any]:
    """The live actions (name, method, route) and the caller's drafts; ``example`` adds a
    live action's definition, the shape a proposal takes."""
    manifest = service.port.manifest
    out: dict[str, Any] = {
        "live": [{"name": a.name, "method": a.method, "route": a.route} for a in manifest.actions],
        "drafts": [draft_summary(d) for d in list_drafts(service.home) if _mine(ident, d)],
    }
    if example:
        out["example"] = live_example(manifest, example)
    return out


def draft_show(service: NodeService, ident: Identity, name: str) -> dict[str, Any]:
    return agent_draft_view(_own_draft(service, ident, name))


def draft_propose(
    service: NodeService, ident: Identity, definition: Any, *, replace: bool = False
) -> dict[str, Any]:
    problem = definition_size_problem(definition)
    if problem:
        raise DraftError(problem)
    draft = propose_definition(
        definition,
        service.home,
        ident.name,
        replace=replace,
        source=f"node:{ident.role}",
        limit=None if ident.is_operator else AGENT_DRAFT_LIMIT,
    )
    return agent_draft_view(draft)


def draft_validate(service: NodeService, ident: Identity, name: str) -> dict[str, Any]:
    _own_draft(service, ident, name)
    check = validate(name, service.home).validation
    assert check is not None  # validate always records one
    return {"draft": name, "ok": check.ok, "problems": check.problems, "digest": check.digest}


def draft_test(
    service: NodeService, ident: Identity, name: str, data: Any, *, send: bool = False
) -> dict[str, Any]:
    _own_draft(service, ident, name)
    grant = ident.grant
    if send and not ident.is_operator and (grant.toolsets is not None or grant.actions):
        raise service._forbid(
            ident,
            f"drafts test {name} --send",
            f"{ident.name!r} holds a grant narrowed to {grant.describe()}; a draft's toolset "
            "and name are its proposer's choice, so sending a draft test needs a grant that "
            "is not narrowed by toolset or action (a dry run is fine)",
        )
    out = try_draft(name, service.home, data, send=send, requester=ident.name)
    return agent_test_view(out)


def draft_request_publication(service: NodeService, ident: Identity, name: str) -> dict[str, Any]:
    _own_draft(service, ident, name)
    return agent_draft_view(request_publish(name, service.home, ident.name))


class NodeDraftDesk:
    """The draft tools' desk for one token (``tools.DraftDesk``); ``who`` is ignored: the
    identity is the token's."""

    def __init__(self, service: NodeService, ident: Identity) -> None:
        self._service = service
        self._ident = ident

    def overview(self, example: str | None = None) -> dict[str, Any]:
        return drafts_overview(self._service, self._ident, example)

    def propose(
        self, definition: Any, *, replace: bool = False, who: str | None = None
    ) -> dict[str, Any]:
        return draft_propose(self._service, self._ident, definition, replace=replace)

    def validate(self, name: str) -> dict[str, Any]:
        return draft_validate(self._service, self._ident, name)

    def test(
        self, name: str, data: Any, *, send: bool = False, who: str | None = None
    ) -> dict[str, Any]:
        return draft_test(self._service, self._ident, name, data, send=send)

    def request_publication(self, name: str, *, who: str | None = None) -> dict[str, Any]:
        return draft_request_publication(self._service, self._ident, name)
