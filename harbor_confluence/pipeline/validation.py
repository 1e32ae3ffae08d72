"""Input validation: each location (path, query, body) against the action's JSON Schema.

Formats are enforced (jsonschema skips ``format`` unless given a checker), unknown keys
are refused, and each violation names the field and the rule it broke.

Schemas come from manifests, catalogs and policies, that is from outside, so their
regular expressions (``pattern``, ``patternProperties``) run on RE2, a linear-time engine:
no pattern can make a check backtrack for ever.  A pattern RE2 cannot run (backreferences,
lookaround) is refused when the schema is loaded (:func:`check_schema`).

After validation, numbers the schema declares ``integer`` are sent as integers: JSON
Schema accepts ``1.0`` and ``1e2`` as integers, Confluence expects ``1`` and ``100``.
Before validation, a scalar given for a query parameter typed ``array`` becomes a one-item
list (violations still name the parameter as given).

Valid input takes a fast path (issue 14): each location's schema is also compiled with
jsonschema-rs, and jsonschema (Python) runs only when that one says no, to say why; so
every refusal, and its wording, comes from jsonschema alone.  The two never disagree on a
verdict by construction (:func:`_fast_schema` says how); without jsonschema-rs (no wheel
for the platform) every input takes the detailed path.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import math
import re
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import jsonschema
import re2  # type: ignore[import-untyped]  # google-re2 ships no type information
from jsonschema.exceptions import ValidationError as SchemaViolation

from harbor_confluence.errors import InputError, Violation

from .documents import MAX_INPUT_DEPTH

if TYPE_CHECKING:
    from .manifest import Action

__all__ = [
    "LOCATIONS",
    "MAX_INPUT_DEPTH",
    "InputValidator",
    "PatternError",
    "Predicate",
    "SchemaValidator",
    "UnknownAction",
    "check_schema",
    "pattern_search",
]

LOCATIONS = ("path", "query", "body")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_FORMAT_CHECKER = jsonschema.Draft202012Validator.FORMAT_CHECKER
_BASE = jsonschema.Draft202012Validator


# -- RE2 for every pattern a schema carries ------------------------------------------------


class PatternError(ValueError):
    """A schema pattern RE2 cannot run; the message says which and why."""


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # the reason is raised, not printed on stderr


@functools.lru_cache(maxsize=4096)
def _compiled(pattern: str) -> Any:
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(
            f"pattern {pattern!r} cannot be used: the linear-time regex engine (RE2) "
            f"refuses it ({reason}); backreferences and lookaround are not supported"
        ) from None


def pattern_search(pattern: str, text: str) -> bool:
    """``re.search(pattern, text)`` in linear time (RE2); raises PatternError if unusable."""
    regex = _compiled(pattern)
    try:
        data = text.encode("utf-8")  # RE2 runs on UTF-8; bytes skip the wrapper's offset maps
    except UnicodeEncodeError:  # a lone surrogate: match what UTF-8 can carry instead
        clean = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        data = clean.encode("utf-8")
    return regex.search(data) is not None


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    if validator.is_type(instance, "string") and not pattern_search(pattern, instance):
        yield SchemaViolation(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if pattern_search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


_ADDITIONAL_PROPERTIES: Callable[..., Iterator[Any]] = _BASE.VALIDATORS["additionalProperties"]


def _additional_properties(validator: Any, extra: Any, instance: Any, schema: Any) -> Iterator[Any]:
    """jsonschema's own, except that ``patternProperties`` are matched with RE2."""
    patterns = schema.get("patternProperties") if isinstance(schema, dict) else None
    if not patterns or not validator.is_type(instance, "object"):
        yield from _ADDITIONAL_PROPERTIES(validator, extra, instance, schema)
        return
    properties = schema.get("properties", {})
    extras = {
        key
        for key in instance
        if key not in properties and not any(pattern_search(p, key) for p in patterns)
    }
    if validator.is_type(extra, "object"):
        for key in extras:
            yield from validator.descend(instance[key], extra, path=key)
    elif not extra and extras:
        verb = "does" if len(extras) == 1 else "do"
        joined = ", ".join(repr(each) for each in sorted(extras))
        listed = ", ".join(repr(each) for each in sorted(patterns))
        yield SchemaViolation(f"{joined} {verb} not match any of the regexes: {listed}")


