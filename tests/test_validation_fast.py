"""The fast validation path (issue 14) agrees with the detailed one, always.

``InputValidator`` checks valid input with a compiled jsonschema-rs validator and runs
jsonschema (Python) only to explain a refusal.  The danger is disagreement: the fast path
must never accept what the detailed path refuses, nor hand back a different input.  So:

- for every action of the packaged manifest, valid, hostile and boundary inputs get the
  same verdict, the same violations and the same cleaned output (types included: ``1``
  is not ``1.0``) with the fast path as with ``fast=False``; whatever ``try_fast`` accepts,
  the detailed path accepts with the same output; inputs drawn valid do take the fast path;
- for every keyword the fast path takes, tricky values (integral floats, bools against
  numbers, ``-0.0``, Unicode digits, a trailing newline, look-alike dates, ...) against
  the keyword and against its negation (``not``, ``oneOf``: where "at least as strict"
  is not enough) get the same verdict from both paths;
- schemas using anything else keep the detailed path; input that is not plain JSON
  (tuples, key types, subclasses, huge integers) is decided by the detailed path;
- without jsonschema-rs installed, everything still works on the detailed path.
"""

from __future__ import annotations

import copy
import math
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from harbor_confluence.errors import InputError
from harbor_confluence.paths import default_manifest_path
from harbor_confluence.pipeline.manifest import Action, Parameters, load_manifest
from harbor_confluence.pipeline.validation import InputValidator
from tests.strategies import (
    Case,
    boundaries,
    boundary_input,
    hostile_input,
    materialize,
    valid_case,
)

MANIFEST = load_manifest(default_manifest_path())
ACTIONS: dict[str, Action] = {a.name: a for a in MANIFEST.actions}
NAMES = sorted(ACTIONS)

BASE = settings(
    phases=[Phase.explicit, Phase.generate, Phase.target, Phase.shrink],
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class _Key:
    def __init__(self, key: Any) -> None:
        self.key = key


def _typed(value: Any) -> list[Any]:
    """``value`` as a flat list of typed tokens, so ``1 == 1.0`` and ``True == 1`` don't
    pass; iterative, as hostile input nests deeper than the recursion limit."""
    out: list[Any] = []
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, _Key):
            out.append(("key", type(node.key).__name__, node.key))
        elif isinstance(node, dict):
            out.append(("dict", type(node).__name__, len(node)))
            for key, item in reversed(list(node.items())):
                stack.append(item)
                stack.append(_Key(key))
        elif isinstance(node, list | tuple):
            out.append((type(node).__name__, len(node)))
            stack.extend(reversed(node))
        elif isinstance(node, float) and math.isnan(node):
            out.append(("float", "nan"))
        else:
            out.append((type(node).__name__, node))
    return out


def _outcome(validator: InputValidator, data: Any) -> tuple[str, Any]:
    try:
        return "ok", _typed(validator.validate(data))
    except InputError as exc:
        return "refused", exc.to_dict()


class Pair:
    """One action validated both ways."""

    def __init__(self, action: Action) -> None:
        self.fast = InputValidator(action)
        self.slow = InputValidator(action, fast=False)

    def check(self, data: Any, *, plain: bool = False) -> tuple[str, Any]:
        """Same verdict, violations and output both ways; the input left untouched.

        ``plain``: the input is plain JSON, so if it is valid the fast path must take it.
        """
        before = _typed(data)
        detailed = _outcome(self.slow, data)
        assert _outcome(self.fast, data) == detailed
        took = self.fast.try_fast(data)
        if took is not None:  # the fast path alone never accepts what the detailed refuses
            assert detailed == ("ok", _typed(took))
        elif plain:
            assert detailed[0] == "refused"
        assert _typed(data) == before  # neither path modifies the caller's input
        return detailed


PAIRS = {name: Pair(action) for name, action in ACTIONS.items()}


