"""Tool definitions: policy-filtered, valid JSON Schema, accepted by the SDKs' own types,
within the size targets, and calls mapped back to the executor's input exactly."""

from __future__ import annotations

import json
import time
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from harbor_confluence.adapters.tools import (
    APPROVAL_TOOL,
    FORMATS,
    SHAPES,
    Toolkit,
    encoded_size,
    lean_schema,
    tool_sizes,
    tools,
)
from harbor_confluence.errors import ConfigError
from harbor_confluence.pipeline.executor import Port, default_manifest_path
from harbor_confluence.pipeline.manifest import manifest_from_data
from harbor_confluence.pipeline.policy import policy_from_data
from harbor_confluence.secrets.credentials import Credential
from harbor_confluence.sim import Simulator
from tests.conftest import API_TOKEN, EMAIL

# Every action offered: reads run, writes are held.  Used to measure the whole catalog.
OPEN_POLICY = {
    "version": 1,
    "rules": [
        {"name": "reads", "kind": "read", "decision": "auto"},
        {"name": "writes", "kind": "write", "decision": "require_approval"},
    ],
}
PER_ACTION_LIMIT = 30_000
COMPACT_LIMIT = 3_000


def make_port(
    home: Path, sim: Simulator | None = None, policy: dict[str, Any] | None = None
) -> Port:
    """The packaged catalog under a test policy (OPEN_POLICY unless given)."""
    return Port.load(
        default_manifest_path(),
        policy_from_data(policy or OPEN_POLICY, "test-policy"),
        home=home,
        base_url=sim.url if sim else "https://example.atlassian.net",
        credential=Credential.basic(EMAIL, API_TOKEN, "test"),
        requester="pytest",
    )


@pytest.fixture
def open_port(home: Path, sim: Simulator) -> Iterator[Port]:
    with make_port(home, sim) as p:
        yield p


# -- definitions ----------------------------------------------------------------------------


def schema_of(definition: dict[str, Any], fmt: str) -> Any:
    if fmt == "mcp":
        return definition["inputSchema"]
    if fmt == "anthropic":
        return definition["input_schema"]
    return definition["function"]["parameters"]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_input_schema_is_valid_json_schema(open_port: Port, fmt: str, shape: str) -> None:
    definitions = tools(open_port, fmt, shape=shape)  # type: ignore[arg-type]
    assert definitions
    for d in definitions:
        schema = schema_of(d, fmt)
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["type"] == "object"


def test_every_action_is_offered_once_with_a_one_line_description(open_port: Port) -> None:
    kit = Toolkit(open_port)
    names = [s.name for s in kit.specs()]
    assert names == [a.name for a in open_port.manifest.actions] + [APPROVAL_TOOL]
    for spec in kit.specs():
        assert spec.description and "\n" not in spec.description


def default_toolsets(port: Port) -> list[str]:
    """The toolsets ``harbor-confluence mcp`` offers by default for this port."""
    from harbor_confluence.cli import build_parser
    from harbor_confluence.cli.mcp import scoped_toolkit

    kit = scoped_toolkit(build_parser().parse_args(["mcp"]), port)
    by_name = port.manifest.by_name
    return sorted({by_name[s.name].toolset for s in kit.specs() if s.name in by_name})


def test_sizes_of_both_shapes_for_the_whole_catalog(open_port: Port) -> None:
    """The issues' targets (6, 17): the compact pair offers the whole catalog in <= 3,000
    bytes; one tool per action fits 30,000 bytes for the toolsets offered by default (the
    whole catalog is one flag away, and no longer fits)."""
    assert len(open_port.manifest.actions) >= 85
    scoped = default_toolsets(open_port)
    assert {"pages", "search", "spaces", "comments"} <= set(scoped)
    for fmt in FORMATS:
        sizes = tool_sizes(open_port, fmt)  # type: ignore[arg-type]
        assert sizes["actions_offered"] == len(open_port.manifest.actions)
        assert sizes["compact"]["bytes"] <= COMPACT_LIMIT, sizes
        assert sizes["per-action"]["bytes"] == encoded_size(tools(open_port, fmt))  # type: ignore[arg-type]
        default = tool_sizes(open_port, fmt, toolsets=scoped)
        assert default["per-action"]["bytes"] <= PER_ACTION_LIMIT, default


