"""Catalog commands: export the live port as a hub document, import one (a file or a hub
URL, signed or pinned), update from the hub, status, schema; publishers' keygen and sign;
operators' trust list."""

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
    from harbor_confluence.catalog.dock import export_document
    from harbor_confluence.pipeline.executor import live_port_paths
    from harbor_confluence.pipeline.manifest import load_manifest

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


def _obtain(
    args: argparse.Namespace, home: Path, source: str, entry: str | None, *, strict: bool = False
) -> Any:
    """Fetch (or read) the document and check its signature or pin: (obtained, provenance).
    A hub document must be signed or pinned; a local file too when ``strict``."""
    from harbor_confluence.catalog.dock import document_publisher, installed_paths, live_manifest
    from harbor_confluence.catalog.hub import obtain
    from harbor_confluence.catalog.signing import TrustStore, check_document

    live = live_manifest(installed_paths(home))
    got = obtain(source, ca=args.ca, entry=entry, port=live.port.name)
    prov = check_document(
        got.body,
        got.signature,
        TrustStore(home),
        source=got.label,
        publisher_of=lambda raw: document_publisher(raw, got.label),
        pin=args.sha256,
        allow_unsigned=args.allow_unsigned,
        require=strict or got.document_url is not None,
    )
    return got, prov