def test_every_packaged_action_has_a_fast_path() -> None:
    assert [name for name in NAMES if not PAIRS[name].fast.fast] == []
    assert not any(PAIRS[name].slow.fast for name in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_valid_input_takes_the_fast_path_with_the_same_output(name: str) -> None:
    pair = PAIRS[name]

    @settings(BASE, max_examples=12)
    @given(case=valid_case(ACTIONS[name]))
    def prop(case: Case) -> None:
        data = materialize(case.data)
        verdict, _ = pair.check(data, plain=True)
        assert verdict == "ok"

    prop()


@pytest.mark.parametrize("name", NAMES)
def test_hostile_input_gets_the_same_verdict_both_ways(name: str) -> None:
    pair = PAIRS[name]

    @settings(BASE, max_examples=30)
    @given(case=hostile_input(ACTIONS[name]))
    def prop(case: Case) -> None:
        pair.check(materialize(case.data))

    prop()


BOUNDS = [(name, *bound) for name in NAMES for bound in boundaries(ACTIONS[name])]


@pytest.mark.parametrize(("name", "slot", "keyword", "side"), BOUNDS, ids=str)
def test_boundaries_get_the_same_verdict_both_ways(
    name: str, slot: tuple[Any, ...], keyword: str, side: str
) -> None:
    pair = PAIRS[name]

    @settings(BASE, max_examples=2)
    @given(case=boundary_input(ACTIONS[name], slot, keyword, side))
    def prop(case: Case) -> None:
        pair.check(materialize(case.data))

    prop()


# -- every keyword the fast path takes, and its negation ----------------------------------

_BASE_ACTION = ACTIONS["create-page"]


def _action_for(schema: dict[str, Any]) -> Action:
    """create-page whose body is ``{"v": <schema>}`` (the manifest's own checks apply)."""
    body = {"type": "object", "properties": {"v": schema}, "additionalProperties": False}
    return _BASE_ACTION.model_copy(update={"parameters": Parameters(body=body)})


KEYWORD_SCHEMAS: list[dict[str, Any]] = [
    {"type": "integer"},
    {"type": "number"},
    {"type": ["integer", "null"]},
    {"type": "boolean"},
    {"type": "string"},
    {"type": "array"},
    {"type": "object"},
    {"enum": [1, "a", None, [1, "x"], {"a": 1}, False, 2.5]},
    {"const": 1.0},
    {"const": False},
    {"const": [1, {"a": True}]},
    {"uniqueItems": True},
    {"minimum": 1, "maximum": 2147483647},
    {"exclusiveMinimum": -1, "exclusiveMaximum": 2.5},
    {"minimum": 0.1},
    {"minLength": 2, "maxLength": 3},
    {"minItems": 1, "maxItems": 2},
    {"minProperties": 1, "maxProperties": 2},
    {"required": ["a"]},
    {"properties": {"a": {"type": "integer"}}, "additionalProperties": False},
    {"additionalProperties": {"type": "integer"}},
    {"items": {"type": "integer"}},
    {"prefixItems": [{"type": "string"}], "items": {"type": "integer"}},
    {"pattern": "^[0-9]{1,3}$"},
    {"pattern": "^\\d+$"},
    {"pattern": "^a.c$"},
    {"pattern": "\\w"},
    {"pattern": "^\\s*$"},
    {"pattern": '^[^"\\\\/\\x00-\\x1f\\x7f]{1,255}$'},
    {"pattern": "(?i)^abc$"},
    {"format": "date"},
    {"format": "date-time"},
    {"format": "email"},
    {"format": "uuid"},
    {"format": "uri"},  # jsonschema does not check it without rfc3987: neither may the fast path
    {"format": "hostname"},
    {"format": "regex"},
    {"anyOf": [{"type": "integer"}, {"pattern": "^x"}]},
    {"allOf": [{"type": "number"}, {"maximum": 3}]},
    {"oneOf": [{"type": "integer"}, {"type": "number"}]},
    {"oneOf": [{"type": "integer"}, {"minimum": 2}]},
    {"title": "t", "description": "d", "default": 3, "examples": [1], "$comment": "c"},
]
# the negations: where a laxer (or stricter) fast check would flip the verdict
KEYWORD_SCHEMAS += [{"not": schema} for schema in KEYWORD_SCHEMAS]

_TRICKY_TEXT = st.sampled_from(
    [
        "",
        "a",
        "abc",
        "ABC",
        "aBc",
        "a\nc",
        "abc\n",
        "a\rc",
        "a\u2028c",
        "123",
        "12",
        "1234",
        "\u0663",
        "\uff11",
        "1\n",
        " ",
        "\t",
        "\u00a0",
        "\u3000",
        "x",
        "xyz",
        "_",
        "\u00e9",
        "2024-02-29",
        "2023-02-29",
        "2024-13-01",
        "2024-1-01",
        "2024-01-01\n",
        "\u0662024-01-01",
        "2024-01-01T00:00:00Z",
        "2024-01-01T00:00:00",
        "2024-01-01t00:00:00z",
        "a@b.c",
        "a@b",
        "@b.c",
        "a@[127.0.0.1]",
        "12345678-1234-1234-1234-123456789abc",
        "12345678123412341234123456789abc",
        "http://x",
        "not a uri",
        "ex ample.com",
        "example.com",
        "-x.com",
        "(a",
        "a{2}",
        "[",
        "\\",
        "(?=a)",
        "a/b",
        '"',
        "\x00",
        "\x7f",
        "\U0001f600" * 3,
    ]
)
_TRICKY_NUMBERS = st.sampled_from(
    [
        0,
        1,
        -1,
        2,
        3,
        0.0,
        -0.0,
        1.0,
        2.0,
        2.5,
        2.5000000000000004,
        0.1,
        0.09999999999999999,
        -1.0,
        1e300,
        -1e300,
        2147483647,
        2147483648,
        2147483647.0,
        2147483646.5,
        2**53,
        float(2**53),
        5e-324,
        True,
        False,
    ]
)
_SCALARS = st.one_of(st.none(), _TRICKY_NUMBERS, _TRICKY_TEXT, st.text(max_size=6))
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["a", "b", "c", "v", "\u00e9"]), inner, max_size=3),
    ),
    max_leaves=6,
)