def test_schemas_keep_what_a_model_needs_and_drop_the_rest() -> None:
    schema = {
        "type": "object",
        "description": "dropped",
        "additionalProperties": False,
        "required": ["title"],
        "properties": {
            # properties *named* like keywords are data, not keywords: they stay
            "title": {"type": "string", "maxLength": 255, "description": "dropped"},
            "description": {"type": "string", "enum": ["a", "b"]},
            "limit": {"type": "integer", "minimum": 1, "maximum": 250, "default": 25},
            "version": {"type": "integer", "minimum": 1, "maximum": 2147483647},
            "id": {"type": "string", "pattern": "^[0-9]{1,19}$"},
            "tags": {"type": "array", "maxItems": 5, "items": {"type": "string", "title": "x"}},
        },
    }
    assert lean_schema(schema) == {
        "type": "object",
        "required": ["title"],
        "properties": {
            "title": {"type": "string"},
            "description": {"type": "string", "enum": ["a", "b"]},
            "limit": {"type": "integer", "minimum": 1, "maximum": 250},
            "version": {"type": "integer", "minimum": 1},
            "id": {"type": "string", "pattern": "^[0-9]{1,19}$"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    }


def test_arguments_map_back_to_their_locations(open_port: Port) -> None:
    """Every flat argument lands in the location its action declares it in."""
    kit = Toolkit(open_port)
    for action in open_port.manifest.actions:
        offer = kit._offers[action.name]
        props = offer.spec.input_schema["properties"]
        if offer.binding.nested:
            assert set(props) <= {"path", "query", "body"}
            continue
        for name in props:
            data = offer.binding.to_input(action.name, {name: "v"})
            where = [loc for loc in ("path", "query") if name in data[loc]]
            if name in (action.parameters.path or {}).get("properties", {}):
                assert where == ["path"], (action.name, name)
            elif name in (action.parameters.query or {}).get("properties", {}):
                assert where == ["query"], (action.name, name)
            elif offer.binding.body_key:
                assert name == "body" and data["body"] == "v"
            else:
                assert data["body"] == {name: "v"}, (action.name, name)


CLASH = {
    "manifestVersion": "1.0.0",
    "port": {
        "name": "clash",
        "label": "Clash",
        "description": "Names that clash across locations.",
        "publisher": {"slug": "test", "name": "Test"},
        "category": "Test",
    },
    "actions": [
        {
            "name": "update-thing",
            "description": "Path id and body id clash: the body stays under body.",
            "method": "PUT",
            "route": "/wiki/api/v2/things/{id}",
            "requestBodyMode": "json",
            "parameters": {
                "path": {
                    "type": "object",
                    "required": ["id"],
                    "properties": {"id": {"type": "string", "pattern": "^[0-9]+$"}},
                },
                "body": {
                    "type": "object",
                    "required": ["id", "title"],
                    "properties": {"id": {"type": "string"}, "title": {"type": "string"}},
                },
            },
            "summary": {"fields": {"id": "id"}},
        },
        {
            "name": "get-thing",
            "description": "Path and query share a name: the nested form.",
            "method": "GET",
            "route": "/wiki/api/v2/things/{id}",
            "parameters": {
                "path": {
                    "type": "object",
                    "required": ["id"],
                    "properties": {"id": {"type": "string", "pattern": "^[0-9]+$"}},
                },
                "query": {"type": "object", "properties": {"id": {"type": "integer"}}},
            },
            "summary": {"fields": {"id": "id"}},
        },
    ],
}


def test_clashing_names_fall_back_to_body_key_then_nested(home: Path) -> None:
    port = Port(manifest_from_data(CLASH, "clash"), policy_from_data(OPEN_POLICY, "p"), home=home)
    kit = Toolkit(port)
    update = kit._offers["update-thing"]
    assert update.spec.input_schema["required"] == ["id", "body"]
    sent = {"id": "1", "body": {"id": "1", "title": "t"}}
    assert update.binding.to_input("update-thing", sent) == {
        "path": {"id": "1"},
        "query": {},
        "body": {"id": "1", "title": "t"},
    }
    get = kit._offers["get-thing"]
    assert set(get.spec.input_schema["properties"]) == {"path", "query"}
    assert get.spec.input_schema["required"] == ["path"]
    reply = kit.call("update-thing", {"id": "1", "body": {"id": "1"}})
    assert reply.is_error
    fields = {v["field"] for v in reply.payload["error"]["violations"]}
    assert fields == {"body.title"}  # named as the agent sent it


# -- policy and filters -------------------------------------------------------------------


def test_statically_denied_actions_are_not_offered(home: Path) -> None:
    policy = {
        "version": 1,
        "rules": [
            {"name": "no-deletes", "actions": ["delete-*"], "decision": "deny"},
            *OPEN_POLICY["rules"],
        ],
    }
    with make_port(home, policy=policy) as port:
        kit = Toolkit(port)
        deletes = [a.name for a in port.manifest.actions if a.name.startswith("delete-")]
        assert deletes
        assert not set(deletes) & set(kit.actions)
        reply = kit.call(deletes[0], {})
        assert reply.is_error and "no-deletes" in reply.headline
        # a conditional deny does not hide the action: some inputs are allowed
        conditional = {"version": 1, "rules": [
            {"name": "big", "actions": ["search-pages"], "decision": "deny",
             "when": {"properties": {"query": {"required": ["limit"]}}}},
            *OPEN_POLICY["rules"],
        ]}  # fmt: skip
    with make_port(home, policy=conditional) as port:
        assert "search-pages" in Toolkit(port).actions


def test_filters_compose(open_port: Port) -> None:
    actions = open_port.manifest.actions
    pages = {a.name for a in actions if a.toolset == "pages"}
    kit = Toolkit(open_port, toolsets=["pages"], exclude=["delete-*"])
    assert set(kit.actions) == {n for n in pages if not n.startswith("delete-")}

    kit = Toolkit(open_port, include=["toolset:spaces", "get-page"], kind="read")
    expected = {a.name for a in actions if a.toolset == "spaces" and a.kind == "read"}
    assert set(kit.actions) == expected | {"get-page"}

    kit = Toolkit(open_port, exclude=["kind:write"])
    assert all(open_port.manifest.action(n).is_read for n in kit.actions)
    # nothing can be held, so there is nothing to poll
    assert APPROVAL_TOOL not in {s.name for s in kit.specs()}

    kit = Toolkit(open_port, include=["get-page"], exclude=["get-page"])
    assert kit.actions == []
    reply = kit.call("get-page", {"id": "1"})
    assert reply.is_error and "filters" in reply.headline

    for bad in ({"include": ["get-pgae"]}, {"exclude": ["toolset:nope"]}, {"toolsets": ["nope"]}):
        with pytest.raises(ConfigError):
            Toolkit(open_port, **bad)  # type: ignore[arg-type]


# -- calls --------------------------------------------------------------------------------


def test_read_reply_is_summary_plus_short_text(port: Port, sim: Simulator) -> None:
    reply = Toolkit(port).call("search-pages", {"limit": 2})
    assert not reply.is_error
    assert reply.payload["ok"] is True and reply.payload["count"] == 2
    headline, body = reply.text.split("\n", 1)
    assert headline.startswith("search-pages: ok, HTTP 200, 2 result(s)")
    assert json.loads(body) == reply.payload
    assert sim.request_count == 1


def test_invalid_input_names_the_argument_and_rule_and_sends_nothing(
    port: Port, sim: Simulator
) -> None:
    kit = Toolkit(port)
    bad_id = kit.call("get-page", {"id": "../admin"})
    assert bad_id.is_error
    (violation,) = bad_id.payload["error"]["violations"]
    assert violation["field"] == "id" and violation["rule"] == "pattern"
    unknown = kit.call("get-page", {"id": "98305", "expand": "body"})
    assert unknown.is_error
    assert unknown.payload["error"]["violations"][0]["field"] == "expand"
    assert "known arguments" in unknown.headline
    assert sim.request_count == 0


def test_denial_names_the_rule_and_sends_nothing(port: Port, sim: Simulator) -> None:
    reply = Toolkit(port).call("search-pages", {"limit": 150})
    assert reply.is_error
    assert reply.payload["error"]["code"] == "denied"
    assert reply.payload["error"]["rule"] in reply.headline
    assert sim.request_count == 0


@pytest.fixture
def held(open_port: Port) -> tuple[Toolkit, str]:
    kit = Toolkit(open_port, requester="agent-7")
    reply = kit.call("create-page", {"spaceId": "65538", "title": "Tools test"})
    assert not reply.is_error
    assert reply.payload["outcome"] == "held"
    ticket = reply.payload["ticket"]
    assert reply.payload["check"] == {"tool": APPROVAL_TOOL, "arguments": {"ticket": ticket}}
    assert ticket in reply.headline and "waiting for operator approval" in reply.headline
    return kit, ticket


def test_status_pending_then_result(held: tuple[Toolkit, str], sim: Simulator) -> None:
    kit, ticket = held
    pending = kit.call(APPROVAL_TOOL, {"ticket": ticket})
    assert pending.payload["state"] == "pending" and pending.payload["requester"] == "agent-7"
    assert "request" not in pending.payload and "url" not in json.dumps(pending.payload)
    assert sim.request_count == 0
    kit.port.approve(ticket, operator="operator")
    done = kit.call(APPROVAL_TOOL, {"ticket": ticket})
    assert done.payload["state"] == "succeeded"
    assert done.payload["result"]["summary"]["title"] == "Tools test"
    assert sim.request_count == 1


def test_status_approved_rejected_expired(open_port: Port) -> None:
    kit = Toolkit(open_port)

    def hold(title: str) -> str:
        reply = kit.call("create-page", {"spaceId": "65538", "title": title})
        return str(reply.payload["ticket"])

    approved = hold("approved, not run")
    open_port.approve(approved, operator="operator", run=False)
    assert kit.status(approved).payload["state"] == "approved"

    rejected = hold("rejected")
    open_port.reject(rejected, "not in the release window", operator="operator")
    reply = kit.status(rejected)
    assert reply.payload["state"] == "rejected"
    assert reply.payload["reason"] == "not in the release window"
    assert "not in the release window" in reply.headline

    from harbor_confluence.review.queue import ReviewQueue

    expired = hold("expired")
    later = ReviewQueue(open_port.queue.store, clock=lambda: time.time() + 10**7)
    later.sweep()
    reply = kit.status(expired)
    assert reply.payload["state"] == "expired" and "expired" in reply.headline

    missing = kit.status("t_0000000000000000")
    assert missing.is_error and "no ticket" in missing.headline


def test_compact_pair_lists_describes_and_calls(port: Port, sim: Simulator) -> None:
    kit = Toolkit(port, shape="compact")
    listed = kit.call("list_actions", {})
    rows = {r["name"]: r for r in listed.payload["actions"]}
    assert set(rows) == set(kit.actions)
    assert "id*" in rows["get-page"]["args"]
    described = kit.call("list_actions", {"names": ["get-page", "no-such"]})
    (row,) = described.payload["actions"]
    assert row["input_schema"]["required"] == ["id"]
    assert described.payload["not_offered"] == ["no-such"]
    found = kit.call("call_action", {"action": "search-pages", "input": {"limit": 1}})
    assert found.payload["ok"] is True and sim.request_count == 1
    bad = kit.call("call_action", {"action": "get-page", "input": {"id": "x"}})
    assert bad.is_error and bad.payload["error"]["violations"][0]["field"] == "id"
    # an action tool name is not a tool in the compact shape's own namespace
    assert kit.call("call_action", {"action": "call_action"}).is_error


# -- the SDKs' own types ------------------------------------------------------------------


def _typed_dict_keys(td: Any) -> set[str]:
    return set(typing.get_type_hints(td))


def test_openai_definitions_are_accepted_by_the_openai_sdk(open_port: Port) -> None:
    pytest.importorskip("openai", reason="the openai SDK is not installed")
    from openai.types.chat import ChatCompletionFunctionTool, ChatCompletionFunctionToolParam
    from openai.types.shared_params import FunctionDefinition
    from pydantic import TypeAdapter

    adapter = TypeAdapter(ChatCompletionFunctionToolParam)
    for shape in SHAPES:
        for d in tools(open_port, "openai", shape=shape):  # type: ignore[arg-type]
            adapter.validate_python(d, strict=True)
            ChatCompletionFunctionTool.model_validate(d)
            assert set(d) <= _typed_dict_keys(ChatCompletionFunctionToolParam)
            assert set(d["function"]) <= _typed_dict_keys(FunctionDefinition)
            # "a-z, A-Z, 0-9, underscores and dashes, with a maximum length of 64"
            assert len(d["function"]["name"]) <= 64
            assert d["function"]["name"].replace("-", "_").isidentifier()


def test_anthropic_definitions_are_accepted_by_the_anthropic_sdk(open_port: Port) -> None:
    pytest.importorskip("anthropic", reason="the anthropic SDK is not installed")
    from anthropic.types import ToolParam
    from pydantic import TypeAdapter

    adapter = TypeAdapter(ToolParam)
    for shape in SHAPES:
        for d in tools(open_port, "anthropic", shape=shape):  # type: ignore[arg-type]
            adapter.validate_python(d)
            assert set(d) <= _typed_dict_keys(ToolParam)
            assert d["input_schema"]["type"] == "object"


def test_mcp_definitions_are_accepted_by_the_mcp_sdk(open_port: Port) -> None:
    pytest.importorskip("mcp", reason="the [mcp] extra is not installed")
    from mcp.types import ListToolsResult, Tool

    for shape in SHAPES:
        defs = tools(open_port, "mcp", shape=shape)  # type: ignore[arg-type]
        listing = ListToolsResult(tools=[Tool.model_validate(d) for d in defs])
        wire = listing.model_dump(by_alias=True, mode="json", exclude_none=True)["tools"]
        assert wire == defs  # the SDK sends exactly what was measured


# -- the CLI ------------------------------------------------------------------------------


def test_cli_tools_and_stats(cli: Any, home: Path) -> None:
    listed = cli("tools", "--format", "anthropic", "--toolset", "spaces", "--kind", "read")
    assert listed.code == 0
    names = {d["name"] for d in json.loads(listed.out)}
    assert names and all("space" in n for n in names)
    stats = cli("tools", "--format", "mcp", "--stats", "--json")
    assert stats.code == 0
    sizes = stats.json()
    assert sizes["compact"]["bytes"] <= COMPACT_LIMIT
    whole = cli("tools", "--format", "mcp")
    assert sizes["per-action"]["bytes"] == encoded_size(json.loads(whole.out))
    core = [f"--toolset={name}" for name in ("pages", "search", "spaces", "comments")]
    scoped = cli("tools", "--format", "mcp", "--stats", "--json", *core)
    assert scoped.json()["per-action"]["bytes"] <= PER_ACTION_LIMIT
    text = cli("tools", "--stats")
    assert "per-action" in text.out and "compact" in text.out
    bad = cli("tools", "--include", "no-such-action")
    assert bad.code == 1 and "matches no action" in bad.err
