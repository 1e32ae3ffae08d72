"""Drafts as an agent's tools: list, propose, validate, test and request publication —
embedded through the Toolkit, and on a node over MCP with the token's identity; an operator
publishes and the agent calls the new action.  Publishing is never a tool."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harbor_confluence import Forbidden, NodeClient
from harbor_confluence.adapters.tools import DRAFT_TOOLS, Toolkit, encoded_size, tool_sizes
from harbor_confluence.pipeline.executor import Port
from harbor_confluence.review.audit import AuditLog
from harbor_confluence.sim import Simulator
from tests.conftest import API_TOKEN, EMAIL, CliResult
from tests.nodeutil import Node

Cli = Callable[..., CliResult]
ID = {"type": "string", "pattern": "^[0-9]{1,19}$"}
SPACE = "65538"  # the simulator's ENG space


def definition(name: str = "lookup-space", **overrides: Any) -> dict[str, Any]:
    """A read the simulator serves (GET /wiki/api/v2/spaces/{id}), not in the catalog."""
    data: dict[str, Any] = {
        "name": name,
        "description": "Get one space by id, optionally with its description.",
        "method": "GET",
        "route": "/wiki/api/v2/spaces/{id}",
        "toolset": "spaces",
        "scopes": ["read:space:confluence"],
        "defaultPolicy": "auto",
        "parameters": {
            "path": {"type": "object", "required": ["id"], "properties": {"id": ID}},
            "query": {
                "type": "object",
                "properties": {"description-format": {"type": "string", "enum": ["plain"]}},
            },
        },
        "summary": {"fields": {"id": "id", "key": "key", "name": "name"}},
    }
    data.update(overrides)
    return data


# -- embedded: the Toolkit --------------------------------------------------------------------


def test_draft_tools_are_opt_in_and_fit_the_budget(home: Path) -> None:
    with Port.load(home=home) as port:
        plain = [d["name"] for d in Toolkit(port).definitions("mcp")]
        assert not set(DRAFT_TOOLS) & set(plain)
        kit = Toolkit(port, drafts=True)
        names = [d["name"] for d in kit.definitions("mcp")]
        assert [n for n in names if n in DRAFT_TOOLS] == list(DRAFT_TOOLS)
        assert "publish" not in " ".join(names)  # publishing is never a tool
        compact = [d["name"] for d in Toolkit(port, drafts=True, shape="compact").definitions()]
        assert set(DRAFT_TOOLS) <= set(compact)
        sizes = tool_sizes(port, "mcp", drafts=True)
        assert sizes["compact"]["bytes"] <= 3_000, sizes
        # What `mcp --drafts` lists by default fits the budget (issue 17: toolset-scoped
        # when the whole catalog would not), the draft tools included.
        from harbor_confluence.cli import build_parser
        from harbor_confluence.cli.mcp import scoped_toolkit

        served = scoped_toolkit(build_parser().parse_args(["mcp", "--drafts"]), port)
        listed = served.definitions("mcp")
        assert encoded_size(listed) <= 30_000, encoded_size(listed)
        assert set(DRAFT_TOOLS) <= {d["name"] for d in listed}
        drafts_only = [d for d in kit.definitions("mcp") if d["name"] in DRAFT_TOOLS]
        assert encoded_size(drafts_only) < 2_000
        annotations = {d["name"]: d["annotations"] for d in kit.definitions("mcp")}
        assert annotations["list_drafts"] == {"readOnlyHint": True, "openWorldHint": False}
        assert annotations["propose_draft"]["destructiveHint"] is False


def test_drafts_flag_refuses_port_files(cli: Cli, home: Path) -> None:
    from harbor_confluence.pipeline.executor import default_manifest_path

    result = cli("tools", "--drafts", "--manifest", str(default_manifest_path()))
    assert result.code == 2 and "--drafts works on the live port" in result.err
    stats = cli("tools", "--format", "mcp", "--stats", "--drafts", "--json")
    assert stats.code == 0 and stats.json()["mcp_default"]["bytes"] <= 30_000
    assert stats.json()["compact"]["bytes"] <= 3_000


def test_embedded_agent_proposes_validates_tests_and_asks(
    cli: Cli, cli_env: dict[str, str], sim: Simulator, home: Path
) -> None:
    with Port.load(home=home) as port:
        kit = Toolkit(port, drafts=True, requester="mcp:agent-7")
        listed = kit.call("list_drafts", {"example": "get-space"})
        assert not listed.is_error and listed.payload["drafts"] == []
        assert listed.payload["example"]["route"] == "/wiki/api/v2/spaces/{id}"
        assert any(row["name"] == "get-page" for row in listed.payload["live"])

        bad = kit.call("propose_draft", {"definition": definition(route="/wiki/api/v2/{+id}")})
        assert bad.is_error and "only simple {var} expansion" in bad.text
        not_object = kit.call("propose_draft", {"definition": "GET /wiki"})
        assert not_object.is_error and not_object.payload["error"]["code"] == "invalid_input"

        proposed = kit.call("propose_draft", {"definition": definition()})
        assert not proposed.is_error, proposed.text
        assert proposed.payload["draft"]["proposer"] == "mcp:agent-7"
        assert "source" not in proposed.payload["draft"]

        checked = kit.call("validate_draft", {"name": "lookup-space"})
        assert not checked.is_error and checked.payload["ok"] is True, checked.text

        dry = kit.call("test_draft", {"name": "lookup-space", "input": {"path": {"id": SPACE}}})
        assert not dry.is_error, dry.text
        assert dry.payload["sent"] is False
        assert dry.payload["request"]["path"] == f"/wiki/api/v2/spaces/{SPACE}"
        assert dry.payload["live_decision"] == {"decision": "deny", "rule": "default-deny"}
        assert sim.url not in dry.text and str(home) not in dry.text  # no tenant, no paths

        send = kit.call(
            "test_draft", {"name": "lookup-space", "input": {"path": {"id": SPACE}}, "send": True}
        )
        assert send.is_error and send.payload["error"]["rule"] == "default-deny"
        assert sim.request_count == 0

        asked = kit.call("request_publication", {"name": "lookup-space"})
        assert not asked.is_error and asked.payload["draft"]["status"] == "publish_requested"
        assert "operator" in asked.headline
    assert cli("drafts", "show", "lookup-space", "--json").json()["publishRequest"]["by"] == (
        "mcp:agent-7"
    )
    published = cli("drafts", "publish", "lookup-space", "--as", "alice", "--accept-proposals")
    assert published.code == 0, published.err
    with Port.load(home=home) as port:
        reply = Toolkit(port).call("lookup-space", {"id": SPACE})
        assert not reply.is_error, reply.text
        assert reply.payload["summary"]["name"] == "Engineering"


# -- on a node: MCP with the token's identity -------------------------------------------------


@pytest.fixture(scope="module")
def node_sim(contract: Any) -> Iterator[Simulator]:
    with Simulator(email=EMAIL, api_token=API_TOKEN) as s:
        yield s
        exchanges = list(s.exchanges)
    if contract is not None:
        for exchange in exchanges:
            contract.check_exchange(exchange)


@pytest.fixture(scope="module")
def node(node_sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    n = Node(tmp_path_factory.mktemp("drafts-node") / "home", node_sim.url)
    n.setup(EMAIL, API_TOKEN, [("codex", "agent"), ("carol", "agent"), ("alice", "operator")])
    narrow = n.admin("node", "add-agent", "narrow", "--toolsets", "pages", "--json")
    assert narrow.code == 0, narrow.err
    n.tokens["narrow/agent"] = narrow.json()["token"]
    n.start()
    yield n
    log = n.stop()
    assert API_TOKEN not in log


def mcp_session(node: Node, token: str, steps: Callable[[Any], Any], *, drafts: bool) -> Any:
    import anyio
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    url = f"{node.url}/mcp" + ("?drafts=1" if drafts else "")

    async def run() -> Any:
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            httpx2.AsyncClient(headers=headers) as http,
            streamable_http_client(url, http_client=http) as streams,
            ClientSession(streams[0], streams[1]) as session,
        ):
            await session.initialize()
            return await steps(session)

    return anyio.run(run)


def test_mcp_agent_drafts_on_the_node_then_calls_the_published_action(
    node: Node, node_sim: Simulator
) -> None:
    sim = node_sim
    token = node.tokens["codex/agent"]
    before = len(sim.exchanges)

    async def propose_to_request(s: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"tools": [t.name for t in (await s.list_tools()).tools]}
        out["example"] = await s.call_tool("list_drafts", {"example": "get-space"})
        out["proposed"] = await s.call_tool("propose_draft", {"definition": definition()})
        out["validated"] = await s.call_tool("validate_draft", {"name": "lookup-space"})
        data = {"path": {"id": SPACE}, "query": {"description-format": "plain"}}
        out["dry"] = await s.call_tool("test_draft", {"name": "lookup-space", "input": data})
        out["send"] = await s.call_tool(
            "test_draft", {"name": "lookup-space", "input": data, "send": True}
        )
        out["asked"] = await s.call_tool("request_publication", {"name": "lookup-space"})
        out["listed"] = await s.call_tool("list_drafts", {})
        return out

    got = mcp_session(node, token, propose_to_request, drafts=True)
    assert set(DRAFT_TOOLS) <= set(got["tools"]) and "lookup-space" not in got["tools"]
    assert got["example"].structured_content["example"]["name"] == "get-space"
    proposed = got["proposed"].structured_content
    assert not got["proposed"].is_error, proposed
    assert proposed["draft"]["proposer"] == "codex"  # the token's identity
    assert got["validated"].structured_content["ok"] is True, got["validated"].structured_content
    dry = got["dry"].structured_content
    assert dry["sent"] is False and dry["live_decision"]["rule"] == "default-deny"
    assert dry["request"]["path"] == f"/wiki/api/v2/spaces/{SPACE}?description-format=plain"
    assert sim.url not in json.dumps(dry)
    assert got["send"].is_error  # the live policy denies it: nothing is sent
    assert got["send"].structured_content["error"]["rule"] == "default-deny"
    assert got["asked"].structured_content["draft"]["status"] == "publish_requested"
    (row,) = got["listed"].structured_content["drafts"]
    assert (row["name"], row["status"], row["validation"]) == (
        "lookup-space", "publish_requested", "ok"
    )  # fmt: skip
    assert len(sim.exchanges) == before

    # without ?drafts=1 the agent's tool list is the actions alone
    plain = mcp_session(
        node, token, lambda s: _tool_names(s), drafts=False
    )  # fmt: skip
    assert not set(DRAFT_TOOLS) & set(plain)

    # the operator publishes on the node host; the agent cannot, by any route
    shown = node.admin("drafts", "show", "lookup-space", "--json").json()
    assert shown["proposer"] == "codex" and shown["publishRequest"]["by"] == "codex"
    published = node.admin("drafts", "publish", "lookup-space", "--as", "alice",
                           "--accept-proposals", "--json")  # fmt: skip
    assert published.code == 0, published.out + published.err
    assert published.json()["proposer"] == "codex"

    async def call_it(s: Any) -> tuple[list[str], Any]:
        tools = [t.name for t in (await s.list_tools()).tools]
        return tools, await s.call_tool("lookup-space", {"id": SPACE})

    tools, ran = mcp_session(node, token, call_it, drafts=True)
    assert "lookup-space" in tools
    assert not ran.is_error, ran.content
    assert ran.structured_content["summary"]["name"] == "Engineering"
    assert [e.path for e in list(sim.exchanges)[before:]] == [f"/wiki/api/v2/spaces/{SPACE}"]
    records = [r for r in AuditLog.for_home(node.home).records() if r["event"].startswith("draft")]
    assert [r["event"] for r in records] == [
        "draft-proposed", "draft-publish-requested", "draft-published"
    ]  # fmt: skip
    assert records[0]["proposer"] == "codex" and records[2]["published_by"] == "alice"


async def _tool_names(s: Any) -> list[str]:
    return [t.name for t in (await s.list_tools()).tools]


def test_node_drafts_are_the_tokens_own(node: Node, node_sim: Simulator) -> None:
    sim = node_sim
    carol = NodeClient(node.url, token=node.tokens["carol/agent"])
    narrow = NodeClient(node.url, token=node.tokens["narrow/agent"])
    with carol, narrow:
        mine = carol.drafts.propose(definition("space-by-id"))
        assert mine["proposer"] == "carol"
        with pytest.raises(Exception, match="requester is your token's identity"):
            carol.drafts.propose(definition("space-by-id-2"), who="alice")
        assert [d["name"] for d in narrow.drafts.list()] == []  # carol's is not narrow's
        with pytest.raises(Exception, match="no draft 'space-by-id' of yours"):
            narrow.drafts.validate("space-by-id")
        assert carol.drafts.validate("space-by-id")["ok"] is True

        # a grant narrowed by toolset cannot send a draft test (a dry run is fine)
        narrow.drafts.propose(definition("space-peek", toolset="pages"))
        dry = narrow.drafts.test("space-peek", {"path": {"id": SPACE}})
        assert dry["sent"] is False and "url" not in dry["request"]
        before = len(sim.exchanges)
        with pytest.raises(Forbidden, match="narrowed to toolsets pages"):
            narrow.drafts.test("space-peek", {"path": {"id": SPACE}}, send=True)
        assert len(sim.exchanges) == before
        # publishing is not a route
        assert carol.request("GET", "/v1/drafts/space-by-id")["name"] == "space-by-id"
        with pytest.raises(Exception, match=r"HTTP 404|HTTP 405|not found|Not Found"):
            carol.request("POST", "/v1/drafts/space-by-id/publish")


# -- over stdio: the embedded server, and the client-mode bridge to a node ----------------------


def _stdio(env: dict[str, str], steps: Callable[[Any], Any]) -> Any:
    import sys

    import anyio
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client
    from mcp.types import Implementation

    params = StdioServerParameters(
        command=sys.executable, args=["-m", "harbor_confluence.cli", "mcp", "--drafts"], env=env
    )

    async def run() -> Any:
        async with (
            stdio_client(params) as (r, w),
            ClientSession(r, w, client_info=Implementation(name="stdio-agent", version="1")) as s,
        ):
            await s.initialize()
            return await steps(s)

    return anyio.run(run)


async def _list_and_propose(s: Any) -> tuple[list[str], Any]:
    tools = [t.name for t in (await s.list_tools()).tools]
    return tools, await s.call_tool("propose_draft", {"definition": definition("space-info")})


def test_stdio_mcp_drafts_embedded(cli: Cli, home: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HARBOR_CONFLUENCE_HOME": str(home)}
    tools, proposed = _stdio(env, _list_and_propose)
    assert set(DRAFT_TOOLS) <= set(tools)
    assert not proposed.is_error, proposed.content
    assert proposed.structured_content["draft"]["proposer"] == "mcp:stdio-agent"
    assert cli("drafts", "show", "space-info", "--json").json()["proposer"] == "mcp:stdio-agent"


def test_stdio_mcp_drafts_in_client_mode_use_the_node(node: Node) -> None:
    env = {"PATH": "/usr/bin:/bin", **node.client_env("carol/agent")}
    tools, proposed = _stdio(env, _list_and_propose)
    assert set(DRAFT_TOOLS) <= set(tools)
    assert not proposed.is_error, proposed.content
    assert proposed.structured_content["draft"]["proposer"] == "carol"  # the token's, not mcp:
