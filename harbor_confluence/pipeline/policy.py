"""The policy gate: a small ordered rule list that decides auto / require_approval / deny.

Rules are read top to bottom; the first rule whose action pattern matches and whose
conditions hold decides.  Conditions are JSON Schema predicates over the validated
input (``when`` must match, ``unless`` must not) plus a body-size cap, so the rule
language reuses a dependency instead of inventing one.  Nothing matches: deny.

Predicates run on :data:`~harbor_confluence.pipeline.validation.SchemaValidator`: their regular
expressions on RE2, in time linear in the input, so no pattern can stall a decision; a
pattern RE2 cannot run (backreferences, lookaround) is refused when the policy loads.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from harbor_confluence.errors import ManifestError

from .documents import find_credentials, load_document
from .request import canonical_json
from .validation import Predicate, check_schema

if TYPE_CHECKING:
    from .manifest import Action

__all__ = ["DEFAULT_RULE", "Decision", "Policy", "Rule", "load_policy", "policy_from_data"]

Outcome = Literal["auto", "require_approval", "deny"]
DEFAULT_RULE = "default-deny"


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True
    )


class Rule(_Model):
    """One policy rule.  ``actions`` are names or glob patterns; ``kind`` narrows further."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    actions: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    kind: Literal["read", "write", "any"] = "any"
    when: dict[str, Any] | None = Field(default=None, description="JSON Schema the input matches")
    unless: dict[str, Any] | None = Field(default=None, description="JSON Schema it must not")
    body_bytes_over: int | None = Field(default=None, ge=0, description="body size trigger")
    decision: Outcome
    reason: str | None = Field(default=None, max_length=300)
    ttl_seconds: int = Field(default=86_400, ge=60, le=30 * 86_400)
    approvers: int = Field(default=1, ge=1, le=5)
    forbid_self_approval: bool = False

    @field_validator("when", "unless")
    @classmethod
    def _schema(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None:
            check_schema(v)  # Draft 2020-12, every pattern runnable by RE2 (linear time)
        return v

    @property
    def conditional(self) -> bool:
        return self.when is not None or self.unless is not None or self.body_bytes_over is not None

    def applies_to(self, action: Action) -> bool:
        if self.kind != "any" and self.kind != action.kind:
            return False
        return any(fnmatch.fnmatchcase(action.name, p) for p in self.actions)


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome and the rule that produced it (every decision is explainable)."""

    outcome: Outcome
    rule: str
    reason: str | None = None
    ttl_seconds: int = 86_400
    approvers: int = 1
    forbid_self_approval: bool = False


class Policy(_Model):
    """An ordered rule list with deny as the fallback."""

    version: Literal[1] = 1
    rules: list[Rule] = Field(default_factory=list)
    _validators: dict[int, Predicate] = PrivateAttr(default_factory=dict)
    # Rules that can apply to an action depend only on its name and kind: match once.
    _applicable: dict[tuple[str, str], tuple[Rule, ...]] = PrivateAttr(default_factory=dict)

    def _rules_for(self, action: Action) -> tuple[Rule, ...]:
        key = (action.name, action.kind)
        rules = self._applicable.get(key)
        if rules is None:
            rules = self._applicable[key] = tuple(r for r in self.rules if r.applies_to(action))
        return rules

    def model_post_init(self, context: Any, /) -> None:
        for rule in self.rules:
            for schema in (rule.when, rule.unless):
                if schema is not None:
                    self._validators[id(schema)] = Predicate(schema)

    def _matches(self, schema: dict[str, Any], data: Any) -> bool:
        return self._validators[id(schema)](data)

    def decide(self, action: Action, data: dict[str, Any], body: bytes | None = None) -> Decision:
        """Decide for one validated input (``{"path":..,"query":..,"body":..}``)."""
        for rule in self._rules_for(action):
            if rule.when is not None and not self._matches(rule.when, data):
                continue
            if rule.unless is not None and self._matches(rule.unless, data):
                continue
            if rule.body_bytes_over is not None:
                if body is None:
                    raw = data.get("body")
                    body = b"" if raw is None else canonical_json(raw)
                size = len(body)
                if size <= rule.body_bytes_over:
                    continue
            return _decision(rule)
        return Decision("deny", DEFAULT_RULE, "no policy rule allows this action")

    def size_precheck(self, action: Action, at_least: int) -> Decision | None:
        """A size deny that holds whatever the runner adds to the body, before any read.

        ``at_least`` is a lower bound on the body that will be sent.  Only rules that
        depend on nothing but the size are evaluated; the first rule whose outcome needs
        more (``when``/``unless``, or none at all) ends the check: the full decision
        comes after the read, over the request as it will be sent.
        """
        for rule in self._rules_for(action):
            if rule.when is not None or rule.unless is not None:
                return None
            if rule.body_bytes_over is None:
                return None
            if at_least > rule.body_bytes_over:
                return _decision(rule) if rule.decision == "deny" else None
        return None

    def static_decision(self, action: Action) -> tuple[Decision, list[str]]:
        """The decision when the input does not matter, and the conditional rules before it."""
        conditional: list[str] = []
        for rule in self.rules:
            if not rule.applies_to(action):
                continue
            if rule.conditional:
                conditional.append(rule.name)
                continue
            return _decision(rule), conditional
        return Decision("deny", DEFAULT_RULE, "no policy rule allows this action"), conditional


def _decision(rule: Rule) -> Decision:
    return Decision(
        rule.decision,
        rule.name,
        rule.reason,
        rule.ttl_seconds,
        rule.approvers,
        rule.forbid_self_approval,
    )


def policy_from_data(data: Any, source: str) -> Policy:
    problems = list(find_credentials(data))
    if problems:
        raise ManifestError(source, [f"credential refused at {p}" for p in problems])
    if not isinstance(data, dict):
        raise ManifestError(source, ["a policy must be a mapping"])
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems = []
        raw_rules = data.get("rules")
        rules: list[Any] = raw_rules if isinstance(raw_rules, list) else []
        for err in exc.errors(include_url=False):
            loc = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            where = ""
            index = err["loc"][1] if len(err["loc"]) >= 2 and err["loc"][0] == "rules" else None
            if isinstance(index, int) and index < len(rules) and isinstance(rules[index], dict):
                name = rules[index].get("name")
                if isinstance(name, str):
                    where = f"rule {name!r} "
            problems.append(f"{where}field {loc}: {msg}")
        raise ManifestError(source, problems) from None


def load_policy(path: str | Path) -> Policy:
    return policy_from_data(load_document(path), str(path))