# Draft 2020-12 with every regular expression on RE2.  (``unevaluatedProperties`` next to
# ``patternProperties`` would match them with Python's engine: check_schema refuses it.)
SchemaValidator: type[jsonschema.Draft202012Validator] = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    _BASE,
    {
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
    },
)


def _regex_format(value: object) -> bool:
    if isinstance(value, str):
        _compiled(value)  # raises PatternError naming the pattern and why
    return True


# The meta-schema marks ``pattern`` and ``patternProperties`` keys as format "regex": checked
# with RE2 (the engine that will run them) instead of Python's.
_SCHEMA_FORMATS = jsonschema.FormatChecker(formats=())
_SCHEMA_FORMATS.checkers = {**_FORMAT_CHECKER.checkers, "regex": (_regex_format, PatternError)}


def check_schema(schema: Any) -> None:
    """Refuse a schema that is not valid Draft 2020-12 or whose patterns RE2 cannot run.

    Raises ValueError with a message naming the pattern, where it is and why.
    """
    try:
        _BASE.check_schema(schema, format_checker=_SCHEMA_FORMATS)
    except jsonschema.SchemaError as exc:
        if isinstance(exc.cause, PatternError):
            where = ".".join(str(p) for p in exc.absolute_path) or "(schema)"
            raise ValueError(f"not a valid JSON Schema: at {where}: {exc.cause}") from None
        raise ValueError(f"not a valid JSON Schema: {exc.message}") from None
    except RecursionError:
        raise ValueError("not a valid JSON Schema: nested too deeply to check") from None
    if _uses(schema, "unevaluatedProperties") and _uses(schema, "patternProperties"):
        raise ValueError(
            "not a valid JSON Schema: unevaluatedProperties cannot be combined with "
            "patternProperties here (patterns run on RE2; use additionalProperties)"
        )


def _uses(schema: Any, keyword: str) -> bool:
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if keyword in node:
                return True
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


# -- unknown actions --------------------------------------------------------------------


class UnknownAction(InputError):
    """No action of that name: exit 2, with the closest names as suggestions."""

    code = "unknown_action"

    def __init__(self, name: str, known: Iterable[str]) -> None:
        names = sorted(known)
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        self.suggestions = tuple(close)  # closest first
        if self.suggestions:
            hint = f"did you mean: {', '.join(self.suggestions)}?"
        else:
            hint = "list them with: harbor-confluence actions"
        message = f"unknown action {name!r}; {hint}"
        super().__init__(name, [Violation("action", "enum", message)])
        self.args = (message,)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "suggestions": list(self.suggestions)}


# -- the validator ------------------------------------------------------------------------


