"""``tools``: print tool definitions for agent frameworks, or their sizes (``--stats``)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from ._common import EXIT_OK, add_command, client_mode, emit, load_local_port, node_client

if TYPE_CHECKING:
    from harbor_confluence.adapters.tools import Toolkit
    from harbor_confluence.pipeline.executor import Port

FORMATS = ("mcp", "openai", "anthropic")
SHAPES = ("per-action", "compact")


def add_filter_args(p: argparse.ArgumentParser) -> None:
    """The selection flags ``tools`` and ``mcp`` share."""
    p.add_argument(
        "--shape",
        choices=SHAPES,
        default="per-action",
        help="one tool per action, or the compact list_actions/call_action pair",
    )
    p.add_argument(
        "--include",
        action="append",
        metavar="SEL",
        help="action name or glob, toolset:NAME or kind:read|write (repeatable)",
    )
    p.add_argument(
        "--exclude",
        action="append",
        metavar="SEL",
        help="same selectors; removed from whatever was included (repeatable)",
    )
    p.add_argument(
        "--toolset",
        action="append",
        dest="toolsets",
        metavar="NAME",
        help="include a whole toolset (repeatable)",
    )
    p.add_argument("--kind", choices=("read", "write"), help="only reads or only writes")
    p.add_argument(
        "--drafts",
        action="store_true",
        help="add the draft tools: list, propose, validate, test, request publication "
        "(never publish)",
    )


def filters(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {
        "include": args.include,
        "exclude": args.exclude,
        "toolsets": args.toolsets,
        "kind": args.kind,
    }
    if getattr(args, "drafts", False):
        out["drafts"] = True
    return out


def _drafts_on_the_live_port(args: argparse.Namespace) -> None:
    from ._common import EXIT_INVALID, fail

    if getattr(args, "drafts", False) and (args.manifest or args.policy):
        raise fail(
            EXIT_INVALID,
            "invalid_option",
            "--drafts works on the live port in the state directory; --manifest/--policy "
            "do not apply with it",
        )


def toolkit_from_args(args: argparse.Namespace, port: Port) -> Toolkit:
    from harbor_confluence.adapters.tools import Toolkit

    _drafts_on_the_live_port(args)
    return Toolkit(port, shape=args.shape, requester=getattr(args, "requester", None),
                   **filters(args))  # fmt: skip


def _node_tools(args: argparse.Namespace) -> int:
    """Client mode: the node builds the tools from its policy and this token's grant."""
    from harbor_confluence.adapters.tools import encoded_size

    with node_client() as client:
        if not args.stats:
            defs = client.tools(args.format, shape=args.shape, **filters(args))["tools"]
            sys.stdout.write(json.dumps(defs, indent=2, ensure_ascii=False) + "\n")
            return EXIT_OK
        sizes: dict[str, Any] = {"format": args.format}
        for shape in SHAPES:
            got = client.tools(args.format, shape=shape, **filters(args))
            sizes[shape] = {"tools": len(got["tools"]), "bytes": encoded_size(got["tools"])}
            sizes["actions_offered"] = len(got["actions"])
    lines = [
        f"{args.format} tool definitions on the node: {sizes['actions_offered']} actions offered",
        *(
            f"  {shape:<10} {sizes[shape]['tools']:>3} tools  {sizes[shape]['bytes']:>7,} bytes"
            for shape in SHAPES
        ),
    ]
    emit(args, sizes, "\n".join(lines))
    return EXIT_OK


def cmd_tools(args: argparse.Namespace) -> int:
    if client_mode():
        return _node_tools(args)
    _drafts_on_the_live_port(args)
    port = load_local_port(args)
    if args.stats:
        from harbor_confluence.adapters.tools import tool_sizes

        sizes = tool_sizes(port, args.format, **filters(args))
        served = _mcp_default(args, port, sizes["actions_offered"])
        sizes["mcp_default"] = served
        lines = [
            f"{args.format} tool definitions for {port.manifest.port.name}: "
            f"{sizes['actions_offered']} of {sizes['actions_total']} actions offered",
            *(
                f"  {shape:<10} {sizes[shape]['tools']:>3} tools  {sizes[shape]['bytes']:>7,} bytes"
                for shape in SHAPES
            ),
            f"  mcp default {served['tools']:>2} tools  {served['bytes']:>7,} bytes"
            f"  (toolsets: {', '.join(served['toolsets']) or 'all'}; --all-actions for every one)",
            "  (bytes: the tool list as compact UTF-8 JSON)",
        ]
        emit(args, sizes, "\n".join(lines))
        return EXIT_OK
    definitions = toolkit_from_args(args, port).definitions(args.format)
    sys.stdout.write(json.dumps(definitions, indent=2, ensure_ascii=False) + "\n")
    return EXIT_OK


def _mcp_default(args: argparse.Namespace, port: Port, offered: int) -> dict[str, Any]:
    """What ``harbor-confluence mcp`` lists by default with these filters: the whole
    selection (``offered`` actions), or the toolsets that fit the context budget
    (``cli/mcp.py``)."""
    from harbor_confluence.adapters.tools import encoded_size

    from .mcp import scoped_toolkit

    per_action = argparse.Namespace(**{**vars(args), "shape": "per-action", "all_actions": False})
    kit = scoped_toolkit(per_action, port)
    definitions = kit.definitions(args.format)
    scoped = len(kit.actions) < offered
    return {
        "tools": len(definitions),
        "bytes": encoded_size(definitions),
        "toolsets": sorted({port.action(n).toolset for n in kit.actions}) if scoped else [],
    }


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = add_command(
        sub, common, "tools", cmd_tools,
        "tool definitions for agent frameworks (the actions the policy does not deny)",
    )  # fmt: skip
    p.add_argument("--format", choices=FORMATS, default="mcp")
    add_filter_args(p)
    p.add_argument("--stats", action="store_true",
                   help="print the count and size of both shapes instead")  # fmt: skip
