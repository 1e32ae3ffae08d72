"""Review-queue commands: operators list, show, approve, reject, run and reconcile held
requests; agents poll ``queue status``.

Operator identity: ``--as NAME``, else ``$HARBOR_OPERATOR``, else the OS user name.
Approving runs the request as soon as the ticket has enough approvals (``--no-run`` to
only approve; ``queue run`` then sends it later).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from ._common import (
    EXIT_DENIED,
    EXIT_ERROR,
    EXIT_HELD,
    EXIT_OK,
    EXIT_UPSTREAM,
    add_command,
    client_mode,
    emit,
    load_local_port,
    node_client,
)

if TYPE_CHECKING:
    from harbor_confluence.review.queue import Ticket
    from harbor_confluence.review.service import ReviewsService

# How `queue status`, `queue approve` and `queue run` exit by the ticket's state, as the
# README's table says: 0 succeeded, 4 waiting (for approvals, for the run, or, `unknown`,
# for an operator's `queue resolve`), 3 rejected/expired/cancelled, 5 failed.  A refusal
# (wrong state, tampered, self-approval, ...) is 3, invalid input 2, anything else 1.
STATE_EXIT = {
    "pending": EXIT_HELD,
    "approved": EXIT_HELD,
    "executing": EXIT_HELD,
    "unknown": EXIT_HELD,
    "succeeded": EXIT_OK,
    "failed": EXIT_UPSTREAM,
    "rejected": EXIT_DENIED,
    "cancelled": EXIT_DENIED,
    "expired": EXIT_DENIED,
}


def _reviews(args: argparse.Namespace) -> ReviewsService:
    """The node's queue in client mode (identity: the token), else the local one."""
    if client_mode():
        return node_client().reviews
    from harbor_confluence.config import state_dir
    from harbor_confluence.review.queue import ReviewQueue, default_operator
    from harbor_confluence.review.service import Reviews

    operator = str(getattr(args, "operator", None) or default_operator())
    return Reviews(ReviewQueue.for_home(state_dir()), operator, lambda: load_local_port(args))


def _until(seconds: float) -> str:
    if seconds <= 0:
        return "now"
    s = int(seconds)
    if s >= 86400:
        return f"{s // 86400}d {s % 86400 // 3600}h"
    if s >= 3600:
        return f"{s // 3600}h {s % 3600 // 60}m"
    if s >= 60:
        return f"{s // 60}m {s % 60}s"
    return f"{s}s"


def _line(t: Ticket, now: float) -> str:
    votes = f"{len(t.approvals)}/{t.approvals_required}"
    when = f"expires in {_until(t.expires_at - now)}" if t.state in ("pending", "approved") else ""
    return f"{t.id}  {t.state:<9} {t.action:<22} {t.requester:<16} {votes:<4} {when}".rstrip()


# The review keys shown as facts (the rest of a block review is rendered as text).
_FACTS = ("kind", "base_version", "base_from", "current_version", "new_version", "stale")
_BLOCK_REVIEW = ("changed", "losses", "summary", "blocks", "counts")


def _losses(review: dict[str, Any]) -> list[str]:
    losses = review.get("losses")
    return [str(x) for x in losses] if isinstance(losses, list) else []


def _review_text(review: dict[str, Any]) -> list[str]:
    """A block review as readable text (losses first); any other review as JSON."""
    if not (isinstance(review.get("summary"), dict) and isinstance(review.get("blocks"), list)):
        return ["review:", json.dumps(review, indent=2, ensure_ascii=False)]
    from harbor_confluence.editing import render_review_text

    facts = ", ".join(f"{k.replace('_', ' ')} {review[k]}" for k in _FACTS if k in review)
    lines = ["review:" + (f" {facts}" if facts else "")]
    try:
        lines += ["  " + line for line in render_review_text(review).splitlines()]
    except (KeyError, TypeError, AttributeError):  # a hand-made or older review shape
        lines.append(json.dumps(review, indent=2, ensure_ascii=False))
        return lines
    for key, value in review.items():
        if key in _FACTS or key in _BLOCK_REVIEW or (key == "diff_truncated" and not value):
            continue
        label = "storage diff (one line per block)" if key == "diff" else key.replace("_", " ")
        if isinstance(value, str) and "\n" in value:
            lines.append(f"  {label}:")
            lines.extend(f"    {line}" for line in value.splitlines())
            continue
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        lines.append(f"  {label}: {shown}")
    return lines


