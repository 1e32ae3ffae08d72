"""Writing content bodies without losing any: Markdown bodies, targeted edits, cut copies.

* Every write is refused (``InputError``, exit 2, before any read or send) when a string
  of its body carries a truncation marker: it is a cut copy of a body, and writing it
  back would delete what was cut.
* ``markdownBody`` actions take ``{"representation": "markdown", "value": ...}``.  A
  create sends the storage ``editing.markdown_to_storage`` renders; an update maps the
  edited Markdown view back onto the stored body it read (``editing.apply_markdown``):
  blocks left alone keep their bytes, placeholders come back verbatim, and a placeholder
  the agent deleted is listed as a loss for the operator.
* ``transform: page-edit`` (``edit-page``) computes the new body from the stored one with
  one targeted edit (a section, text before or after a section, the start or end of the
  page, one exact text, the title) and sends it as an ordinary versioned update.

The request sent, held and fingerprinted is always storage.  Pure functions: the
executor hands in the validated input and the read's JSON.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jmespath

from harbor_confluence.errors import InputError, Violation

from .manifest import MARKDOWN, Action
from .updates import Composition, ReadOutcome

if TYPE_CHECKING:
    from harbor_confluence.editing import MarkdownView

__all__ = [
    "EDIT_OPS",
    "EditedBody",
    "check_before_read",
    "compose_create",
    "edited_body",
    "needs_current",
    "refuse_truncated",
]

# op -> (required body fields, fields it takes besides title/expected_version/message)
EDIT_OPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "replace-section": (("section", "content"), ("content_format",)),
    "insert-before-section": (("section", "content"), ("content_format",)),
    "insert-after-section": (("section", "content"), ("content_format",)),
    "append": (("content",), ("content_format",)),
    "prepend": (("content",), ("content_format",)),
    "replace-text": (("find", "content"), ()),
    "set-title": (("title",), ()),
}
_EDIT_FIELDS = ("section", "content", "content_format", "find")
_TRUNCATED = (
    "carries a truncation marker: it is a cut copy of a body, and writing it back would "
    "delete what was cut. Read the whole body (body-limit up to 2000000, or join the pieces "
    "read with body-offset, without their markers) or change only a part with edit-page"
)


# -- cut copies ------------------------------------------------------------------------


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            yield path, node
        elif isinstance(node, dict):
            stack.extend((v, f"{path}.{k}") for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, f"{path}.{i}") for i, v in enumerate(node))


def refuse_truncated(action: Action, clean: dict[str, Any]) -> None:
    """Refuse a write whose body carries a truncation marker anywhere (exit 2)."""
    if action.is_read or clean.get("body") is None:
        return
    from harbor_confluence.editing import contains_truncation_marker

    found = sorted(
        path for path, text in _strings(clean["body"], "body") if contains_truncation_marker(text)
    )
    if found:
        raise InputError(action.name, [Violation(path, "truncated", _TRUNCATED) for path in found])


def check_before_read(action: Action, clean: dict[str, Any]) -> None:
    """What can be refused without the stored body is refused before it is read (so such
    a refusal sends nothing): a truncation marker, a targeted edit missing what its op
    needs, text that storage cannot hold."""
    refuse_truncated(action, clean)
    body = clean.get("body") if isinstance(clean.get("body"), dict) else None
    if body is None:
        return
    if action.transform == "page-edit":
        _check_op(action, body)
        texts = [
            (f"body.{k}", body[k]) for k in ("content", "find") if isinstance(body.get(k), str)
        ]
    else:
        markdown = _markdown_value(action, clean)
        texts = [(f"body.{action.markdown_body}.value", markdown)] if markdown else []
    from harbor_confluence.editing.storage import not_xml_char

    for where, text in texts:
        bad = not_xml_char(text)
        if bad is not None:
            message = f"holds the control character U+{ord(bad):04X}, which storage cannot hold"
            raise InputError(action.name, [Violation(where, "xml", message)])


def _check_op(action: Action, body: dict[str, Any]) -> None:
    op = str(body.get("op"))
    required, optional = EDIT_OPS[op]
    problems = [
        Violation(f"body.{name}", "required", f"is required for op {op}")
        for name in required
        if body.get(name) is None
    ]
    problems += [
        Violation(f"body.{name}", "not", f"op {op} does not take {name}")
        for name in _EDIT_FIELDS
        if body.get(name) is not None and name not in required and name not in optional
    ]
    if problems:
        raise InputError(action.name, problems)


# -- Markdown bodies ---------------------------------------------------------------------


def _markdown_value(action: Action, clean: dict[str, Any]) -> str | None:
    """The Markdown the agent sent in the action's ``markdownBody``, if it sent Markdown."""
    name = action.markdown_body
    body = clean.get("body")
    if name is None or not isinstance(body, dict):
        return None
    value = body.get(name)
    if isinstance(value, dict) and value.get("representation") == MARKDOWN:
        text = value.get("value")
        return text if isinstance(text, str) else ""
    return None


def _refused(action: Action, where: str, rule: str, exc: Exception) -> InputError:
    return InputError(action.name, [Violation(where, rule, str(exc))])


