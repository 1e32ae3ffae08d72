"""The stdio MCP server's front (``mcp_front``): the first answers come from the SDK's
own answers saved by an earlier run, then the SDK server takes over the same stream.

Each test drives the real ``harbor-confluence mcp`` in a child process with raw JSON-RPC
lines, so what is compared is the bytes a client reads.  The reference is always the
SDK-only path (a run with no saved answers)."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml

from harbor_confluence.sim import Simulator

pytest.importorskip("mcp", reason="the [mcp] extra is not installed")

from harbor_confluence.adapters import mcp_front
from harbor_confluence.cli import build_parser
from harbor_confluence.cli.mcp import answers_path, answers_stamp, listing_path

ENVELOPE_KEYS = (
    mcp_front.PROTOCOL_VERSION_KEY,
    mcp_front.CLIENT_INFO_KEY,
    mcp_front.CLIENT_CAPABILITIES_KEY,
)


def initialize(rid: int | str, version: str, **caps: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": rid,
        "method": "initialize",
        "params": {
            "protocolVersion": version,
            "capabilities": caps,
            "clientInfo": {"name": "front-test", "version": "1"},
        },
    }


INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def request(rid: int | str, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        out["params"] = params
    return out


def modern(rid: int, method: str, **extra: Any) -> dict[str, Any]:
    values = ("2026-07-28", {"name": "front-test", "version": "1"}, {})
    meta = dict(zip(ENVELOPE_KEYS, values, strict=True))
    return request(rid, method, {"_meta": meta, **extra})


PORT_ARGS: list[str] = []


@pytest.fixture(autouse=True)
def pinned_port(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Copies of the packaged manifest and policy, passed to every server: the saved
    answers' stamps then change only when a test changes them."""
    from harbor_confluence.paths import default_manifest_path, default_policy_path

    home.parent.mkdir(parents=True, exist_ok=True)
    manifest, policy = home.parent / "manifest.yaml", home.parent / "policy.yaml"
    manifest.write_bytes(default_manifest_path().read_bytes())
    policy.write_bytes(default_policy_path().read_bytes())
    monkeypatch.setattr(
        sys.modules[__name__], "PORT_ARGS", ["--manifest", str(manifest), "--policy", str(policy)]
    )


