"""Hypothesis strategies for the property suite (tests/test_properties.py).

``from_schema`` translates the JSON Schema subset the packaged manifest uses (type,
properties, required, additionalProperties, enum, const, minimum/maximum,
minLength/maxLength, pattern, format, items/minItems/maxItems/uniqueItems, oneOf/anyOf)
into a strategy of values the schema accepts.  ``valid_input`` builds a whole action input
(``{"path", "query", "body"}``) from an action's own schemas; ``hostile_input`` takes such
an input and breaks it: wrong types, hostile unicode, traversal-looking path values,
integral floats, huge numbers, depth, size, unknown keys, missing required keys;
``boundary_input`` puts one declared bound (``boundaries``) at, or one step past, its limit.

Huge or deep values are drawn as markers (``Long``, ``Deep``, ``Wide``) so a failing
example prints in one line; ``materialize`` turns them into the real value and
``to_json_text`` writes them as JSON text without recursion (for the CLI).
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC
from functools import cache
from typing import Any

import jsonschema
from hypothesis import strategies as st

from harbor_confluence.pipeline.manifest import Action
from harbor_confluence.sim.seed import DECISION_TYPE, TIMELINE_TYPE, seed_store
from harbor_confluence.sim.store import Store

__all__ = [
    "AT_BOUNDARY",
    "LOCATIONS",
    "Case",
    "Deep",
    "Long",
    "Wide",
    "boundaries",
    "boundary_input",
    "from_schema",
    "hostile_input",
    "hostile_strings",
    "json_values",
    "materialize",
    "schema_valid",
    "to_json_text",
    "valid_case",
    "valid_input",
]

LOCATIONS = ("path", "query", "body")
_FORMAT_CHECKER = jsonschema.Draft202012Validator.FORMAT_CHECKER
# Caps on what a "valid" draw may contain, so examples stay fast; boundaries above the cap
# come from Long markers instead.
_MAX_TEXT = 64
_MAX_ITEMS = 8


# -- markers for huge and deep values ----------------------------------------------------


@dataclass(frozen=True)
class Long:
    """``chunk * times``: a very long string, printed short."""

    chunk: str
    times: int

    def value(self) -> str:
        return self.chunk * self.times


@dataclass(frozen=True)
class Deep:
    """``depth`` nested lists or objects around ``leaf``, printed short."""

    depth: int
    kind: str = "list"  # "list" | "dict"
    leaf: Any = 1

    def value(self) -> Any:
        out: Any = materialize(self.leaf)
        for _ in range(self.depth):
            out = [out] if self.kind == "list" else {"a": out}
        return out


@dataclass(frozen=True)
class Wide:
    """A list holding ``item`` ``count`` times, or an object of ``count`` keys (``k0``..)."""

    count: int
    kind: str = "list"
    item: Any = 0

    def value(self) -> Any:
        item = materialize(self.item)
        if self.kind == "list":
            return [item] * self.count
        return {f"k{i}": item for i in range(self.count)}


_MARKERS = (Long, Deep, Wide)


def materialize(value: Any) -> Any:
    """The real JSON-ish value behind any markers (a fresh copy: the runner may not share)."""
    if isinstance(value, _MARKERS):
        return value.value()
    if isinstance(value, dict):
        return {k: materialize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [materialize(v) for v in value]
    return value


def to_json_text(value: Any, *, ascii_only: bool = True) -> str:
    """JSON text for ``value`` (markers included) without recursing per nesting level of a
    Deep marker; lone surrogates become ``\\udXXX`` escapes, NaN/Infinity the tokens Python's
    json module reads."""
    parts: list[str] = []
    _emit(value, parts, ascii_only)
    return "".join(parts)


def _emit(value: Any, parts: list[str], ascii_only: bool) -> None:
    if isinstance(value, Deep):
        opening, closing = ("[", "]") if value.kind == "list" else ('{"a":', "}")
        parts.append(opening * value.depth)
        _emit(value.leaf, parts, ascii_only)
        parts.append(closing * value.depth)
    elif isinstance(value, Long | Wide):
        _emit(value.value(), parts, ascii_only)
    elif isinstance(value, dict):
        parts.append("{")
        for i, (k, v) in enumerate(value.items()):
            if i:
                parts.append(",")
            parts.append(_string_text(str(k), ascii_only) + ":")
            _emit(v, parts, ascii_only)
        parts.append("}")
    elif isinstance(value, list):
        parts.append("[")
        for i, v in enumerate(value):
            if i:
                parts.append(",")
            _emit(v, parts, ascii_only)
        parts.append("]")
    elif isinstance(value, str):
        parts.append(_string_text(value, ascii_only))
    else:  # None, bool, int, float (NaN/Infinity as Python's json writes them)
        parts.append(json.dumps(value))


def _string_text(text: str, ascii_only: bool) -> str:
    has_surrogate = any(0xD800 <= ord(c) <= 0xDFFF for c in text)
    return json.dumps(text, ensure_ascii=ascii_only or has_surrogate)


# -- what the seeded simulator holds: valid values that also hit real records -------------


@cache
def seed_values() -> dict[str, tuple[str, ...]]:
    """Ids, keys and names from the simulator's seed, keyed by the pattern they fit."""
    store = Store()
    seed_store(store)
    ids = sorted(
        {s.id for s in store.spaces()}
        | {p.id for p in store.pages()}
        | {b.id for b in store.blogposts()}
        | {c.id for c in store.comments()}
        | {a.id for a in store.attachments()}
        | {c.id for c in store.custom_contents()}
        | {t.id for t in store.tasks()}
        | set(store._properties)
    )
    labels = sorted({name for _, _, name in store.labels()})
    return {
        "^[0-9]{1,19}$": tuple(str(i) for i in ids),
        "^(att)?[0-9]{1,19}$": tuple(f"att{a.id}" for a in store.attachments())
        + tuple(str(a.id) for a in store.attachments()),
        "^[a-z0-9_-]{1,255}$": tuple(labels),
        "^[A-Za-z0-9~_]{1,255}$": tuple(s.key for s in store.spaces()),
        "^[A-Za-z0-9:._-]{1,255}$": (DECISION_TYPE, TIMELINE_TYPE),
        "^[A-Za-z0-9:_-]{1,128}$": tuple(u.account_id for u in store.users()),
    }