def _show_text(t: Ticket) -> str:
    now = time.time()
    d = t.to_dict(now)
    head = f"ticket {t.id}  {t.action}  [{t.state}"
    if t.state == "pending":
        head += f": {len(t.approvals)} of {t.approvals_required} approvals"
    head += "]"
    rule = f"held by rule {t.rule!r}"
    if t.approvals_required > 1:
        rule += f", needs {t.approvals_required} distinct approvers"
    if t.forbid_self_approval:
        rule += ", the requester may not approve"
    lines = []
    losses = _losses(t.review) if isinstance(t.review, dict) else []
    if losses:  # first, so that no operator approves a loss without having seen it
        lines.append(f"LOSS: this write removes content: {'; '.join(losses)}")
    lines += [
        head,
        f"requested by {t.requester} at {d['created_at']}; {rule}",
        f"port {t.port} {t.manifest_version}",
    ]
    if t.state in ("pending", "approved"):
        lines.append(f"expires {d['expires_at']} (in {_until(t.expires_at - now)})")
    else:
        lines.append(f"expiry {d['expires_at']}")
    lines += ["fingerprint " + t.fingerprint, "", f"{t.method} {t.url}"]
    if t.content_type:
        lines.append(f"Content-Type: {t.content_type}")
    lines += [f"{k}: {v}" for k, v in t.headers.items()]
    if t.review:  # before the body, which can be a whole page
        lines += ["", *_review_text(t.review), ""]
    if t.body is not None:
        lines.append(json.dumps(d["request"]["body"], indent=2, ensure_ascii=False))
    if t.approvals:
        lines += ["", "approvals:"]
        for a in t.approvals:
            why = f"  ({a.reason})" if a.reason else ""
            lines.append(f"  {a.operator}  {a.to_dict()['at']}{why}")
    if t.reason:
        lines += ["", f"{t.state} by {t.decided_by}: {t.reason}"]
    if t.result is not None:
        lines += ["", "result:", json.dumps(t.result, indent=2, ensure_ascii=False)]
    return "\n".join(lines)


def _outcome(args: argparse.Namespace, t: Ticket, ran: bool) -> int:
    """Print a ticket after approve/run and exit by its state."""
    payload = t.to_dict()
    if not ran:
        missing = t.approvals_required - len(t.approvals)
        text = f"{t.id}: approved ({len(t.approvals)} of {t.approvals_required}); " + (
            f"waiting for {missing} more approval(s)"
            if t.state == "pending"
            else f"not run (run it with: harbor-confluence queue run {t.id})"
        )
        emit(args, payload, text)
        return EXIT_OK
    result = t.result or {}
    status = f" HTTP {result['status']}" if result.get("status") else ""
    text = f"{t.id}: {t.state}{status}\n" + json.dumps(result, indent=2, ensure_ascii=False)
    emit(args, payload, text)
    return STATE_EXIT.get(t.state, EXIT_ERROR)


# -- commands -----------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    tickets = _reviews(args).list(state=args.state, limit=args.limit, after=args.after)
    now = time.time()
    rows = [t.to_dict(now) for t in tickets]
    text = "\n".join(_line(t, now) for t in tickets) or "no tickets"
    emit(args, rows, text)
    if len(tickets) == args.limit and not args.json:
        sys.stderr.write(f"(more: --after {tickets[-1].id})\n")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    ticket = _reviews(args).show(args.id)
    emit(args, ticket.to_dict(), _show_text(ticket))
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    status = _reviews(args).status(args.id)
    text = f"{status['ticket']}: {status['state']} — {status['message']}"
    if "result" in status:
        text += "\n" + json.dumps(status["result"], indent=2, ensure_ascii=False)
    emit(args, status, text)
    return STATE_EXIT.get(status["state"], EXIT_ERROR)