@pytest.mark.parametrize("schema", KEYWORD_SCHEMAS, ids=str)
def test_each_fast_keyword_agrees_on_tricky_values(schema: dict[str, Any]) -> None:
    pair = Pair(_action_for(schema))
    assert pair.fast.fast

    @settings(BASE, max_examples=60)
    @given(value=_VALUES)
    def prop(value: Any) -> None:
        pair.check({"body": {"v": value}}, plain=True)

    for value in (1, 1.0, True, -0.0, [1, 1.0], [1, True], [0.0, -0.0], [[1], [True]],
                  [{"a": 1}, {"a": 1.0}], "2024-02-29", "\u0663", "abc\n", {"a": 1.0}):  # fmt: skip
        pair.check({"body": {"v": value}}, plain=True)
    prop()


@pytest.mark.parametrize(
    "schema",
    [
        {"multipleOf": 0.1},
        {"$ref": "#/properties/v/$defs/x", "$defs": {"x": {"type": "integer"}}},
        {"type": "object", "patternProperties": {"^a": {"type": "integer"}}},
        {"if": {"type": "integer"}, "then": {"minimum": 3}},
        {"contains": {"type": "integer"}},
        {"dependentRequired": {"a": ["b"]}},
        {"propertyNames": {"maxLength": 1}},
        {"unevaluatedProperties": False},
        {"x-unknown": 1},
    ],
    ids=str,
)
def test_other_keywords_keep_the_detailed_path(schema: dict[str, Any]) -> None:
    pair = Pair(_action_for(schema))
    assert not pair.fast.fast
    assert pair.fast.try_fast({"body": {"v": 3}}) is None
    pair.check({"body": {"v": 3}})
    pair.check({"body": {"v": {"a": 3.0, "b": 1}}})


class _Str(str):
    pass