def _provenance(got: Any, prov: Any, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {**got.origin(), "verification": prov.to_dict()}
    if got.signature_from:
        out["signature"] = got.signature_from
    if args.allow_unsigned:
        out["allow_unsigned"] = True
    return out


def cmd_import(args: argparse.Namespace) -> int:
    from harbor_confluence.catalog.dock import (
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
        got, prov = _obtain(args, home, args.file, args.entry)
        plan = plan_import(
            got.label,
            home,
            force=args.force,
            accept_proposals=args.accept_proposals,
            document=got.body,
            provenance=_provenance(got, prov, args),
        )
    except HarborError as exc:
        problems = list(exc.problems) if isinstance(exc, ManifestError) else [str(exc)]
        record_audit(
            home, "catalog-import-refused", operator=operator, file=args.file, problems=problems,
            allow_unsigned=args.allow_unsigned,
        )  # fmt: skip
        raise
    if plan.kind == "unchanged":
        emit(
            args,
            {**plan.to_dict(), "installed": False},
            f"{plan.manifest.port.name} {plan.manifest.manifest_version} is already installed "
            "with the same content; nothing to do",
        )
        return EXIT_OK
    plan_text = "\n".join([prov.line(), *plan.lines()])
    if plan.needs_confirmation:
        _confirm(args, plan_text)
    result = apply_import(plan, home, operator=operator)
    lines = [
        f"installed {plan.manifest.port.name} {plan.manifest.manifest_version} "
        f"({len(plan.manifest.actions)} actions) from {got.label} as the live port",
        prov.line(),
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


def cmd_update(args: argparse.Namespace) -> int:
    """Ask the hub the live port came from for a newer version; apply only with --yes."""
    from harbor_confluence.catalog.dock import (
        apply_import,
        compare_versions,
        installed_paths,
        live_manifest,
        load_catalog_bytes,
        operator_identity,
        plan_import,
        read_source,
        record_audit,
    )
    from harbor_confluence.config import state_dir
    from harbor_confluence.errors import HarborError, ManifestError

    _no_port_files(args, "catalog update")
    home = state_dir()
    operator = operator_identity(args.as_)
    source = read_source(home) or {}
    hub_url = args.hub or (
        (source.get("index") or source.get("url")) if source.get("kind") == "hub" else None
    )
    if not hub_url:
        raise fail(
            EXIT_INVALID,
            "no_hub",
            "the live port was not imported from a hub (catalog import https://...), so there "
            "is no hub to ask; pass --hub URL (a hub index or a document URL)",
        )
    entry = args.entry or (source.get("entry") if not args.hub else None)
    live = live_manifest(installed_paths(home))
    try:
        got, prov = _obtain(args, home, hub_url, entry)
        offered, _ = load_catalog_bytes(got.body, got.label)
        if compare_versions(offered.manifest_version, live.manifest_version) < 0:
            raise fail(
                EXIT_INVALID,
                "downgrade_refused",
                f"the hub offers {offered.port.name} {offered.manifest_version}, lower than the "
                f"live {live.manifest_version}: an update never downgrades (catalog import URL "
                "--force does, knowingly). Nothing was installed.",
            )
        plan = plan_import(
            got.label,
            home,
            accept_proposals=args.accept_proposals,
            document=got.body,
            provenance=_provenance(got, prov, args),
        )
    except (HarborError, CliExit) as exc:
        if isinstance(exc, ManifestError):
            problems = list(exc.problems)
        elif isinstance(exc, CliExit):
            problems = [str(exc.payload.get("message", exc.text))]
        else:
            problems = [str(exc)]
        record_audit(
            home, "catalog-update-refused", operator=operator, hub=hub_url, problems=problems
        )
        raise
    if plan.kind == "unchanged":
        emit(
            args,
            {**plan.to_dict(), "update_available": False, "applied": False},
            f"up to date: {live.port.name} {live.manifest_version} is what {got.label} offers",
        )
        return EXIT_OK
    plan_text = "\n".join(
        [f"{got.label} offers {plan.manifest.port.name} {plan.manifest.manifest_version}",
         prov.line(), *plan.lines()]
    )  # fmt: skip
    if not args.yes:
        emit(
            args,
            {**plan.to_dict(), "update_available": True, "applied": False},
            plan_text + "\nnot applied: re-run with --yes to apply these changes",
        )
        return EXIT_OK
    result = apply_import(plan, home, operator=operator)
    lines = [
        f"updated {plan.manifest.port.name} {live.manifest_version} -> "
        f"{plan.manifest.manifest_version} from {got.label}",
        prov.line(),
        *plan.policy.lines(),
    ]
    emit(args, {**result, "update_available": True, "applied": True}, "\n".join(lines))
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    """Check a document's signature (or pin) against the trusted keys; install nothing."""
    from harbor_confluence.config import state_dir

    home = state_dir()
    got, prov = _obtain(args, home, args.file, args.entry, strict=True)
    emit(
        args,
        {**got.origin(), "verification": prov.to_dict()},
        f"{got.label}: {prov.line()}",
    )
    return EXIT_OK


# -- publishers: keys and signatures -------------------------------------------------------


def cmd_keygen(args: argparse.Namespace) -> int:
    from harbor_confluence.catalog.signing import write_keypair

    pub, key = write_keypair(args.output, publisher=args.publisher)
    trust = f"harbor-confluence catalog trust add {key.text} --publisher {args.publisher or 'SLUG'}"
    emit(
        args,
        {
            "private_key": args.output,
            "public_key_file": str(pub),
            "public_key": key.text,
            "key_id": key.key_id,
        },
        f"wrote {args.output} (private key, mode 0600: keep it offline) and {pub}\n"
        f"public key: {key.text}\nkey id: {key.key_id}\n"
        f"operators trust it with: {trust}",
    )
    return EXIT_OK


def cmd_sign(args: argparse.Namespace) -> int:
    from harbor_confluence.catalog.dock import load_catalog_bytes
    from harbor_confluence.catalog.signing import SIG_SUFFIX, sign_document

    path = Path(args.file)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise fail(EXIT_INVALID, "read_failed", f"cannot read {path}: {exc.strerror}") from None
    doc, digest = load_catalog_bytes(raw, str(path))  # a publisher never signs a bad document
    sig = sign_document(raw, args.key, doc.publisher.slug)
    out = Path(args.output) if args.output else path.with_name(path.name + SIG_SUFFIX)
    try:
        out.write_bytes(sig.to_bytes())
    except OSError as exc:
        raise fail(EXIT_ERROR, "write_failed", f"cannot write {out}: {exc.strerror}") from None
    emit(
        args,
        {"file": str(path), **sig.to_dict(), "signature_file": str(out)},
        f"signed {path} ({doc.port.name} {doc.manifest_version}, sha256 {digest}) as "
        f"{doc.publisher.slug} with key {sig.key_id}: {out}\npublish both files side by side",
    )
    return EXIT_OK


# -- operators: trusted publisher keys ---------------------------------------------------------


def cmd_trust_list(args: argparse.Namespace) -> int:
    from harbor_confluence.catalog.signing import TrustStore
    from harbor_confluence.config import state_dir

    keys = TrustStore(state_dir()).keys()
    rows = [k.to_dict() for k in keys]
    text = "\n".join(
        f"{k.publisher:<20} {k.key_id}  {k.key.text}  added {k.added_at} by {k.added_by}"
        + (f"  ({k.comment})" if k.comment else "")
        for k in keys
    )
    emit(args, rows, text or "no trusted keys: catalog trust add KEY --publisher SLUG")
    return EXIT_OK


def cmd_trust_add(args: argparse.Namespace) -> int:
    from harbor_confluence.catalog.dock import operator_identity, record_audit
    from harbor_confluence.catalog.signing import TrustStore, read_public_key
    from harbor_confluence.config import state_dir

    home = state_dir()
    operator = operator_identity(args.as_)
    key = read_public_key(args.key)
    added = TrustStore(home).add(key, args.publisher, by=operator, comment=args.comment or "")
    record_audit(home, "trust-key-added", operator=operator, publisher=added.publisher,
                 key_id=added.key_id, public_key=added.key.text)  # fmt: skip
    emit(
        args,
        added.to_dict(),
        f"trusted key {added.key_id} for publisher {added.publisher}: documents it signs as "
        f"{added.publisher} import without --allow-unsigned",
    )
    return EXIT_OK


def cmd_trust_remove(args: argparse.Namespace) -> int:
    from harbor_confluence.catalog.dock import operator_identity, record_audit
    from harbor_confluence.catalog.signing import TrustStore
    from harbor_confluence.config import state_dir

    home = state_dir()
    operator = operator_identity(args.as_)
    removed = TrustStore(home).remove(args.key)
    record_audit(home, "trust-key-removed", operator=operator, publisher=removed.publisher,
                 key_id=removed.key_id)  # fmt: skip
    emit(
        args,
        removed.to_dict(),
        f"removed key {removed.key_id} ({removed.publisher}) from the trusted keys",
    )
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from harbor_confluence.catalog.dock import installed_paths, policy_state, read_source
    from harbor_confluence.catalog.drafts import list_drafts
    from harbor_confluence.config import LocalConfig, state_dir
    from harbor_confluence.pipeline.executor import live_port_paths
    from harbor_confluence.pipeline.manifest import load_manifest

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
    origin = read_source(home) if installed else None
    if origin is not None:
        info["origin"] = origin
    text = [
        f"live port: {manifest.port.name} {manifest.manifest_version} "
        f"({len(manifest.actions)} actions, {info['source']}: {manifest_path})",
        f"policy: {policy_path} ({policy})",
        *_origin_lines(origin),
        f"drafts: {info['drafts']}",
        "tenant base URL: " + ("set" if info["base_url_set"] else "not set (config set base-url)"),
    ]
    emit(args, info, "\n".join(text))
    return EXIT_OK


def _origin_lines(origin: dict[str, Any] | None) -> list[str]:
    if not origin:
        return []
    where = origin.get("url") or origin.get("file") or "?"
    check = origin.get("verification") or {}
    how = str(check.get("status", "?"))
    if check.get("key_id"):
        how += f", key {check['key_id']}"
    return [
        f"imported from: {where} ({how}), version {origin.get('version', '?')}, by "
        f"{origin.get('imported_by', '?')}"
    ]


def cmd_schema(args: argparse.Namespace) -> int:
    from harbor_confluence.schemas import catalog_schema_text

    sys.stdout.write(catalog_schema_text())
    return EXIT_OK


def _source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sha256", metavar="HEX", help="pin: the document's SHA-256 must be this")
    p.add_argument(
        "--allow-unsigned",
        action="store_true",
        help="accept a document that is neither signed by a trusted key nor pinned (audited)",
    )
    p.add_argument("--ca", metavar="FILE", help="CA bundle for a hub with a private CA "
                   "(default: $HARBOR_HUB_CA, else the system's)")  # fmt: skip
    p.add_argument("--entry", metavar="NAME", help="with an index URL: the entry to take "
                   "(publisher/name or port; default: the live port's)")  # fmt: skip


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = add_command(
        sub,
        common,
        "catalog",
        cmd_status,
        "Dock/Hub documents: export, import (file or hub), update, status, schema, "
        "keygen/sign (publishers), trust (operators)",
    )
    csub = p.add_subparsers(dest="catalog_cmd", required=True)
    e = csub.add_parser("export", parents=[common], help="write the live port as a hub document")
    e.add_argument("-o", "--output", help="file to write (default: stdout)")
    e.set_defaults(func=cmd_export)
    i = csub.add_parser(
        "import",
        parents=[common],
        help="validate a hub document (a file, a hub URL or a hub index URL) and install it "
        "as the live port",
    )
    i.epilog = (
        "A document's defaultPolicy values are proposals. The live policy (the packaged one "
        "before the first install) is only ever added to: a new read is denied and a new "
        "write held unless you pass --accept-proposals, and even then a write is never "
        "automatic and no decision the live policy makes is loosened. A version already "
        "installed or packaged with other content is refused (exit 2): bump manifestVersion. "
        "From a hub, the document must be signed by a key you trust for its publisher "
        "(catalog trust add) or pinned with --sha256; a local file is checked when a .sig "
        "sits beside it or --sha256 is given."
    )
    i.add_argument("file", help="a .json file, https://HUB/.../NAME.json or https://HUB/index.json")
    i.add_argument("--yes", action="store_true", help="apply the shown changes without asking")
    i.add_argument("--force", action="store_true", help="allow a lower version (a downgrade)")
    i.add_argument(
        "--accept-proposals",
        action="store_true",
        help="accept the document's defaultPolicy proposals where they do not loosen the live "
        "policy (a write is never auto)",
    )
    i.add_argument("--as", dest="as_", metavar="NAME", help="operator identity for the audit log")
    _source_args(i)
    i.set_defaults(func=cmd_import)
    u = csub.add_parser(
        "update",
        parents=[common],
        help="ask the hub the live port came from for a newer version; show the changes, "
        "apply them with --yes",
    )
    u.add_argument("--hub", metavar="URL", help="a hub index or document URL (default: where "
                   "the live port was imported from)")  # fmt: skip
    u.add_argument("--yes", action="store_true", help="apply the update (default: only show it)")
    u.add_argument(
        "--accept-proposals",
        action="store_true",
        help="accept the new version's defaultPolicy proposals (tightening only; a write is "
        "never auto)",
    )
    u.add_argument("--as", dest="as_", metavar="NAME", help="operator identity for the audit log")
    _source_args(u)
    u.set_defaults(func=cmd_update)
    v = csub.add_parser(
        "verify", parents=[common], help="check a document's signature or pin; install nothing"
    )
    v.add_argument("file", help="a .json file, a document URL or a hub index URL")
    _source_args(v)
    v.set_defaults(func=cmd_verify)
    k = csub.add_parser(
        "keygen", parents=[common], help="publishers: make an Ed25519 signing key (FILE, FILE.pub)"
    )
    k.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="FILE",
        help="the private key file to create (0600); the public key goes to FILE.pub",
    )
    k.add_argument("--publisher", metavar="SLUG", help="the publisher slug it signs for (noted)")
    k.set_defaults(func=cmd_keygen)
    g = csub.add_parser(
        "sign", parents=[common], help="publishers: sign a hub document (writes FILE.sig)"
    )
    g.add_argument("file")
    g.add_argument("--key", required=True, metavar="FILE", help="the private key (catalog keygen)")
    g.add_argument("-o", "--output", metavar="SIG", help="signature file (default: FILE.sig)")
    g.set_defaults(func=cmd_sign)
    t = csub.add_parser(
        "trust", parents=[common], help="operators: the publisher keys hub imports accept"
    )
    t.set_defaults(func=cmd_trust_list)
    tsub = t.add_subparsers(dest="trust_cmd", required=False)
    ta = tsub.add_parser("add", parents=[common], help="trust a publisher's public key")
    ta.add_argument("key", help="ed25519:BASE64 or a .pub file")
    ta.add_argument("--publisher", required=True, metavar="SLUG",
                    help="the publisher slug this key signs for (e.g. atlassian)")  # fmt: skip
    ta.add_argument("--comment", help="a note (where you checked the key)")
    ta.add_argument("--as", dest="as_", metavar="NAME", help="operator identity for the audit log")
    ta.set_defaults(func=cmd_trust_add)
    tl = tsub.add_parser("list", parents=[common], help="the trusted keys")
    tl.set_defaults(func=cmd_trust_list)
    tr = tsub.add_parser("remove", parents=[common], help="stop trusting a key")
    tr.add_argument("key", help="a key id, ed25519:BASE64 or a .pub file")
    tr.add_argument("--as", dest="as_", metavar="NAME", help="operator identity for the audit log")
    tr.set_defaults(func=cmd_trust_remove)
    s = csub.add_parser("status", parents=[common], help="where the live port comes from")
    s.set_defaults(func=cmd_status)
    sc = csub.add_parser("schema", parents=[common], help="print the hub document JSON Schema")
    sc.set_defaults(func=cmd_schema)
