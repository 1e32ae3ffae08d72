"""Between validation and request building: the runner-built parts of a request.

Most actions send their validated input as is.  A few are declared with a named,
code-defined transform (``transform:`` in the manifest) or a versioned ``update:``;
this module says which read each needs first and composes the request it sends.
There is no templating: each name maps to a function in this package.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import cql, updates
from .errors import InputError
from .manifest import Action
from .updates import Composition, ReadOutcome, ReadPlan

__all__ = ["Composition", "ReadOutcome", "ReadPlan", "compose", "read_plan"]

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
_READS: dict[str, Callable[[dict[str, Any]], ReadPlan]] = {
    "page-diff": updates.page_diff_plan,
}


def read_plan(action: Action, clean: dict[str, Any]) -> ReadPlan | None:
    """The read this action needs before its request can be built, if any."""
    if action.update is not None:
        return updates.update_read_plan(action.update, clean)
    if action.transform is not None and action.transform in _READS:
        return _READS[action.transform](clean)
    return None


def compose(action: Action, clean: dict[str, Any], read: ReadOutcome | None) -> Composition:
    """The request input as it will be sent (``{path, query, body}``)."""
    outcome = read or ReadOutcome()
    if action.update is not None:
        return updates.compose_update(action, clean, outcome)
    if action.transform is not None:
        return TRANSFORMS[action.transform](action, clean, outcome)
    return Composition(clean)
