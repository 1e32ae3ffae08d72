"""``node``: set up and serve a Harbor node; manage who may reach it.

On the node host, as the node's OS user (they read and write its state directory):
``node init``, ``node serve``, ``node add-agent``, ``node add-operator [--password]``,
``node revoke``, ``node tokens``, ``node webhook add|list|remove``.  From anywhere, with
an operator token (``HARBOR_NODE_TOKEN``): ``node policy show|set``; with any token:
``node whoami``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ._common import EXIT_ERROR, EXIT_INVALID, EXIT_OK, add_command, emit, fail, node_client


def _home(args: argparse.Namespace) -> Path:
    from harbor_confluence.config import state_dir

    return state_dir(args.home)


def cmd_init(args: argparse.Namespace) -> int:
    from harbor_confluence.node.server import init_home

    home = init_home(args.home)
    lines = [
        f"node state directory: {home} (0700)",
        "next, as this user:",
        "  harbor-confluence config set base-url https://YOUR-SITE.atlassian.net",
        "  harbor-confluence token set --basic --email you@example.com",
        "  harbor-confluence node add-operator alice      # prints a token once",
        "  harbor-confluence node add-agent codex --kind read",
        "  harbor-confluence node serve [--listen 127.0.0.1:8443]",
    ]
    emit(args, {"home": str(home)}, "\n".join(lines))
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from harbor_confluence.node.server import parse_listen, serve

    try:
        mode = int(args.socket_mode, 8)
    except ValueError:
        raise fail(
            EXIT_INVALID, "invalid_input", "--socket-mode: an octal mode such as 600"
        ) from None
    serve(
        _home(args),
        socket_path=args.socket,
        socket_mode=mode,
        socket_group=args.socket_group,
        listen=parse_listen(args.listen) if args.listen else None,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        log_level=args.log_level,
    )
    return EXIT_OK


def _split(values: list[str] | None) -> tuple[str, ...] | None:
    if not values:
        return None
    return tuple(v.strip() for chunk in values for v in chunk.split(",") if v.strip())


def _show_token(args: argparse.Namespace, name: str, role: str, token_id: str, token: str) -> None:
    payload = {"name": name, "role": role, "id": token_id, "token": token}
    text = (
        f"{role} token for {name} ({token_id}); shown once, the node keeps only its hash:\n"
        f"{token}\n"
        f"give it to the {role} as HARBOR_NODE_TOKEN"
    )
    emit(args, payload, text)


def cmd_add_agent(args: argparse.Namespace) -> int:
    from harbor_confluence.node.identities import Grant, IdentityStore

    grant = Grant(toolsets=_split(args.toolsets), kind=args.kind, actions=_split(args.actions))
    token_id, token = IdentityStore(_home(args)).add(args.name, "agent", grant)
    _show_token(args, args.name.strip().casefold(), "agent", token_id, token)
    return EXIT_OK


def _read_password() -> str:
    """A new password: twice at a no-echo prompt, or one line of stdin when not a TTY."""
    from harbor_confluence.node.identities import MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS

    if sys.stdin.isatty():
        import getpass

        first = getpass.getpass("review page password: ")
        if getpass.getpass("again: ") != first:
            raise fail(EXIT_INVALID, "invalid_input", "the two passwords differ")
    else:
        first = sys.stdin.readline(MAX_PASSWORD_CHARS + 2).rstrip("\r\n")
    if not MIN_PASSWORD_CHARS <= len(first) <= MAX_PASSWORD_CHARS:
        raise fail(
            EXIT_INVALID,
            "invalid_input",
            f"the password needs {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters",
        )
    return first


def cmd_add_operator(args: argparse.Namespace) -> int:
    from harbor_confluence.node.identities import IdentityStore, hash_password

    hashed = hash_password(_read_password()) if args.password else None
    token_id, token = IdentityStore(_home(args)).add(args.name, "operator", password_hash=hashed)
    _show_token(args, args.name.strip().casefold(), "operator", token_id, token)
    return EXIT_OK


def cmd_webhook(args: argparse.Namespace) -> int:
    from harbor_confluence.node.webhooks import WEBHOOK_EVENTS, WebhookStore

    store = WebhookStore(_home(args))
    if args.webhook_cmd == "add":
        hook = store.add(args.url, _split(args.events), link_base=args.link_base)
        payload = {**hook.public(), "secret": hook.secret}
        text = (
            f"webhook {hook.id} -> {hook.url}\n"
            f"events: {', '.join(hook.events)}\n"
            f"signing secret (shown once; the receiver checks X-Harbor-Signature with it):\n"
            f"{hook.secret}"
        )
        emit(args, payload, text)
        return EXIT_OK
    if args.webhook_cmd == "remove":
        removed = store.remove(args.key)
        if not removed:
            raise fail(EXIT_INVALID, "not_found", f"no webhook {args.key!r}")
        emit(args, {"removed": removed}, f"removed {removed} webhook(s)")
        return EXIT_OK
    rows = store.list()
    text = (
        "\n".join(f"{r['id']}  {r['url']}  {','.join(r['events'])}" for r in rows)
        or f"no webhooks: add one with node webhook add URL [--events {','.join(WEBHOOK_EVENTS)}]"
    )
    emit(args, rows, text)
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace) -> int:
    """Move this node's queue and audit log into the shared PostgreSQL database."""
    from harbor_confluence.postgres import DATABASE_URL_ENV, check_url, database_url

    home = _home(args)
    url = check_url(args.to) if args.to else database_url(home)
    if url is None:
        raise fail(
            EXIT_INVALID,
            "invalid_input",
            f"no database: pass --to postgresql://USER@HOST/DB or set {DATABASE_URL_ENV}",
        )
    from harbor_confluence.postgres.move import move_home

    report = move_home(home, url)
    states = ", ".join(f"{n} {s}" for s, n in sorted(report.by_state.items())) or "none"
    lines = [
        f"{report.database}: schema version {report.schema_version}",
        f"moved {report.tickets} ticket(s) ({states}) with {report.approvals} approval(s), "
        f"and {report.audit_records} audit record(s)",
    ]
    if report.audit_archived:
        lines.append(
            f"the database already had a chain: the local log ({report.audit_archived} "
            "records, verified) was kept as an archive and its last hash recorded in it"
        )
    lines += [f"set aside: {path}" for path in report.renamed]
    ok = report.verify.get("ok")
    lines.append(f"audit verify: {'ok' if ok else report.verify.get('reason')}")
    lines.append(f"serve every node with {DATABASE_URL_ENV} set and the same secrets/integrity.key")
    emit(args, report.to_dict(), "\n".join(lines))
    return EXIT_OK if ok else EXIT_ERROR


