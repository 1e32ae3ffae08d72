"""Writes that cannot lose work: version numbers, review diffs and conflict summaries.

Seed 003: an update sends ``version.number = current + 1``.  ``current`` is the agent's
``expected_version`` when given, else the version read while the request is prepared, so
an edit made by someone else in between is answered with Confluence's 409 instead of being
overwritten.  A held request keeps that number: approving it late fails the same way.

Everything here is pure: the executor does the reads and hands their JSON in.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import jmespath

from harbor_confluence.errors import InputError, ReadFailed, Violation

from .manifest import Action, UpdateSpec

__all__ = [
    "Composition",
    "ReadOutcome",
    "ReadPlan",
    "block_review",
    "compose_page_diff",
    "compose_update",
    "conflict_error",
    "page_diff_plan",
    "page_diff_summary",
    "unified_diff",
    "update_read_plan",
]

PAGE_READ = "get-page"
_CURRENT_VERSION = re.compile(r"current version\D{0,12}(\d+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """A GET the runner must make before it can build the request."""

    action: str
    input: dict[str, Any]
    required: bool = True  # False: the request can be built without it (expected_version)


@dataclass(frozen=True, slots=True)
class ReadOutcome:
    """The read's JSON, or why there is none (only when the read was optional)."""

    data: Any = None
    problem: str | None = None
    failed: bool = False  # the read reached Confluence and failed (not merely not allowed)


@dataclass(frozen=True, slots=True)
class Composition:
    """The request input as it will be sent, plus what the operator and summary need."""

    request: dict[str, Any]
    review: dict[str, Any] = field(default_factory=dict)
    local: dict[str, Any] = field(default_factory=dict)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


DIFF_LIMIT = 20_000


def _more(count: int) -> str:
    return f"\n... [{count} more characters of diff]"


def unified_diff(
    before: Any, after: Any, from_label: str, to_label: str, limit: int = DIFF_LIMIT
) -> tuple[str, bool]:
    """A unified diff of two texts (JSON values are pretty-printed first), capped at limit."""
    lines = difflib.unified_diff(
        _text(before).splitlines(),
        _text(after).splitlines(),
        fromfile=from_label,
        tofile=to_label,
        lineterm="",
    )
    text = "\n".join(lines)
    if len(text) <= limit:
        return text, False
    return text[:limit] + _more(len(text) - limit), True