class InputValidator:
    """Compiled validators for one action; build once, call per request.

    ``fast=False`` (or a platform without jsonschema-rs) checks every input on the detailed
    path only; the answer is the same either way, only slower.
    """

    __slots__ = ("_action", "_fast", "_integers", "_validators")

    def __init__(self, action: Action, *, fast: bool = True) -> None:
        self._action = action
        self._validators: dict[str, jsonschema.Draft202012Validator] = {}
        self._integers: frozenset[str] = frozenset()  # locations whose schema says integer
        for loc in LOCATIONS:
            schema = getattr(action.parameters, loc)
            if schema is not None:
                self._validators[loc] = SchemaValidator(schema, format_checker=_FORMAT_CHECKER)
                if _says_integer_anywhere(schema):
                    self._integers |= {loc}
        self._fast: tuple[_FastLocation, ...] | None = None
        if fast:
            self._fast = _fast_locations(self._validators)

    @property
    def fast(self) -> bool:
        """Whether valid input takes the compiled fast path (every location compiled)."""
        return self._fast is not None

    def validate(self, data: Any) -> dict[str, Any]:
        """Return the input normalised to ``{"path": {}, "query": {}, "body": ...}``."""
        if data is None:
            data = {}
        out = self.try_fast(data)
        return out if out is not None else self._detailed(data)

    def try_fast(self, data: Any) -> dict[str, Any] | None:
        """The fast path alone: what :meth:`validate` returns, or None when the detailed
        path must decide (input it refuses or cannot read as plain JSON, or an action with
        no fast path).  Does what the detailed path does for valid input, in the same
        order, to the same values.
        """
        fast = self._fast
        if fast is None or type(data) is not dict:
            return None
        floats = _plain(data, 1)
        if floats is None:
            return None
        for key in data:
            if key not in LOCATIONS:
                return None
        out: dict[str, Any] = {}
        for loc, compiled, arrays in fast:
            value = data.get(loc)
            if compiled is None:
                if value not in (None, {}):
                    return None
                continue
            if value is None:
                value = {}
            if arrays and type(value) is dict:
                value = _wrap_known(arrays, value)
            try:
                if not compiled.is_valid(value):
                    return None
            except Exception:  # whatever the fast path cannot take, the detailed path decides
                return None
            if loc == "path" and type(value) is dict and _path_values(value):
                return None
            out[loc] = value
        if floats:
            self._to_integers(out)
        out.setdefault("path", {})
        out.setdefault("query", {})
        return out

    def _detailed(self, data: Any) -> dict[str, Any]:
        """jsonschema's verdict, with every violation named."""
        name = self._action.name
        if not isinstance(data, dict):
            raise InputError(name, [Violation("input", "type", "must be a JSON object")])
        problems, floats = _scan(data)
        if problems:
            raise InputError(name, problems)
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
            wrapped: frozenset[str] = frozenset()
            if loc == "query" and isinstance(value, dict):
                value, wrapped = _wrap_scalars(validator.schema, value)
            violations.extend(
                _unwrap(_describe(loc, e), loc, wrapped) for e in validator.iter_errors(value)
            )
            if loc == "path" and isinstance(value, dict):
                violations.extend(_path_values(value))
            out[loc] = value
        if violations:
            raise InputError(name, violations)
        if floats:  # only a float can be an integral float
            self._to_integers(out)
        out.setdefault("path", {})
        out.setdefault("query", {})
        return out

    def _to_integers(self, out: dict[str, Any]) -> None:
        """Integral floats the schema types ``integer`` become ints (no schema that never
        says ``integer`` can change anything, so those are skipped)."""
        for loc, value in out.items():
            if loc in self._integers:
                schema = self._validators[loc].schema
                out[loc] = _integral(schema, value, schema, 0)


# -- the fast path --------------------------------------------------------------------------

# One location: its compiled validator (None when the action takes no such input) and, for
# the query, the parameters typed ``array`` (a scalar given for one is wrapped in a list).
_FastLocation = tuple[str, Any, frozenset[str]]

# Keywords whose meaning jsonschema and jsonschema-rs share for plain JSON values (see
# _plain), checked by differential tests (tests/test_validation_fast.py).  A schema using
# any other keyword (``$ref``, ``multipleOf``, ``patternProperties``, ``if``, ``$schema``,
# ``unevaluated*``, ``dependent*``, ``contains``, unknown ones...) keeps the detailed path.
_FAST_KEYWORDS = frozenset(
    {
        # assertions
        "type",
        "enum",
        "const",
        "required",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minItems",
        "maxItems",
        "uniqueItems",
        "minProperties",
        "maxProperties",
        "pattern",  # on RE2, through _RE2Pattern
        "format",  # jsonschema's own checks, through _fast_formats
        # applicators
        "properties",
        "additionalProperties",
        "items",
        "prefixItems",
        "allOf",
        "anyOf",
        "oneOf",
        "not",
        # annotations
        "title",
        "description",
        "default",
        "examples",
        "$comment",
        "deprecated",
        "readOnly",
        "writeOnly",
    }
)
_SUBSCHEMA = frozenset({"additionalProperties", "items", "not"})
_SUBSCHEMAS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})