def cmd_revoke(args: argparse.Namespace) -> int:
    from harbor_confluence.node.identities import IdentityStore

    removed = IdentityStore(_home(args)).revoke(args.name, args.role)
    if not removed:
        raise fail(EXIT_INVALID, "not_found", f"no token for {args.name!r}")
    emit(
        args, {"name": args.name, "revoked": removed}, f"revoked {removed} token(s) of {args.name}"
    )
    return EXIT_OK


def cmd_tokens(args: argparse.Namespace) -> int:
    from harbor_confluence.node.identities import IdentityStore

    rows = IdentityStore(_home(args)).list()
    text = (
        "\n".join(f"{r['id']}  {r['role']:<8} {r['name']:<20} {r['grant']}" for r in rows)
        or "no tokens: add one with node add-operator / node add-agent"
    )
    emit(args, rows, text)
    return EXIT_OK


def cmd_whoami(args: argparse.Namespace) -> int:
    with node_client() as client:
        me = client.whoami()
    emit(args, me, f"{me['name']} ({me['role']}) on {client.where}")
    return EXIT_OK


def cmd_policy(args: argparse.Namespace) -> int:
    with node_client() as client:
        if args.policy_cmd == "show":
            text = client.policy()
            emit(args, {"text": text}, text)
            return EXIT_OK
        try:
            document = Path(args.file).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise fail(EXIT_INVALID, "invalid_input", f"cannot read {args.file}: {exc}") from None
        change = client.set_policy(document)
    diff = "\n".join(change.get("diff", [])) or "(no change)"
    emit(
        args,
        change,
        f"live policy replaced ({change['rules']} rules); audited with this diff:\n{diff}",
    )
    return EXIT_OK


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = add_command(
        sub, common, "node", lambda a: _usage(p), "run a Harbor node and manage its tokens"
    )
    nsub = p.add_subparsers(dest="node_cmd", metavar="SUBCOMMAND")

    def add(name: str, func: Any, help: str, local: bool = True) -> Any:
        q = nsub.add_parser(name, parents=[common], help=help, description=help)
        q.set_defaults(func=func)
        if local:
            q.add_argument(
                "--home", metavar="DIR", help="the node's state directory ($HARBOR_CONFLUENCE_HOME)"
            )
        return q

    add("init", cmd_init, "create the node's private state directory and its integrity key")
    q = add("serve", cmd_serve, "serve the node (unix socket; --listen for TCP)")
    q.add_argument("--socket", metavar="PATH", help="unix socket (default: STATE_DIR/node.sock)")
    q.add_argument("--socket-mode", default="600", help="socket mode, octal (default 600)")
    q.add_argument("--socket-group", metavar="GROUP", help="group that may connect (with mode 660)")
    q.add_argument("--listen", metavar="HOST:PORT", help="also TCP: loopback, or any host with TLS")
    q.add_argument("--tls-cert", metavar="FILE", help="certificate chain (PEM) for --listen")
    q.add_argument("--tls-key", metavar="FILE", help="private key (PEM) for --listen")
    q.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error"))
    q = add("add-agent", cmd_add_agent, "make an agent token (printed once)")
    q.add_argument("name")
    q.add_argument("--toolsets", action="append", metavar="A,B", help="only these toolsets")
    q.add_argument("--kind", choices=("read", "write"), help="only reads or only writes")
    q.add_argument("--actions", action="append", metavar="GLOB,...", help="only these actions")
    q = add("add-operator", cmd_add_operator, "make an operator token (printed once)")
    q.add_argument("name")
    q.add_argument(
        "--password",
        action="store_true",
        help="also set a password for the review page (prompted without echo, or one "
        "line of stdin when it is not a terminal; stored as an argon2id hash)",
    )
    q = add("revoke", cmd_revoke, "revoke a name's tokens (or one role's)")
    q.add_argument("name", help="identity name or token id")
    q.add_argument("--role", choices=("agent", "operator"))
    add("tokens", cmd_tokens, "list tokens by id, name, role and grant (never the token)")
    q = add("migrate", cmd_migrate, "move the queue and audit log into a shared PostgreSQL")
    q.add_argument("--to", metavar="URL", help="postgresql://... (default: $HARBOR_DATABASE_URL)")
    w: argparse.ArgumentParser = add(
        "webhook", lambda a: _usage(w), "signed webhooks on ticket events (node host)"
    )
    wsub = w.add_subparsers(dest="webhook_cmd", metavar="add|list|remove")

    def wadd(name: str, help: str) -> Any:
        q = wsub.add_parser(name, parents=[common], help=help, description=help)
        q.set_defaults(func=cmd_webhook)
        q.add_argument(
            "--home", metavar="DIR", help="the node's state directory ($HARBOR_CONFLUENCE_HOME)"
        )
        return q

    q = wadd("add", "send ticket events to URL (https, or http to loopback); prints its secret")
    q.add_argument("url")
    q.add_argument(
        "--events",
        action="append",
        metavar="E,...",
        help="held, approved, rejected, executed, failed, unknown (default: all)",
    )
    q.add_argument(
        "--link-base",
        metavar="URL",
        help="the node's address as receivers reach it, for the ticket links",
    )
    wadd("list", "list webhooks (never their secrets)")
    q = wadd("remove", "remove a webhook by id or URL")
    q.add_argument("key", metavar="ID-or-URL")
    add("whoami", cmd_whoami, "who the node says HARBOR_NODE_TOKEN is", local=False)
    q = add("policy", lambda a: _usage(q), "the node's live policy (operator token)", local=False)
    psub = q.add_subparsers(dest="policy_cmd", metavar="show|set")
    s = psub.add_parser("show", parents=[common], help="print the live policy")
    s.set_defaults(func=cmd_policy)
    s = psub.add_parser(
        "set", parents=[common], help="replace the live policy (audited, with diff)"
    )
    s.add_argument("file")
    s.set_defaults(func=cmd_policy)


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return EXIT_INVALID