def _version(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# -- versioned updates ---------------------------------------------------------------------


def update_read_plan(
    spec: UpdateSpec, clean: dict[str, Any], *, needs_body: bool = False
) -> ReadPlan:
    """Read the same resource; optional when the agent named the version it edited,
    unless the request is computed from the stored body (``needs_body``)."""
    expected = (clean.get("body") or {}).get("expected_version")
    return ReadPlan(
        spec.read,
        {"path": dict(clean.get("path") or {}), "query": dict(spec.read_query)},
        required=expected is None or needs_body,
    )


def compose_update(
    action: Action,
    clean: dict[str, Any],
    read: ReadOutcome,
    *,
    body: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    losses: Sequence[str] = (),
    old_view: Any = None,
) -> Composition:
    """Turn the agent's content (+ optional expected_version) into the spec's request body.

    ``body`` replaces the agent's body when the runner computed it (a Markdown update, a
    targeted edit: see ``edits.py``); ``extra`` and ``losses`` go into the review, and
    ``old_view`` is the stored body's Markdown view when the runner already made it.
    """
    spec = action.update
    assert spec is not None
    agent = dict(body if body is not None else clean.get("body") or {})
    expected = agent.pop("expected_version", None)
    message = agent.pop("version_message", None)
    current = read.data
    read_version = _version(jmespath.search(spec.version, current)) if current else None
    if expected is not None:
        base, source = int(expected), "expected_version"
    elif read_version is not None:
        base, source = read_version, "read"
    else:
        raise InputError(
            action.name,
            [
                Violation(
                    "body.expected_version",
                    "required",
                    f"the current version could not be read from {spec.read!r}; give it",
                )
            ],
        )
    sent = dict(agent)
    declared = set(((action.parameters.body or {}).get("properties") or {}).keys())
    changes: dict[str, str] = {}
    for name, expr in spec.fill.items():
        stored = jmespath.search(expr, current) if current is not None else None
        if name in sent and stored is not None and sent[name] != stored:
            changes[f"{name}_change"] = f"{stored!r} -> {sent[name]!r}"
        if name not in sent and stored is not None:
            sent[name] = stored
        if name not in sent and name in declared:
            if read.failed:  # the resource could not be read: an upstream answer (exit 5)
                raise ReadFailed(action.name, spec.read, read.problem or "the read failed")
            raise InputError(
                action.name,
                [Violation(f"body.{name}", "required", "is required (it could not be read)")],
            )
    sent.update(spec.fixed)
    if spec.id_field:
        sent[spec.id_field] = str(clean["path"]["id"])
    version: dict[str, Any] = {"number": base + 1}
    if message:
        version["message"] = message
    sent["version"] = version

    review: dict[str, Any] = {
        "kind": "versioned-update",
        "base_version": base,
        "base_from": source,
        "new_version": base + 1,
    }
    if read_version is not None:
        review["current_version"] = read_version
        review["stale"] = read_version != base
    if current is not None:
        before = jmespath.search(spec.current, current)
        after = jmespath.search(spec.proposed, agent)
        if spec.diff == "blocks" and isinstance(before, str) and isinstance(after, str):
            review.update(block_review(before, after, read_version, base + 1, old_view, losses))
        else:
            review["diff"], review["diff_truncated"] = unified_diff(
                before, after, f"current (v{read_version})", f"proposed (v{base + 1})"
            )
    else:
        review["diff"] = None
        review["note"] = f"current content not read: {read.problem}"
    review.update(changes)
    review.update(extra or {})
    request = {
        "path": dict(clean.get("path") or {}),
        "query": dict(clean.get("query") or {}),
        "body": sent,
    }
    return Composition(request, review)


# What a held ticket keeps of the block review: every loss and count, and the changed
# blocks up to a budget (a rewritten 1 MB page must not make a 3 MB ticket).
REVIEW_BLOCK_CHARS = 4_000
REVIEW_BLOCKS_BUDGET = 60_000


def block_review(
    before: str,
    after: str,
    current_version: int | None,
    new_version: int,
    old_view: Any = None,
    losses: Sequence[str] = (),
) -> dict[str, Any]:
    """The review of a storage body: what changed per section and block (word-level within
    a block), macros, links, images, attachments ... counted before and after, and every
    drop listed in ``losses`` (with ``losses`` the runner adds, such as removed
    placeholders).  Bodies that do not parse get the unified diff instead, with a note."""
    from harbor_confluence.editing import EditingError, review_diff

    labels = (f"current (v{current_version})", f"proposed (v{new_version})")
    try:
        review = review_diff(before, after, old_view=old_view, labels=labels)
    except EditingError as exc:
        diff, truncated = unified_diff(before, after, *labels)
        return {
            "diff": diff,
            "diff_truncated": truncated,
            "note": f"no block review: {exc}",
            "losses": list(losses),
        }
    blocks, omitted = _capped_blocks(review["blocks"])
    out: dict[str, Any] = {
        "changed": review["changed"],
        "losses": [*review["losses"], *losses],
        "summary": review["summary"],
        "blocks": blocks,
        "counts": review["counts"],
    }
    if omitted:
        out["blocks_omitted"] = omitted
    # The storage itself, one line per block: small hunks even on a one-line 1 MB page.
    diff = review["diff"]
    limit = DIFF_LIMIT
    out["diff"] = diff if len(diff) <= limit else diff[:limit] + _more(len(diff) - limit)
    out["diff_truncated"] = len(diff) > limit
    return out


def _cut(text: str) -> str:
    if len(text) <= REVIEW_BLOCK_CHARS:
        return text
    return text[:REVIEW_BLOCK_CHARS] + f"\u2026 [{len(text) - REVIEW_BLOCK_CHARS} more characters]"


def _capped_blocks(changes: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    kept: list[dict[str, Any]] = []
    used = 0
    for index, change in enumerate(changes):
        row = {k: _cut(v) if isinstance(v, str) else v for k, v in change.items()}
        size = sum(len(v) for v in row.values() if isinstance(v, str))
        if kept and used + size > REVIEW_BLOCKS_BUDGET:
            return kept, len(changes) - index
        kept.append(row)
        used += size
    return kept, 0


def sent_version(body: bytes | None) -> int | None:
    """The ``version.number`` a request carried (for the conflict summary)."""
    try:
        data = json.loads(body or b"")
    except ValueError:
        return None
    version = data.get("version") if isinstance(data, dict) else None
    return _version(version.get("number")) if isinstance(version, dict) else None


def conflict_error(
    error: dict[str, Any], spec: UpdateSpec | None, sent: int | None, current: Any
) -> dict[str, Any]:
    """A 409 as the agent should see it: what it sent, where the resource is, who moved it.

    ``current`` is the resource as read after the 409 (None: not read, and the current
    version is taken from Confluence's message when it names one).
    """
    out = dict(error)
    out["type"] = "conflict"
    expr = spec.version if spec is not None else "version.number"
    now = _version(jmespath.search(expr, current)) if current is not None else None
    if now is None:
        upstream = error.get("upstream_message", error.get("message", ""))
        found = _CURRENT_VERSION.search(str(upstream))
        now = int(found.group(1)) if found else None
    if sent is not None:
        out["sent_version"] = sent
        out["based_on_version"] = sent - 1
    if now is not None:
        out["current_version"] = now
    if current is not None:
        version = jmespath.search("version", current)
        if isinstance(version, dict):
            if version.get("authorId"):
                out["changed_by"] = version["authorId"]
            if version.get("createdAt"):
                out["changed_at"] = version["createdAt"]
    who = f" by {out['changed_by']}" if "changed_by" in out else ""
    where = f"is now at version {now}{who}" if now is not None else "was changed meanwhile"
    based = f" (this request was based on version {sent - 1})" if sent is not None else ""
    retry = f" with expected_version={now}" if now is not None else ""
    out["message"] = (
        f"conflict: the resource {where}{based}; nothing was overwritten. "
        f"Read it again, re-apply the change and retry{retry}."
    )
    out["upstream_message"] = error.get("upstream_message", error.get("message"))
    return out


# -- get-page-diff -------------------------------------------------------------------------


def page_diff_plan(clean: dict[str, Any]) -> ReadPlan:
    query = clean.get("query") or {}
    return ReadPlan(
        PAGE_READ,
        {
            "path": {"id": clean["path"]["id"]},
            "query": {"version": query["from"], "body-format": "storage"},
        },
    )


def compose_page_diff(clean: dict[str, Any], read: ReadOutcome) -> Composition:
    """The request reads the ``to`` version (the current one if omitted)."""
    query = clean.get("query") or {}
    to_query: dict[str, Any] = {"body-format": "storage"}
    if "to" in query:
        to_query["version"] = query["to"]
    data = read.data if isinstance(read.data, dict) else {}
    local = {
        "from_version": _version(jmespath.search("version.number", data)) or query["from"],
        "from_body": jmespath.search("body.storage.value", data) or "",
    }
    return Composition({"path": {"id": clean["path"]["id"]}, "query": to_query}, local=local)


def page_diff_summary(local: dict[str, Any], to_doc: Any, limit: int) -> dict[str, Any]:
    to_version = _version(jmespath.search("version.number", to_doc))
    after = jmespath.search("body.storage.value", to_doc) or ""
    diff, truncated = unified_diff(
        local.get("from_body", ""),
        after,
        f"version {local.get('from_version')}",
        f"version {to_version}",
        limit,
    )
    return {
        "fromVersion": local.get("from_version"),
        "toVersion": to_version,
        "changed": bool(diff),
        "diff": diff,
        "diffTruncated": truncated,
    }