def cmd_approve(args: argparse.Namespace) -> int:
    ticket = _reviews(args).approve(
        args.id, reason=args.reason, fingerprint=args.fingerprint, run=not args.no_run
    )
    ran = ticket.state not in ("pending", "approved")
    return _outcome(args, ticket, ran)


def cmd_run(args: argparse.Namespace) -> int:
    ticket = _reviews(args).run(args.id)
    return _outcome(args, ticket, True)


def cmd_reject(args: argparse.Namespace) -> int:
    ticket = _reviews(args).reject(args.id, args.reason or "")
    emit(args, ticket.to_dict(), f"{ticket.id}: rejected by {ticket.decided_by}: {ticket.reason}")
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    ticket = _reviews(args).cancel(args.id, args.reason)
    emit(args, ticket.to_dict(), f"{ticket.id}: cancelled by {ticket.decided_by}")
    return EXIT_OK


def cmd_resolve(args: argparse.Namespace) -> int:
    ticket = _reviews(args).resolve(args.id, args.outcome or "", args.reason)
    emit(args, ticket.to_dict(), f"{ticket.id}: resolved as {ticket.state} by {ticket.decided_by}")
    return EXIT_OK


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = add_command(sub, common, "queue", cmd_list, "held requests waiting for an operator")
    p.set_defaults(state=None, limit=50, after=None)
    qsub = p.add_subparsers(dest="queue_cmd", metavar="SUBCOMMAND")

    def add(name: str, func: Any, help: str, aliases: tuple[str, ...] = ()) -> Any:
        q = qsub.add_parser(
            name, parents=[common], help=help, description=help, aliases=list(aliases)
        )
        q.set_defaults(func=func)
        return q

    def who(q: Any) -> None:
        q.add_argument(
            "--as", dest="operator", metavar="NAME",
            help="operator name (default: $HARBOR_OPERATOR, else the OS user)",
        )  # fmt: skip

    q = add("list", cmd_list, "list tickets, oldest first (paged)")
    q.add_argument("--state", help="pending, approved, executing, succeeded, failed, ...")
    q.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    q.add_argument("--after", metavar="ID", help="continue after this ticket (next page)")
    q = add("show", cmd_show, "the full held request, who asked, the rule, the expiry")
    q.add_argument("id")
    q = add(
        "status", cmd_status,
        "state and result / reason / expiry; exit 0 succeeded, 4 waiting (pending, approved, "
        "executing, unknown), 3 rejected/expired/cancelled, 5 failed",
    )  # fmt: skip
    q.add_argument("id")
    q = add(
        "approve", cmd_approve,
        "approve; runs the request once enough approvals exist and then exits like status "
        "by the state it leaves (a refused approval exits 3)",
    )  # fmt: skip
    q.add_argument("id")
    who(q)
    q.add_argument("--reason", help="why (recorded in the audit log)")
    q.add_argument("--fingerprint", help="the fingerprint you reviewed (12+ characters)")
    q.add_argument("--no-run", action="store_true", help="approve only; send later")
    q = add(
        "run", cmd_run,
        "send an approved ticket's request (exactly once); exits like status by the state "
        "it leaves (a refused run exits 3)",
        ("execute",),
    )  # fmt: skip
    q.add_argument("id")
    who(q)
    q = add("reject", cmd_reject, "refuse a ticket; --reason is required and reaches the agent")
    q.add_argument("id")
    who(q)
    q.add_argument("--reason", help="why (required)")
    q = add("cancel", cmd_cancel, "withdraw a ticket before it runs")
    q.add_argument("id")
    who(q)
    q.add_argument("--reason")
    q = add(
        "resolve", cmd_resolve,
        "reconcile an unknown ticket after checking Confluence: --outcome succeeded|failed",
    )  # fmt: skip
    q.add_argument("id")
    who(q)
    q.add_argument("--outcome", help="succeeded or failed")
    q.add_argument("--reason", help="what you checked")
