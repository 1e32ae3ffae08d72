"""Lossless page editing: Confluence storage <-> Markdown, targeted edits, review diffs.

Pure functions over strings (no I/O, no dependency on the rest of the package), so the
actions layer can wire them in without this core knowing about HTTP or policy.

* :func:`to_markdown` — storage to a Markdown view; what Markdown cannot express becomes a
  placeholder token ``⟦id:kind hint⟧`` whose original storage the view keeps.
* :func:`apply_markdown` — an edited view back to storage; unchanged blocks keep their
  original bytes, removed placeholders are reported.
* :func:`markdown_to_storage` — Markdown to storage for new content.
* Targeted edits (:func:`replace_section`, :func:`insert_before_section`,
  :func:`insert_after_section`, :func:`append`, :func:`prepend`, :func:`replace_text`)
  that change only their target.
* :func:`review_diff` / :func:`render_review_text` — a diff that flags lost content.
* :func:`contains_truncation_marker` — refuse writing back a body that was cut.

Names are imported on first use (PEP 562): the runner imports this package on every
call for the truncation check, and Markdown parsing (markdown-it) is only loaded when a
body is converted.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .apply import ApplyResult, apply_markdown
    from .errors import (
        EditingError,
        PlaceholderError,
        StaleViewError,
        StorageParseError,
        TargetNotFoundError,
        UnknownPlaceholderError,
    )
    from .markdown_view import MarkdownView, ViewBlock, storage_sha256, to_markdown
    from .placeholders import Placeholder
    from .render import (
        ATTACHMENT_SCHEME,
        PAGE_SCHEME,
        markdown_to_storage,
        page_url,
        parse_page_url,
    )
    from .review import inventory, render_review_text, review_diff
    from .semantic import semantic_form
    from .storage import canonical, parse_storage
    from .targeted import (
        Section,
        append,
        find_section,
        insert_after_section,
        insert_before_section,
        prepend,
        replace_section,
        replace_text,
        sections,
    )
    from .truncation import (
        CUT_MARKER_FORMAT,
        TRUNCATION_MARKER_FORMAT,
        contains_truncation_marker,
        cut,
        truncate,
        truncation_marker,
    )

_WHERE = {
    "ApplyResult": "apply",
    "apply_markdown": "apply",
    "EditingError": "errors",
    "PlaceholderError": "errors",
    "StaleViewError": "errors",
    "StorageParseError": "errors",
    "TargetNotFoundError": "errors",
    "UnknownPlaceholderError": "errors",
    "MarkdownView": "markdown_view",
    "ViewBlock": "markdown_view",
    "storage_sha256": "markdown_view",
    "to_markdown": "markdown_view",
    "Placeholder": "placeholders",
    "ATTACHMENT_SCHEME": "render",
    "PAGE_SCHEME": "render",
    "markdown_to_storage": "render",
    "page_url": "render",
    "parse_page_url": "render",
    "inventory": "review",
    "render_review_text": "review",
    "review_diff": "review",
    "semantic_form": "semantic",
    "canonical": "storage",
    "parse_storage": "storage",
    "Section": "targeted",
    "append": "targeted",
    "find_section": "targeted",
    "insert_after_section": "targeted",
    "insert_before_section": "targeted",
    "prepend": "targeted",
    "replace_section": "targeted",
    "replace_text": "targeted",
    "sections": "targeted",
    "CUT_MARKER_FORMAT": "truncation",
    "TRUNCATION_MARKER_FORMAT": "truncation",
    "contains_truncation_marker": "truncation",
    "cut": "truncation",
    "truncate": "truncation",
    "truncation_marker": "truncation",
}

__all__ = [
    "ATTACHMENT_SCHEME",
    "CUT_MARKER_FORMAT",
    "PAGE_SCHEME",
    "TRUNCATION_MARKER_FORMAT",
    "ApplyResult",
    "EditingError",
    "MarkdownView",
    "Placeholder",
    "PlaceholderError",
    "Section",
    "StaleViewError",
    "StorageParseError",
    "TargetNotFoundError",
    "UnknownPlaceholderError",
    "ViewBlock",
    "append",
    "apply_markdown",
    "canonical",
    "contains_truncation_marker",
    "cut",
    "find_section",
    "insert_after_section",
    "insert_before_section",
    "inventory",
    "markdown_to_storage",
    "page_url",
    "parse_page_url",
    "parse_storage",
    "prepend",
    "render_review_text",
    "replace_section",
    "replace_text",
    "review_diff",
    "sections",
    "semantic_form",
    "storage_sha256",
    "to_markdown",
    "truncate",
    "truncation_marker",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return list(__all__)
