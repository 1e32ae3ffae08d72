"""The MCP server end to end: the real ``harbor-confluence mcp`` in a child process, driven
by the SDK's own stdio client, against the simulator, with approval through the CLI."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from harbor_confluence.pipeline.executor import default_manifest_path, default_policy_path
from harbor_confluence.pipeline.manifest import load_manifest
from harbor_confluence.sim import Simulator
from tests.conftest import API_TOKEN, run_subprocess

pytest.importorskip("mcp", reason="the [mcp] extra is not installed")

import anyio
from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult, Implementation

CLIENT = "e2e-agent"


def e2e_policy(home: Path) -> Path:
    """The packaged policy with three rules in front, so the test does not depend on what
    the catalog's default policy says about these actions."""
    policy = yaml.safe_load(default_policy_path().read_text())
    policy["rules"][:0] = [
        {"name": "e2e-no-get-page", "actions": ["get-page"], "decision": "deny"},
        {
            "name": "e2e-forbidden-title",
            "actions": ["search-pages"],
            "when": {
                "properties": {
                    "query": {
                        "properties": {"title": {"const": "forbidden"}},
                        "required": ["title"],
                    }
                },
                "required": ["query"],
            },
            "decision": "deny",
            "reason": "that title is off limits",
        },
        {"name": "e2e-search-auto", "actions": ["search-pages"], "decision": "auto"},
        {"name": "e2e-create-review", "actions": ["create-page"], "decision": "require_approval"},
    ]
    path = home.parent / "e2e-policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    return path


def server_params(env: dict[str, str], *args: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "harbor_confluence.cli", "mcp", *args],
        env=env,
    )


def text_of(result: CallToolResult) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


def test_mcp_stdio_end_to_end(cli_env: dict[str, str], sim: Simulator, home: Path) -> None:
    policy = e2e_policy(home)
    replies: list[CallToolResult] = []
    seen: dict[str, Any] = {}

    async def session() -> None:
        params = server_params(cli_env, "--policy", str(policy))
        started = time.perf_counter()
        async with Client(params, client_info=Implementation(name=CLIENT, version="1")) as client:
            listing = await client.list_tools()
            seen["listed_after"] = time.perf_counter() - started
            tools = {t.name: t for t in listing.tools}
            seen["tools"] = tools

            found = await client.call_tool("search-pages", {"limit": 2})
            held = await client.call_tool(
                "create-page",
                {
                    "spaceId": "65538",
                    "title": "Written by an agent over MCP",
                    "body": {"representation": "storage", "value": "<p>hello</p>"},
                },
            )
            denied = await client.call_tool("search-pages", {"title": "forbidden"})
            invalid = await client.call_tool("search-pages", {"limit": "many"})
            not_offered = await client.call_tool("get-page", {"id": "98305"})
            replies.extend([found, held, denied, invalid, not_offered])
            seen.update(found=found, held=held, denied=denied, invalid=invalid)
            seen["not_offered"] = not_offered

            ticket = held.structured_content["ticket"]
            pending = await client.call_tool("get_approval_status", {"ticket": ticket})
            seen["pending"] = pending
            # The operator approves through the CLI, in another process, while the
            # server keeps running; approval sends the held request at once.
            approved = await anyio.to_thread.run_sync(
                lambda: run_subprocess("queue", "approve", ticket, "--as", "operator", env=cli_env)
            )
            seen["approve"] = approved
            done = await client.call_tool("get_approval_status", {"ticket": ticket})
            seen["done"] = done
            replies.extend([pending, done])

    anyio.run(session)

    tools = seen["tools"]
    # Annotations present; the statically denied action is not offered.
    assert "get-page" not in tools
    assert {"search-pages", "create-page", "get_approval_status"} <= set(tools)
    manifest = load_manifest(default_manifest_path())
    for name, tool in tools.items():
        hints = tool.annotations
        assert hints is not None, name
        if name == "get_approval_status":
            assert hints.read_only_hint is True and hints.open_world_hint is False
            continue
        action = manifest.action(name)
        assert hints.open_world_hint is True, name
        if action.is_read:
            assert hints.read_only_hint is True, name
        else:
            assert not hints.read_only_hint, name
            assert hints.destructive_hint is action.destructive, name
            assert bool(hints.idempotent_hint) is action.idempotent, name
    assert tools["create-page"].annotations.destructive_hint is False

    # A read against the simulator: structured json_summary plus a short text.
    found = seen["found"]
    assert found.is_error is False
    assert found.structured_content["ok"] is True and found.structured_content["status"] == 200
    assert len(found.structured_content["summary"]) == 2
    assert text_of(found).startswith("search-pages: ok, HTTP 200, 2 result(s)")

    # A write is held: not an error, says it waits, gives the ticket and how to check.
    held = seen["held"]
    assert held.is_error is False
    content = held.structured_content
    assert content["outcome"] == "held" and content["ticket"].startswith("t_")
    assert content["check"] == {
        "tool": "get_approval_status",
        "arguments": {"ticket": content["ticket"]},
    }
    assert "waiting for operator approval" in text_of(held)
    assert content["ticket"] in text_of(held)

    denied = seen["denied"]
    assert denied.is_error is True
    assert denied.structured_content["error"]["rule"] == "e2e-forbidden-title"
    assert "e2e-forbidden-title" in text_of(denied)

    invalid = seen["invalid"]
    assert invalid.is_error is True
    violation = invalid.structured_content["error"]["violations"][0]
    assert violation["field"] == "limit" and violation["rule"] == "type"

    assert seen["not_offered"].is_error is True
    assert "e2e-no-get-page" in text_of(seen["not_offered"])

    pending = seen["pending"].structured_content
    assert pending["state"] == "pending"
    assert pending["requester"] == f"mcp:{CLIENT}"

    assert seen["approve"].code == 0, seen["approve"].err
    done = seen["done"]
    assert done.is_error is False
    status = done.structured_content
    assert status["state"] == "succeeded", status
    assert status["result"]["ok"] is True
    assert status["result"]["summary"]["title"] == "Written by an agent over MCP"

    # Exactly the read and the approved write reached Confluence: nothing for the
    # held call, the denial, the invalid input or the withheld action.
    methods = [(e.method, e.path) for e in sim.exchanges]
    assert methods.count(("POST", "/wiki/api/v2/pages")) == 1
    assert not any(p.startswith("/wiki/api/v2/pages/") for _, p in methods)

    # Nothing returns the credential, the tenant URL (local config) or the state dir.
    for reply in replies:
        dumped = text_of(reply) + json.dumps(reply.structured_content)
        assert API_TOKEN not in dumped
        assert sim.url not in dumped
        assert str(home) not in dumped


