"""Audit-log commands: verify the keyed chain, tail it, export it for log shippers."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from ._common import EXIT_ERROR, EXIT_OK, add_command, client_mode, emit, node_client

if TYPE_CHECKING:
    from harbor_confluence.node.client import NodeAudit
    from harbor_confluence.review.audit import AuditLog

_HIDDEN = ("seq", "ts", "event", "prev", "hash")


def _log() -> AuditLog | NodeAudit:
    """The node's log in client mode (an operator token), else this state dir's."""
    if client_mode():
        return node_client().audit
    from harbor_confluence.config import state_dir
    from harbor_confluence.review.audit import AuditLog

    return AuditLog.for_home(state_dir())


def _line(record: dict[str, Any]) -> str:
    rest = " ".join(
        f"{k}={json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v}"
        for k, v in record.items()
        if k not in _HIDDEN and v is not None
    )
    return f"#{record.get('seq')} {record.get('ts', '?')} {record.get('event', '?'):<10} {rest}"


def cmd_verify(args: argparse.Namespace) -> int:
    log = _log()
    result = log.verify()
    if result.ok:
        emit(args, result.to_dict(), f"ok: {result.count} records, chain intact ({log.location})")
        return EXIT_OK
    emit(args, result.to_dict(), f"audit log broken: {result.reason}")
    return EXIT_ERROR


def cmd_tail(args: argparse.Namespace) -> int:
    records = _log().tail(args.n)
    emit(args, records, "\n".join(_line(r) for r in records) or "the audit log is empty")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    records = _log().records()
    if args.jsonl:
        out = "".join(
            json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in records
        )
    else:
        out = json.dumps(records, indent=2, ensure_ascii=False) + "\n"
    sys.stdout.write(out)
    return EXIT_OK


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = add_command(sub, common, "audit", cmd_tail, "the hash-chained log of every decision")
    p.set_defaults(n=20)
    asub = p.add_subparsers(dest="audit_cmd", metavar="SUBCOMMAND")
    v = asub.add_parser(
        "verify", parents=[common],
        help="check the chain; names the first edited, removed or reordered record (exit 1)",
    )  # fmt: skip
    v.set_defaults(func=cmd_verify)
    t = asub.add_parser("tail", parents=[common], help="the last records")
    t.add_argument("-n", type=int, default=20, help="how many (default 20)")
    t.set_defaults(func=cmd_tail)
    e = asub.add_parser("export", parents=[common], help="every record, as JSON or JSON lines")
    e.add_argument("--jsonl", action="store_true", help="one record per line (log shippers)")
    e.set_defaults(func=cmd_export)
