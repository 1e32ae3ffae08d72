"""Core commands: actions, describe, run, config, manifest, sim, demo."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from harbor_confluence.pipeline.pagination import (
    DEFAULT_MAX_ITEMS,
    DEFAULT_MAX_REQUESTS,
    HARD_MAX_ITEMS,
    HARD_MAX_REQUESTS,
)

from ._common import (
    EXIT_HELD,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_UPSTREAM,
    CliExit,
    add_command,
    client_mode,
    emit,
    load_port,
    node_client,
)

MAX_INPUT_BYTES = 16 * 1024 * 1024


def cmd_actions(args: argparse.Namespace) -> int:
    if client_mode():
        with node_client() as client:
            rows = [info.to_dict() for info in client.actions()]
    else:
        from harbor_confluence.cli.listing import action_rows

        rows = action_rows(args.manifest, args.policy)
    width = max((len(r["name"]) for r in rows), default=10)
    lines = [
        f"{r['name']:<{width}}  {r['method']:<6} {r['decision']:<16} {r['route']}" for r in rows
    ]
    emit(args, rows, "\n".join(lines))
    return EXIT_OK


def cmd_describe(args: argparse.Namespace) -> int:
    port = load_port(args)
    info = port.describe(args.action)
    text = [
        f"{info['name']}: {info['description']}",
        f"  {info['method']} {info['route']}  ({info['kind']}, policy: {info['decision']} "
        f"by rule {info['rule']})",
    ]
    for loc, schema in info["parameters"].items():
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            flag = " (required)" if name in required else ""
            text.append(f"  {loc}.{name}: {_type_summary(prop)}{flag}")
    emit(args, info, "\n".join(text))
    return EXIT_OK


def _type_summary(schema: dict[str, Any]) -> str:
    t = schema.get("type", "any")
    bits = [str(t)]
    if "enum" in schema:
        bits.append("one of " + "|".join(map(str, schema["enum"])))
    if "minimum" in schema or "maximum" in schema:
        bits.append(f"{schema.get('minimum', '')}..{schema.get('maximum', '')}")
    if "pattern" in schema:
        bits.append(f"pattern {schema['pattern']}")
    if t == "array" and isinstance(schema.get("items"), dict):
        bits.append("of " + _type_summary(schema["items"]))
    return ", ".join(bits)


def _read_input(spec: str | None) -> Any:
    if spec is None:
        return {}
    where = "--input"
    if spec == "-":
        raw = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
        where = "stdin"
    elif spec.startswith("@"):
        try:
            with open(spec[1:], "rb") as fh:
                raw = fh.read(MAX_INPUT_BYTES + 1)
        except OSError as exc:
            raise CliExit(
                EXIT_INVALID,
                {"code": "invalid_input", "message": f"cannot read {spec[1:]}: {exc.strerror}"},
                f"error: cannot read {spec[1:]}: {exc.strerror}",
            ) from None
        where = spec[1:]
    else:
        raw = spec.encode()
    if len(raw) > MAX_INPUT_BYTES:
        msg = f"input from {where} is larger than {MAX_INPUT_BYTES} bytes"
        raise CliExit(EXIT_INVALID, {"code": "invalid_input", "message": msg}, f"error: {msg}")
    from harbor_confluence.errors import InputError
    from harbor_confluence.pipeline.documents import MAX_INPUT_DEPTH, loads_json

    try:  # the nesting depth is measured before parsing (no RecursionError)
        return loads_json(raw, where, MAX_INPUT_DEPTH, field="input")
    except InputError as exc:
        problem = exc.violations[0]
        msg = f"input from {where} {problem.message} [{problem.rule}]"
        payload = {"code": "invalid_input", "message": msg, "rule": problem.rule}
        raise CliExit(EXIT_INVALID, payload, f"error: {msg}") from None


def _run_all(args: argparse.Namespace, data: Any) -> int:
    """``run --all``: follow the listing's pages within hard caps; say if it stopped at one."""
    with load_port(args) as port:
        walk = port.paginate(
            args.action,
            data,
            max_items=args.max_items,
            max_requests=args.max_requests,
            requester=args.requester,
        )
        items = walk.items()
    report = walk.report
    payload = {**report.to_dict(), "items": items}
    text = json.dumps(payload, indent=2, ensure_ascii=False)
    if not report.ok:
        emit(args, payload, text)
        sys.stderr.write(f"error: {args.action}: {report.message()}\n")
        return EXIT_HELD if (report.error or {}).get("type") == "held" else EXIT_UPSTREAM
    emit(args, payload, text)
    if not report.complete:
        sys.stderr.write(f"warning: {args.action}: {report.message()}\n")
    return EXIT_OK


