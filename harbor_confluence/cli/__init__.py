"""The ``harbor-confluence`` command line.

Agents call this as a subprocess, so start-up stays lazy: each command group lives in its
own module and imports the heavy parts of the package only inside the command that needs
them.  Exit codes: 0 ok, 2 invalid input (nothing sent), 3 denied by policy, 4 held for
approval, 5 upstream error, 1 anything else.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from . import audit, auth, catalog, core, drafts, hub, mcp, node, queue, tools
from ._common import EXIT_ERROR, EXIT_INVALID, CliExit, client_mode, fail

__all__ = ["build_parser", "main"]

_GROUPS = (core, queue, auth, audit, tools, mcp, catalog, drafts, node, hub)

# In client mode these talk to the node; ``node``, ``manifest``, ``sim`` and ``demo``
# touch no node state.  The rest (config, token, auth, catalog, drafts) change a port's
# own state, which on a node only its operator changes, on the node host.
_CLIENT_COMMANDS = frozenset(
    {
        "run",
        "actions",
        "describe",
        "queue",
        "audit",
        "mcp",
        "tools",
        "node",
        "manifest",
        "sim",
        "demo",
        "hub",  # serves or reads hub documents: no port state
    }
)


def _check_client_mode(args: argparse.Namespace) -> None:
    """Refuse what would let a caller choose its own governance on a node."""
    if not client_mode() or args.command in ("node", "manifest", "sim", "demo"):
        return
    where = "the node decides with its own"
    if args.command not in _CLIENT_COMMANDS:
        raise fail(
            EXIT_INVALID,
            "client_mode",
            f"'{args.command}' changes a port's own state and runs on the node host, as the "
            "node's user; with HARBOR_NODE_URL/HARBOR_NODE_SOCKET set this is a node client",
        )
    if getattr(args, "policy", None):
        raise fail(
            EXIT_INVALID, "client_mode", f"--policy is refused in client mode: {where} policy"
        )
    if getattr(args, "manifest", None):
        raise fail(
            EXIT_INVALID, "client_mode", f"--manifest is refused in client mode: {where} manifest"
        )
    if getattr(args, "operator", None):
        raise fail(
            EXIT_INVALID,
            "client_mode",
            "--as is refused in client mode: your identity is your token's (HARBOR_NODE_TOKEN)",
        )
    if getattr(args, "requester", None):
        raise fail(
            EXIT_INVALID,
            "client_mode",
            "--requester is refused in client mode: the requester is your token's identity",
        )


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    common.add_argument("--manifest", help="manifest file (default: the packaged one)")
    common.add_argument("--policy", help="policy file (default: policies/default.yaml)")
    parser = argparse.ArgumentParser(
        prog="harbor-confluence",
        description="Policy-governed action runner for the Confluence Cloud REST API.",
        epilog="exit codes: 0 ok, 1 error, 2 invalid input, 3 denied, 4 held, 5 upstream error",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in _GROUPS:
        group.register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _check_client_mode(args)
        return int(args.func(args))
    except CliExit as exc:
        return _fail(args, exc.code, exc.payload, exc.text)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from harbor_confluence.errors import HarborError

        if isinstance(exc, HarborError):
            return _fail(args, exc.exit_code, exc.to_dict(), f"error: {exc}")
        if os.environ.get("HARBOR_DEBUG"):
            raise
        kind = type(exc).__name__
        return _fail(
            args,
            EXIT_ERROR,
            {"code": "internal", "message": f"{kind}: {exc}"},
            f"error: internal error ({kind}: {exc}); set HARBOR_DEBUG=1 for a traceback",
        )


def _fail(args: argparse.Namespace, code: int, payload: dict[str, Any], text: str) -> int:
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps({"ok": False, "error": payload}, indent=2) + "\n")
    else:
        sys.stderr.write(text.rstrip("\n") + "\n")
    return code