class RawServer:
    """``harbor-confluence mcp`` in a child process, spoken to line by line."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        full = {k: v for k, v in os.environ.items() if not k.startswith("CONFLUENCE_")}
        full.update(env)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "harbor_confluence.cli", "mcp", *PORT_ARGS, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full,
        )
        self.lines: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def send(self, *messages: dict[str, Any]) -> None:
        """All ``messages`` in one write: a client that does not wait between them."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"".join(json.dumps(m).encode() + b"\n" for m in messages))
        self.proc.stdin.flush()

    def recv_raw(self, timeout: float = 60) -> bytes:
        return self.lines.get(timeout=timeout)

    def recv(self, timeout: float = 60) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.recv_raw(timeout))
        return data

    def recv_response(self, timeout: float = 60) -> dict[str, Any]:
        """The next response, skipping notifications."""
        while True:
            message = self.recv(timeout)
            if "method" not in message:
                return message

    def close(self) -> str:
        """End the input, wait for the exit; the server's stderr."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(timeout=60) == 0
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode()


def exchange(env: dict[str, str], messages: list[dict[str, Any]], *args: str) -> list[bytes]:
    """Send ``messages`` one by one, each request waiting for its answer; the raw answers."""
    server = RawServer(env, *args)
    out: list[bytes] = []
    for message in messages:
        server.send(message)
        if "id" in message:
            out.append(server.recv_raw())
    assert server.close() == ""  # stderr stays quiet
    return out


def saved_answers(*args: str) -> tuple[Path, Any]:
    """Where ``mcp`` with ``args`` keeps its answers, and the stamp they must carry."""
    parsed = build_parser().parse_args(["mcp", *PORT_ARGS, *args])
    return answers_path(listing_path(parsed)), answers_stamp(parsed)


def front_ready(*args: str) -> bool:
    path, stamp = saved_answers(*args)
    return mcp_front.read_saved(path, stamp) is not None


CASES = {
    "current": [
        initialize(1, "2025-11-25", roots={"listChanged": True}, sampling={}),
        INITIALIZED,
        request(2, "tools/list"),
        request(3, "ping"),
        request("four", "tools/list", {}),
    ],
    "oldest": [initialize(1, "2024-11-05"), INITIALIZED, request(2, "tools/list")],
    "unknown-version": [initialize(7, "2099-01-01"), request(8, "tools/list"), INITIALIZED],
    "2026-era": [modern(1, "server/discover"), modern(2, "tools/list"), modern(3, "tools/list")],
}


@pytest.mark.parametrize("case", list(CASES))
def test_front_answers_are_the_sdks(cli_env: dict[str, str], home: Path, case: str) -> None:
    """(a) The same bytes as the SDK-only path, for each protocol era and version."""
    messages = CASES[case]
    assert not front_ready()
    reference = exchange(cli_env, messages)  # no saved answers: the SDK answers all
    assert front_ready()  # that run saved them for the next start
    served = exchange(cli_env, messages)
    assert served == reference
    parsed = [json.loads(line) for line in served]
    assert [p["id"] for p in parsed] == [m["id"] for m in messages if "id" in m]
    assert all("result" in p for p in parsed)
    tools = [p["result"]["tools"] for p in parsed if "tools" in p["result"]]
    assert tools and all(len(t) > 3 for t in tools)
    assert front_ready()  # the SDK agreed with every answer: nothing was discarded


def test_first_run_without_saved_listing(cli_env: dict[str, str], sim: Simulator) -> None:
    """(e) No listing and no answers: the SDK path, and the answers are saved for next time."""
    path, _ = saved_answers()
    assert not path.exists()
    server = RawServer(cli_env)
    server.send(initialize(1, "2025-06-18"), INITIALIZED, request(2, "tools/list"))
    assert server.recv()["result"]["protocolVersion"] == "2025-06-18"
    names = {t["name"] for t in server.recv()["result"]["tools"]}
    assert "search-pages" in names
    server.send(request(3, "tools/call", {"name": "search-pages", "arguments": {"limit": 1}}))
    called = server.recv_response()
    assert called["id"] == 3 and called["result"]["structuredContent"]["status"] == 200
    assert server.close() == ""
    assert front_ready()


def warm_up(env: dict[str, str]) -> None:
    """One SDK-only session, which saves the answers the front serves next time."""
    exchange(env, [initialize(1, "2025-06-18"), INITIALIZED, request(2, "tools/list")])
    assert front_ready()


def test_call_right_after_initialize_hands_over(cli_env: dict[str, str], sim: Simulator) -> None:
    """(b) A tools/call before any tools/list: answered by the SDK on the real port."""
    warm_up(cli_env)
    before = sim.request_count
    server = RawServer(cli_env)
    server.send(initialize(1, "2025-06-18"))
    assert server.recv()["id"] == 1
    call = {"name": "search-pages", "arguments": {"limit": 2}}
    server.send(INITIALIZED, request(2, "tools/call", call))
    called = server.recv_response()
    assert called["id"] == 2
    result = called["result"]
    assert result["isError"] is False
    assert result["structuredContent"]["ok"] is True
    assert len(result["structuredContent"]["summary"]) == 2
    assert sim.request_count == before + 1
    assert server.close() == ""


def test_ping_before_and_after_handover(cli_env: dict[str, str], sim: Simulator) -> None:
    """(c) ping answered by the front, then by the SDK after a call handed over."""
    warm_up(cli_env)
    server = RawServer(cli_env)
    server.send(initialize(1, "2025-11-25"), INITIALIZED, request(2, "ping"))
    assert server.recv()["id"] == 1
    assert server.recv() == {"jsonrpc": "2.0", "id": 2, "result": {}}
    server.send(request(3, "tools/call", {"name": "search-pages", "arguments": {"limit": 1}}))
    assert server.recv_response()["id"] == 3
    server.send(request(4, "ping"))
    assert server.recv_response() == {"jsonrpc": "2.0", "id": 4, "result": {}}
    assert server.close() == ""


def test_back_to_back_requests(cli_env: dict[str, str], sim: Simulator) -> None:
    """(d) initialize, tools/list and tools/call in one write: three answers, right ids."""
    warm_up(cli_env)
    server = RawServer(cli_env)
    server.send(
        initialize(11, "2025-11-25"),
        INITIALIZED,
        request(12, "tools/list"),
        request(13, "tools/call", {"name": "search-pages", "arguments": {"limit": 1}}),
    )
    answers = {}
    for _ in range(3):
        got = server.recv_response()
        answers[got["id"]] = got["result"]
    assert answers[11]["serverInfo"]["name"] == "harbor-confluence"
    assert "search-pages" in {t["name"] for t in answers[12]["tools"]}
    assert answers[13]["structuredContent"]["status"] == 200
    assert server.close() == ""


def test_unusual_requests_go_to_the_sdk(cli_env: dict[str, str], home: Path) -> None:
    """What the front does not know exactly, the SDK answers, even with answers saved."""
    warm_up(cli_env)
    odd_init = initialize(1, "2025-11-25")
    odd_init["params"]["capabilities"] = {"sampling": {"context": True}}  # not an object
    server = RawServer(cli_env)
    server.send(odd_init)
    got = server.recv()
    assert got["id"] == 1 and "error" in got  # the SDK's refusal, not a saved success
    server.send(request(2, "tools/list", {"cursor": "abc"}))
    assert server.recv_response()["id"] == 2
    assert server.close() == ""
    assert front_ready()


def test_stale_listing_is_corrected_after_handover(
    cli_env: dict[str, str], sim: Simulator, home: Path
) -> None:
    """A listing the front served that the real port does not offer: calls are refused by
    the real policy, the client is told the list changed, and the answers are re-saved."""
    warm_up(cli_env)
    path, stamp = saved_answers()
    saved = json.loads(path.read_bytes())
    stale = [{"name": "stale-tool", "description": "gone", "inputSchema": {"type": "object"}}]
    saved["tools"] = stale
    for entry in saved["legacy"].values():
        saved["blobs"].append(json.dumps({"tools": stale}, separators=(",", ":")))
        entry["tools/list"] = len(saved["blobs"]) - 1
    path.write_text(json.dumps(saved))
    assert mcp_front.read_saved(path, stamp) is not None

    server = RawServer(cli_env)
    server.send(initialize(1, "2025-11-25"), INITIALIZED, request(2, "tools/list"))
    server.recv()
    assert [t["name"] for t in server.recv()["result"]["tools"]] == ["stale-tool"]
    notified = server.recv(timeout=60)  # sent once the SDK has loaded the real port
    assert notified == {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}
    server.send(request(3, "tools/call", {"name": "stale-tool", "arguments": {}}))
    refused = server.recv_response()
    assert refused["id"] == 3 and refused["result"]["isError"] is True
    server.send(request(4, "tools/list"))
    fresh = {t["name"] for t in server.recv_response()["result"]["tools"]}
    assert "stale-tool" not in fresh and "search-pages" in fresh
    assert server.close() == ""
    resaved = mcp_front.read_saved(path, stamp)
    assert resaved is not None and {t["name"] for t in resaved["tools"]} == fresh
    assert sim.request_count == 0


def test_an_edited_policy_is_not_served_from_old_answers(
    cli_env: dict[str, str], sim: Simulator, home: Path
) -> None:
    policy = home.parent / "policy.yaml"  # the copy every server here is given
    warm_up(cli_env)
    doc = yaml.safe_load(policy.read_text())
    doc["rules"].insert(0, {"name": "no-search", "actions": ["search-pages"], "decision": "deny"})
    policy.write_text(yaml.safe_dump(doc))
    assert not front_ready()  # the policy's stamp changed: the SDK serves from the start
    server = RawServer(cli_env)
    server.send(initialize(1, "2025-11-25"), INITIALIZED)
    assert server.recv()["id"] == 1
    server.send(request(2, "tools/call", {"name": "search-pages", "arguments": {"limit": 1}}))
    refused = server.recv_response()
    assert refused["result"]["isError"] is True
    assert "no-search" in refused["result"]["content"][0]["text"]  # not offered: that rule
    server.send(request(3, "tools/list"))
    assert "search-pages" not in {t["name"] for t in server.recv_response()["result"]["tools"]}
    assert server.close() == ""
    assert front_ready()  # saved again, for the edited policy
    assert sim.request_count == 0


# -- the front alone, over an in-memory pipe --------------------------------------------


class MemoryPipe:
    """The two calls ``mcp_front.serve`` makes of a pipe, over lists."""

    def __init__(self, *items: Any) -> None:
        self.items = [json.dumps(i).encode() + b"\n" if isinstance(i, dict) else i for i in items]
        self.written: list[bytes] = []

    def get(self) -> Any:
        return self.items.pop(0)

    def write(self, data: bytes) -> None:
        self.written.append(data)


SAVED = {
    "format": mcp_front.FORMAT,
    "stamp": None,
    "tools": [{"name": "t"}],
    "blobs": ['{"protocolVersion":"2025-11-25"}', '{"tools":[{"name":"t"}]}', "{}"],
    "legacy": {
        "2025-11-25": {"initialize": 0, "tools/list": 1, "ping": 2},
        "*": {"initialize": 0, "tools/list": 1, "ping": 2},
    },
    "modern": {"2026-07-28": {"server/discover": 2, "tools/list": 1}},
}


def serve(*items: Any) -> tuple[mcp_front.Handover, MemoryPipe]:
    pipe = MemoryPipe(*items)
    handover = mcp_front.serve(pipe, SAVED)  # type: ignore[arg-type]
    return handover, pipe


def test_front_replays_the_handshake_and_hands_over_the_rest() -> None:
    call = request(3, "tools/call", {"name": "t"})
    handover, pipe = serve(initialize(1, "2025-11-25"), INITIALIZED, request(2, "tools/list"), call)
    assert pipe.written == [
        b'{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-11-25"}}\n',
        b'{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"t"}]}}\n',
    ]
    assert [json.loads(line) for line in handover.replay] == [
        initialize(1, "2025-11-25"),
        INITIALIZED,
    ]
    assert list(handover.drop) == [1] and handover.drop[1] == pipe.written[0]
    assert [json.loads(line or b"") for line in handover.pending] == [call]


@pytest.mark.parametrize(
    "first",
    [
        request(1, "tools/list"),  # before initialize
        {**initialize(1, "2025-11-25"), "extra": 1},
        {**initialize(True, "2025-11-25")},  # a bool is not an id
        {**initialize("a\\b", "2025-11-25")},
        initialize(1, "2025-11-25", roots={"listChanged": "yes"}),
        initialize(1, "2025-11-25", tasks={}),
        {**initialize(1, "2025-11-25"), "params": {"protocolVersion": "2025-11-25"}},
        modern(1, "tools/call", name="t"),
        modern(1, "tools/list", cursor="x"),
        request(1, "server/discover", {"_meta": {mcp_front.PROTOCOL_VERSION_KEY: "2027-01-01"}}),
        INITIALIZED,
    ],
)
def test_front_answers_nothing_it_does_not_know_exactly(first: dict[str, Any]) -> None:
    handover, pipe = serve(first)
    assert pipe.written == [] and handover.replay == [] and handover.drop == {}
    assert handover.pending == [json.dumps(first).encode() + b"\n"]


def test_front_on_end_of_input_and_on_ready() -> None:
    handover, _ = serve(initialize(1, "2025-11-25"), None)
    assert handover.pending == [None] and len(handover.replay) == 1
    handover, pipe = serve(initialize(1, "2025-11-25"), mcp_front.READY, request(2, "ping"))
    assert handover.pending == [] and len(pipe.written) == 1
    handover, _ = serve(b"not json\n")
    assert handover.pending == [b"not json\n"]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_the_sdk_client_over_the_front(cli_env: dict[str, str], sim: Simulator, mode: str) -> None:
    """The SDK's own stdio client, in both eras, against a server that starts on its
    saved answers: listing, a call (handover) and, on the handshake era, ping."""
    import anyio
    from mcp import Client, StdioServerParameters
    from mcp.types import Implementation

    warm_up(cli_env)
    seen: dict[str, Any] = {}

    async def session() -> None:
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "harbor_confluence.cli", "mcp", *PORT_ARGS],
            env=cli_env,
        )
        info = Implementation(name="sdk-client", version="1")
        async with Client(params, mode=mode, client_info=info) as client:  # type: ignore[arg-type]
            seen["tools"] = {t.name for t in (await client.list_tools()).tools}
            seen["found"] = await client.call_tool("search-pages", {"limit": 2})
            seen["again"] = {t.name for t in (await client.list_tools()).tools}
            if mode == "legacy":
                with warnings.catch_warnings():  # ping is gone from the 2026 era only
                    warnings.simplefilter("ignore")
                    await client.send_ping()

    anyio.run(session)
    assert "search-pages" in seen["tools"] and seen["again"] == seen["tools"]
    found = seen["found"]
    assert found.is_error is False and found.structured_content["status"] == 200
    assert len(found.structured_content["summary"]) == 2
    assert front_ready()
