"""``mcp``: serve the port's tools to MCP clients (stdio, or streamable HTTP on loopback).

Over stdio, a client waits for the first answers before anything else, so when an
earlier run saved the SDK's own answers (``mcp_front``) they are served with the
standard library only while the SDK is imported in a thread; the SDK server then takes
over the same stream.  Without them (first run, or the manifest, policy, code or SDK
changed since) the SDK serves from the start.
"""

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
    CliExit,
    add_command,
    client_mode,
    fail,
    load_local_port,
    node_client,
)
from .tools import add_filter_args, filters, toolkit_from_args

if TYPE_CHECKING:
    from harbor_confluence.adapters.mcp_server import Toolkit
    from harbor_confluence.adapters.tools import Toolkit as PortToolkit
    from harbor_confluence.pipeline.executor import Port

TOOL_LIST_BUDGET = 30_000
"""Bytes (compact UTF-8 JSON) the default per-action listing may take in a client's context."""

DEFAULT_TOOLSETS = (
    "pages",
    "search",
    "spaces",
    "comments",
    "labels",
    "users",
    "folders",
    "attachments",
    "tasks",
    "blogposts",
)
"""The order toolsets join the default listing when the whole catalog is over budget
(then any others, in manifest order)."""

_HELP_EPILOG = f"""\
default listing: one tool per action the policy does not deny.  When the whole
catalog's listing would take more than {TOOL_LIST_BUDGET:,} bytes (compact JSON), the
default is scoped to whole toolsets, taken in this order for as long as the
listing stays within that budget:
  {", ".join(DEFAULT_TOOLSETS[:5])},
  {", ".join(DEFAULT_TOOLSETS[5:])},
  then any others in manifest order.
--all-actions (or --toolset all) offers the whole catalog; --toolset and
--include choose exactly; --shape compact offers every action through two
tools.  An action left out is refused if called, like any action not offered."""


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
        "all_actions": bool(getattr(args, "all_actions", False)),
        **filters(args),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return home / "cache" / f"mcp-tools-{digest}.json"


def answers_path(listing: Path) -> Path:
    """Where the SDK's saved answers for ``mcp_front`` go, beside the listing."""
    return listing.with_name(listing.name.replace("mcp-tools-", "mcp-answers-", 1))


def answers_stamp(args: argparse.Namespace) -> dict[str, Any] | None:
    """What the saved answers depend on beyond the listing key: the files' stamps.

    The manifest and policy ``Port.load`` will read (an edited policy must not be served
    from the old answers), the code that shapes the answers, and the installed SDK.
    None when the files cannot be located (then nothing is served before the SDK).
    """
    from harbor_confluence.adapters.mcp_front import file_stamp, package_stamp
    from harbor_confluence.config import state_dir
    from harbor_confluence.errors import HarborError
    from harbor_confluence.paths import default_policy_path, live_port_paths

    try:
        if args.manifest:
            manifest = Path(args.manifest)
            policy = Path(args.policy) if args.policy else default_policy_path()
        else:
            manifest, live_policy = live_port_paths()
            policy = Path(args.policy) if args.policy else live_policy
    except HarborError:
        return None
    here = Path(__file__).resolve().parent.parent
    code = (
        "adapters/mcp_server.py",
        "adapters/mcp_front.py",
        "adapters/tools.py",
        "pipeline/policy.py",
        "pipeline/manifest.py",
        "cli/mcp.py",
    )
    return {
        "manifest": file_stamp(manifest),
        "policy": file_stamp(policy),
        "code": [file_stamp(here / name) for name in code],
        "sdk": [package_stamp("mcp"), package_stamp("mcp_types")],
        "drafts": file_stamp(state_dir() / "port" / "drafts")
        if filters(args).get("drafts")
        else None,
    }


def default_toolsets(port: Port, definitions: list[dict[str, Any]]) -> list[str]:
    """The toolsets of the scoped default: :data:`DEFAULT_TOOLSETS` order, then the rest
    in manifest order, as many as keep ``definitions`` (the whole catalog's listing)
    within :data:`TOOL_LIST_BUDGET`; at least the first."""
    from harbor_confluence.adapters.tools import encoded_size

    toolset_of = {a.name: a.toolset for a in port.manifest.actions}
    base = 2  # the list's brackets, and tools that belong to no toolset (approvals)
    sizes: dict[str, int] = {}
    for d in definitions:
        size = encoded_size([d]) - 2 + 1  # the element and its comma
        ts = toolset_of.get(str(d.get("name")))
        if ts is None:
            base += size
        else:
            sizes[ts] = sizes.get(ts, 0) + size
    order = [t for t in DEFAULT_TOOLSETS if t in sizes]
    order += [t for t in dict.fromkeys(toolset_of.values()) if t in sizes and t not in order]
    chosen: list[str] = []
    total = base
    for ts in order:
        if chosen and total + sizes[ts] > TOOL_LIST_BUDGET:
            break
        chosen.append(ts)
        total += sizes[ts]
    return chosen