def test_mcp_requester_override_and_compact_shape(
    cli_env: dict[str, str], sim: Simulator, home: Path
) -> None:
    seen: dict[str, Any] = {}

    async def session() -> None:
        params = server_params(cli_env, "--shape", "compact", "--requester", "night-shift-bot")
        async with Client(params, client_info=Implementation(name=CLIENT, version="1")) as client:
            seen["names"] = sorted(t.name for t in (await client.list_tools()).tools)
            listed = await client.call_tool("list_actions", {})
            seen["listed"] = listed.structured_content
            body = {"spaceId": "65538", "title": "Compact and held"}
            held = await client.call_tool("call_action", {"action": "create-page", "input": body})
            ticket = held.structured_content["ticket"]
            seen["status"] = (
                await client.call_tool("get_approval_status", {"ticket": ticket})
            ).structured_content

    anyio.run(session)
    assert seen["names"] == ["call_action", "get_approval_status", "list_actions"]
    rows = {r["name"]: r for r in seen["listed"]["actions"]}
    assert rows["create-page"]["kind"] == "write"
    assert "spaceId|spaceKey*" in rows["create-page"]["args"]  # one of the two is required
    assert "title*" in rows["create-page"]["args"]
    assert seen["status"]["state"] == "pending"
    assert seen["status"]["requester"] == "night-shift-bot"
    assert sim.request_count == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_mcp_streamable_http_on_loopback(cli_env: dict[str, str], sim: Simulator) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONFLUENCE_")}
    env.update(cli_env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "harbor_confluence.cli", "mcp", "--http", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    seen: dict[str, Any] = {}

    async def session() -> None:
        url = f"http://127.0.0.1:{port}/mcp"
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                await anyio.sleep(0.1)
        async with Client(url, client_info=Implementation(name=CLIENT, version="1")) as client:
            seen["names"] = {t.name for t in (await client.list_tools()).tools}
            seen["found"] = await client.call_tool("search-pages", {"limit": 1})
            seen["listeners"] = _listeners(port)

    try:
        anyio.run(session)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "search-pages" in seen["names"]
    assert seen["found"].structured_content["ok"] is True
    assert API_TOKEN not in err.decode(errors="replace")
    # Bound to loopback only: every listening socket on the port is 127.0.0.1.
    if seen["listeners"] is not None:
        assert seen["listeners"] == {"127.0.0.1"}


def _listeners(port: int) -> set[str] | None:
    """Local addresses listening on ``port`` (Linux /proc), or None where unavailable."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            if table.endswith("tcp"):
                return None
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            host, _, hexport = local.partition(":")
            if state != "0A" or int(hexport, 16) != port:
                continue
            if len(host) == 8:
                found.add(socket.inet_ntoa(bytes.fromhex(host)[::-1]))
            else:
                found.add("ipv6:" + host)
    return found


def test_saved_listing_answers_first_and_is_corrected(
    cli_env: dict[str, str], sim: Simulator, home: Path
) -> None:
    """A listing saved by an earlier run is served at once; calls wait for the real port,
    which enforces the real policy; the stale listing is replaced and clients are told."""
    from mcp.types import ToolListChangedNotification

    from harbor_confluence.cli import build_parser
    from harbor_confluence.cli.mcp import listing_path

    saved = listing_path(build_parser().parse_args(["mcp"]))
    saved.parent.mkdir(parents=True, exist_ok=True)
    stale = [{"name": "stale-tool", "description": "gone", "inputSchema": {"type": "object"}}]
    saved.write_text(json.dumps(stale))
    seen: dict[str, Any] = {"notified": 0}

    async def on_message(message: Any) -> None:
        if isinstance(message, ToolListChangedNotification):
            seen["notified"] += 1

    async def session() -> None:
        params = server_params(cli_env)
        async with Client(
            params, mode="legacy", cache=None, message_handler=on_message,
            client_info=Implementation(name=CLIENT, version="1"),
        ) as client:  # fmt: skip
            seen["first"] = [t.name for t in (await client.list_tools()).tools]
            seen["stale_call"] = await client.call_tool("stale-tool", {})
            with anyio.fail_after(30):
                while not seen["notified"]:
                    await anyio.sleep(0.05)
            seen["second"] = {t.name for t in (await client.list_tools()).tools}

    anyio.run(session)
    assert seen["first"] == ["stale-tool"]
    assert seen["stale_call"].is_error is True
    assert "not offered" in text_of(seen["stale_call"])
    assert "stale-tool" not in seen["second"] and "search-pages" in seen["second"]
    assert seen["notified"] == 1
    assert {d["name"] for d in json.loads(saved.read_text())} == seen["second"]
    assert sim.request_count == 0


def test_default_listing_is_scoped_to_the_budget(home: Path) -> None:
    """Issue 17: over 30,000 B for the whole catalog, ``mcp`` offers whole toolsets in the
    documented order while they fit; --all-actions, --toolset and compact are unchanged."""
    from harbor_confluence.adapters.tools import encoded_size
    from harbor_confluence.cli import build_parser
    from harbor_confluence.cli._common import load_local_port
    from harbor_confluence.cli.mcp import DEFAULT_TOOLSETS, TOOL_LIST_BUDGET, scoped_toolkit

    def kit(*argv: str) -> Any:
        args = build_parser().parse_args(["mcp", *argv])
        return scoped_toolkit(args, load_local_port(args))

    full, default = kit("--all-actions"), kit()
    port = full.port
    toolset_of = {a.name: a.toolset for a in port.manifest.actions}
    default_size = encoded_size(default.definitions("mcp"))
    assert default_size <= TOOL_LIST_BUDGET
    if encoded_size(full.definitions("mcp")) <= TOOL_LIST_BUDGET:
        assert default.actions == full.actions
    else:
        chosen = {toolset_of[name] for name in default.actions}
        order = [t for t in DEFAULT_TOOLSETS if t in set(toolset_of.values())]
        order += [t for t in dict.fromkeys(toolset_of.values()) if t not in order]
        assert chosen == set(order[: len(chosen)])  # a prefix of the documented order
        assert default.actions == [n for n in full.actions if toolset_of[n] in chosen]
        assert {"pages", "search"} <= chosen
        # the next toolset in the order would not have fitted
        nxt = order[len(chosen)]
        extra = [d for d in full.definitions("mcp") if toolset_of.get(d["name"]) == nxt]
        assert default_size + encoded_size(extra) - 1 > TOOL_LIST_BUDGET

    spaces = kit("--toolset", "spaces")
    assert spaces.actions == [n for n in full.actions if toolset_of[n] == "spaces"]
    compact = kit("--shape", "compact")
    assert compact.actions == full.actions
    assert encoded_size(compact.definitions("mcp")) <= 3_000


def test_mcp_toolset_all_offers_the_whole_catalog(cli_env: dict[str, str], home: Path) -> None:
    from harbor_confluence.cli import build_parser
    from harbor_confluence.cli.mcp import listing_path

    manifest = load_manifest(default_manifest_path())
    seen: dict[str, Any] = {}

    async def session() -> None:
        params = server_params(cli_env, "--toolset", "all")
        async with Client(params, client_info=Implementation(name=CLIENT, version="1")) as client:
            seen["names"] = {t.name for t in (await client.list_tools()).tools}

    anyio.run(session)
    assert {a.name for a in manifest.actions} <= seen["names"]
    parse = build_parser().parse_args
    assert listing_path(parse(["mcp", "--all-actions"])) != listing_path(parse(["mcp"]))
    assert listing_path(parse(["mcp", "--all-actions"])).exists()
