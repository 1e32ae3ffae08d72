"""Input validation: each location (path, query, body) against the action's JSON Schema.

Formats are enforced (jsonschema skips ``format`` unless given a checker), unknown keys
are refused, and each violation names the field and the rule it broke.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError as SchemaViolation

from .errors import InputError, Violation
from .manifest import Action

__all__ = ["LOCATIONS", "InputValidator"]

LOCATIONS = ("path", "query", "body")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FORMAT_CHECKER = jsonschema.Draft202012Validator.FORMAT_CHECKER


class InputValidator:
    """Compiled validators for one action; build once, call per request."""

    __slots__ = ("_action", "_validators")

    def __init__(self, action: Action) -> None:
        self._action = action
        self._validators: dict[str, jsonschema.Draft202012Validator] = {}
        for loc in LOCATIONS:
            schema = getattr(action.parameters, loc)
            if schema is not None:
                self._validators[loc] = jsonschema.Draft202012Validator(
                    schema, format_checker=_FORMAT_CHECKER
                )

    def validate(self, data: Any) -> dict[str, Any]:
        """Return the input normalised to ``{"path": {}, "query": {}, "body": ...}``."""
        name = self._action.name
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise InputError(name, [Violation("input", "type", "must be a JSON object")])
        violations: list[Violation] = []
        for key in data:
            if key not in LOCATIONS:
                violations.append(
                    Violation(
                        f"input.{key}",
                        "additionalProperties",
                        "unknown input location (use path, query or body)",
                    )
                )
        out: dict[str, Any] = {}
        for loc in LOCATIONS:
            value = data.get(loc)
            validator = self._validators.get(loc)
            if validator is None:
                if value not in (None, {}):
                    violations.append(
                        Violation(loc, "additionalProperties", f"this action takes no {loc} input")
                    )
                continue
            if value is None:
                value = {}
            violations.extend(_describe(loc, e) for e in validator.iter_errors(value))
            if loc == "path" and isinstance(value, dict):
                violations.extend(_path_values(value))
            out[loc] = value
        if violations:
            raise InputError(name, violations)
        out.setdefault("path", {})
        out.setdefault("query", {})
        return out


def _path_values(values: dict[str, Any]) -> list[Violation]:
    """Path values become URL segments: no control characters, no dot segments."""
    out = []
    for key, value in values.items():
        text = str(value)
        if _CONTROL.search(text):
            out.append(Violation(f"path.{key}", "pattern", "control characters are not allowed"))
        elif text in ("", ".", ".."):
            out.append(Violation(f"path.{key}", "pattern", "empty or dot segment"))
    return out


def _describe(loc: str, err: SchemaViolation) -> Violation:
    parts = [loc, *(str(p) for p in err.absolute_path)]
    rule = str(err.validator)
    message = err.message
    if rule == "additionalProperties" and isinstance(err.instance, dict):
        allowed = set(err.schema.get("properties", {})) if isinstance(err.schema, dict) else set()
        extra = sorted(k for k in err.instance if k not in allowed)
        if extra:
            parts.append(extra[0])
            message = "unknown key" + (f" (also {', '.join(extra[1:])})" if extra[1:] else "")
    elif (
        rule == "required"
        and isinstance(err.validator_value, list)
        and isinstance(err.instance, dict)
    ):
        missing = [k for k in err.validator_value if k not in err.instance]
        if missing:
            parts.append(missing[0])
            message = "is required"
    if len(message) > 200:
        message = message[:120] + " ... " + message[-60:]
    if isinstance(err.instance, str) and len(err.instance) > 200:
        message = _short_instance(rule, len(err.instance), err.validator_value)
    return Violation(".".join(parts), rule, message)


def _short_instance(rule: str, size: int, wanted: object) -> str:
    """Never echo a huge value back: say what the rule wanted instead."""
    if rule == "maxLength":
        return f"is {size} characters long; at most {wanted} allowed"
    return f"value of {size} characters does not satisfy {rule}={wanted!r}"
