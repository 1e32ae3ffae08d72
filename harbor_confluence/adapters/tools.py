"""Tool definitions for agent frameworks, and the one place tool calls are run.

Every adapter (the MCP server, LangChain, the OpenAI Agents SDK, a hand-written loop over
the OpenAI or Anthropic API) is built from the same :class:`ToolSpec` list and calls back
through :meth:`Toolkit.call`, so filtering, policy, input mapping and result wording are
decided once.  An action whose policy decision is ``deny`` whatever the input is never
offered: an agent should not spend context on a tool it cannot use.

Tool input is flat: the action's path, query and body parameters are top-level arguments
(``{"id": "98391", "body-format": "storage"}``), mapped back to ``{"path", "query",
"body"}`` on call.  When names clash across locations (a path ``id`` and a body ``id``),
the body stays under a ``body`` argument; if that clashes too, the input is the nested
``{"path": .., "query": .., "body": ..}`` form.  Violations name the argument as the agent
sent it (``id``, ``body.title``), with the JSON Schema rule it broke.

Schemas are trimmed to what a model needs to produce valid input (types, required,
enums, bounds, patterns): descriptions, defaults, titles and ``additionalProperties:
false`` are dropped, because the runner validates every call against the full schema and
names any unknown key in its answer.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from harbor_confluence.errors import ConfigError, HarborError, InputError, Violation

if TYPE_CHECKING:
    from harbor_confluence.pipeline.executor import Port
    from harbor_confluence.pipeline.manifest import Action, Manifest
    from harbor_confluence.pipeline.policy import Policy
    from harbor_confluence.pipeline.summary import Result


class ToolPort(Protocol):
    """What a :class:`Toolkit` needs of a port: a ``Port``, or a node's per-identity view."""

    @property
    def manifest(self) -> Manifest: ...

    @property
    def policy(self) -> Policy: ...

    @property
    def home(self) -> Path: ...

    def call(self, name: str, data: Any = None, *, requester: str | None = None) -> Result: ...

    async def acall(
        self, name: str, data: Any = None, *, requester: str | None = None
    ) -> Result: ...

    def status(self, ticket_id: str) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...


class DraftDesk(Protocol):
    """What the draft tools need: drafts on the live port, for one caller.

    Embedded this is :class:`~harbor_confluence.catalog.drafts.AgentDrafts` (``who`` is the
    requester); on a node, the node's desk for the token's identity (``who`` is ignored).
    Answers are JSON-ready dicts that carry no tenant URL and no state-directory path.
    """

    def overview(self, example: str | None = None) -> dict[str, Any]: ...

    def propose(
        self, definition: Any, *, replace: bool = False, who: str | None = None
    ) -> dict[str, Any]: ...

    def validate(self, name: str) -> dict[str, Any]: ...

    def test(
        self, name: str, data: Any, *, send: bool = False, who: str | None = None
    ) -> dict[str, Any]: ...

    def request_publication(self, name: str, *, who: str | None = None) -> dict[str, Any]: ...


__all__ = [
    "APPROVAL_TOOL",
    "CALL_TOOL",
    "DRAFT_TOOLS",
    "LIST_TOOL",
    "DraftDesk",
    "Format",
    "Shape",
    "ToolReply",
    "ToolSpec",
    "Toolkit",
    "tool_sizes",
    "tools",
]

Format = Literal["mcp", "openai", "anthropic"]
Shape = Literal["per-action", "compact"]
Kind = Literal["read", "write"]

FORMATS: tuple[Format, ...] = ("mcp", "openai", "anthropic")
SHAPES: tuple[Shape, ...] = ("per-action", "compact")
LIST_TOOL = "list_actions"
CALL_TOOL = "call_action"
APPROVAL_TOOL = "get_approval_status"
# The draft tools (``drafts=True``): the agent's side of proposing actions (never publishing).
LIST_DRAFTS_TOOL = "list_drafts"
PROPOSE_DRAFT_TOOL = "propose_draft"
VALIDATE_DRAFT_TOOL = "validate_draft"
TEST_DRAFT_TOOL = "test_draft"
REQUEST_PUBLICATION_TOOL = "request_publication"
DRAFT_TOOLS = (LIST_DRAFTS_TOOL, PROPOSE_DRAFT_TOOL, VALIDATE_DRAFT_TOOL, TEST_DRAFT_TOOL,
               REQUEST_PUBLICATION_TOOL)  # fmt: skip

