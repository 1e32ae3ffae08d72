"""The port manifest: one pydantic model for the declarative YAML/JSON action catalog.

A manifest names every route an agent may reach.  Loading is strict on purpose: unknown
keys, unbounded routes, undeclared route variables, admin and permission-management
routes (the deny-list below) and anything that looks like a credential are refused with
the file, the action and the field in the message.  Every way into a port goes through
this model (``--manifest``, the installed port, catalog import, drafts), so the deny-list
holds everywhere.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from harbor_confluence.errors import ManifestError

from .documents import find_credentials, load_document
from .route import Route, check_route, compile_route
from .validation import PatternError, check_schema, pattern_search

__all__ = [
    "ADMIN_SURFACES",
    "BODY_FORMAT",
    "BODY_LIMIT",
    "BODY_OFFSET",
    "MARKDOWN",
    "PLACEHOLDER_BASE_URL",
    "Action",
    "AuthSpec",
    "BodyViewSpec",
    "Manifest",
    "Parameters",
    "PortInfo",
    "Publisher",
    "SummarySpec",
    "UpdateSpec",
    "admin_route_problem",
    "load_manifest",
    "manifest_from_data",
    "manifest_json_schema",
    "runner_query",
]

PLACEHOLDER_BASE_URL = "https://your-domain.atlassian.net/"
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
PolicyDecision = Literal["auto", "require_approval", "deny"]
RequestBodyMode = Literal["none", "json", "multipart"]
# Named, code-defined input transforms (see transforms.py); no general templating.
TransformName = Literal[
    "cql-search", "page-diff", "label-list", "page-edit", "space-key", "page-from-template",
    "space-tree", "user-search", "task-poll", "attachment-download",
]  # fmt: skip
# Runner-side parts of a content body (bodyView, markdownBody): never sent as such.
BODY_FORMAT = "body-format"
BODY_OFFSET = "body-offset"  # where the piece of the body handed out starts (characters)
BODY_LIMIT = "body-limit"  # how many characters the piece holds at most
MARKDOWN = "markdown"  # a body-format / representation the runner converts to and from storage
BODY_VIEW_QUERY = (BODY_OFFSET, BODY_LIMIT)
# The only headers an action may fix; the credential is never one of them.
FixedHeader = Literal["X-Atlassian-Token"]
Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$", max_length=64)]
PropertyName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")]
SemVer = Annotated[
    str,
    StringConstraints(pattern=r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$"),
]
_SAFE_METHODS = frozenset({"GET"})
_IDEMPOTENT = frozenset({"GET", "PUT", "DELETE"})


# -- the admin-route deny-list: one place, used by the loader, catalog import and speccheck --

# Matched against the route's shape (every {variable} as "{}", see route.py), lower-cased.  Any
# method: reading a permission table is as much an admin surface as writing one.
ADMIN_SURFACES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (label, re.compile(rx))
    for label, rx in (
        ("site administration", r"/admin(-key)?(/|$)"),
        ("permission management", r"permission"),
        ("content restrictions", r"/restrictions?(/|$)"),
        ("role assignments and space roles", r"/(role-assignments|space-roles?|space-role-mode)"),
        ("classification levels", r"classification-level"),
        ("redaction", r"/redact(/|$)"),
        ("data security policies", r"/data-policies(/|$)"),
        ("user management", r"^/wiki/api/v2/user/access(/|$)"),
        ("user management", r"^/wiki/rest/api/user/(email|bulk/migration)(/|$)"),
        ("group management", r"^/wiki/rest/api/group(/|$)"),
        ("audit log administration", r"^/wiki/rest/api/audit(/|$)"),
        ("site settings and themes", r"^/wiki/rest/api/settings(/|$)"),
        ("space settings and themes", r"^/wiki/rest/api/space/\{\}/(settings|theme)(/|$)"),
        ("app administration", r"/app/properties(/|$)"),
    )
)
# Watches are the caller's own: a watch action may not name another user.
_WATCH_ROUTES = "/wiki/rest/api/user/watch/"
_OTHER_USER = frozenset({"accountId", "key", "username"})
# What a letter-capable route variable could be made to say in a position that names a
# resource (right after the API root or after another variable): the deny-list's words,
# and the API's own structural segments.
_SENSITIVE_WORDS = (
    "admin", "admin-key", "permission", "permissions", "space-permissions", "restriction",
    "restrictions", "role-assignments", "space-role", "space-roles", "space-role-mode",
    "classification-level", "classification-levels", "redact", "data-policies", "user",
    "access", "email", "watch", "group", "audit", "settings", "theme", "app", "properties",
    "wiki", "rest", "api", "v2",
)  # fmt: skip
_ROOT_SEGMENTS = frozenset({"wiki", "rest", "api", "v2"})
_MAX_VARIANTS = 4096


def _surface(shape: str) -> str | None:
    shape = shape.lower()
    for label, pattern in ADMIN_SURFACES:
        if pattern.search(shape):
            return label
    return None


def _refusal(method: str, route: str, label: str, via: str = "") -> str:
    return (
        f"{method} {route} is an admin or permission-management route ({label}){via}; "
        "Harbor ports do not expose these"
    ).lstrip()


def admin_route_problem(
    method: str, route: str | Route, path_schema: dict[str, Any] | None = None
) -> str | None:
    """Why ``method route`` is (or can be made into) an admin or permission route, or None.

    Harbor ports expose bounded content work, never the tenant's administration:
    permissions, roles, restrictions, classification, redaction, users and groups.  With
    the action's path parameter schema, a route variable limited to an ``enum`` is checked
    with each of its values, and a variable that can carry letters where it would name a
    resource (after the API root or after another variable) with each deny-listed word it
    accepts, so ``/wiki/rest/api/space/{key}/{what}`` cannot reach ``.../permission``.
    ``route`` is a route string or an action's compiled route.
    """
    compiled = route if isinstance(route, Route) else compile_route(route)
    route = compiled.template
    label = _surface(compiled.shape)
    if label:
        return _refusal(method, route, label)
    if not path_schema:
        return None
    segments = compiled.segments
    options: list[tuple[str, ...]] = []
    variables: dict[int, str] = {}
    for i, (segment, name) in enumerate(segments):
        if name is None:
            options.append((segment,))
            continue
        variables[i] = name
        prop = (path_schema.get("properties") or {}).get(name)
        prev, prev_name = segments[i - 1] if i > 0 else ("", None)
        naming = prev in _ROOT_SEGMENTS or prev_name is not None
        options.append(("{}", *_variable_values(prop, naming)))
    if all(len(values) == 1 for values in options):
        return None
    if math.prod(len(values) for values in options) <= _MAX_VARIANTS:
        candidates: Iterable[Sequence[str]] = itertools.product(*options)
    else:  # too many combinations: each variable on its own, the others left as "{}"
        candidates = (
            [value if j == i else o[0] for j, o in enumerate(options)]
            for i in variables
            for value in options[i][1:]
        )
    for combo in candidates:
        label = _surface("/".join(combo))
        if label:
            via = ", ".join(f"{{{name}}}={combo[i]!r}" for i, name in variables.items()
                            if combo[i] != "{}")  # fmt: skip
            return _refusal(method, route, label, f" when {via}")
    return None


def _variable_values(prop: Any, naming: bool) -> tuple[str, ...]:
    """The concrete values a route variable's schema admits that matter to the deny-list."""
    if not isinstance(prop, dict):
        return ()
    if "enum" in prop:
        return tuple(str(v) for v in prop["enum"] if isinstance(v, str | int))
    if "const" in prop:
        return (str(prop["const"]),)
    if not naming or prop.get("type") != "string":
        return ()
    pattern = prop.get("pattern")
    if isinstance(pattern, str):
        try:
            pattern_search(pattern, "")
        except PatternError:
            pattern = None  # refused with its reason by the schema check
    low, high = prop.get("minLength", 0), prop.get("maxLength")
    out = []
    for word in _SENSITIVE_WORDS:
        for variant in (word, word.upper(), word.capitalize()):
            if len(variant) < low or (high is not None and len(variant) > high):
                continue
            if not isinstance(pattern, str) or pattern_search(pattern, variant):
                out.append(variant)
                break
    return tuple(out)


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        str_strip_whitespace=False,
    )


