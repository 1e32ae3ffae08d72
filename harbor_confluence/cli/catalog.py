"""Catalog commands: export the live port as a hub document, import one, status, schema."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ._common import EXIT_ERROR, EXIT_INVALID, EXIT_OK, CliExit, add_command, emit, fail


def _no_port_files(args: argparse.Namespace, what: str) -> None:
    if args.manifest or args.policy:
        raise fail(
            EXIT_INVALID,
            "invalid_option",
            f"--manifest/--policy do not apply to {what}: it works on the live port in the "
            "state directory",
        )


def cmd_export(args: argparse.Namespace) -> int:
    from harbor_confluence.catalog import export_document
    from harbor_confluence.executor import live_port_paths
    from harbor_confluence.manifest import load_manifest

    if args.policy:
        raise fail(
            EXIT_INVALID,
            "invalid_option",
            "--policy does not apply to catalog export: a hub document carries each action's "
            "defaultPolicy, never a policy file",
        )
    manifest = load_manifest(args.manifest or live_port_paths()[0])
    doc = export_document(manifest)
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if args.output in (None, "-"):
        sys.stdout.write(text)
        return EXIT_OK
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise fail(
            EXIT_ERROR, "write_failed", f"cannot write {args.output}: {exc.strerror}"
        ) from None
    emit(
        args,
        {
            "file": args.output,
            "port": manifest.port.name,
            "version": manifest.manifest_version,
            "actions": len(manifest.actions),
        },
        f"wrote {args.output} ({manifest.port.name} {manifest.manifest_version}, "
        f"{len(manifest.actions)} actions)",
    )
    return EXIT_OK


def _confirm(args: argparse.Namespace, diff_text: str) -> None:
    """--yes, else an interactive y/N; a script without --yes is refused, never assumed."""
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise CliExit(
            EXIT_ERROR,
            {
                "code": "confirmation_required",
                "message": "re-run with --yes to apply",
                "changes": diff_text.splitlines(),
            },
            f"{diff_text}\nerror: this import changes the live port and needs confirmation; "
            "stdin is not a terminal, so re-run with --yes to apply. Nothing was installed.",
        )
    sys.stderr.write(diff_text + "\nApply these changes to the live port? [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise fail(EXIT_ERROR, "declined", "not applied; the live port is unchanged")


def cmd_import(args: argparse.Namespace) -> int:
    from harbor_confluence.catalog import (
        apply_import,
        operator_identity,
        plan_import,
        record_audit,
    )
    from harbor_confluence.config import LocalConfig, state_dir
    from harbor_confluence.errors import HarborError, ManifestError

    _no_port_files(args, "catalog import")
    home = state_dir()
    operator = operator_identity(args.as_)
    try:
        plan = plan_import(
            args.file, home, force=args.force, accept_proposals=args.accept_proposals
        )
    except HarborError as exc:
        problems = list(exc.problems) if isinstance(exc, ManifestError) else [str(exc)]
        record_audit(
            home, "catalog-import-refused", operator=operator, file=args.file, problems=problems
        )
        raise
    if plan.kind == "unchanged":
        emit(
            args,
            {**plan.to_dict(), "installed": False},
            f"{plan.manifest.port.name} {plan.manifest.manifest_version} is already installed "
            "with the same content; nothing to do",
        )
        return EXIT_OK
    plan_text = "\n".join(plan.lines())
    if plan.needs_confirmation:
        _confirm(args, plan_text)
    result = apply_import(plan, home, operator=operator)
    lines = [
        f"installed {plan.manifest.port.name} {plan.manifest.manifest_version} "
        f"({len(plan.manifest.actions)} actions) from {args.file} as the live port",
        *plan.policy.lines(),
    ]
    if plan.policy.uncovered:
        uncovered = ", ".join(plan.policy.uncovered)
        lines.append(f"denied by your policy until you add rules: {uncovered}")
    if not LocalConfig(home).get("base-url"):
        lines.append(
            "next: set your tenant, e.g. harbor-confluence config set base-url "
            "https://YOUR-SITE.atlassian.net (every action fails until you do)"
        )
    emit(args, {**result, "installed": True}, "\n".join(lines))
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from harbor_confluence.catalog import installed_paths, policy_state
    from harbor_confluence.config import LocalConfig, state_dir
    from harbor_confluence.drafts import list_drafts
    from harbor_confluence.executor import live_port_paths
    from harbor_confluence.manifest import load_manifest

    _no_port_files(args, "catalog status")
    home = state_dir()
    paths = installed_paths(home)
    manifest_path, policy_path = live_port_paths(home)
    manifest = load_manifest(manifest_path)
    installed = manifest_path == paths.manifest
    policy = policy_state(paths.policy) if policy_path == paths.policy else "packaged"
    info: dict[str, Any] = {
        "source": "installed" if installed else "packaged",
        "manifest": str(manifest_path),
        "policy": str(policy_path),
        "policy_state": policy,
        "port": manifest.port.name,
        "version": manifest.manifest_version,
        "actions": len(manifest.actions),
        "drafts": len(list_drafts(home)),
        "base_url_set": bool(LocalConfig(home).get("base-url")),
    }
    text = [
        f"live port: {manifest.port.name} {manifest.manifest_version} "
        f"({len(manifest.actions)} actions, {info['source']}: {manifest_path})",
        f"policy: {policy_path} ({policy})",
        f"drafts: {info['drafts']}",
        "tenant base URL: " + ("set" if info["base_url_set"] else "not set (config set base-url)"),
    ]
    emit(args, info, "\n".join(text))
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from harbor_confluence.schemas import catalog_schema_text

    sys.stdout.write(catalog_schema_text())
    return EXIT_OK


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = add_command(
        sub, common, "catalog", cmd_status, "Dock/Hub documents: export, import, status, schema"
    )
    csub = p.add_subparsers(dest="catalog_cmd", required=True)
    e = csub.add_parser("export", parents=[common], help="write the live port as a hub document")
    e.add_argument("-o", "--output", help="file to write (default: stdout)")
    e.set_defaults(func=cmd_export)
    i = csub.add_parser(
        "import", parents=[common], help="validate a hub document and install it as the live port"
    )
    i.epilog = (
        "A document's defaultPolicy values are proposals. The live policy (the packaged one "
        "before the first install) is only ever added to: a new read is denied and a new "
        "write held unless you pass --accept-proposals, and even then a write is never "
        "automatic and no decision the live policy makes is loosened. A version already "
        "installed or packaged with other content is refused (exit 2): bump manifestVersion."
    )
    i.add_argument("file")
    i.add_argument("--yes", action="store_true", help="apply the shown changes without asking")
    i.add_argument("--force", action="store_true", help="allow a lower version (a downgrade)")
    i.add_argument(
        "--accept-proposals",
        action="store_true",
        help="accept the document's defaultPolicy proposals where they do not loosen the live "
        "policy (a write is never auto)",
    )
    i.add_argument("--as", dest="as_", metavar="NAME", help="operator identity for the audit log")
    i.set_defaults(func=cmd_import)
    s = csub.add_parser("status", parents=[common], help="where the live port comes from")
    s.set_defaults(func=cmd_status)
    sc = csub.add_parser("schema", parents=[common], help="print the hub document JSON Schema")
    sc.set_defaults(func=cmd_schema)