def scoped_toolkit(args: argparse.Namespace, port: Port) -> PortToolkit:
    """The toolkit ``mcp`` serves: as selected, or the scoped default (see ``--help``)."""
    from harbor_confluence.adapters.tools import encoded_size

    kit = toolkit_from_args(args, port)
    if args.shape != "per-action" or getattr(args, "all_actions", False):
        return kit
    if args.include or args.toolsets:
        return kit
    definitions = kit.definitions("mcp")
    if encoded_size(definitions) <= TOOL_LIST_BUDGET:
        return kit
    chosen = default_toolsets(port, definitions)
    while True:
        scoped = toolkit_from_args(argparse.Namespace(**{**vars(args), "toolsets": chosen}), port)
        if len(chosen) <= 1 or encoded_size(scoped.definitions("mcp")) <= TOOL_LIST_BUDGET:
            return scoped
        chosen = chosen[:-1]


def _missing_extra(exc: ImportError) -> CliExit:
    return fail(
        EXIT_ERROR,
        "missing_extra",
        f"the MCP server needs the mcp extra ({exc.name} is not installed): "
        "pip install 'harbor-confluence[mcp]'",
    )


def _serve_with_front(
    args: argparse.Namespace, listing: Path, answers: Path, stamp: Any, saved: dict[str, Any]
) -> int:
    """Answer from the saved answers while the SDK is imported, then hand over."""
    import threading

    from harbor_confluence.adapters import mcp_front

    pipe = mcp_front.StdioPipe()
    failures: list[ImportError] = []

    def import_sdk() -> None:
        try:
            import anyio  # noqa: F401

            import harbor_confluence.adapters.mcp_server  # noqa: F401
        except ImportError as exc:
            failures.append(exc)
        finally:
            pipe.signal_ready()

    thread = threading.Thread(target=import_sdk, name="mcp-import", daemon=True)
    thread.start()
    try:
        handover = mcp_front.serve(pipe, saved)
        thread.join()
        if failures:
            raise _missing_extra(failures[0])
        import anyio

        from harbor_confluence.adapters.mcp_server import ToolServer

        def load() -> Toolkit:
            return scoped_toolkit(args, load_local_port(args))

        server = ToolServer(
            load,
            requester=args.requester,
            listing_path=listing,
            answers_path=answers,
            answers_stamp=stamp,
            served=handover.served,
        )
        anyio.run(server.serve_stdio, handover, pipe)
    finally:
        pipe.restore()
    return EXIT_OK


def cmd_mcp(args: argparse.Namespace) -> int:
    if args.toolsets and "all" in args.toolsets:
        args.toolsets = [t for t in args.toolsets if t != "all"] or None
        args.all_actions = True
    if not args.http and not client_mode():
        from harbor_confluence.adapters.mcp_front import read_saved

        listing = listing_path(args)
        answers, stamp = answers_path(listing), answers_stamp(args)
        saved = read_saved(answers, stamp) if stamp is not None else None
        if saved is not None:
            return _serve_with_front(args, listing, answers, stamp, saved)
    try:
        import anyio

        from harbor_confluence.adapters.mcp_server import ToolServer
    except ImportError as exc:
        raise _missing_extra(exc) from None

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
        return scoped_toolkit(args, load_local_port(args))

    if args.http:
        server = ToolServer(load, requester=args.requester, listing_path=listing_path(args))
        anyio.run(server.serve_http, args.port)
        return EXIT_OK
    listing = listing_path(args)
    stamp = answers_stamp(args)
    server = ToolServer(
        load,
        requester=args.requester,
        listing_path=listing,
        answers_path=answers_path(listing) if stamp is not None else None,
        answers_stamp=stamp,
    )
    if not server.preloaded:
        server.load_now()  # first run: refuse a broken manifest or policy before serving
    anyio.run(server.serve_stdio)
    return EXIT_OK


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = add_command(
        sub, common, "mcp", cmd_mcp,
        "serve the actions as MCP tools (stdio; --http for streamable HTTP on 127.0.0.1)",
    )  # fmt: skip
    p.epilog = _HELP_EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--http", action="store_true", help="streamable HTTP on 127.0.0.1 (/mcp)")
    p.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765)")
    p.add_argument("--requester", metavar="NAME",
                   help="name recorded on held tickets (default: mcp:<client name>)")  # fmt: skip
    add_filter_args(p)
    p.add_argument(
        "--all-actions",
        action="store_true",
        help=f"the whole catalog, even when its listing is over {TOOL_LIST_BUDGET:,} bytes "
        "(same as --toolset all)",
    )