class Publisher(_Model):
    slug: Name
    name: str = Field(min_length=1, max_length=100)


class AuthSpec(_Model):
    """How the credential is attached; the credential itself is never in a manifest."""

    mode: Literal["header_token", "basic"] = "header_token"
    header_name: Literal["Authorization"] = "Authorization"
    token_prefix: Literal["Bearer"] | None = "Bearer"  # noqa: S105 - a prefix, not a secret


class PortInfo(_Model):
    name: Name
    label: str = Field(min_length=1, max_length=100)
    description: str = Field(min_length=1, max_length=500)
    publisher: Publisher
    category: str = Field(min_length=1, max_length=60)
    tags: list[Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{1,40}$")]] = Field(
        default_factory=list, max_length=20
    )
    kind: Literal["http_api"] = "http_api"
    base_url: str = PLACEHOLDER_BASE_URL
    auth: AuthSpec = Field(default_factory=AuthSpec)

    @field_validator("base_url")
    @classmethod
    def _https_origin(cls, v: str) -> str:
        if not re.match(r"^https://[A-Za-z0-9.-]+(:\d+)?/?$", v):
            raise ValueError("must be an https origin such as https://your-domain.atlassian.net/")
        return v


class Parameters(_Model):
    """JSON Schemas for each input location; each must describe a JSON object."""

    path: dict[str, Any] | None = None
    query: dict[str, Any] | None = None
    body: dict[str, Any] | None = None

    @field_validator("path", "query", "body")
    @classmethod
    def _object_schema(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is None:
            return None
        if v.get("type", "object") != "object":
            raise ValueError("must be a JSON Schema with type: object")
        if v.get("additionalProperties", False) is not False:
            raise ValueError("additionalProperties must be false: unknown keys are refused")
        check_schema(v)  # Draft 2020-12, and every pattern runnable by RE2 (linear time)
        return _closed(v)


class SummarySpec(_Model):
    """Which response fields a json_summary keeps, as JMESPath expressions."""

    items: str | None = Field(default=None, description="JMESPath to the list of results")
    fields: dict[str, str] = Field(description="output name -> JMESPath (per item if items)")
    max_chars: int = Field(default=2000, ge=16, le=100_000, description="string cap per field")

    @field_validator("items")
    @classmethod
    def _items_expr(cls, v: str | None) -> str | None:
        if v is not None:
            _check_jmespath(v)
        return v

    @field_validator("fields")
    @classmethod
    def _field_exprs(cls, v: dict[str, str]) -> dict[str, str]:
        if not v:
            raise ValueError("must keep at least one field")
        for expr in v.values():
            _check_jmespath(expr)
        return v


class UpdateSpec(_Model):
    """A versioned write (seed 003): the runner sends ``version.number = base + 1``.

    ``base`` is the agent's ``expected_version`` when given, else the version read from
    ``read`` (a GET of the same resource) while preparing, so an edit made in between
    ends in Confluence's 409 instead of a silent overwrite.  The same read gives the
    operator a diff of current against proposed content.
    """

    read: Name = Field(description="GET action on the same resource (same path variables)")
    read_query: dict[str, str | int | bool] = Field(default_factory=dict)
    version: str = Field(default="version.number", description="JMESPath into the read")
    current: str = Field(description="JMESPath into the read: the content the diff starts from")
    proposed: str = Field(description="JMESPath into the input body: the new content")
    fill: dict[str, str] = Field(
        default_factory=dict, description="sent body field -> JMESPath into the read, if omitted"
    )
    fixed: dict[str, str] = Field(default_factory=dict, description="sent body field -> constant")
    id_field: str | None = Field(default=None, description="sent body field repeating path id")
    diff: Literal["lines", "blocks"] = Field(
        default="lines",
        description="review of current -> proposed: a unified diff of lines, or (storage "
        "bodies) a diff per section and block that counts macros, links, images lost",
    )

    @field_validator("version", "current", "proposed")
    @classmethod
    def _expr(cls, v: str) -> str:
        _check_jmespath(v)
        return v

    @field_validator("fill")
    @classmethod
    def _fill_exprs(cls, v: dict[str, str]) -> dict[str, str]:
        for expr in v.values():
            _check_jmespath(expr)
        return v


class BodyViewSpec(_Model):
    """A read whose content body the runner hands out whole or in pieces, never cut silently.

    The action's query declares the runner-side parameters ``body-offset`` and
    ``body-limit`` (never sent), and may offer ``body-format: markdown``: the runner asks
    Confluence for storage and hands out the Markdown view of it (editing.to_markdown).
    The summary field then carries the piece (with a truncation marker when more
    follows), and beside it the body's format, total length and SHA-256.
    """

    field: str = Field(default="body", description="summary field that carries the body")
    storage: str = Field(
        default="body.storage.value", description="JMESPath to the storage body in the answer"
    )
    page_chars: int = Field(
        default=20_000, ge=100, le=2_000_000, description="characters per piece by default"
    )

    @field_validator("storage")
    @classmethod
    def _expr(cls, v: str) -> str:
        _check_jmespath(v)
        return v


class Action(_Model):
    """A named, fixed route with typed parameters: the only thing an agent can call."""

    name: Name
    description: str = Field(min_length=1, max_length=300)
    method: HttpMethod
    route: str = Field(max_length=200)
    toolset: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,30}$")] = "general"
    scopes: list[str] = Field(default_factory=list, description="OAuth 2.0 scopes required")
    parameters: Parameters = Field(default_factory=Parameters)
    request_body_mode: RequestBodyMode = "none"
    headers: dict[FixedHeader, Literal["no-check"]] = Field(default_factory=dict)
    transform: TransformName | None = None
    update: UpdateSpec | None = None
    body_view: BodyViewSpec | None = None
    markdown_body: PropertyName | None = Field(
        default=None,
        description="body property {representation, value} that also takes markdown "
        "(converted to storage by the runner)",
    )
    result_mode: Literal["json_summary"] = "json_summary"
    default_policy: PolicyDecision = "deny"
    summary: SummarySpec
    # The route compiled once, when the action is built (model_post_init, which also runs
    # for model_construct): request building, review vetting and the spec checks use it.
    _route: Route = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        self._route = compile_route(self.route)

    @property
    def compiled_route(self) -> Route:
        """The action's compiled :class:`~harbor_confluence.pipeline.route.Route`."""
        compiled = self._route
        if compiled.template != self.route:  # model_copy(update=...) skips model_post_init
            compiled = self._route = compile_route(self.route)
        return compiled

    @field_validator("route")
    @classmethod
    def _bounded_route(cls, v: str, info: ValidationInfo) -> str:
        check_route(v)
        problem = admin_route_problem(str(info.data.get("method", "")), v)
        if problem:
            raise ValueError(problem)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Action:
        declared = set((self.parameters.path or {}).get("properties", {}))
        variables = set(self.compiled_route.variables)
        if variables - declared:
            raise ValueError(
                f"route variables {sorted(variables - declared)} are not declared "
                "as path parameters"
            )
        if declared - variables:
            raise ValueError(
                f"path parameters {sorted(declared - variables)} do not appear in the route"
            )
        path = self.parameters.path or {}
        missing = variables - set(path.get("required", []))
        if missing:
            raise ValueError(f"path parameters {sorted(missing)} must be required")
        for name, schema in path.get("properties", {}).items():
            if schema.get("type") not in ("string", "integer"):
                raise ValueError(f"path parameter {name!r} must be a string or integer")
            if schema.get("type") == "string" and "pattern" not in schema and "enum" not in schema:
                raise ValueError(f"path parameter {name!r} needs a pattern or enum to be bounded")
        body = self.parameters.body
        if self.request_body_mode != "none" and body is None:
            raise ValueError(f"requestBodyMode {self.request_body_mode} needs a body schema")
        if self.request_body_mode == "none" and body is not None:
            raise ValueError("a body schema needs requestBodyMode json or multipart")
        if self.request_body_mode == "multipart" and "file" not in (body or {}).get(
            "properties", {}
        ):
            raise ValueError("requestBodyMode multipart needs a body property 'file'")
        if self.update is not None:
            props = (body or {}).get("properties", {})
            if self.method not in ("PUT", "POST") or "expected_version" not in props:
                raise ValueError(
                    "update needs a PUT/POST action whose body declares expected_version"
                )
            if "version" in props:
                raise ValueError("update builds body.version itself: do not declare it")
        if self.method == "GET" and self.request_body_mode != "none":
            raise ValueError("GET actions cannot take a body")
        if self.body_view is not None:
            self._check_body_view(self.body_view)
        if self.markdown_body is not None:
            self._check_markdown_body(self.markdown_body)
        if self.transform == "page-edit" and (
            self.update is None or "op" not in (body or {}).get("properties", {})
        ):
            raise ValueError("transform page-edit needs an update: and a body property 'op'")
        problem = admin_route_problem(self.method, self.compiled_route, path)
        if problem:
            raise ValueError(f"route: {problem}")
        self._check_own_watches()
        return self

    def _check_own_watches(self) -> None:
        """Watch routes act for the caller; naming another user (``accountId``, ``key``,
        ``username``) is managing someone else's notifications: refused."""
        if not self.route.startswith(_WATCH_ROUTES):
            return
        props = (self.parameters.query or {}).get("properties", {})
        named = sorted(_OTHER_USER & set(props))
        if named:
            raise ValueError(
                f"route: {self.route} acts for the caller only; query {', '.join(named)} "
                "would act for another user (user management)"
            )

    def _check_body_view(self, spec: BodyViewSpec) -> None:
        if self.method != "GET":
            raise ValueError("bodyView is for GET actions")
        props = (self.parameters.query or {}).get("properties", {})
        formats = (props.get(BODY_FORMAT) or {}).get("enum") or []
        if BODY_FORMAT in props and "storage" not in formats:
            raise ValueError(f"bodyView needs the query {BODY_FORMAT}'s enum to hold storage")
        for name in BODY_VIEW_QUERY:
            if (props.get(name) or {}).get("type") != "integer":
                raise ValueError(f"bodyView needs an integer query parameter {name}")
        if spec.field not in self.summary.fields:
            raise ValueError(f"bodyView.field {spec.field!r} is not a summary field")

    def _check_markdown_body(self, name: str) -> None:
        if self.request_body_mode != "json":
            raise ValueError("markdownBody needs requestBodyMode json")
        prop = ((self.parameters.body or {}).get("properties") or {}).get(name) or {}
        inner = prop.get("properties") or {}
        representations = (inner.get("representation") or {}).get("enum") or []
        if MARKDOWN not in representations or "storage" not in representations:
            raise ValueError(
                f"markdownBody {name!r} needs a body property {name} with a representation "
                "enum holding storage and markdown"
            )
        if (inner.get("value") or {}).get("type") != "string":
            raise ValueError(f"markdownBody {name!r} needs {name}.value to be a string")

    @property
    def is_read(self) -> bool:
        return self.method in _SAFE_METHODS

    @property
    def kind(self) -> Literal["read", "write"]:
        return "read" if self.is_read else "write"

    @property
    def idempotent(self) -> bool:
        return self.method in _IDEMPOTENT

    @property
    def destructive(self) -> bool:
        return self.method == "DELETE"