class _Dict(dict[str, Any]):
    pass


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("search-pages", {"query": {"status": ("current",)}}),  # a tuple is not an array
        ("search-pages", {"query": {"space-id": ("1", "2")}}),
        ("search-pages", {"query": ("limit", 3)}),
        ("search-pages", {"query": {"limit": 2**64}}),
        ("search-pages", {"query": {"limit": 2**53 + 1}}),
        ("search-pages", {"query": {"limit": 25.0}}),
        ("search-pages", {"query": {"limit": 1e300}}),
        ("search-pages", {"query": {"limit": True}}),
        ("search-pages", {"query": {"title": _Str("x")}}),
        ("search-pages", {"query": _Dict(limit=3)}),
        ("search-pages", _Dict(query={"limit": 3})),
        ("search-pages", {"query": {1: 3}}),
        ("search-pages", {"query": {"status": "current", "limit": 2.0}}),
        ("search-pages", {"query": {"status": ["current", "current"]}}),
        ("get-page", {"path": {"id": "123\n"}}),
        ("get-page", {"path": {"id": "\u0661\u0662"}}),
        ("get-page", {"path": {"id": ".."}, "query": None}),
        ("get-page", {"path": {"id": "1"}, "body": {}}),
        ("get-page", {"path": {"id": "1"}, "body": {"x": 1}}),
        ("get-page", {"path": {"id": "1"}, "extra": {}}),
        ("get-page", {"path": {"id": "1"}, "query": {"version": 3.0, "body-format": "view"}}),
        ("get-page", None),
        ("get-page", []),
        (
            "update-page",
            {
                "path": {"id": "1"},
                "body": {
                    "body": {"representation": "storage", "value": "x"},
                    "expected_version": 7.0,
                },
            },
        ),
    ],
    ids=str,
)
def test_input_that_is_not_plain_json_is_decided_alike(name: str, data: Any) -> None:
    pair = PAIRS[name]
    snapshot = copy.deepcopy(data)
    pair.check(data)
    assert data == snapshot


def test_integral_floats_become_integers_on_the_fast_path() -> None:
    pair = PAIRS["get-page"]
    data = {"path": {"id": "5"}, "query": {"version": 3.0}}
    out = pair.fast.try_fast(data)
    assert out is not None and type(out["query"]["version"]) is int
    assert type(data["query"]["version"]) is float  # the caller's input is not modified


def test_scalars_for_array_parameters_are_wrapped_on_the_fast_path() -> None:
    pair = PAIRS["search-pages"]
    out = pair.fast.try_fast({"query": {"status": "current", "limit": 3}})
    assert out == {"query": {"status": ["current"], "limit": 3}, "path": {}}


def test_without_jsonschema_rs_everything_takes_the_detailed_path() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["jsonschema_rs"] = None  # import jsonschema_rs now raises ImportError
        from harbor_confluence.errors import InputError
        from harbor_confluence.pipeline.manifest import load_manifest
        from harbor_confluence.paths import default_manifest_path
        from harbor_confluence.pipeline.validation import InputValidator
        v = InputValidator(load_manifest(default_manifest_path()).action("get-page"))
        assert not v.fast and v.try_fast({"path": {"id": "1"}}) is None
        assert v.validate({"path": {"id": "1"}, "query": {"version": 2.0}}) == {
            "path": {"id": "1"}, "query": {"version": 2}
        }
        try:
            v.validate({"path": {"id": "x"}})
        except InputError as exc:
            print(exc.violations[0].field, exc.violations[0].rule)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "path.id pattern"


# -- policy predicates: jsonschema-rs where it gives jsonschema's verdict ---------------------


@pytest.mark.parametrize("schema", KEYWORD_SCHEMAS, ids=str)
def test_policy_predicates_agree_with_jsonschema(schema: dict[str, Any]) -> None:
    from harbor_confluence.pipeline.validation import Predicate, SchemaValidator

    wrapped = {"properties": {"body": {"properties": {"v": schema}}}}
    fast, slow = Predicate(wrapped), SchemaValidator(wrapped)
    assert fast._fast is not None  # these keywords take the compiled path

    @settings(BASE, max_examples=60)
    @given(value=_VALUES)
    def prop(value: Any) -> None:
        data = {"body": {"v": value}}
        assert fast(data) == slow.is_valid(data), value

    for value in (1, 1.0, True, [1, True], {"a": 1.0}, "abc\n", 2**60, float("nan")):
        data = {"body": {"v": value}}
        assert fast(data) == slow.is_valid(data), value
    prop()


def test_the_packaged_policy_predicates_are_compiled() -> None:
    from harbor_confluence.paths import default_policy_path
    from harbor_confluence.pipeline.policy import load_policy

    policy = load_policy(default_policy_path())
    predicates = list(policy._validators.values())
    assert predicates and all(p._fast is not None for p in predicates)
    cap = next(r for r in policy.rules if r.name == "search-limit-cap")
    assert cap.when is not None
    check = policy._validators[id(cap.when)]
    assert check({"query": {"limit": 101}}) and not check({"query": {"limit": 100}})
    assert check({"query": {"limit": 101.0}})  # 101.0 is an integer in JSON Schema too
