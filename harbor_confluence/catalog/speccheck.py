"""Checks of an action against Atlassian's OpenAPI documents (and the admin-route deny-list).

The manifest loader proves a route is *bounded*; these checks prove it is *the route
Atlassian documents*, no wider than documented, and not an administration surface.
They are pure functions over an already-loaded document (``check_action``), so drafts,
catalog import and the conformance tests share one implementation; reading the
documents is separate (``load_openapi``) and fails with a message that says where it
looked.  The documents are packaged with harbor-confluence (``openapi/``, gzip, with their
provenance and the SHA-256 of Atlassian's originals), so validating a draft needs no
checkout; ``$CONFLUENCE_OPENAPI_DIR`` points at another copy.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from harbor_confluence.errors import ConfigError
from harbor_confluence.pipeline.manifest import (
    BODY_FORMAT,
    MARKDOWN,
    Action,
    admin_route_problem,
    runner_query,
)
from harbor_confluence.pipeline.route import names_of, shape_of

__all__ = [
    "ENV_SPEC_DIR",
    "PACKAGED_DIR",
    "ApiVersion",
    "SpecUnavailable",
    "admin_route_problem",
    "api_version_for",
    "check_action",
    "load_openapi",
    "package_openapi",
    "packaged_bytes",
    "packaged_provenance",
    "path_variable_problems",
    "spec_dir",
    "spec_path",
]

ApiVersion = Literal["v1", "v2"]
ENV_SPEC_DIR = "CONFLUENCE_OPENAPI_DIR"
_SPEC_FILES: Mapping[str, str] = {
    "v2": "confluence-cloud-v2.openapi.json",
    "v1": "confluence-cloud-v1.openapi*.json",
}
_V2_PREFIX = "/wiki/api/v2"
_V1_PREFIX = "/wiki/rest/api/"
_MAX_DEPTH = 32


# -- the deny-list ----------------------------------------------------------------------
# It lives in pipeline/manifest.py (``admin_route_problem``) so that the manifest loader applies it
# to every manifest (``--manifest``, the installed port, catalog import, drafts) without
# importing this module; check_action reports it too, for actions built without the loader.


# -- route variables that could carry a path ---------------------------------------------

_FORBIDDEN_IN_SEGMENT = "/\\%?#"


@dataclass(frozen=True, slots=True)
class _Alphabet:
    """The characters an anchored, restricted pattern can match."""

    ranges: tuple[tuple[str, str], ...]
    classes: frozenset[str]  # "d" (\d) and/or "w" (\w)

    def forbidden(self) -> str | None:
        for ch in _FORBIDDEN_IN_SEGMENT:
            if any(lo <= ch <= hi for lo, hi in self.ranges):
                return ch
        for lo, hi in self.ranges:
            if ord(lo) <= 0x20 or ord(lo) <= 0x7F <= ord(hi):
                return "a space or control character"
        return None

    def ascii_digits_only(self) -> bool:
        return not self.classes and all(lo >= "0" and hi <= "9" for lo, hi in self.ranges)


_QUANTIFIER = re.compile(r"\{(\d+)(,(\d*))?\}")
_SAFE_ESCAPES = ".-_~"


def _pattern_alphabet(pattern: str) -> _Alphabet | str:
    """The alphabet of an anchored pattern, or why it cannot be shown to be bounded.

    Only a small regex subset is understood (literals, classes, \\d, \\w, groups,
    quantifiers); anything else is refused rather than guessed about.
    """
    if pattern.startswith("^"):
        body = pattern[1:]
    elif pattern.startswith("\\A"):
        body = pattern[2:]
    else:
        return "it is not anchored with ^ (JSON Schema patterns match anywhere in the value)"
    if body.endswith("\\Z"):
        body = body[:-2]
    elif body.endswith("$") and _unescaped_last(body):
        body = body[:-1]
    else:
        return "it is not anchored with $ (JSON Schema patterns match anywhere in the value)"
    ranges: list[tuple[str, str]] = []
    classes: set[str] = set()
    depth = 0
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            if i + 1 >= len(body):
                return "it ends with a lone backslash"
            nxt = body[i + 1]
            if nxt in "dw":
                classes.add(nxt)
            elif nxt in _SAFE_ESCAPES or nxt in _FORBIDDEN_IN_SEGMENT:
                ranges.append((nxt, nxt))
            else:
                return f"the escape \\{nxt} is not understood here"
            i += 2
        elif c == "[":
            end, problem = _parse_class(body, i, ranges, classes)
            if problem:
                return problem
            i = end
        elif c == ".":
            return "'.' matches any character, including '/'"
        elif c == "(":
            if body.startswith("(?:", i):
                i += 3
            elif body.startswith("(?", i):
                return "(?...) groups are not understood here"
            else:
                i += 1
            depth += 1
        elif c == ")":
            depth -= 1
            if depth < 0:
                return "its parentheses do not balance"
            i += 1
        elif c == "|":
            if depth == 0:
                return "a top-level '|' escapes the ^...$ anchors (group the alternatives)"
            i += 1
        elif c in "*+?":
            i += 1
        elif c == "{":
            m = _QUANTIFIER.match(body, i)
            if m is None:
                return "a '{' that is not a {n,m} quantifier"
            i = m.end()
        elif c in "^$":
            return f"'{c}' appears inside the pattern"
        else:
            ranges.append((c, c))
            i += 1
    if depth:
        return "its parentheses do not balance"
    return _Alphabet(tuple(ranges), frozenset(classes))


def _unescaped_last(text: str) -> bool:
    """True when the last character is not escaped by an odd run of backslashes."""
    head = text[:-1]
    return (len(head) - len(head.rstrip("\\"))) % 2 == 0


def _parse_class(
    body: str, start: int, ranges: list[tuple[str, str]], classes: set[str]
) -> tuple[int, str | None]:
    i = start + 1
    if body.startswith("^", i):
        return i, "a negated class [^...] can match '/'"
    items: list[str] = []
    while i < len(body) and (body[i] != "]" or i == start + 1):
        if body[i] == "\\":
            if i + 1 >= len(body):
                return i, "it ends with a lone backslash"
            nxt = body[i + 1]
            if nxt in "dw":
                classes.add(nxt)
            elif nxt in _SAFE_ESCAPES or nxt in _FORBIDDEN_IN_SEGMENT or nxt in "[]":
                items.append(nxt)
            else:
                return i, f"the escape \\{nxt} is not understood inside [...]"
            i += 2
            continue
        items.append(body[i])
        i += 1
    if i >= len(body):
        return i, "an unclosed [...] class"
    k = 0
    while k < len(items):
        if k + 2 < len(items) and items[k + 1] == "-":
            ranges.append((items[k], items[k + 2]))
            k += 3
        else:
            ranges.append((items[k], items[k]))
            k += 1
    return i + 1, None


def path_variable_problems(action: Action) -> list[str]:
    """Route variables whose schema admits '/', '\\', '%', '?', '#' or a dot segment.

    Request building percent-encodes values, but a proxy or server that decodes %2F
    would still see a path: the schema itself must make that impossible.
    """
    problems: list[str] = []
    props = (action.parameters.path or {}).get("properties", {})
    for var in action.compiled_route.variables:
        schema = props.get(var)
        if not isinstance(schema, dict):
            continue  # the manifest loader reports undeclared variables
        why = _path_capable(schema)
        if why:
            problems.append(f"path parameter {var!r} can take a path: {why}")
    return problems


def _path_capable(schema: Mapping[str, Any]) -> str | None:
    if schema.get("type") == "integer":
        return None
    if schema.get("type") != "string":
        return f"type {schema.get('type')!r} is not a string or integer"
    values = schema.get("enum")
    if isinstance(values, list):
        for v in values:
            text = str(v)
            bad = next((c for c in _FORBIDDEN_IN_SEGMENT if c in text), None)
            if bad or text in ("", ".", ".."):
                return f"enum value {text!r} is not a single path segment"
        return None
    pattern = schema.get("pattern")
    if not isinstance(pattern, str):
        return "a string without a pattern or enum accepts anything"
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        return f"pattern {pattern!r} is not a valid regular expression ({exc})"
    alphabet = _pattern_alphabet(pattern)
    if isinstance(alphabet, str):
        return f"pattern {pattern!r} cannot be shown to exclude '/': {alphabet}"
    bad = alphabet.forbidden()
    if bad:
        return f"pattern {pattern!r} allows {bad!r}"
    for dots in (".", ".."):
        if compiled.search(dots):
            return f"pattern {pattern!r} allows the dot segment {dots!r}"
    return None


# -- locating the documents ----------------------------------------------------------------


class SpecUnavailable(ConfigError):
    """Atlassian's OpenAPI document could not be read; says where it looked."""

    code = "openapi_unavailable"