def _fast_schema(schema: Any) -> set[str] | None:
    """The formats a schema uses, or None when it must keep the detailed path.

    Agreement by construction, not by hope: the fast validator accepts exactly what the
    detailed one accepts, as it has to wherever a verdict is negated (``not``, ``oneOf``),
    where "at least as strict" would not be enough:

    - keywords: only those in ``_FAST_KEYWORDS``, whose semantics the two libraries share
      for plain JSON values; anything else, and the whole location stays detailed;
    - patterns: jsonschema-rs's own ``pattern`` is replaced by :class:`_RE2Pattern`, which
      calls :func:`pattern_search`, the function the detailed path calls (Rust's regex
      differs from RE2 at the edges, e.g. Unicode classes); ``patternProperties``, which
      cannot be replaced that way, keeps the detailed path;
    - formats: every format the schema names is checked by jsonschema's ``FORMAT_CHECKER``
      itself (those it does not check pass), never by jsonschema-rs's own checks;
    - values: only plain JSON (exact dict, list, str, int, float, bool, None; integers
      within 2**53) reaches the fast validator, see :func:`_plain`.
    """
    formats: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, bool):
            continue
        if not isinstance(node, dict):
            return None
        for key, value in node.items():
            if key not in _FAST_KEYWORDS:
                return None
            if key == "properties":
                if not isinstance(value, dict):
                    return None
                stack.extend(value.values())
            elif key in _SUBSCHEMA:
                stack.append(value)
            elif key in _SUBSCHEMAS:
                if not isinstance(value, list):
                    return None
                stack.extend(value)
            elif key == "format":
                if not isinstance(value, str):
                    return None
                formats.add(value)
            elif key == "pattern" and not isinstance(value, str):
                return None
    return formats


class _RE2Pattern:
    """``pattern`` for jsonschema-rs, on RE2: the very check the detailed path makes.

    A call back into Python costs about 1.5 µs per patterned value, against 0.1 µs for
    jsonschema-rs's own regex; measured, and kept: an exact verdict is worth a microsecond
    (a pattern under ``not`` would flip on any difference between the two engines).
    """

    __slots__ = ("_pattern",)

    def __init__(self, parent_schema: Any, value: Any, schema_path: Any) -> None:
        if not isinstance(value, str):
            raise PatternError("pattern must be a string")
        _compiled(value)  # unusable patterns fail here, so the location stays detailed
        self._pattern = value

    def validate(self, instance: Any) -> None:
        if type(instance) is str and not pattern_search(self._pattern, instance):
            raise ValueError("does not match")


def _accept(value: object) -> bool:
    return True


def _fast_formats(names: Iterable[str]) -> dict[str, Callable[[object], bool]]:
    """jsonschema's format checks for jsonschema-rs; a format it does not check passes."""
    out: dict[str, Callable[[object], bool]] = {}
    for name in names:
        if name in _FORMAT_CHECKER.checkers:
            out[name] = functools.partial(_conforms, format=name)
        else:
            out[name] = _accept
    return out


def _conforms(value: object, format: str) -> bool:  # jsonschema's own parameter name
    return bool(_FORMAT_CHECKER.conforms(value, format))


@functools.cache
def _rs() -> Any:
    """jsonschema-rs, imported on first use (None without a wheel for this platform)."""
    try:
        import jsonschema_rs
    except ImportError:  # pragma: no cover - a platform without a wheel
        return None
    return jsonschema_rs