class Manifest(_Model):
    """A port: its metadata and its closed list of actions."""

    manifest_version: SemVer
    port: PortInfo
    actions: list[Action] = Field(min_length=1, max_length=500)

    @field_validator("actions")
    @classmethod
    def _unique(cls, v: list[Action]) -> list[Action]:
        seen: set[str] = set()
        for a in v:
            if a.name in seen:
                raise ValueError(f"duplicate action name {a.name!r}")
            seen.add(a.name)
        return v

    @model_validator(mode="after")
    def _reads_exist(self) -> Manifest:
        """An update's read must be a GET action of this manifest with the same variables."""
        names = {a.name: a for a in self.actions}
        for a in self.actions:
            if a.update is None:
                continue
            read = names.get(a.update.read)
            if read is None or not read.is_read:
                raise ValueError(
                    f"action {a.name!r}: update.read {a.update.read!r} is not a GET action"
                )
            if sorted(read.compiled_route.variables) != sorted(a.compiled_route.variables):
                raise ValueError(
                    f"action {a.name!r}: update.read {read.name!r} needs the same path variables"
                )
        return self

    @cached_property
    def by_name(self) -> dict[str, Action]:
        return {a.name: a for a in self.actions}

    def action(self, name: str) -> Action:
        try:
            return self.by_name[name]
        except KeyError:
            raise KeyError(name) from None