def _bounded(limit: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not 1 <= value <= limit:
            raise argparse.ArgumentTypeError(f"must be 1..{limit} (a hard cap)")
        return value

    return parse


def cmd_run(args: argparse.Namespace) -> int:
    data = _read_input(args.input)
    if args.all:
        return _run_all(args, data)
    with load_port(args) as port:
        result = port.call(args.action, data, requester=args.requester)
    payload = result.to_dict()
    if result.outcome == "held":
        text = f"held: {payload['message']}\nticket: {result.ticket}"
        if payload.get("losses"):
            text = f"LOSS: this write removes content: {'; '.join(payload['losses'])}\n{text}"
        emit(args, payload, text)
        return EXIT_HELD
    if not result.ok:
        err = result.error or {}
        status = f"HTTP {result.status}: " if result.status else ""
        emit(args, payload, f"error: {result.action}: {status}{err.get('message', 'failed')}")
        return EXIT_UPSTREAM
    text = json.dumps(payload, indent=2, ensure_ascii=False)
    emit(args, payload, text)
    return EXIT_OK


def cmd_config(args: argparse.Namespace) -> int:
    from harbor_confluence.config import LocalConfig, state_dir

    config = LocalConfig(state_dir())
    if args.config_cmd == "set":
        from harbor_confluence.secrets.auth import check_config_value

        check_config_value(args.key, args.value)  # bad URLs, the placeholder, unknown backends
        config.set(args.key, args.value)
        emit(args, {"key": args.key, "value": args.value}, f"{args.key} = {args.value}")
    elif args.config_cmd == "get":
        value = config.get(args.key) if args.key else config.read()
        if args.key:
            emit(args, {"key": args.key, "value": value}, "" if value is None else str(value))
        else:
            emit(args, value, "\n".join(f"{k} = {v}" for k, v in sorted(value.items())))
    else:
        removed = config.unset(args.key)
        emit(args, {"key": args.key, "removed": removed}, "removed" if removed else "not set")
    return EXIT_OK


def cmd_manifest(args: argparse.Namespace) -> int:
    if args.manifest_cmd == "schema":
        from harbor_confluence.schemas import manifest_schema_text

        sys.stdout.write(manifest_schema_text())
        return EXIT_OK
    from harbor_confluence.pipeline.manifest import load_manifest

    m = load_manifest(args.file)
    emit(
        args,
        {"ok": True, "file": args.file, "port": m.port.name, "version": m.manifest_version,
         "actions": len(m.actions)},
        f"{args.file}: ok ({m.port.name} {m.manifest_version}, {len(m.actions)} actions)",
    )  # fmt: skip
    return EXIT_OK


_SIM_HELP = (
    "Serve the bundled Confluence Cloud simulator (made-up data) until Ctrl-C. It accepts "
    "one account: HTTP Basic with email sim@example.com and API token harbor-sim-api-token, "
    "or the OAuth access token harbor-sim-access-token (Authorization: Bearer; it also "
    "plays Atlassian's identity host: accessible-resources, /oauth/token and the gateway "
    "/ex/confluence/<cloudId>). Anything else gets HTTP 401. Set HARBOR_SIM_EMAIL, "
    "HARBOR_SIM_API_TOKEN and HARBOR_SIM_ACCESS_TOKEN to choose others (environment only: "
    "secrets never go on the command line)."
)
_SIM_EPILOG = (
    "to use it: harbor-confluence config set base-url http://127.0.0.1:8089, then "
    "harbor-confluence token set --basic --email sim@example.com (the API token on the "
    "prompt), or export CONFLUENCE_URL, CONFLUENCE_EMAIL and CONFLUENCE_API_TOKEN. For the "
    "access token, also config set identity-url http://127.0.0.1:8089"
)


def cmd_sim(args: argparse.Namespace) -> int:
    from harbor_confluence.sim import serve

    serve(host=args.host, port=args.port, extra_pages=args.extra_pages)
    return EXIT_OK


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value <= 1_000_000:
        raise argparse.ArgumentTypeError("must be 0..1000000")
    return value


def _sim_port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be 0-65535 (0: any free port)")
    return value


def cmd_demo(args: argparse.Namespace) -> int:
    from harbor_confluence.cli.demo import run_demo

    return run_demo(json_output=args.json)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    add_command(
        sub, common, "actions", cmd_actions, "list the actions and the policy decision for each"
    )
    p = add_command(sub, common, "describe", cmd_describe, "show one action's parameters")
    p.add_argument("action")
    p = add_command(sub, common, "run", cmd_run, "run an action (input: JSON, @file or -)")
    p.add_argument("action")
    p.add_argument("--input", "-i", help='{"path":{},"query":{},"body":{}} as JSON, @file or -')
    p.add_argument("--requester", help="who is asking (recorded on held tickets)")
    p.add_argument(
        "--all", action="store_true", help="follow every page of a listing (within the caps)"
    )
    p.add_argument(
        "--max-items",
        type=_bounded(HARD_MAX_ITEMS),
        default=DEFAULT_MAX_ITEMS,
        help=f"--all stops after this many items (default {DEFAULT_MAX_ITEMS}, "
        f"at most {HARD_MAX_ITEMS})",
    )
    p.add_argument(
        "--max-requests",
        type=_bounded(HARD_MAX_REQUESTS),
        default=DEFAULT_MAX_REQUESTS,
        help=f"--all stops after this many requests (default {DEFAULT_MAX_REQUESTS}, "
        f"at most {HARD_MAX_REQUESTS})",
    )

    p = add_command(
        sub,
        common,
        "config",
        cmd_config,
        "local configuration: base-url, site, identity-url, auth-url, secret-backend, requester",
    )
    csub = p.add_subparsers(dest="config_cmd", required=True)
    s = csub.add_parser("set", parents=[common])
    s.add_argument("key")
    s.add_argument("value")
    g = csub.add_parser("get", parents=[common])
    g.add_argument("key", nargs="?")
    u = csub.add_parser("unset", parents=[common])
    u.add_argument("key")

    p = add_command(
        sub, common, "manifest", cmd_manifest, "print the manifest JSON Schema or validate one"
    )
    msub = p.add_subparsers(dest="manifest_cmd", required=True)
    msub.add_parser("schema", parents=[common])
    v = msub.add_parser("validate", parents=[common])
    v.add_argument("file")

    p = sub.add_parser(
        "sim",
        parents=[common],
        help="serve the Confluence Cloud simulator (sim@example.com / harbor-sim-api-token)",
        description=_SIM_HELP,
        epilog=_SIM_EPILOG,
    )
    p.set_defaults(func=cmd_sim)
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; the demo credentials are public, "
        "so keep it on loopback)",
    )
    p.add_argument(
        "--port",
        type=_sim_port,
        default=8089,
        help="TCP port to listen on (default 8089; 0 picks a free one, printed at start)",
    )
    p.add_argument(
        "--extra-pages",
        type=_count,
        default=0,
        metavar="N",
        help="seed N more pages into the ENG space on top of the demo content, for paging "
        "and load tests (default 0)",
    )
    add_command(sub, common, "demo", cmd_demo, "run the simulator and a short tour")