# Keywords that help a reader, or bounds a model rarely reaches (the runner enforces them
# and names the broken rule), but cost context on every turn.
_DROP = frozenset(
    {"description", "title", "examples", "default", "$comment", "deprecated", "readOnly",
     "writeOnly", "$schema", "$id", "minLength", "maxLength", "minItems", "maxItems",
     "uniqueItems"}
)  # fmt: skip
_INT32_MAX = 2**31 - 1  # a "maximum" this large only restates the wire type
_SUBSCHEMA = frozenset(
    {"items", "not", "if", "then", "else", "contains", "additionalProperties",
     "propertyNames", "unevaluatedProperties", "unevaluatedItems"}
)  # fmt: skip
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "dependentSchemas"})
_SCHEMA_LISTS = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
# A location schema with only these top-level keys (and choices of required properties,
# ``_choice``) can be flattened without losing a rule.
_FLAT_KEYS = frozenset(
    {"type", "properties", "required", "additionalProperties", "description", "title",
     "$comment"}
)  # fmt: skip
_CHOICES = frozenset({"oneOf", "anyOf"})
# What get_approval_status may return: never the stored URL, headers or body.
_STATUS_KEYS = (
    "ticket", "action", "state", "rule", "requester", "approvals", "approvals_required",
    "expires_at", "expires_in_seconds", "reason", "decided_by", "message", "result",
)  # fmt: skip


def lean_schema(schema: Any) -> Any:
    """A copy of ``schema`` without the keywords a model does not need (see module doc)."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROP or key.startswith("x-"):
            continue
        if key == "additionalProperties" and value is False:
            continue
        if key == "maximum" and isinstance(value, int) and value >= _INT32_MAX:
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: lean_schema(sub) for name, sub in value.items()}
        elif key in _SUBSCHEMA:
            out[key] = lean_schema(value)
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [lean_schema(sub) for sub in value]
        else:
            out[key] = value
    return out


# -- specs --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One tool, independent of any framework's envelope."""

    name: str
    description: str
    input_schema: dict[str, Any]
    read_only: bool
    destructive: bool = False
    idempotent: bool = False
    open_world: bool = True
    action: str | None = None  # the action a per-action tool runs

    def annotations(self) -> dict[str, bool]:
        """MCP tool annotations.  Only what differs from MCP's defaults (read-only false,
        destructive true, idempotent false) is spelled out, except openWorldHint, always."""
        if self.read_only:
            out = {"readOnlyHint": True}
        else:
            out = {"destructiveHint": self.destructive}
            if self.idempotent:
                out["idempotentHint"] = True
        out["openWorldHint"] = self.open_world
        return out

    def render(self, fmt: Format) -> dict[str, Any]:
        if fmt == "mcp":
            return {
                "name": self.name,
                "description": self.description,
                "inputSchema": self.input_schema,
                "annotations": self.annotations(),
            }
        if fmt == "openai":
            return {
                "type": "function",
                "function": {
                    "name": self.name,
                    "description": self.description,
                    "parameters": self.input_schema,
                },
            }
        if fmt == "anthropic":
            return {
                "name": self.name,
                "description": self.description,
                "input_schema": self.input_schema,
            }
        raise ConfigError(f"unknown tool format {fmt!r}; use one of: {', '.join(FORMATS)}")