def runner_query(action: Action) -> frozenset[str]:
    """Query parameters the runner reads itself and never sends (``bodyView``'s)."""
    return frozenset(BODY_VIEW_QUERY) if action.body_view is not None else frozenset()


def _check_jmespath(expr: str) -> None:
    import jmespath
    from jmespath.exceptions import JMESPathError

    try:
        jmespath.compile(expr)
    except JMESPathError as exc:
        raise ValueError(f"invalid JMESPath {expr!r}: {exc}") from None


def _closed(schema: dict[str, Any]) -> dict[str, Any]:
    """Add ``additionalProperties: false`` to every object schema that lists properties."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("properties", "patternProperties", "$defs", "definitions") and isinstance(
            value, dict
        ):
            out[key] = {k: _closed(v) if isinstance(v, dict) else v for k, v in value.items()}
        elif key in ("items", "not", "if", "then", "else") and isinstance(value, dict):
            out[key] = _closed(value)
        elif key in ("anyOf", "oneOf", "allOf") and isinstance(value, list):
            out[key] = [_closed(v) if isinstance(v, dict) else v for v in value]
        else:
            out[key] = value
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def manifest_from_data(data: Any, source: str) -> Manifest:
    """Validate parsed manifest data; errors name the source, the action and the field."""
    problems = list(find_credentials(data))
    if problems:
        raise ManifestError(source, [f"credential refused at {p}" for p in problems])
    if not isinstance(data, dict):
        raise ManifestError(source, ["a manifest must be a mapping"])
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(source, _describe(exc, data)) from None


def load_manifest(path: str | Path) -> Manifest:
    """Load a manifest file (YAML or JSON)."""
    return manifest_from_data(load_document(path), str(path))


def _describe(exc: ValidationError, data: dict[str, Any]) -> list[str]:
    out: list[str] = []
    raw_actions = data.get("actions")
    actions: list[Any] = raw_actions if isinstance(raw_actions, list) else []
    for err in exc.errors(include_url=False):
        loc = list(err["loc"])
        where = ""
        if len(loc) >= 2 and loc[0] == "actions" and isinstance(loc[1], int):
            raw = actions[loc[1]] if loc[1] < len(actions) else None
            name = raw.get("name") if isinstance(raw, dict) else None
            where = f"action {name!r} (actions[{loc[1]}]) " if name else f"actions[{loc[1]}] "
            loc = loc[2:]
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        if not loc and where:  # a rule over the whole action: the message names the fields
            out.append(f"{where.rstrip()}: {msg}")
            continue
        field = ".".join(str(p) for p in loc) or "(document)"
        out.append(f"{where}field {field}: {msg}")
    return out


def manifest_json_schema() -> dict[str, Any]:
    """The JSON Schema of the manifest format (what ``manifest schema`` prints)."""
    schema = Manifest.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://harbor-confluence.invalid/schemas/manifest.schema.json"
    return schema
