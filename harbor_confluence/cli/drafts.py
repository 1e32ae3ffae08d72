"""Draft commands: propose, list, show, validate, test, request-publish, publish."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ._common import EXIT_INVALID, EXIT_OK, CliExit, add_command, emit, fail


def _home(args: argparse.Namespace) -> Any:
    """The state directory; drafts always work on the live port, so port files are refused."""
    from harbor_confluence.config import state_dir

    if args.manifest or args.policy:
        raise fail(
            EXIT_INVALID,
            "invalid_option",
            "--manifest/--policy do not apply to drafts: they work on the live port in the "
            "state directory",
        )
    return state_dir()


def _identity(explicit: str | None) -> str:
    from harbor_confluence.catalog.dock import operator_identity

    return operator_identity(explicit)


def _line(d: Any) -> str:
    check = "-" if d.validation is None else ("ok" if d.validation.ok else "failed")
    if d.validation is not None and d.validation.digest != d.digest:
        check = "stale"
    a = d.action
    return f"{d.name:<24} {d.status:<17} {a.method:<6} {a.route}  by {d.proposer}  check: {check}"


def cmd_propose(args: argparse.Namespace) -> int:
    from harbor_confluence.catalog.drafts import propose

    draft = propose(args.file, _home(args), _identity(args.as_), replace=args.replace)
    emit(
        args,
        draft.to_dict(),
        f"proposed draft {draft.name} ({draft.action.method} {draft.action.route}) as "
        f"{draft.proposer}\nnext: harbor-confluence drafts validate {draft.name}",
    )
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from harbor_confluence.catalog.drafts import list_drafts

    drafts = list_drafts(_home(args))
    emit(args, [d.to_dict() for d in drafts], "\n".join(_line(d) for d in drafts) or "no drafts")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from harbor_confluence.catalog.drafts import get_draft

    draft = get_draft(args.name, _home(args))
    data = draft.to_dict()
    emit(args, data, json.dumps(data, indent=2, ensure_ascii=False))
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from harbor_confluence.catalog.drafts import validate

    draft = validate(args.name, _home(args))
    check = draft.validation
    assert check is not None  # validate always records one
    if not check.ok:
        lines = "\n".join(f"  - {p}" for p in check.problems)
        raise CliExit(
            EXIT_INVALID,
            {
                "code": "draft_invalid",
                "message": f"draft {args.name!r} does not pass validation",
                "draft": args.name,
                "problems": check.problems,
            },
            f"error: draft {args.name} does not pass validation "
            f"({len(check.problems)} problem(s)):\n{lines}",
        )
    emit(
        args,
        {"draft": args.name, "ok": True, "digest": check.digest},
        f"draft {args.name}: ok\nnext: harbor-confluence drafts test {args.name} --input ... "
        f"or drafts request-publish {args.name}",
    )
    return EXIT_OK


def cmd_test(args: argparse.Namespace) -> int:
    from harbor_confluence.catalog.drafts import try_draft

    from .core import _read_input

    data = _read_input(args.input)
    requester = _identity(args.as_)
    out = try_draft(args.name, _home(args), data, send=args.send, requester=requester)
    req = out["request"]
    live = out["live_decision"]
    lines = [
        f"{req['method']} {req['url']}",
        *([f"body: {json.dumps(req['body'], ensure_ascii=False)}"] if "body" in req else []),
        f"fingerprint: {req['fingerprint']}",
        f"the live policy decides: {live['decision']} (rule {live['rule']})",
    ]
    if out["sent"]:
        lines.append("result: " + json.dumps(out["result"], indent=2, ensure_ascii=False))
    elif "result" in out:
        lines.append("not sent: " + json.dumps(out["result"], indent=2, ensure_ascii=False))
    else:
        lines.append(
            "dry run: nothing was sent (--send sends a validated read the live policy allows)"
        )
    emit(args, out, "\n".join(lines))
    return EXIT_OK


def cmd_request_publish(args: argparse.Namespace) -> int:
    from harbor_confluence.catalog.drafts import request_publish

    who = _identity(args.as_)
    draft = request_publish(args.name, _home(args), who)
    emit(
        args,
        draft.to_dict(),
        f"publication of {draft.name} requested by {who}; an operator other than the "
        f"proposer publishes it with: harbor-confluence drafts publish {draft.name} --as OPERATOR",
    )
    return EXIT_OK


def cmd_publish(args: argparse.Namespace) -> int:
    from harbor_confluence.catalog.drafts import publish

    if not args.as_:
        raise fail(
            EXIT_INVALID,
            "identity_required",
            "drafts publish needs the publishing operator's identity: --as OPERATOR",
        )
    out = publish(
        args.name, _home(args), _identity(args.as_), accept_proposals=args.accept_proposals
    )
    lines = [
        f"published {out['draft']} into {out['port']} {out['to']} (was {out['from']}) "
        f"by {out['published_by']}; proposed by {out['proposer']}",
        f"policy: {out['policy']}",
        *(_change_line(c) for c in out["policy_changes"]),
    ]
    if out["denied_by_policy"]:
        lines.append(
            "denied by your policy until you add rules"
            + ("" if args.accept_proposals else " or publish with --accept-proposals")
            + ": "
            + ", ".join(out["denied_by_policy"])
        )
    emit(args, out, "\n".join(lines))
    return EXIT_OK


def _change_line(change: dict[str, Any]) -> str:
    return (
        f"  {change['action']} ({change['status']} {change['kind']}): {change['after']}; "
        f"{change['note']}"
    )


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = add_command(
        sub, common, "drafts", cmd_list, "proposed actions: propose, validate, test, publish"
    )
    dsub = p.add_subparsers(dest="drafts_cmd", required=True)

    def cmd(name: str, func: Any, help: str) -> argparse.ArgumentParser:
        c: argparse.ArgumentParser = dsub.add_parser(name, parents=[common], help=help)
        c.set_defaults(func=func)
        return c

    c = cmd("propose", cmd_propose, "propose an action from a YAML/JSON definition")
    c.add_argument("file")
    c.add_argument("--as", dest="as_", metavar="NAME", help="proposer (default: $HARBOR_OPERATOR)")
    c.add_argument("--replace", action="store_true", help="replace your own draft of that name")
    cmd("list", cmd_list, "drafts and where each is in the lifecycle")
    c = cmd("show", cmd_show, "one draft in full")
    c.add_argument("name")
    c = cmd("validate", cmd_validate, "manifest rules + Atlassian's OpenAPI document + deny-list")
    c.add_argument("name")
    c = cmd(
        "test",
        cmd_test,
        "show the exact request and the live policy's decision (dry run), or --send a "
        "validated read the live policy allows",
    )
    c.epilog = (
        "--send is decided by the live policy (the installed port's, else the packaged one) "
        "as if the draft were a live action: only an auto decision sends. Exit 3: the policy "
        "denies it (the rule is named); exit 4: the policy would hold it for approval (a test "
        "never queues a ticket); exit 2: invalid draft or a write. Nothing is sent then."
    )
    c.add_argument("name")
    c.add_argument("--input", "-i", help='{"path":{},"query":{},"body":{}} as JSON, @file or -')
    c.add_argument(
        "--send",
        action="store_true",
        help="send it to the tenant: reads only, and only if the live policy says auto "
        "(exit 3 denied, 4 needs approval; nothing sent)",
    )
    c.add_argument("--as", dest="as_", metavar="NAME", help="who is testing")
    c = cmd("request-publish", cmd_request_publish, "ask an operator to publish a validated draft")
    c.add_argument("name")
    c.add_argument("--as", dest="as_", metavar="NAME", help="who asks (default: $HARBOR_OPERATOR)")
    c = cmd("publish", cmd_publish, "add a requested draft to the live port (another operator)")
    c.add_argument("name")
    c.add_argument("--as", dest="as_", metavar="OPERATOR", help="publishing operator (required)")
    c.add_argument(
        "--accept-proposals",
        action="store_true",
        help="accept the draft's defaultPolicy (a write is still never automatic and no live "
        "decision is loosened); without it a new read is denied and a new write held",
    )
