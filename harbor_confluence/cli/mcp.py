"""``mcp``: serve the port's tools to MCP clients (stdio, or streamable HTTP on loopback)."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._common import (
    EXIT_ERROR,
    EXIT_INVALID,
    EXIT_OK,
    add_command,
    client_mode,
    fail,
    load_local_port,
    node_client,
)
from .tools import add_filter_args, filters, toolkit_from_args

if TYPE_CHECKING:
    from harbor_confluence.mcp_server import Toolkit


def listing_path(args: argparse.Namespace) -> Path:
    """Where this server configuration keeps its last ``tools/list`` answer."""
    from harbor_confluence import __version__
    from harbor_confluence.config import state_dir

    home = state_dir()
    key = {
        "version": __version__,
        "home": str(home),
        "manifest": os.path.abspath(args.manifest) if args.manifest else None,
        "policy": os.path.abspath(args.policy) if args.policy else None,
        "shape": args.shape,
        **filters(args),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return home / "cache" / f"mcp-tools-{digest}.json"


def cmd_mcp(args: argparse.Namespace) -> int:
    try:
        import anyio

        from harbor_confluence.mcp_server import ToolServer
    except ImportError as exc:
        raise fail(
            EXIT_ERROR,
            "missing_extra",
            f"the MCP server needs the mcp extra ({exc.name} is not installed): "
            "pip install 'harbor-confluence[mcp]'",
        ) from None

    if client_mode():  # the node's tools for this token; nothing is decided here
        from harbor_confluence.node.client import NodeToolkit

        def remote() -> Toolkit:
            return NodeToolkit(node_client(), shape=args.shape, **filters(args))

        if args.http:
            raise fail(EXIT_INVALID, "client_mode", "the node serves MCP over HTTP itself: "
                       "point the client at the node's /mcp with its token")  # fmt: skip
        server = ToolServer(remote)
        server.load_now()
        anyio.run(server.serve_stdio)
        return EXIT_OK

    def load() -> Toolkit:
        return toolkit_from_args(args, load_local_port(args))

    server = ToolServer(load, requester=args.requester, listing_path=listing_path(args))
    if args.http:
        anyio.run(server.serve_http, args.port)
        return EXIT_OK
    if not server.preloaded:
        server.load_now()  # first run: refuse a broken manifest or policy before serving
    anyio.run(server.serve_stdio)
    return EXIT_OK


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = add_command(
        sub, common, "mcp", cmd_mcp,
        "serve the actions as MCP tools (stdio; --http for streamable HTTP on 127.0.0.1)",
    )  # fmt: skip
    p.add_argument("--http", action="store_true", help="streamable HTTP on 127.0.0.1 (/mcp)")
    p.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765)")
    p.add_argument("--requester", metavar="NAME",
                   help="name recorded on held tickets (default: mcp:<client name>)")  # fmt: skip
    add_filter_args(p)