class Predicate:
    """``is_valid`` for a policy's ``when``/``unless`` schema (formats annotate only).

    The compiled jsonschema-rs validator decides plain JSON, under the same conditions
    that make the input validator's fast path give jsonschema's verdict (``_fast_schema``,
    RE2 patterns, ``_plain`` data); anything else goes to jsonschema.  A limit rule's
    predicate on search-pages took 16 µs on jsonschema, most of the policy's time.
    """

    __slots__ = ("_fast", "_slow")

    def __init__(self, schema: dict[str, Any]) -> None:
        self._slow = SchemaValidator(schema)
        self._fast: Any = _compile_fast(schema, check_formats=False)

    def __call__(self, data: Any) -> bool:
        fast = self._fast
        if fast is not None and _plain(data, 1) is not None:
            with contextlib.suppress(Exception):  # whatever it cannot take, jsonschema decides
                return bool(fast.is_valid(data))
        return bool(self._slow.is_valid(data))


def _compile_fast(schema: Any, *, check_formats: bool) -> Any:
    """jsonschema-rs for ``schema`` with RE2 patterns and, when ``check_formats``,
    jsonschema's format checks; None where it cannot give jsonschema's verdict (see
    :func:`_fast_schema`), where jsonschema-rs refuses the schema, or without it."""
    rs = _rs()
    formats = _fast_schema(schema)
    if rs is None or formats is None:
        return None
    try:
        return rs.Draft202012Validator(
            schema,
            formats=_fast_formats(formats) if check_formats else None,
            validate_formats=check_formats,
            keywords={"pattern": _RE2Pattern},
            pattern_options=rs.RegexOptions(),
            offline=True,
        )
    except Exception:  # a schema jsonschema-rs refuses keeps the detailed path
        return None


def _fast_locations(
    validators: dict[str, jsonschema.Draft202012Validator],
) -> tuple[_FastLocation, ...] | None:
    """Every location compiled for the fast path, or None when one cannot be."""
    rs = _rs()
    if rs is None:
        return None
    out: list[_FastLocation] = []
    for loc in LOCATIONS:
        validator = validators.get(loc)
        if validator is None:
            out.append((loc, None, frozenset()))
            continue
        schema = validator.schema
        compiled = _compile_fast(schema, check_formats=True)
        if compiled is None:
            return None
        arrays = _array_parameters(schema) if loc == "query" else frozenset()
        out.append((loc, compiled, arrays))
    return tuple(out)


def _array_parameters(schema: Any) -> frozenset[str]:
    """The query parameters typed ``array``, as :func:`_wrap_scalars` finds them."""
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict):
        return frozenset()
    return frozenset(
        key
        for key, sub in properties.items()
        if isinstance(sub, dict) and sub.get("type") == "array"
    )


def _wrap_known(arrays: frozenset[str], query: dict[str, Any]) -> dict[str, Any]:
    """:func:`_wrap_scalars` with the array parameters known in advance."""
    wrapped = [key for key, item in query.items() if key in arrays and type(item) in _SCALARS]
    if not wrapped:
        return query
    return {k: [v] if k in wrapped else v for k, v in query.items()}


_SCALARS = (str, int, float, bool)  # what _wrap_scalars wraps, among plain values
_SAFE_INT = 2**53  # both libraries compare integers up to here exactly


def _plain(node: Any, depth: int) -> bool | None:
    """Whether the input holds a float, or None when it is not plain JSON or would need a
    word from :func:`_scan` (depth, lone surrogates, NaN and Infinity).

    Plain means exactly dict (str keys), list, str, int (within 2**53), float, bool, None:
    what both libraries read the same way (jsonschema-rs would take a tuple for an array,
    where jsonschema says it is not one).
    """
    kind = type(node)
    if kind is dict:
        if depth > MAX_INPUT_DEPTH:
            return None
        floats = False
        for key, value in node.items():
            if type(key) is not str or _bad_text(key):
                return None
            inner = _plain(value, depth + 1)
            if inner is None:
                return None
            floats = floats or inner
        return floats
    if kind is str:
        return None if _bad_text(node) else False
    if kind is int:
        return False if -_SAFE_INT <= node <= _SAFE_INT else None
    if kind is list:
        if depth > MAX_INPUT_DEPTH:
            return None
        floats = False
        for value in node:
            inner = _plain(value, depth + 1)
            if inner is None:
                return None
            floats = floats or inner
        return floats
    if kind is float:
        return True if math.isfinite(node) else None
    if kind is bool or node is None:
        return False
    return None