def compose_create(action: Action, clean: dict[str, Any]) -> Composition:
    """A create whose body may be Markdown: the request carries the storage it renders."""
    from harbor_confluence.editing import EditingError, markdown_to_storage

    markdown = _markdown_value(action, clean)
    if markdown is None or action.markdown_body is None:
        return Composition(clean)
    name = action.markdown_body
    try:
        storage = markdown_to_storage(markdown)
    except EditingError as exc:
        raise _refused(action, f"body.{name}.value", MARKDOWN, exc) from None
    body = {**clean["body"], name: {"representation": "storage", "value": storage}}
    review = {
        "converted": f"Markdown ({len(markdown)} characters) -> storage ({len(storage)} characters)"
    }
    return Composition({**clean, "body": body}, review)


# -- updates computed against the stored body ----------------------------------------------


@dataclass(frozen=True, slots=True)
class EditedBody:
    """The update's body as ``update-page`` takes it (storage), computed by the runner."""

    body: dict[str, Any]
    review: dict[str, Any] = field(default_factory=dict)
    losses: tuple[str, ...] = ()
    old_view: MarkdownView | None = None


def needs_current(action: Action, clean: dict[str, Any]) -> bool:
    """Whether the update can only be built from the stored body (the read is required)."""
    return action.transform == "page-edit" or _markdown_value(action, clean) is not None


def edited_body(action: Action, clean: dict[str, Any], read: ReadOutcome) -> EditedBody | None:
    """The storage body a Markdown update or a targeted edit sends; None for other updates."""
    if not needs_current(action, clean):
        return None
    spec = action.update
    assert spec is not None
    data = read.data if isinstance(read.data, dict) else None
    current = jmespath.search(spec.current, data) if data is not None else None
    if not isinstance(current, str):
        why = read.problem or f"{spec.read!r} returned no storage body"
        raise InputError(
            action.name,
            [Violation("body", "required", f"the stored body could not be read ({why})")],
        )
    agent = dict(clean.get("body") or {})
    expected = agent.get("expected_version")
    version = jmespath.search(spec.version, data)
    if expected is not None and isinstance(version, int) and version != expected:
        raise InputError(
            action.name,
            [
                Violation(
                    "body.expected_version",
                    "conflict",
                    f"the content is at version {version} now, not {expected}: read it again, "
                    f"re-apply the change and retry with expected_version={version}",
                )
            ],
        )
    if action.transform == "page-edit":
        return _targeted(action, agent, current)
    return _markdown_update(action, agent, current)


def _markdown_update(action: Action, agent: dict[str, Any], current: str) -> EditedBody:
    from harbor_confluence.editing import EditingError, apply_markdown

    from .bodyview import markdown_view

    name = action.markdown_body
    assert name is not None
    markdown = agent[name].get("value") or ""
    view = markdown_view(current)
    try:
        result = apply_markdown(current, view, markdown)
    except EditingError as exc:
        raise _refused(action, f"body.{name}.value", MARKDOWN, exc) from None
    agent[name] = {"representation": "storage", "value": result.storage}
    losses = tuple(
        f"placeholder {p.token} removed (its {p.kind} is deleted)"
        for p in result.removed_placeholders
    )
    return EditedBody(agent, {"markdown": result.summary()}, losses, view)


def _targeted(action: Action, agent: dict[str, Any], current: str) -> EditedBody:
    from harbor_confluence.editing import (
        EditingError,
        TargetNotFoundError,
        append,
        insert_after_section,
        insert_before_section,
        prepend,
        replace_section,
        replace_text,
    )

    _check_op(action, agent)
    op = str(agent.get("op"))
    section = list(agent.get("section") or [])
    content = str(agent.get("content") or "")
    storage = agent.get("content_format") == "storage"
    try:
        if op == "replace-section":
            new = replace_section(current, section, content, content_is_storage=storage)
        elif op == "insert-before-section":
            new = insert_before_section(current, section, content, content_is_storage=storage)
        elif op == "insert-after-section":
            new = insert_after_section(current, section, content, content_is_storage=storage)
        elif op == "append":
            new = append(current, content, content_is_storage=storage)
        elif op == "prepend":
            new = prepend(current, content, content_is_storage=storage)
        elif op == "replace-text":
            new = replace_text(current, str(agent["find"]), content)
        else:  # set-title: the body stays as it is
            new = current
    except TargetNotFoundError as exc:
        where = "body.find" if op == "replace-text" else "body.section"
        raise _refused(action, where, "not_found", exc) from None
    except EditingError as exc:
        rule = "storage" if storage else MARKDOWN
        raise _refused(action, "body.content", rule, exc) from None
    body: dict[str, Any] = {"body": {"representation": "storage", "value": new}}
    for name in ("title", "expected_version", "version_message"):
        if agent.get(name) is not None:
            body[name] = agent[name]
    edit: dict[str, Any] = {"op": op}
    if section:
        edit["section"] = " > ".join(section)
    if op == "replace-text":
        edit["find"] = agent["find"]
    return EditedBody(body, {"edit": edit})
