"""Between validation and request building: the runner-built parts of a request.

Most actions send their validated input as is.  A few are declared with a named,
code-defined transform (``transform:`` in the manifest), a versioned ``update:``, a
``bodyView`` (runner-side body paging and Markdown, ``bodyview.py``) or a
``markdownBody`` (Markdown converted to storage, ``edits.py``); this module says which
read each needs first and composes the request it sends.  There is no templating: each
name maps to a function in this package.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import bodyview, cql, edits, updates
from .errors import InputError
from .manifest import Action
from .updates import Composition, ReadOutcome, ReadPlan

__all__ = ["Composition", "ReadOutcome", "ReadPlan", "compose", "read_plan", "sent_input"]

LABEL_PREFIX = "global"


def _cql_search(action: Action, clean: dict[str, Any], read: ReadOutcome) -> Composition:
    try:
        request = cql.search_request(clean)
    except cql.CqlInputError as exc:
        raise InputError(action.name, [exc.violation]) from None
    return Composition(request, {"cql": request["query"]["cql"]})


def _label_list(action: Action, clean: dict[str, Any], read: ReadOutcome) -> Composition:
    """``{labels: [names]}`` -> the v1 LabelCreateArray ``[{prefix, name}, ...]``."""
    names = (clean.get("body") or {}).get("labels") or []
    body = [{"prefix": LABEL_PREFIX, "name": name} for name in names]
    return Composition({"path": dict(clean.get("path") or {}), "body": body})


def _page_diff(action: Action, clean: dict[str, Any], read: ReadOutcome) -> Composition:
    return updates.compose_page_diff(clean, read)


_Composer = Callable[[Action, dict[str, Any], ReadOutcome], Composition]
TRANSFORMS: dict[str, _Composer] = {
    "cql-search": _cql_search,
    "label-list": _label_list,
    "page-diff": _page_diff,
}
# page-edit runs inside its versioned update (it computes the body: edits.py).
_READS: dict[str, Callable[[dict[str, Any]], ReadPlan]] = {
    "page-diff": updates.page_diff_plan,
}


def read_plan(action: Action, clean: dict[str, Any]) -> ReadPlan | None:
    """The read this action needs before its request can be built, if any."""
    if action.update is not None:
        needs_body = edits.needs_current(action, clean)
        return updates.update_read_plan(action.update, clean, needs_body=needs_body)
    if action.transform is not None and action.transform in _READS:
        return _READS[action.transform](clean)
    return None


def compose(action: Action, clean: dict[str, Any], read: ReadOutcome | None) -> Composition:
    """The request input as it will be sent (``{path, query, body}``)."""
    outcome = read or ReadOutcome()
    if action.update is not None:
        edited = edits.edited_body(action, clean, outcome)
        if edited is None:
            return updates.compose_update(action, clean, outcome)
        return updates.compose_update(
            action, clean, outcome, body=edited.body, extra=edited.review,
            losses=edited.losses, old_view=edited.old_view,
        )  # fmt: skip
    if action.transform is not None:
        return TRANSFORMS[action.transform](action, clean, outcome)
    if action.body_view is not None:
        return bodyview.compose_read(action, clean)
    if action.markdown_body is not None:
        return edits.compose_create(action, clean)
    return Composition(clean)


def sent_input(action: Action, clean: dict[str, Any]) -> dict[str, Any]:
    """A read's validated input as sent, when the runner makes the read for itself (no
    runner-side parameters reach Confluence)."""
    if action.body_view is None:
        return clean
    return {**clean, "query": bodyview.sent_query(action, dict(clean.get("query") or {}))}