# -- schema -> strategy ------------------------------------------------------------------

_ANY_KEYWORDS = frozenset({"description", "title", "default", "examples", "$comment"})
_BASE64 = "^[A-Za-z0-9+/]*={0,2}$"


def json_values(max_leaves: int = 8) -> st.SearchStrategy[Any]:
    """Any JSON value (finite numbers, no surrogates): what ``{}`` accepts."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**53), 2**53),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=16),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def from_schema(schema: Any) -> st.SearchStrategy[Any]:
    """Values ``schema`` accepts (the manifest's subset of JSON Schema 2020-12)."""
    if schema is True or (isinstance(schema, dict) and not set(schema) - _ANY_KEYWORDS):
        return json_values()
    if schema is False or not isinstance(schema, dict):
        return st.nothing()
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(list(schema["enum"]))
    kind = schema.get("type")
    if kind is None and ("oneOf" in schema or "anyOf" in schema) and "properties" not in schema:
        branches = schema.get("oneOf") or schema.get("anyOf")
        rest = {k: v for k, v in schema.items() if k not in ("oneOf", "anyOf")}
        return st.one_of([from_schema({**rest, **b}) for b in branches]).filter(
            _validator(schema).is_valid
        )
    if isinstance(kind, list):
        return st.one_of([from_schema({**schema, "type": k}) for k in kind])
    builders: dict[str, Callable[[dict[str, Any]], st.SearchStrategy[Any]]] = {
        "object": _object,
        "array": _array,
        "string": _string,
        "integer": _integer,
        "number": _number,
    }
    if kind in builders:
        return builders[kind](schema)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return json_values()


def _integer(schema: dict[str, Any]) -> st.SearchStrategy[int]:
    low = schema.get("minimum")
    high = schema.get("maximum")
    if "exclusiveMinimum" in schema:
        low = math.floor(schema["exclusiveMinimum"]) + 1
    if "exclusiveMaximum" in schema:
        high = math.ceil(schema["exclusiveMaximum"]) - 1
    return st.integers(
        None if low is None else math.ceil(low), None if high is None else math.floor(high)
    )


def _number(schema: dict[str, Any]) -> st.SearchStrategy[float]:
    return st.floats(
        schema.get("minimum"), schema.get("maximum"), allow_nan=False, allow_infinity=False
    )


def _string(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    low = int(schema.get("minLength", 0))
    high = schema.get("maxLength")
    fmt = schema.get("format")
    pattern = schema.get("pattern")
    if fmt == "date":
        base: st.SearchStrategy[str] = st.dates().map(lambda d: d.isoformat())
    elif fmt == "date-time":
        base = st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat())
    elif pattern == _BASE64:
        base = st.binary(max_size=48).map(lambda b: base64.b64encode(b).decode())
    elif pattern is not None:
        base = st.from_regex(pattern, fullmatch=True)
        seeds = seed_values().get(pattern)
        if seeds:
            base = st.one_of(st.sampled_from(seeds), base)
    else:
        cap = _MAX_TEXT if high is None else min(int(high), _MAX_TEXT)
        base = st.text(min_size=low, max_size=max(cap, low))
        if high is not None and _MAX_TEXT < int(high) <= 4096:
            # the boundary itself: exactly maxLength characters (longer ones: hostile "size")
            base = st.one_of(base, st.just("x" * int(high)))
    if low or high is not None:
        base = base.filter(lambda s: len(s) >= low and (high is None or len(s) <= int(high)))
    if pattern is not None and (fmt is not None or pattern == _BASE64):
        compiled = re.compile(pattern)
        base = base.filter(lambda s: compiled.search(s) is not None)
    return base


def _array(schema: dict[str, Any]) -> st.SearchStrategy[list[Any]]:
    low = int(schema.get("minItems", 0))
    high = schema.get("maxItems")
    cap = max(low, _MAX_ITEMS if high is None else min(int(high), _MAX_ITEMS))
    items = from_schema(schema.get("items", True))
    unique = bool(schema.get("uniqueItems"))
    return st.lists(items, min_size=low, max_size=cap, unique_by=(_freeze if unique else None))


def _freeze(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _object(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    branches = schema.get("oneOf") or schema.get("anyOf")
    if branches and all(isinstance(b, dict) and set(b) <= {"required"} for b in branches):
        # oneOf of "required" alternatives: pick one, and for oneOf leave out the keys
        # only the others require, so exactly one alternative matches.
        exclusive = "oneOf" in schema

        def branch(i: int) -> st.SearchStrategy[dict[str, Any]]:
            chosen = set(branches[i].get("required", []))
            others = set().union(*(set(b.get("required", [])) for b in branches)) - chosen
            return _fixed(schema, chosen, others if exclusive else set())

        return st.integers(0, len(branches) - 1).flatmap(branch)
    strategy = _fixed(schema, set(), set())
    if branches:  # some other shape of alternatives: generate, then keep what validates
        strategy = strategy.filter(_validator(schema).is_valid)
    return strategy


def _fixed(
    schema: dict[str, Any], also_required: set[str], forbidden: set[str]
) -> st.SearchStrategy[dict[str, Any]]:
    props: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", [])) | also_required
    fixed = {k: from_schema(props.get(k, True)) for k in sorted(required)}
    optional = {
        k: from_schema(v) for k, v in props.items() if k not in required and k not in forbidden
    }
    strategy = st.fixed_dictionaries(fixed, optional=optional)
    extra = schema.get("additionalProperties", True)
    if isinstance(extra, dict) and extra:
        names = st.text(min_size=1, max_size=8).filter(lambda k: k not in props)
        more = st.dictionaries(names, from_schema(extra), max_size=3)
        strategy = st.tuples(strategy, more).map(lambda t: {**t[1], **t[0]})
    return strategy


@cache
def _validator_for(schema_text: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(schema_text), format_checker=_FORMAT_CHECKER)


def _validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return _validator_for(json.dumps(schema, sort_keys=True))


def schema_valid(action: Action, data: Any) -> bool | None:
    """Whether ``data`` fits the action's own schemas (what the runner must accept before
    its own extra rules); None when the judge itself cannot tell (too deep to check)."""
    if data is None:
        data = {}
    if not isinstance(data, dict) or set(data) - set(LOCATIONS):
        return False
    try:
        for loc in LOCATIONS:
            schema = getattr(action.parameters, loc)
            value = data.get(loc)
            if schema is None:
                if value not in (None, {}):
                    return False
                continue
            if not _validator(schema).is_valid({} if value is None else value):
                return False
    except RecursionError:
        return None
    return True


# -- whole inputs ------------------------------------------------------------------------


@cache
def seed_records() -> dict[str, tuple[Any, ...]]:
    """Seeded records by the route segment that names them (path values that exist)."""
    store = Store()
    seed_store(store)

    def ids(items: Any) -> tuple[str, ...]:
        return tuple(str(i.id) for i in items)

    props = store._properties.values()
    return {
        "pages": ids(store.pages()),
        "blogposts": ids(store.blogposts()),
        "spaces": ids(store.spaces()),
        "footer-comments": ids(c for c in store.comments() if c.kind == "footer"),
        "inline-comments": ids(c for c in store.comments() if c.kind == "inline"),
        "attachments": ids(store.attachments()),
        "tasks": ids(store.tasks()),
        "custom-content": ids(store.custom_contents()),
        "content": ids(store.pages()) + ids(store.blogposts()) + ids(store.attachments()),
        "label": tuple(name for _, prefix, name in store.labels() if prefix == "global"),
        "versions": ("1", "2", "3"),
        # (owner, property) pairs, for routes with both
        "pages/properties": tuple(
            (str(p.owner_id), str(p.id)) for p in props if p.owner_type == "page"
        ),
        "spaces/properties": tuple(
            (str(p.owner_id), str(p.id)) for p in props if p.owner_type == "space"
        ),
    }


def _seeded_path(action: Action) -> st.SearchStrategy[dict[str, Any]] | None:
    """Path values that name seeded records (so reads find something), or None."""
    schema = action.parameters.path
    if not schema:
        return None
    records = seed_records()
    segments = action.route.split("/")
    props = schema.get("properties", {})
    names = [s[1:-1] for s in segments if s.startswith("{")]
    owner = next((s for s in ("pages", "spaces") if f"/{s}/{{" in action.route), None)
    if "property_id" in names and owner is not None:
        first = names[0]
        pairs = records[f"{owner}/properties"]
        return st.sampled_from(pairs).map(lambda p: {first: p[0], "property_id": p[1]})
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for i, segment in enumerate(segments):
        if not segment.startswith("{"):
            continue
        name = segment[1:-1]
        seeds = records.get(segments[i - 1], ())
        if props.get(name, {}).get("type") == "integer":
            seeds = tuple(int(v) for v in seeds if v.isdigit())
        if not seeds:
            return None
        parts[name] = st.sampled_from(seeds)
    return st.fixed_dictionaries(parts)


def valid_input(action: Action) -> st.SearchStrategy[dict[str, Any]]:
    """``{"path", "query", "body"}`` for ``action``; optional locations may be left out.

    Path values name seeded records three times in four, so reads mostly find something.
    """
    parts: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for loc in LOCATIONS:
        schema = getattr(action.parameters, loc)
        if schema is None:
            continue
        strategy = from_schema(schema)
        seeded = _seeded_path(action) if loc == "path" else None
        if seeded is not None:
            strategy = st.one_of(seeded, seeded, seeded, strategy)
        strategy = strategy.filter(_validator(schema).is_valid)
        if schema.get("required"):
            parts[loc] = strategy
        else:
            optional[loc] = strategy
    return st.fixed_dictionaries(parts, optional=optional)


@dataclass(frozen=True)
class Case:
    """One drawn input: what was done to it (``mutations``) and the input itself."""

    mutations: tuple[str, ...]
    data: Any = field(repr=True)

    @property
    def valid_by_construction(self) -> bool:
        """No mutation, or only boundary values the schema still accepts (``at-...``)."""
        return all(m.startswith(AT_BOUNDARY) for m in self.mutations)


# Hostile strings: control characters, bidi and zero-width, NUL, lone surrogates (what
# "\ud800" escapes decode to), look-alike digits, URL syntax and traversal, injections.
# fmt: off
_HOSTILE_TEXT = (
    "", " ", "\x00", "a\x00b", "\r\n", "x\r\nX-Injected: 1", "\x1b[2J", "\x7f", "\t", "\x85",
    "\u202e", "abc\u202eevil", "\u200f", "\u2066x\u2069", "\u200b", "\ufeff", "\u2028",
    "\ud800", "\udfff", "a\udc80b", "\U0001f600", "e\u0301", "\uff11\uff12\uff13", "\u0663",
    "../", "..", ".", "%2e%2e", "%2E%2E%2F", "/", "?", "#", "?x=1", "#frag", "a/b", "..%2f",
    "%00", "\\", "%", "&", "=", "+", ";", "@", ":", "~", '"', "'", "<script>", "${jndi:x}",
    "{}", "null", "true", "0", "-1", "1e3", "0x10", "98306\n", " 98306", "98306 ",
    "98306/..", "98306?x", "98306#", "98306%2F..", "98306/../../admin", "\u0000../",
)
_TRAVERSAL = (
    "../", "..", ".", "%2e%2e", "%2E%2E", "%2e%2e%2f", "/", "?", "#", "..%2f", "%2f",
    "./98306", "98306/..", "../../wiki/rest/api/space/ENG/permission", "98306?x=1",
    "98306#x", "98306%23", "98306/", "/98306", "98306\\..", "98306;x", "98306%00",
    "\u2024\u2024", "\uff0e\uff0e",
)
# fmt: on
_SURROGATES = st.integers(0xD800, 0xDFFF).map(chr)
_WEIRD_CHARS = st.one_of(
    st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Mn", "Co"]),
    st.sampled_from("\u202e\u202d\u200e\u200f\u2066\u2067\u2068\u2069\u061c\ufeff"),
    _SURROGATES,
    st.characters(),
)


def hostile_strings() -> st.SearchStrategy[Any]:
    """Strings (and Long markers) an agent should never get onto the wire unchecked."""
    return st.one_of(
        st.sampled_from(_HOSTILE_TEXT),
        st.lists(_WEIRD_CHARS, min_size=1, max_size=12).map("".join),
        st.builds(
            Long,
            st.sampled_from(["x", "9", "\u00e9", "\u202e", "\x00", "\U0001f600", "../", "%2e"]),
            st.sampled_from([256, 2049, 10_001, 100_001, 1_000_001]),
        ),
    )


# fmt: off
_HUGE_NUMBERS = (
    2**31, 2**53 + 1, 2**63, 2**64, -(2**63) - 1, 10**100, -(10**30), 1e308, -1e308, 1e-300,
    float("inf"), float("-inf"), float("nan"), -0.0, 0.5, True, False,
)
_EXTRA_KEYS = (
    "expand", "x", "", " ", "__proto__", "constructor", "LIMIT", "limit ", "Id", "id\x00",
    "\ud800", "\u202eid", "body", "path", "query", "version", "_links", "$ref", "a" * 300,
)
# fmt: on


def _slots(schema: Any, prefix: tuple[Any, ...], depth: int = 0) -> Iterator[tuple[Any, ...]]:
    """Every place a value can go under ``schema`` (properties; array items as index 0)."""
    yield prefix
    if not isinstance(schema, dict) or depth > 3:
        return
    for name, sub in (schema.get("properties") or {}).items():
        yield from _slots(sub, (*prefix, name), depth + 1)
    if isinstance(schema.get("items"), dict):
        yield from _slots(schema["items"], (*prefix, 0), depth + 1)


def _schema_at(action: Action, path: tuple[Any, ...]) -> Any:
    schema: Any = getattr(action.parameters, path[0]) if path else None
    for step in path[1:]:
        if not isinstance(schema, dict):
            return None
        schema = (
            schema.get("items")
            if isinstance(step, int)
            else (schema.get("properties") or {}).get(step)
        )
    return schema


def _set(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    """``data`` with ``value`` at ``path``, creating containers on the way (copy-on-write)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(head, int):
        out_list = list(data) if isinstance(data, list) else []
        while len(out_list) <= head:
            out_list.append(None)
        out_list[head] = _set(out_list[head], rest, value)
        return out_list
    out = dict(data) if isinstance(data, dict) else {}
    out[head] = _set(out.get(head), rest, value)
    return out


def _delete(data: Any, path: tuple[Any, ...]) -> Any:
    if not path or not isinstance(data, dict | list):
        return data
    head, rest = path[0], path[1:]
    if isinstance(data, dict):
        if head not in data:
            return data
        out = dict(data)
        if rest:
            out[head] = _delete(out[head], rest)
        else:
            del out[head]
        return out
    if not isinstance(head, int) or head >= len(data):
        return data
    out_list = list(data)
    if rest:
        out_list[head] = _delete(out_list[head], rest)
    else:
        del out_list[head]
    return out_list


def _other_type(kind: Any) -> st.SearchStrategy[Any]:
    """A value whose JSON type is not ``kind``."""
    options: dict[str, st.SearchStrategy[Any]] = {
        "string": st.one_of(st.sampled_from(["98306", "", "x"]), st.text(max_size=4)),
        "integer": st.sampled_from([0, 1, 98306, -1, 250]),
        "number": st.sampled_from([1.5, -0.25]),
        "boolean": st.booleans(),
        "null": st.none(),
        "array": st.sampled_from([[], ["98306"], [1, "a"]]),
        "object": st.sampled_from([{}, {"a": 1}, {"id": "98306"}]),
    }
    wrong = [
        s for k, s in options.items() if k != kind and not (kind == "number" and k == "integer")
    ]
    return st.one_of(wrong)


def _slot_list(action: Action) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for loc in LOCATIONS:
        schema = getattr(action.parameters, loc)
        out.extend(_slots(schema, (loc,)))
    return out or [("query",)]


def _leaf_slots(action: Action, kinds: tuple[str, ...]) -> list[tuple[Any, ...]]:
    out = []
    for slot in _slot_list(action):
        schema = _schema_at(action, slot)
        if isinstance(schema, dict) and schema.get("type") in kinds:
            out.append(slot)
    return out


Mutator = Callable[[st.DrawFn, Action, Any], tuple[Any, str]]


def _mut_wrong_type(draw: st.DrawFn, action: Action, data: Any) -> tuple[Any, str]:
    slot = draw(st.sampled_from(_slot_list(action)))
    schema = _schema_at(action, slot)
    kind = schema.get("type", "object") if isinstance(schema, dict) else "object"
    return _set(data, slot, draw(_other_type(kind))), f"wrong-type@{_name(slot)}"


def _mut_hostile_string(draw: st.DrawFn, action: Action, data: Any) -> tuple[Any, str]:
    slots = _leaf_slots(action, ("string",)) or _slot_list(action)
    slot = draw(st.sampled_from(slots))
    return _set(data, slot, draw(hostile_strings())), f"hostile-string@{_name(slot)}"


def _mut_traversal(draw: st.DrawFn, action: Action, data: Any) -> tuple[Any, str]:
    slots = [s for s in _slot_list(action) if s[0] == "path" and len(s) == 2]
    slots = slots or _leaf_slots(action, ("string",)) or _slot_list(action)
    slot = draw(st.sampled_from(slots))
    return _set(data, slot, draw(st.sampled_from(_TRAVERSAL))), f"traversal@{_name(slot)}"


def _mut_suffix(draw: st.DrawFn, action: Action, data: Any) -> tuple[Any, str]:
    """A valid string with a trailing newline or padding: ``$`` in Python's ``re`` still
    matches before a final newline."""
    slots = _leaf_slots(action, ("string",))
    if not slots:
        return _mut_wrong_type(draw, action, data)
    slot = draw(st.sampled_from(slots))
    schema = _schema_at(action, slot)
    base = draw(from_schema(schema))
    if not isinstance(base, str):
        base = str(base)
    affix = draw(st.sampled_from(["\n", "\r\n", " ", "\t", "\x00", "\u202e", "/", "\\n"]))
    value = draw(st.sampled_from([base + affix, affix + base]))
    return _set(data, slot, value), f"affix@{_name(slot)}"


def _mut_integral_float(draw: st.DrawFn, action: Action, data: Any) -> tuple[Any, str]:
    slots = _leaf_slots(action, ("integer",))
    if not slots:
        return _mut_huge_number(draw, action, data)
    slot = draw(st.sampled_from(slots))
    value = draw(from_schema(_schema_at(action, slot)))
    return _set(data, slot, float(value)), f"integral-float@{_name(slot)}"


def _mut_huge_number(draw: st.DrawFn, action: Action, data: Any) -> tuple[Any, str]:
    slots = _leaf_slots(action, ("integer", "number")) or _slot_list(action)
    slot = draw(st.sampled_from(slots))
    return _set(data, slot, draw(st.sampled_from(_HUGE_NUMBERS))), f"huge-number@{_name(slot)}"


def _mut_extra_key(draw: st.DrawFn, action: Action, data: Any) -> tuple[Any, str]:
    objects = [()]
    for slot in _slot_list(action):
        schema = _schema_at(action, slot)
        if isinstance(schema, dict) and schema.get("type", "object") == "object":
            objects.append(slot)
    where = draw(st.sampled_from(objects))
    key = draw(st.one_of(st.sampled_from(_EXTRA_KEYS), st.text(max_size=6)))
    value = draw(st.one_of(json_values(4), st.sampled_from(["98306", 1, True])))
    if not where:
        if key in LOCATIONS:
            key = key.upper()
        out = dict(data) if isinstance(data, dict) else {}
        out[key] = value
        return out, "extra-key@input"
    container = data
    for step in where:
        container = container.get(step) if isinstance(container, dict) else None
    declared = set((_schema_at(action, where) or {}).get("properties") or {})
    if key in declared or (isinstance(container, dict) and key in container):
        key = key + "\u0001x"
    return _set(data, (*where, key), value), f"extra-key@{_name(where)}"


def _mut_missing_required(draw: st.DrawFn, action: Action, data: Any) -> tuple[Any, str]:
    required: list[tuple[Any, ...]] = []
    for slot in _slot_list(action):
        schema = _schema_at(action, slot)
        if isinstance(schema, dict):
            required.extend((*slot, name) for name in schema.get("required", []))
    if not required:
        return _mut_extra_key(draw, action, data)
    slot = draw(st.sampled_from(required))
    return _delete(data, slot), f"missing@{_name(slot)}"


def _mut_depth(draw: st.DrawFn, action: Action, data: Any) -> tuple[Any, str]:
    # Prefer slots that accept any JSON (property values), where depth is schema-valid.
    free = [s for s in _slot_list(action) if _schema_at(action, s) == {}]
    slot = draw(st.sampled_from(free or _slot_list(action)))
    deep = Deep(
        draw(st.sampled_from([32, 200, 1_000, 5_000, 100_000])),
        draw(st.sampled_from(["list", "dict"])),
        draw(st.sampled_from([1, "x", None, 1.0])),
    )
    return _set(data, slot, deep), f"depth@{_name(slot)}"


def _mut_size(draw: st.DrawFn, action: Action, data: Any) -> tuple[Any, str]:
    slot = draw(st.sampled_from(_slot_list(action)))
    schema = _schema_at(action, slot)
    kind = schema.get("type") if isinstance(schema, dict) else None
    count = draw(st.sampled_from([21, 101, 251, 2_049, 20_000]))
    if kind == "array":
        item = draw(from_schema(schema.get("items", True)))
        value: Any = Wide(count, "list", item)
    elif kind == "string":
        # up to the largest maxLength in the manifest (8,000,000: an upload's base64, whose
        # 6 MB of bytes the policy's 5 MB cap must deny); "QUFB" is valid base64
        length = draw(st.sampled_from([count * 10, int(schema.get("maxLength", 1000))]))
        chunk = draw(st.sampled_from(["x", "9", "a-", "QUFB"]))
        value = Long(chunk, max(1, length // len(chunk)))
    else:
        value = Wide(count, draw(st.sampled_from(["list", "dict"])), 1)
    return _set(data, slot, value), f"size@{_name(slot)}"


def _mut_empty(draw: st.DrawFn, action: Action, data: Any) -> tuple[Any, str]:
    slot = draw(st.sampled_from(_slot_list(action)))
    value = draw(st.sampled_from(["", [], {}, None, [""], [None]]))
    return _set(data, slot, value), f"empty@{_name(slot)}"


def _mut_shape(draw: st.DrawFn, action: Action, data: Any) -> tuple[Any, str]:
    """The input or a location that is not an object at all."""
    value = draw(st.sampled_from([None, [], [data], "x", 1, 1.5, True, "{}", [["path", {}]]]))
    loc = draw(st.sampled_from([None, *LOCATIONS]))
    if loc is None:
        return value, "shape@input"
    return _set(data if isinstance(data, dict) else {}, (loc,), value), f"shape@{loc}"


MUTATORS: dict[str, Mutator] = {
    "wrong-type": _mut_wrong_type,
    "hostile-string": _mut_hostile_string,
    "traversal": _mut_traversal,
    "affix": _mut_suffix,
    "integral-float": _mut_integral_float,
    "huge-number": _mut_huge_number,
    "extra-key": _mut_extra_key,
    "missing-required": _mut_missing_required,
    "depth": _mut_depth,
    "size": _mut_size,
    "empty": _mut_empty,
    "shape": _mut_shape,
}


def _name(slot: tuple[Any, ...]) -> str:
    return ".".join(str(s) for s in slot) or "input"


# -- boundaries: every bound the manifest declares, at the bound and one step past it --------

AT_BOUNDARY = "at-"
_BOUND_KEYWORDS = ("maxLength", "minLength", "maximum", "minimum", "maxItems", "minItems")


def boundaries(action: Action) -> list[tuple[tuple[Any, ...], str, str]]:
    """``(slot, keyword, side)`` for every declared bound; side is "at" or "past"."""
    out = []
    for slot in _slot_list(action):
        schema = _schema_at(action, slot)
        if not isinstance(schema, dict):
            continue
        for keyword in _BOUND_KEYWORDS:
            if keyword not in schema:
                continue
            out.append((slot, keyword, "at"))
            if not (keyword.startswith("min") and schema[keyword] == 0):
                out.append((slot, keyword, "past"))
    return out


def _bound_value(schema: dict[str, Any], keyword: str, side: str, item: Any) -> Any:
    bound = schema[keyword]
    step = 0 if side == "at" else (1 if keyword.startswith("max") else -1)
    if keyword in ("maximum", "minimum"):
        return bound + step
    size = bound + step
    if keyword.endswith("Length"):
        if schema.get("pattern") == _BASE64:  # whole base64 quanta, still valid at the bound
            return Long("QUFB", size // 4) if step <= 0 else Long("QUFB", bound // 4 + 1)
        return Long("x", size)
    items_schema = schema.get("items")
    if schema.get("uniqueItems"):
        distinct = [f"x{i}" for i in range(size)]
        if isinstance(items_schema, dict) and all(
            _validator(items_schema).is_valid(v) for v in distinct[:2]
        ):
            return distinct
    return Wide(size, "list", item)


@st.composite
def boundary_input(
    draw: st.DrawFn, action: Action, slot: tuple[Any, ...], keyword: str, side: str
) -> Case:
    """A valid input for ``action`` with ``slot`` at (or one step past) its ``keyword``."""
    data: Any = draw(valid_input(action))
    schema = _schema_at(action, slot)
    item = None
    if isinstance(schema.get("items"), dict):
        item = draw(from_schema(schema["items"]))
    value = _bound_value(schema, keyword, side, item)
    label = f"{AT_BOUNDARY if side == 'at' else 'past-'}{keyword}@{_name(slot)}"
    return Case((label,), _set(data, slot, value))


@st.composite
def hostile_input(draw: st.DrawFn, action: Action, *, max_mutations: int = 3) -> Case:
    """A valid input for ``action`` broken by 1..max_mutations hostile mutations."""
    data: Any = draw(valid_input(action))
    labels = []
    for _ in range(draw(st.integers(1, max_mutations))):
        kind = draw(st.sampled_from(sorted(MUTATORS)))
        data, label = MUTATORS[kind](draw, action, data)
        labels.append(label)
    return Case(tuple(labels), data)


@st.composite
def valid_case(draw: st.DrawFn, action: Action) -> Case:
    return Case((), draw(valid_input(action)))
