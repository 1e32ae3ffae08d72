"""Shared pieces of the CLI: output, exit codes, and the error type commands raise."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harbor_confluence.node.client import NodeClient
    from harbor_confluence.pipeline.executor import Port

EXIT_OK, EXIT_ERROR, EXIT_INVALID, EXIT_DENIED, EXIT_HELD, EXIT_UPSTREAM = 0, 1, 2, 3, 4, 5

Handler = Callable[[argparse.Namespace], int]


class CliExit(Exception):
    """Stop a command with an exit code and a message (JSON payload for --json)."""

    def __init__(self, code: int, payload: dict[str, Any], text: str) -> None:
        super().__init__(text)
        self.code = code
        self.payload = payload
        self.text = text


def fail(code: int, error_code: str, message: str) -> CliExit:
    return CliExit(code, {"code": error_code, "message": message}, f"error: {message}")


def emit(args: argparse.Namespace, payload: Any, text: str) -> None:
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(text.rstrip("\n") + "\n")


def client_mode() -> bool:
    """``HARBOR_NODE_URL`` or ``HARBOR_NODE_SOCKET`` is set: commands talk to a node.

    (Read here, not from ``node.client``, so that checking costs no import.)
    """
    return bool(os.environ.get("HARBOR_NODE_URL") or os.environ.get("HARBOR_NODE_SOCKET"))


def node_client() -> NodeClient:
    from harbor_confluence.node.client import NodeClient

    return NodeClient.from_env()


def load_port(args: argparse.Namespace) -> Port | NodeClient:
    """The embedded port, or in client mode the node (which holds the port)."""
    if client_mode():
        return node_client()
    from harbor_confluence.pipeline.executor import Port

    return Port.load(
        args.manifest, args.policy, requester=getattr(args, "requester", None) or "cli"
    )


def load_local_port(args: argparse.Namespace) -> Port:
    """The embedded port, for commands that only exist embedded."""
    from harbor_confluence.pipeline.executor import Port

    return Port.load(
        args.manifest, args.policy, requester=getattr(args, "requester", None) or "cli"
    )


def add_command(
    sub: Any, common: argparse.ArgumentParser, name: str, func: Handler, help: str
) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, parents=[common], help=help, description=help)
    p.set_defaults(func=func)
    return p
