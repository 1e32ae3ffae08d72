"""MCP servers over stdio, driven with the official ``mcp`` SDK client.

Used for mcp-atlassian (a console script in its own venv, see ``bench/run.sh``) and for
``harbor-confluence mcp`` when that command exists.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from bench.common import API_TOKEN, EMAIL


@dataclass(frozen=True)
class ServerSpec:
    """How to start one MCP server: command, arguments and the environment it needs."""

    name: str
    command: str
    args: tuple[str, ...]
    env: dict[str, str]
    cwd: str | None = None


def mcp_atlassian_spec(command: Path, base_url: str) -> ServerSpec:
    """mcp-atlassian configured for Confluence only, with Basic auth against the simulator.

    ``CONFLUENCE_URL`` is the site URL including ``/wiki``, as mcp-atlassian documents for
    Cloud (its v1 client builds ``<url>/rest/api/...``).
    """
    return ServerSpec(
        "mcp-atlassian",
        str(command),
        (),
        {
            "CONFLUENCE_URL": base_url,
            "CONFLUENCE_USERNAME": EMAIL,
            "CONFLUENCE_API_TOKEN": API_TOKEN,
        },
        cwd=tempfile.mkdtemp(prefix="bench-mcp-atlassian-"),  # no stray .env is read
    )


def harbor_mcp_spec(command: str, url: str, home: Path) -> ServerSpec:
    return ServerSpec(
        "harbor-confluence mcp",
        command,
        ("mcp",),
        {
            "HARBOR_CONFLUENCE_HOME": str(home),
            "CONFLUENCE_URL": url,
            "CONFLUENCE_EMAIL": EMAIL,
            "CONFLUENCE_API_TOKEN": API_TOKEN,
        },
    )


def harbor_cli() -> str | None:
    """This interpreter's ``harbor-confluence`` script when it has the ``mcp`` command."""
    script = Path(sys.executable).with_name("harbor-confluence")
    command = str(script) if script.exists() else shutil.which("harbor-confluence")
    if command is None:
        return None
    proc = subprocess.run([command, "mcp", "--help"], capture_output=True, check=False, timeout=120)
    return command if proc.returncode == 0 else None


def tools_bytes(tools: list[Any]) -> int:
    """Compact UTF-8 JSON of the ``tools`` array as the client received it."""
    data = [t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in tools]
    return len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())


def result_text(result: Any) -> str:
    """The text an agent would read from a tools/call result."""
    parts = [getattr(c, "text", "") for c in getattr(result, "content", []) or []]
    return "".join(p for p in parts if isinstance(p, str))


@dataclass
class Session:
    session: Any
    spawn_to_tools_list: float
    tools: list[Any]

    async def call(self, name: str, arguments: dict[str, Any]) -> Any:
        result = await self.session.call_tool(name, arguments)
        if getattr(result, "is_error", False) or getattr(result, "isError", False):
            raise RuntimeError(f"{name} failed: {result_text(result)[:300]}")
        return result


@asynccontextmanager
async def open_session(spec: ServerSpec, errlog: TextIO | None = None) -> AsyncIterator[Session]:
    """Spawn the server, initialize, list tools; the time covers spawn to tools/list answered."""
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(
        command=spec.command, args=list(spec.args), env=spec.env, cwd=spec.cwd
    )
    log = errlog if errlog is not None else tempfile.TemporaryFile("w+")  # noqa: SIM115
    try:
        t0 = time.perf_counter()
        async with stdio_client(params, errlog=log) as (read, write):  # noqa: SIM117
            async with ClientSession(read, write) as session:
                await session.initialize()
                listing = await session.list_tools()
                elapsed = time.perf_counter() - t0
                yield Session(session, elapsed, list(listing.tools))
    finally:
        if errlog is None:
            log.close()


def stderr_tail(log: TextIO, limit: int = 600) -> str:
    log.flush()
    log.seek(0)
    text = log.read()
    return text[-limit:].strip()
