"""Errors raised before anything is sent, each with a stable code and CLI exit code.

Every error names what was wrong (file, action, field) and the rule it broke, so an
agent or operator can fix the input without reading a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "EXIT_DENIED",
    "EXIT_ERROR",
    "EXIT_HELD",
    "EXIT_INVALID",
    "EXIT_OK",
    "EXIT_UPSTREAM",
    "ConfigError",
    "HarborError",
    "InputError",
    "ManifestError",
    "PolicyDenied",
    "ReadFailed",
    "Violation",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INVALID = 2
EXIT_DENIED = 3
EXIT_HELD = 4
EXIT_UPSTREAM = 5


class HarborError(Exception):
    """Base class: a refusal that happened before any request left the runner."""

    code: str = "error"
    exit_code: int = EXIT_ERROR

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": str(self)}


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule: where (``query.limit``), which rule (``maximum``) and why."""

    field: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message} [{self.rule}]"

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "rule": self.rule, "message": self.message}


class InputError(HarborError):
    """The caller's input broke the action's schema or the request-building rules."""

    code = "invalid_input"
    exit_code = EXIT_INVALID

    def __init__(self, action: str, violations: Sequence[Violation]) -> None:
        self.action = action
        self.violations = tuple(violations)
        lines = "; ".join(str(v) for v in self.violations)
        super().__init__(f"invalid input for {action!r}: {lines}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": str(self),
            "action": self.action,
            "violations": [v.to_dict() for v in self.violations],
        }


class ManifestError(HarborError):
    """A manifest or policy document was refused at load time."""

    code = "invalid_manifest"
    exit_code = EXIT_INVALID

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        body = "\n  ".join(self.problems)
        super().__init__(f"{source}:\n  {body}")

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "source": self.source, "problems": list(self.problems)}


class PolicyDenied(HarborError):
    """The policy refused the call; ``rule`` names the rule that decided."""

    code = "denied"
    exit_code = EXIT_DENIED

    def __init__(self, action: str, rule: str, reason: str | None = None) -> None:
        self.action = action
        self.rule = rule
        self.reason = reason
        why = f": {reason}" if reason else ""
        super().__init__(f"{action!r} denied by policy rule {rule!r}{why}")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "message": str(self),
            "action": self.action,
            "rule": self.rule,
        }
        if self.reason:
            out["reason"] = self.reason
        return out


class ConfigError(HarborError):
    """Local configuration is missing or unsafe (base URL, credentials, state dir)."""

    code = "config"
    exit_code = EXIT_ERROR


class ReadFailed(HarborError):
    """A read the runner needed before sending (an update's current version) failed.

    Nothing was written; ``status`` and ``upstream`` carry Confluence's answer.
    """

    code = "read_failed"
    exit_code = EXIT_UPSTREAM

    def __init__(self, action: str, read: str, message: str, status: int | None = None) -> None:
        self.action = action
        self.read = read
        self.status = status
        where = f"HTTP {status}: " if status else ""
        super().__init__(
            f"{action!r} needs {read!r} first, and it failed ({where}{message}); nothing was sent"
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": str(self), "action": self.action}
        out["read"] = self.read
        if self.status is not None:
            out["status"] = self.status
        return out