def spec_dir() -> Path:
    """``$CONFLUENCE_OPENAPI_DIR`` when set, else the packaged copies' folder
    (``harbor_confluence/openapi``, gzip-compressed, see ``PROVENANCE.json`` there)."""
    configured = os.environ.get(ENV_SPEC_DIR)
    if configured:
        return Path(configured)
    return PACKAGED_DIR


def spec_path(version: ApiVersion) -> Path:
    """The file ``load_openapi`` reads: in ``$CONFLUENCE_OPENAPI_DIR``, else the packaged
    compressed copy."""
    if not os.environ.get(ENV_SPEC_DIR):
        entry = _packaged_entry(version)
        return PACKAGED_DIR / (entry["file"] if entry else f"{version}.missing")
    directory = spec_dir()
    matches = sorted(directory.glob(_SPEC_FILES[version]))
    return matches[-1] if matches else directory / _SPEC_FILES[version].replace("*", "")


def load_openapi(version: ApiVersion) -> dict[str, Any]:
    """The parsed document (cached per path); raises SpecUnavailable with the path tried.

    ``$CONFLUENCE_OPENAPI_DIR`` wins (a newer download, the test fixtures); without it the
    copy packaged with harbor-confluence is read, after checking it against the SHA-256
    of Atlassian's original recorded in ``PROVENANCE.json``.
    """
    if os.environ.get(ENV_SPEC_DIR):
        return _load(str(spec_path(version)), version)
    return _load_packaged(version)