def _says_integer_anywhere(schema: Any) -> bool:
    """Whether any node of the schema says ``integer`` (else no value ever changes type)."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if _says_integer(node):
                return True
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def _wrap_scalars(schema: Any, query: dict[str, Any]) -> tuple[dict[str, Any], frozenset[str]]:
    """A scalar given for a query parameter the schema types ``array`` becomes a one-item
    list (``"status": "current"`` is ``"status": ["current"]``), as Confluence reads one
    value of a comma-separated or repeated parameter.  Returns a copy (the caller's input is
    never modified) and the names wrapped, so violations can name the field as given.
    """
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict):
        return query, frozenset()
    wrapped = {
        key
        for key, item in query.items()
        if isinstance(item, str | int | float)  # bool is an int; null and containers are not
        and isinstance(properties.get(key), dict)
        and properties[key].get("type") == "array"
    }
    if not wrapped:
        return query, frozenset()
    return {k: [v] if k in wrapped else v for k, v in query.items()}, frozenset(wrapped)


def _unwrap(violation: Violation, loc: str, wrapped: frozenset[str]) -> Violation:
    """``query.status.0`` is ``query.status`` when the caller gave ``status`` as a scalar."""
    for key in wrapped:
        item = f"{loc}.{key}.0"
        if violation.field == item or violation.field.startswith(item + "."):
            field = f"{loc}.{key}" + violation.field[len(item) :]
            return Violation(field, violation.rule, violation.message)
    return violation


def _scan(data: dict[str, Any]) -> tuple[list[Violation], bool]:
    """What no schema can say: nesting depth, text that is not Unicode, NaN and Infinity;
    and whether the input holds any float at all.

    Iterative (deep input cannot exhaust the recursion limit) and run before the schemas.
    Depth counts containers, the input object itself being level 1.
    """
    out: list[Violation] = []
    floats = False
    stack: list[tuple[Any, str, int]] = [(data, "", 1)]
    while stack and len(out) < 10:
        node, where, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > MAX_INPUT_DEPTH:
                message = (
                    f"is nested more than {MAX_INPUT_DEPTH} levels deep "
                    f"(the limit is {MAX_INPUT_DEPTH})"
                )
                out.append(Violation(where or "input", "maxDepth", message))
                break
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, value in items:
                path = f"{where}.{key}" if where else str(key)
                if isinstance(key, str) and _bad_text(key):
                    out.append(Violation(_ascii(path), "encoding", _SURROGATE_MSG))
                stack.append((value, path, depth + 1))
        elif isinstance(node, str):
            if _bad_text(node):
                out.append(Violation(_ascii(where), "encoding", _SURROGATE_MSG))
        elif isinstance(node, float):
            floats = True
            if not math.isfinite(node):
                message = "must be a finite number (NaN and Infinity are not JSON)"
                out.append(Violation(where or "input", "type", message))
    return out, floats


_SURROGATE_MSG = "contains a lone surrogate (U+D800..U+DFFF), which is not valid Unicode text"


def _bad_text(text: str) -> bool:
    """A lone surrogate (strict UTF-8 refuses exactly those; faster than a regex scan)."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _ascii(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _says_integer(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    return kind == "integer" or (isinstance(kind, list) and "integer" in kind)


