"""Review-queue commands: list, show, status of held requests."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ._common import EXIT_ERROR, EXIT_OK, CliExit, add_command, emit


def cmd_queue(args: argparse.Namespace) -> int:
    from harbor_confluence.config import state_dir
    from harbor_confluence.queue import ReviewQueue

    queue = ReviewQueue(state_dir() / "queue.sqlite3")
    if args.queue_cmd == "list":
        tickets = queue.list(state=args.state)
        rows = [t.to_dict() for t in tickets]
        text = "\n".join(f"{t.id}  {t.state:<9} {t.action:<20} {t.requester}" for t in tickets)
        emit(args, rows, text or "no tickets")
        return EXIT_OK
    ticket = queue.get(args.id)
    if ticket is None:
        raise CliExit(
            EXIT_ERROR,
            {"code": "not_found", "message": f"no ticket {args.id}"},
            f"error: no ticket {args.id}",
        )
    emit(args, ticket.to_dict(), json.dumps(ticket.to_dict(), indent=2, ensure_ascii=False))
    return EXIT_OK


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = add_command(sub, common, "queue", cmd_queue, "held requests waiting for an operator")
    qsub = p.add_subparsers(dest="queue_cmd", required=True)
    ql = qsub.add_parser("list", parents=[common])
    ql.add_argument("--state", choices=["pending", "approved", "rejected", "succeeded", "failed"])
    for name in ("show", "status"):
        q = qsub.add_parser(name, parents=[common])
        q.add_argument("id")
