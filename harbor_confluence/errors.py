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
    "AuthError",
    "Busy",
    "ConfigError",
    "Forbidden",
    "HarborError",
    "InputError",
    "ManifestError",
    "NodeUnavailable",
    "PolicyDenied",
    "ReadFailed",
    "RemoteError",
    "Violation",
    "error_from_dict",
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


class AuthError(HarborError):
    """A node refused the caller: no token, an unknown token or a revoked one.

    The message never repeats the token; nothing was sent.
    """

    code = "unauthenticated"
    exit_code = EXIT_DENIED


class Forbidden(HarborError):
    """The caller's identity may not do this (an agent token approving, say)."""

    code = "forbidden"
    exit_code = EXIT_DENIED


class Busy(HarborError):
    """The node is at a limit it keeps so one caller cannot take it over (open waits);
    nothing changed: try again once one of the caller's own requests has ended."""

    code = "busy"
    exit_code = EXIT_ERROR


class NodeUnavailable(ConfigError):
    """The node could not be reached (socket missing, connection refused, bad answer)."""

    code = "node_unavailable"


class RemoteError(HarborError):
    """A refusal the node reported whose class has no richer local form.

    It keeps the node's ``code``, exit code and payload, so callers branch on ``code``
    exactly as they would on the embedded error.
    """

    def __init__(self, payload: dict[str, Any], exit_code: int) -> None:
        super().__init__(str(payload.get("message") or payload.get("code") or "error"))
        self.code = str(payload.get("code") or "error")
        self.exit_code = exit_code
        self.payload = dict(payload)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.payload)


_CONFIG_CODES = frozenset(
    {"config", "no_credential", "invalid_url", "reconnect", "node_unavailable", "spec_unavailable"}
)


def error_from_dict(payload: dict[str, Any], exit_code: int | None = None) -> HarborError:
    """Rebuild the error a node reported (``HarborError.to_dict()`` on the wire).

    The common refusals come back as their own classes (or their family's, with the
    node's ``code`` and exit code kept) so that ``except InputError`` or ``except
    ConfigError`` works the same embedded and over a node; anything else is a
    :class:`RemoteError`.
    """
    code = str(payload.get("code") or "error")
    message = str(payload.get("message") or code)
    rebuilt: HarborError
    if isinstance(payload.get("violations"), list):  # invalid_input, unknown_action
        violations = [
            Violation(str(v.get("field", "")), str(v.get("rule", "")), str(v.get("message", "")))
            for v in payload["violations"]
            if isinstance(v, dict)
        ]
        rebuilt = InputError(str(payload.get("action", "")), violations)
    elif code == PolicyDenied.code and "rule" in payload:
        reason = payload.get("reason")
        rebuilt = PolicyDenied(
            str(payload.get("action", "")),
            str(payload["rule"]),
            None if reason is None else str(reason),
        )
    elif code == ManifestError.code and isinstance(payload.get("problems"), list):
        rebuilt = ManifestError(
            str(payload.get("source", "")), [str(p) for p in payload["problems"]]
        )
    elif code == AuthError.code:
        rebuilt = AuthError(message)
    elif code == Forbidden.code:
        rebuilt = Forbidden(message)
    elif code == Busy.code:
        rebuilt = Busy(message)
    elif code == NodeUnavailable.code:
        rebuilt = NodeUnavailable(message)
    elif code in _CONFIG_CODES:
        rebuilt = ConfigError(message)
    else:
        return RemoteError(payload, EXIT_ERROR if exit_code is None else exit_code)
    rebuilt.code = code
    if exit_code is not None:
        rebuilt.exit_code = exit_code
    return rebuilt
