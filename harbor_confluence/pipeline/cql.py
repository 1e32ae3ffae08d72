"""search-content: typed search inputs turned into CQL by code, never by the agent.

There is no raw CQL input.  Every value an agent supplies ends up inside a double-quoted
CQL string literal with ``\\`` and ``"`` escaped, so quotes, ``OR``, parentheses,
``ORDER BY`` and look-alike characters (fullwidth or smart quotes) stay text.  Field
names, operators and keywords come only from this module.  Control characters, lone
surrogates and bidirectional overrides are refused instead of escaped: they have no
business in a search and could make the query the operator reads differ from the one sent.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from typing import Any

from harbor_confluence.errors import Violation

__all__ = ["CONTENT_TYPES", "CRITERIA", "CqlInputError", "build_cql", "literal", "search_request"]

CONTENT_TYPES = ("page", "blogpost", "comment", "attachment")
_DIGITS = re.compile(r"^[0-9]{1,19}$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")
# Paging and result options that pass through to /wiki/rest/api/search unchanged.
PASSTHROUGH = ("limit", "cursor")


class CqlInputError(ValueError):
    """A value that cannot be put into CQL; carries the violation for InputError."""

    def __init__(self, violation: Violation) -> None:
        super().__init__(str(violation))
        self.violation = violation


def _check_text(field: str, value: str) -> None:
    for ch in value:
        category = unicodedata.category(ch)
        if category in ("Cc", "Cs") or ch in _BIDI or ch in "\u2028\u2029":
            raise CqlInputError(
                Violation(
                    field,
                    "pattern",
                    f"character U+{ord(ch):04X} is not allowed in a search value",
                )
            )


def literal(field: str, value: str) -> str:
    """A CQL string literal: double-quoted, with backslash and double quote escaped."""
    _check_text(field, value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _digits(field: str, value: str) -> str:
    if not _DIGITS.match(value):
        raise CqlInputError(Violation(field, "pattern", "must be a numeric id"))
    return value


def _date(field: str, value: str) -> str:
    if not _DATE.match(value):
        raise CqlInputError(Violation(field, "format", "must be a date YYYY-MM-DD"))
    return literal(field, value)


def _in(name: str, field: str, values: Iterable[str]) -> str:
    items = [literal(f"{field}.{i}", v) for i, v in enumerate(values)]
    if len(items) == 1:
        return f"{name} = {items[0]}"
    return f"{name} in ({','.join(items)})"


_Clause = Callable[[str, Any], list[str]]


def _type(field: str, value: str) -> list[str]:
    if value not in CONTENT_TYPES:
        raise CqlInputError(Violation(field, "enum", f"must be one of {', '.join(CONTENT_TYPES)}"))
    return [f"type = {literal(field, value)}"]


def _labels(field: str, values: list[str]) -> list[str]:
    """Every listed label must be present (one clause each)."""
    return [f"label = {literal(f'{field}.{i}', v)}" for i, v in enumerate(values)]


def _op(name: str, op: str, value: Callable[[str, str], str]) -> _Clause:
    return lambda field, v: [f"{name} {op} {value(field, v)}"]


# (input key, clause builder): the only field names and operators that can appear.
_CLAUSES: tuple[tuple[str, _Clause], ...] = (
    ("type", _type),
    ("spaces", lambda field, v: [_in("space", field, v)] if v else []),
    ("text", _op("text", "~", literal)),
    ("title", _op("title", "~", literal)),
    ("labels", _labels),
    ("contributor", _op("contributor", "=", literal)),
    ("ancestor", _op("ancestor", "=", _digits)),
    ("created_from", _op("created", ">=", _date)),
    ("created_to", _op("created", "<=", _date)),
    ("modified_from", _op("lastmodified", ">=", _date)),
    ("modified_to", _op("lastmodified", "<=", _date)),
)
CRITERIA = tuple(key for key, _ in _CLAUSES)
_LISTS = frozenset({"spaces", "labels"})


def build_cql(criteria: dict[str, Any], location: str = "query") -> str:
    """CQL from typed criteria, clauses in a fixed order joined with AND.

    Raises CqlInputError (naming the field) for a value that cannot be expressed safely,
    or when no criterion is given: an empty CQL query is an error upstream too.
    """
    unknown = sorted(set(criteria) - set(CRITERIA) - set(PASSTHROUGH))
    if unknown:
        raise CqlInputError(
            Violation(f"{location}.{unknown[0]}", "additionalProperties", "unknown key")
        )
    clauses: list[str] = []
    for key, clause in _CLAUSES:
        value = criteria.get(key)
        if value is None:
            continue
        if key in _LISTS:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise CqlInputError(Violation(f"{location}.{key}", "type", "must be strings"))
        elif not isinstance(value, str):
            raise CqlInputError(Violation(f"{location}.{key}", "type", "must be a string"))
        clauses.extend(clause(f"{location}.{key}", value))
    if not clauses:
        raise CqlInputError(
            Violation(location, "minProperties", f"give at least one of: {', '.join(CRITERIA)}")
        )
    return " AND ".join(clauses)


def search_request(clean: dict[str, Any]) -> dict[str, Any]:
    """The ``cql-search`` transform: typed query in, ``{cql, limit, cursor}`` query out."""
    query = dict(clean.get("query") or {})
    out = {"cql": build_cql(query)}
    out.update({k: query[k] for k in PASSTHROUGH if k in query})
    return {"path": dict(clean.get("path") or {}), "query": out}
