"""Credential commands: ``token set|status|delete`` and ``auth check``.

Secrets are read from a no-echo prompt, or from stdin (one per line) when stdin is not a
terminal, and never from the command line, which any user can read from the process
list.  No command prints a secret: ``token status`` says which kind is stored and where.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._common import EXIT_ERROR, EXIT_INVALID, EXIT_OK, add_command, emit, fail

if TYPE_CHECKING:
    from harbor_confluence.config import LocalConfig
    from harbor_confluence.secrets.store import SecretStore

MAX_SECRET_CHARS = 8192
_ENV_SECRETS = ("CONFLUENCE_ACCESS_TOKEN", "CONFLUENCE_API_TOKEN")


class _SecretReader:
    """Prompt without echo on a terminal; otherwise read stdin line by line."""

    def __init__(self) -> None:
        self.interactive = sys.stdin.isatty()

    def read(self, label: str, *, optional: bool = False) -> str | None:
        if self.interactive:
            import getpass

            hint = " (Enter to skip)" if optional else ""
            raw = getpass.getpass(f"{label}{hint}: ")
        else:
            raw = sys.stdin.readline(MAX_SECRET_CHARS + 2)
        value = raw.strip()
        if not value:
            if optional:
                return None
            where = "the prompt" if self.interactive else "stdin (one value per line)"
            raise fail(EXIT_INVALID, "invalid_input", f"no {label} given on {where}")
        if len(value) > MAX_SECRET_CHARS or any(c.isspace() or ord(c) < 32 for c in value):
            # The value is not echoed back: the message names the rule only.
            raise fail(
                EXIT_INVALID,
                "invalid_input",
                f"the {label} must be one line of at most {MAX_SECRET_CHARS} "
                "characters without spaces",
            )
        return value


def cmd_token(args: argparse.Namespace) -> int:
    from harbor_confluence.config import LocalConfig, state_dir
    from harbor_confluence.secrets.store import SecretStore

    home = state_dir()
    config = LocalConfig(home)
    if args.step == "set":
        return _token_set(args, home, config)
    store = SecretStore(home, args.backend)
    if args.step == "delete":
        removed = store.delete()
        payload = {"removed": removed, "backend": store.name, "location": store.location}
        emit(args, payload, f"removed from {store.location}" if removed else "not set")
        return EXIT_OK
    return _token_status(args, store)


def _token_set(args: argparse.Namespace, home: Path, config: LocalConfig) -> int:
    from harbor_confluence.secrets.store import SecretRecord, SecretStore

    backend = args.backend or config.get("secret-backend") or "file"
    store = SecretStore(home, backend)  # refuses an unusable keyring before prompting
    reader = _SecretReader()
    if args.basic:
        if not args.email:
            raise fail(EXIT_INVALID, "invalid_input", "--basic needs --email you@example.com")
        record = SecretRecord(kind="basic", email=args.email, api_token=reader.read("API token"))
    elif args.bearer:
        record = SecretRecord(kind="bearer", access_token=reader.read("access token"))
    else:
        if not args.client_id:
            raise fail(EXIT_INVALID, "invalid_input", "--oauth needs --client-id CLIENT_ID")
        record = SecretRecord(
            kind="oauth",
            client_id=args.client_id,
            client_secret=reader.read("client secret"),
            refresh_token=reader.read("refresh token"),
            access_token=reader.read("access token", optional=True),
        )
    previous = config.get("secret-backend") or "file"
    store.save(record)
    if args.backend and args.backend != config.get("secret-backend"):
        config.set("secret-backend", args.backend)
    if previous != store.name or store.name != "file":
        _forget_elsewhere(home, store.name, previous)
    payload = {"stored": record.kind, "backend": store.name, "location": store.location}
    emit(args, payload, f"stored the {record.kind} credential in {store.location}")
    return EXIT_OK


def _forget_elsewhere(home: Path, kept: str, previous: str) -> None:
    """A moved credential must not linger in the other backend.

    The file is always checked (cheap); the keyring only when it was the backend before,
    so a plain ``token set`` never loads keyring.
    """
    from harbor_confluence.errors import ConfigError
    from harbor_confluence.secrets.store import SecretStore

    for name in {"file", previous} - {kept}:
        with contextlib.suppress(ConfigError):  # an unusable keyring holds nothing of ours
            SecretStore(home, name).delete()


def _token_status(args: argparse.Namespace, store: SecretStore) -> int:
    env = [name for name in _ENV_SECRETS if os.environ.get(name, "").strip()]
    payload: dict[str, Any] = {"backend": store.name, "location": store.location}
    lines = []
    if env:
        payload["environment"] = env
        lines.append(f"in effect: environment ({', '.join(env)}); it overrides the store")
    record = store.load()  # a loose file mode is refused here, naming the chmod fix
    payload["stored"] = None if record is None else record.describe()
    if record is None:
        lines.append(f"no credential stored in {store.location}")
    else:
        info = record.describe()
        detail = ", ".join(f"{k}={v}" for k, v in info.items() if k != "kind")
        lines.append(
            f"stored: {record.kind} credential in {store.location}"
            + (f" ({detail})" if detail else "")
        )
    emit(args, payload, "\n".join(lines))
    return EXIT_OK


def cmd_auth(args: argparse.Namespace) -> int:
    import httpx

    from harbor_confluence.config import LocalConfig, state_dir
    from harbor_confluence.pipeline.executor import default_manifest_path
    from harbor_confluence.pipeline.manifest import load_manifest
    from harbor_confluence.secrets.auth import Connection

    home = state_dir()
    manifest = load_manifest(args.manifest or default_manifest_path())
    connection = Connection(home, LocalConfig(home))
    with httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0)) as client:
        report = connection.check(client, manifest)
    data = report.to_dict()
    lines = [
        f"mode: {report.mode or 'none'}" + (f" (from {report.source})" if report.source else "")
    ]
    if report.site is not None:
        lines.append(f"site: {report.site.name} ({report.site.url}), cloudId {report.site.id}")
    elif report.sites:
        lines.append("accessible sites:")
        lines.extend(f"  {s.name} ({s.url}), cloudId {s.id}" for s in report.sites)
    if report.target:
        lines.append(f"requests go to: {report.target}")
    if report.granted_scopes is not None:
        lines.append("granted scopes: " + (" ".join(report.granted_scopes) or "none"))
        if report.uncovered:
            lines.append("actions the granted scopes do not cover:")
            lines.extend(
                f"  {u['action']} ({u['kind']}): needs {', '.join(u['missing'])}"
                for u in report.uncovered
            )
    lines.append(report.message)
    if args.json:
        emit(args, data, "")
    else:
        stream = sys.stdout if report.ok else sys.stderr
        stream.write("\n".join(lines) + "\n")
    return EXIT_OK if report.ok else EXIT_ERROR


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = add_command(
        sub, common, "token", cmd_token, "the stored credential (set, status, delete); never shown"
    )
    tsub = p.add_subparsers(dest="step", required=True)
    s = tsub.add_parser(
        "set",
        parents=[common],
        help="store a credential read from a no-echo prompt or stdin",
        description="Store a credential. Secrets are read from a no-echo prompt, or from "
        "stdin, one per line, when stdin is not a terminal; never from the command line. "
        "--oauth reads the client secret, the refresh token, then optionally an access token.",
    )
    kind = s.add_mutually_exclusive_group(required=True)
    kind.add_argument("--basic", action="store_true", help="email + API token (Basic auth)")
    kind.add_argument("--bearer", action="store_true", help="an OAuth 2.0 access token")
    kind.add_argument(
        "--oauth", action="store_true", help="OAuth 2.0 with refresh (client id, secret, tokens)"
    )
    s.add_argument("--email", help="Atlassian account email (with --basic)")
    s.add_argument("--client-id", help="OAuth app client id (with --oauth); not a secret")
    s.add_argument("--backend", choices=["file", "keyring"], help="where to store it")
    for name, text in (
        ("status", "which kind of credential is set and where (never the value)"),
        ("delete", "delete the stored credential"),
    ):
        t = tsub.add_parser(name, parents=[common], help=text, description=text)
        t.add_argument("--backend", choices=["file", "keyring"], help="which store to look in")

    add_command(
        sub,
        common,
        "auth",
        cmd_auth,
        "show the connected site, auth mode and actions the granted scopes do not cover",
    ).add_argument("auth_cmd", choices=["check"])
