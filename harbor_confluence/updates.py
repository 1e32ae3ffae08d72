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
from dataclasses import dataclass, field
from typing import Any

import jmespath

from .errors import InputError, ReadFailed, Violation
from .manifest import Action, UpdateSpec

__all__ = [
    "Composition",
    "ReadOutcome",
    "ReadPlan",
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


def unified_diff(
    before: Any, after: Any, from_label: str, to_label: str, limit: int = 20_000
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
    return text[:limit] + f"\n... [{len(text) - limit} more characters of diff]", True


def _version(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# -- versioned updates ---------------------------------------------------------------------


def update_read_plan(spec: UpdateSpec, clean: dict[str, Any]) -> ReadPlan:
    """Read the same resource; optional when the agent named the version it edited."""
    expected = (clean.get("body") or {}).get("expected_version")
    return ReadPlan(
        spec.read,
        {"path": dict(clean.get("path") or {}), "query": dict(spec.read_query)},
        required=expected is None,
    )


def compose_update(action: Action, clean: dict[str, Any], read: ReadOutcome) -> Composition:
    """Turn the agent's content (+ optional expected_version) into the spec's request body."""
    spec = action.update
    assert spec is not None
    agent = dict(clean.get("body") or {})
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
    body = dict(agent)
    declared = set(((action.parameters.body or {}).get("properties") or {}).keys())
    for name, expr in spec.fill.items():
        if name not in body and current is not None:
            value = jmespath.search(expr, current)
            if value is not None:
                body[name] = value
        if name not in body and name in declared:
            if read.failed:  # the resource could not be read: an upstream answer (exit 5)
                raise ReadFailed(action.name, spec.read, read.problem or "the read failed")
            raise InputError(
                action.name,
                [Violation(f"body.{name}", "required", "is required (it could not be read)")],
            )
    body.update(spec.fixed)
    if spec.id_field:
        body[spec.id_field] = str(clean["path"]["id"])
    version: dict[str, Any] = {"number": base + 1}
    if message:
        version["message"] = message
    body["version"] = version

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
        after = jmespath.search(spec.proposed, clean.get("body") or {})
        review["diff"], review["diff_truncated"] = unified_diff(
            before, after, f"current (v{read_version})", f"proposed (v{base + 1})"
        )
    else:
        review["diff"] = None
        review["note"] = f"current content not read: {read.problem}"
    request = {
        "path": dict(clean.get("path") or {}),
        "query": dict(clean.get("query") or {}),
        "body": body,
    }
    return Composition(request, review)


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