@functools.cache
def _load(path: str, version: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise SpecUnavailable(
            f"Atlassian's {version} OpenAPI document is not at {path}; "
            f"set {ENV_SPEC_DIR} to the folder that holds it (or unset it to use the copy "
            "packaged with harbor-confluence)"
        ) from None
    except (OSError, ValueError) as exc:
        raise SpecUnavailable(f"cannot read the {version} OpenAPI document {path}: {exc}") from None
    return _checked(data, path)


def _checked(data: Any, source: str) -> dict[str, Any]:
    if not isinstance(data, dict) or "paths" not in data:
        raise SpecUnavailable(f"{source} is not an OpenAPI document (no 'paths')")
    return data


# -- the packaged copies -------------------------------------------------------------------

PACKAGED_DIR = Path(__file__).resolve().parent.parent / "openapi"
PROVENANCE_FILE = "PROVENANCE.json"


def packaged_provenance() -> dict[str, Any]:
    """``openapi/PROVENANCE.json``: for each packaged document its source, the date it was
    taken, and the SHA-256 and size of Atlassian's original (uncompressed) bytes."""
    path = PACKAGED_DIR / PROVENANCE_FILE
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise SpecUnavailable(
            f"the packaged OpenAPI documents are missing or damaged ({path}: {exc}); "
            f"reinstall harbor-confluence or set {ENV_SPEC_DIR}"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("documents"), list):
        raise SpecUnavailable(f"{path} is not a provenance record (no 'documents')")
    return data


def _packaged_entry(version: str) -> dict[str, Any] | None:
    try:
        documents = packaged_provenance()["documents"]
    except SpecUnavailable:
        return None
    for entry in documents:
        if isinstance(entry, dict) and entry.get("version") == version:
            return entry
    return None


def packaged_bytes(version: ApiVersion) -> bytes:
    """Atlassian's original document, decompressed and checked against its SHA-256."""
    entry = _packaged_entry(version)
    if entry is None:
        packaged_provenance()  # says what is wrong with the record, if anything
        raise SpecUnavailable(
            f"no packaged {version} OpenAPI document in {PACKAGED_DIR}; set {ENV_SPEC_DIR}"
        )
    path = PACKAGED_DIR / str(entry["file"])
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise SpecUnavailable(
            f"cannot read the packaged {version} OpenAPI document {path}: {exc}; reinstall "
            f"harbor-confluence or set {ENV_SPEC_DIR}"
        ) from None
    if hashlib.sha256(raw).hexdigest() != entry.get("sha256"):
        raise SpecUnavailable(
            f"the packaged {version} OpenAPI document {path} does not match the SHA-256 in "
            f"{PROVENANCE_FILE}; reinstall harbor-confluence or set {ENV_SPEC_DIR}"
        )
    return raw


@functools.cache
def _load_packaged(version: ApiVersion) -> dict[str, Any]:
    raw = packaged_bytes(version)
    try:
        data = json.loads(raw)
    except ValueError as exc:  # pragma: no cover - the digest matched the original
        raise SpecUnavailable(f"the packaged {version} OpenAPI document: {exc}") from None
    return _checked(data, f"the packaged {version} OpenAPI document")


def package_openapi(source_dir: str | Path, dest_dir: str | Path = PACKAGED_DIR) -> dict[str, Any]:
    """Maintainers: compress Atlassian's documents from ``source_dir`` into ``dest_dir``
    (gzip level 9, no name or time in the header, so the output is reproducible) and
    write ``PROVENANCE.json``.  The sources are copied byte for byte, never re-encoded."""
    src, dest = Path(source_dir), Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    previous: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        previous = json.loads((dest / PROVENANCE_FILE).read_bytes())
    kept = {e.get("version"): e for e in previous.get("documents", []) if isinstance(e, dict)}
    documents = []
    for version in ("v2", "v1"):
        matches = sorted(src.glob(_SPEC_FILES[version]))
        if not matches:
            raise SpecUnavailable(f"no {version} document in {src}")
        original = matches[-1]
        raw = original.read_bytes()
        spec = json.loads(raw)
        packed = gzip.compress(raw, compresslevel=9, mtime=0)
        (dest / f"{original.name}.gz").write_bytes(packed)
        info = spec.get("info", {})
        old = kept.get(version, {})
        documents.append(
            {
                "version": version,
                "file": f"{original.name}.gz",
                "original": original.name,
                "title": info.get("title"),
                "info_version": info.get("version"),
                "openapi": spec.get("openapi"),
                "sha256": hashlib.sha256(raw).hexdigest(),
                "bytes": len(raw),
                "compressed_bytes": len(packed),
                "source": old.get("source", _SOURCES[version]),
                "retrieved": old.get("retrieved", _RETRIEVED[version]),
            }
        )
    record = {
        "compression": "gzip -9, header without file name or time (reproducible)",
        "modified": "no: Atlassian's documents byte for byte",
        "regenerate": (
            'python -c "from harbor_confluence.catalog.speccheck import package_openapi; '
            "package_openapi('../shared/confluence-openapi')\""
        ),
        "documents": documents,
    }
    text = json.dumps(record, indent=2, ensure_ascii=False) + "\n"
    (dest / PROVENANCE_FILE).write_text(text, encoding="utf-8")
    _load_packaged.cache_clear()
    return record


_SOURCES = {
    "v2": "Atlassian developer site: Confluence Cloud REST API v2, openapi-v2.v3.json "
    "(https://developer.atlassian.com/cloud/confluence/rest/v2/intro/)",
    "v1": "Atlassian developer site: Confluence Cloud REST API (v1), swagger.v3.json "
    "(https://developer.atlassian.com/cloud/confluence/rest/v1/intro/)",
}
_RETRIEVED = {"v2": "2026-04", "v1": "2021-11-23"}


def api_version_for(route: str) -> ApiVersion | None:
    if route.startswith(_V2_PREFIX + "/"):
        return "v2"
    if route.startswith(_V1_PREFIX):
        return "v1"
    return None


# -- the check ---------------------------------------------------------------------------


def check_action(
    action: Action, v2_spec: Mapping[str, Any], v1_spec: Mapping[str, Any] | None
) -> list[str]:
    """Every way ``action`` departs from Atlassian's documents; empty means it conforms.

    Route variables map ``_`` to ``-`` (``{page_id}`` is the spec's ``{page-id}``); a
    string with a digits-only pattern stands in for an integer id; narrower enums and
    tighter bounds are fine, wider ones and undocumented parameters are not.
    """
    problems: list[str] = []
    route = action.compiled_route
    admin = admin_route_problem(action.method, route, action.parameters.path)
    if admin:
        problems.append(admin)
    problems.extend(path_variable_problems(action))
    version = api_version_for(action.route)
    if version is None:
        return [*problems, f"route {action.route} is under neither {_V2_PREFIX}/ nor {_V1_PREFIX}"]
    spec = v2_spec if version == "v2" else v1_spec
    if spec is None:
        return [*problems, f"route {action.route} is a v1 route and no v1 document was given"]
    # The shape of the route as the document writes it (v2 paths omit /wiki/api/v2).
    shape = route.shape[len(_V2_PREFIX) :] if version == "v2" else route.shape
    found = _find_path(spec, shape)
    if found is None:
        return [
            *problems,
            f"route {action.route} is not in Atlassian's {version} OpenAPI document",
        ]
    spec_template, item = found
    operation = item.get(action.method.lower())
    if not isinstance(operation, dict):
        methods = sorted(m.upper() for m in item if m in _HTTP_METHODS)
        return [
            *problems,
            f"{action.method} {action.route} is not documented; the spec has "
            f"{', '.join(methods) or 'no operation'} on {spec_template}",
        ]
    ctx = _Ctx(spec, f"{action.method} {spec_template}")
    problems.extend(_scope_problems(action, operation))
    params = [
        _resolve(p, spec) for p in (*item.get("parameters", []), *operation.get("parameters", []))
    ]
    problems.extend(_path_problems(action, spec_template, params, ctx))
    if action.transform is None:  # a transform's input is not what is sent: not comparable
        problems.extend(_query_problems(action, params, ctx))
        problems.extend(_body_problems(action, operation, ctx))
    return problems


_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options"})


@dataclass(frozen=True, slots=True)
class _Ctx:
    spec: Mapping[str, Any]
    where: str


def _find_path(spec: Mapping[str, Any], shape: str) -> tuple[str, Mapping[str, Any]] | None:
    """The document's path template with this shape (variable names may differ)."""
    for template, item in spec.get("paths", {}).items():
        if shape_of(template) == shape and isinstance(item, dict):
            return template, item
    return None


def _resolve(node: Any, spec: Mapping[str, Any]) -> Any:
    """Follow local ``$ref`` pointers (``#/components/...``)."""
    for _ in range(_MAX_DEPTH):
        if not (isinstance(node, dict) and isinstance(node.get("$ref"), str)):
            return node
        ref: str = node["$ref"]
        if not ref.startswith("#/"):
            return {}
        target: Any = spec
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            target = target.get(part) if isinstance(target, dict) else None
        node = target if target is not None else {}
    return node


def _scope_problems(action: Action, operation: Mapping[str, Any]) -> list[str]:
    documented: list[list[str]] = [
        list(entry.get("scopes", []))
        for entry in operation.get("x-atlassian-oauth2-scopes", [])
        if isinstance(entry, dict)
    ]
    if not documented:  # the v1 document only lists scopes under security
        documented = [
            list(req["oAuthDefinitions"])
            for req in operation.get("security", [])
            if isinstance(req, dict) and req.get("oAuthDefinitions")
        ]
    if not documented:
        return []
    ours = set(action.scopes)
    if any(ours == set(scopes) for scopes in documented):
        return []
    options = " or ".join(str(sorted(s)) for s in documented)
    return [f"scopes {sorted(ours)} do not match the spec's {options}"]


def _path_problems(action: Action, template: str, params: list[Any], ctx: _Ctx) -> list[str]:
    problems: list[str] = []
    ours_vars = action.compiled_route.variables
    spec_vars = names_of(template)
    by_name = {p.get("name"): p for p in params if isinstance(p, dict) and p.get("in") == "path"}
    props = (action.parameters.path or {}).get("properties", {})
    for ours, theirs in zip(ours_vars, spec_vars, strict=False):
        if ours.replace("_", "-") != theirs and ours != theirs:
            problems.append(
                f"route variable {{{ours}}} is {{{theirs}}} in the spec: name it "
                f"{{{theirs.replace('-', '_')}}}"
            )
            continue
        param = by_name.get(theirs)
        if param is None:
            continue
        problems.extend(
            _narrower(props.get(ours, {}), param.get("schema", {}), f"path.{ours}", ctx, 0)
        )
    return problems


def _query_problems(action: Action, params: list[Any], ctx: _Ctx) -> list[str]:
    problems: list[str] = []
    spec_query = {
        p.get("name"): p for p in params if isinstance(p, dict) and p.get("in") == "query"
    }
    schema = action.parameters.query or {}
    props: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    local = runner_query(action)
    for name, ours in props.items():
        if name in local:
            continue  # read by the runner, never sent
        if name == BODY_FORMAT and action.body_view is not None:
            ours = _without(ours, MARKDOWN)  # asked as storage, converted by the runner
        param = spec_query.get(name)
        if param is None:
            problems.append(f"query.{name}: not a query parameter of {ctx.where} in the spec")
            continue
        problems.extend(_narrower(ours, param.get("schema", {}), f"query.{name}", ctx, 0))
    for spec_name, param in spec_query.items():
        if param.get("required") and spec_name not in required:
            problems.append(f"query.{spec_name}: the spec requires it; declare it as required")
    return problems


def _body_problems(action: Action, operation: Mapping[str, Any], ctx: _Ctx) -> list[str]:
    body = _resolve(operation.get("requestBody"), ctx.spec)
    ours = action.parameters.body
    if not isinstance(body, dict):
        if ours is not None:
            return [f"body: {ctx.where} takes no request body in the spec"]
        return []
    content = body.get("content", {})
    media = content.get("application/json") if isinstance(content, dict) else None
    if ours is None:
        if body.get("required"):
            return [f"body: {ctx.where} requires a request body in the spec"]
        return []
    if action.request_body_mode == "multipart":
        form = content.get("multipart/form-data") if isinstance(content, dict) else None
        if not isinstance(form, dict):
            return ["body: the spec's request body is not multipart/form-data"]
        return _form_problems(ours, _merged(form.get("schema", {}), ctx.spec))
    if not isinstance(media, dict):
        kinds = ", ".join(content) if isinstance(content, dict) else "none"
        return [f"body: the spec's request body is not JSON ({kinds})"]
    supplied: frozenset[str] = frozenset()
    if action.update is not None:
        ours, supplied = _update_view(action, ours)
    if action.markdown_body is not None:
        ours = _markdown_sent(ours, action.markdown_body)
    return _narrower(ours, media.get("schema", {}), "body", ctx, 0, supplied)


def _without(schema: Mapping[str, Any], value: str) -> dict[str, Any]:
    """``schema`` with ``value`` taken out of its enum."""
    out = dict(schema)
    if isinstance(out.get("enum"), list):
        out["enum"] = [v for v in out["enum"] if v != value]
    return out


def _markdown_sent(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The body schema as sent: the runner turns ``representation: markdown`` into storage."""
    props = dict(body.get("properties", {}))
    prop = props.get(name)
    if isinstance(prop, dict) and isinstance(prop.get("properties"), dict):
        inner = dict(prop["properties"])
        if isinstance(inner.get("representation"), dict):
            inner["representation"] = _without(inner["representation"], MARKDOWN)
        props[name] = {**prop, "properties": inner}
    return {**body, "properties": props}


# Body fields an ``update:`` action takes from the agent but never sends as such.
_UPDATE_INPUTS = frozenset({"expected_version", "version_message"})


def _update_view(action: Action, body: dict[str, Any]) -> tuple[dict[str, Any], frozenset[str]]:
    """The body schema as sent by a versioned update, and the fields the runner fills in."""
    spec = action.update
    assert spec is not None
    props = {k: v for k, v in body.get("properties", {}).items() if k not in _UPDATE_INPUTS}
    view = {
        **body,
        "properties": props,
        "required": [r for r in body.get("required", []) if r not in _UPDATE_INPUTS],
    }
    supplied = {"version", *spec.fill, *spec.fixed}
    if spec.id_field:
        supplied.add(spec.id_field)
    return view, frozenset(supplied)


def _form_problems(ours: Mapping[str, Any], form: Mapping[str, Any]) -> list[str]:
    """Multipart fields travel as strings and files: compare names, not JSON types."""
    props: dict[str, Any] = ours.get("properties", {})
    documented = form.get("properties")
    problems = [
        f"body.{name}: not a form field the spec documents"
        for name in props
        if isinstance(documented, dict) and name not in documented
    ]
    present = set(ours.get("required", [])) | {
        k for k, v in props.items() if isinstance(v, dict) and "default" in v
    }
    missing = sorted(set(form.get("required", [])) - present)
    if missing:
        problems.append(f"body: the spec requires form fields {missing}; declare them")
    return problems


# -- "no wider than the spec" ------------------------------------------------------------

_TYPING_KEYS = frozenset({"type", "properties", "items", "enum", "const", "pattern", "format"})
_UPPER = ("maximum", "maxLength", "maxItems", "exclusiveMaximum")
_LOWER = ("minimum", "minLength", "minItems", "exclusiveMinimum")
_STRING_FORMATS_THAT_BOUND = frozenset({"date-time", "date", "uri", "email", "uuid"})


def _merged(schema: Any, spec: Mapping[str, Any]) -> dict[str, Any]:
    """Resolve refs and fold ``allOf`` into one schema (properties and required merged)."""
    node = _resolve(schema, spec)
    if not isinstance(node, dict):
        return {}
    if "allOf" not in node:
        return node
    out: dict[str, Any] = {k: v for k, v in node.items() if k != "allOf"}
    props: dict[str, Any] = dict(out.get("properties", {}))
    required: list[str] = list(out.get("required", []))
    for part in node["allOf"]:
        sub = _merged(part, spec)
        props.update(sub.get("properties", {}))
        required.extend(sub.get("required", []))
        for k, v in sub.items():
            if k not in ("properties", "required"):
                out.setdefault(k, v)
    if props:
        out["properties"] = props
    if required:
        out["required"] = sorted(set(required))
    return out


def _digits_only(schema: Mapping[str, Any]) -> bool:
    values = schema.get("enum")
    if isinstance(values, list):
        return all(isinstance(v, str) and v.isascii() and v.isdigit() for v in values)
    pattern = schema.get("pattern")
    if not isinstance(pattern, str):
        return False
    alphabet = _pattern_alphabet(pattern)
    return (
        isinstance(alphabet, _Alphabet) and alphabet.ascii_digits_only() and bool(alphabet.ranges)
    )


def _loosened(pattern: str) -> str:
    """A pattern without anchors and with {n,m} bounds as '+', \\d spelt [0-9]."""
    core = pattern.removeprefix("^").removeprefix("\\A")
    core = core.removesuffix("\\Z")
    if core.endswith("$") and _unescaped_last(core):
        core = core[:-1]
    core = _QUANTIFIER.sub("+", core)
    return core.replace("\\d", "[0-9]")


def _narrower(
    ours: Any,
    theirs: Any,
    where: str,
    ctx: _Ctx,
    depth: int,
    supplied: frozenset[str] = frozenset(),
) -> list[str]:
    """Problems that make ``ours`` accept a value the spec's schema would not."""
    if depth > _MAX_DEPTH:
        return []
    if not isinstance(ours, dict):
        return [f"{where}: not a schema"]
    if "$ref" in ours:
        return [f"{where}: use an inline schema, not $ref"]
    spec = _merged(theirs, ctx.spec)
    for key in ("oneOf", "anyOf"):
        branches = spec.get(key)
        if isinstance(branches, list) and branches:
            results = [_narrower(ours, b, where, ctx, depth + 1) for b in branches]
            if any(not r for r in results):
                return []
            return min(results, key=len)
    for key in ("oneOf", "anyOf"):
        branches = ours.get(key)
        if isinstance(branches, list) and "type" not in ours:
            out: list[str] = []
            for i, b in enumerate(branches):
                out.extend(_narrower(b, spec, f"{where}[{key} {i}]", ctx, depth + 1))
            return out
    kind = ours.get("type")
    if kind is None:
        values = ours.get("enum", [ours["const"]] if "const" in ours else None)
        if not isinstance(values, list):
            if not _TYPING_KEYS & spec.keys():
                return []  # the spec documents free-form JSON here (a property's value)
            return [f"{where}: has no type (every parameter must be typed)"]
        kind = _json_type(values[0]) if values else None
    if not isinstance(kind, str):
        return [f"{where}: must have one type, not {kind!r}"]
    problems: list[str] = []
    their_kind = spec.get("type")
    loose_bounds = False
    if their_kind is not None and kind != their_kind:
        if kind == "string" and their_kind == "integer" and _digits_only(ours):
            loose_bounds = True  # a digits-only string id for an int64 id
        elif not (kind == "integer" and their_kind == "number"):
            return [f"{where}: type {kind} but the spec says {their_kind}"]
    problems.extend(_enum_problems(ours, spec, where))
    if not loose_bounds:
        problems.extend(_bound_problems(ours, spec, where))
    if kind == "string" and not loose_bounds:
        problems.extend(_string_problems(ours, spec, where))
    if kind == "array":
        items = ours.get("items")
        if not isinstance(items, dict):
            problems.append(f"{where}: an array needs typed items")
        else:
            problems.extend(_narrower(items, spec.get("items", {}), f"{where}[]", ctx, depth + 1))
    if kind == "object":
        problems.extend(_object_problems(ours, spec, where, ctx, depth, supplied))
    return problems


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, dict) else "array"


def _enum_problems(ours: Mapping[str, Any], spec: Mapping[str, Any], where: str) -> list[str]:
    allowed = spec.get("enum")
    if not isinstance(allowed, list):
        return []
    values = ours.get("enum", [ours["const"]] if "const" in ours else None)
    if not isinstance(values, list):
        return [f"{where}: the spec allows only {allowed}; declare an enum within it"]
    extra = [v for v in values if v not in allowed]
    if extra:
        return [f"{where}: values {extra} are not allowed by the spec ({allowed})"]
    return []


def _bound_problems(ours: Mapping[str, Any], spec: Mapping[str, Any], where: str) -> list[str]:
    problems: list[str] = []
    has_enum = isinstance(ours.get("enum"), list) or "const" in ours
    for key in _UPPER:
        limit = spec.get(key)
        if isinstance(limit, int | float) and not has_enum:
            mine = ours.get(key)
            if not isinstance(mine, int | float) or mine > limit:
                problems.append(f"{where}: {key} must be at most the spec's {limit}, not {mine}")
    for key in _LOWER:
        limit = spec.get(key)
        if isinstance(limit, int | float) and not has_enum:
            mine = ours.get(key)
            if not isinstance(mine, int | float) or mine < limit:
                problems.append(f"{where}: {key} must be at least the spec's {limit}, not {mine}")
    return problems


def _string_problems(ours: Mapping[str, Any], spec: Mapping[str, Any], where: str) -> list[str]:
    if isinstance(ours.get("enum"), list) or "const" in ours:
        return []
    problems: list[str] = []
    theirs = spec.get("pattern")
    if isinstance(theirs, str):
        mine = ours.get("pattern")
        anchored = isinstance(mine, str) and mine.startswith(("^", "\\A"))
        if not (
            isinstance(mine, str)
            and (mine == theirs or (anchored and _loosened(mine) == _loosened(theirs)))
        ):
            problems.append(
                f"{where}: the spec's pattern is {theirs!r}; use it (anchors and {{n,m}} "
                "bounds may tighten it) or an enum"
            )
    fmt = spec.get("format")
    if fmt in _STRING_FORMATS_THAT_BOUND and ours.get("format") != fmt and "pattern" not in ours:
        problems.append(f"{where}: the spec's format is {fmt}; declare format {fmt} or a pattern")
    return problems


def _object_problems(
    ours: Mapping[str, Any],
    spec: Mapping[str, Any],
    where: str,
    ctx: _Ctx,
    depth: int,
    supplied: frozenset[str] = frozenset(),
) -> list[str]:
    props = ours.get("properties")
    if not isinstance(props, dict) or not props:
        return [f"{where}: an object needs declared properties (it would accept anything)"]
    problems: list[str] = []
    theirs_props = spec.get("properties")
    extra_schema = spec.get("additionalProperties")
    for name, sub in props.items():
        path = f"{where}.{name}"
        if isinstance(theirs_props, dict) and name in theirs_props:
            problems.extend(_narrower(sub, theirs_props[name], path, ctx, depth + 1))
        elif isinstance(extra_schema, dict):
            problems.extend(_narrower(sub, extra_schema, path, ctx, depth + 1))
        elif isinstance(theirs_props, dict):
            problems.append(f"{path}: not a property the spec documents")
        else:
            problems.extend(_narrower(sub, {}, path, ctx, depth + 1))
    missing = sorted(set(spec.get("required", [])) - set(ours.get("required", [])) - supplied)
    if missing:
        problems.append(f"{where}: the spec requires {missing}; declare them as required")
    return problems