@dataclass(frozen=True, slots=True)
class _Binding:
    """How a tool's arguments map back to the executor's ``{"path","query","body"}``."""

    path: frozenset[str] = frozenset()
    query: frozenset[str] = frozenset()
    body: frozenset[str] = frozenset()  # body properties flattened to the top level
    body_key: bool = False  # the body is one ``body`` argument
    nested: bool = False  # the arguments already are {"path","query","body"}

    def to_input(self, action: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
        if self.nested:
            return dict(arguments)
        data: dict[str, Any] = {"path": {}, "query": {}}
        body: dict[str, Any] = {}
        unknown: list[str] = []
        for key, value in arguments.items():
            if key in self.path:
                data["path"][key] = value
            elif key in self.query:
                data["query"][key] = value
            elif key in self.body:
                body[key] = value
            elif self.body_key and key == "body":
                data["body"] = value
            else:
                unknown.append(key)
        if unknown:
            known = sorted(
                self.path | self.query | self.body | ({"body"} if self.body_key else set())
            )
            hint = f"; known arguments: {', '.join(known)}" if known else "; it takes none"
            raise InputError(
                action,
                [Violation(k, "additionalProperties", "unknown argument" + hint) for k in unknown],
            )
        if self.body:
            data["body"] = body
        return data

    @property
    def _body_arg(self) -> frozenset[str]:
        return frozenset({"body"}) if self.body_key else frozenset()

    def field(self, name: str) -> str:
        """The executor's ``path.id`` / ``body.title`` as the argument the agent sent."""
        if self.nested:
            return name
        loc, _, rest = name.partition(".")
        if loc in ("path", "query") and rest:
            return rest
        if loc == "body" and rest and self.body:
            return rest
        return name


def _flat_ok(schema: dict[str, Any] | None) -> bool:
    return schema is None or (
        set(schema) - _CHOICES <= _FLAT_KEYS
        and isinstance(schema.get("properties", {}), dict)
        and all(_choice(schema, key) is not None for key in _CHOICES & set(schema))
    )


def _choice(schema: dict[str, Any], key: str) -> list[dict[str, list[str]]] | None:
    """``oneOf``/``anyOf`` of ``{required: [...]}`` alternatives over the schema's own
    properties ("spaceId or spaceKey"): it holds as well once those properties are
    top-level arguments.  None for any other shape (which is then not flattened)."""
    branches = schema.get(key)
    props = schema.get("properties") or {}
    if not isinstance(branches, list) or not branches:
        return None
    for branch in branches:
        names = branch.get("required") if isinstance(branch, dict) else None
        if set(branch) != {"required"} or not isinstance(names, list):
            return None
        if not all(isinstance(n, str) and n in props for n in names):
            return None
    return branches


def _input_schema(action: Action) -> tuple[dict[str, Any], _Binding]:
    """Flat arguments in the order a model fills them: path, then body, then query."""
    p = action.parameters
    path = p.path or {}
    query = p.query or {}
    path_props: dict[str, Any] = path.get("properties", {})
    query_props: dict[str, Any] = query.get("properties", {})
    top = set(path_props) | set(query_props)
    if set(path_props) & set(query_props) or not _flat_ok(p.path) or not _flat_ok(p.query):
        return _nested_schema(action), _Binding(nested=True)
    parts: list[tuple[dict[str, Any], dict[str, Any]]] = [(path, path_props)]
    binding = _Binding(path=frozenset(path_props), query=frozenset(query_props))
    body_arg: dict[str, Any] | None = None
    if p.body is not None:
        body_props: dict[str, Any] = p.body.get("properties", {})
        if _flat_ok(p.body) and body_props and not set(body_props) & top:
            parts.append((p.body, body_props))
            binding = _Binding(binding.path, binding.query, body=frozenset(body_props))
        elif "body" not in top:
            body_arg = p.body
            binding = _Binding(binding.path, binding.query, body_key=True)
        else:
            return _nested_schema(action), _Binding(nested=True)
    props: dict[str, Any] = {}
    required: list[str] = []
    for schema, names in parts:
        props.update({name: lean_schema(sub) for name, sub in names.items()})
        required += [r for r in schema.get("required", []) if r in names]
    if body_arg is not None:
        props["body"] = lean_schema(body_arg)
        if body_arg.get("required"):
            required.append("body")
    props.update({name: lean_schema(sub) for name, sub in query_props.items()})
    required += [r for r in query.get("required", []) if r in query_props]
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    for schema, _ in parts:
        for key in sorted(_CHOICES & set(schema)):
            out[key] = schema[key]  # only choices among that location's own properties
    return out, binding


def _nested_schema(action: Action) -> dict[str, Any]:
    props: dict[str, Any] = {}
    required: list[str] = []
    for loc in ("path", "query", "body"):
        schema = getattr(action.parameters, loc)
        if schema is not None:
            props[loc] = lean_schema(schema)
            if schema.get("required"):
                required.append(loc)
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    return out


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    return " ".join(lines[0].split()) if lines else ""


# -- replies ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolReply:
    """What a tool call returns: structured payload, a short text, and whether it failed.

    ``text`` is a one-line headline followed by the payload as compact JSON, for clients
    that read only text content (the MCP spec asks servers to send both).
    """

    payload: dict[str, Any]
    headline: str
    is_error: bool = False

    @property
    def text(self) -> str:
        body = json.dumps(self.payload, separators=(",", ":"), ensure_ascii=False)
        return f"{self.headline}\n{body}"


def _refusal(action: str | None, exc: HarborError, headline: str) -> ToolReply:
    payload: dict[str, Any] = {"ok": False, "outcome": "refused", "error": exc.to_dict()}
    if action:
        payload["action"] = action
    return ToolReply(payload, headline, is_error=True)


def _result_reply(result: Result) -> ToolReply:
    payload = result.to_dict()
    name = result.action
    if result.outcome == "held":
        ticket = result.ticket or ""
        payload["message"] = (
            f"held for operator approval (rule {result.rule!r}); nothing was sent yet. "
            f'Check with {APPROVAL_TOOL} {{"ticket": "{ticket}"}}.'
        )
        payload["check"] = {"tool": APPROVAL_TOOL, "arguments": {"ticket": ticket}}
        headline = (
            f"{name}: waiting for operator approval, ticket {ticket} (rule {result.rule}). "
            f"Nothing was sent yet; call {APPROVAL_TOOL} with this ticket to see the outcome."
        )
        losses = payload.get("losses")
        if isinstance(losses, list) and losses:
            headline += f" This write REMOVES content: {'; '.join(map(str, losses))}."
        return ToolReply(payload, headline)
    if result.ok:
        bits = [f"{name}: ok"]
        if result.status is not None:
            bits.append(f"HTTP {result.status}")
        if result.count is not None:
            bits.append(f"{result.count} result(s)")
        line = ", ".join(bits)
        if result.next_cursor:
            line += "; more: pass cursor=next_cursor"
        rest = result.summary.get("bodyNextOffset") if isinstance(result.summary, dict) else None
        if isinstance(rest, int):
            line += f"; the body goes on: pass body-offset={rest} for the next piece"
        return ToolReply(payload, line)
    err = result.error or {}
    status = f" HTTP {result.status}" if result.status is not None else ""
    return ToolReply(
        payload, f"{name}: failed{status}: {err.get('message', 'error')}", is_error=True
    )


# -- the toolkit --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Offer:
    action: Action
    spec: ToolSpec
    binding: _Binding


@dataclass
class Toolkit:
    """The tools one port offers an agent, after policy and filters, and how to call them.

    ``include``/``exclude`` take action names or globs (``create-*``), ``toolset:NAME`` or
    ``kind:read|write``; ``toolsets`` adds whole toolsets to the include, ``kind`` narrows.
    With no include and no toolsets every action is a candidate; exclude always wins.
    """

    port: ToolPort
    include: Sequence[str] | None = None
    exclude: Sequence[str] | None = None
    toolsets: Sequence[str] | None = None
    kind: Kind | None = None
    shape: Shape = "per-action"
    requester: str | None = None
    # True: the draft tools on the live port in ``port.home`` (embedded); a DraftDesk: the
    # tools over that desk (a node passes the token's); None/False: no draft tools.
    drafts: bool | DraftDesk | None = None
    _offers: dict[str, _Offer] = field(init=False, repr=False)
    _withheld: dict[str, str] = field(init=False, repr=False)
    _may_hold: bool = field(init=False, repr=False)
    _desk: DraftDesk | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        if self.drafts is True:
            from harbor_confluence.catalog.drafts import AgentDrafts

            self._desk = AgentDrafts(self.port.home, default_who=self.requester or "agent")
        elif self.drafts is not None and self.drafts is not False:
            self._desk = self.drafts
        if self.shape not in SHAPES:
            raise ConfigError(f"unknown tool shape {self.shape!r}; use one of: {', '.join(SHAPES)}")
        if self.kind is not None and self.kind not in ("read", "write"):
            raise ConfigError(f"kind must be read or write, not {self.kind!r}")
        actions = self.port.manifest.actions
        for selector in [*(self.include or ()), *(self.exclude or ())]:
            if not any(_matches(selector, a) for a in actions):
                raise ConfigError(
                    f"{selector!r} matches no action in {self.port.manifest.port.name}"
                )
        known_sets = {a.toolset for a in actions}
        for ts in self.toolsets or ():
            if ts not in known_sets:
                raise ConfigError(f"unknown toolset {ts!r}; known: {', '.join(sorted(known_sets))}")
        rules = {r.name: r for r in self.port.policy.rules}
        self._offers = {}
        self._withheld = {}
        self._may_hold = False
        for a in actions:
            if not self._selected(a):
                self._withheld[a.name] = "not selected by this server's filters"
                continue
            decision, conditional = self.port.policy.static_decision(a)
            if decision.outcome == "deny":
                self._withheld[a.name] = f"denied by policy rule {decision.rule!r}"
                continue
            if decision.outcome == "require_approval" or any(
                rules[n].decision == "require_approval" for n in conditional if n in rules
            ):
                self._may_hold = True
            schema, binding = _input_schema(a)
            description = _one_line(a.description)
            if decision.outcome == "require_approval" and "approv" not in description.lower():
                description += " Needs operator approval."
            spec = ToolSpec(
                name=a.name,
                description=description,
                input_schema=schema,
                read_only=a.is_read,
                destructive=a.destructive,
                idempotent=a.idempotent,
                action=a.name,
            )
            self._offers[a.name] = _Offer(a, spec, binding)

    def _selected(self, a: Action) -> bool:
        chosen = not self.include and not self.toolsets
        if self.include and any(_matches(s, a) for s in self.include):
            chosen = True
        if self.toolsets and a.toolset in self.toolsets:
            chosen = True
        if self.kind is not None and a.kind != self.kind:
            chosen = False
        return chosen and not any(_matches(s, a) for s in self.exclude or ())

    # -- definitions ----------------------------------------------------------------------

    @property
    def actions(self) -> list[str]:
        """Names of the actions offered, in manifest order."""
        return list(self._offers)

    def specs(self) -> list[ToolSpec]:
        out = (
            [o.spec for o in self._offers.values()]
            if self.shape == "per-action"
            else self._compact_specs()
        )
        if self._desk is not None:
            out.extend(_DRAFT_SPECS)
        if self._may_hold:
            out.append(_APPROVAL_SPEC)
        return out

    def definitions(self, fmt: Format = "mcp") -> list[dict[str, Any]]:
        return [s.render(fmt) for s in self.specs()]

    def _compact_specs(self) -> list[ToolSpec]:
        offers = list(self._offers.values())
        return [
            ToolSpec(
                name=LIST_TOOL,
                description=(
                    "List the Confluence actions you can run (name, kind, summary, arguments; "
                    "* = required). Pass names to get their input schemas."
                ),
                input_schema={
                    "type": "object",
                    "properties": {
                        "names": {"type": "array", "items": {"type": "string"}},
                        "toolset": {"type": "string"},
                    },
                },
                read_only=True,
                open_world=False,
            ),
            ToolSpec(
                name=CALL_TOOL,
                description=(
                    "Run one action from list_actions with its arguments as input. "
                    "Writes may be held for operator approval."
                ),
                input_schema={
                    "type": "object",
                    "properties": {"action": {"type": "string"}, "input": {"type": "object"}},
                    "required": ["action"],
                },
                read_only=all(o.action.is_read for o in offers),
                destructive=any(o.action.destructive for o in offers),
            ),
        ]

    # -- calls ----------------------------------------------------------------------------

    def _who(self, requester: str | None) -> str | None:
        return requester or self.requester

    def _route(self, name: str, arguments: Mapping[str, Any] | None) -> tuple[str, Any] | ToolReply:
        """Resolve a tool call to (action, executor input), or answer it directly."""
        args: Mapping[str, Any] = arguments or {}
        if name == APPROVAL_TOOL and self._may_hold:
            return self.status(args.get("ticket"))
        if self.shape == "compact" and name == LIST_TOOL:
            return self._list(args)
        if self.shape == "compact" and name == CALL_TOOL:
            action = args.get("action")
            inner = args.get("input") or {}
            if not isinstance(action, str):
                err = InputError(CALL_TOOL, [Violation("action", "type", "must be an action name")])
                return _refusal(None, err, f"{CALL_TOOL}: action must be an action name")
            if not isinstance(inner, Mapping):
                err = InputError(action, [Violation("input", "type", "must be a JSON object")])
                return _refusal(action, err, f"invalid input for {action}: input must be an object")
            name, args = action, inner
        offer = self._offers.get(name)
        if offer is None:
            why = self._withheld.get(name)
            message = f"{name!r} is not offered here" + (f": {why}" if why else "")
            return _refusal(name, ConfigError(message), message)
        try:
            return name, offer.binding.to_input(name, args)
        except InputError as exc:
            return self._invalid(exc)

    def _invalid(self, exc: InputError) -> ToolReply:
        offer = self._offers.get(exc.action)
        binding = offer.binding if offer else _Binding(nested=True)
        mapped = [Violation(binding.field(v.field), v.rule, v.message) for v in exc.violations]
        again = InputError(exc.action, mapped)
        return _refusal(exc.action, again, str(again))

    def _refused(self, action: str, exc: HarborError) -> ToolReply:
        if isinstance(exc, InputError):
            return self._invalid(exc)
        return _refusal(action, exc, self._redact(str(exc)))

    def call(
        self, name: str, arguments: Mapping[str, Any] | None = None, *, requester: str | None = None
    ) -> ToolReply:
        """Run one tool call.  Refusals come back as error replies, never as exceptions."""
        if self._desk is not None and name in DRAFT_TOOLS:
            return self._draft_call(name, arguments or {}, self._who(requester))
        routed = self._route(name, arguments)
        if isinstance(routed, ToolReply):
            return routed
        try:
            return _result_reply(self.port.call(*routed, requester=self._who(requester)))
        except HarborError as exc:
            return self._refused(routed[0], exc)

    async def acall(
        self, name: str, arguments: Mapping[str, Any] | None = None, *, requester: str | None = None
    ) -> ToolReply:
        """:meth:`call` on the event loop (draft tools, which touch files, in a thread)."""
        if self._desk is not None and name in DRAFT_TOOLS:
            import anyio.to_thread

            args = (name, arguments or {}, self._who(requester))
            return await anyio.to_thread.run_sync(self._draft_call, *args)
        routed = self._route(name, arguments)
        if isinstance(routed, ToolReply):
            return routed
        try:
            return _result_reply(await self.port.acall(*routed, requester=self._who(requester)))
        except HarborError as exc:
            return self._refused(routed[0], exc)

    async def aclose(self) -> None:
        await self.port.aclose()

    def _redact(self, text: str) -> str:
        return text.replace(str(self.port.home), "<state dir>")

    # -- the draft tools ------------------------------------------------------------------

    def _draft_call(self, tool: str, args: Mapping[str, Any], who: str | None) -> ToolReply:
        """One draft tool call; refusals (invalid, denied, needs approval) as error replies."""
        try:
            return self._draft_reply(tool, args, who)
        except HarborError as exc:
            reply = _refusal(None, exc, self._redact(str(exc)))
            return ToolReply(self._redact_data(reply.payload), reply.headline, is_error=True)

    def _draft_reply(self, tool: str, args: Mapping[str, Any], who: str | None) -> ToolReply:
        desk = self._desk
        assert desk is not None
        if tool == LIST_DRAFTS_TOOL:
            example = args.get("example")
            payload = desk.overview(example if isinstance(example, str) and example else None)
            headline = f"{len(payload['live'])} live action(s), {len(payload['drafts'])} draft(s)"
            return ToolReply({"ok": True, **payload}, headline)
        if tool == PROPOSE_DRAFT_TOOL:
            definition = args.get("definition")
            if not isinstance(definition, Mapping):
                why = "must be an action definition (an object)"
                raise InputError(tool, [Violation("definition", "type", why)])
            draft = desk.propose(dict(definition), replace=args.get("replace") is True, who=who)
            action = draft["action"]
            headline = (
                f"proposed draft {draft['name']} ({action['method']} {action['route']}); "
                f"next: {VALIDATE_DRAFT_TOOL}"
            )
            return ToolReply({"ok": True, "draft": draft}, headline)
        name = args.get("name")
        if not isinstance(name, str) or not name:
            raise InputError(tool, [Violation("name", "required", "the draft's name")])
        if tool == VALIDATE_DRAFT_TOOL:
            checked = desk.validate(name)
            problems = checked["problems"]
            if not checked["ok"]:
                first = problems[0] if problems else ""
                headline = (
                    f"draft {name} does not pass validation ({len(problems)} problem(s)): {first}"
                )
                return ToolReply(checked, headline, is_error=True)
            headline = f"draft {name}: ok; next: {TEST_DRAFT_TOOL} or {REQUEST_PUBLICATION_TOOL}"
            return ToolReply(checked, headline)
        if tool == TEST_DRAFT_TOOL:
            data = args.get("input") or {}
            if not isinstance(data, Mapping):
                why = "must be an object ({path, query, body})"
                raise InputError(tool, [Violation("input", "type", why)])
            out = desk.test(name, dict(data), send=args.get("send") is True, who=who)
            req, live = out["request"], out["live_decision"]
            headline = (
                f"{name}: {req['method']} {req['path']}; the live policy decides "
                f"{live['decision']} (rule {live['rule']}); "
            )
            headline += "sent" if out["sent"] else "dry run: nothing was sent"
            return ToolReply({"ok": True, **out}, headline)
        if tool == REQUEST_PUBLICATION_TOOL:
            draft = desk.request_publication(name, who=who)
            headline = (
                f"publication of {name} requested; an operator other than you publishes it "
                "(agents cannot)"
            )
            return ToolReply({"ok": True, "draft": draft}, headline)
        raise AssertionError(tool)  # pragma: no cover - DRAFT_TOOLS is checked by the caller

    def _redact_data(self, data: dict[str, Any]) -> dict[str, Any]:
        home = str(self.port.home)
        text = json.dumps(data, ensure_ascii=False)
        if home and home in text:
            text = text.replace(json.dumps(home)[1:-1], "<state dir>")
        result: dict[str, Any] = json.loads(text)
        return result

    # -- the meta tools -------------------------------------------------------------------

    def _list(self, args: Mapping[str, Any]) -> ToolReply:
        raw_names = args.get("names")
        names = (
            [n for n in raw_names if isinstance(n, str)] if isinstance(raw_names, list) else None
        )
        toolset = args.get("toolset")
        rows: list[dict[str, Any]] = []
        for offer in self._offers.values():
            a, spec = offer.action, offer.spec
            if isinstance(toolset, str) and toolset and a.toolset != toolset:
                continue
            if names and a.name not in names:
                continue
            row: dict[str, Any] = {"name": a.name, "kind": a.kind, "toolset": a.toolset}
            row["summary"] = spec.description
            if names:
                row["input_schema"] = spec.input_schema
            else:
                row["args"] = _signature(spec.input_schema)
            rows.append(row)
        missing = [n for n in names or () if n not in self._offers]
        payload: dict[str, Any] = {"ok": True, "actions": rows}
        headline = f"{len(rows)} action(s)"
        if missing:
            payload["not_offered"] = missing
            headline += f"; not offered here: {', '.join(map(str, missing))}"
        return ToolReply(payload, headline)

    def status(self, ticket: Any) -> ToolReply:
        """The agent's view of a held request: state, and the reason or result once known."""
        if not isinstance(ticket, str) or not ticket:
            err = InputError(APPROVAL_TOOL, [Violation("ticket", "required", "is required")])
            return _refusal(None, err, "ticket: is required (the id a held call returned)")
        try:
            raw = self.port.status(ticket)
        except HarborError as exc:
            return _refusal(None, exc, self._redact(str(exc)))
        payload = {k: raw[k] for k in _STATUS_KEYS if k in raw}
        payload.setdefault("ticket", ticket)
        state = str(payload.get("state", "unknown"))
        headline = f"ticket {ticket} ({payload.get('action', '?')}): {state}"
        if payload.get("message"):
            headline += f": {payload['message']}"
        elif payload.get("reason"):
            headline += f": {payload['reason']}"
        return ToolReply(payload, headline)


_APPROVAL_SPEC = ToolSpec(
    name=APPROVAL_TOOL,
    description=(
        "Check a held request by ticket: pending, approved, rejected (with reason), "
        "expired, or the result once it ran."
    ),
    input_schema={
        "type": "object",
        "properties": {"ticket": {"type": "string"}},
        "required": ["ticket"],
    },
    read_only=True,
    open_world=False,
)


def _name_schema(**extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": {"name": {"type": "string"}, **extra},
            "required": ["name"]}  # fmt: skip


_DRAFT_SPECS = (
    ToolSpec(
        name=LIST_DRAFTS_TOOL,
        description=(
            "Live actions (name, method, route) and drafts with their status. example=NAME "
            "returns that live action's definition: the shape a proposal takes."
        ),
        input_schema={"type": "object", "properties": {"example": {"type": "string"}}},
        read_only=True,
        open_world=False,
    ),
    ToolSpec(
        name=PROPOSE_DRAFT_TOOL,
        description=(
            "Propose a new action (a definition shaped like list_drafts' example: one bounded "
            "route of Atlassian's API). Never callable until an operator publishes it."
        ),
        input_schema={
            "type": "object",
            "properties": {"definition": {"type": "object"}, "replace": {"type": "boolean"}},
            "required": ["definition"],
        },
        read_only=False,
        open_world=False,
    ),
    ToolSpec(
        name=VALIDATE_DRAFT_TOOL,
        description="Check a draft against the manifest rules and Atlassian's OpenAPI document.",
        input_schema=_name_schema(),
        read_only=False,
        idempotent=True,
        open_world=False,
    ),
    ToolSpec(
        name=TEST_DRAFT_TOOL,
        description=(
            "Show the request a draft makes ({path, query, body} input) and the live policy's "
            "decision; send=true sends a validated read only if that policy allows it."
        ),
        input_schema=_name_schema(input={"type": "object"}, send={"type": "boolean"}),
        read_only=True,
    ),
    ToolSpec(
        name=REQUEST_PUBLICATION_TOOL,
        description="Ask an operator to publish a validated draft; only an operator publishes.",
        input_schema=_name_schema(),
        read_only=False,
        idempotent=True,
        open_world=False,
    ),
)


def _signature(schema: dict[str, Any]) -> str:
    """``spaceId|spaceKey*, title*, parentId``: ``*`` marks what is required, ``a|b`` a
    choice of which one is (``oneOf``/``anyOf`` of single required properties)."""
    required = set(schema.get("required", []))
    groups: dict[str, list[str]] = {}
    for key in sorted(_CHOICES & set(schema)):
        names = [b["required"][0] for b in schema[key]
                 if isinstance(b, dict) and len(b.get("required") or ()) == 1]  # fmt: skip
        if len(names) == len(schema[key]) > 1:
            groups.update(dict.fromkeys(names, names))
    out: list[str] = []
    for name in schema.get("properties", {}):
        group = groups.get(name)
        if group is None:
            out.append(name + ("*" if name in required else ""))
        elif name == group[0]:
            out.append("|".join(group) + "*")
    return ", ".join(out)


def _matches(selector: str, action: Action) -> bool:
    if selector.startswith("toolset:"):
        return fnmatch.fnmatchcase(action.toolset, selector[8:])
    if selector.startswith("kind:"):
        return action.kind == selector[5:]
    return fnmatch.fnmatchcase(action.name, selector)


# -- one-call helpers ---------------------------------------------------------------------


def tools(
    port: Port,
    format: Format = "mcp",
    *,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    toolsets: Sequence[str] | None = None,
    kind: Kind | None = None,
    shape: Shape = "per-action",
) -> list[dict[str, Any]]:
    """Tool definitions for the actions the policy does not deny, in one framework's shape."""
    kit = Toolkit(port, include, exclude, toolsets, kind, shape)
    return kit.definitions(format)


def encoded_size(definitions: Iterable[dict[str, Any]]) -> int:
    """Bytes of the tool list as compact UTF-8 JSON: what a client puts in the context."""
    text = json.dumps(list(definitions), separators=(",", ":"), ensure_ascii=False)
    return len(text.encode())


def tool_sizes(
    port: Port,
    format: Format = "mcp",
    **filters: Any,
) -> dict[str, Any]:
    """Count and size of both shapes for the same selection (``tools --stats``)."""
    out: dict[str, Any] = {"format": format}
    for shape in SHAPES:
        kit = Toolkit(port, shape=shape, **filters)
        defs = kit.definitions(format)
        out[shape] = {"tools": len(defs), "bytes": encoded_size(defs)}
        out["actions_offered"] = len(kit.actions)
    out["actions_total"] = len(port.manifest.actions)
    return out