def _integral(schema: Any, value: Any, root: Any, depth: int) -> Any:
    """The validated value with every integral float the schema types ``integer`` as an int.

    Follows the schema into properties, patternProperties, additionalProperties, items,
    prefixItems, local ``$ref``\\ s and the applicators; builds new containers only where
    something changed (the caller's input is never modified).
    """
    if not isinstance(schema, dict) or depth > 2 * MAX_INPUT_DEPTH + 16:
        return value
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#"):
        value = _integral(_pointer(root, ref[1:]), value, root, depth + 1)
    if isinstance(value, float) and value.is_integer() and _says_integer(schema):
        value = int(value)
    elif isinstance(value, dict):
        value = _integral_object(schema, value, root, depth)
    elif isinstance(value, list):
        value = _integral_array(schema, value, root, depth)
    for keyword in ("allOf", "anyOf", "oneOf"):
        branches = schema.get(keyword)
        if isinstance(branches, list):
            for branch in branches:
                value = _integral(branch, value, root, depth + 1)
    for keyword in ("then", "else"):
        value = _integral(schema.get(keyword), value, root, depth + 1)
    return value


def _integral_object(
    schema: dict[str, Any], value: dict[str, Any], root: Any, depth: int
) -> dict[str, Any]:
    properties = schema.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    patterns = schema.get("patternProperties")
    patterns = patterns if isinstance(patterns, dict) else {}
    extra = schema.get("additionalProperties")
    changed: dict[str, Any] = {}
    for key, item in value.items():
        matched = [s for p, s in patterns.items() if pattern_search(p, key)]
        subschemas = ([properties[key]] if key in properties else []) + matched
        if key not in properties and not matched and isinstance(extra, dict):
            subschemas = [extra]
        new = item
        for sub in subschemas:
            new = _integral(sub, new, root, depth + 1)
        if new is not item:
            changed[key] = new
    return {**value, **changed} if changed else value


def _integral_array(schema: dict[str, Any], value: list[Any], root: Any, depth: int) -> list[Any]:
    prefix = schema.get("prefixItems")
    prefix = prefix if isinstance(prefix, list) else []
    items = schema.get("items")
    out: list[Any] | None = None
    for i, item in enumerate(value):
        sub = prefix[i] if i < len(prefix) else items
        new = _integral(sub, item, root, depth + 1)
        if new is not item:
            if out is None:
                out = list(value)
            out[i] = new
    return value if out is None else out


def _pointer(root: Any, pointer: str) -> Any:
    """Resolve a local JSON Pointer (``/$defs/x``); None when it leads nowhere."""
    node = root
    for raw in pointer.split("/")[1:] if pointer else []:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


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
        extra = sorted(str(k) for k in err.instance if k not in allowed)  # keys may not be str
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
    elif rule in ("oneOf", "anyOf") and isinstance(err.instance, dict):
        names = _choice_names(err.validator_value)
        if names:  # "spaceId or spaceKey": name the first, say which others would do
            given = [n for n in names if n in err.instance]
            parts.append(given[1] if len(given) > 1 else names[0])
            rule = "required"
            alternatives = " or ".join(names)
            message = (
                f"give exactly one of {alternatives}, not {' and '.join(given)}"
                if len(given) > 1 and err.validator == "oneOf"
                else f"one of {alternatives} is required"
            )
    if len(message) > 200:
        message = message[:120] + " ... " + message[-60:]
    if isinstance(err.instance, str) and len(err.instance) > 200:
        message = _short_instance(rule, len(err.instance), err.validator_value)
    return Violation(".".join(parts), rule, message)


def _choice_names(branches: object) -> list[str]:
    """The property names of a choice of single required properties (``oneOf: [{required:
    [spaceId]}, {required: [spaceKey]}]``), else an empty list."""
    if not isinstance(branches, list):
        return []
    names = [b["required"][0] for b in branches
             if isinstance(b, dict) and set(b) == {"required"}
             and isinstance(b["required"], list) and len(b["required"]) == 1]  # fmt: skip
    return [str(n) for n in names] if len(names) == len(branches) else []


def _short_instance(rule: str, size: int, wanted: object) -> str:
    """Never echo a huge value back: say what the rule wanted instead."""
    if rule == "maxLength":
        return f"is {size} characters long; at most {wanted} allowed"
    return f"value of {size} characters does not satisfy {rule}={wanted!r}"
